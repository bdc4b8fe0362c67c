"""The supported candle timeframes and grid arithmetic on them."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

TIMEFRAMES: tuple[str, ...] = ("1m", "5m", "15m", "30m", "60m", "240m", "1d")

# Default requested span per timeframe: long enough for features, the model's chronological split
# and four walk-forward folds (a test checks it); the warm-up is loaded on top.
# Enough whole periods of the walk-forward fold grid (trading_assets.splits.FOLD_PERIODS: days up to 5m,
# weeks up to 60m, months at 240m, quarters at 1d) for 3 training periods, 4 test folds and the hold-out.
DEFAULT_SPAN_DAYS: dict[str, float] = {"1m": 8, "5m": 8, "15m": 56, "30m": 56, "60m": 56, "240m": 245, "1d": 740}

# Exchange market codes: QUOTE-BASE, upper-case letters and digits (e.g. KRW-BTC, USDT-ETH).
_SYMBOL_RE = re.compile(r"[A-Z0-9]{2,10}-[A-Z0-9]{1,15}")  # always fullmatch: "$" accepts a trailing newline


@dataclass(frozen=True)
class Timeframe:
    """One candle timeframe: its name and its bar length."""

    name: str
    minutes: int

    @property
    def delta(self) -> pd.Timedelta:
        return pd.Timedelta(minutes=self.minutes)

    @property
    def bars_per_year(self) -> float:
        """Bars in a year of a market that trades around the clock (annualisation of returns)."""
        return 365 * 1440 / self.minutes

    @property
    def freq(self) -> str:
        """pandas frequency string of the candle grid."""
        return "1D" if self.minutes == 1440 else f"{self.minutes}min"

    def floor(self, ts: pd.Timestamp) -> pd.Timestamp:
        """Start of the bar that contains ``ts`` (bars are aligned to the Unix epoch, UTC)."""
        return to_utc(ts).floor(self.freq)

    def grid(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
        """Bar start times in ``[start, end)`` on this timeframe's grid."""
        first = self.floor(start)
        if first < to_utc(start):
            first += self.delta
        index = pd.date_range(first, to_utc(end), freq=self.freq, inclusive="left", unit="ns")
        return index.rename("open_time")


def get_timeframe(name: str) -> Timeframe:
    """Look up a timeframe by name (``1m`` ... ``240m``, ``1d``)."""
    validate_timeframe(name)
    return Timeframe(name, 1440 if name == "1d" else int(name[:-1]))


def validate_timeframe(name: str) -> str:
    """Return ``name`` if it is one of :data:`TIMEFRAMES`, else raise."""
    if not isinstance(name, str) or name not in TIMEFRAMES:
        raise ValueError(f"unknown timeframe {name!r}; expected one of {', '.join(TIMEFRAMES)}")
    return name


def validate_symbol(symbol: str) -> str:
    """Return ``symbol`` if it is a well-formed market code, else raise.

    Dagster's multi-partition keys join dimensions with ``|``: a symbol containing it would be
    accepted as a dynamic partition and then silently vanish, so it is rejected here. A symbol
    also becomes a directory name and a SQL value: only the market-code alphabet passes, matched
    whole (``fullmatch``: no ``..``, ``/`` or trailing newline).
    """
    if not isinstance(symbol, str) or not _SYMBOL_RE.fullmatch(symbol):
        raise ValueError(
            f"invalid symbol {symbol!r}: expected an exchange market code such as KRW-BTC "
            "(upper-case letters/digits, one '-')"
        )
    return symbol


def to_utc(ts: object) -> pd.Timestamp:
    """A timezone-aware UTC timestamp; naive input is taken as UTC."""
    out = pd.Timestamp(ts)
    return out.tz_localize("UTC") if out.tzinfo is None else out.tz_convert("UTC")


MAX_SPAN_BARS = 2 * 525_600  # two years of 1m bars; the full grid plus warm-up is ~0.1 GiB per copy


def span_error(timeframe: str, days: float | None, bars: int | None, max_span_bars: int = MAX_SPAN_BARS) -> str | None:
    """Why a span of ``days`` or ``bars`` (else the timeframe's default) is too long for ``timeframe``, or None."""
    n = bars if bars is not None else (days or DEFAULT_SPAN_DAYS[timeframe]) * 1440 / get_timeframe(timeframe).minutes
    if n > max_span_bars:
        return (
            f"{timeframe}: the span is {n:,.0f} bars, more than max_span_bars={max_span_bars:,}; "
            "shorten the span or raise max_span_bars in the raw_candles config"
        )
    return None


# Shapes of the free-text choices a run's config may set (validated before any use, so an error only ever
# echoes a value of that shape): names, not paths, URLs or secrets.
NAME_PATTERN = r"^[A-Za-z0-9_]{1,64}$"  # feature sets, ccxt exchange ids
CALENDAR_PATTERN = r"^[A-Za-z0-9/_-]{2,32}$"  # 24/7, FX, XNYS, 24/5
DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:[0-9]{1,2})?)$"
TIME_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}(:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$"
)
