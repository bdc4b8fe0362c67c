"""Each extension point this package declares once (source, indicator, check) takes a toy one through a real
materialization. The toys are registered with monkeypatch, so nothing leaks into other tests."""

import json

import numpy as np
import pandas as pd
import pytest
import talib
from click.testing import CliRunner
from dagster import AssetCheckSeverity, build_sensor_context, materialize

from trading_assets.app.cli import main
from trading_assets.candles import CANDLE_COLUMNS, normalize_candles
from trading_assets.defs import checks, defs
from trading_assets.defs.assets import indicators, raw_candles
from trading_assets.defs.partition_checks import check_result, partition_check
from trading_assets.defs.partitions import partition_key
from trading_assets.defs.resources import (
    AlertResource,
    CandleSourceResource,
    Locations,
)
from trading_assets.defs.sensors import build_alert_sensor
from trading_assets.indicators import INDICATORS, Bars, Column, Indicator, indicator_names, warmup_bars
from trading_assets.sources import SOURCES, SourceSpec
from trading_assets.timeframes import get_timeframe
from trading_assets_tests.conftest import END, data_resources

KEY = partition_key("KRW-BTC", "5m")
SLOW_CHECKS = {"no_look_ahead", "warmup_sufficient"}
RUN_CONFIG = {"ops": {"raw_candles": {"config": {"days": 2.0, "end": END.isoformat()}}}}
RESOURCES = data_resources()


def _checks_of(*assets):
    """The registered checks (checks.CHECKS, read now) on these assets, but the slow recomputing ones."""
    keys = {a.key for a in assets}
    return [
        c
        for c in checks.CHECKS
        if {k.asset_key for k in c.check_keys} <= keys and not {k.name for k in c.check_keys} & SLOW_CHECKS
    ]


def _materialize(instance, assets, resources=RESOURCES):
    return materialize(
        [*assets, *_checks_of(*assets)],
        partition_key=KEY,
        instance=instance,
        resources=resources,
        run_config=RUN_CONFIG,
        raise_on_error=False,
    )


def _evaluations(result):
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


class ConstantSource:
    """A toy source: every bar of every symbol trades at one price."""

    def __init__(self, price: float) -> None:
        self.name = f"constant({price})"
        self.price = price

    def fetch(self, symbol: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        index = get_timeframe(timeframe).grid(start, end)
        frame = pd.DataFrame({c: self.price for c in CANDLE_COLUMNS}, index=index).assign(volume=1.0)
        return normalize_candles(frame.reset_index(), symbol, timeframe)


def test_source_choices_are_the_registry_read_when_asked(monkeypatch):
    """No copy of the registry is frozen at import: a source registered later is a valid choice everywhere."""
    refused = CliRunner().invoke(main, ["materialize", "--source", "constant"])
    assert refused.exit_code == 2 and f"expected one of {', '.join(SOURCES)}" in refused.output
    with pytest.raises(ValueError, match="unknown candle source 'constant'"):
        CandleSourceResource(locations=Locations(), kind="constant")
    monkeypatch.setitem(SOURCES, "constant", SourceSpec("one price", lambda s: ConstantSource(s.options["price"])))
    resource = CandleSourceResource(locations=Locations(), kind="constant", options={"price": 2.0})
    assert resource.get_source().name == "constant(2.0)"


def test_a_registered_source_feeds_raw_candles(instance, monkeypatch, data_dir):
    monkeypatch.setitem(SOURCES, "constant", SourceSpec("one price", lambda s: ConstantSource(s.options["price"])))

    source = CandleSourceResource(locations=Locations(), kind="constant", options={"price": 123.0})
    result = _materialize(instance, [raw_candles], {**RESOURCES, "candle_source": source})
    assert result.success
    raw = pd.read_parquet(data_dir / "assets" / "raw_candles" / "KRW-BTC" / "5m.parquet")
    assert (raw["close"] == 123.0).all() and raw.index[-1] == END - pd.Timedelta(minutes=5)
    assert result.asset_materializations_for_node("raw_candles")[0].metadata["source"].value == "constant(123.0)"
    evaluations = _evaluations(result)
    assert {name for _, name in evaluations} == {
        "schema",
        "dtype_pollution",
        "nan_rate",
        "continuity",
        "incremental_matches_full",
    }
    assert all(e.passed for e in evaluations.values())


def _toy_sma(bars: Bars, ind: Indicator) -> tuple[np.ndarray]:
    values = talib.SMA(bars.close, **ind.params)
    values[-1] = np.nan  # a hole the NaN-rate check must report
    return (values,)


def test_a_registered_indicator_is_computed_warmed_up_and_checked(instance, monkeypatch, data_dir):
    toy = Indicator("SMA", {"timeperiod": 500}, {"toy_sma_500": Column("a toy", gt=1e12)}, compute=_toy_sma)
    monkeypatch.setitem(INDICATORS, "toy_sma_500", toy)
    assert warmup_bars() == 499  # the toy's lookback now sets the warm-up
    result = _materialize(instance, [raw_candles, indicators])
    stored = pd.read_parquet(data_dir / "assets" / "indicators" / "KRW-BTC" / "5m.parquet")
    assert list(stored.columns) == [*CANDLE_COLUMNS, *indicator_names()] and indicator_names()[-1] == "toy_sma_500"
    assert stored["toy_sma_500"].iloc[:-1].notna().all()  # the warm-up covers the toy from the first stored row
    evaluations = _evaluations(result)
    schema = evaluations[("indicators", "schema")]
    assert not schema.passed and {f["column"] for f in schema.metadata["failures"].value} == {"toy_sma_500"}
    nan_rate = evaluations[("indicators", "nan_rate")]
    assert not nan_rate.passed and set(nan_rate.metadata["over_budget"].value) == {"toy_sma_500"}
    assert evaluations[("indicators", "dtype_pollution")].passed  # a declared column, not an unexpected one


@partition_check(raw_candles, "toy_min_rows", description="A toy: WARN below a million rows.")
def toy_min_rows(context, frame: pd.DataFrame):
    problems = [f"only {len(frame)} rows"] if len(frame) < 1_000_000 else []
    return check_result(context, problems, {"rows": len(frame)}, AssetCheckSeverity.WARN)


def test_a_registered_check_runs_is_recorded_and_alerted(instance, monkeypatch, tmp_path, data_dir):
    assert {k for c in checks.CHECKS for k in c.check_keys} <= set(defs.resolve_asset_graph().asset_check_keys)
    monkeypatch.setattr(checks, "CHECKS", [*checks.CHECKS, toy_min_rows])
    result = _materialize(instance, [raw_candles])
    evaluation = _evaluations(result)[("raw_candles", "toy_min_rows")]
    assert not evaluation.passed and evaluation.severity == AssetCheckSeverity.WARN
    assert {k: v.value for k, v in evaluation.metadata.items()} == {
        "symbol": "KRW-BTC",
        "timeframe": "5m",
        "partition": str(KEY),
        "rows": len(pd.read_parquet(data_dir / "assets" / "raw_candles" / "KRW-BTC" / "5m.parquet")),
    }
    [record] = instance.event_log_storage.get_asset_check_execution_history(
        next(iter(toy_min_rows.check_keys)), limit=5
    )
    assert record.partition == str(KEY) and record.run_id == result.run_id
    alerts = AlertResource(locations=Locations(alert_log_path=str(tmp_path / "alerts.jsonl")))
    with build_sensor_context(instance=instance, resources={"alerts": alerts}) as ctx:
        build_alert_sensor(checks.CHECKS)(ctx)
    lines = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [(x["asset"], x["check"], x["severity"]) for x in lines] == [("raw_candles", "toy_min_rows", "WARN")]
