"""Incremental refresh (trading_assets.incremental): extending the previous raw candles, indicators and features
gives what a full computation gives, at every splice point, with gaps, breaks and a sliding window."""

import numpy as np
import pandas as pd
import pytest

from trading_assets.calendars import get_calendar
from trading_assets.candles import fill_candle_grid
from trading_assets.execution import Execution
from trading_assets.features import FeatureConfig, build_features, extend_features, lead_in_bars
from trading_assets.incremental import Lineage, differences, pack_mask, resume_point, splice, unpack_mask
from trading_assets.indicators import compute_indicators, extend_indicators, prepare_candles
from trading_assets.partition import Partition
from trading_assets.provenance import Provenance
from trading_assets.sources import SyntheticSource
from trading_assets.store import CollectResult
from trading_assets.window import FILLED, WindowPlan, WindowRequest, assemble_window, extend_filled, tail_start
from trading_assets_tests.conftest import END

P = Partition("KRW-BTC", "5m")
REFETCH = 3
CANDLES = SyntheticSource(missing_rate=0.05).fetch(
    P.symbol, P.timeframe, END - pd.Timedelta(days=40), END + pd.Timedelta(days=1)
)


def _plan(end: pd.Timestamp, days: float = 6.0) -> WindowPlan:
    return WindowPlan.of(
        P, get_calendar(), WindowRequest(days=days, end=end.isoformat()), lead_in_bars(FeatureConfig())
    )


def _candles(drop: tuple[str, str] | None = None) -> pd.DataFrame:
    """The synthetic candles (5 % of bars missing: fills), with a long hole (a break) where asked."""
    if drop is None:
        return CANDLES
    return CANDLES.loc[(CANDLES.index < pd.Timestamp(drop[0])) | (CANDLES.index >= pd.Timestamp(drop[1]))]


def _full(plan: WindowPlan, candles: pd.DataFrame):
    filled = fill_candle_grid(candles, P.timeframe, plan.fetch_start, plan.span_end, plan.calendar, 5)
    window = assemble_window(plan, filled, CollectResult(), "synthetic")
    Lineage.full(token="raw-" + plan.span_end.isoformat()).attach(window.frame)
    return window


def _extended(previous: pd.DataFrame, plan: WindowPlan, candles: pd.DataFrame):
    start = tail_start(plan, previous, REFETCH)
    assert start is not None
    tail = fill_candle_grid(candles, P.timeframe, start, plan.span_end, plan.calendar, 5)
    filled = extend_filled(plan, previous, tail)
    assert filled is not None
    window = assemble_window(plan, filled, CollectResult(), "synthetic")
    meet = tail.frame.index[~tail.filled_mask][0]
    Lineage.of(previous).extended_by(None, meet, token="raw-" + plan.span_end.isoformat()).attach(window.frame)
    return window


def _assert_same_window(extended, full) -> None:
    pd.testing.assert_frame_equal(extended.frame, full.frame)
    np.testing.assert_array_equal(extended.filled.filled_mask, full.filled.filled_mask)
    assert extended.filled.breaks == full.filled.breaks
    assert extended.filled.leading_missing == full.filled.leading_missing
    assert extended.provenance == full.provenance
    assert extended.frame.attrs[FILLED] == full.frame.attrs[FILLED]


def _break_cases():
    tail_starts = END - pd.Timedelta(hours=1) - (REFETCH + 5 + 2) * pd.Timedelta(minutes=5)  # see tail_start
    kept = END - pd.Timedelta(days=3)
    return {
        "fills only": None,
        "break in the kept rows": (kept.isoformat(), (kept + pd.Timedelta(hours=2)).isoformat()),
        "break across the splice point": (  # the tail's first real bar comes after the break: they meet there
            (tail_starts - pd.Timedelta(minutes=20)).isoformat(),
            (tail_starts + pd.Timedelta(minutes=30)).isoformat(),
        ),
        "break in the new bars": (
            (END + pd.Timedelta(minutes=5)).isoformat(),
            (END + pd.Timedelta(minutes=55)).isoformat(),
        ),
    }


@pytest.mark.parametrize("case", list(_break_cases()))
def test_extending_the_raw_candles_gives_the_full_window(case):
    candles = _candles(_break_cases()[case])
    first = _full(_plan(END - pd.Timedelta(hours=1)), candles)
    for end in (END, END + pd.Timedelta(minutes=5), END + pd.Timedelta(hours=2)):  # the window slides forward
        plan = _plan(end)
        extended = _extended(first.frame, plan, candles)
        _assert_same_window(extended, _full(plan, candles))
        first = extended


def test_a_revised_candle_at_the_splice_point_or_another_recipe_is_computed_in_full():
    previous = _full(_plan(END - pd.Timedelta(hours=1)), CANDLES).frame
    plan = _plan(END)
    start = tail_start(plan, previous, REFETCH)
    revised = CANDLES.copy()
    revised.loc[revised.index >= start, "close"] *= 1.01  # the exchange corrected the bars the tail reads
    tail = fill_candle_grid(revised, P.timeframe, start, plan.span_end, plan.calendar, 5)
    assert extend_filled(plan, previous, tail) is None
    longer = _plan(END, days=9.0)
    assert tail_start(longer, previous, REFETCH) is None  # the window grows backwards
    other = WindowPlan.of(P, get_calendar(), WindowRequest(days=6.0, end=END.isoformat(), max_fill_bars=2), 505)
    assert tail_start(other, previous, REFETCH) is None  # another fill policy
    far = _plan(END + pd.Timedelta(days=30))
    assert tail_start(far, previous, REFETCH) is None  # jumps past the stored window


def _indicators(window):
    provenance = Provenance.of(window.frame)
    candles, _ = prepare_candles(window.frame, P)
    first = int(candles.index.searchsorted(window.plan.span_start)) - provenance.lead_in_bars
    keep_from = candles.index[first]
    return candles, keep_from, provenance


@pytest.mark.parametrize("case", ["fills only", "break across the splice point"])
def test_extending_indicators_and_features_gives_a_full_computation_within_the_warmup_tolerance(case):
    candles = _candles(_break_cases()[case])
    config, trade = FeatureConfig(), Execution()
    before = _full(_plan(END - pd.Timedelta(hours=1)), candles)
    raw, keep_from, provenance = _indicators(before)
    indicators = Lineage.full(before.frame.attrs["lineage"]["token"]).attach(
        provenance.attach(compute_indicators(raw, keep_from).frame)
    )
    features = build_features(indicators, P, config, provenance.span[0], trade).frame
    Lineage.full(Lineage.of(indicators).token).attach(features)
    for end in (END, END + pd.Timedelta(hours=2), END + pd.Timedelta(hours=5), END + pd.Timedelta(hours=9)):
        window = _extended(before.frame, _plan(end), candles)
        raw, keep_from, provenance = _indicators(window)
        resume = resume_point(indicators, window.frame, keep_from)
        assert resume == pd.Timestamp(Lineage.of(window.frame).changed_from)
        history = provenance.warmup_bars - provenance.lead_in_bars
        extended = extend_indicators(indicators, raw, keep_from, resume, history).frame
        full = compute_indicators(raw, keep_from).frame
        assert extended.index.equals(full.index) and "obv" in full  # the anchored running total moved too
        assert differences(extended, full, full.index[0], provenance.warmup_tolerance) == {}
        Lineage.of(indicators).extended_by(Lineage.of(window.frame).token, resume).attach(provenance.attach(extended))
        feature_resume = resume_point(features, extended, provenance.span[0])
        assert feature_resume is not None
        more = extend_features(features, extended, P, config, provenance.span[0], trade, feature_resume).frame
        reference = build_features(full, P, config, provenance.span[0], trade).frame
        assert differences(more, reference, reference.index[0], provenance.warmup_tolerance) == {}
        assert more.dtypes.equals(reference.dtypes)
        Lineage.of(features).extended_by(Lineage.of(extended).token, feature_resume).attach(more)
        before, indicators, features = window, extended, more


def test_resume_point_needs_the_input_the_previous_output_was_computed_from():
    index = pd.date_range(END, periods=10, freq="5min", tz="UTC")
    previous = Lineage.full("a").attach(pd.DataFrame({"x": range(10)}, index=index))
    extends_a = Lineage.full(token="a").extended_by(None, index[7], token="b").attach(pd.DataFrame(index=index))
    extends_c = Lineage.full(token="c").extended_by(None, index[7], token="d").attach(pd.DataFrame(index=index))
    assert resume_point(previous, extends_a, index[0]) == index[7]
    assert resume_point(previous, extends_c, index[0]) is None  # computed from another frame
    assert resume_point(previous, Lineage.full(token="a").attach(pd.DataFrame(index=index)), index[0]) is None
    assert resume_point(previous, extends_a, index[0] - pd.Timedelta(minutes=5)) is None  # grows backwards
    late = Lineage.full(token="a").extended_by(None, index[-1] + pd.Timedelta(hours=1)).attach(pd.DataFrame())
    assert resume_point(previous, late, index[0]) == index[-1]  # never past the previous output's last row
    tail = pd.DataFrame({"x": [70, 80, 90]}, index=index[7:])
    assert list(splice(previous, tail, index[2], index[7])["x"]) == [2, 3, 4, 5, 6, 70, 80, 90]


def test_differences_name_the_columns_and_rows_beyond_the_tolerance():
    index = pd.date_range(END, periods=5, freq="5min", tz="UTC")
    full = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0, 100.0], "b": [0.0, np.nan, 1.0, 1.0, 1.0]}, index=index)
    assert differences(full.copy(), full, index[0], 0.0) == {}
    moved = full.copy()
    moved.loc[index[3], "a"] += 1e-3
    assert differences(moved, full, index[0], 1e-6) == {"a": pytest.approx(1e-5)}  # relative to the column's scale
    assert differences(moved, full, index[0], 1e-4) == {}
    assert differences(moved, full, index[4], 1e-6) == {}  # before the cut: not compared
    holes = full.copy()
    holes.loc[index[2], "b"] = np.nan
    assert differences(holes, full, index[0], 0.0) == {"b": "NaN in one frame only"}
    assert "rows" in differences(full.iloc[:-1], full, index[0], 0.0)


def test_lineage_counts_refreshes_and_packs_the_fill_mask():
    lineage = Lineage.full("in")
    assert not lineage.incremental and not lineage.verification_due(1)
    chain = [lineage]
    for i in range(4):
        chain.append(chain[-1].extended_by("in", END + pd.Timedelta(minutes=i)))
    assert [step.depth for step in chain] == [0, 1, 2, 3, 4]
    assert [step.verification_due(2) for step in chain] == [False, False, True, False, True]
    assert chain[2].base == chain[1].token and chain[2].changed_from == (END + pd.Timedelta(minutes=1)).isoformat()
    mask = np.random.default_rng(1).random(1001) < 0.1
    np.testing.assert_array_equal(unpack_mask(pack_mask(mask), len(mask)), mask)


def test_rows_whose_label_reads_a_revised_bar_are_computed_again():
    """A bar revised just after the splice point changes the label (the trade) of the rows before it."""
    config, trade = FeatureConfig(), Execution()
    before = _full(_plan(END - pd.Timedelta(hours=1)), CANDLES)
    raw, keep_from, provenance = _indicators(before)
    indicators = Lineage.full("raw").attach(provenance.attach(compute_indicators(raw, keep_from).frame))
    features = Lineage.full(Lineage.of(indicators).token).attach(
        build_features(indicators, P, config, provenance.span[0], trade).frame
    )
    plan = _plan(END)
    revised = CANDLES.copy()
    meet = _extended(before.frame, plan, CANDLES).frame.attrs["lineage"]["changed_from"]
    revised.loc[pd.Timestamp(meet) + pd.Timedelta(minutes=5), "open"] *= 1.02  # the bar after the splice point
    window = _extended(before.frame, plan, revised)
    raw, keep_from, provenance = _indicators(window)
    full = compute_indicators(raw, keep_from).frame
    extended = Lineage.of(indicators).extended_by("x", pd.Timestamp(meet)).attach(provenance.attach(full.copy()))
    resume = resume_point(features, extended, provenance.span[0])
    more = extend_features(features, extended, P, config, provenance.span[0], trade, resume).frame
    reference = build_features(full, P, config, provenance.span[0], trade).frame
    assert differences(more, reference, reference.index[0], provenance.warmup_tolerance) == {}


def test_the_first_rows_of_a_slid_window_are_clipped_as_a_full_computation_clips_them():
    """The clipping of the span's first rows reads the whole block before theirs: the lead-in covers it with
    complete feature rows even when the span starts near a block's end (here 19 h into a 20 h block, with volume
    bursts that clipping must cut)."""
    config, trade = FeatureConfig(), Execution()
    later = END + pd.Timedelta(minutes=15 * 60 + 10)
    candles = CANDLES.copy()
    span_start = Provenance.of(_full(_plan(later), candles).frame).span[0]
    burst = (candles.index >= span_start) & (candles.index < span_start + pd.Timedelta(minutes=30))
    candles.loc[burst, "volume"] *= 500
    before = _full(_plan(later - pd.Timedelta(hours=3)), candles)
    raw, keep_from, provenance = _indicators(before)
    indicators = Lineage.full(Lineage.of(before.frame).token).attach(
        provenance.attach(compute_indicators(raw, keep_from).frame)
    )
    features = Lineage.full(Lineage.of(indicators).token).attach(
        build_features(indicators, P, config, provenance.span[0], trade).frame
    )
    window = _extended(before.frame, _plan(later), candles)
    raw, keep_from, provenance = _indicators(window)
    full_indicators = compute_indicators(raw, keep_from).frame
    history = provenance.warmup_bars - provenance.lead_in_bars
    resume = resume_point(indicators, window.frame, keep_from)
    extended = extend_indicators(indicators, raw, keep_from, resume, history).frame
    Lineage.of(indicators).extended_by("x", resume).attach(provenance.attach(extended))
    more = extend_features(features, extended, P, config, provenance.span[0], trade, resume).frame
    reference = build_features(full_indicators, P, config, provenance.span[0], trade).frame
    assert differences(more, reference, reference.index[0], provenance.warmup_tolerance) == {}
