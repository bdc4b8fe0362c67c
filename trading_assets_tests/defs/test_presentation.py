"""What the UI shows of the data assets: column schemas from the Pandera schemas, candlestick charts,
and spans (in bars or by the per-timeframe defaults) that fit every timeframe."""

import base64
import re

import pandas as pd
from dagster import AssetCheckSeverity, TableSchema

from trading_assets.defs.partitions import partition_key
from trading_assets.features import feature_set
from trading_assets.indicators import indicator_columns
from trading_assets.timeframes import TIMEFRAMES
from trading_assets_tests.conftest import END
from trading_assets_tests.defs.test_assets import latest_metadata, run_partition

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_of(markdown: str) -> bytes:
    match = re.fullmatch(r"!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert match, markdown[:80]
    return base64.b64decode(match.group(1))


def test_column_schema_and_chart_in_materialization_metadata(instance):
    key = partition_key("KRW-BTC", "15m")
    run_config = {"ops": {"raw_candles": {"config": {"bars": 300, "end": END.isoformat()}}}}
    assert run_partition(instance, "KRW-BTC", "15m", run_config).success

    schemas = {
        asset: latest_metadata(instance, asset, key)["dagster/column_schema"]
        for asset in ("raw_candles", "indicators", "features")
    }
    assert all(isinstance(s, TableSchema) for s in schemas.values())
    raw = {c.name: c for c in schemas["raw_candles"].columns}
    assert list(raw) == ["open_time", "open", "high", "low", "close", "volume", "value"]
    assert raw["close"].type == "float64" and raw["close"].description == "last trade price of the bar"
    assert "greater_than(min_value=0)" in raw["close"].constraints.other
    indicators = {c.name: c for c in schemas["indicators"].columns}
    for name, column in indicator_columns().items():
        assert indicators[name].description == column.description and column.description
    assert "less_than_or_equal_to(max_value=100)" in indicators["rsi_14"].constraints.other
    features = {c.name: c for c in schemas["features"].columns}
    for feature in feature_set("default").outputs():
        assert features[feature.name].type == "float32" and features[feature.name].description == feature.description
    assert not features["target"].constraints.nullable and features["target"].description

    raw_meta = latest_metadata(instance, "raw_candles", key)
    assert raw_meta["span_rows"] == 300  # --bars: the span in bars of the timeframe
    assert pd.Timestamp(raw_meta["span_start"]) == END - 300 * pd.Timedelta(minutes=15)
    for asset in ("raw_candles", "indicators"):
        png = _png_of(latest_metadata(instance, asset, key)["chart"])
        assert png.startswith(PNG_SIGNATURE) and len(png) > 10_000


def test_default_spans_fit_every_timeframe_through_features(instance):
    """A backfill over all timeframes with the per-timeframe default spans succeeds through features."""
    run_config = {"ops": {"raw_candles": {"config": {"end": END.isoformat()}}}}
    for timeframe in TIMEFRAMES:
        result = run_partition(instance, "KRW-ETH", timeframe, run_config)
        assert result.success, timeframe
        checks = [e for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
        failed = [e.event_specific_data for e in checks if not e.event_specific_data.passed]
        assert len(checks) == 17 and all(c.severity == AssetCheckSeverity.WARN for c in failed), timeframe
        rows = latest_metadata(instance, "features", partition_key("KRW-ETH", timeframe))["dagster/row_count"]
        assert rows > 200, (timeframe, rows)
