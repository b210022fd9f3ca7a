"""REST API of the inference app: live drafting, models and re-inference runs."""
