"""The REST API under /api/v1/: serializers, views and URLs for the clinical record."""
