"""Backtest of a model's signal on held-out data: trade the sign of each forecast.

Positions are taken every ``horizon`` bars so that the returns of consecutive trades do not
overlap. Returns are log returns; costs are charged per unit of position change.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Backtest:
    trades: int
    total_log_return: float
    buy_and_hold_log_return: float
    sharpe_annualized: float
    hit_rate: float
    max_drawdown: float  # of the cumulative log return, >= 0
    turnover: float  # mean absolute position change per trade

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def sign_backtest(
    predictions: np.ndarray, realized: np.ndarray, horizon: int, periods_per_year: float, cost_per_unit: float = 0.0
) -> Backtest:
    """Long when the forecast is positive, short when negative, flat at zero; one trade per ``horizon``."""
    pred = np.asarray(predictions, dtype="float64")[::horizon]
    real = np.asarray(realized, dtype="float64")[::horizon]
    keep = np.isfinite(pred) & np.isfinite(real)
    pred, real = pred[keep], real[keep]
    if len(pred) == 0:
        raise ValueError("no finite prediction/realized pairs to backtest")
    position = np.sign(pred)
    changes = np.abs(np.diff(np.concatenate([[0.0], position])))
    strategy = position * real - cost_per_unit * changes
    equity = np.cumsum(strategy)
    drawdown = np.maximum.accumulate(np.concatenate([[0.0], equity]))[1:] - equity
    std = strategy.std(ddof=1) if len(strategy) > 1 else 0.0
    trades_per_year = periods_per_year / horizon
    traded = position != 0
    return Backtest(
        trades=int(len(strategy)),
        total_log_return=float(equity[-1]),
        buy_and_hold_log_return=float(real.sum()),
        sharpe_annualized=float(strategy.mean() / std * np.sqrt(trades_per_year)) if std > 0 else 0.0,
        hit_rate=float((np.sign(real[traded]) == position[traded]).mean()) if traded.any() else 0.0,
        max_drawdown=float(drawdown.max()),
        turnover=float(changes.mean()),
    )
