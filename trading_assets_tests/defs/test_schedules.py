"""Freshness schedules: which runs they ask for, and that a tick is never asked for twice."""

import datetime

from dagster import AssetKey, AssetMaterialization, build_schedule_context

from trading_assets.defs import defs
from trading_assets.defs.partitions import add_symbols, partition_key
from trading_assets.defs.schedules import DEFAULT_REFRESH_CRONS, build_schedules

TICK = datetime.datetime(2026, 10, 1, 12, 5, tzinfo=datetime.UTC)


def _evaluate(instance, name):
    schedule = defs.get_schedule_def(name)
    context = build_schedule_context(
        instance=instance, scheduled_execution_time=TICK, repository_def=defs.get_repository_def()
    )
    return schedule.evaluate_tick(context)


def test_refresh_schedules_cover_every_timeframe_and_symbol(bare_instance):
    names = {s.name: s for s in defs.schedules}
    assert {f"refresh_{tf}" for tf in DEFAULT_REFRESH_CRONS} | {"train_models", "signals_freshness"} == set(names)
    assert names["signals_freshness"].job_name == "signals_freshness_job"
    assert names["refresh_60m"].cron_schedule == "1 * * * *" and names["train_models"].cron_schedule == "0 3 * * 0"
    assert names["refresh_5m"].job_name == "market_data_job" and names["train_models"].job_name == "training_job"
    assert _evaluate(bare_instance, "refresh_5m").skip_message == "no symbols registered"
    add_symbols(bare_instance, ["KRW-BTC", "KRW-ETH"])
    first = _evaluate(bare_instance, "refresh_5m").run_requests
    assert [r.partition_key for r in first] == ["KRW-BTC|5m", "KRW-ETH|5m"]
    assert [r.run_key for r in first] == [f"KRW-BTC|5m@{TICK.isoformat()}", f"KRW-ETH|5m@{TICK.isoformat()}"]
    again = _evaluate(bare_instance, "refresh_5m").run_requests  # e.g. after a daemon restart: same keys, deduplicated
    assert [r.run_key for r in again] == [r.run_key for r in first]


def test_training_has_its_own_cadence_and_trains_what_has_features(bare_instance, monkeypatch):
    add_symbols(bare_instance, ["KRW-BTC", "KRW-ETH"])
    assert _evaluate(bare_instance, "train_models").skip_message == "no features materialized yet"
    bare_instance.report_runless_asset_event(
        AssetMaterialization(AssetKey("features"), partition=str(partition_key("KRW-ETH", "1m")))
    )
    requests = _evaluate(bare_instance, "train_models").run_requests
    assert [r.partition_key for r in requests] == ["KRW-ETH|1m"]
    monkeypatch.setenv("TRADING_TRAINING_CRON", "0 4 1 * *")
    monkeypatch.setenv("TRADING_REFRESH_CRON_1M", "* * * * *")
    crons = {s.name: s.cron_schedule for s in build_schedules()}
    assert crons["train_models"] == "0 4 1 * *" and crons["refresh_1m"] == "* * * * *"
