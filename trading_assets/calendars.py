"""Trading sessions: which bars a market is expected to have.

A calendar is named by a string:

* ``24/7`` (the default, crypto): every bar of the timeframe's grid;
* ``FX``: the currency market, open from Sunday 17:00 to Friday 17:00 New York time (24/5);
* any calendar of the exchange-calendars library, e.g. ``XNYS`` (New York Stock Exchange), ``XLON``,
  ``XKRX``, ``24/5`` (weekdays, UTC midnight to midnight).

A bar is in session when any minute of it is a trading minute; a daily bar is in session when its UTC
date is a session of the calendar (FX: Monday to Friday). Bars outside sessions are neither expected,
filled nor counted; the warm-up, the bar grid and annualisation count session bars only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from trading_assets.timeframes import Timeframe, get_timeframe, to_utc

if TYPE_CHECKING:
    import exchange_calendars as xcals

ALWAYS_OPEN = "24/7"
FX = "FX"
_FX_ZONE = "America/New_York"


@lru_cache(maxsize=16)
def _exchange(name: str) -> xcals.ExchangeCalendar:
    import exchange_calendars as xcals  # on first use: 0.15 s of imports a 24/7 market never needs

    return xcals.get_calendar(name)


def validate_calendar(name: str) -> str:
    """Return ``name`` if it is a known calendar, else raise naming the choices."""
    if name in (ALWAYS_OPEN, FX):
        return name
    import exchange_calendars as xcals

    if name in xcals.get_calendar_names(include_aliases=True):
        return name
    raise ValueError(
        f"unknown trading calendar {name!r}: use '{ALWAYS_OPEN}', '{FX}' or an exchange-calendars name "
        "such as XNYS, XLON, XKRX, 24/5"
    )


@dataclass(frozen=True)
class TradingCalendar:
    """The sessions of one market, as bar grids of any timeframe."""

    name: str = ALWAYS_OPEN

    def __post_init__(self) -> None:
        validate_calendar(self.name)

    @property
    def always_open(self) -> bool:
        return self.name == ALWAYS_OPEN

    def _fx_open(self, minutes: pd.DatetimeIndex) -> np.ndarray:
        local = minutes.tz_convert(_FX_ZONE)
        day, hour = local.dayofweek.to_numpy(), local.hour.to_numpy()
        return (day < 4) | ((day == 4) & (hour < 17)) | ((day == 6) & (hour >= 17))

    def grid(self, timeframe: str | Timeframe, start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
        """Session bar starts in ``[start, end)`` on the timeframe's (epoch-aligned) grid."""
        tf = timeframe if isinstance(timeframe, Timeframe) else get_timeframe(timeframe)
        full = tf.grid(start, end)
        if self.always_open or full.empty:
            return full
        if tf.minutes == 1440:
            if self.name == FX:
                return full[full.dayofweek < 5]
            cal = _exchange(self.name)
            lo, hi = (
                max(full[0], cal.first_session.tz_localize("UTC")),
                min(full[-1], cal.last_session.tz_localize("UTC")),
            )
            sessions = cal.sessions_in_range(lo.tz_localize(None), hi.tz_localize(None)) if lo <= hi else []
            return full[full.isin(pd.DatetimeIndex(sessions).tz_localize("UTC"))]
        if self.name == FX:
            minutes = pd.date_range(full[0], full[-1] + tf.delta, freq="1min", inclusive="left", unit="ns")
            open_bars = minutes[self._fx_open(minutes)].floor(tf.freq).unique()
        else:
            cal = _exchange(self.name)
            lo = max(full[0], cal.first_minute)
            hi = min(full[-1] + tf.delta - pd.Timedelta(minutes=1), cal.last_minute)
            minutes = cal.minutes_in_range(lo, hi) if lo <= hi else pd.DatetimeIndex([], tz="UTC")
            open_bars = pd.DatetimeIndex(minutes).floor(tf.freq).unique()
        return full[full.isin(open_bars)]

    def start_before(self, timeframe: str, end: pd.Timestamp, bars: int) -> pd.Timestamp:
        """The start of the ``bars``-th session bar before ``end`` (the warm-up start, counted in session bars)."""
        tf = get_timeframe(timeframe)
        end = to_utc(end)
        if bars <= 0:
            return end
        if self.always_open:
            return end - bars * tf.delta
        reach = bars * tf.delta * 2 + pd.Timedelta(days=7)
        while True:
            grid = self.grid(tf, end - reach, end)
            if len(grid) >= bars or reach > pd.Timedelta(days=365 * 40):
                return grid[-bars] if len(grid) >= bars else end - reach
            reach *= 2

    def bars_per_year(self, timeframe: str) -> float:
        """Session bars in a year (the annualisation of per-bar returns): 365 days around the clock for 24/7,
        the count over the last complete calendar year otherwise."""
        tf = get_timeframe(timeframe)
        if self.always_open:
            return tf.bars_per_year
        year = pd.Timestamp.now(tz="UTC").year - 1
        return float(
            len(self.grid(tf, pd.Timestamp(f"{year}-01-01", tz="UTC"), pd.Timestamp(f"{year + 1}-01-01", tz="UTC")))
        )


@lru_cache(maxsize=32)
def get_calendar(name: str = ALWAYS_OPEN) -> TradingCalendar:
    """The calendar named ``name`` (see the module doc)."""
    return TradingCalendar(name)
