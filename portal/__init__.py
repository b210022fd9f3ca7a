"""Concordance: the Django project (settings, Celery app, URLs) and the clinical side."""

from portal.celery import app as celery_app

__all__ = ["celery_app"]
