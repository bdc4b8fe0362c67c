import numpy as np
import pandas as pd
import pytest

from trading_assets.candles import fill_candle_grid
from trading_assets.errors import CandleDataError
from trading_assets.execution import Execution
from trading_assets.features import (
    FEATURE_SETS,
    TARGET,
    Feature,
    FeatureConfig,
    build_features,
    clip_outliers,
    feature_set,
    inputs_of,
    lead_in_bars,
)
from trading_assets.indicators import compute_indicators, indicator_names, warmup_bars
from trading_assets.partition import Partition
from trading_assets.sources import SyntheticSource
from trading_assets_tests.conftest import END

SPAN_START = END - pd.Timedelta(days=3)


def _indicators(end=END):
    start = SPAN_START - warmup_bars() * pd.Timedelta(minutes=5)
    raw = SyntheticSource(seed=21).fetch("KRW-ETH", "5m", start, end)
    return compute_indicators(fill_candle_grid(raw, "5m", start, end).frame, SPAN_START).frame


@pytest.fixture(scope="module")
def indicators():
    return _indicators()


def test_model_ready_float32_with_target(indicators):
    result = build_features(indicators, Partition("KRW-ETH", "5m"))
    frame = result.frame
    assert (frame.dtypes == "float32").all() and TARGET in frame.columns
    assert np.isfinite(frame.to_numpy()).all()
    # the label is the trade: bought at the next bar's open, sold at the open after (the default execution)
    open_ = indicators["open"]
    expected_target = np.log(open_.shift(-2) / open_.shift(-1)).reindex(frame.index)
    np.testing.assert_allclose(frame[TARGET], expected_target, rtol=1e-5)
    assert frame.index[-1] == indicators.index[-3]  # the last two bars' trades have not ended
    by_close = build_features(
        indicators, Partition("KRW-ETH", "5m"), execution=Execution(fill="close", delay_bars=2)
    ).frame
    close = indicators["close"]
    np.testing.assert_allclose(
        by_close[TARGET], np.log(close.shift(-3) / close.shift(-2)).reindex(by_close.index), rtol=1e-5
    )
    assert frame.index[0] == indicators.index[20]  # 20-bar feature lookback
    assert result.report.rows_dropped == 20


def test_features_are_unscaled_and_start_invariant():
    """A feature at bar t does not depend on where the loaded history starts (beyond the lead-in)."""
    step = pd.Timedelta(minutes=5)
    span_start = SPAN_START
    lead = lead_in_bars(FeatureConfig()) * step
    frames = []
    for extra_bars in (0, 137, 1000):  # histories starting at unaligned points
        start = span_start - lead - (warmup_bars() + extra_bars) * step
        raw = SyntheticSource(seed=21).fetch("KRW-ETH", "5m", start, END)
        ind = compute_indicators(fill_candle_grid(raw, "5m", start, END).frame, span_start - lead).frame
        frames.append(build_features(ind, Partition("KRW-ETH", "5m"), span_start=span_start).frame)
    assert frames[0].index[0] == span_start
    for other in frames[1:]:
        pd.testing.assert_frame_equal(other, frames[0], rtol=1e-6)
    raw_returns = np.log(frames[0]["ret_1"].abs().mean())
    assert -12 < raw_returns < -3  # log returns in return units, not z-scores


def test_every_indicator_feeds_the_default_feature_set():
    """An indicator computed but never used by the model is a mistake: add a feature for it."""
    assert set(indicator_names()) <= inputs_of(feature_set("default").own)


def test_feature_sets_are_named_and_checked(monkeypatch, indicators):
    toy = (
        Feature("ret_1", lambda c: np.diff(np.log(c["close"]), prepend=np.nan)),
        Feature("rsi", lambda c: c["rsi_14"]),
    )
    monkeypatch.setitem(FEATURE_SETS, "toy", toy)
    frame = build_features(indicators, Partition("KRW-ETH", "5m"), FeatureConfig(feature_set="toy")).frame
    assert list(frame.columns) == ["ret_1", "rsi", TARGET]
    with pytest.raises(ValueError, match="unknown feature set 'nope'"):
        feature_set("nope")
    monkeypatch.setitem(FEATURE_SETS, "bad", (Feature("target", lambda c: c["close"]),))
    with pytest.raises(ValueError, match="repeats a name or uses 'target'"):
        feature_set("bad")


def test_no_look_ahead(indicators):
    full = build_features(indicators, Partition("KRW-ETH", "5m"))
    for cut in (indicators.index[400], indicators.index[len(indicators) // 2]):
        truncated = _indicators(end=cut + pd.Timedelta(minutes=5))  # candles up to and including `cut`
        assert truncated.index[-1] == cut
        part = build_features(truncated, Partition("KRW-ETH", "5m"), span_start=None).frame
        common = part.index
        assert len(common) > 100
        pd.testing.assert_frame_equal(part, full.frame.loc[common])


def test_backward_fill_would_be_caught(indicators):
    """The no-look-ahead comparison above is sensitive: a backward fill breaks it."""
    holes = indicators.copy()
    holes.iloc[300:310, holes.columns.get_loc("rsi_14")] = np.nan
    cut = holes.index[305]
    full = build_features(holes, Partition("KRW-ETH", "5m"), FeatureConfig(ffill_limit=10))
    part = build_features(holes.loc[:cut], Partition("KRW-ETH", "5m"), FeatureConfig(ffill_limit=10))
    pd.testing.assert_frame_equal(part.frame, full.frame.loc[part.frame.index])
    leaky = holes.bfill()
    full_leaky = build_features(leaky, Partition("KRW-ETH", "5m"), span_start=None).frame
    part_leaky = build_features(holes.loc[:cut].bfill(), Partition("KRW-ETH", "5m"), span_start=None).frame
    assert not full_leaky.loc[part_leaky.index].equals(part_leaky)


def test_pollution_is_coerced_and_reported_or_stops(indicators):
    polluted = indicators.astype({"rsi_14": object})
    polluted.iloc[[50, 51], polluted.columns.get_loc("rsi_14")] = "KRW-ETH"
    polluted["market"] = "KRW-ETH"
    result = build_features(polluted, Partition("KRW-ETH", "5m"))
    assert result.report.pollution.coerced == {"rsi_14": 2}
    assert "'KRW-ETH'" in result.report.pollution.examples["rsi_14"][0]
    assert "non-numeric" in result.report.pollution.dropped_columns["market"]
    assert result.report.filled["rsi_14"] == 2  # forward-filled, never back-filled
    clean = build_features(indicators, Partition("KRW-ETH", "5m")).frame
    t = indicators.index[51]
    assert result.frame.loc[t, "rsi_14"] == clean.loc[indicators.index[49], "rsi_14"]
    polluted.iloc[:, polluted.columns.get_loc("rsi_14")] = "KRW-ETH"
    with pytest.raises(CandleDataError, match="KRW-ETH 5m column 'rsi_14'"):
        build_features(polluted, Partition("KRW-ETH", "5m"))


def test_forward_fill_has_a_limit(indicators):
    holes = indicators.copy()
    holes.iloc[200:209, holes.columns.get_loc("adx_14")] = np.nan
    result = build_features(holes, Partition("KRW-ETH", "5m"), FeatureConfig(ffill_limit=5))
    assert result.report.filled["adx_14"] == 5
    assert result.report.rows_dropped == 20 + 4
    assert holes.index[205] not in result.frame.index and holes.index[204] in result.frame.index


def test_outlier_clipping_uses_the_previous_block_only():
    rng = np.random.default_rng(0)
    idx = pd.date_range("2024-01-01 01:20", periods=1000, freq="1min", tz="UTC")  # starts a 100-minute epoch block
    frame = pd.DataFrame({"x": rng.standard_normal(1000)}, index=idx)
    frame.iloc[550, 0] = 100.0
    frame.iloc[50, 0] = 100.0  # first block: nothing to compare with, left alone
    clipped, counts = clip_outliers(frame, "1m", window=100, k=5.0)
    assert clipped["x"].iloc[50] == 100.0
    block = frame["x"].iloc[400:500]
    med = block.median()
    deviation = (block - med).abs()
    scale = max(deviation.median() * 1.4826, deviation.mean() * 1.2533)
    assert clipped["x"].iloc[550] == pytest.approx(med + 5 * scale, rel=1e-6)
    assert counts["x"] >= 1
    # causal: clipping a prefix gives the prefix of the clipped whole
    prefix, _ = clip_outliers(frame.iloc[:560], "1m", window=100, k=5.0)
    pd.testing.assert_frame_equal(prefix, clipped.iloc[:560])


def test_zero_inflated_column_is_not_clipped_to_nothing():
    """Real 1m returns are often exactly 0 (flat and filled bars); the MAD alone clips ~4 % here."""
    rng = np.random.default_rng(1)
    n = 2400
    moves = rng.standard_normal(n) * 1e-3 * (rng.random(n) < 0.6)  # 40 % zeros
    idx = pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC")
    frame = pd.DataFrame({"ret": moves}, index=idx)
    _, counts = clip_outliers(frame, "1m", window=240, k=6.0)
    assert counts["ret"] < 0.01 * n


def test_clipping_blocks_are_aligned_to_time_not_to_the_first_row():
    rng = np.random.default_rng(2)
    idx = pd.date_range("2024-01-01 00:37", periods=1500, freq="1min", tz="UTC")
    frame = pd.DataFrame({"x": rng.standard_normal(1500)}, index=idx)
    frame.iloc[1200, 0] = 50.0
    whole, _ = clip_outliers(frame, "1m", window=100, k=5.0)
    later, _ = clip_outliers(frame.iloc[333:], "1m", window=100, k=5.0)
    first_full = pd.Timestamp("2024-01-01 08:00", tz="UTC")  # blocks start 01:20 + k x 100 min; 06:20 is complete
    pd.testing.assert_frame_equal(later.loc[first_full:], whole.loc[first_full:])
    assert whole["x"].iloc[1200] < 50.0
