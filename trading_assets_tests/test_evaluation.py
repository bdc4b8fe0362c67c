"""The research statistics by hand: backtest with delay and fees, DM, IC, walk-forward folds."""

import numpy as np
import pandas as pd
import pytest

from trading_assets.evaluation import daily_ic, diebold_mariano, evaluation_table, leaderboard_score, sign_backtest
from trading_assets.splits import walk_forward_folds


def test_sign_backtest_by_hand_with_delay_and_fees():
    pred = np.array([0.1, -0.2, 0.3, 0.0, -0.1])
    ret = np.array([0.01, 0.02, -0.03, 0.05, -0.01])
    same_bar = sign_backtest(pred, ret, bars_per_year=252, fee_bp=0, delay=0)
    # positions +1 -1 +1 0 -1 on returns of the same bar: +0.01 -0.02 -0.03 0 +0.01
    assert same_bar.gross_log_return == pytest.approx(-0.03)
    delayed = sign_backtest(pred, ret, bars_per_year=252, fee_bp=10, delay=1)
    # positions +1 -1 +1 0 act on the next bar: +0.02 +0.03 +0.05 0; changes 1 2 2 1 -> 6 sides x 10 bp
    assert delayed.bars == 4 and delayed.gross_log_return == pytest.approx(0.10)
    assert delayed.net_log_return == pytest.approx(0.10 - 6 * 0.001)
    assert delayed.turnover == pytest.approx(6 / 4)
    assert delayed.break_even_cost_bp == pytest.approx(0.10 / 6 * 1e4)
    assert delayed.buy_and_hold_log_return == pytest.approx(0.02 - 0.03 + 0.05 - 0.01 - 2 * 0.001)
    net = np.array([0.02, 0.03, 0.05, 0.0]) - 0.001 * np.array([1, 2, 2, 1])
    assert delayed.sharpe_annualized == pytest.approx(net.mean() / net.std(ddof=1) * np.sqrt(252))
    with pytest.raises(ValueError, match="need more than 1"):
        sign_backtest(np.array([1.0]), np.array([0.1]), 1, 0, delay=1)


def test_diebold_mariano_separates_skill_from_noise():
    rng = np.random.default_rng(0)
    y = rng.standard_normal(3000)
    skilled = 0.5 * y + 0.5 * rng.standard_normal(3000)
    stat, p = diebold_mariano(skilled - y, -y)
    assert stat > 5 and p < 1e-6
    noise = 0.01 * rng.standard_normal(3000)
    _, p_noise = diebold_mariano(noise - y, -y)
    assert p_noise > 0.05


def test_daily_ic_and_table():
    idx = pd.date_range("2026-01-01", periods=3 * 96, freq="15min", tz="UTC")
    rng = np.random.default_rng(1)
    label = rng.standard_normal(len(idx)) * 1e-3
    frame = pd.DataFrame(
        {
            "model": "m",
            "fold": np.repeat([1, 2, 3], 96),
            "prediction": label + rng.standard_normal(len(idx)) * 5e-4,
            "label": label,
            "next_return": label,
            "baseline_train_mean": 0.0,
            "baseline_ar1": 0.0,
        },
        index=idx,
    )
    ic = daily_ic(idx, frame["prediction"].to_numpy(), label)
    assert len(ic) == 3 and (ic["rank_ic"] > 0.4).all()
    table = evaluation_table(frame, bars_per_year=35040, fee_bp=5)
    assert list(table["scope"]) == ["fold 1", "fold 2", "fold 3", "overall"]
    overall = table[table["fold"] == 0].iloc[0]
    assert overall["samples"] == len(idx) and overall["directional_accuracy"] > 0.6
    assert overall["oos_r2_zero"] > 0 and overall["dm_pvalue"] < 0.01
    assert overall["icir"] == pytest.approx(ic["ic"].mean() / ic["ic"].std(ddof=1))
    zero_labels = frame.assign(label=np.where(np.arange(len(idx)) % 2, label, 0.0))
    half = evaluation_table(zero_labels, 35040, 5).iloc[-1]
    assert half["nonzero_labels"] == len(idx) // 2  # directional accuracy ignores zero moves
    assert leaderboard_score(table).iloc[-1] == min(overall["backtest_net_return_t_stat"], overall["dm_stat"])


@pytest.mark.parametrize("scheme", ["expanding", "rolling"])
def test_walk_forward_folds_learn_strictly_before_their_test_block(scheme):
    folds = walk_forward_folds(1000, folds=4, gap=20, scheme=scheme)
    assert folds[0].test.start == 500 and folds[-1].test.stop == 1000
    for a, b in zip(folds, folds[1:]):
        assert a.test.stop == b.test.start
    for fold in folds:
        assert fold.train.stop + 20 <= fold.validation.start and fold.validation.stop + 20 <= fold.test.start
        if scheme == "rolling":
            assert len(fold.train) + len(fold.validation) + 20 == len(folds[0].train) + len(folds[0].validation) + 20
        else:
            assert fold.train.start == 0
    with pytest.raises(ValueError, match="too few for 4 walk-forward folds"):
        walk_forward_folds(60, folds=4, gap=20)
