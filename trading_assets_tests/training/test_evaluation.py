import numpy as np
import pytest

from trading_assets.training.evaluation import sign_backtest


def test_sign_backtest_by_hand():
    pred = np.array([0.1, -0.2, 0.3, 0.0, -0.1])
    real = np.array([0.01, 0.02, -0.03, 0.05, -0.01])
    bt = sign_backtest(pred, real, horizon=1, periods_per_year=252)
    # positions +1 -1 +1 0 -1 -> returns +0.01 -0.02 -0.03 0 +0.01
    assert bt.total_log_return == pytest.approx(-0.03)
    assert bt.buy_and_hold_log_return == pytest.approx(0.04)
    assert bt.hit_rate == pytest.approx(2 / 4)
    assert bt.max_drawdown == pytest.approx(0.05)  # from +0.01 down to -0.04
    assert bt.turnover == pytest.approx((1 + 2 + 2 + 1 + 1) / 5)
    strategy = np.array([0.01, -0.02, -0.03, 0.0, 0.01])
    assert bt.sharpe_annualized == pytest.approx(strategy.mean() / strategy.std(ddof=1) * np.sqrt(252))


def test_horizon_takes_non_overlapping_trades_and_costs_apply():
    pred = np.ones(10)
    real = np.full(10, 0.01)
    bt = sign_backtest(pred, real, horizon=5, periods_per_year=1000, cost_per_unit=0.001)
    assert bt.trades == 2 and bt.total_log_return == pytest.approx(0.02 - 0.001)
    perfect = sign_backtest(real, real, horizon=1, periods_per_year=1000)
    assert perfect.hit_rate == 1.0 and perfect.max_drawdown == 0.0
    with pytest.raises(ValueError, match="no finite"):
        sign_backtest(np.array([np.nan]), np.array([0.1]), horizon=1, periods_per_year=1)
