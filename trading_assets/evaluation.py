"""Honest numbers for out-of-sample forecasts, and the verdicts drawn from them.

Inputs are walk-forward predictions (one row per out-of-sample bar: forecast, label, the trade's
per-bar returns, the naive forecasts fit on that fold's train span). The label and the backtest come
from one execution model (:mod:`trading_assets.execution`), so every figure judges the same quantity:
the log return a trade decided at the bar's close realises.

* accuracy: MSE ratio and out-of-sample R^2 against the zero, train-mean and AR(1) forecasts;
* significance of the forecasts: Diebold-Mariano against the *best* naive forecast, with ``horizon - 1``
  lags and the Harvey-Leybourne-Newbold small-sample correction (Student t);
* signal: pooled IC and rank IC with HAC t-statistics; period IC (days, weeks or months, by timeframe)
  with the number of periods;
* backtest: the execution model's rule (long-only by default, cost-aware), fee + half-spread + slippage on
  every change, the exit paid at the end of every run, returns paired by timestamp and no position across
  a break; Sharpe with its standard error and the sample length in days; the net edge (net return minus
  a constant position of the same average exposure: timing skill after costs) with a HAC t-test; the same
  positions filled one bar later as the stress case;
* multiple testing: Holm's adjustment (statsmodels) over the models of a partition and over the whole
  leaderboard, and the deflated Sharpe ratio (Bailey and Lopez de Prado) for the number of entries tried.

:func:`judge` returns a partition's :class:`Verdict`; :func:`rank_board` ranks the leaderboard.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.multitest import multipletests

from trading_assets.execution import Execution, exposure, positions

BASELINES = ("zero", "train_mean", "ar1")
# The period of the period IC per timeframe: enough bars per period and enough periods per fold.
IC_PERIODS: dict[str, str] = {"1m": "D", "5m": "D", "15m": "W", "30m": "W", "60m": "W", "240m": "M", "1d": "M"}


def newey_west_lags(n: int) -> int:
    return int(math.floor(4 * (n / 100) ** (2 / 9)))


def hac_mean_test(x: np.ndarray, max_lags: int | None = None) -> tuple[float, float]:
    """t-statistic and one-sided p-value (H1: mean > 0) of ``x``'s mean, Newey-West variance."""
    x = np.asarray(x, dtype="float64")
    if len(x) < 3 or not np.isfinite(x).all() or np.allclose(x, x[0]):
        return 0.0, 1.0
    lags = max_lags if max_lags is not None else newey_west_lags(len(x))
    fit = sm.OLS(x, np.ones(len(x))).fit(cov_type="HAC", cov_kwds={"maxlags": lags})
    t = float(fit.tvalues[0])
    return t, float(stats.norm.sf(t))


def diebold_mariano(errors_model: np.ndarray, errors_benchmark: np.ndarray, horizon: int = 1) -> tuple[float, float]:
    """HLN-corrected DM statistic and one-sided p-value that the model's squared-error loss is lower.

    The long-run variance of the loss differential uses ``horizon - 1`` autocovariances with equal
    weights (h-step forecast errors are MA(h - 1)); if that estimate is not positive, Bartlett weights.
    The statistic is scaled by Harvey, Leybourne and Newbold's factor and compared with Student's t
    with n - 1 degrees of freedom.
    """
    d = np.asarray(errors_benchmark, dtype="float64") ** 2 - np.asarray(errors_model, dtype="float64") ** 2
    n = len(d)
    if n < 3 or not np.isfinite(d).all() or np.allclose(d, d[0]):
        return 0.0, 1.0
    dc = d - d.mean()
    gamma = [float(dc @ dc) / n] + [float(dc[k:] @ dc[:-k]) / n for k in range(1, min(horizon, n))]
    variance = gamma[0] + 2 * sum(gamma[1:])
    if variance <= 0:
        variance = gamma[0] + 2 * sum((1 - k / horizon) * g for k, g in enumerate(gamma[1:], start=1))
    dm = d.mean() / math.sqrt(variance / n)
    h = horizon
    stat = dm * math.sqrt(max((n + 1 - 2 * h + h * (h - 1) / n) / n, 0.0))
    return float(stat), float(stats.t.sf(stat, n - 1))


def _standardise(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def pooled_ic(prediction: np.ndarray, label: np.ndarray, lags: int) -> dict[str, float]:
    """Pearson IC and Spearman rank IC over all rows, each with a HAC t-statistic (slope of the standardised
    label on the standardised forecast, Newey-West with ``lags``)."""
    out: dict[str, float] = {}
    for name, (p, y) in {
        "ic": (prediction, label),
        "rank_ic": (stats.rankdata(prediction), stats.rankdata(label)),
    }.items():
        p, y = _standardise(np.asarray(p, dtype="float64")), _standardise(np.asarray(y, dtype="float64"))
        if len(p) < 10 or not p.any() or not y.any():
            out[name], out[f"{name}_t"] = float("nan"), float("nan")
            continue
        fit = sm.OLS(y, p).fit(cov_type="HAC", cov_kwds={"maxlags": lags})
        out[name], out[f"{name}_t"] = float(fit.params[0]), float(fit.tvalues[0])
    return out


def period_ic(open_time: pd.DatetimeIndex, prediction: np.ndarray, label: np.ndarray, period: str) -> pd.DataFrame:
    """Pearson IC and rank IC per calendar ``period`` (periods with fewer than 5 varying pairs are left out)."""
    keys = open_time.tz_convert("UTC").tz_localize(None).to_period(period)
    frame = pd.DataFrame({"p": prediction, "y": label, "k": keys})
    rows = []
    for key, group in frame.groupby("k", sort=True):
        if len(group) < 5 or group["p"].nunique() < 2 or group["y"].nunique() < 2:
            continue
        rows.append(
            {
                "period": str(key),
                "ic": float(stats.pearsonr(group["p"], group["y"]).statistic),
                "rank_ic": float(stats.spearmanr(group["p"], group["y"]).statistic),
            }
        )
    return pd.DataFrame(rows, columns=["period", "ic", "rank_ic"])


def moments(x: np.ndarray) -> tuple[float, float]:
    """Skewness and (non-excess) kurtosis; those of the normal distribution when undefined."""
    if len(x) < 3 or x.std() <= 0:
        return 0.0, 3.0
    return float(stats.skew(x)), float(stats.kurtosis(x, fisher=False))


def sharpe_ratio(x: np.ndarray) -> tuple[float, float]:
    """Per-bar Sharpe ratio and its standard error (Mertens: skewness and kurtosis of the returns)."""
    n = len(x)
    sd = x.std(ddof=1) if n > 1 else 0.0
    if n < 3 or sd <= 0:
        return 0.0, float("nan")
    sr = float(x.mean() / sd)
    skew, kurt = moments(x)
    return sr, math.sqrt(max(1 + 0.5 * sr**2 - skew * sr + (kurt - 3) / 4 * sr**2, 1e-12) / n)


@dataclass
class Simulation:
    """Per evaluated row of the backtest."""

    exposure: np.ndarray
    market: np.ndarray  # the trade's per-bar return (0 where invalid)
    gross: np.ndarray
    cost: np.ndarray
    traded: np.ndarray  # units traded (entries, changes, exits)
    runs: int  # runs of valid rows: each starts flat and ends with an exit

    @property
    def net(self) -> np.ndarray:
        return self.gross - self.cost


def runs(segment: np.ndarray, valid: np.ndarray) -> list[slice]:
    """Maximal runs of valid rows within one segment: no position is carried from one run to the next."""
    out, start = [], None
    for i in range(len(valid) + 1):
        boundary = i == len(valid) or not valid[i] or (i > 0 and segment[i] != segment[i - 1])
        if start is not None and boundary:
            out.append(slice(start, i))
            start = None
        if i < len(valid) and valid[i] and start is None:
            start = i
    return out


def simulate(frame: pd.DataFrame, execution: Execution, return_column: str = "trade_return") -> Simulation:
    """The execution model's positions on ``frame`` (one model, sorted by time), paired with ``return_column``.

    Within each run (:func:`runs`) the position starts flat; every change, and the exit at the run's end,
    pays the per-side cost.
    """
    pred = frame["prediction"].to_numpy("float64")
    ret = frame[return_column].to_numpy("float64")
    segment = frame["segment"].to_numpy() if "segment" in frame else np.zeros(len(frame), dtype=np.int64)
    n = len(frame)
    e, traded = np.zeros(n), np.zeros(n)
    spans = runs(segment, np.isfinite(ret))
    for run in spans:
        held = exposure(positions(pred[run], execution), execution.horizon)
        e[run] = held
        change = np.abs(np.diff(np.concatenate([[0.0], held])))
        change[-1] += abs(held[-1])  # the exit at the end of the run
        traded[run] = change
    market = np.nan_to_num(ret)
    gross = e * market
    return Simulation(e, market, gross, traded * execution.costs.per_side, traded, len(spans))


@dataclass(frozen=True)
class Backtest:
    bars: int
    days: float  # sample length
    net_log_return: float
    gross_log_return: float
    buy_and_hold_log_return: float  # long every valid bar, entry and exit paid per run
    mean_exposure: float
    sharpe_annualized: float  # net of costs
    sharpe_se: float  # standard error of the annualised Sharpe ratio
    sharpe_per_bar: float
    skew: float  # of the net returns (the deflated Sharpe ratio reads them)
    kurtosis: float
    gross_sharpe_annualized: float
    net_return_t_stat: float  # HAC t of the mean net return per bar
    edge_t_stat: float  # HAC t of the net edge: net return minus the same average exposure held throughout
    edge_pvalue: float  # one-sided
    max_drawdown: float  # of the cumulative net log return, >= 0
    turnover: float  # mean units traded per bar
    trades: int  # position changes (entries, flips, exits)
    break_even_cost_bp: float  # per-side cost at which the net return is zero
    cost_per_side_bp: float
    stress_net_log_return: float  # the same positions filled one bar later
    stress_sharpe_annualized: float
    stress_edge_t_stat: float

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def _edge(sim: Simulation, lags: int) -> tuple[float, float]:
    edge = sim.net - sim.exposure.mean() * sim.market
    return hac_mean_test(edge, lags)


def backtest(frame: pd.DataFrame, execution: Execution, bars_per_year: float) -> Backtest:
    """The execution model's backtest of one model's out-of-sample rows (sorted by time)."""
    sim = simulate(frame, execution)
    stress = simulate(frame, execution, "stress_return")
    net, gross = sim.net, sim.gross
    lags = max(execution.horizon - 1, newey_west_lags(len(net)))
    equity = np.cumsum(net)
    drawdown = np.maximum.accumulate(np.concatenate([[0.0], equity]))[1:] - equity
    sr, se = sharpe_ratio(net)
    gross_sr, _ = sharpe_ratio(gross)
    stress_sr, _ = sharpe_ratio(stress.net)
    edge_t, edge_p = _edge(sim, lags)
    skew, kurtosis = moments(net)
    annual = math.sqrt(bars_per_year)
    units = float(sim.traded.sum())
    return Backtest(
        bars=len(net),
        days=len(net) / bars_per_year * 365.25,
        net_log_return=float(net.sum()),
        gross_log_return=float(gross.sum()),
        buy_and_hold_log_return=float(sim.market.sum() - 2 * sim.runs * execution.costs.per_side),
        mean_exposure=float(sim.exposure.mean()) if len(net) else 0.0,
        sharpe_annualized=sr * annual,
        sharpe_se=se * annual,
        sharpe_per_bar=sr,
        skew=skew,
        kurtosis=kurtosis,
        gross_sharpe_annualized=gross_sr * annual,
        net_return_t_stat=hac_mean_test(net, lags)[0],
        edge_t_stat=edge_t,
        edge_pvalue=edge_p,
        max_drawdown=float(drawdown.max()) if len(drawdown) else 0.0,
        turnover=units / len(net) if len(net) else 0.0,
        trades=int(np.count_nonzero(sim.traded)),
        break_even_cost_bp=float(gross.sum() / units * 1e4) if units > 0 else 0.0,
        cost_per_side_bp=execution.costs.per_side * 1e4,
        stress_net_log_return=float(stress.net.sum()),
        stress_sharpe_annualized=stress_sr * annual,
        stress_edge_t_stat=_edge(stress, lags)[0],
    )


def evaluate_predictions(
    frame: pd.DataFrame, bars_per_year: float, execution: Execution, timeframe: str
) -> dict[str, float]:
    """All metrics for one model's out-of-sample rows (columns of the ``predictions`` asset), sorted by time."""
    y = frame["label"].to_numpy("float64")
    p = frame["prediction"].to_numpy("float64")
    errors = {
        "zero": -y,
        "train_mean": frame["baseline_train_mean"].to_numpy("float64") - y,
        "ar1": frame["baseline_ar1"].to_numpy("float64") - y,
    }
    mse = {k: float(np.mean(e**2)) for k, e in errors.items()}
    model_mse = float(np.mean((p - y) ** 2))
    out: dict[str, Any] = {"samples": float(len(frame)), "mse": model_mse}
    for name in BASELINES:
        out[f"mse_ratio_{name}"] = model_mse / mse[name] if mse[name] > 0 else float("nan")
        out[f"oos_r2_{name}"] = 1 - out[f"mse_ratio_{name}"]
    best = min(BASELINES, key=mse.__getitem__)
    out["dm_benchmark"] = best
    out["dm_stat"], out["dm_pvalue"] = diebold_mariano(p - y, errors[best], execution.horizon)
    out.update(pooled_ic(p, y, max(execution.horizon - 1, newey_west_lags(len(y)))))
    periods = period_ic(pd.DatetimeIndex(frame.index), p, y, IC_PERIODS.get(timeframe, "D"))
    out["ic_period"] = IC_PERIODS.get(timeframe, "D")
    out["ic_periods"] = float(len(periods))
    for col in ("ic", "rank_ic"):
        mean = float(periods[col].mean()) if len(periods) else float("nan")
        std = float(periods[col].std(ddof=1)) if len(periods) > 1 else float("nan")
        out[f"period_{col}_mean"] = mean
        out[f"period_{col}ir"] = mean / std if std and std > 0 else float("nan")
    moved = y != 0
    out["directional_accuracy"] = (
        float((np.sign(p[moved]) == np.sign(y[moved])).mean()) if moved.any() else float("nan")
    )
    out.update({f"backtest_{k}": v for k, v in backtest(frame, execution, bars_per_year).as_dict().items()})
    return out


def holm(pvalues: pd.Series) -> pd.Series:
    """Holm-adjusted p-values (family-wise error over the series' tests)."""
    values = pvalues.to_numpy("float64")
    if not len(values):
        return pvalues.copy()
    finite = np.isfinite(values)
    adjusted = np.full(len(values), 1.0)
    if finite.any():
        adjusted[finite] = multipletests(values[finite], method="holm")[1]
    return pd.Series(adjusted, index=pvalues.index)


def deflated_sharpe_pvalue(
    sharpe: np.ndarray, bars: np.ndarray, skew: np.ndarray, kurt: np.ndarray, n_trials: int | None = None
) -> np.ndarray:
    """1 - the deflated Sharpe ratio of each entry (per-bar Sharpe ratios), for ``n_trials`` trials (default:
    as many as entries).

    The benchmark is the expected maximum Sharpe ratio of that many unskilled trials with the entries'
    observed spread (Bailey and Lopez de Prado, 2014); with one trial it is zero (the probabilistic SR).
    """
    n_trials = max(n_trials or len(sharpe), 1)
    if len(sharpe) == 0:
        return np.array([])
    spread = float(np.var(sharpe, ddof=1)) if len(sharpe) > 1 else 0.0
    gamma = 0.5772156649
    sr0 = (
        math.sqrt(spread)
        * ((1 - gamma) * stats.norm.ppf(1 - 1 / n_trials) + gamma * stats.norm.ppf(1 - 1 / (n_trials * math.e)))
        if n_trials > 1
        else 0.0
    )
    denominator = np.sqrt(np.maximum(1 - skew * sharpe + (kurt - 1) / 4 * sharpe**2, 1e-12))
    z = (sharpe - sr0) * np.sqrt(np.maximum(bars - 1, 1)) / denominator
    return stats.norm.sf(z)


EXECUTION_COLUMNS = ("fill", "delay_bars", "horizon", "side", "cost_aware", "fee_bp", "half_spread_bp", "slippage_bp")


@dataclass
class CheckOutcome:
    passed: bool
    message: str | None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Verdict:
    """A partition's evaluation: the table (per model: folds, overall; the chosen model's hold-out), the
    adjusted ranking of its models, the chosen model and the checks' outcomes."""

    table: pd.DataFrame
    ranked: pd.DataFrame  # overall rows, best first, with Holm-adjusted p-values
    chosen: str
    edge_significant: CheckOutcome
    survives_costs: CheckOutcome
    holdout: dict[str, float]


def _table(predictions: pd.DataFrame, bars_per_year: float, execution: Execution, timeframe: str) -> pd.DataFrame:
    """Metrics per model and fold, and overall, on the walk-forward rows (never the hold-out)."""
    rows = []
    ranking = predictions[~predictions["holdout"]] if "holdout" in predictions else predictions
    for model, by_model in ranking.groupby("model", sort=True):
        by_model = by_model.sort_index()
        parts = [(int(f), f"fold {int(f)}", g) for f, g in by_model.groupby("fold", sort=True)]
        for fold, scope, group in [*parts, (0, "overall", by_model)]:
            rows.append(
                {
                    "model": model,
                    "fold": fold,
                    "scope": scope,
                    **evaluate_predictions(group, bars_per_year, execution, timeframe),
                }
            )
    return pd.DataFrame(rows)


def judge(
    predictions: pd.DataFrame, bars_per_year: float, execution: Execution, timeframe: str, level: float = 0.05
) -> Verdict:
    """Evaluate every model, adjust for how many were tried, choose one, and confirm it once on the hold-out.

    Ranking uses the walk-forward folds only; the hold-out rows (``holdout`` True) are evaluated for the
    chosen model alone, after the choice.
    """
    table = _table(predictions, bars_per_year, execution, timeframe)
    overall = table[table["scope"] == "overall"].copy()
    k = len(overall)
    overall["dm_pvalue_adj"] = holm(overall["dm_pvalue"]).to_numpy()
    overall["edge_pvalue_adj"] = holm(overall["backtest_edge_pvalue"]).to_numpy()
    ranked = overall.sort_values("backtest_edge_t_stat", ascending=False, kind="stable")
    table = table.merge(
        overall[["model", "fold", "dm_pvalue_adj", "edge_pvalue_adj"]], on=["model", "fold"], how="left"
    )
    chosen = str(ranked["model"].iloc[0])
    holdout: dict[str, float] = {}
    if "holdout" in predictions and predictions["holdout"].any():
        rows = predictions[predictions["holdout"] & (predictions["model"] == chosen)].sort_index()
        if len(rows):
            holdout = evaluate_predictions(rows, bars_per_year, execution, timeframe)
            holdout_row = {"model": chosen, "fold": -1, "scope": "holdout", **holdout}
            table = pd.concat([table, pd.DataFrame([holdout_row])], ignore_index=True)
    for name, value in execution.as_dict().items():
        if name in EXECUTION_COLUMNS:
            table[name] = value
    table["chosen"] = table["model"] == chosen

    per_model = {
        r["model"]: {
            "dm_benchmark": r["dm_benchmark"],
            "dm_pvalue": r["dm_pvalue"],
            "dm_pvalue_adj": r["dm_pvalue_adj"],
            "edge_pvalue_adj": r["edge_pvalue_adj"],
            "net_log_return": r["backtest_net_log_return"],
            "break_even_cost_bp": r["backtest_break_even_cost_bp"],
        }
        for _, r in ranked.iterrows()
    }
    best_dm = ranked.loc[ranked["dm_pvalue_adj"].idxmin()] if k else None
    skilled = ranked[ranked["dm_pvalue_adj"] <= level]
    edge_significant = CheckOutcome(
        bool(len(skilled)),
        None
        if len(skilled)
        else f"no model beats the best naive forecast at the {level:g} level after Holm's adjustment over {k} "
        f"models (best: {best_dm['model']} vs {best_dm['dm_benchmark']}, adjusted DM p {best_dm['dm_pvalue_adj']:.3g})",
        {"significance_level": level, "models_tried": k, "per_model": per_model},
    )
    profitable = ranked[(ranked["edge_pvalue_adj"] <= level) & (ranked["backtest_net_log_return"] > 0)]
    top = ranked.iloc[0]
    cost = execution.costs.per_side * 1e4
    survives_costs = CheckOutcome(
        bool(len(profitable)),
        None
        if len(profitable)
        else f"no model's net edge survives {cost:g} bp per side ({execution.fill} fill, {execution.delay_bars}-bar "
        f"delay, {execution.side}) after Holm's adjustment over {k} models (best: {top['model']}, net "
        f"{top['backtest_net_log_return']:.3g}, adjusted p {top['edge_pvalue_adj']:.3g}, break-even "
        f"{top['backtest_break_even_cost_bp']:.3g} bp)",
        {"cost_per_side_bp": cost, **execution.as_dict(), "per_model": per_model},
    )
    return Verdict(table, ranked, chosen, edge_significant, survives_costs, holdout)


BOARD_COLUMNS = {
    "backtest_edge_t_stat": "edge_t",
    "backtest_edge_pvalue": "edge_pvalue",
    "edge_pvalue_adj": "edge_pvalue_partition_adj",
    "backtest_net_log_return": "net_log_return",
    "backtest_gross_log_return": "gross_log_return",
    "backtest_sharpe_annualized": "net_sharpe",
    "backtest_sharpe_se": "net_sharpe_se",
    "backtest_days": "days",
    "backtest_buy_and_hold_log_return": "buy_and_hold",
    "backtest_break_even_cost_bp": "break_even_cost_bp",
    "backtest_stress_net_log_return": "stress_net_log_return",
    "dm_benchmark": "dm_benchmark",
    "dm_pvalue_adj": "dm_pvalue_partition_adj",
    "rank_ic": "rank_ic",
    "rank_ic_t": "rank_ic_t",
    "oos_r2_zero": "oos_r2_zero",
    "samples": "samples",
}


def rank_board(
    overall: pd.DataFrame, holdouts: pd.DataFrame, level: float = 0.05, extra_trials: int = 0
) -> tuple[pd.DataFrame, str]:
    """The leaderboard: every partition's models, ordered by the adjusted significance of the net edge.

    ``overall``: the evaluation tables' ``overall`` rows of every partition; ``holdouts``: their ``holdout``
    rows (chosen models). The net-edge p-values are Holm-adjusted over every entry (plus ``extra_trials``,
    e.g. tuning trials, counted as tests that failed) and the deflated Sharpe ratio counts as many trials.
    Returns the board and its first line: how many entries survive, or that none does.
    """
    board = overall[["symbol", "timeframe", "model"]].copy()
    for source, target in BOARD_COLUMNS.items():
        board[target] = overall[source].to_numpy() if source in overall else np.nan
    tried = len(board) + extra_trials
    pvalues = np.concatenate([board["edge_pvalue"].to_numpy("float64"), np.ones(extra_trials)])
    board["edge_pvalue_adj"] = holm(pd.Series(pvalues)).to_numpy()[: len(board)] if len(board) else []
    board["deflated_sharpe_pvalue"] = deflated_sharpe_pvalue(
        *(overall[f"backtest_{c}"].to_numpy("float64") for c in ("sharpe_per_bar", "bars", "skew", "kurtosis")),
        n_trials=tried,
    )
    board["survives"] = (board["edge_pvalue_adj"] <= level) & (board["net_log_return"] > 0)
    for column in EXECUTION_COLUMNS:
        if column in overall:
            board[column] = overall[column].to_numpy()
    if len(holdouts):
        chosen = holdouts.set_index(["symbol", "timeframe", "model"])
        key = pd.MultiIndex.from_frame(board[["symbol", "timeframe", "model"]])
        board["holdout_net_log_return"] = chosen["backtest_net_log_return"].reindex(key).to_numpy()
        board["holdout_edge_pvalue"] = chosen["backtest_edge_pvalue"].reindex(key).to_numpy()
        board["holdout_days"] = chosen["backtest_days"].reindex(key).to_numpy()
    board = board.sort_values(["survives", "edge_t"], ascending=[False, False], kind="stable", ignore_index=True)
    board.insert(0, "rank", np.arange(1, len(board) + 1))
    survivors = int(board["survives"].sum())
    if survivors:
        headline = (
            f"{survivors} of {tried} entries tried have a net edge that survives Holm's adjustment at {level:g} "
            f"(best: {board['symbol'].iloc[0]} {board['timeframe'].iloc[0]} {board['model'].iloc[0]})"
        )
    else:
        headline = (
            f"Nothing survives: none of {tried} entries tried has a net edge significant at {level:g} after Holm's "
            "adjustment; the ranking below is noise"
        )
    return board, headline
