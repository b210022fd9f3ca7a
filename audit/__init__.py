"""Audit trail, legal holds and export packages. Imported by every app; imports no domain app."""
