"""A seeded, offline candle generator with the texture of real exchange data.

Every candle is a pure function of ``(seed, symbol, timeframe, bar start)``: asking for a
different span returns identical candles where the spans overlap, which is what incremental
collection and the look-ahead checks rely on. The generator has

* a daily log-price walk with fat tails and a three-state volatility regime (calm, normal,
  turbulent) per symbol, shared by all timeframes so they agree at day boundaries;
* intraday paths as Brownian bridges between the daily levels, with high/low wicks;
* volume that rises with absolute returns and with the regime, turnover = volume x price;
* occasional missing bars (no trades) and flat bars (high == low), more often at 1m;
* optionally a planted edge (the known truth the research loop must find), still a pure function of
  the seed: ``persistent``, a hidden drift z (AR(1) with a memory of min(50, bars a day / 8) bars, unit
  variance) in the bar returns, ``r = vol x (strength x z + sqrt(1 - strength^2) x noise)``, visible in
  past returns; or ``one_bar``, bar returns that are AR(1) with coefficient ``-strength`` (mean
  reversion, one bar deep). Intraday only (the daily walk stays plain; the Brownian bridge to the next
  day's level removes a drift's daily mean, hence the memory well under a day). Without an edge the
  candles are exactly those of the plain generator.
"""

from __future__ import annotations

import zlib
from functools import lru_cache
from typing import Literal

import numpy as np
import pandas as pd

from trading_assets.candles import CANDLE_COLUMNS, empty_candles, normalize_candles
from trading_assets.timeframes import get_timeframe, to_utc, validate_symbol

ANCHOR = pd.Timestamp("2015-01-01", tz="UTC")
_N_DAYS = 40_000  # daily walk length from ANCHOR (to the 2120s)
_REGIME_VOL = np.array([0.012, 0.03, 0.07])  # daily log-return volatility per regime
_REGIME_STAY = 0.97
_DAILY_TURNOVER = 5e10  # quote currency traded per day in the normal regime
_DRIFT_MEMORY_BARS = 50.0  # the planted persistent drift's memory (AR(1) coefficient exp(-1 / memory))
Edge = Literal["none", "persistent", "one_bar"]
EDGES: tuple[str, ...] = ("none", "persistent", "one_bar")


def _symbol_key(symbol: str) -> int:
    return zlib.crc32(symbol.encode())


@lru_cache(maxsize=32)
def _daily_walk(seed: int, symbol: str) -> tuple[np.ndarray, np.ndarray]:
    """Log price at the start of each day since ANCHOR, and each day's volatility."""
    rng = np.random.default_rng([seed, _symbol_key(symbol), 0])
    switch = rng.random(_N_DAYS) > _REGIME_STAY
    jumps = rng.integers(1, 3, _N_DAYS)
    regime = np.empty(_N_DAYS, dtype=np.int64)
    state = 1
    for day in range(_N_DAYS):  # 40k steps once per symbol; cached
        if switch[day]:
            state = (state + jumps[day]) % 3
        regime[day] = state
    vol = _REGIME_VOL[regime]
    shocks = rng.standard_t(4, _N_DAYS) / np.sqrt(2.0)  # unit variance, fat tails
    level0 = np.log(10.0 ** (3 + _symbol_key(symbol) % 5))
    log_price = level0 + np.concatenate([[0.0], np.cumsum(vol[:-1] * shocks[:-1])])
    return log_price, vol


class SyntheticSource:
    """Deterministic synthetic candles for any well-formed symbol."""

    def __init__(
        self,
        seed: int = 7,
        missing_rate: float = 0.01,
        flat_rate: float = 0.03,
        edge: Edge = "none",
        edge_strength: float = 0.0,
    ) -> None:
        if edge not in EDGES:
            raise ValueError(f"unknown planted edge {edge!r}; expected one of {', '.join(EDGES)}")
        if not 0 <= edge_strength < 1:
            raise ValueError(f"edge_strength {edge_strength}: allowed 0 <= edge_strength < 1")
        planted = edge != "none" and edge_strength > 0
        self.name = f"synthetic(seed={seed}" + (f", edge={edge}:{edge_strength:g})" if planted else ")")
        self.seed = seed
        self.missing_rate = missing_rate
        self.flat_rate = flat_rate
        self.edge: Edge = edge if planted else "none"
        self.edge_strength = edge_strength if planted else 0.0

    def fetch(self, symbol: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        validate_symbol(symbol)
        tf = get_timeframe(timeframe)
        start, end = to_utc(start), to_utc(end)
        if end <= start:
            return empty_candles()
        first_day = max(int((start.floor("D") - ANCHOR) / pd.Timedelta(days=1)), 0)
        last_day = min(int(((end - pd.Timedelta(1)).floor("D") - ANCHOR) / pd.Timedelta(days=1)), _N_DAYS - 2)
        if last_day < first_day:
            return empty_candles()
        parts = [self._day(symbol, tf.minutes, day) for day in range(first_day, last_day + 1)]
        frame = pd.concat(parts) if len(parts) > 1 else parts[0]
        frame = frame.loc[(frame.index >= start) & (frame.index < end)]
        return normalize_candles(frame, symbol, timeframe)

    def _day(self, symbol: str, minutes: int, day: int) -> pd.DataFrame:
        log_price, vol = _daily_walk(self.seed, symbol)
        n = 1440 // minutes if minutes < 1440 else 1
        rng = np.random.default_rng([self.seed, _symbol_key(symbol), minutes, day])
        bar_vol = vol[day] / np.sqrt(n)
        steps = rng.standard_normal(n) * bar_vol
        if self.edge != "none" and n > 1:
            steps = self._plant(steps, bar_vol, symbol, minutes, day)
        path = np.cumsum(steps)
        drift = log_price[day + 1] - log_price[day]
        path += (drift - path[-1]) * np.arange(1, n + 1) / n  # Brownian bridge to the next day's level
        close = np.exp(log_price[day] + path)
        open_ = np.exp(log_price[day] + np.concatenate([[0.0], path[:-1]]))
        wick = np.abs(rng.standard_normal((2, n))) * bar_vol * 0.6
        high = np.maximum(open_, close) * np.exp(wick[0])
        low = np.minimum(open_, close) * np.exp(-wick[1])
        daily_volume = _DAILY_TURNOVER / np.exp(log_price[day])
        volume = daily_volume / n * rng.lognormal(0.0, 0.6, n) * (1 + 4 * np.abs(steps) / max(bar_vol, 1e-12)) / 3
        volume *= vol[day] / _REGIME_VOL[1]
        if minutes < 1440:
            scale = 1 / minutes  # quieter bars are rarer on longer timeframes
            flat = rng.random(n) < self.flat_rate * scale
            open_[flat] = high[flat] = low[flat] = close[flat]
            volume[flat] *= 0.05
            keep = rng.random(n) >= self.missing_rate * scale
        else:
            keep = np.ones(n, dtype=bool)
        start = ANCHOR + pd.Timedelta(days=day)
        index = pd.date_range(start, periods=n, freq=f"{minutes}min", name="open_time", unit="ns")
        value = volume * (open_ + high + low + close) / 4
        data = dict(zip(CANDLE_COLUMNS, (open_, high, low, close, volume, value)))
        return pd.DataFrame(data, index=index)[keep]

    def _plant(self, steps: np.ndarray, bar_vol: float, symbol: str, minutes: int, day: int) -> np.ndarray:
        """The day's bar returns with the planted edge (its own random stream: the plain draws are unchanged)."""
        rng = np.random.default_rng([self.seed, _symbol_key(symbol), minutes, day, 1])
        s = self.edge_strength
        noise = steps / max(bar_vol, 1e-300)
        if self.edge == "persistent":
            rho = float(np.exp(-1 / max(2.0, min(_DRIFT_MEMORY_BARS, len(steps) / 8))))
            shocks = rng.standard_normal(len(steps)) * np.sqrt(1 - rho**2)
            shocks[0] = rng.standard_normal()  # a stationary start
            from scipy.signal import lfilter  # here: importing scipy.signal costs ~0.8 s a process

            drift = lfilter([1.0], [1.0, -rho], shocks)
            return bar_vol * (s * drift + np.sqrt(1 - s**2) * noise)
        # one_bar: AR(1) with coefficient -s and unit variance, started in its stationary distribution
        innovations = noise * np.sqrt(1 - s**2)
        innovations[0] = noise[0]
        from scipy.signal import lfilter

        return bar_vol * lfilter([1.0], [1.0, s], innovations)
