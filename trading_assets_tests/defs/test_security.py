"""Run config cannot move the platform's paths and hosts; spans are bounded; planted secrets never leave."""

import json
from pathlib import Path

import pytest
from dagster import DagsterInvalidConfigError, build_run_status_sensor_context, build_sensor_context
from dagster._serdes import serialize_value
from mlflow.tracking import MlflowClient

from trading_assets.defs import defs
from trading_assets.defs.partitions import partition_key
from trading_assets.defs.resources import AlertResource, Locations
from trading_assets_tests.conftest import END
from trading_assets_tests.defs.test_checks import run as run_checked
from trading_assets_tests.defs.test_training import RUN_CONFIG as TRAIN_CONFIG

WINDOW = {"ops": {"raw_candles": {"config": {"days": 3.0, "end": END.isoformat()}}}}
# What a run's config may set on resources: behaviour only, never a path, a host or a credential.
TUNABLE = {
    "io_manager": {"cache_entries"},
    "parquet_io_manager": {"cache_entries"},
    "candle_source": {
        "kind",
        "upbit_requests_per_second",
        "upbit_max_retries",
        "synthetic_seed",
        "synthetic_edge",
        "synthetic_edge_strength",
        "options",
        "files_timezone",
        "files_adjusted",
        "ccxt_exchange",
        "ccxt_markets",
        "ccxt_options",  # location-like keys and URL values are refused (see CcxtSource)
        "calendar",
        "symbol_calendars",
        "step_retries",
        "step_retry_seconds",
    },
    "candle_store": {"refresh", "refetch_bars", "refetch_breaks"},
    "alerts": {
        *("tick_budget_seconds", "webhook_timeout_seconds", "backoff_seconds", "max_backoff_seconds"),
        *("expire_after_seconds", "dead_run_grace_seconds"),
    },
    "mlflow_tracking": {"experiment"},
    "execution": {"fill", "delay_bars", "horizon", "side", "cost_aware", "fee_bp", "half_spread_bp", "slippage_bp"},
    "feature_config": {"feature_set", "ffill_limit", "clip_window", "clip_k", "max_polluted_fraction"},
    "incremental": {"enabled", "verify_every"},
}


def _resource_fields(job_name):
    resources = defs.resolve_job_def(job_name).run_config_schema.config_type.fields["resources"].config_type.fields
    out = {}
    for name, field in resources.items():
        config = field.config_type.fields.get("config")
        out[name] = set(config.config_type.fields) if config else set()
    return out


@pytest.mark.parametrize(
    "job",
    [
        "market_data_job",
        "training_job",
        "research_job",
        "full_pipeline_job",
        "signals_job",
        "signals_freshness_job",
        "tuning_job",
    ],
)
def test_run_config_offers_no_location(job):
    assert _resource_fields(job) == TUNABLE


def test_run_config_cannot_override_a_location_and_partial_config_keeps_them(instance, tmp_path, monkeypatch):
    job = defs.resolve_job_def("market_data_job")
    key = partition_key("KRW-BTC", "5m")
    for resource, field in [
        ("candle_store", "url"),
        ("candle_source", "files_dir"),
        ("parquet_io_manager", "base_path"),
    ]:
        evil = {**WINDOW, "resources": {resource: {"config": {field: str(tmp_path / "evil")}}}}
        with pytest.raises(DagsterInvalidConfigError):
            job.execute_in_process(partition_key=key, instance=instance, run_config=evil)
    # Dagster replaces a top-level resource's whole config when a run sets part of it; the nested
    # locations survive that: the candle store stays where the environment says.
    store = tmp_path / "bound" / "candles.sqlite"
    monkeypatch.setenv("TRADING_DB_URL", f"sqlite:///{store}")
    partial = {**WINDOW, "resources": {"candle_source": {"config": {"kind": "synthetic", "synthetic_seed": 7}}}}
    assert job.execute_in_process(partition_key=key, instance=instance, run_config=partial).success
    assert store.exists() and not (tmp_path / "evil").exists()


def test_span_over_the_bound_fails_before_any_fetch(instance, data_dir):
    config = {"ops": {"raw_candles": {"config": {"days": 100_000.0, "end": END.isoformat()}}}}
    result = defs.resolve_job_def("market_data_job").execute_in_process(
        partition_key=partition_key("KRW-BTC", "1m"), instance=instance, run_config=config, raise_on_error=False
    )
    assert not result.success
    error = result.get_step_failure_events()[0].event_specific_data.error.to_string()
    assert "the span is 144,000,000 bars, more than max_span_bars=1,051,200" in error
    assert not (data_dir / "candles.sqlite").exists()  # the store was never opened


ENV_ATTACKS = [  # each field once read a planted secret back into an error (resources and op config alike)
    {"resources": {"candle_source": {"config": {"calendar": {"env": "PLANTED_SECRET"}}}}},
    {"resources": {"candle_source": {"config": {"ccxt_exchange": {"env": "PLANTED_SECRET"}}}}},
    {"resources": {"mlflow_tracking": {"config": {"experiment": {"env": "PLANTED_SECRET"}}}}},
    {"ops": {"raw_candles": {"config": {"days": 3.0, "end": {"env": "PLANTED_SECRET"}}}}},
]


@pytest.mark.parametrize("attack", ENV_ATTACKS, ids=["calendar", "ccxt_exchange", "experiment", "end"])
def test_run_config_that_reads_the_environment_is_refused_without_the_value(instance, monkeypatch, attack):
    monkeypatch.setenv("PLANTED_SECRET", "PlantedAwsKey0123")
    config = {**WINDOW, **attack, "ops": {**WINDOW["ops"], **attack.get("ops", {})}}
    result = defs.resolve_job_def("full_pipeline_job").execute_in_process(
        partition_key=partition_key("KRW-BTC", "5m"), instance=instance, run_config=config, raise_on_error=False
    )
    assert not result.success
    events = "\n".join(serialize_value(e) for e in instance.all_logs(result.run_id))
    assert "run config may not read environment variables" in events and "PlantedAwsKey0123" not in events
    assert not any(e.is_step_success for e in result.all_events)  # refused as the first step set up its resources


def _leaks(planted, text):
    return [p for p in planted if p in text]


@pytest.mark.slow
@pytest.mark.postgres
def test_planted_secrets_never_leave(postgres, instance, data_dir, tmp_path, monkeypatch, caplog, capfd):
    """A password in TRADING_DB_URL and MLFLOW_TRACKING_URI and a webhook token, through real runs (data,
    training, a failed check, an unreachable MLflow), the alert sensor and its failing webhook: none of them
    shows in the event log, metadata, errors, alerts, MLflow tags/params, files or output."""
    planted = ["PlantedDbPassw0rd", "PlantedMlPassw0rd", "PlantedHookToken"]
    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root on a database store is ./mlruns
    candles, tracking = (postgres.create_database(f"sec_{n}") for n in ("candles", "mlflow"))
    monkeypatch.setenv("TRADING_DB_URL", candles.replace("postgres@", f"postgres:{planted[0]}@"))  # trust auth
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking.replace("postgres@", f"postgres:{planted[1]}@"))
    # the webhook is down: port 9 (discard) is closed on loopback, and no other test's server can take it
    monkeypatch.setenv("TRADING_ALERT_WEBHOOK_URL", f"http://127.0.0.1:9/services/T0/B0/{planted[2]}")
    key = partition_key("KRW-ETH", "15m")
    data = defs.resolve_job_def("market_data_job")
    assert data.execute_in_process(partition_key=key, instance=instance, run_config={"ops": {
        "raw_candles": TRAIN_CONFIG["ops"]["raw_candles"]}}).success  # fmt: skip
    train = {"ops": {"trained_model": TRAIN_CONFIG["ops"]["trained_model"]}}
    trained = defs.resolve_job_def("training_job").execute_in_process(
        partition_key=key,
        instance=instance,
        run_config=train,
    )
    assert trained.success
    assert not run_checked(instance, "negative_volume").success  # a failed check: an alert
    with monkeypatch.context() as m:  # an unreachable tracking server with credentials in its URL
        m.setenv("MLFLOW_TRACKING_URI", f"http://user:{planted[1]}@127.0.0.1:9")
        failed = defs.resolve_job_def("training_job").execute_in_process(
            partition_key=key, instance=instance, run_config=train, raise_on_error=False
        )
    assert not failed.success
    error = failed.get_step_failure_events()[0].event_specific_data.error.to_string()
    assert "unreachable" in error and not _leaks(planted, error)
    alerts = AlertResource(locations=Locations.from_env(), webhook_timeout_seconds=1)
    from trading_assets.defs.sensors import build_alert_sensor, build_run_failure_sensor

    with build_sensor_context(instance=instance, resources={"alerts": alerts}) as ctx:
        build_alert_sensor(defs.asset_checks)(ctx)
    lines = [json.loads(x) for x in (data_dir / "alerts.jsonl").read_text().splitlines()]
    assert lines and all(x["webhook"] == "queued" for x in lines)
    tried = [alerts.outbox().state(x["event_id"]) for x in lines]
    assert any(t["attempts"] == 1 and "ConnectionError" in t["last_error"] for t in tried)  # the webhook is down
    # the failed training run (unreachable MLflow) is alerted by the run-failure sensor, through the same outbox
    with build_run_status_sensor_context(
        "run_failure_alerts", failed.get_run_failure_event(), instance, failed.dagster_run, resources={"alerts": alerts}
    ) as run_ctx:
        build_run_failure_sensor()(run_ctx.for_run_failure())
    assert alerts.outbox().state(f"run:{failed.run_id}")["state"] == "pending"

    events = [serialize_value(e) for r in instance.get_runs() for e in instance.all_logs(r.run_id)]
    assert len(events) > 100 and not _leaks(planted, "\n".join(events))  # messages, metadata, errors
    client = MlflowClient(tracking_uri=tracking)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert runs and not _leaks(planted, json.dumps([[r.data.tags, r.data.params] for r in runs]))
    for root in (data_dir, Path(instance.root_directory), tmp_path):  # alert log, Parquet, event log, compute logs
        for path in root.rglob("*"):
            if path.is_file():
                assert not _leaks([p.encode() for p in planted], path.read_bytes()), path
    out, err = capfd.readouterr()
    assert not _leaks(planted, out + err + "\n".join(r.getMessage() for r in caplog.records))


@pytest.mark.parametrize(
    "config",
    [
        {"resources": {"candle_source": {"config": {"calendar": "Planted Secret Value"}}}},
        {"resources": {"candle_source": {"config": {"ccxt_exchange": "https://user:pw@host"}}}},
        {"ops": {"raw_candles": {"config": {"days": 3.0, "end": "not a time: PlantedSecret"}}}},
        {"resources": {"feature_config": {"config": {"feature_set": "../../etc/passwd"}}}},
    ],
    ids=["calendar", "ccxt_exchange", "end", "feature_set"],
)
def test_choice_fields_take_only_values_of_their_shape(instance, config):
    """Names, calendars and times are validated by shape before any code uses them."""
    run_config = {**WINDOW, **config, "ops": {**WINDOW["ops"], **config.get("ops", {})}}
    result = defs.resolve_job_def("market_data_job").execute_in_process(
        partition_key=partition_key("KRW-BTC", "5m"), instance=instance, run_config=run_config, raise_on_error=False
    )
    assert not result.success
    failure = "\n".join(serialize_value(e) for e in instance.all_logs(result.run_id))
    assert "String should match pattern" in failure
