"""The label: what every model predicts, defined once (numpy only, so serving needs nothing more).

``target[t]`` is the features asset's label column: the one-bar log return of the execution model's
fill price series from the trade's entry (:func:`trading_assets.execution.trade_returns`; by default
``log(open[t + 2] / open[t + 1])``, bought at the next bar's open). A model with horizon h predicts
``sum(target[t .. t + h - 1])`` at row t: the log return of the trade decided at t's close.
"""

from __future__ import annotations

import numpy as np

TARGET = "target"


def forward_labels(target: np.ndarray, horizon: int, entry_lag: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Per row t: the label (``sum(target[t .. t + horizon - 1])``) and the latest label already realised at t.

    The label of row s reads prices up to row ``s + entry_lag + horizon``, so the latest one known at t's
    close is the label of row ``t - entry_lag - horizon`` (what the AR(1) naive forecast regresses on).
    """
    csum = np.concatenate([[0.0], np.cumsum(np.asarray(target, dtype="float64"))])
    n = len(target)
    labels = np.full(n, np.nan)
    labels[: n - horizon + 1] = csum[horizon:] - csum[: n - horizon + 1]  # sum(target[t .. t+h-1])
    shift = entry_lag + horizon
    last = np.full(n, np.nan)
    if n > shift:
        last[shift:] = labels[: n - shift]
    return labels, last
