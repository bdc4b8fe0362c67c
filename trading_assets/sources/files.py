"""Candles from CSV, Parquet or JSON files a user already has.

One file per symbol and timeframe, found as ``<directory>/<symbol>_<timeframe>.<ext>`` with ext
``parquet``, ``csv`` or ``json`` (the pattern is configurable). Expected columns, with the common
aliases that are mapped automatically:

============  ==========================================================================
open_time     timestamp, time, date, datetime, candle_date_time_utc, open_time_ms
open          o, opening_price          high    h, high_price
low           l, low_price              close   c, trade_price, closing_price
volume        v, vol, candle_acc_trade_volume, base_volume
value         quote_volume, turnover, amount, candle_acc_trade_price  (optional)
============  ==========================================================================

``open_time`` is the bar's start: epoch seconds/milliseconds/microseconds (told apart by size)
or date-time text; text without an offset is taken as UTC. A JSON file is a list of
``[open_time_ms, open, high, low, close, volume]`` rows (freqtrade's format). Without a
``value`` column the turnover is estimated as volume x typical price, and a warning says so.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from trading_assets.candles import CANDLE_COLUMNS, normalize_candles
from trading_assets.errors import CandleDataError, UnknownSymbolError
from trading_assets.timeframes import to_utc, validate_symbol, validate_timeframe

log = logging.getLogger(__name__)

ALIASES: dict[str, tuple[str, ...]] = {
    "open_time": ("open_time", "timestamp", "time", "date", "datetime", "candle_date_time_utc", "open_time_ms"),
    "open": ("open", "o", "opening_price"),
    "high": ("high", "h", "high_price"),
    "low": ("low", "l", "low_price"),
    "close": ("close", "c", "trade_price", "closing_price"),
    "volume": ("volume", "v", "vol", "candle_acc_trade_volume", "base_volume"),
    "value": ("value", "quote_volume", "turnover", "amount", "candle_acc_trade_price"),
}
EXTENSIONS = ("parquet", "csv", "json")


def _epoch_unit(values: np.ndarray) -> str:
    magnitude = np.nanmax(np.abs(values)) if len(values) else 0
    return "us" if magnitude > 1e14 else "ms" if magnitude > 1e11 else "s"


def read_candle_file(path: Path, symbol: str, timeframe: str) -> pd.DataFrame:
    """Read one file into the canonical candle frame (see the module doc for the columns)."""
    if path.suffix == ".parquet":
        raw = pd.read_parquet(path)
        if isinstance(raw.index, pd.DatetimeIndex):
            raw = raw.reset_index()
    elif path.suffix == ".json":
        raw = pd.read_json(path, orient="values")
        raw.columns = ["open_time", "open", "high", "low", "close", "volume"][: raw.shape[1]]
    else:
        raw = pd.read_csv(path)
    lower = {str(c).strip().lower(): c for c in raw.columns}
    columns: dict[str, str] = {}
    for canonical, names in ALIASES.items():
        found = next((lower[n] for n in names if n in lower), None)
        if found is not None:
            columns[canonical] = found
    missing = [c for c in ALIASES if c not in columns and c != "value"]
    if missing:
        raise CandleDataError(
            symbol, timeframe, f"{path} lacks columns {missing} (have {list(raw.columns)})", missing[0]
        )
    frame = raw[list(columns.values())].rename(columns={v: k for k, v in columns.items()})
    times = frame["open_time"]
    if pd.api.types.is_numeric_dtype(times):
        frame["open_time"] = pd.to_datetime(times, unit=_epoch_unit(times.to_numpy(dtype="float64")), utc=True)
    else:
        parsed = pd.to_datetime(times, utc=True, errors="coerce", format="mixed")
        bad = parsed.isna() & times.notna()
        if bad.any():
            raise CandleDataError(
                symbol, timeframe, f"unparseable timestamps in {path}", "open_time", times[bad].head(5).tolist()
            )
        frame["open_time"] = parsed
    if "value" not in frame.columns:
        log.warning(
            "%s %s: %s has no turnover column; estimating value = volume x typical price", symbol, timeframe, path
        )
        prices = frame[["high", "low", "close"]].apply(pd.to_numeric, errors="coerce")
        frame["value"] = pd.to_numeric(frame["volume"], errors="coerce") * prices.mean(axis=1)
    return normalize_candles(frame[["open_time", *CANDLE_COLUMNS]], symbol, timeframe)


class FileSource:
    """Candles from files in a directory, one per symbol and timeframe."""

    name = "files"

    def __init__(self, directory: str | Path, pattern: str = "{symbol}_{timeframe}") -> None:
        self.directory = Path(directory)
        self.pattern = pattern

    def path_for(self, symbol: str, timeframe: str) -> Path:
        """The file of one series; symbol and timeframe are validated, and the file must lie inside the directory."""
        stem = self.pattern.format(symbol=validate_symbol(symbol), timeframe=validate_timeframe(timeframe))
        candidates = [self.directory / f"{stem}.{ext}" for ext in EXTENSIONS]
        root = self.directory.resolve()
        if not all(p.resolve().is_relative_to(root) for p in candidates):
            raise ValueError(f"candle file pattern {self.pattern!r} leaves the directory {self.directory}")
        for path in candidates:
            if path.exists():
                return path
        raise UnknownSymbolError(symbol, timeframe, f"no candle file found (looked for {[str(p) for p in candidates]})")

    def fetch(self, symbol: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        candles = read_candle_file(self.path_for(symbol, timeframe), symbol, timeframe)
        return candles.loc[(candles.index >= to_utc(start)) & (candles.index < to_utc(end))]
