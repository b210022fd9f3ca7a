"""Pages of the inference app: re-inference runs and the model registry (mounted at the site root)."""

from django.urls import path

from inference import views

urlpatterns = [
    path("reinference/", views.runs, name="reinference-runs"),
    path("reinference/<int:pk>/", views.run_detail, name="reinference-run"),
    path("reinference/<int:pk>/progress", views.run_progress, name="reinference-run-progress"),
    path("reinference/<int:pk>/cancel", views.run_cancel, name="reinference-run-cancel-page"),
    path("models/", views.models, name="models"),
    path("models/<int:pk>/", views.model_detail, name="model"),
    path("models/<int:pk>/activate", views.model_activate, name="model-activate"),
]
