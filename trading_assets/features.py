"""From indicators to a model-ready float32 matrix: pollution, derivation, gaps, outliers, scaling.

Every step is causal: the value of a feature at time t uses indicator rows at or before t only.

1. Dtype pollution (:mod:`trading_assets.cleaning`): non-numeric cells in expected columns
   become missing and are counted; above ``max_polluted_fraction`` of a column the step stops
   with an error naming symbol, timeframe, column and examples. Unexpected columns are dropped
   and reported.
2. Derivation: stationary, scale-free features (log returns, prices relative to close,
   oscillators as they are, OBV as a 20-bar flow ratio).
3. Missing values (coerced cells, 0/0): forward fill with a limit; never a backward fill.
   Rows still incomplete after that are dropped and counted.
4. Outliers: each column is clipped to ``median +- k x scale`` (scale: MAD-sigma, floored by the
   mean absolute deviation, see :func:`clip_matrix`) of the previous block of
   ``clip_window`` rows (tumbling, trailing); the first block is left as is.
5. Scaling: z-score with mean/std fit on an explicit fit span (by default the chronological
   train span of :func:`trading_assets.splits.chronological_split`) and returned as
   :class:`Scaler`, so training and inference scale identically.
6. ``target``: the next candle's log return ``log(close[t+1] / close[t])`` (the label, the only
   column that looks ahead, by definition); the last row has none and is dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import talib

from trading_assets.candles import CANDLE_COLUMNS
from trading_assets.cleaning import PollutionReport, coerce_numeric
from trading_assets.errors import CandleDataError
from trading_assets.indicators import INDICATOR_COLUMNS
from trading_assets.splits import chronological_split

INPUT_COLUMNS: tuple[str, ...] = (*CANDLE_COLUMNS, *INDICATOR_COLUMNS)
TARGET = "target"
MAD_TO_SIGMA = 1.4826
MEAN_AD_TO_SIGMA = 1.2533  # sqrt(pi / 2): mean absolute deviation -> sigma for a normal distribution


@dataclass(frozen=True)
class FeatureConfig:
    ffill_limit: int = 5
    clip_window: int = 240
    clip_k: float = 6.0
    max_polluted_fraction: float = 0.01
    train_fraction: float = 0.7
    validation_fraction: float = 0.15
    split_gap: int = 64


@dataclass(frozen=True)
class Scaler:
    """Per-column z-score parameters and the span they were fit on."""

    columns: list[str]
    mean: list[float]
    std: list[float]
    fit_start: str
    fit_end: str

    def apply(self, values: np.ndarray, columns: list[str]) -> None:
        """Scale ``values`` (rows x ``columns``) in place; the columns must be the ones fit."""
        if list(columns) != self.columns:
            raise ValueError(f"scaler fit on {self.columns}, asked to scale {list(columns)}")
        values -= np.asarray(self.mean)
        values /= np.asarray(self.std)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scaler:
        return cls(**data)

    @classmethod
    def fit(
        cls, values: np.ndarray, index: pd.DatetimeIndex, columns: list[str], start: pd.Timestamp, end: pd.Timestamp
    ) -> Scaler:
        """Fit on the rows of ``values`` whose time lies in ``[start, end]``."""
        lo, hi = index.searchsorted(start), index.searchsorted(end, side="right")
        if hi <= lo:
            raise ValueError(f"scaler fit span [{start}, {end}] holds no rows")
        span = values[lo:hi]
        mean = span.mean(axis=0)
        std = span.std(axis=0)
        std = np.where(std > 0, std, 1.0)  # a constant column stays 0 after centring; the features check flags it
        return cls(list(columns), mean.tolist(), std.tolist(), start.isoformat(), end.isoformat())


@dataclass
class FeatureReport:
    """What preprocessing did, per column."""

    pollution: PollutionReport = field(default_factory=PollutionReport)
    non_finite: dict[str, int] = field(default_factory=dict)
    filled: dict[str, int] = field(default_factory=dict)
    clipped: dict[str, int] = field(default_factory=dict)
    rows_dropped: int = 0


@dataclass
class FeatureResult:
    frame: pd.DataFrame
    scaler: Scaler
    report: FeatureReport


def _diff(a: np.ndarray, lag: int) -> np.ndarray:
    out = np.full_like(a, np.nan)
    out[lag:] = a[lag:] - a[:-lag]
    return out


def _feature_columns(col: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    c, volume = col["close"], col["volume"]
    log_c = np.log(c)
    vol_sum_20 = talib.SUM(volume, 20)
    bb_range = col["bb_upper_20"] - col["bb_lower_20"]
    obv_flow = np.where(vol_sum_20 > 0, _diff(col["obv"], 20) / vol_sum_20, 0.0)
    obv_flow[np.isnan(vol_sum_20)] = np.nan
    return {
        "ret_1": _diff(log_c, 1),
        "ret_5": _diff(log_c, 5),
        "ret_20": _diff(log_c, 20),
        "range_hl": np.log(col["high"] / col["low"]),
        "body": np.log(c / col["open"]),
        "log_volume": np.log1p(volume),
        "volume_ratio": volume / col["volume_sma_20"],
        "sma_5_rel": col["sma_5"] / c - 1,
        "sma_20_rel": col["sma_20"] / c - 1,
        "ema_12_rel": col["ema_12"] / c - 1,
        "ema_26_rel": col["ema_26"] / c - 1,
        "macd_rel": col["macd"] / c,
        "macd_signal_rel": col["macd_signal"] / c,
        "macd_hist_rel": col["macd_hist"] / c,
        "rsi_14": col["rsi_14"],
        "bb_position": np.where(bb_range > 0, (c - col["bb_lower_20"]) / bb_range, 0.5),
        "bb_width": bb_range / col["bb_middle_20"],
        "atr_rel": col["atr_14"] / c,
        "stoch_k": col["stoch_k"],
        "stoch_d": col["stoch_d"],
        "mfi_14": col["mfi_14"],
        "obv_flow_20": obv_flow,
        "sar_rel": col["sar"] / c - 1,
        "cci_20": col["cci_20"],
        "adx_14": col["adx_14"],
        "willr_14": col["willr_14"],
        "volume_rsi_14": col["volume_rsi_14"],
        "roc_10": col["roc_10"],
    }


with np.errstate(divide="ignore", invalid="ignore"):
    FEATURE_COLUMNS: tuple[str, ...] = tuple(_feature_columns({c: np.ones(30) for c in INPUT_COLUMNS}))


FeatureFn = Callable[[dict[str, np.ndarray]], np.ndarray]
_EXTRA_FEATURES: dict[str, FeatureFn] = {}


def register_feature(name: str, fn: FeatureFn) -> None:
    """Add a feature computed from the indicator columns (float64 arrays by name).

    It goes through the same cleaning, clipping and scaling as the built-in ones, and through the
    look-ahead check on ``features``, which fails if it uses any row after t.
    """
    if name in FEATURE_COLUMNS or name == TARGET:
        raise ValueError(f"feature name {name!r} is taken")
    _EXTRA_FEATURES[name] = fn


def unregister_feature(name: str) -> None:
    _EXTRA_FEATURES.pop(name, None)


def derive_matrix(ind: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """Scale-free features from candles and indicators (all trailing), as a column-major matrix."""
    col = {c: ind[c].to_numpy(dtype="float64") for c in INPUT_COLUMNS}
    with np.errstate(divide="ignore", invalid="ignore"):
        columns = _feature_columns(col)
        columns.update({name: np.asarray(fn(col), dtype="float64") for name, fn in _EXTRA_FEATURES.items()})
    out = np.empty((len(ind), len(columns)), dtype="float64", order="F")
    for j, values in enumerate(columns.values()):
        out[:, j] = values
    return list(columns), out


def _median_inplace(blocks: np.ndarray) -> np.ndarray:
    """Median over the last axis, partitioning ``blocks`` in place (much faster than ``np.median``)."""
    w = blocks.shape[-1]
    blocks.partition((w - 1) // 2 if w % 2 else (w // 2 - 1, w // 2), axis=-1)
    return blocks[..., w // 2] if w % 2 else (blocks[..., w // 2 - 1] + blocks[..., w // 2]) / 2


def clip_matrix(values: np.ndarray, window: int, k: float) -> np.ndarray:
    """Clip ``values`` (rows x columns) in place to median +- k x scale of the previous block of rows.

    scale = max(1.4826 x MAD, 1.2533 x mean absolute deviation from the median): both estimate
    sigma for normal data; the second keeps zero-inflated columns from being clipped to nothing.

    Returns the number of clipped cells per column. Thresholds are computed in float32 (they are
    thresholds, not data); the data keeps its dtype.
    """
    n, n_cols = values.shape
    n_blocks = n // window
    clipped = np.zeros(n_cols, dtype=np.int64)
    if n_blocks < 1 or n <= window:
        return clipped
    # (column, block, row-in-block): contiguous along the block so the partitions are fast
    blocks = np.ascontiguousarray(values[: n_blocks * window].T.reshape(n_cols, n_blocks, window), dtype=np.float32)
    median = _median_inplace(blocks)
    np.subtract(blocks, median[..., None], out=blocks)
    np.abs(blocks, out=blocks)
    # Scale: MAD, floored by the mean absolute deviation. Exchange data is zero-inflated (flat and
    # filled bars): there the MAD collapses towards 0 and would clip ordinary moves.
    mean_ad = blocks.mean(axis=-1) * MEAN_AD_TO_SIGMA
    mad = np.maximum(_median_inplace(blocks) * MAD_TO_SIGMA, mean_ad)
    lo, hi = (median - k * mad).astype("float64"), (median + k * mad).astype("float64")  # (column, block)
    flat = mad == 0  # a block without spread gives no scale: no clipping
    lo[flat], hi[flat] = -np.inf, np.inf
    for j in range(n_cols):  # block b is clipped with the thresholds of block b - 1
        column = values[:, j]
        low = np.repeat(lo[j], window)[: n - window]
        high = np.repeat(hi[j], window)[: n - window]
        low = np.concatenate([low, np.full(n - window - len(low), lo[j, -1])])
        high = np.concatenate([high, np.full(n - window - len(high), hi[j, -1])])
        body = column[window:]
        clipped[j] = np.count_nonzero((body < low) | (body > high))
        np.clip(body, low, high, out=body)
    return clipped


def clip_outliers(frame: pd.DataFrame, window: int, k: float) -> tuple[pd.DataFrame, dict[str, int]]:
    """:func:`clip_matrix` on a copy of ``frame``; returns it with the clipped counts per column."""
    values = frame.to_numpy(dtype="float64", copy=True)
    clipped = clip_matrix(values, window, k)
    return pd.DataFrame(values, index=frame.index, columns=frame.columns), dict(zip(frame.columns, clipped.tolist()))


def default_fit_span(index: pd.DatetimeIndex, config: FeatureConfig) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The chronological train span of the feature rows, as training will split them."""
    split = chronological_split(len(index), config.train_fraction, config.validation_fraction, config.split_gap)
    return index[split.train.start], index[split.train.stop - 1]


def _forward_fill(values: np.ndarray, limit: int) -> np.ndarray:
    """Forward-fill NaN in place, at most ``limit`` in a row, column by column; returns counts filled."""
    filled = np.zeros(values.shape[1], dtype=np.int64)
    for j in np.flatnonzero(np.isnan(values).any(axis=0)):
        column = pd.Series(values[:, j])
        before = int(column.isna().sum())
        values[:, j] = column.ffill(limit=limit).to_numpy() if limit else column.to_numpy()
        filled[j] = before - int(np.isnan(values[:, j]).sum())
    return filled


def build_features(
    indicators: pd.DataFrame,
    symbol: str,
    timeframe: str,
    config: FeatureConfig = FeatureConfig(),
    scaler: Scaler | None = None,
    fit_span: tuple[pd.Timestamp, pd.Timestamp] | None = None,
) -> FeatureResult:
    """The features frame (float32 features + ``target``) for one partition.

    Pass ``scaler`` to apply fixed scaling parameters (inference, causality checks); otherwise a
    scaler is fit on ``fit_span`` (default: :func:`default_fit_span`).
    """
    report = FeatureReport()
    ind, report.pollution = coerce_numeric(indicators, INPUT_COLUMNS, symbol, timeframe, config.max_polluted_fraction)
    if len(ind) < 3:
        raise CandleDataError(symbol, timeframe, f"only {len(ind)} indicator rows; cannot build features")
    names, values = derive_matrix(ind)
    non_finite = np.isinf(values)
    report.non_finite = {c: int(n) for c, n in zip(names, non_finite.sum(axis=0)) if n}
    if report.non_finite:
        values[non_finite] = np.nan
    report.filled = {c: int(n) for c, n in zip(names, _forward_fill(values, config.ffill_limit)) if n}

    close = ind["close"].to_numpy(dtype="float64")
    target = np.full(len(close), np.nan)
    target[:-1] = np.log(close[1:] / close[:-1])
    complete = ~np.isnan(values).any(axis=1) & ~np.isnan(target)
    report.rows_dropped = int((~complete).sum()) - 1  # the last row never has a target
    first = int(np.argmax(complete))
    if complete[first:].sum() == len(complete) - first - 1:  # usual case: a leading run of incomplete rows
        rows = slice(first, len(complete) - 1)
    else:
        rows = np.flatnonzero(complete)
    values, target, index = values[rows], target[rows], ind.index[rows]

    report.clipped = {c: int(n) for c, n in zip(names, clip_matrix(values, config.clip_window, config.clip_k)) if n}
    if scaler is None:
        try:
            start, end = fit_span or default_fit_span(index, config)
        except ValueError as exc:
            raise CandleDataError(
                symbol, timeframe, f"{exc}; request a longer span or set an explicit fit span"
            ) from exc
        scaler = Scaler.fit(values, index, names, start, end)
    out = np.empty((len(index), len(names) + 1), dtype="float32", order="F")
    scaler.apply(values, names)
    out[:, :-1] = values
    out[:, -1] = target
    return FeatureResult(pd.DataFrame(out, index=index, columns=[*names, TARGET]), scaler, report)
