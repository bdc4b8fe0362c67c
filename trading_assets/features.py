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
4. Outliers: each column is clipped to ``median +- k x 1.4826 x MAD`` of the previous block of
   ``clip_window`` rows (tumbling, trailing); the first block is left as is.
5. Scaling: z-score with mean/std fit on an explicit fit span (by default the chronological
   train span of :func:`trading_assets.splits.chronological_split`) and returned as
   :class:`Scaler`, so training and inference scale identically.
6. ``target``: the next candle's log return ``log(close[t+1] / close[t])`` (the label, the only
   column that looks ahead, by definition); the last row has none and is dropped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from trading_assets.candles import CANDLE_COLUMNS
from trading_assets.cleaning import PollutionReport, coerce_numeric
from trading_assets.errors import CandleDataError
from trading_assets.indicators import INDICATOR_COLUMNS
from trading_assets.splits import chronological_split

INPUT_COLUMNS: tuple[str, ...] = (*CANDLE_COLUMNS, *INDICATOR_COLUMNS)
TARGET = "target"
MAD_TO_SIGMA = 1.4826


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

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        values = (frame[self.columns].to_numpy(dtype="float64") - np.asarray(self.mean)) / np.asarray(self.std)
        return pd.DataFrame(values.astype("float32"), index=frame.index, columns=self.columns)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scaler:
        return cls(**data)

    @classmethod
    def fit(cls, frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> Scaler:
        span = frame.loc[(frame.index >= start) & (frame.index <= end)]
        if span.empty:
            raise ValueError(f"scaler fit span [{start}, {end}] holds no rows")
        std = span.std(ddof=0).to_numpy()
        std = np.where(std > 0, std, 1.0)  # a constant column stays 0 after centring; the features check flags it
        return cls(list(frame.columns), span.mean().tolist(), std.tolist(), start.isoformat(), end.isoformat())


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


def derive_features(ind: pd.DataFrame) -> pd.DataFrame:
    """Scale-free features from candles and indicators (all trailing)."""
    c = ind["close"]
    log_c = np.log(c)
    vol_sum_20 = ind["volume"].rolling(20, min_periods=20).sum()
    bb_range = ind["bb_upper_20"] - ind["bb_lower_20"]
    f = {
        "ret_1": log_c.diff(),
        "ret_5": log_c.diff(5),
        "ret_20": log_c.diff(20),
        "range_hl": np.log(ind["high"] / ind["low"]),
        "body": np.log(c / ind["open"]),
        "log_volume": np.log1p(ind["volume"]),
        "volume_ratio": ind["volume"] / ind["volume_sma_20"],
        "sma_5_rel": ind["sma_5"] / c - 1,
        "sma_20_rel": ind["sma_20"] / c - 1,
        "ema_12_rel": ind["ema_12"] / c - 1,
        "ema_26_rel": ind["ema_26"] / c - 1,
        "macd_rel": ind["macd"] / c,
        "macd_signal_rel": ind["macd_signal"] / c,
        "macd_hist_rel": ind["macd_hist"] / c,
        "rsi_14": ind["rsi_14"],
        "bb_position": ((c - ind["bb_lower_20"]) / bb_range).where(bb_range > 0, 0.5),
        "bb_width": bb_range / ind["bb_middle_20"],
        "atr_rel": ind["atr_14"] / c,
        "stoch_k": ind["stoch_k"],
        "stoch_d": ind["stoch_d"],
        "mfi_14": ind["mfi_14"],
        "obv_flow_20": (ind["obv"].diff(20) / vol_sum_20).where(vol_sum_20 > 0, 0.0),
        "sar_rel": ind["sar"] / c - 1,
        "cci_20": ind["cci_20"],
        "adx_14": ind["adx_14"],
        "willr_14": ind["willr_14"],
        "volume_rsi_14": ind["volume_rsi_14"],
        "roc_10": ind["roc_10"],
    }
    return pd.DataFrame(f, index=ind.index)


def clip_outliers(frame: pd.DataFrame, window: int, k: float) -> tuple[pd.DataFrame, dict[str, int]]:
    """Clip each column to median +- k x MAD of the previous block of ``window`` rows."""
    values = frame.to_numpy(dtype="float64", copy=True)
    n_blocks = len(values) // window
    clipped = np.zeros(values.shape[1], dtype=np.int64)
    if n_blocks >= 1:
        blocks = values[: n_blocks * window].reshape(n_blocks, window, -1)
        median = np.median(blocks, axis=1)
        mad = np.median(np.abs(blocks - median[:, None, :]), axis=1) * MAD_TO_SIGMA
        lo = np.repeat(median - k * mad, window, axis=0)
        hi = np.repeat(median + k * mad, window, axis=0)
        lo[(np.repeat(mad, window, axis=0) == 0)] = -np.inf  # a flat block gives no scale: no clipping
        hi[np.isinf(lo)] = np.inf
        target = values[window:]  # block b is clipped with the thresholds of block b - 1
        lo, hi = lo[: len(target)], hi[: len(target)]
        clipped = ((target < lo) | (target > hi)).sum(axis=0)
        np.clip(target, lo, hi, out=target)
    return pd.DataFrame(values, index=frame.index, columns=frame.columns), dict(zip(frame.columns, clipped.tolist()))


def default_fit_span(index: pd.DatetimeIndex, config: FeatureConfig) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The chronological train span of the feature rows, as training will split them."""
    split = chronological_split(len(index), config.train_fraction, config.validation_fraction, config.split_gap)
    return index[split.train.start], index[split.train.stop - 1]


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
    raw = derive_features(ind)
    finite = np.isfinite(raw.to_numpy())
    report.non_finite = {c: n for c, n in zip(raw.columns, (~finite & raw.notna().to_numpy()).sum(axis=0).tolist()) if n}
    raw = raw.where(finite)
    missing_before = raw.isna().sum()
    raw = raw.ffill(limit=config.ffill_limit)
    report.filled = {c: int(n) for c, n in (missing_before - raw.isna().sum()).items() if n}

    target = np.log(ind["close"]).diff().shift(-1).rename(TARGET)
    complete = raw.notna().all(axis=1) & target.notna()
    report.rows_dropped = int((~complete).sum()) - 1  # the last row never has a target
    raw, target = raw[complete], target[complete]

    clipped, report.clipped = clip_outliers(raw, config.clip_window, config.clip_k)
    report.clipped = {c: n for c, n in report.clipped.items() if n}
    if scaler is None:
        start, end = fit_span or default_fit_span(clipped.index, config)
        scaler = Scaler.fit(clipped, start, end)
    frame = scaler.transform(clipped)
    frame[TARGET] = target.astype("float32")
    return FeatureResult(frame, scaler, report)
