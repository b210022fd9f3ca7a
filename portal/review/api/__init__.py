"""API of the review app."""
