"""Feature sets that read other partitions: coarser timeframes of the same symbol, a reference symbol."""

import numpy as np
import pandas as pd
import pytest

import trading_assets.features as features_module
from trading_assets.candles import fill_candle_grid
from trading_assets.causality import cut_points, features_look_ahead
from trading_assets.errors import CandleDataError
from trading_assets.execution import Execution
from trading_assets.features import (
    FeatureConfig,
    FeatureContext,
    build_features,
    closed_as_of,
    context_shortfalls,
    feature_columns,
    lead_in_bars,
    older_lent_rows,
    reference_for,
)
from trading_assets.indicators import compute_indicators, warmup_bars
from trading_assets.partition import Partition
from trading_assets.sources import SyntheticSource
from trading_assets.timeframes import get_timeframe
from trading_assets_tests.conftest import END

SPAN_START = END - pd.Timedelta(days=4)
MTF = FeatureConfig(feature_set="multi_timeframe")
CROSS = FeatureConfig(feature_set="cross_asset")


def _candles(symbol: str, timeframe: str, bars_before: int, end=END, seed=21) -> pd.DataFrame:
    start = SPAN_START - bars_before * get_timeframe(timeframe).delta
    raw = SyntheticSource(seed=seed).fetch(symbol, timeframe, start, end)
    return fill_candle_grid(raw, timeframe, start, end).frame


def _indicators(symbol: str, timeframe: str, extra_bars: int = 0, end=END) -> pd.DataFrame:
    lead = lead_in_bars(FeatureConfig())
    candles = _candles(symbol, timeframe, warmup_bars() + lead + extra_bars, end)
    return compute_indicators(candles, SPAN_START - lead * get_timeframe(timeframe).delta).frame


@pytest.fixture(scope="module")
def coarser():
    return FeatureContext((("60m", _indicators("KRW-ETH", "60m")), ("240m", _indicators("KRW-ETH", "240m"))))


@pytest.fixture(scope="module")
def fine():
    return _indicators("KRW-ETH", "5m")


def _lent(frame: pd.DataFrame, names: tuple[str, ...]) -> pd.DataFrame:
    """The coarser features a partition lends, computed on its own (one row per coarser bar)."""
    by_name = {f.name: f for f in features_module.COARSER_FEATURES}
    columns = {c: frame[c].to_numpy(dtype="float64") for c in features_module.input_columns()}
    with np.errstate(divide="ignore", invalid="ignore"):
        return pd.DataFrame({n: by_name[n].fn(columns) for n in names}, index=frame.index)


def test_coarser_bars_join_as_of_their_close(fine, coarser):
    frame = build_features(fine, Partition("KRW-ETH", "5m"), MTF, span_start=SPAN_START, context=coarser).frame
    assert list(frame.columns) == [*feature_columns("multi_timeframe"), "target"]
    assert {"htf1_rsi_14", "htf2_rsi_14", "htf1_ret_1", "htf2_atr_rel"} <= set(frame.columns)
    assert frame.index[0] == SPAN_START and frame.notna().all().all()
    hourly = _lent(coarser.coarser[0][1], ("ret_1", "rsi_14"))
    day = SPAN_START.normalize() + pd.Timedelta(days=1)
    # the 5m bar 10:55 closes at 11:00 with the hour 10:00-11:00: that hour is visible; the bar before sees 09:00
    for bar, hour in (("10:55", "10:00"), ("10:50", "09:00"), ("11:00", "10:00"), ("10:00", "09:00")):
        row, seen = frame.loc[day + pd.Timedelta(bar + ":00")], hourly.loc[day + pd.Timedelta(hour + ":00")]
        assert row["htf1_rsi_14"] == pytest.approx(seen["rsi_14"], rel=1e-5, abs=1e-4)
        assert row["htf1_ret_1"] == pytest.approx(seen["ret_1"], rel=1e-5, abs=1e-7)
    # the same rows, whatever history precedes the 5m span (start invariance holds with the join)
    longer = build_features(
        _indicators("KRW-ETH", "5m", extra_bars=333), Partition("KRW-ETH", "5m"), MTF, SPAN_START, context=coarser
    ).frame
    pd.testing.assert_frame_equal(longer, frame, rtol=1e-6)


def test_look_ahead_check_covers_the_coarser_join(fine, coarser, monkeypatch):
    partition = Partition("KRW-ETH", "5m")
    stored = build_features(fine, partition, MTF, span_start=SPAN_START, context=coarser).frame
    cuts = cut_points(stored.index, partition.key)
    assert features_look_ahead(fine, stored, partition, MTF, cuts, context=coarser) == []

    def by_open_time(index, timeframe, other, other_timeframe, max_age_bars):  # sees a bar from its open on
        return np.searchsorted(pd.DatetimeIndex(other).asi8, index.asi8, side="right") - 1

    monkeypatch.setattr(features_module, "closed_as_of", by_open_time)
    leaky = build_features(fine, partition, MTF, span_start=SPAN_START, context=coarser).frame
    diffs = features_look_ahead(fine, leaky, partition, MTF, cuts, context=coarser)
    assert {d.column for d in diffs} >= {"htf1_rsi_14", "htf2_rsi_14"}
    assert not any(d.column.startswith("rsi") for d in diffs)  # the own columns stay causal


def test_a_set_reading_other_partitions_names_what_it_lacks(fine, coarser):
    partition = Partition("KRW-ETH", "5m")
    with pytest.raises(CandleDataError, match=r"KRW-ETH 5m.*indicators of 60m, 240m.*given none"):
        build_features(fine, partition, MTF, span_start=SPAN_START)
    with pytest.raises(CandleDataError, match=r"KRW-ETH 240m.*1 coarser timeframe\(s\) \(1d\).*serves: 1m, 5m"):
        build_features(fine, Partition("KRW-ETH", "240m"), MTF, context=coarser)
    with pytest.raises(CandleDataError, match="reference symbol's candles"):
        build_features(fine, partition, CROSS, span_start=SPAN_START, context=coarser)
    late = FeatureContext((("60m", coarser.coarser[0][1].loc[SPAN_START:]), coarser.coarser[1]))
    (problem,) = context_shortfalls(late, fine.index, "5m")
    assert problem.startswith("the 60m indicators do not cover the bars from " + fine.index[0].isoformat())
    early = FeatureContext((coarser.coarser[0], ("240m", coarser.coarser[1][1].loc[: END - pd.Timedelta(days=1)])))
    assert "240m indicators do not cover" in context_shortfalls(early, fine.index, "5m")[0]
    assert context_shortfalls(coarser, fine.index, "5m") == []
    # one bar behind at the end (not collected yet): the row closing with the last hour joins the one before
    hourly = coarser.coarser[0][1]
    assert fine.index[-1] + pd.Timedelta(minutes=5) == hourly.index[-1] + pd.Timedelta(hours=1)  # bars meet
    behind = FeatureContext((("60m", hourly.iloc[:-1]), coarser.coarser[1]))
    assert context_shortfalls(behind, fine.index, "5m") == []
    assert older_lent_rows(behind, fine.index, "5m") == {"60m indicators": 1, "240m indicators": 0}  # the last row
    assert older_lent_rows(coarser, fine.index, "5m") == {"60m indicators": 0, "240m indicators": 0}
    two_behind = FeatureContext((("60m", hourly.iloc[:-2]), coarser.coarser[1]))
    assert "60m indicators do not cover" in context_shortfalls(two_behind, fine.index, "5m")[0]
    stale = FeatureContext((("60m", hourly.drop(columns=["rsi_14"])), coarser.coarser[1]))
    assert context_shortfalls(stale, fine.index, "5m") == [
        "the 60m indicators lack the columns ['rsi_14'] (stored by older code? materialize them again)"
    ]


def test_reference_candles_join_bar_by_bar(fine):
    btc = _candles("KRW-BTC", "5m", warmup_bars() + lead_in_bars(FeatureConfig()), seed=3)
    partition = Partition("KRW-ETH", "5m")
    assert reference_for(partition, ("BTC-ETH", "KRW-BTC")) == "KRW-BTC"
    with pytest.raises(CandleDataError, match="no reference symbol for quote currency USDT"):
        reference_for(Partition("USDT-ETH", "5m"), ("KRW-BTC",))
    hole = btc.index[len(btc) // 2]
    context = FeatureContext(reference=("KRW-BTC", btc.drop(index=hole)))
    result = build_features(fine, partition, CROSS, span_start=SPAN_START, context=context)
    frame = result.frame
    assert [c for c in frame.columns if c.startswith("ref_")] == [
        "ref_ret_1",
        "ref_ret_5",
        "ref_ret_20",
        "ref_range_hl",
        "ref_volatility_20",
        "ref_volume_ratio",
    ]
    expected = np.log(btc["close"] / btc["close"].shift(1)).reindex(frame.index)
    at = frame.index.get_loc(hole)
    before, after = frame.index[at - 1], frame.index[at + 1]
    normal = ~frame.index.isin([hole, after])
    np.testing.assert_allclose(frame.loc[normal, "ref_ret_1"], expected[normal], rtol=1e-4, atol=1e-7)
    # the reference's features are of its own bars: the bar after its hole returns since the bar before it
    assert frame.loc[after, "ref_ret_1"] == pytest.approx(np.log(btc["close"][after] / btc["close"][before]), rel=1e-4)
    # a bar the reference lacks is not taken from the bar before or after: it is forward filled, and counted
    assert frame.loc[hole, "ref_ret_1"] == frame.loc[before, "ref_ret_1"]
    assert result.report.filled["ref_ret_1"] >= 1
    assert closed_as_of(pd.DatetimeIndex([hole]), "5m", btc.drop(index=hole).index, "5m", 0).tolist() == [-1]


def test_signals_score_a_multi_timeframe_champion_with_the_joined_bars(fine, coarser):
    """The newest bars are scored from the stored indicators and the joined coarser partitions: the forecasts a
    full recomputation of the features gives."""
    from trading_assets.provenance import Provenance
    from trading_assets.signals import score_new_bars
    from trading_assets.training.config import build_spec
    from trading_assets.training.pipeline import fit_model

    partition = Partition("KRW-ETH", "5m")
    features = build_features(fine, partition, MTF, span_start=SPAN_START, context=coarser).frame
    Provenance(feature_set="multi_timeframe").attach(features)
    bundle = fit_model(features, build_spec({"model": "linear", "seq_len": 8})).bundle
    assert bundle.info["feature_set"] == "multi_timeframe" and "htf2_adx_14" in bundle.feature_columns
    stamp = {"model_name": "m", "model_version": "1", "features_version": "v"}
    after = fine.index[-8]
    scored = score_new_bars(fine, partition, bundle, MTF, Execution(), after, 0.0, stamp, END, coarser).rows
    assert list(scored.index) == list(fine.index[-7:])
    full = build_features(fine, partition, MTF, fine.index[0], keep_unlabelled=True, context=coarser).frame
    expected = bundle.predict(full).reindex(scored.index)
    np.testing.assert_allclose(scored["forecast"], expected, rtol=1e-5)
    with pytest.raises(CandleDataError, match="indicators of 60m, 240m"):  # without them it stops, named
        score_new_bars(fine, partition, bundle, MTF, Execution(), after, 0.0, stamp, END)
