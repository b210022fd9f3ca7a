"""The clinical record: studies, AI outputs and signed reports, and the adapters that ingest them."""
