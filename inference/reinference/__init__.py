"""Re-inference internals: cohort selection and chunking (:mod:`.cohort`), summary maths (:mod:`.summary`).

The workflows that write runs live in :mod:`inference.services`, the reads in :mod:`inference.selectors`.
"""
