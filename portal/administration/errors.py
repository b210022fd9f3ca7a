"""Refusals of the administration workflows, mapped to a 400 page with the message."""


class AdministrationError(ValueError):
    """The change cannot be made as asked (the message says why, in words for the admin)."""
