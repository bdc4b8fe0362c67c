"""Known truths of the research loop: planted edges are found, noise is called noise, a perfect forecaster
ranks first, the figures recompute independently, and folds anchored to time stay put."""

from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest

from trading_assets.errors import CandleDataError
from trading_assets.evaluation import judge, rank_board
from trading_assets.execution import Execution
from trading_assets.partition import Partition
from trading_assets.research import features_from_source, run_walk_forward
from trading_assets.sources import SyntheticSource
from trading_assets.splits import FoldGrid
from trading_assets.timeframes import get_timeframe
from trading_assets.training.config import build_spec
from trading_assets.training.pipeline import NullTracker

END = pd.Timestamp("2026-06-01", tz="UTC")
TF = "5m"
EXECUTION = Execution()  # the defaults: next bar's open, long-only, cost-aware, 7 bp per side
SPEC = build_spec({"seq_len": 24, "hidden_size": 16, "horizon": 1, "entry_lag": 1})
MODELS = ("linear", "gru")
BARS = get_timeframe(TF).bars_per_year


def _features(edge="none", strength=0.0, seed=7, days=14, end=END):
    source = SyntheticSource(seed=seed, edge=edge, edge_strength=strength)
    return features_from_source(source, Partition("KRW-BTC", TF), END - pd.Timedelta(days=days), end, EXECUTION)


def _research(features, models=MODELS, grid=FoldGrid("D")):
    frame, _ = run_walk_forward(features, SPEC, grid, models, EXECUTION, NullTracker(), Partition("KRW-BTC", TF))
    return frame


@pytest.fixture(scope="module")
def planted():
    return _research(_features("persistent", 0.5))


def test_a_persistent_planted_edge_is_found_and_profitable_after_default_costs(planted):
    verdict = judge(planted, BARS, EXECUTION, TF)
    assert verdict.edge_significant.passed and verdict.survives_costs.passed
    best = verdict.ranked.iloc[0]
    assert best["edge_pvalue_adj"] < 0.01 and best["backtest_net_log_return"] > 0 and best["dm_pvalue_adj"] < 0.05
    # chosen on the folds, then confirmed once on the hold-out, which the ranking never saw
    assert verdict.chosen == best["model"] and verdict.holdout["samples"] > 200
    holdout_rows = verdict.table[verdict.table["scope"] == "holdout"]
    assert list(holdout_rows["model"]) == [verdict.chosen]
    assert not (planted[planted["holdout"]].index.isin(planted[~planted["holdout"]].index)).any()
    # trained to convergence: every network fold fit ended by early stopping, well before the 100-epoch cap
    fits = planted.groupby(["model", "fold"])["stop_reason"].first()
    assert set(fits.loc["gru"]) == {"early_stopping"} and set(fits.loc["linear"]) == {"closed_form"}


@pytest.mark.parametrize("seed", [3, 7])
def test_a_one_bar_edge_called_significant_is_never_a_gross_loss(seed):
    """The label is the trade: a forecast of a one-bar edge is traded on that bar, not the one after."""
    verdict = judge(_research(_features("one_bar", 0.5, seed=seed)), BARS, EXECUTION, TF)
    assert (verdict.ranked["dm_pvalue_adj"] <= 0.05).all()  # a 0.5 mean reversion is plain to see
    significant = verdict.ranked[verdict.ranked["edge_pvalue_adj"] <= 0.05]
    assert len(significant) and verdict.survives_costs.passed
    assert (significant["backtest_gross_log_return"] > 0).all()
    # filled one bar late the edge is gone: the stress case shows it beside the result
    assert (significant["backtest_stress_net_log_return"] < significant["backtest_net_log_return"]).all()


@pytest.mark.parametrize("seed", [1, 2, 5])
def test_noise_is_called_noise(seed):
    verdict = judge(_research(_features(seed=seed)), BARS, EXECUTION, TF)
    assert not verdict.edge_significant.passed and not verdict.survives_costs.passed
    assert "after Holm's adjustment over 2 models" in verdict.survives_costs.message
    board, headline = rank_board(verdict.ranked.assign(symbol="KRW-BTC", timeframe=TF), pd.DataFrame())
    assert headline.startswith("Nothing survives") and not board["survives"].any()


def test_a_perfect_forecaster_ranks_first(planted):
    oracle = planted[planted["model"] == "linear"].assign(model="oracle", prediction=lambda f: f["label"])
    noise = _research(_features(seed=9))
    parts = []
    for symbol, frame in (("KRW-BTC", pd.concat([planted, oracle])), ("KRW-ETH", noise)):
        verdict = judge(frame, BARS, EXECUTION, TF)
        parts.append(verdict.table.assign(symbol=symbol, timeframe=TF))
    tables = pd.concat(parts, ignore_index=True)
    board, headline = rank_board(tables[tables["scope"] == "overall"], tables[tables["scope"] == "holdout"])
    assert board.iloc[0][["symbol", "model"]].tolist() == ["KRW-BTC", "oracle"]
    assert board["survives"].iloc[0] and not board[board["symbol"] == "KRW-ETH"]["survives"].any()
    assert headline.startswith("2 of 5 entries") or headline.startswith("3 of 5 entries")
    assert board["holdout_net_log_return"].notna().sum() == 2  # one chosen model per partition


def _independent_figures(rows: pd.DataFrame, execution: Execution) -> dict[str, float]:
    """The figures recomputed with plain loops, sharing no code with trading_assets.evaluation."""
    cost = (execution.costs.fee_bp + execution.costs.half_spread_bp + execution.costs.slippage_bp) / 1e4
    net, position, previous_segment = 0.0, 0.0, None
    for f, r, segment in zip(rows["prediction"], rows["trade_return"], rows["segment"]):
        if previous_segment is not None and segment != previous_segment or not np.isfinite(r):
            net -= abs(position) * cost  # close before a break
            position = 0.0
        previous_segment = segment
        if not np.isfinite(r):
            continue
        wanted = 1.0 if f > 2 * cost else 0.0 if f < -2 * cost else position
        net -= abs(wanted - position) * cost
        position = wanted
        net += position * r
    net -= abs(position) * cost
    y, p = rows["label"].to_numpy(), rows["prediction"].to_numpy()
    return {
        "backtest_net_log_return": net,
        "mse_ratio_zero": float(np.sum((p - y) ** 2) / np.sum(y**2)),
        "ic": float(np.corrcoef(p, y)[0, 1]),
    }


def test_figures_recompute_independently_from_predictions(planted):
    verdict = judge(planted, BARS, EXECUTION, TF)
    for model, row in verdict.ranked.set_index("model").iterrows():
        rows = planted[(planted["model"] == model) & ~planted["holdout"]].sort_index()
        for name, value in _independent_figures(rows, EXECUTION).items():
            assert row[name] == pytest.approx(value, rel=1e-9, abs=1e-12), (model, name)


def test_a_longer_span_leaves_earlier_folds_bit_identical():
    short = _research(_features(days=10), models=("linear", "gru"))
    longer = _research(_features(days=10, end=END + pd.Timedelta(days=2)), models=("linear", "gru"))
    # same first row, two more days: every fold both runs test (not the short run's hold-out) is unchanged
    a = short[~short["holdout"]].reset_index().set_index(["model", "open_time"])
    b = longer.reset_index().set_index(["model", "open_time"])
    common = a.index.intersection(b.index)
    assert len(common) >= 2 * 2 * 280  # two daily folds of both models
    for column in ("prediction", "train_end", "validation_start", "label"):
        np.testing.assert_array_equal(a.loc[common, column].to_numpy(), b.loc[common, column].to_numpy())


class CountingTracker(NullTracker):
    def __init__(self):
        self.children = 0

    @contextmanager
    def child(self, name, tags):
        self.children += 1
        yield self


def test_an_impossible_execution_is_refused_before_any_training():
    tracker = CountingTracker()
    features = _features(days=10)
    too_long = Execution(horizon=400)
    spec = build_spec({"seq_len": 24, "horizon": 400, "entry_lag": 1})
    with pytest.raises(CandleDataError, match=r"KRW-BTC 5m: .*execution.horizon = 400.*allowed horizon <= 284"):
        run_walk_forward(features, spec, FoldGrid("D"), MODELS, too_long, tracker, Partition("KRW-BTC", TF))
    assert tracker.children == 0


def test_timesnet_and_lightgbm_are_trained_and_ranked_like_the_others():
    """The two models of the research-breadth round go through the same walk-forward and the same verdict: on a
    persistent planted edge each finds it out of sample; the boosted trees stop on their validation span."""
    spec = build_spec(
        {"seq_len": 24, "hidden_size": 8, "horizon": 1, "entry_lag": 1, "epochs": 8, "learning_rate": 3e-3}
    )
    partition = Partition("KRW-BTC", TF)
    features = _features("persistent", 0.8, days=10)
    frame, _ = run_walk_forward(
        features, spec, FoldGrid("D"), ("timesnet", "lightgbm"), EXECUTION, NullTracker(), partition
    )
    verdict = judge(frame, BARS, EXECUTION, TF)
    assert set(verdict.ranked["model"]) == {"timesnet", "lightgbm"}
    assert (verdict.ranked["edge_pvalue_adj"] < 1e-6).all() and (verdict.ranked["dm_pvalue_adj"] < 0.05).all()
    assert (verdict.ranked["backtest_net_log_return"] > 0).all()
    fits = frame.groupby(["model", "fold"])["stop_reason"].first()
    assert set(fits.loc["lightgbm"]) <= {"early_stopping", "tree_cap"}
    assert set(fits.loc["timesnet"]) <= {"early_stopping", "epoch_cap"}
