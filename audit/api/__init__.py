"""The audit log's REST API (checkpoints and proofs)."""
