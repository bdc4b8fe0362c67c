"""Resources: where candles come from and where they are stored."""

from __future__ import annotations

from typing import Literal

from dagster import ConfigurableResource
from pydantic import Field

from trading_assets.settings import data_dir, default_db_url
from trading_assets.sources import CandleSource, FileSource, SyntheticSource, UpbitSource
from trading_assets.store import CandleStore


class CandleSourceResource(ConfigurableResource):
    """Selects and configures the candle source."""

    kind: Literal["synthetic", "upbit", "files"] = Field(
        default="synthetic", description="synthetic (offline, seeded), upbit (REST API) or files (CSV/Parquet/JSON)"
    )
    upbit_base_url: str = Field(default="https://api.upbit.com", description="Upbit REST API base URL")
    upbit_requests_per_second: float = Field(default=8.0, description="Client-side request rate (Upbit allows 10/s)")
    upbit_max_retries: int = Field(default=5, description="Retries on HTTP 429/5xx and network errors")
    files_dir: str | None = Field(
        default=None, description="Directory of candle files (default <data dir>/candle_files)"
    )
    files_pattern: str = Field(default="{symbol}_{timeframe}", description="File name stem pattern")
    synthetic_seed: int = Field(default=7, description="Seed of the synthetic generator")

    def get_source(self) -> CandleSource:
        if self.kind == "upbit":
            return UpbitSource(self.upbit_base_url, self.upbit_requests_per_second, self.upbit_max_retries)
        if self.kind == "files":
            return FileSource(self.files_dir or data_dir() / "candle_files", self.files_pattern)
        return SyntheticSource(seed=self.synthetic_seed)


class CandleStoreResource(ConfigurableResource):
    """The SQL candle store."""

    url: str | None = Field(
        default=None, description="SQLAlchemy URL; default $TRADING_DB_URL, else SQLite in the data folder"
    )

    def get_store(self) -> CandleStore:
        return CandleStore(self.url or default_db_url())
