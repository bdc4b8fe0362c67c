"""The Dagster layer: assets, checks, resources, IO manager, jobs, sensors and the Definitions."""

from trading_assets.defs.definitions import defs

__all__ = ["defs"]
