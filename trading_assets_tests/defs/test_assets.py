"""Materialize raw_candles -> indicators -> features through Dagster and check what was stored."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

from trading_assets.candles import CANDLE_COLUMNS
from trading_assets.defs import defs
from trading_assets.defs.partitions import add_symbols, market_partitions, partition_key
from trading_assets.features import TARGET, FeatureConfig, feature_columns, lead_in_bars
from trading_assets.indicators import indicator_names, warmup_bars
from trading_assets.sources import SyntheticSource
from trading_assets_tests.conftest import END
from trading_assets_tests.servers import FakeUpbit

RUN_CONFIG = {"ops": {"raw_candles": {"config": {"days": 2.0, "end": END.isoformat()}}}}
LEAD_IN = lead_in_bars(FeatureConfig())  # indicator rows before the span that feed the features' clipping


def run_partition(instance: DagsterInstance, symbol: str, timeframe: str, run_config=RUN_CONFIG):
    job = defs.resolve_job_def("market_data_job")
    return job.execute_in_process(
        partition_key=partition_key(symbol, timeframe), instance=instance, run_config=run_config, raise_on_error=False
    )


def latest_metadata(instance, asset: str, key) -> dict:
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[str(key)]), limit=1
    ).records
    assert records, f"no materialization of {asset} {key}"
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def test_definitions_load_with_partitions():
    assert {k.to_user_string() for k in defs.resolve_all_asset_keys()} >= {"raw_candles", "indicators", "features"}
    assert str(partition_key("KRW-BTC", "1m")) == "KRW-BTC|1m"
    assert market_partitions.partitions_defs[0].name == "symbol"
    with pytest.raises(ValueError, match="invalid symbol"):
        partition_key("KRW|BTC", "1m")


def test_dagster_finds_the_definitions_in_the_package_without_an_attribute():
    """``dagster dev`` in the repository root (pyproject's ``[tool.dagster]`` module) and ``-m trading_assets.defs``
    name no attribute: Dagster looks among the package's names, where the lazily built ``defs`` must be."""
    from trading_assets.defs.dagster_private import loadable_targets_from_python_module

    targets = loadable_targets_from_python_module("trading_assets.defs", None)
    assert [(t.attribute, t.target_definition) for t in targets] == [("defs", defs)]


def test_two_partitions_end_to_end(instance, data_dir):
    for symbol, timeframe in (("KRW-BTC", "1m"), ("KRW-ETH", "15m")):
        result = run_partition(instance, symbol, timeframe)
        assert result.success
        tf_minutes = 1 if timeframe == "1m" else 15
        span_start = END - pd.Timedelta(days=2)

        raw = pd.read_parquet(data_dir / "assets" / "raw_candles" / symbol / f"{timeframe}.parquet")
        assert list(raw.columns) == list(CANDLE_COLUMNS) and (raw.dtypes == "float64").all()
        assert str(raw.index.tz) == "UTC" and raw.index.is_monotonic_increasing and raw.index.is_unique
        bar = pd.Timedelta(minutes=tf_minutes)
        assert raw.index[0] == span_start - (warmup_bars() + LEAD_IN) * bar
        assert raw.index[-1] == END - pd.Timedelta(minutes=tf_minutes)
        assert (raw.index.to_series().diff().dropna() == pd.Timedelta(minutes=tf_minutes)).all()
        assert raw.attrs["span_start"] == span_start.isoformat()

        ind = pd.read_parquet(data_dir / "assets" / "indicators" / symbol / f"{timeframe}.parquet")
        assert ind.index[0] == span_start - LEAD_IN * bar and len(ind) == 2 * 1440 // tf_minutes + LEAD_IN
        assert list(ind.columns) == [*CANDLE_COLUMNS, *indicator_names()]
        assert not ind.isna().any().any()

        feats = pd.read_parquet(data_dir / "assets" / "features" / symbol / f"{timeframe}.parquet")
        assert (feats.dtypes == "float32").all() and TARGET in feats.columns
        assert np.isfinite(feats.to_numpy()).all()
        assert feats.index[0] == span_start and list(feats.columns) == [*feature_columns("default"), TARGET]
        assert "scaler" not in feats.attrs  # unscaled: each model fits its own scaler on its train span

        key = partition_key(symbol, timeframe)
        raw_meta = latest_metadata(instance, "raw_candles", key)
        expected = SyntheticSource().fetch(symbol, timeframe, raw.index[0], END)
        assert raw_meta["missing_bars_filled"] == len(raw) - len(expected)
        assert raw_meta["span_rows"] == len(ind) - LEAD_IN and raw_meta["dagster/row_count"] == len(raw)
        assert raw_meta["warmup_bars"] == warmup_bars() + LEAD_IN
        in_span = raw.index >= span_start
        filled_in_span = int((raw["volume"][in_span] == 0).sum())  # synthetic volume is never 0 otherwise
        assert raw_meta["missing_bars_filled_in_span"] == filled_in_span == ind.attrs["filled_bars_in_span"]
        assert "|" in raw_meta["preview"] and raw_meta["first_bar"] == raw.index[0].isoformat()
        feat_meta = latest_metadata(instance, "features", key)
        assert feat_meta["dagster/row_count"] == len(feats)
        assert feat_meta["feature_set"] == "default"
        ind_meta = latest_metadata(instance, "indicators", key)
        assert ind_meta["warmup_rows_trimmed"] == warmup_bars()


def test_rematerializing_fetches_nothing_new(instance):
    assert run_partition(instance, "KRW-BTC", "5m").success
    assert run_partition(instance, "KRW-BTC", "5m").success
    assert latest_metadata(instance, "raw_candles", partition_key("KRW-BTC", "5m"))["candles_fetched"] == 0


def test_upbit_source_through_run_config_and_unknown_symbol(instance, data_dir, monkeypatch):
    start = END - pd.Timedelta(days=20) - (warmup_bars() + LEAD_IN) * pd.Timedelta(minutes=60)
    exchange = FakeUpbit(
        {("KRW-BTC", "60m"): SyntheticSource(seed=8).fetch("KRW-BTC", "60m", start, END)}, per_second=1000
    )
    monkeypatch.setenv("TRADING_UPBIT_BASE_URL", exchange.url)  # a location: environment only, not run config
    try:
        config = {
            "ops": {"raw_candles": {"config": {"days": 20.0, "end": END.isoformat()}}},
            "resources": {"candle_source": {"config": {"kind": "upbit", "upbit_requests_per_second": 1000}}},
        }
        assert run_partition(instance, "KRW-BTC", "60m", config).success
        assert all(r["path"] == "/v1/candles/minutes/60" for r in exchange.requests)
        add_symbols(instance, ["KRW-NOPE"])
        failed = run_partition(instance, "KRW-NOPE", "60m", config)
        assert not failed.success
        error = failed.get_step_failure_events()[0].event_specific_data.error
        assert "KRW-NOPE 60m: Upbit does not know this market" in error.to_string()
        assert not (data_dir / "assets" / "raw_candles" / "KRW-NOPE").exists()
    finally:
        exchange.stop()


def test_atomic_write_leaves_no_temp_files(instance, data_dir):
    assert run_partition(instance, "KRW-ETH", "5m").success
    files = sorted(p.name for p in (data_dir / "assets").rglob("*") if p.is_file())
    assert files == ["5m.parquet"] * 3


def test_code_location_validates_from_workspace(tmp_path):
    root = Path(__file__).resolve().parents[2]
    dagster = Path(sys.executable).with_name("dagster")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    out = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", str(root / "workspace.yaml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Validation successful for code location trading_assets" in out.stderr + out.stdout
