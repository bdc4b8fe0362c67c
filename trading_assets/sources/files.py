"""Candles from CSV, Parquet or JSON files a user already has.

One file per symbol and timeframe, found as ``<directory>/<symbol>_<timeframe>.<ext>`` with ext
``parquet``, ``csv`` or ``json`` (the pattern is configurable). Files as pandas writes them are read:
``df.to_csv()`` (the index, named or not, as the first column) and ``df.to_parquet()`` (a
``DatetimeIndex``, named or not). Expected columns (case-insensitive), with the aliases mapped automatically:

============  ==========================================================================
open_time     timestamp, time, date, datetime, candle_date_time_utc, open_time_ms, or the index
open          o, opening_price          high    h, high_price
low           l, low_price              close   c, trade_price, closing_price
volume        v, vol, candle_acc_trade_volume, base_volume
value         quote_volume, turnover, amount, candle_acc_trade_price  (optional)
adj_close     adj close, adj_close, adjusted_close  (used only with ``adjusted="use"``)
============  ==========================================================================

``open_time`` is the bar's start: epoch seconds/milliseconds/microseconds (told apart by size)
or date-time text; text without an offset is in ``timezone`` (default UTC). A JSON file is a list of
``[open_time_ms, open, high, low, close, volume]`` rows (freqtrade's format), parsed with exact floats.
Without a ``value`` column the turnover is estimated as volume x typical price, and a warning says so.
With ``adjusted="use"`` prices are scaled by ``adj_close / close`` (close becomes the adjusted close);
with ``"ignore"`` (the default) an ``Adj Close`` column is left out, and a warning says so.

A bar with an invalid value (missing or non-numeric cell, high < low, negative volume, ...) is left out
and described in the result's ``attrs["invalid_bars"]``: the store never holds it and raw_candles treats
it as missing. When the file of a timeframe is missing, the finest finer timeframe on disk that divides it
is aggregated as the exchange does (first open, max high, min low, last close, summed volume and value;
bars aligned to the epoch, days to 00:00 UTC).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from trading_assets.candles import CANDLE_COLUMNS, drop_invalid_bars
from trading_assets.errors import CandleDataError, UnknownSymbolError
from trading_assets.timeframes import TIMEFRAMES, get_timeframe, to_utc, validate_symbol, validate_timeframe

log = logging.getLogger(__name__)

ALIASES: dict[str, tuple[str, ...]] = {
    "open_time": ("open_time", "timestamp", "time", "date", "datetime", "candle_date_time_utc", "open_time_ms"),
    "open": ("open", "o", "opening_price"),
    "high": ("high", "h", "high_price"),
    "low": ("low", "l", "low_price"),
    "close": ("close", "c", "trade_price", "closing_price"),
    "volume": ("volume", "v", "vol", "candle_acc_trade_volume", "base_volume"),
    "value": ("value", "quote_volume", "turnover", "amount", "candle_acc_trade_price"),
    "adj_close": ("adj close", "adj_close", "adjclose", "adjusted_close"),
}
OPTIONAL = ("value", "adj_close")
INDEX_NAMES = ("", "index", "unnamed: 0")  # what pandas calls an unnamed index after to_csv()/reset_index()
EXTENSIONS = ("parquet", "csv", "json")
Adjusted = Literal["ignore", "use"]


def _epoch_unit(values: np.ndarray) -> str:
    magnitude = np.nanmax(np.abs(values)) if len(values) else 0
    return "us" if magnitude > 1e14 else "ms" if magnitude > 1e11 else "s"


def _accepted() -> str:
    return "; ".join(f"{k}: {', '.join(v)}" for k, v in ALIASES.items())


MAX_FILE_BYTES = 1 << 30  # a candle file larger than this is refused before it is opened
MAX_FILE_ROWS = 10_000_000  # ~19 years of 1m bars; checked from Parquet's metadata, counted while streaming CSV
BATCH_ROWS = 1 << 18  # rows read at a time: memory follows the requested window, not the file


def _raw_batches(path: Path, symbol: str, timeframe: str) -> Iterator[pd.DataFrame]:
    """The file's rows in batches (Parquet row groups, CSV chunks; a JSON file at once), within the bounds."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise CandleDataError(symbol, timeframe, f"candle file {path} is {size:,} bytes, more than {MAX_FILE_BYTES:,}")
    try:
        if path.suffix == ".parquet":
            parquet = pq.ParquetFile(path)
            if parquet.metadata.num_rows > MAX_FILE_ROWS:
                raise CandleDataError(
                    symbol, timeframe, f"candle file {path} holds {parquet.metadata.num_rows:,} rows, more than "
                    f"{MAX_FILE_ROWS:,}; split it"
                )  # fmt: skip
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
                raw = batch.to_pandas()
                yield raw.reset_index() if isinstance(raw.index, pd.DatetimeIndex) else raw
            return
        if path.suffix == ".json":
            raw = pd.read_json(path, orient="values", precise_float=True)
            raw.columns = ["open_time", "open", "high", "low", "close", "volume"][: raw.shape[1]]
            chunks: Iterator[pd.DataFrame] = iter([raw])
        else:
            chunks = pd.read_csv(path, float_precision="round_trip", chunksize=BATCH_ROWS)
        rows = 0
        for raw in chunks:
            rows += len(raw)
            if rows > MAX_FILE_ROWS:
                raise CandleDataError(symbol, timeframe, f"candle file {path} holds more than {MAX_FILE_ROWS:,} rows")
            yield raw
    except CandleDataError:  # a bound above: already says what is wrong
        raise
    except (pd.errors.EmptyDataError, ValueError, pa.ArrowException) as exc:
        raise CandleDataError(symbol, timeframe, f"cannot read candle file {path}: {exc}") from exc


def read_candle_file(
    path: Path,
    symbol: str,
    timeframe: str,
    timezone: str = "UTC",
    adjusted: Adjusted = "ignore",
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Read one file into the canonical candle frame, keeping bars in ``[start, end)`` (see the module doc).

    Bars with invalid values are left out and listed in ``attrs["invalid_bars"]``; a bar outside
    ``[start, end)`` is never inspected, so it never blocks the span.
    """
    parts = [
        _window(raw, path, symbol, timeframe, timezone, start, end) for raw in _raw_batches(path, symbol, timeframe)
    ]
    if not parts:
        raise CandleDataError(symbol, timeframe, f"candle file {path} is empty")
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    return _candles(frame, path, symbol, timeframe, adjusted)


def _window(
    raw: pd.DataFrame,
    path: Path,
    symbol: str,
    timeframe: str,
    timezone: str,
    start: pd.Timestamp | None,
    end: pd.Timestamp | None,
) -> pd.DataFrame:
    """One batch of the file: its columns mapped to the canonical names, times parsed, rows outside the window
    dropped."""
    if raw.empty and not len(raw.columns):
        raise CandleDataError(symbol, timeframe, f"candle file {path} is empty")
    lower = {str(c).strip().lower(): c for c in raw.columns}
    columns: dict[str, str] = {}
    for canonical, names in ALIASES.items():
        found = next((lower[n] for n in names if n in lower), None)
        if found is not None:
            columns[canonical] = found
    if "open_time" not in columns:
        first = raw.columns[0] if len(raw.columns) else None
        if first is not None and (str(first).strip().lower() in INDEX_NAMES or str(first).startswith("Unnamed")):
            columns["open_time"] = first
    missing = [c for c in ALIASES if c not in columns and c not in OPTIONAL]
    if missing:
        raise CandleDataError(
            symbol,
            timeframe,
            f"{path} lacks columns {missing} (has {[str(c) for c in raw.columns]}); accepted names: {_accepted()}",
            missing[0],
        )
    frame = raw[list(columns.values())].rename(columns={v: k for k, v in columns.items()})
    frame["open_time"] = _parse_times(frame["open_time"], path, symbol, timeframe, timezone)
    if start is not None and end is not None:
        frame = frame.loc[(frame["open_time"] >= to_utc(start)) & (frame["open_time"] < to_utc(end))]
    return frame


def _candles(frame: pd.DataFrame, path: Path, symbol: str, timeframe: str, adjusted: Adjusted) -> pd.DataFrame:
    """The canonical candle frame of the file's rows in the window, invalid bars left out and listed."""
    if "adj_close" in frame.columns:
        adj = frame.pop("adj_close")
        if adjusted == "use":
            factor = pd.to_numeric(adj, errors="coerce") / pd.to_numeric(frame["close"], errors="coerce")
            for col in ("open", "high", "low", "close"):
                frame[col] = pd.to_numeric(frame[col], errors="coerce") * factor
        else:
            log.warning(
                "%s %s: %s has an adjusted close; ignored (raw prices), set adjusted='use' to use it",
                symbol,
                timeframe,
                path,
            )
    if "value" not in frame.columns:
        log.warning(
            "%s %s: %s has no turnover column; estimating value = volume x typical price", symbol, timeframe, path
        )
        prices = frame[["high", "low", "close"]].apply(pd.to_numeric, errors="coerce")
        frame["value"] = pd.to_numeric(frame["volume"], errors="coerce") * prices.mean(axis=1)
    try:
        candles, invalid = drop_invalid_bars(frame[["open_time", *CANDLE_COLUMNS]], symbol, timeframe)
    except CandleDataError as exc:
        raise CandleDataError(symbol, timeframe, f"{path}: {exc.problem}", exc.column, exc.examples) from exc
    if invalid:
        log.warning(
            "%s %s: %s has %d bar(s) with invalid values, treated as missing: %s",
            symbol,
            timeframe,
            path,
            len(invalid),
            invalid[:5],
        )
    candles.attrs["invalid_bars"] = invalid
    return candles


def _parse_times(times: pd.Series, path: Path, symbol: str, timeframe: str, timezone: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(times):
        return pd.to_datetime(times, unit=_epoch_unit(times.to_numpy(dtype="float64")), utc=True)
    if isinstance(times.dtype, pd.DatetimeTZDtype):
        return times.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(times):
        return times.dt.tz_localize(timezone).dt.tz_convert("UTC")
    text = times.astype("string")
    aware = text.str.contains(r"(?:[+-]\d{2}:?\d{2}|Z)$", regex=True, na=False)
    parsed = pd.Series(pd.NaT, index=times.index, dtype="datetime64[ns, UTC]")
    try:
        if aware.any():
            parsed[aware] = pd.to_datetime(text[aware], utc=True, errors="coerce", format="mixed")
        if (~aware).any():
            naive = pd.to_datetime(text[~aware], errors="coerce", format="mixed")
            parsed[~aware] = naive.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    except (ValueError, TypeError) as exc:
        raise CandleDataError(symbol, timeframe, f"unparseable timestamps in {path} ({exc})", "open_time") from exc
    bad = parsed.isna() & times.notna()
    if bad.any():
        raise CandleDataError(
            symbol, timeframe, f"unparseable timestamps in {path}", "open_time", times[bad].head(5).tolist()
        )
    return parsed


def aggregate_candles(candles: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Candles of a finer timeframe aggregated to ``timeframe`` as an exchange does: first open, max high,
    min low, last close, summed volume and value; bars aligned to the Unix epoch (days to 00:00 UTC).
    A bar without any finer candle is absent, as on the exchange."""
    tf = get_timeframe(timeframe)
    rules = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum", "value": "sum"}
    grouped = candles.groupby(candles.index.floor(tf.freq))
    out = grouped.agg(rules)[list(CANDLE_COLUMNS)]
    out.index = pd.DatetimeIndex(out.index, name="open_time").as_unit("ns")
    return out


class FileSource:
    """Candles from files in a directory, one per symbol and timeframe."""

    name = "files"

    def __init__(
        self,
        directory: str | Path,
        pattern: str = "{symbol}_{timeframe}",
        timezone: str = "UTC",
        adjusted: Adjusted = "ignore",
    ) -> None:
        self.directory = Path(directory).expanduser().resolve()
        self.pattern = pattern
        self.timezone = timezone
        self.adjusted = adjusted

    def _candidates(self, symbol: str, timeframe: str) -> list[Path]:
        stem = self.pattern.format(symbol=validate_symbol(symbol), timeframe=validate_timeframe(timeframe))
        candidates = [self.directory / f"{stem}.{ext}" for ext in EXTENSIONS]
        if not all(p.resolve().is_relative_to(self.directory) for p in candidates):
            raise ValueError(f"candle file pattern {self.pattern!r} leaves the directory {self.directory}")
        return candidates

    def _find(self, symbol: str, timeframe: str) -> Path | None:
        return next((p for p in self._candidates(symbol, timeframe) if p.exists()), None)

    def path_for(self, symbol: str, timeframe: str) -> Path:
        """The file of one series: symbol and timeframe validated; the path, every link on it resolved, must
        be a regular file inside the directory (not a directory read as a dataset, not a link out)."""
        path = self._find(symbol, timeframe)
        if path is None:
            looked = [str(p) for p in self._candidates(symbol, timeframe)]
            raise UnknownSymbolError(symbol, timeframe, f"no candle file found (looked for {looked})")
        resolved = path.resolve(strict=True)
        if not resolved.is_relative_to(self.directory) or not resolved.is_file():
            raise CandleDataError(
                symbol, timeframe, f"{path} is not a regular file inside {self.directory}; refusing to read it"
            )
        return resolved

    def finer_source(self, symbol: str, timeframe: str) -> str | None:
        """The finest timeframe on disk that divides ``timeframe``, when its own file is missing."""
        if self._find(symbol, timeframe) is not None:
            return None
        minutes = get_timeframe(timeframe).minutes
        finer = [
            t for t in TIMEFRAMES if get_timeframe(t).minutes < minutes and minutes % get_timeframe(t).minutes == 0
        ]
        return next((t for t in finer if self._find(symbol, t) is not None), None)

    def fetch(self, symbol: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        validate_symbol(symbol)
        finer = self.finer_source(symbol, timeframe)
        if finer is None:
            path = self.path_for(symbol, timeframe)
            return read_candle_file(path, symbol, timeframe, self.timezone, self.adjusted, start, end)
        tf = get_timeframe(timeframe)
        path = self.path_for(symbol, finer)
        lo, hi = tf.floor(start), tf.floor(to_utc(end) - pd.Timedelta(1, "ns")) + tf.delta
        fine = read_candle_file(path, symbol, finer, self.timezone, self.adjusted, lo, hi)
        log.info("%s %s: aggregated from %s (%s)", symbol, timeframe, finer, path)
        out = aggregate_candles(fine, timeframe)
        out = out.loc[(out.index >= to_utc(start)) & (out.index < to_utc(end))]
        out.attrs["invalid_bars"] = fine.attrs.get("invalid_bars", [])
        return out
