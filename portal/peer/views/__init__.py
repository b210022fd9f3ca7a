"""Pages of peer learning: the inbox (everyone), teaching sets and assignment rules (the QA chair).

Thin: each view asks :mod:`portal.accounts.roles` first (refusals are audited by
:func:`portal.core.access.deny`), validates with a form and calls one service.
"""
