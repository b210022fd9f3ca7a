"""Accounts and roles: the one place that decides who may see and do what."""
