"""The Dagster layer: assets, checks, resources, IO manager, jobs, schedules, sensors, Definitions.

``defs`` (the code location's Definitions) is built on first access, so a module of this package (the instance,
the partitions, the resources) imports without the whole asset graph: commands that do not run it start faster.
"""

from typing import Any

__all__ = ["defs"]


def __dir__() -> list[str]:
    """The module's names with ``defs``: Dagster's autodiscovery (``-m trading_assets.defs`` without an
    attribute, the ``[tool.dagster]`` module of pyproject.toml) looks for Definitions among them."""
    return sorted([*globals(), "defs"])


def __getattr__(name: str) -> Any:
    if name != "defs":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from trading_assets.defs.definitions import defs

    return defs
