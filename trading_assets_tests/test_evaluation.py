"""The research statistics by hand: execution model, backtest, DM with HLN, IC, Sharpe, adjustments."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from trading_assets.evaluation import (
    backtest,
    deflated_sharpe_pvalue,
    diebold_mariano,
    holm,
    period_ic,
    pooled_ic,
    sharpe_ratio,
    simulate,
)
from trading_assets.execution import Costs, Execution, ExecutionError, exposure, positions, trade_returns

FREE = Execution(costs=Costs(0, 0, 0))


def _frame(pred, ret, segment=None, stress=None):
    n = len(pred)
    idx = pd.date_range("2026-01-01", periods=n, freq="1h", tz="UTC")
    return pd.DataFrame(
        {
            "prediction": pred,
            "label": ret,
            "trade_return": ret,
            "stress_return": np.full(n, np.nan) if stress is None else stress,
            "segment": np.zeros(n, dtype=int) if segment is None else segment,
        },
        index=idx,
    )


def test_trade_returns_follow_the_fill():
    open_ = np.array([10.0, 11.0, 12.0, 13.0, 14.0])
    close = np.array([10.5, 11.5, 12.5, 13.5, 14.5])
    by_open = trade_returns(open_, close, Execution())  # decided at t's close, bought at open[t+1]
    np.testing.assert_allclose(by_open[:3], np.log(open_[2:5] / open_[1:4]))
    assert np.isnan(by_open[3:]).all()
    by_close = trade_returns(open_, close, Execution(fill="close", delay_bars=2))
    np.testing.assert_allclose(by_close[:2], np.log(close[3:5] / close[2:4]))
    assert Execution().stressed().delay_bars == 2


def test_rules_long_only_long_short_and_cost_aware_hold():
    f = np.array([0.01, -0.01, 0.0005, -0.0005, 0.02, -0.02])
    assert list(positions(f, Execution(cost_aware=False))) == [1, 0, 1, 0, 1, 0]
    assert list(positions(f, Execution(side="long_short", cost_aware=False))) == [1, -1, 1, -1, 1, -1]
    # round trip 14 bp: the 5 bp forecasts hold the previous position
    assert list(positions(f, Execution(side="long_short"))) == [1, -1, -1, -1, 1, -1]
    assert list(positions(np.array([0.0005, 0.01]), Execution())) == [0, 1]  # flat until a forecast beats the cost
    np.testing.assert_allclose(exposure(np.array([1.0, 1.0, 0.0, 0.0]), 2), [0.5, 1.0, 0.5, 0.0])


def test_backtest_by_hand_costs_exit_and_breaks():
    ex = Execution(side="long_short", cost_aware=False, costs=Costs(fee_bp=5, half_spread_bp=3, slippage_bp=2))
    pred = np.array([0.1, -0.2, 0.3, 0.1, 0.1])
    ret = np.array([0.01, 0.02, -0.03, 0.05, -0.01])
    # a break after row 2: the position is closed there (exit paid) and starts flat again
    sim = simulate(_frame(pred, ret, segment=np.array([0, 0, 0, 1, 1])), ex)
    np.testing.assert_allclose(sim.exposure, [1, -1, 1, 1, 1])
    np.testing.assert_allclose(sim.gross, [0.01, -0.02, -0.03, 0.05, -0.01])
    np.testing.assert_allclose(sim.traded, [1, 2, 2 + 1, 1, 0 + 1])  # entries, flips, exits at each run's end
    np.testing.assert_allclose(sim.cost, sim.traded * 10 / 1e4)
    bt = backtest(_frame(pred, ret, segment=np.array([0, 0, 0, 1, 1])), ex, bars_per_year=8760)
    assert bt.net_log_return == pytest.approx(0.0 - 8 * 0.001)
    assert bt.break_even_cost_bp == pytest.approx(0.0)
    assert bt.buy_and_hold_log_return == pytest.approx(ret.sum() - 2 * 2 * 0.001)  # two runs, entry + exit each
    assert bt.days == pytest.approx(5 / 8760 * 365.25) and bt.trades == 5
    # a NaN trade return (the trade would span a break) ends the run and is not traded
    nan_ret = np.array([0.01, np.nan, 0.02, 0.03, 0.01])
    sim = simulate(_frame(pred, nan_ret), Execution(cost_aware=False, costs=Costs(0, 0, 0)))
    np.testing.assert_allclose(sim.exposure, [1, 0, 1, 1, 1])


def test_perfect_forecaster_earns_and_the_stress_case_is_reported_beside():
    rng = np.random.default_rng(3)
    ret = rng.standard_normal(500) * 0.01
    frame = _frame(ret, ret, stress=np.concatenate([ret[1:], [np.nan]]))
    bt = backtest(frame, Execution(), 8760)
    assert bt.gross_log_return > 0 and bt.net_log_return > 0 and bt.edge_t_stat > 10
    assert bt.stress_net_log_return < bt.net_log_return  # a bar later the foresight is gone
    always_long = backtest(_frame(np.ones(500), ret), Execution(), 8760)
    # holding the market is no timing skill: its edge is minus the entry and exit costs
    assert always_long.gross_log_return == pytest.approx(ret.sum()) and always_long.edge_t_stat < 0


def test_diebold_mariano_hln_by_hand():
    rng = np.random.default_rng(0)
    y = rng.standard_normal(400)
    e_model, e_bench = 0.8 * rng.standard_normal(400), rng.standard_normal(400)
    h = 3
    d = e_bench**2 - e_model**2
    dc = d - d.mean()
    n = len(d)
    gammas = [dc @ dc / n] + [dc[k:] @ dc[:-k] / n for k in (1, 2)]
    dm = d.mean() / math.sqrt((gammas[0] + 2 * sum(gammas[1:])) / n)
    hln = dm * math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    stat, p = diebold_mariano(e_model, e_bench, h)
    assert stat == pytest.approx(hln) and p == pytest.approx(stats.t.sf(hln, n - 1))
    skilled = 0.5 * y + 0.5 * rng.standard_normal(400)
    assert diebold_mariano(skilled - y, -y)[1] < 1e-6


def test_diebold_mariano_size_with_overlapping_labels():
    """Horizon 12, overlapping labels of an i.i.d. walk, an unskilled forecast: the test rejects about 5 %."""
    rng = np.random.default_rng(11)
    h, n, rejections, trials = 12, 1500, 0, 400
    for _ in range(trials):
        r = rng.standard_normal(n + h)
        y = np.convolve(r, np.ones(h), "valid")[:n]
        f = np.convolve(rng.standard_normal(n + h), np.ones(h), "valid")[:n] * 0.05
        rejections += diebold_mariano(f - y, -y, h)[1] <= 0.05
    assert rejections / trials <= 0.07


def test_pooled_and_period_ic():
    rng = np.random.default_rng(2)
    idx = pd.date_range("2024-01-01", periods=400, freq="1D", tz="UTC")
    y = rng.standard_normal(400)
    p = y + rng.standard_normal(400)
    ic = pooled_ic(p, y, lags=5)
    assert ic["ic"] == pytest.approx(stats.pearsonr(p, y).statistic, rel=1e-9)
    assert ic["rank_ic"] == pytest.approx(stats.spearmanr(p, y).statistic, rel=1e-9)
    assert ic["ic_t"] > 10
    monthly = period_ic(idx, p, y, "M")  # daily bars get numbers: one IC per month
    assert len(monthly) == 13 and monthly["ic"].notna().all()  # 13 months; the 14th has 4 days (< 5 pairs)


def test_sharpe_standard_error_and_deflation():
    rng = np.random.default_rng(5)
    x = rng.standard_normal(2000) * 0.01 + 0.001
    sr, se = sharpe_ratio(x)
    assert sr == pytest.approx(x.mean() / x.std(ddof=1))
    assert se == pytest.approx(
        math.sqrt((1 + 0.5 * sr**2 - stats.skew(x) * sr + (stats.kurtosis(x)) / 4 * sr**2) / 2000)
    )
    one = deflated_sharpe_pvalue(np.array([sr]), np.array([2000.0]), np.array([0.0]), np.array([3.0]))
    many = deflated_sharpe_pvalue(np.array([sr, 0.01, -0.02, 0.03]), np.full(4, 2000.0), np.zeros(4), np.full(4, 3.0))
    assert one[0] < many[0]  # more trials, a higher bar


def test_holm_and_execution_validation():
    adjusted = holm(pd.Series([0.01, 0.04, 0.03]))
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06])
    with pytest.raises(ExecutionError, match=r"costs.fee_bp = -1.*0 <= fee_bp <= 1000"):
        Execution(costs=Costs(fee_bp=-1)).validate()
    with pytest.raises(ExecutionError, match=r"execution.delay_bars = 0.*1 <= delay_bars"):
        Execution(delay_bars=0).validate()
    with pytest.raises(ExecutionError, match=r"execution.horizon = 50.*allowed horizon <= 38"):
        Execution(horizon=50).check_fits(40, "the shortest test fold")
