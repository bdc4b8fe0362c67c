"""The candle window of a partition (trading_assets.window): span, history, the invalid-bar policy, provenance."""

import pandas as pd
import pytest

from trading_assets.calendars import get_calendar
from trading_assets.candles import fill_candle_grid
from trading_assets.errors import CandleDataError, EmptySourceError
from trading_assets.indicators import warmup_bars
from trading_assets.partition import Partition
from trading_assets.provenance import Provenance
from trading_assets.sources import SyntheticSource
from trading_assets.store import CollectResult
from trading_assets.window import WindowPlan, WindowRequest, assemble_window
from trading_assets_tests.conftest import END

P = Partition("KRW-BTC", "5m")


def _plan(**request) -> WindowPlan:
    return WindowPlan.of(P, get_calendar(), WindowRequest(end=END.isoformat(), **{"days": 1.0, **request}), 50)


def _window(plan: WindowPlan, drop=slice(0, 0), invalid=(), max_fill_bars=5):
    candles = SyntheticSource().fetch(P.symbol, P.timeframe, plan.fetch_start, plan.span_end)
    candles = candles.drop(candles.index[drop])
    filled = fill_candle_grid(candles, P.timeframe, plan.fetch_start, plan.span_end, plan.calendar, max_fill_bars)
    return assemble_window(
        plan, filled, CollectResult(rows_fetched=len(candles), invalid_bars=list(invalid)), "synthetic"
    )


def test_the_plan_loads_the_warmup_and_the_lead_in_before_the_span():
    plan = _plan()
    assert (plan.span_start, plan.span_end) == (END - pd.Timedelta(days=1), END)
    assert plan.warmup == warmup_bars(plan.request.warmup_tolerance) + 50 and plan.lead_in == 50
    assert plan.fetch_start == plan.span_start - plan.warmup * pd.Timedelta(minutes=5)
    assert plan.span_bars() == 288


def test_a_window_carries_its_provenance_and_no_warning_when_complete():
    plan = _plan()
    window = _window(plan)
    provenance = Provenance.of(window.frame)
    assert window.warnings == ()
    assert provenance == window.provenance
    assert (provenance.symbol, provenance.timeframe, provenance.warmup_bars) == ("KRW-BTC", "5m", plan.warmup)
    assert provenance.history_bars == plan.warmup and window.history == plan.warmup
    assert "KRW-BTC 5m: " in window.summary("synthetic")


def test_short_history_and_breaks_are_warned_not_hidden():
    plan = _plan()
    window = _window(plan, drop=slice(0, 30))  # the first 30 warm-up bars missing
    assert any("history starts 30 session bars after the warm-up start" in w for w in window.warnings)
    assert window.history == plan.warmup - 30
    broken = _window(plan, drop=slice(-100, -80))  # 20 bars inside the span: longer than max_fill_bars
    assert any("break (gap longer than 5 bars)" in w for w in broken.warnings)
    assert len(broken.provenance.breaks) == 1


def test_invalid_bars_stop_the_window_only_above_the_fraction_of_the_span():
    plan = _plan(max_invalid_fraction=0.01)  # 2 of 288 bars allowed
    inside = [f"{(END - pd.Timedelta(minutes=5 * (i + 1))).isoformat()}: volume = nan" for i in range(3)]
    before = [f"{(plan.span_start - pd.Timedelta(minutes=5 * (i + 1))).isoformat()}: close = 'x'" for i in range(9)]
    window = _window(plan, invalid=inside[:2] + before)  # bars before the span never count
    assert window.provenance.invalid_bars == 11
    assert any("11 bar(s) with invalid values treated as missing" in w for w in window.warnings)
    with pytest.raises(CandleDataError, match=r"KRW-BTC 5m: 3 of 288 bars of the requested span have invalid"):
        _window(plan, invalid=inside)


def test_a_source_without_candles_in_the_span_is_an_error_naming_the_partition():
    plan = _plan()
    with pytest.raises(EmptySourceError, match="KRW-BTC.*5m.*synthetic has no candles"):
        _window(plan, drop=slice(0, None))


def test_continuity_verdict_separates_errors_from_warnings():
    from trading_assets.quality import ContinuityLimits, judge_continuity

    plan = _plan()
    frame = _window(plan, drop=slice(-100, -80)).frame  # one 20-bar break in the span
    calendar = get_calendar()
    found = judge_continuity(frame, "5m", calendar, ContinuityLimits())
    assert found.errors == [] and found.figures["breaks"] == 1 and found.figures["longest_break_bars"] == 20
    assert any("1 breaks (20 missing session bars" in w for w in found.warnings)
    assert any(w.startswith("coverage ") for w in found.warnings)  # 268 of 288 span bars
    strict = judge_continuity(frame, "5m", calendar, ContinuityLimits(max_break_bars=10, min_coverage=0.9))
    assert strict.errors == ["a break of 20 bars > 10"] and not any("coverage" in w for w in strict.warnings)
    doubled = pd.concat([frame, frame.iloc[-3:]])
    assert "3 duplicated timestamps" in judge_continuity(doubled, "5m", calendar, ContinuityLimits()).errors


def test_the_baseline_verdict_names_the_best_naive_forecast():
    from trading_assets.training.pipeline import BaselineVerdict

    verdict = BaselineVerdict(model_mse=2.0, best="ar1", best_mse=1.5, samples=100, dm_benchmark="ar1", dm_pvalue=0.4)
    assert verdict.problems == ["test MSE 2 does not beat the ar1 forecast (1.5)"]
    assert BaselineVerdict(1.0, "zero", 1.5, 100, "zero", 0.01).problems == []
    assert verdict.figures()["best_baseline_test_mse"] == 1.5
