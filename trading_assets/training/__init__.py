"""Sequence models on the features: windows, models, trainer, MLflow logging (no Dagster import)."""
