"""App config for the local model: registry services, runtime, re-inference runs, training."""

from django.apps import AppConfig


class InferenceConfig(AppConfig):
    """Re-inference runs and their results; the model commands (train_model, register_model, reinfer)."""

    name = "inference"
    label = "inference"
