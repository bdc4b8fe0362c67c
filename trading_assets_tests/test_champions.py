"""Champion decisions and the live position rule (trading_assets.champions, trading_assets.signals), no MLflow."""

import json

import numpy as np
import pytest

from trading_assets.champions import ChampionCache, Evidence, decide
from trading_assets.execution import Execution, positions
from trading_assets.partition import Partition
from trading_assets.signals import age_in_bars, next_positions

GOOD = Evidence("linear", edge_pvalue_adj=0.01, edge_t=3.0, net_log_return=0.05, holdout_net_log_return=0.01)


@pytest.mark.parametrize(
    "challenger, reason",
    [
        (None, "not evaluated"),
        (Evidence("gru", 0.2, 1.0, 0.05, 0.01), "no significant net edge"),
        (Evidence("gru", 0.01, 3.0, -0.01, 0.01), "no significant net edge"),
        (Evidence("gru", 0.01, 3.0, 0.05, None), "not the research loop's chosen model"),
        (Evidence("gru", 0.01, 3.0, 0.05, -0.02), "the hold-out does not confirm it"),
    ],
)
def test_the_first_champion_needs_a_significant_edge_after_costs_confirmed_on_the_holdout(challenger, reason):
    decision = decide(challenger, None)
    assert not decision.promote and reason in decision.reason
    assert decide(GOOD, None).promote and "first champion" in decide(GOOD, None).reason


def test_a_challenger_must_beat_the_sitting_champion_on_both():
    assert decide(Evidence("gru", 0.01, 4.0, 0.06, 0.02), GOOD).promote
    weaker_edge = decide(Evidence("gru", 0.01, 2.5, 0.06, 0.02), GOOD)
    assert not weaker_edge.promote and "does not beat the champion's 3" in weaker_edge.reason
    weaker_holdout = decide(Evidence("gru", 0.01, 4.0, 0.06, 0.005), GOOD)
    assert not weaker_holdout.promote and "below the champion's" in weaker_holdout.reason
    assert not decide(GOOD, GOOD).promote  # the same evidence is no improvement
    by_hand = Evidence("gru", 0.3, 1.0, 0.01, None)  # a champion promoted by hand, without a hold-out
    assert decide(GOOD, by_hand).promote and "hold-out 0.01 >= 0" in decide(GOOD, by_hand).reason
    assert not decide(Evidence("gru", 0.5, 9.0, 0.5, 0.5), GOOD).promote  # never without significance
    assert Evidence.from_dict(json.loads(json.dumps(GOOD.as_dict()))) == GOOD


@pytest.mark.parametrize("execution", [Execution(), Execution(side="long_short"), Execution(cost_aware=False)])
def test_live_positions_continue_the_rule_over_the_whole_run(execution):
    rng = np.random.default_rng(3)
    forecasts = rng.normal(0, 2e-3, 400)
    whole = positions(forecasts, execution)
    for cut in (1, 57, 200, 399):
        np.testing.assert_array_equal(next_positions(forecasts[cut:], whole[cut - 1], execution), whole[cut:])


def test_the_cache_points_at_complete_bundles_only(tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "bundle.json").write_text("{}")
    cache, p = ChampionCache(tmp_path / "cache"), Partition("KRW-BTC", "5m")
    assert cache.read(p) is None
    first = cache.write(p, "trading_assets-KRW-BTC-5m", "3", bundle)
    assert first.version == "3" and (first.bundle_dir / "bundle.json").exists()
    assert cache.write(p, "trading_assets-KRW-BTC-5m", "4", bundle).version == "4"
    assert cache.write(p, "trading_assets-KRW-BTC-5m", "3", bundle).bundle_dir == first.bundle_dir  # reused
    (bundle / "bundle.json").write_text('{"other": 1}')  # a reset registry reusing version 3: new content
    other = cache.write(p, "trading_assets-KRW-BTC-5m", "3", bundle)
    assert other.bundle_dir != first.bundle_dir and (other.bundle_dir / "bundle.json").read_text() == '{"other": 1}'
    assert not list((tmp_path / "cache" / "KRW-BTC" / "5m").glob(".*"))  # no staging or pointer leftovers


def test_signal_age_counts_closed_bars():
    import pandas as pd

    last = pd.Timestamp("2026-10-01T00:00Z")
    assert age_in_bars(last, "5m", pd.Timestamp("2026-10-01T00:09Z")) == 0  # the next bar is still forming
    assert age_in_bars(last, "5m", pd.Timestamp("2026-10-01T00:31Z")) == 5
