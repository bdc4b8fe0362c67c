"""The Dagster layer: assets, checks, resources, IO manager, jobs, schedules, sensors, Definitions."""

import warnings

from dagster import PreviewWarning

# partitions_def on asset checks is "preview" in Dagster 1.13; it is what records the evaluated partition.
warnings.filterwarnings("ignore", category=PreviewWarning, message=".*partitions_def on an AssetCheckSpec.*")

from trading_assets.defs.definitions import defs  # noqa: E402

__all__ = ["defs"]
