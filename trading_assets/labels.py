"""The label: what every model predicts, defined once (numpy only, so serving needs nothing more).

``target[t] = log(close[t + 1] / close[t])``, the next candle's log return, is the features
asset's label column. A model with horizon h predicts ``sum(target[t .. t + h - 1])`` at row t.
"""

from __future__ import annotations

import numpy as np

TARGET = "target"


def next_log_return(close: np.ndarray) -> np.ndarray:
    """``target`` per row: NaN on the last row, which has no next candle."""
    out = np.full(len(close), np.nan)
    out[:-1] = np.log(close[1:] / close[:-1])
    return out


def forward_labels(target: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the ``horizon``-candle return after it (label) and the one up to it (last return)."""
    csum = np.concatenate([[0.0], np.cumsum(np.asarray(target, dtype="float64"))])
    n = len(target)
    labels = np.full(n, np.nan)
    labels[: n - horizon + 1] = csum[horizon:] - csum[: n - horizon + 1]  # sum(target[t .. t+h-1])
    last = np.full(n, np.nan)
    last[horizon:] = csum[horizon:n] - csum[: n - horizon]  # sum(target[t-h .. t-1]) = return into t
    return labels, last
