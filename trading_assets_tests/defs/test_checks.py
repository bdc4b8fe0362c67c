"""Inject each failure mode into a real materialization and assert the checks, blocking and alerts.

The corruption is applied where pollution creeps in in practice: between the asset body and the
stored file (a wrapped IO manager), so the real raw_candles asset runs and the real checks read
the stored partition.
"""

import json

import numpy as np
import pandas as pd
import pytest
from dagster import (
    AssetKey,
    build_sensor_context,
    materialize,
)

from trading_assets.defs.assets import features, indicators, raw_candles
from trading_assets.defs.checks import data_checks
from trading_assets.defs.io_manager import ParquetIOManager, _ParquetUPathIOManager
from trading_assets.defs.partitions import partition_key
from trading_assets.defs.resources import (
    AlertResource,
    Locations,
)
from trading_assets.defs.sensors import build_alert_sensor
from trading_assets_tests.conftest import END, data_resources
from trading_assets_tests.servers import WebhookReceiver

asset_check_alerts = build_alert_sensor(data_checks)


def _strings(df):
    """As after reading a CSV with a stray symbol string: the whole column turns into text."""
    df = df.astype({"close": str})
    df.iloc[100:103, df.columns.get_loc("close")] = "KRW-BTC"
    return df


def _nan_burst(df):
    df = df.copy()
    df.iloc[200:260, df.columns.get_loc("volume")] = np.nan
    return df


def _duplicates(df):
    return pd.concat([df.iloc[:300], df.iloc[295:300], df.iloc[300:]])


def _missing(df):
    return df.drop(index=df.index[-500:-490])  # inside the requested span


def _high_below_low(df):
    df = df.copy()
    df.iloc[50, df.columns.get_loc("high")] = df["low"].iloc[50] * 0.9
    return df


def _negative_volume(df):
    df = df.copy()
    df.iloc[60, df.columns.get_loc("volume")] = -3.0
    return df


CORRUPTIONS = {
    "strings": _strings,
    "nan_burst": _nan_burst,
    "duplicates": _duplicates,
    "missing": _missing,
    "high_below_low": _high_below_low,
    "negative_volume": _negative_volume,
}


class _Corrupting(_ParquetUPathIOManager):
    def __init__(self, base_path, corrupt):
        super().__init__(base_path=base_path)
        self.corrupt = corrupt

    def dump_to_path(self, context, obj, path):
        if context.asset_key == AssetKey("raw_candles") and self.corrupt:
            attrs = dict(obj.attrs)
            obj = CORRUPTIONS[self.corrupt](obj)
            obj.attrs = attrs
        super().dump_to_path(context, obj, path)


class CorruptingIOManager(ParquetIOManager):
    corrupt: str | None = None

    def create_io_manager(self, context):
        base = super().create_io_manager(context)
        return _Corrupting(base._base_path, self.corrupt)


def run(instance, corrupt=None, config=None, symbol="KRW-BTC", with_checks=True):
    """The real data assets (and their checks) on one 5m partition, the stored raw candles corrupted."""
    return materialize(
        [raw_candles, indicators, features, *(data_checks if with_checks else [])],
        partition_key=partition_key(symbol, "5m"),
        instance=instance,
        resources=data_resources(parquet_io_manager=CorruptingIOManager(locations=Locations(), corrupt=corrupt)),
        run_config=config or {"ops": {"raw_candles": {"config": {"days": 3.0, "end": END.isoformat()}}}},
        raise_on_error=False,
    )


def evaluations(result):
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


def failed(result):
    return {k: e.severity.value for k, e in evaluations(result).items() if not e.passed}


def meta(evaluation):
    return {k: v.value for k, v in evaluation.metadata.items()}


def materialized(result):
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def test_clean_partition_passes_every_check(instance):
    result = run(instance)
    assert result.success
    evals = evaluations(result)
    assert len(evals) == 14 and all(e.passed for e in evals.values())  # 11 data checks, 3 incremental
    assert materialized(result) == {"raw_candles", "indicators", "features"}
    m = meta(evals[("raw_candles", "nan_rate")])
    assert m["partition"] == "KRW-BTC|5m" and set(m["nan_rates"]) == {"open", "high", "low", "close", "volume", "value"}
    assert evals[("raw_candles", "schema")].partition == "KRW-BTC|5m"


def _assert_blocked(result):
    assert not result.success
    assert materialized(result) == {"raw_candles"}  # stored, then downstream stopped
    failure = result.get_step_failure_events()[0].event_specific_data.error.to_string()
    assert "blocking asset check failed with ERROR severity" in failure


def test_strings_in_numeric_column(instance):
    result = run(instance, "strings")
    assert failed(result) == {("raw_candles", "schema"): "ERROR", ("raw_candles", "dtype_pollution"): "ERROR"}
    m = meta(evaluations(result)[("raw_candles", "dtype_pollution")])
    assert m["polluted_cells"] == 3
    assert m["polluted_columns"]["close"]["count"] == 3 and m["polluted_columns"]["close"]["examples"][0] == "'KRW-BTC'"
    schema = meta(evaluations(result)[("raw_candles", "schema")])["failures"]
    assert [f["column"] for f in schema if "float64" in f["check"]] == ["close"]
    _assert_blocked(result)


def test_nan_burst(instance):
    result = run(instance, "nan_burst")
    assert failed(result) == {("raw_candles", "nan_rate"): "ERROR"}
    m = meta(evaluations(result)[("raw_candles", "nan_rate")])
    assert m["over_budget"] == {
        "volume": {"rate": pytest.approx(60 / m["rows"] if "rows" in m else m["nan_rates"]["volume"]), "max": 0.0}
    }
    assert m["nan_rates"]["close"] == 0.0 and m["max_nan_rate"] == m["nan_rates"]["volume"] > 0
    _assert_blocked(result)


def test_nan_budget_is_configurable_per_column(instance):
    config = {
        "ops": {
            "raw_candles": {"config": {"days": 3.0, "end": END.isoformat()}},
            "raw_candles_nan_rate": {"config": {"column_max_nan_rate": {"volume": 0.2}}},
        }
    }
    result = run(instance, "nan_burst", config)
    assert ("raw_candles", "nan_rate") not in failed(result)


def test_duplicated_timestamps(instance):
    result = run(instance, "duplicates")
    assert failed(result) == {("raw_candles", "schema"): "ERROR", ("raw_candles", "continuity"): "ERROR"}
    m = meta(evaluations(result)[("raw_candles", "continuity")])
    assert m["duplicated_timestamps"] == 5 and m["out_of_order"] == 1 and len(m["duplicate_examples"]) == 5
    _assert_blocked(result)


def test_missing_timestamps_are_a_break_warning_then_an_error_above_max_break_bars(instance):
    result = run(instance, "missing")
    assert result.success
    assert failed(result) == {("raw_candles", "continuity"): "WARN", ("indicators", "continuity"): "WARN"}
    evaluation = evaluations(result)[("raw_candles", "continuity")]
    m = meta(evaluation)
    assert m["breaks"] == 1 and m["missing_bars"] == 10 and m["longest_break_bars"] == 10
    assert m["coverage"] == pytest.approx(1 - 10 / m["expected_rows"])
    assert "1 breaks (10 missing session bars" in evaluation.description
    assert "coverage 98.8% of the requested span" in evaluation.description

    config = {
        "ops": {
            "raw_candles": {"config": {"days": 3.0, "end": END.isoformat()}},
            "raw_candles_continuity": {"config": {"max_break_bars": 5}},
        }
    }
    result = run(instance, "missing", config)
    assert failed(result) == {("raw_candles", "continuity"): "ERROR"}
    assert "a break of 10 bars > 5" in evaluations(result)[("raw_candles", "continuity")].description
    _assert_blocked(result)


@pytest.mark.parametrize(
    "corrupt,column,check",
    [
        ("high_below_low", "dataframe", "high_covers_open_close"),
        ("negative_volume", "volume", "greater_than_or_equal_to(0)"),
    ],
)
def test_ohlcv_sanity(instance, corrupt, column, check):
    result = run(instance, corrupt)
    assert failed(result) == {("raw_candles", "schema"): "ERROR"}
    failures = meta(evaluations(result)[("raw_candles", "schema")])["failures"]
    assert [(f["column"], f["check"], f["count"]) for f in failures] == [(column, check, 1)]
    _assert_blocked(result)


def test_many_filled_candles_warn_without_blocking(instance):
    config = {
        "ops": {
            "raw_candles": {"config": {"days": 3.0, "end": END.isoformat()}},
            "raw_candles_continuity": {"config": {"max_filled_fraction": 0.0}},
        }
    }
    result = run(instance, None, config)
    assert result.success
    assert failed(result) == {("raw_candles", "continuity"): "WARN"}
    assert materialized(result) == {"raw_candles", "indicators", "features"}


def test_sensor_alerts_once_per_failed_evaluation(instance, tmp_path):
    hook = WebhookReceiver()
    try:
        alerts = AlertResource(
            locations=Locations(
                alert_webhook_url=hook.url,
                alert_log_path=str(tmp_path / "alerts.jsonl"),
                alert_outbox_path=str(tmp_path / "outbox.sqlite"),
                webui_url="http://127.0.0.1:3000",
            ),
            backoff_seconds=0.0,
        )
        run(instance)  # clean: nothing to alert
        result = run(instance, "strings")
        hook.fail_next = 1  # the webhook is down: the tick queues both, the next tick retries
        with build_sensor_context(instance=instance, resources={"alerts": alerts}) as ctx:
            asset_check_alerts(ctx)
            assert hook.bodies == []
            asset_check_alerts(ctx)
            assert len(hook.bodies) == 2
            texts = sorted(b["text"] for b in hook.bodies)
            assert "check `dtype_pollution` failed on `raw_candles` partition `KRW-BTC|5m`" in texts[0]
            assert f"http://127.0.0.1:3000/runs/{result.run_id}" in texts[0] and "polluted_cells=3" in texts[0]
            lines = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
            assert {(x["asset"], x["check"], x["severity"], x["partition"]) for x in lines} == {
                ("raw_candles", "dtype_pollution", "ERROR", "KRW-BTC|5m"),
                ("raw_candles", "schema", "ERROR", "KRW-BTC|5m"),
            }
            assert all(alerts.outbox().state(x["event_id"])["state"] == "delivered" for x in lines)
            cursor = ctx.cursor
            # the same evaluations are never alerted twice, also after a restart from the stored cursor
            asset_check_alerts(ctx)
        with build_sensor_context(instance=instance, resources={"alerts": alerts}, cursor=cursor) as restarted:
            asset_check_alerts(restarted)
            assert len(hook.bodies) == 2 and len((tmp_path / "alerts.jsonl").read_text().splitlines()) == 2
            # a lost cursor (a tick abandoned by Dagster) re-scans, and the outbox still sends nothing twice
            with build_sensor_context(instance=instance, resources={"alerts": alerts}) as lost:
                asset_check_alerts(lost)
            assert len(hook.bodies) == 2
            # a new failure is alerted exactly once: a break WARNs on raw_candles and on indicators
            run(instance, "missing")
            asset_check_alerts(restarted)
            assert len(hook.bodies) == 4 and all("continuity" in b["text"] for b in hook.bodies[2:])
    finally:
        hook.stop()


def test_webhook_down_is_logged_not_raised(instance, tmp_path):
    alerts = AlertResource(
        locations=Locations(
            alert_webhook_url="http://127.0.0.1:9/hook",
            alert_log_path=str(tmp_path / "a.jsonl"),
            alert_outbox_path=str(tmp_path / "outbox.sqlite"),
        ),
        backoff_seconds=60.0,
    )
    run(instance, "negative_volume")
    with build_sensor_context(instance=instance, resources={"alerts": alerts}) as ctx:
        asset_check_alerts(ctx)
        [line] = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
        assert line["webhook"] == "queued"
        state = alerts.outbox().state(line["event_id"])
        assert state["state"] == "pending" and state["attempts"] == 1 and "ConnectionError" in state["last_error"]
        asset_check_alerts(ctx)  # backing off: not tried again yet
        assert alerts.outbox().state(line["event_id"])["attempts"] == 1
        cursor = json.loads(ctx.cursor)
    assert len(cursor) == 11 + 1 and cursor["raw_candles:schema"] > 0  # 11 checks and the first-tick sweep mark


def _heavy_strings(df):
    df = df.astype({"close": str})
    df.iloc[::10, df.columns.get_loc("close")] = "KRW-BTC"
    return df


CORRUPTIONS["heavy_strings"] = _heavy_strings


@pytest.mark.parametrize("corrupt", ["strings", "heavy_strings"])
def test_downstream_never_builds_on_polluted_candles_even_without_checks(instance, corrupt, data_dir):
    result = run(instance, corrupt, with_checks=False)
    if corrupt == "strings":  # a few cells: coerced, forward-filled and counted
        assert result.success
        ind_meta = result.asset_materializations_for_node("indicators")[0].metadata
        assert ind_meta["coerced_cells"].value == {"close": 3}
        feats = pd.read_parquet(data_dir / "assets" / "features" / "KRW-BTC" / "5m.parquet")
        assert (feats.dtypes == "float32").all() and np.isfinite(feats.to_numpy()).all()
    else:  # a tenth of the column: the step stops and says where
        assert not result.success
        error = result.get_step_failure_events()[0].event_specific_data.error.to_string()
        assert "KRW-BTC 5m column 'close'" in error and "not numeric" in error and "'KRW-BTC'" in error
        assert not (data_dir / "assets" / "indicators").exists()


def test_schema_failures_report_a_row_check_beside_a_stray_text_column():
    """A bar with low > high in a frame that also carries a text column: both are reported, with the
    failing row's cells as numbers where they are numbers and as text where they are not."""
    from trading_assets.quality import schema_failures
    from trading_assets.schemas import RawCandlesModel

    index = pd.date_range("2026-01-01", periods=5, freq="1min", tz="UTC", name="open_time", unit="ns")
    frame = pd.DataFrame({c: [1.0] * 5 for c in ("open", "close", "volume", "value")}, index=index)
    frame["high"], frame["low"] = 2.0, 0.5
    frame.loc[index[2], "low"] = 3.0
    frame["extra"] = "KRW-BTC"
    failures = {(f["column"], f["check"]): f for f in schema_failures(frame, RawCandlesModel)}
    low = failures[("dataframe", "low_under_open_close")]
    assert low["count"] == 1 and low["rows"] == [index[2].isoformat()]
    assert low["examples"][0]["low"] == 3.0 and low["examples"][0]["extra"] == "KRW-BTC"
    assert failures[("RawCandlesModel", "column_in_schema")]["examples"] == ["extra"]  # strict: the column is named
    assert set(failures) == {
        ("dataframe", "low_under_open_close"),
        ("dataframe", "high_covers_open_close"),  # high 2.0 no longer covers low 3.0
        ("RawCandlesModel", "column_in_schema"),
    }


def test_a_run_failure_from_before_the_daemon_first_started_is_alerted_once(instance, tmp_path):
    """The run-failure sensor starts at the present; the first tick of the alert sensor sweeps the failures
    from before it (within the alerts' expiry), and the outbox keeps each run alerted once."""
    alerts = AlertResource(
        locations=Locations(
            alert_log_path=str(tmp_path / "alerts.jsonl"), alert_outbox_path=str(tmp_path / "outbox.sqlite")
        )
    )
    too_long = {"ops": {"raw_candles": {"config": {"days": 100_000.0, "end": END.isoformat()}}}}
    failed = run(instance, config=too_long)  # failed while no daemon ran
    assert not failed.success
    with build_sensor_context(instance=instance, resources={"alerts": alerts}) as first_tick:
        asset_check_alerts(first_tick)
        asset_check_alerts(first_tick)  # later ticks do not sweep again
    assert alerts.outbox().state(f"run:{failed.run_id}")["state"] == "logged"  # no webhook here: the log only
    [line] = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert line["event_id"] == f"run:{failed.run_id}" and "max_span_bars" in json.dumps(line)
    with build_sensor_context(instance=instance, resources={"alerts": alerts}) as lost_cursor:
        asset_check_alerts(lost_cursor)  # a sweep again (a lost cursor) queues nothing twice
    assert len((tmp_path / "alerts.jsonl").read_text().splitlines()) == 1
