"""Re-inference: a model version re-drafts a frozen cohort of stored studies, chunk by chunk.

Workflows: :mod:`.runs` (create, cancel, fail, complete), :mod:`.chunks` (one chunk: claim, generate,
compare, store), :mod:`.reaper` (hand back chunks of dead workers). Pure parts: :mod:`.cohort`
(selection and chunking) and :mod:`.summary` (the arithmetic of a run summary). Reads of runs live in
:mod:`inference.selectors`; the Celery tasks in :mod:`inference.tasks`.
"""
