"""Resources: where candles come from and where they are stored."""

from __future__ import annotations

from typing import Any, Literal

from dagster import ConfigurableResource
from pydantic import Field

from trading_assets.settings import default_db_url
from trading_assets.sources import SOURCES, CandleSource, build_source, describe_sources
from trading_assets.store import CandleStore

SourceKind = Literal[tuple(SOURCES)]  # the registered sources' names


class CandleSourceResource(ConfigurableResource):
    """Selects and configures the candle source (see trading_assets.sources.SOURCES)."""

    kind: SourceKind = Field(default="synthetic", description=describe_sources())
    upbit_base_url: str = Field(default="https://api.upbit.com", description="Upbit REST API base URL")
    upbit_requests_per_second: float = Field(default=8.0, description="Client-side request rate (Upbit allows 10/s)")
    upbit_max_retries: int = Field(default=5, description="Retries on HTTP 429/5xx and network errors")
    files_dir: str | None = Field(
        default=None, description="Directory of candle files (default <data dir>/candle_files)"
    )
    files_pattern: str = Field(default="{symbol}_{timeframe}", description="File name stem pattern")
    synthetic_seed: int = Field(default=7, description="Seed of the synthetic generator")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Settings of a source that has no fields of its own, by name"
    )

    def get_source(self) -> CandleSource:
        return build_source(self.kind, self)


class CandleStoreResource(ConfigurableResource):
    """The SQL candle store."""

    url: str | None = Field(
        default=None, description="SQLAlchemy URL; default $TRADING_DB_URL, else SQLite in the data folder"
    )

    def get_store(self) -> CandleStore:
        return CandleStore(self.url or default_db_url())
