"""Honest numbers for out-of-sample forecasts: signal quality, significance, a costs-aware backtest.

Inputs are walk-forward predictions (one row per out-of-sample bar: forecast, realised label,
the next candle's return and the naive forecasts fit on that fold's train span). Everything here
is plain numpy / scipy / statsmodels:

* forecast accuracy: MSE ratio and out-of-sample R^2 against the zero, train-mean and AR(1)
  forecasts;
* signal: IC (Pearson), rank IC (Spearman) per day, their mean, and ICIR = mean / std of the
  daily values; directional accuracy on non-zero labels;
* significance: a Diebold-Mariano test of squared errors against the zero forecast, with a
  Newey-West (HAC) variance (statsmodels), one-sided (H1: the model's loss is lower);
* backtest: long / short on the sign of the forecast, acting ``delay`` bars after the bar that
  produced it, per-side fees on every position change, turnover, break-even cost, buy-and-hold,
  annualised with the bars per year of the timeframe.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

BASELINES = ("zero", "train_mean", "ar1")


@dataclass(frozen=True)
class Backtest:
    bars: int
    net_log_return: float
    gross_log_return: float
    buy_and_hold_log_return: float
    sharpe_annualized: float  # net of costs
    gross_sharpe_annualized: float
    net_return_t_stat: float  # HAC t-statistic of the mean net return per bar
    max_drawdown: float  # of the cumulative net log return, >= 0
    turnover: float  # mean absolute position change per bar
    break_even_cost_bp: float  # per-side fee at which the net return is zero
    fee_bp: float
    delay_bars: int

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def hac_mean_test(x: np.ndarray, max_lags: int | None = None) -> tuple[float, float]:
    """t-statistic and one-sided p-value (H1: mean > 0) of ``x``'s mean, Newey-West variance."""
    x = np.asarray(x, dtype="float64")
    if len(x) < 3 or not np.isfinite(x).all() or np.allclose(x, x[0]):
        return 0.0, 1.0
    lags = max_lags if max_lags is not None else int(math.floor(4 * (len(x) / 100) ** (2 / 9)))
    fit = sm.OLS(x, np.ones(len(x))).fit(cov_type="HAC", cov_kwds={"maxlags": lags})
    t = float(fit.tvalues[0])
    return t, float(stats.norm.sf(t))


def diebold_mariano(errors_model: np.ndarray, errors_benchmark: np.ndarray, horizon: int = 1) -> tuple[float, float]:
    """DM statistic and one-sided p-value that the model's squared-error loss is lower than the benchmark's."""
    d = np.asarray(errors_benchmark, dtype="float64") ** 2 - np.asarray(errors_model, dtype="float64") ** 2
    return hac_mean_test(d, max_lags=max(horizon - 1, int(math.floor(4 * (len(d) / 100) ** (2 / 9)))))


def daily_ic(open_time: pd.DatetimeIndex, prediction: np.ndarray, label: np.ndarray) -> pd.DataFrame:
    """Pearson IC and Spearman rank IC per UTC day (days with fewer than 3 varying pairs are left out)."""
    frame = pd.DataFrame({"p": prediction, "y": label}, index=open_time)
    rows = []
    for day, group in frame.groupby(frame.index.floor("D")):
        if len(group) < 3 or group["p"].nunique() < 2 or group["y"].nunique() < 2:
            continue
        rows.append(
            {
                "day": day,
                "ic": float(stats.pearsonr(group["p"], group["y"]).statistic),
                "rank_ic": float(stats.spearmanr(group["p"], group["y"]).statistic),
            }
        )
    return pd.DataFrame(rows, columns=["day", "ic", "rank_ic"])


def sign_strategy(
    prediction: np.ndarray, next_return: np.ndarray, fee_bp: float, delay: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per traded bar: position, realised return, position change, gross and net strategy return."""
    pred = np.asarray(prediction, dtype="float64")
    ret = np.asarray(next_return, dtype="float64")
    if len(pred) != len(ret) or len(pred) <= delay:
        raise ValueError(f"need more than {delay} forecast/return pairs, got {len(pred)}")
    position = np.sign(np.nan_to_num(pred))[: len(pred) - delay]
    realised = ret[delay:]
    keep = np.isfinite(realised)
    position, realised = position[keep], realised[keep]
    changes = np.abs(np.diff(np.concatenate([[0.0], position])))
    gross = position * realised
    return position, realised, changes, gross, gross - fee_bp / 1e4 * changes


def sign_backtest(
    prediction: np.ndarray,
    next_return: np.ndarray,
    bars_per_year: float,
    fee_bp: float,
    delay: int = 1,
) -> Backtest:
    """Trade the sign of each forecast, ``delay`` bars after it, paying ``fee_bp`` per side.

    ``next_return[t]`` is the log return from bar t's close to bar t + 1's close; the position
    taken on the forecast of bar t is held over ``next_return[t + delay]`` (delay 0 = filling at
    the close that produced the signal, which real trading cannot do).
    """
    position, realised, changes, gross, net = sign_strategy(prediction, next_return, fee_bp, delay)
    equity = np.cumsum(net)
    drawdown = np.maximum.accumulate(np.concatenate([[0.0], equity]))[1:] - equity
    turnover = float(changes.sum())
    t_stat, _ = hac_mean_test(net)

    def sharpe(x: np.ndarray) -> float:
        std = x.std(ddof=1) if len(x) > 1 else 0.0
        return float(x.mean() / std * np.sqrt(bars_per_year)) if std > 0 else 0.0

    return Backtest(
        bars=int(len(net)),
        net_log_return=float(net.sum()),
        gross_log_return=float(gross.sum()),
        buy_and_hold_log_return=float(realised.sum() - 2 * fee_bp / 1e4),
        sharpe_annualized=sharpe(net),
        gross_sharpe_annualized=sharpe(gross),
        net_return_t_stat=t_stat,
        max_drawdown=float(drawdown.max()) if len(drawdown) else 0.0,
        turnover=turnover / len(net) if len(net) else 0.0,
        break_even_cost_bp=float(gross.sum() / turnover * 1e4) if turnover > 0 else 0.0,
        fee_bp=float(fee_bp),
        delay_bars=int(delay),
    )


def evaluate_predictions(
    frame: pd.DataFrame, bars_per_year: float, fee_bp: float, delay: int = 1, horizon: int = 1
) -> dict[str, float]:
    """All metrics for one set of out-of-sample rows (columns of the ``predictions`` asset)."""
    y = frame["label"].to_numpy("float64")
    p = frame["prediction"].to_numpy("float64")
    errors = {"model": p - y, "zero": -y}
    errors["train_mean"] = frame["baseline_train_mean"].to_numpy("float64") - y
    errors["ar1"] = frame["baseline_ar1"].to_numpy("float64") - y
    mse = {k: float(np.mean(e**2)) for k, e in errors.items()}
    out: dict[str, float] = {"samples": float(len(frame)), "mse": mse["model"]}
    for name in BASELINES:
        out[f"mse_ratio_{name}"] = mse["model"] / mse[name] if mse[name] > 0 else float("nan")
        out[f"oos_r2_{name}"] = 1 - out[f"mse_ratio_{name}"]
    out["dm_stat"], out["dm_pvalue"] = diebold_mariano(errors["model"], errors["zero"], horizon)
    ic = daily_ic(pd.DatetimeIndex(frame.index), p, y)
    out["ic_days"] = float(len(ic))
    for col in ("ic", "rank_ic"):
        mean = float(ic[col].mean()) if len(ic) else float("nan")
        std = float(ic[col].std(ddof=1)) if len(ic) > 1 else float("nan")
        out[f"{col}_mean"] = mean
        out[f"{col}ir"] = mean / std if std and std > 0 else float("nan")
    moved = y != 0
    out["directional_accuracy"] = (
        float((np.sign(p[moved]) == np.sign(y[moved])).mean()) if moved.any() else float("nan")
    )
    out["nonzero_labels"] = float(moved.sum())
    bt = sign_backtest(p, frame["next_return"].to_numpy("float64"), bars_per_year, fee_bp, delay)
    out.update({f"backtest_{k}": v for k, v in bt.as_dict().items()})
    return out


def evaluation_table(
    predictions: pd.DataFrame, bars_per_year: float, fee_bp: float, delay: int = 1, horizon: int = 1
) -> pd.DataFrame:
    """Metrics per model and fold, plus an ``overall`` row per model (fold 0)."""
    rows = []
    for model, by_model in predictions.groupby("model", sort=True):
        parts = [(int(f), g) for f, g in by_model.groupby("fold", sort=True)] + [(0, by_model)]
        for fold, group in parts:
            metrics = evaluate_predictions(group.sort_index(), bars_per_year, fee_bp, delay, horizon)
            rows.append({"model": model, "fold": fold, "scope": "overall" if fold == 0 else f"fold {fold}", **metrics})
    return pd.DataFrame(rows)


def leaderboard_score(table: pd.DataFrame) -> pd.Series:
    """Significance-aware score: the smaller of the net-return t-statistic and the DM statistic.

    A model tops the board only when both its cost-adjusted returns and its forecast-accuracy
    gain over the zero forecast are many standard errors away from zero, so noise (t ~ 0) cannot.
    """
    return np.minimum(table["backtest_net_return_t_stat"], table["dm_stat"])
