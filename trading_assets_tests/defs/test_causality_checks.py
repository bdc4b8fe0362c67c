"""Look-ahead and warm-up checks on real materializations: clean, leaky feature, short warm-up."""

import numpy as np
import pandas as pd
import pytest

from trading_assets.causality import cut_points
from trading_assets.defs import defs
from trading_assets.defs.partitions import partition_key
from trading_assets.features import DEFAULT_FEATURES, FEATURE_SETS, Feature, FeatureConfig, lead_in_bars
from trading_assets.indicators import warmup_bars
from trading_assets_tests.conftest import END

KEY = partition_key("KRW-BTC", "5m")


LEAD_IN = lead_in_bars(FeatureConfig())


def run(instance, tolerance=None, feature_set="default"):
    config = {"days": 3.0, "end": END.isoformat(), **({"warmup_tolerance": tolerance} if tolerance else {})}
    return defs.resolve_job_def("market_data_job").execute_in_process(
        partition_key=KEY,
        instance=instance,
        run_config={
            "ops": {"raw_candles": {"config": config}},
            "resources": {"feature_config": {"config": {"feature_set": feature_set}}},
        },
        raise_on_error=False,
    )


def check(result, asset, name):
    [e] = [
        e
        for e in result.get_asset_check_evaluations()
        if e.asset_key.to_user_string() == asset and e.check_name == name
    ]
    return e, {k: v.value for k, v in e.metadata.items()}


@pytest.fixture
def leaky(monkeypatch):
    """Declare the feature set 'leaky': the default features plus one; runs select it by name."""

    def register(name, fn):
        monkeypatch.setitem(FEATURE_SETS, "leaky", (*DEFAULT_FEATURES, Feature(name, fn)))

    return register


def test_clean_partition_passes_both(instance):
    result = run(instance)
    assert result.success
    for asset in ("features", "indicators"):
        evaluation, meta = check(result, asset, "no_look_ahead")
        assert evaluation.passed and meta["non_causal_columns"] == [] and len(meta["cut_points"]) == 3
        assert evaluation.partition == str(KEY)
    evaluation, meta = check(result, "indicators", "warmup_sufficient")
    assert evaluation.passed and meta["moved_columns"] == [] and meta["bars_needed"] == 0
    assert meta["warmup_bars"] == warmup_bars() and meta["lead_in_bars"] == LEAD_IN
    assert meta["compared_with_bars"] == 2 * (warmup_bars() + LEAD_IN)


def _first_cut_position(features_index, indicators_index):
    cuts = cut_points(features_index, str(KEY))
    return cuts, int(indicators_index.get_loc(cuts[0]))


def test_backward_fill_is_caught_with_column_and_timestamp(instance, leaky, data_dir):
    def sparse_then_backfilled(col):
        x = col["rsi_14"].copy()
        x[np.arange(len(x)) % 50 != 0] = np.nan
        return pd.Series(x).bfill().to_numpy()

    leaky("leaky_bfill", sparse_then_backfilled)
    result = run(instance, feature_set="leaky")
    assert not result.success
    evaluation, meta = check(result, "features", "no_look_ahead")
    assert not evaluation.passed and evaluation.severity.value == "ERROR"
    assert [d["column"] for d in meta["non_causal_columns"]] == ["leaky_bfill"]
    feats = pd.read_parquet(data_dir / "assets" / "features" / "KRW-BTC" / "5m.parquet")
    ind = pd.read_parquet(data_dir / "assets" / "indicators" / "KRW-BTC" / "5m.parquet")
    cuts, c = _first_cut_position(feats.index, ind.index)
    anchor = c - c % 50
    assert meta["first_column"] == "leaky_bfill"
    assert meta["first_timestamp"] == ind.index[anchor + 1].isoformat()
    assert meta["non_causal_columns"][0]["cut"] == cuts[0].isoformat()
    assert meta["non_causal_columns"][0]["max_abs_diff"] > 0
    failure = result.get_step_failure_events()[0].event_specific_data.error.to_string()
    assert "blocking asset check failed" in failure


def test_centred_window_is_caught_at_the_row_before_the_cut(instance, leaky, data_dir):
    leaky(
        "leaky_centred",
        lambda col: pd.Series(col["close"]).rolling(5, center=True).mean().to_numpy() / col["close"] - 1,
    )
    result = run(instance, feature_set="leaky")
    evaluation, meta = check(result, "features", "no_look_ahead")
    assert not evaluation.passed
    assert [d["column"] for d in meta["non_causal_columns"]] == ["leaky_centred"]
    feats = pd.read_parquet(data_dir / "assets" / "features" / "KRW-BTC" / "5m.parquet")
    first_cut = cut_points(feats.index, str(KEY))[0]
    assert meta["first_timestamp"] == (first_cut - pd.Timedelta(minutes=5)).isoformat()


def test_too_short_warmup_is_caught(instance):
    result = run(instance, tolerance=0.3)
    assert result.success  # WARN does not block
    evaluation, meta = check(result, "indicators", "warmup_sufficient")
    assert not evaluation.passed and evaluation.severity.value == "WARN"
    moved = {d["column"]: d for d in meta["moved_columns"]}
    assert {"adx_14", "rsi_14", "ema_26", "macd_signal"} <= set(moved)
    assert "sma_20" not in moved and "close" not in moved
    assert (
        meta["warmup_bars"]
        == warmup_bars(0.3)
        < meta["bars_needed"]
        == max(d["bars_to_converge"] for d in moved.values())
    )
    assert moved["adx_14"]["bars_to_converge"] > moved["rsi_14"]["bars_to_converge"]
    assert f"5m needs more than {meta['warmup_bars']} warm-up bars" in evaluation.description
    # the look-ahead checks are unaffected by the warm-up length
    assert check(result, "indicators", "no_look_ahead")[0].passed


def test_checks_can_be_switched_off(instance, leaky):
    leaky("leaky_centred", lambda col: pd.Series(col["close"]).rolling(5, center=True).mean().to_numpy())
    config = {
        "ops": {
            "raw_candles": {"config": {"days": 3.0, "end": END.isoformat()}},
            "features_no_look_ahead": {"config": {"enabled": False}},
            "indicators_warmup_sufficient": {"config": {"enabled": False}},
        },
        "resources": {"feature_config": {"config": {"feature_set": "leaky"}}},
    }
    result = defs.resolve_job_def("market_data_job").execute_in_process(
        partition_key=KEY, instance=instance, run_config=config, raise_on_error=False
    )
    evaluation, meta = check(result, "features", "no_look_ahead")
    assert evaluation.passed and meta["skipped"] is True


def test_start_dependent_feature_is_caught_by_the_warmup_check(instance, leaky):
    """A running total from the first loaded row is causal (no look-ahead) but depends on where history starts."""
    leaky("cumulative_return", lambda col: np.nancumsum(np.diff(np.log(col["close"]), prepend=np.nan)))
    config = {
        "ops": {
            "raw_candles": {"config": {"days": 3.0, "end": END.isoformat()}},
        },
        "resources": {"feature_config": {"config": {"feature_set": "leaky"}}},  # one declaration for every step
    }
    result = defs.resolve_job_def("market_data_job").execute_in_process(
        partition_key=KEY, instance=instance, run_config=config, raise_on_error=False
    )
    assert check(result, "features", "no_look_ahead")[0].passed  # causal...
    evaluation, meta = check(result, "indicators", "warmup_sufficient")
    assert not evaluation.passed and evaluation.severity.value == "WARN"  # ...but not start-invariant
    assert [d["column"] for d in meta["moved_columns"]] == ["features.cumulative_return"]


def test_cut_points_stay_within_the_first_rows_of_a_long_span():
    long = pd.date_range("2025-01-01", periods=525_600, freq="1min", tz="UTC")
    short = long[:2_000]
    for index in (long, short):
        cuts = cut_points(index, "KRW-BTC|1m")
        assert len(cuts) == 3 and cuts == sorted(cuts) and cuts[0] > index[0]
    assert max(cut_points(long, "KRW-BTC|1m")) < long[50_000]  # a bounded recompute on a year of 1m
    assert cut_points(short, "KRW-BTC|1m")[-1] > short[900]  # a short span: fractions of the whole span
    assert max(cut_points(long, "KRW-BTC|1m", max_rows=None)) > long[250_000]


def test_drift_comparison_aligns_rows_as_reindex_does():
    """The warm-up comparison takes the stored rows out of the longer frame: a slice when they are a run of
    its rows, else a reindex (rows it lacks are NaN, and count as moved)."""
    from trading_assets.causality import _drifts, _rows_of, _spreads

    index = pd.date_range("2026-01-01", periods=50, freq="5min", tz="UTC", name="open_time")
    longer = pd.DataFrame({"a": np.arange(50.0), "b": np.linspace(1, 2, 50)}, index=index)
    run = index[10:40]
    assert _rows_of(longer, run).equals(longer.reindex(run))
    assert np.shares_memory(_rows_of(longer, run)["a"].to_numpy(), longer["a"].to_numpy())  # a view, no copy
    holey = run.delete(5)  # not a run of longer's rows; and one row longer lacks
    for wanted in (holey, holey.append(pd.DatetimeIndex([index[-1] + pd.Timedelta("5min")]))):
        pd.testing.assert_frame_equal(_rows_of(longer, wanted), longer.reindex(wanted))
    with pytest.raises(ValueError):  # duplicated rows: as reindex, never a silent slice
        _rows_of(pd.concat([longer.iloc[:20], longer.iloc[19:]]), run)
    naive = longer.tz_localize(None)  # another index type: no searchsorted across it, reindex's answer
    pd.testing.assert_frame_equal(_rows_of(naive, run), naive.reindex(run))
    stored = longer.reindex(run).copy()
    stored.iloc[:3, 0] += 1.0  # the first rows moved with more history
    drifts, last = _drifts(stored, _rows_of(longer, run), warmup=7, tolerance=1e-6, scales=_spreads(stored))
    assert [(d.column, d.max_abs_diff, d.bars_to_converge) for d in drifts] == [("a", 1.0, 7 + 3)]
    assert last == 2
    assert drifts[0].max_rel_diff == pytest.approx(1.0 / stored["a"].to_numpy().std())


def test_the_warmup_audit_compares_the_first_rows_when_the_start_stops_mattering_there():
    """A first try on the first rows gives what the whole frame gives when every difference ends early; a column
    that still differs late is compared over every row."""
    from trading_assets.calendars import get_calendar
    from trading_assets.candles import fill_candle_grid
    from trading_assets.causality import warmup_drifts
    from trading_assets.indicators import compute_indicators
    from trading_assets.partition import Partition
    from trading_assets.sources import SyntheticSource

    start, end = END - pd.Timedelta(days=4), END
    raw = SyntheticSource(seed=5).fetch("KRW-BTC", "1m", start, end)
    candles = fill_candle_grid(raw, "1m", start, end, get_calendar(), 5).frame
    warmup, first = 30, 2000  # a short warm-up: the smoothed indicators still move after it
    stored = compute_indicators(candles.iloc[first - warmup :], candles.index[first]).frame
    partition, args = Partition("KRW-BTC", "1m"), (candles.index[first], warmup, None, 1e-4)
    whole, until = warmup_drifts(stored, candles, partition, *args, rows=None)
    assert len(whole) > 3 and max(d.bars_to_converge for d in whole) < warmup + 500  # moved, near the start only
    assert until == stored.index[-1]
    assert warmup_drifts(stored, candles, partition, *args, rows=1000) == (whole, stored.index[999])
    late = stored.copy()
    late["sma_20"] += 1e-3 * late["sma_20"].std()  # differs on every row: never converges
    drifts, until = warmup_drifts(late, candles, partition, *args, rows=1000)
    [sma] = [d for d in drifts if d.column == "sma_20"]
    assert sma.bars_to_converge == warmup + len(late) and until == late.index[-1]  # every row, not the first 1000


@pytest.mark.parametrize("gap_bars", [0, 2, 40])  # none, filled flat, a break
def test_the_longer_history_fills_only_the_extra_candles_as_filling_all_would(gap_bars):
    from trading_assets.calendars import get_calendar
    from trading_assets.candles import CANDLE_COLUMNS, fill_candle_grid
    from trading_assets.causality import longer_candles
    from trading_assets.provenance import Provenance
    from trading_assets.sources import SyntheticSource

    start, end = END - pd.Timedelta(days=2), END
    stored = SyntheticSource(seed=7).fetch("KRW-BTC", "1m", start, end)
    first = stored.index[1500]
    extra = stored.loc[: first - pd.Timedelta(minutes=1)]
    extra = extra.iloc[: len(extra) - gap_bars]  # the bars before the run's first candle had no trades
    raw = fill_candle_grid(stored.loc[first:], "1m", first, end, get_calendar(), 5).frame
    provenance = Provenance(calendar=get_calendar().name, max_fill_bars=5)
    together = fill_candle_grid(pd.concat([extra, raw[list(CANDLE_COLUMNS)]]), "1m", start, end, get_calendar(), 5)
    pd.testing.assert_frame_equal(
        longer_candles(extra, raw, start, "1m", provenance), together.frame[list(CANDLE_COLUMNS)], check_freq=False
    )


def test_the_warmup_audit_compares_the_features_as_far_as_over_every_row():
    """The first rows are the answer only when the features they feed (the memory past the last moved indicator
    row) lie in them too; a prefix shorter than that memory compares every row."""
    from trading_assets.candles import fill_candle_grid
    from trading_assets.causality import warmup_drifts
    from trading_assets.features import feature_memory_bars
    from trading_assets.indicators import compute_indicators
    from trading_assets.partition import Partition
    from trading_assets.sources import SyntheticSource

    start, end = END - pd.Timedelta(days=4), END
    candles = fill_candle_grid(SyntheticSource(seed=5).fetch("KRW-BTC", "1m", start, end), "1m", start, end).frame
    warmup, first, config = 60, 2000, FeatureConfig()
    stored = compute_indicators(candles.iloc[first - warmup :], candles.index[first]).frame
    args = (Partition("KRW-BTC", "1m"), candles.index[first], warmup, config, 1e-4)
    whole, _ = warmup_drifts(stored, candles, *args, rows=None)
    assert any(d.column.startswith("features.") for d in whole)
    for rows in (600, 3 * feature_memory_bars(config)):  # indicators settled in the first half; short of the reach
        assert warmup_drifts(stored, candles, *args, rows=rows)[0] == whole, rows
