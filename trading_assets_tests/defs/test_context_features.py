"""Feature sets that read other partitions, through Dagster: declared lineage, stored inputs, checks, the CLI."""

import pandas as pd
import pytest
from click.testing import CliRunner
from dagster import AssetKey, AssetRecordsFilter

from trading_assets.app.cli import main
from trading_assets.defs import defs
from trading_assets.defs.partitions import partition_key
from trading_assets.defs.runs import root_error
from trading_assets.defs.versions import stale_or_missing
from trading_assets.features import TARGET, feature_columns
from trading_assets_tests.conftest import END
from trading_assets_tests.defs.test_assets import latest_metadata

FEATURES = AssetKey("features")


def _location(feature_set: str):
    """The data assets and trained_model of a code location with TRADING_FEATURE_SET=``feature_set``: its
    ``features`` declares what that set reads as upstream."""
    from dagster import Definitions, define_asset_job, in_process_executor

    from trading_assets.defs.assets import features_asset, indicators, raw_candles
    from trading_assets.defs.checks import CHECKS
    from trading_assets.defs.definitions import bound_resources
    from trading_assets.defs.jobs import market_data_job
    from trading_assets.defs.partitions import market_partitions
    from trading_assets.defs.resources import Locations
    from trading_assets.defs.training import trained_model

    to_model = define_asset_job(
        "to_model",
        selection=["raw_candles", "indicators", "features", "trained_model"],
        partitions_def=market_partitions,
    )
    return Definitions(
        assets=[raw_candles, indicators, features_asset(feature_set), trained_model],
        asset_checks=CHECKS,
        jobs=[market_data_job, to_model],
        executor=in_process_executor,
        resources=bound_resources(Locations()),
    )


MTF_LOCATION, CROSS_LOCATION = _location("multi_timeframe"), _location("cross_asset")


def run_partition(instance, symbol: str, timeframe: str, run_config: dict, location=MTF_LOCATION):
    return location.resolve_job_def("market_data_job").execute_in_process(
        partition_key=partition_key(symbol, timeframe), instance=instance, run_config=run_config, raise_on_error=False
    )


def _config(feature_set: str, days: float = 2.0, end=END) -> dict:
    return {
        "ops": {"raw_candles": {"config": {"days": days, "end": end.isoformat()}}},
        "resources": {"feature_config": {"config": {"feature_set": feature_set}}},
    }


def _check(result, name: str, asset: AssetKey = FEATURES):
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if (e.asset_key, e.check_name) == (asset, name)]
    return evaluation


def test_a_code_location_declares_the_lineage_of_its_feature_set(instance):
    def upstream(location, parent: str, symbol: str, timeframe: str) -> set[str]:
        keys = (
            location.resolve_asset_graph()
            .get_parent_partition_keys_for_child(str(partition_key(symbol, timeframe)), AssetKey(parent), FEATURES)
            .partitions_subset.get_partition_keys()
        )
        return {str(k) for k in keys}

    def parents(location) -> set[str]:
        return {k.to_user_string() for k in location.resolve_asset_graph().get(FEATURES).parent_keys}

    assert parents(defs) == {"indicators"}  # the default set reads the partition's own indicators only
    assert upstream(defs, "indicators", "KRW-ETH", "5m") == {"KRW-ETH|5m"}
    assert parents(MTF_LOCATION) == {"indicators"}
    assert upstream(MTF_LOCATION, "indicators", "KRW-ETH", "5m") == {"KRW-ETH|5m", "KRW-ETH|60m", "KRW-ETH|240m"}
    assert upstream(MTF_LOCATION, "indicators", "KRW-BTC", "1m") == {"KRW-BTC|1m", "KRW-BTC|15m", "KRW-BTC|60m"}
    assert parents(CROSS_LOCATION) == {"indicators", "raw_candles"}
    assert upstream(CROSS_LOCATION, "raw_candles", "KRW-ETH", "15m") == {"KRW-BTC|15m"}
    assert upstream(CROSS_LOCATION, "indicators", "KRW-ETH", "15m") == {"KRW-ETH|15m"}


def test_multi_timeframe_features_join_the_stored_coarser_partitions(instance, data_dir):
    failed = run_partition(instance, "KRW-ETH", "5m", _config("multi_timeframe"))
    assert not failed.success  # the coarser partitions are not stored yet: the error names the first
    (failure,) = [e for e in failed.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.step_key == "features"
    message = root_error(failure.step_failure_data.error)
    assert "KRW-ETH 5m" in message and "indicators of KRW-ETH 60m, which are not stored" in message
    assert "--timeframes 60m" in message
    warmup = _check(failed, "warmup_sufficient", AssetKey("indicators"))  # the indicators are still audited
    assert warmup.metadata["features_compared"].value is False

    for timeframe in ("60m", "240m"):
        assert run_partition(instance, "KRW-ETH", timeframe, _config("default", days=30)).success
    result = run_partition(instance, "KRW-ETH", "5m", _config("multi_timeframe"))
    assert result.success
    frame = pd.read_parquet(data_dir / "assets" / "features" / "KRW-ETH" / "5m.parquet")
    assert list(frame.columns) == [*feature_columns("multi_timeframe"), TARGET]
    assert frame.index[0] == END - pd.Timedelta(days=2) and frame.notna().all().all()
    key = partition_key("KRW-ETH", "5m")
    meta = latest_metadata(instance, "features", key)
    assert meta["read_partitions"] == ["indicators KRW-ETH|60m", "indicators KRW-ETH|240m"]
    assert meta["feature_set"] == "multi_timeframe"
    assert _check(result, "no_look_ahead").passed  # ran on the joined columns too (see test_context_features)
    warmup = _check(result, "warmup_sufficient", AssetKey("indicators"))
    assert warmup.metadata["features_compared"].value is True and warmup.metadata["compared_with_bars"].value > 0
    assert stale_or_missing(instance, MTF_LOCATION.resolve_asset_graph(), [FEATURES], str(key)) == []

    # a coarser partition that changes makes the features that read it stale
    assert run_partition(
        instance, "KRW-ETH", "60m", _config("default", days=30, end=END + pd.Timedelta(hours=3))
    ).success
    assert stale_or_missing(instance, MTF_LOCATION.resolve_asset_graph(), [FEATURES], str(key)) == [FEATURES]
    assert stale_or_missing(instance, defs.resolve_asset_graph(), [FEATURES], str(key)) == []  # declares none

    # a coarser partition that ends before the span stops the run with the span it has: no row is dropped silently
    assert run_partition(
        instance, "KRW-ETH", "240m", _config("default", days=30, end=END - pd.Timedelta(days=1))
    ).success
    short = run_partition(instance, "KRW-ETH", "5m", _config("multi_timeframe"))
    assert not short.success
    (failure,) = [e for e in short.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "the 240m indicators do not cover the bars from" in root_error(failure.step_failure_data.error)


def test_cross_asset_features_join_the_reference_symbols_candles(instance, data_dir):
    failed = run_partition(instance, "KRW-ETH", "15m", _config("cross_asset"), CROSS_LOCATION)
    (failure,) = [e for e in failed.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "read the raw_candles of KRW-BTC 15m, which are not stored" in root_error(failure.step_failure_data.error)
    assert run_partition(instance, "KRW-BTC", "15m", _config("default"), CROSS_LOCATION).success
    result = run_partition(instance, "KRW-ETH", "15m", _config("cross_asset"), CROSS_LOCATION)
    assert result.success
    logs = [e.user_message for e in instance.all_logs(result.run_id)]
    assert not any("does not declare" in m for m in logs)
    undeclared = run_partition(instance, "KRW-ETH", "15m", _config("cross_asset"), defs)  # the default location
    assert undeclared.success  # reads the reference all the same, and says its lineage is not declared
    message = "feature set cross_asset reads the reference symbol, which this code location does not declare"
    assert any(message in e.user_message for e in instance.all_logs(undeclared.run_id))
    frame = pd.read_parquet(data_dir / "assets" / "features" / "KRW-ETH" / "15m.parquet")
    assert list(frame.columns) == [*feature_columns("cross_asset"), TARGET]
    btc = pd.read_parquet(data_dir / "assets" / "raw_candles" / "KRW-BTC" / "15m.parquet")
    expected = (btc["close"] / btc["close"].shift(1)).apply("log").reindex(frame.index)
    pd.testing.assert_series_equal(frame["ref_ret_1"], expected.astype("float32"), check_names=False, rtol=1e-4)
    meta = latest_metadata(instance, "features", partition_key("KRW-ETH", "15m"))
    assert meta["read_partitions"] == ["raw_candles KRW-BTC|15m"]
    assert _check(result, "no_look_ahead").passed


def test_the_cli_collects_what_a_feature_set_reads_before_the_partitions_reading_it(data_dir):
    args = ["materialize", "--assets", "data", "--symbols", "KRW-ETH", "--days", "2", "--end", END.isoformat()]
    result = CliRunner().invoke(main, [*args, "--timeframes", "15m", "--feature-set", "multi_timeframe"])
    assert result.exit_code == 0, result.output
    for timeframe in ("60m", "240m"):  # the coarser partitions' data up to their indicators, first
        assert (data_dir / "assets" / "indicators" / "KRW-ETH" / f"{timeframe}.parquet").exists()
        assert not (data_dir / "assets" / "features" / "KRW-ETH" / f"{timeframe}.parquet").exists()
    frame = pd.read_parquet(data_dir / "assets" / "features" / "KRW-ETH" / "15m.parquet")
    assert "htf2_rsi_14" in frame.columns
    refused = CliRunner().invoke(main, [*args, "--timeframes", "240m", "--feature-set", "multi_timeframe"])
    assert refused.exit_code != 0 and "240m has 1 coarser timeframe(s) (1d)" in refused.output


def test_coarser_bars_are_joined_on_markets_open_around_the_clock_only():
    from trading_assets.defs.context import load_context
    from trading_assets.defs.resources import Locations
    from trading_assets.errors import CandleDataError
    from trading_assets.partition import Partition
    from trading_assets.provenance import Provenance

    sessions = Provenance(symbol="USD-AAPL", timeframe="60m", calendar="XNYS").attach(pd.DataFrame())
    with pytest.raises(CandleDataError, match="USD-AAPL 60m.*not on the sessions of XNYS"):
        load_context(Locations(), Partition("USD-AAPL", "60m"), "multi_timeframe", sessions, 5)


@pytest.mark.parametrize("variable", ["KRW-BTC,KRW-ETH", "KRW/BTC"])
def test_reference_symbols_are_validated(monkeypatch, variable):
    from trading_assets import settings

    monkeypatch.setenv("TRADING_REFERENCE_SYMBOLS", variable)
    with pytest.raises(ValueError, match="one reference symbol per quote currency|invalid symbol"):
        settings.reference_symbols()


class _Sink:
    """What materialize_partition reports: the runs' labels and the assets it found up to date."""

    def __init__(self) -> None:
        self.fresh: list[str] = []

    def handle(self, label, entry) -> None:
        pass

    def up_to_date(self, label, keys, runs, checks) -> None:
        self.fresh += [k.to_user_string() for k in keys]


def test_features_computed_again_with_the_same_rows_leave_the_model_fresh(instance, data_dir):
    """In a code location declaring the reference symbol as upstream, its new candles make a market's features
    stale; a run of the default set computes them again, gets the same rows and data version, and retrains
    nothing."""
    from trading_assets.defs.runs import materialize_partition

    job = CROSS_LOCATION.resolve_job_def("to_model")  # declares the reference symbol as upstream
    config = _config("default", days=20)
    config["ops"]["trained_model"] = {"config": {"model": "linear", "seq_len": 8}}
    eth = str(partition_key("KRW-ETH", "15m"))

    def records(asset: str) -> list:
        return instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[eth]), limit=100
        ).records

    def materializations(asset: str) -> int:
        return len(records(asset))

    assert run_partition(instance, "KRW-BTC", "15m", _config("default", days=20), CROSS_LOCATION).success
    materialize_partition(job, instance, _Sink(), eth, config)
    assert [materializations(a) for a in ("features", "trained_model")] == [1, 1]

    later = _config("default", days=20, end=END + pd.Timedelta(hours=2))
    assert run_partition(instance, "KRW-BTC", "15m", later, CROSS_LOCATION).success
    assert stale_or_missing(instance, job.asset_layer.asset_graph, [FEATURES], eth) == [FEATURES]
    sink = _Sink()
    materialize_partition(job, instance, sink, eth, config)
    assert [materializations(a) for a in ("raw_candles", "features", "trained_model")] == [2, 2, 1]
    assert sorted(sink.fresh) == ["indicators", "trained_model"]
    second, first = (r.asset_materialization.tags["dagster/data_version"] for r in records("features"))
    assert second == first  # the same rows: the same data version
    assert stale_or_missing(instance, job.asset_layer.asset_graph, [AssetKey("trained_model")], eth) == []


def test_the_code_locations_set_serves_the_partitions_it_can_and_the_default_set_the_others(monkeypatch):
    from trading_assets.app.cli import lent_partitions
    from trading_assets.defs.resources import FeatureConfigResource, Locations
    from trading_assets.partition import Partition

    monkeypatch.setenv("TRADING_FEATURE_SET", "multi_timeframe")
    location = FeatureConfigResource(locations=Locations())
    assert location.set_for(Partition("KRW-ETH", "5m")) == "multi_timeframe"
    assert location.set_for(Partition("KRW-ETH", "240m")) == "default"  # 240m has one coarser timeframe
    assert location.config(Partition("KRW-ETH", "1d")).feature_set == "default"
    given = FeatureConfigResource(locations=Locations(), feature_set="multi_timeframe")
    assert given.set_for(Partition("KRW-ETH", "240m")) == "multi_timeframe"  # given: it must serve, or the step stops
    assert lent_partitions(None, ["KRW-ETH"], ["5m", "240m"]) == {
        ("KRW-ETH", "60m"): "indicators",
        ("KRW-ETH", "240m"): "indicators",
    }
    with pytest.raises(ValueError, match="240m has 1 coarser timeframe"):
        lent_partitions("multi_timeframe", ["KRW-ETH"], ["5m", "240m"])
    monkeypatch.setenv("TRADING_FEATURE_SET", "cross_asset")
    assert FeatureConfigResource(locations=Locations()).set_for(Partition("USDT-ETH", "5m")) == "default"
    assert lent_partitions(None, ["KRW-ETH", "USDT-ETH"], ["15m"]) == {("KRW-BTC", "15m"): "raw_candles"}
