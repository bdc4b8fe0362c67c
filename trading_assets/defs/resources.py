"""Resources: where candles come from and where they are stored.

Paths, hosts and credentials live in the nested :class:`Locations` resource (bound from the
environment, not settable from run config); the fields here only tune behaviour.

No `from __future__ import annotations` here: Dagster reads the field annotations.
"""

from typing import Any, Literal

from dagster import ConfigurableResource
from pydantic import Field

from trading_assets.defs.locations import Locations
from trading_assets.sources import SOURCES, CandleSource, build_source, describe_sources
from trading_assets.store import CandleStore

SourceKind = Literal[tuple(SOURCES)]  # the registered sources' names


class CandleSourceResource(ConfigurableResource):
    """Selects and configures the candle source (see trading_assets.sources.SOURCES)."""

    locations: Locations
    kind: SourceKind = Field(default="synthetic", description=describe_sources())
    upbit_requests_per_second: float = Field(default=8.0, description="Client-side request rate (Upbit allows 10/s)")
    upbit_max_retries: int = Field(default=5, description="Retries on HTTP 429/5xx and network errors")
    synthetic_seed: int = Field(default=7, description="Seed of the synthetic generator")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Settings of a source that has no fields of its own, by name"
    )

    @property
    def upbit_base_url(self) -> str:
        return self.locations.resolved_upbit_base_url()

    @property
    def files_dir(self) -> str:
        return str(self.locations.resolved_files_dir())

    def get_source(self) -> CandleSource:
        return build_source(self.kind, self)


class CandleStoreResource(ConfigurableResource):
    """The SQL candle store at ``locations.db_url`` ($TRADING_DB_URL, else SQLite in the data folder)."""

    locations: Locations

    def get_store(self) -> CandleStore:
        return CandleStore(self.locations.resolved_db_url())
