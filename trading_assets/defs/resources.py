"""Resources: where candles come from and where they are stored.

Paths, hosts and credentials live in the nested :class:`Locations` resource (bound from the
environment, not settable from run config); the fields here only tune behaviour.

No `from __future__ import annotations` here: Dagster reads the field annotations.
"""

from typing import Any, Literal

from dagster import ConfigurableResource
from pydantic import Field

from trading_assets.calendars import TradingCalendar, get_calendar
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
    files_timezone: str = Field(
        default="UTC", description="Time zone of naive timestamps in candle files (e.g. America/New_York)"
    )
    files_adjusted: Literal["ignore", "use"] = Field(
        default="ignore",
        description="An 'Adj Close' column: 'ignore' it (raw prices, a warning says so) or 'use' it "
        "(open/high/low scaled by adj_close / close, close = adj_close)",
    )
    ccxt_exchange: str = Field(default="binance", description="ccxt exchange id for kind 'ccxt' (e.g. binance, kraken)")
    ccxt_markets: dict[str, str] = Field(
        default_factory=dict,
        description="Symbol partition (QUOTE-BASE) -> ccxt market (BASE/QUOTE), e.g. {'USDT-BTC': 'BTC/USDT'}; "
        "a symbol without an entry is refused",
    )
    ccxt_options: dict[str, Any] = Field(
        default_factory=dict,
        description="ccxt exchange options, e.g. {'fetchMarkets': {'types': ['spot']}} for Binance spot only",
    )
    calendar: str = Field(
        default="24/7",
        description="Trading calendar of the source's markets: '24/7' (crypto), 'FX' (Sunday 17:00 to Friday "
        "17:00 New York) or an exchange-calendars name such as XNYS (see trading_assets.calendars)",
    )
    symbol_calendars: dict[str, str] = Field(
        default_factory=dict, description="Per-symbol calendar overriding `calendar`, e.g. {'USD-SPY': 'XNYS'}"
    )
    synthetic_seed: int = Field(default=7, description="Seed of the synthetic generator")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Settings of a source that has no fields of its own, by name"
    )
    step_retries: int = Field(
        default=2, ge=0, description="raw_candles re-runs after a transient source error (network, 5xx, malformed)"
    )
    step_retry_seconds: float = Field(default=30.0, ge=0, description="Wait before such a re-run, doubled each time")

    @property
    def upbit_base_url(self) -> str:
        return self.locations.resolved_upbit_base_url()

    @property
    def files_dir(self) -> str:
        return str(self.locations.resolved_files_dir())

    @property
    def ccxt_api_url(self) -> str | None:
        return self.locations.resolved_ccxt_api_url()

    def get_source(self) -> CandleSource:
        return build_source(self.kind, self)

    def calendar_for(self, symbol: str) -> TradingCalendar:
        """The trading calendar of ``symbol``: its own entry, else the source's."""
        return get_calendar(self.symbol_calendars.get(symbol, self.calendar))


class CandleStoreResource(ConfigurableResource):
    """The SQL candle store at ``locations.db_url`` ($TRADING_DB_URL, else SQLite in the data folder)."""

    locations: Locations
    refresh: bool = Field(
        default=False,
        description="Fetch the requested window again from the source, replacing stored candles that changed "
        "(nothing stored is deleted)",
    )
    refetch_bars: int = Field(
        default=3,
        ge=0,
        description="Bars at the end of the collected span fetched again by every incremental collection, so "
        "late or corrected candles replace what was stored (or filled)",
    )

    def get_store(self) -> CandleStore:
        return CandleStore(self.locations.resolved_db_url())
