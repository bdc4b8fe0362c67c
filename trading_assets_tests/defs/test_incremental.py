"""The data assets' incremental refresh through Dagster: each refresh extends the stored partition with the new
bars, the incremental_matches_full checks compare it with a full computation, and a difference, a new code
version, --refresh and --force compute in full."""

import pandas as pd
import pytest

from trading_assets import causality as causality_module
from trading_assets.defs import assets as asset_module
from trading_assets.defs import incremental as incremental_module
from trading_assets.incremental import Lineage, differences
from trading_assets.indicators import IndicatorResult
from trading_assets.provenance import Provenance
from trading_assets_tests.conftest import END
from trading_assets_tests.defs.test_assets import latest_metadata, run_partition

SYMBOL, TIMEFRAME = "KRW-BTC", "5m"
DATA = ("raw_candles", "indicators", "features")


def _config(end: pd.Timestamp, verify_every: int = 1, enabled: bool = True) -> dict:
    return {
        "ops": {"raw_candles": {"config": {"days": 2.0, "end": end.isoformat()}}},
        "resources": {"incremental": {"config": {"verify_every": verify_every, "enabled": enabled}}},
    }


def _checks(result) -> dict:
    return {
        e.asset_key.path[-1]: e
        for e in result.get_asset_check_evaluations()
        if e.check_name == incremental_module.INCREMENTAL_CHECK
    }


def _stored(data_dir) -> dict[str, pd.DataFrame]:
    return {a: pd.read_parquet(data_dir / "assets" / a / SYMBOL / f"{TIMEFRAME}.parquet") for a in DATA}


def _refresh(instance, end, **config):
    result = run_partition(instance, SYMBOL, TIMEFRAME, _config(end, **config))
    assert result.success
    return result


def test_refreshes_extend_the_stored_partitions_and_equal_a_full_computation(instance, data_dir):
    first = _refresh(instance, END)
    assert {a: c.metadata["computed"].value for a, c in _checks(first).items()} == dict.fromkeys(DATA, "in full")
    for refreshes, minutes in enumerate((5, 25), start=1):  # the window slides: new bars in, the oldest out
        result = _refresh(instance, END + pd.Timedelta(minutes=minutes))
        for asset, check in _checks(result).items():
            figures = {k: v.value for k, v in check.metadata.items()}
            assert check.passed and figures["computed"] == "incremental", asset
            assert figures["compared_with_full"] and figures["differences"] == "{}"
            assert figures["refreshes_since_full"] == refreshes
    incremental = _stored(data_dir)
    full = run_partition(instance, SYMBOL, TIMEFRAME, _config(END + pd.Timedelta(minutes=25), enabled=False))
    assert {c.metadata["computed"].value for c in _checks(full).values()} == {"in full"}
    computed = _stored(data_dir)
    pd.testing.assert_frame_equal(incremental["raw_candles"], computed["raw_candles"])  # bit for bit
    for asset in ("indicators", "features"):
        assert differences(incremental[asset], computed[asset], computed[asset].index[0], 1e-6) == {}
        assert incremental[asset].index.equals(computed[asset].index)
    assert latest_metadata(instance, "raw_candles", f"{SYMBOL}|{TIMEFRAME}")["span_end"] == "2026-10-01T00:25:00+00:00"


def test_between_comparisons_the_refresh_is_not_recomputed_and_the_chart_is_kept(instance):
    _refresh(instance, END, verify_every=2)
    key = f"{SYMBOL}|{TIMEFRAME}"
    drawn = latest_metadata(instance, "indicators", key)["chart_last_bar"]
    result = _refresh(instance, END + pd.Timedelta(minutes=5), verify_every=2)
    assert {c.metadata["compared_with_full"].value for c in _checks(result).values()} == {False}
    assert latest_metadata(instance, "indicators", key)["chart_last_bar"] == drawn  # kept, and says how old
    result = _refresh(instance, END + pd.Timedelta(minutes=10), verify_every=2)
    assert {c.metadata["compared_with_full"].value for c in _checks(result).values()} == {True}
    assert latest_metadata(instance, "indicators", key)["chart_last_bar"] > drawn  # drawn at each comparison


def test_an_incremental_result_that_differs_fails_the_check_and_the_full_one_is_stored(instance, data_dir, monkeypatch):
    _refresh(instance, END)
    extend = asset_module.extend_indicators

    def off_by_a_little(*args, **kwargs) -> IndicatorResult:
        result = extend(*args, **kwargs)
        result.frame.iloc[-1, result.frame.columns.get_loc("rsi_14")] += 1.0  # a bug in the incremental path
        return result

    monkeypatch.setattr(asset_module, "extend_indicators", off_by_a_little)
    result = run_partition(instance, SYMBOL, TIMEFRAME, _config(END + pd.Timedelta(minutes=5)))
    check = _checks(result)["indicators"]
    assert not check.passed and check.severity.value == "ERROR"
    assert "KRW-BTC 5m: the incremental refresh (spliced at " in check.description
    assert "differs from a full computation (tolerance 1e-06)" in check.description
    assert "rsi_14" in check.description and "the full computation is stored" in check.description
    stored = _stored(data_dir)["indicators"]
    assert not Lineage.of(stored).incremental  # the full computation, recorded as such
    assert "features" not in {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}  # blocked


def test_a_new_code_version_or_force_computes_in_full(instance, monkeypatch):
    _refresh(instance, END)
    monkeypatch.setattr(incremental_module, "CODE_VERSION", "another code version")
    result = _refresh(instance, END + pd.Timedelta(minutes=5))
    assert {c.metadata["computed"].value for c in _checks(result).values()} == {"in full"}


@pytest.mark.parametrize("flag", ["--force", "--refresh"])
def test_the_cli_computes_in_full_when_forced_or_refreshed(flag, data_dir):
    from click.testing import CliRunner

    from trading_assets.app.cli import main

    def materialize(end, *extra):
        args = ["materialize", "--assets", "data", "--symbols", SYMBOL, "--timeframes", TIMEFRAME, "--days", "2"]
        out = CliRunner().invoke(main, [*args, "--end", end.isoformat(), *extra])
        assert out.exit_code == 0, out.output

    materialize(END)
    materialize(END + pd.Timedelta(minutes=5))
    assert Lineage.of(_stored(data_dir)["features"]).incremental
    materialize(END + pd.Timedelta(minutes=10), flag)
    assert not any(Lineage.of(frame).incremental for frame in _stored(data_dir).values())


def test_another_label_recomputes_the_features_in_full(instance):
    _refresh(instance, END)
    config = _config(END + pd.Timedelta(minutes=5))
    config["resources"]["execution"] = {"config": {"delay_bars": 2}}  # the label is another trade now
    result = run_partition(instance, SYMBOL, TIMEFRAME, config)
    assert result.success
    computed = {a: c.metadata["computed"].value for a, c in _checks(result).items()}
    assert computed == {"raw_candles": "incremental", "indicators": "incremental", "features": "in full"}


class _HealingSource:
    """Synthetic candles with a 2-hour hole until ``healed``: a page the exchange cut short, answered later."""

    healed = False
    hole = (END - pd.Timedelta(days=1), END - pd.Timedelta(days=1) + pd.Timedelta(hours=2))

    def __init__(self) -> None:
        from trading_assets.sources import SyntheticSource

        self.inner, self.name = SyntheticSource(), "healing"

    def fetch(self, symbol, timeframe, start, end):
        frame = self.inner.fetch(symbol, timeframe, start, end)
        if self.healed:
            return frame
        return frame[(frame.index < self.hole[0]) | (frame.index >= self.hole[1])]


def test_a_break_in_the_kept_rows_is_asked_for_again_and_filled(instance, data_dir, monkeypatch):
    from trading_assets.sources import SOURCES, SourceSpec

    monkeypatch.setitem(SOURCES, "healing", SourceSpec("heals", lambda spec: _HealingSource()))
    source = {"candle_source": {"config": {"kind": "healing"}}}
    first = _config(END)
    first["resources"].update(source)
    assert run_partition(instance, SYMBOL, TIMEFRAME, first).success
    assert Provenance.of(_stored(data_dir)["raw_candles"]).breaks  # the hole is a break
    monkeypatch.setattr(_HealingSource, "healed", True)
    later = _config(END + pd.Timedelta(minutes=5))
    later["resources"].update(source)
    result = run_partition(instance, SYMBOL, TIMEFRAME, later)
    assert result.success
    assert _checks(result)["raw_candles"].metadata["computed"].value == "in full"  # the bars came: collected again
    assert not Provenance.of(_stored(data_dir)["raw_candles"]).breaks


def _look_ahead(result, asset: str):
    [evaluation] = [
        e
        for e in result.get_asset_check_evaluations()
        if e.asset_key.path[-1] == asset and e.check_name == "no_look_ahead"
    ]
    return evaluation, {k: v.value for k, v in evaluation.metadata.items()}


def test_after_a_refresh_the_look_ahead_checks_audit_the_rows_it_computed(instance, data_dir):
    first = _refresh(instance, END)
    assert {_look_ahead(first, a)[1]["rows_audited"] for a in ("indicators", "features")} == {"all"}
    result = _refresh(instance, END + pd.Timedelta(minutes=20), verify_every=5)
    for asset in ("indicators", "features"):
        evaluation, meta = _look_ahead(result, asset)
        since = Lineage.of(_stored(data_dir)[asset]).changed_from
        assert evaluation.passed and meta["rows_audited"] == f"from {since} (the rows the refresh computed)", asset
        assert len(meta["cut_points"]) == 4 and min(meta["cut_points"]) >= since, asset
        stored = _stored(data_dir)[asset].index
        assert max(meta["cut_points"]) == stored[-2].isoformat()  # the newest row with one after it


def _leaking_tail(extend, column: str):
    """``extend`` (an incremental path) whose rows from the splice point on read ``column`` one bar ahead."""

    def leaking(*args, **kwargs):
        result = extend(*args, **kwargs)
        since = pd.Timestamp(result.frame.index[-8])
        ahead = result.frame[column].shift(-1)
        result.frame.loc[since : result.frame.index[-2], column] = ahead.loc[since : result.frame.index[-2]]
        return result

    return leaking


@pytest.mark.parametrize(
    ("asset", "function", "column"),
    [("indicators", "extend_indicators", "rsi_14"), ("features", "extend_features", "ret_1")],
)
def test_a_leak_in_the_rows_a_refresh_computed_is_caught(instance, monkeypatch, asset, function, column):
    _refresh(instance, END)
    monkeypatch.setattr(asset_module, function, _leaking_tail(getattr(asset_module, function), column))
    config = _config(END + pd.Timedelta(minutes=50), verify_every=5)  # not compared with a full computation now
    result = run_partition(instance, SYMBOL, TIMEFRAME, config)
    evaluation, meta = _look_ahead(result, asset)
    assert not evaluation.passed and evaluation.severity.value == "ERROR"
    assert meta["rows_audited"].startswith("from ") and meta["first_column"] == column
    assert [d["column"] for d in meta["non_causal_columns"]] == [column]
    assert not result.success  # blocking: nothing after it


def test_refreshed_rows_whose_candles_cannot_be_prepared_alone_are_audited_from_the_whole_window(instance, monkeypatch):
    """A hole the asset filled from before the refresh's candles (or a pollution share of so few rows) stops the
    slice's preparation: the audit then prepares the whole window, as the asset did, and still audits the rows."""
    import inspect

    from trading_assets import causality
    from trading_assets.errors import CandleDataError

    _refresh(instance, END)
    prepare, sizes = causality.prepare_candles, []

    def slice_refused(candles, partition, *args, **kwargs):
        if inspect.stack()[1].function == "indicators_look_ahead":  # not the warm-up audit's
            sizes.append(len(candles))
            if len(sizes) == 1:
                raise CandleDataError(partition.symbol, partition.timeframe, "a hole filled from before it", "close")
        return prepare(candles, partition, *args, **kwargs)

    monkeypatch.setattr(causality, "prepare_candles", slice_refused)
    result = _refresh(instance, END + pd.Timedelta(minutes=20), verify_every=5)
    evaluation, meta = _look_ahead(result, "indicators")
    assert evaluation.passed and meta["rows_audited"].startswith("from ")
    assert len(sizes) == 2 and sizes[0] < sizes[1]  # the slice, then the whole window


def _warmup(instance, end, prefix_rows: int, verify_every: int = 3):
    config = _config(end, verify_every)
    config["ops"]["indicators_warmup_sufficient"] = {"config": {"prefix_rows": prefix_rows}}
    # short clipping blocks: the features compared reach 130 rows past the last moved indicator, within a prefix
    config["resources"]["feature_config"] = {"config": {"clip_window": 20}}
    result = run_partition(instance, SYMBOL, TIMEFRAME, config)
    assert result.success
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == "warmup_sufficient"]
    return result.run_id, evaluation, {k: v.value for k, v in evaluation.metadata.items()}


def test_the_warmup_verdict_is_carried_while_the_refreshes_keep_the_rows_it_compared(instance, data_dir, monkeypatch):
    calls = []
    compare = causality_module.WarmupAudit.compare
    monkeypatch.setattr(causality_module.WarmupAudit, "compare", lambda *a, **k: calls.append(1) or compare(*a, **k))

    def refresh(bars: int, prefix_rows: int, compared: bool) -> dict:
        run_id, evaluation, meta = _warmup(instance, END + pd.Timedelta(minutes=5 * bars), prefix_rows, verify_every=7)
        assert evaluation.passed and meta["compared_with_bars"] > 0 and meta["features_compared"], bars
        assert (meta["carried_from_run"] == "") == compared, bars
        meta["run_id"] = run_id
        return meta

    first = refresh(0, 300, compared=True)  # computed in full: compared, on the first 300 rows
    stored = _stored(data_dir)["indicators"]
    assert first["compared_rows"] == [stored.index[0].isoformat(), stored.index[299].isoformat()]
    carried = refresh(1, 300, compared=False)  # refresh 1: the compared rows were kept
    assert carried["carried_from_run"] == first["run_id"] and carried["compared_rows"] == first["compared_rows"]
    assert carried["moved_columns"] == first["moved_columns"] and carried["settings"] == first["settings"]
    assert calls == [1]
    refresh(2, 360, compared=True)  # other settings: compared again (rows 0-359: their middle is 179.5 rows on)
    refresh(2 + 170, 360, compared=False)  # the window slid 170 rows: still before the middle of the compared rows
    refresh(2 + 190, 360, compared=True)  # 190 rows: past it
    every = refresh(193, 100_000, compared=True)  # a prefix longer than the span: every row compared
    assert every["compared_rows"][1] == _stored(data_dir)["indicators"].index[-1].isoformat()
    refresh(194, 100_000, compared=True)  # the refresh computed the last compared row again: compared again
    assert Lineage.of(_stored(data_dir)["indicators"]).changed_from <= every["compared_rows"][1]
    assert calls == [1] * 5


def test_a_failed_warmup_verdict_is_not_carried(instance, monkeypatch):
    _warmup(instance, END, prefix_rows=300)
    problem = causality_module.WarmupFinding(("moved",), {"moved_columns": []})
    monkeypatch.setattr(causality_module.WarmupAudit, "compare", lambda *a, **k: problem)
    for minutes in (5, 10):  # carried: not compared
        _, evaluation, _ = _warmup(instance, END + pd.Timedelta(minutes=minutes), prefix_rows=300)
        assert evaluation.passed
    _, evaluation, _ = _warmup(instance, END + pd.Timedelta(minutes=15), prefix_rows=300)  # refresh 3 is due: WARN
    assert not evaluation.passed
    _, evaluation, meta = _warmup(instance, END + pd.Timedelta(minutes=20), prefix_rows=300)
    assert not evaluation.passed and meta["carried_from_run"] == ""  # compared again, not carried
