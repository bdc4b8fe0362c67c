"""The live path through Dagster with a real MLflow registry: the champion decision, the signals, their checks,
the sensor and the CLI. The partition has a planted edge the linear model finds (the research loop's choice)."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from dagster import AssetKey, build_sensor_context
from mlflow.tracking import MlflowClient

from trading_assets.app.cli import main
from trading_assets.champions import ChampionCache
from trading_assets.defs import defs
from trading_assets.defs.live import range_tags, signals_after_new_candles, symbol_ranges
from trading_assets.defs.partitions import add_symbols
from trading_assets.defs.resources import Locations, MlflowResource
from trading_assets.execution import Execution
from trading_assets.features import FeatureConfig, build_features
from trading_assets.partition import Partition
from trading_assets.signals import SignalLog
from trading_assets.store import CandleStore
from trading_assets_tests.conftest import END
from trading_assets_tests.defs.pipeline import KEY, RUN_CONFIG, checks_of, meta, pipeline_home, run

P = Partition("KRW-ETH", "15m")
NAME = "trading_assets-KRW-ETH-15m"
LIVE_CONFIG = {
    **RUN_CONFIG,
    "ops": {
        **RUN_CONFIG["ops"],
        "trained_model": {"config": {**RUN_CONFIG["ops"]["trained_model"]["config"], "model": "linear"}},
    },
}


def _client(data_dir):
    uri = f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}"
    return MlflowClient(uri, registry_uri=uri)


def _history(data_dir):
    with CandleStore(f"sqlite:///{data_dir / 'candles.sqlite'}") as store:
        return SignalLog(store).history(P)


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    """The full pipeline with the linear model as the production model: it is promoted and scores the newest bar."""
    data_dir = tmp_path_factory.mktemp("live") / "data"
    with pipeline_home(data_dir, [P.symbol]) as instance:
        yield data_dir, instance, run(instance, LIVE_CONFIG)


@pytest.fixture
def live(pipeline_run, monkeypatch):
    """The module's pipeline, with its data folder as this test's (commands and later runs use it)."""
    monkeypatch.setenv("TRADING_DATA_DIR", str(pipeline_run[0]))
    return pipeline_run


def test_a_significant_challenger_confirmed_on_the_holdout_becomes_the_first_champion(live):
    data_dir, _, result = live
    assert result.success
    decision = meta(result, "champion")
    assert decision["decision"] == "promoted" and decision["champion_version"] == "1"
    assert decision["reason"].startswith("linear: first champion: significant net edge")
    evidence = decision["evidence"]
    assert (
        evidence["model"] == "linear" and evidence["edge_pvalue_adj"] <= 0.05 and evidence["holdout_net_log_return"] > 0
    )
    model = _client(data_dir).get_registered_model(NAME)
    assert model.aliases == {"champion": 1, "challenger": 1}
    version = _client(data_dir).get_model_version(NAME, "1")
    assert json.loads(version.tags["trading_assets.evidence"]) == evidence  # the evidence, as MLflow tags
    assert version.tags["trading_assets.decision"].startswith("promoted: linear: first champion")
    alerts = [json.loads(line) for line in (data_dir / "alerts.jsonl").read_text().splitlines()]
    assert any(a["decision"] == "promoted" and a["version"] == "1" and a["partition"] == KEY for a in alerts)
    cached = ChampionCache(data_dir / "champions").read(P)
    assert cached.version == "1" and (cached.bundle_dir / "bundle.json").exists()


def test_signals_score_the_newest_bar_like_a_full_recomputation(live):
    data_dir, instance, result = live
    signal_meta = meta(result, "signals")
    assert signal_meta["rows_appended"] == 1 and signal_meta["model_version"] == "1"
    history = _history(data_dir)
    indicators = pd.read_parquet(data_dir / "assets" / "indicators" / "KRW-ETH" / "15m.parquet")
    assert list(history.index) == [indicators.index[-1]] == [END - pd.Timedelta(minutes=15)]
    row = history.iloc[0]
    assert (row["model_name"], row["model_version"]) == (NAME, "1") and row["features_version"]
    assert row["features_version"] == signal_meta["indicators_data_version"]
    # the same forecast as the bundle on features built from the whole stored span (the last bar unlabelled)
    bundle = ChampionCache(data_dir / "champions").read(P).load_bundle()
    full = build_features(indicators, P, FeatureConfig(), span_start=indicators.index[0], keep_unlabelled=True).frame
    np.testing.assert_allclose(row["forecast"], bundle.predict(full).iloc[-1], rtol=1e-6)
    assert row["position"] == (1.0 if row["forecast"] > Execution().costs.round_trip else 0.0)
    assert checks_of(result, "signals")["champion_usable"].passed
    drift = checks_of(result, "signals")["drift"]
    assert drift.metadata["model_version"].value == "1" and set(drift.metadata["feature_ks"].value) == set(
        bundle.feature_columns
    )


def test_new_candles_drive_signals_and_the_next_run_catches_up_on_every_bar(live):
    data_dir, instance, _ = live
    before = _history(data_dir)
    later = {"ops": {"raw_candles": {"config": {"days": 20.0, "end": (END + pd.Timedelta(hours=2)).isoformat()}}}}
    later["resources"] = RUN_CONFIG["resources"]
    assert run(instance, later, "market_data_job").success
    resources = {"mlflow_tracking": MlflowResource(locations=Locations())}
    with build_sensor_context(instance=instance, resources=resources) as context:
        requests = signals_after_new_candles(context)
    assert [r.tags for r in requests] == [range_tags(KEY, KEY)]  # data, not a cron, asks for the signals
    job = defs.resolve_job_def("signals_job")
    assert job.execute_in_process(
        instance=instance, run_config={"resources": RUN_CONFIG["resources"]}, tags=requests[0].tags
    ).success
    history = _history(data_dir)
    new = pd.date_range(END, END + pd.Timedelta(minutes=105), freq="15min", tz="UTC")
    assert list(history.index) == [*before.index, *new]  # every bar since the last signal, none twice
    pd.testing.assert_frame_equal(history.loc[before.index], before)  # history never changes
    with build_sensor_context(instance=instance, resources=resources, cursor=context.cursor) as again:
        assert not isinstance(signals_after_new_candles(again), list)  # nothing new: nothing asked


def test_signal_history_is_append_only_and_all_or_nothing(live):
    data_dir, _, _ = live
    with CandleStore(f"sqlite:///{data_dir / 'candles.sqlite'}") as store:
        log = SignalLog(store)
        history = log.history(P)
        assert log.append(P, history.iloc[-3:].assign(forecast=9.0)) == 0  # written before: never changed
        later = history.iloc[-2:].copy()
        later.index = later.index + pd.Timedelta(days=30)
        later["forecast"] = later["forecast"].astype(object)
        later.iloc[1, later.columns.get_loc("forecast")] = "not a number"  # the second row fails mid-transaction
        with pytest.raises(ValueError):
            log.append(P, later)
        pd.testing.assert_frame_equal(log.history(P), history)  # no partial rows


def test_a_weaker_challenger_is_refused_and_the_cli_promotes_and_rolls_back(live):
    data_dir, instance, _ = live
    training = {"ops": {"trained_model": LIVE_CONFIG["ops"]["trained_model"]}}
    assert run(instance, training, "training_job").success  # version 2, the same evidence as version 1
    result = defs.resolve_job_def("full_pipeline_job").execute_in_process(
        partition_key=KEY,
        instance=instance,
        run_config={},
        asset_selection=[AssetKey("champion")],
        raise_on_error=False,
    )
    decision = meta(result, "champion")
    assert decision["decision"] == "refused" and "does not beat the champion" in decision["reason"]
    client = _client(data_dir)
    assert client.get_registered_model(NAME).aliases == {"champion": 1, "challenger": 2}
    assert client.get_model_version(NAME, "2").tags["trading_assets.decision"].startswith("refused: ")

    runner = CliRunner()
    listed = runner.invoke(main, ["models", "list", "--symbols", "KRW-ETH"])
    assert listed.exit_code == 0 and NAME in listed.output and "champion" in listed.output
    promoted = runner.invoke(main, ["models", "promote", "--symbol", "KRW-ETH", "--timeframe", "15m", "--version", "2"])
    assert promoted.exit_code == 0, promoted.output
    assert client.get_registered_model(NAME).aliases["champion"] == 2
    assert ChampionCache(data_dir / "champions").read(P).version == "2"
    rolled = runner.invoke(main, ["models", "rollback", "--symbol", "KRW-ETH", "--timeframe", "15m"])
    assert rolled.exit_code == 0 and "version 1 again" in rolled.output
    assert client.get_registered_model(NAME).aliases["champion"] == 1
    assert ChampionCache(data_dir / "champions").read(P).version == "1"
    # version 2 was judged once: the rollback sticks, and a lost cache is refilled from the registry
    shutil.rmtree(data_dir / "champions")
    again = defs.resolve_job_def("full_pipeline_job").execute_in_process(
        partition_key=KEY, instance=instance, run_config={}, asset_selection=[AssetKey("champion")]
    )
    assert (
        meta(again, "champion")["decision"] == "none" and "version 2: rolled back" in meta(again, "champion")["reason"]
    )
    assert client.get_registered_model(NAME).aliases["champion"] == 1
    assert ChampionCache(data_dir / "champions").read(P).version == "1"
    no_more = runner.invoke(main, ["models", "rollback", "--symbol", "KRW-ETH", "--timeframe", "15m"])
    assert no_more.exit_code == 1 and "no champion before version 1" in no_more.output
    bad = runner.invoke(main, ["models", "promote", "--symbol", "KRW|ETH", "--timeframe", "15m", "--version", "1"])
    assert bad.exit_code == 2 and "invalid symbol" in bad.output
    alerts = [json.loads(line) for line in (data_dir / "alerts.jsonl").read_text().splitlines()]
    assert {a["decision"] for a in alerts if a.get("model") == NAME} == {"promoted", "refused", "rolled back"}


def test_the_signals_command_shows_the_latest_signal_of_each_partition(live):
    data_dir, _, _ = live
    newest = _history(data_dir).iloc[-1]
    out = CliRunner().invoke(main, ["signals", "--timeframes", "15m"])
    assert out.exit_code == 0, out.output
    assert KEY in out.output and newest.name.isoformat() in out.output and f"{NAME} v1" in out.output
    assert "KRW-ETH|15m" not in CliRunner().invoke(main, ["signals", "--timeframes", "1m"]).output


def test_a_champion_that_does_not_fit_the_features_stops_the_signals_with_an_error(live):
    data_dir, instance, _ = live
    cache = ChampionCache(data_dir / "champions")
    good = cache.read(P)
    broken = data_dir / "broken_bundle"
    shutil.copytree(good.bundle_dir, broken)
    config = json.loads((broken / "bundle.json").read_text())
    config["feature_columns"][0] = "no_such_feature"
    (broken / "bundle.json").write_text(json.dumps(config))
    cache.write(P, NAME, "99", broken)
    before = _history(data_dir)
    later = {"ops": {"raw_candles": {"config": {"days": 20.0, "end": (END + pd.Timedelta(hours=3)).isoformat()}}}}
    assert run(instance, {**later, "resources": RUN_CONFIG["resources"]}, "market_data_job").success
    result = run(instance, {"resources": RUN_CONFIG["resources"]}, "signals_job")
    check = checks_of(result, "signals")["champion_usable"]
    assert not check.passed and check.severity.value == "ERROR"
    assert "version 99" in check.description and "no_such_feature" in check.description
    pd.testing.assert_frame_equal(_history(data_dir), before)  # nothing written
    cache.write(P, NAME, good.version, good.bundle_dir)


def test_the_freshness_check_names_partitions_whose_signals_are_late(live):
    _, instance, _ = live
    result = defs.resolve_job_def("signals_freshness_job").execute_in_process(instance=instance, raise_on_error=False)
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "fresh"]
    assert not check.passed and check.severity.value == "ERROR"  # END lies weeks before now
    assert KEY in check.description and check.metadata["beyond_error"].value == 1


def test_new_bars_after_a_hole_in_the_features_get_the_forecast_a_full_recomputation_gives(live):
    """Rows with incomplete features are dropped: the model's window then reaches further back in the bars."""
    from trading_assets.signals import score_new_bars

    data_dir, _, _ = live
    indicators = pd.read_parquet(data_dir / "assets" / "indicators" / "KRW-ETH" / "15m.parquet")
    indicators.iloc[-16:-6, indicators.columns.get_loc("rsi_14")] = np.nan  # longer than ffill_limit
    bundle = ChampionCache(data_dir / "champions").read(P).load_bundle()
    stamp = {"model_name": NAME, "model_version": "1", "features_version": "x"}
    now = pd.Timestamp.now(tz="UTC")
    scored = score_new_bars(indicators, P, bundle, FeatureConfig(), Execution(), indicators.index[-6], 0.0, stamp, now)
    full = build_features(indicators, P, FeatureConfig(), span_start=indicators.index[0], keep_unlabelled=True).frame
    expected = bundle.predict(full).reindex(indicators.index[-5:]).dropna()
    assert scored.unscored == 0 and len(expected) == 5
    np.testing.assert_allclose(scored.rows["forecast"], expected, rtol=1e-6)


def test_wanted_partitions_become_the_fewest_symbol_ranges_of_one_timeframe():
    symbols = ["KRW-A", "KRW-B", "KRW-C", "KRW-D", "KRW-E"]
    wanted = {Partition(s, "1m") for s in ("KRW-A", "KRW-B", "KRW-C", "KRW-E")} | {Partition("KRW-B", "5m")}
    assert symbol_ranges(wanted, symbols) == [
        ("KRW-A|1m", "KRW-C|1m"),  # consecutive symbols: one range
        ("KRW-E|1m", "KRW-E|1m"),  # KRW-D is not wanted: not in a range
        ("KRW-B|5m", "KRW-B|5m"),  # another timeframe: another run
    ]


def test_one_signals_run_covers_a_range_of_symbols(live):
    """The sensor asks for one run per range of symbols: each partition is scored in it, one at a time; one
    without a champion is skipped, and a broken champion stops only its own partition's signals."""
    data_dir, instance, _ = live
    add_symbols(instance, ["KRW-NONE", "KRW-XRP", "KRW-BAD", "KRW-GONE"])  # in order after KRW-ETH
    for symbol in ("KRW-XRP", "KRW-BAD"):
        data = {"ops": {"raw_candles": RUN_CONFIG["ops"]["raw_candles"]}, "resources": RUN_CONFIG["resources"]}
        assert run(instance, data, "market_data_job", Partition(symbol, "15m").key).success
    cache = ChampionCache(data_dir / "champions")
    champion = cache.read(P)
    cache.write(Partition("KRW-XRP", "15m"), champion.model_name, champion.version, champion.bundle_dir)
    broken = data_dir / "unfit_bundle"
    shutil.copytree(champion.bundle_dir, broken)
    config = json.loads((broken / "bundle.json").read_text())
    config["feature_columns"][0] = "no_such_feature"
    (broken / "bundle.json").write_text(json.dumps(config))
    cache.write(Partition("KRW-BAD", "15m"), champion.model_name, "7", broken)
    cache.write(Partition("KRW-GONE", "15m"), champion.model_name, champion.version, champion.bundle_dir)  # no data
    job = defs.resolve_job_def("signals_job")
    result = job.execute_in_process(
        instance=instance,
        run_config={"resources": RUN_CONFIG["resources"]},
        tags=range_tags(KEY, Partition("KRW-GONE", "15m").key),
    )
    assert result.success
    materialized = {e.event_specific_data.materialization.partition for e in result.get_asset_materialization_events()}
    assert materialized == {KEY, "KRW-NONE|15m", "KRW-XRP|15m", "KRW-BAD|15m", "KRW-GONE|15m"}  # one run
    by_partition = meta(result, "signals")["by_partition"]
    assert by_partition["KRW-NONE|15m"]["skipped"].startswith("KRW-NONE 15m: no champion yet")
    assert by_partition["KRW-XRP|15m"]["rows_appended"] == 1 and by_partition["KRW-XRP|15m"]["model_version"] == "1"
    stopped = by_partition["KRW-BAD|15m"]["stopped"]
    assert stopped.startswith("KRW-BAD 15m: champion") and "version 7" in stopped and "no_such_feature" in stopped
    assert by_partition["KRW-GONE|15m"]["stopped"].startswith("KRW-GONE 15m: FileNotFoundError")  # not the others
    usable = checks_of(result, "signals")["champion_usable"]
    assert not usable.passed and "KRW-BAD 15m" in usable.description and "KRW-XRP" not in usable.description
    with CandleStore(f"sqlite:///{data_dir / 'candles.sqlite'}") as store:
        log = SignalLog(store)
        assert len(log.history(Partition("KRW-XRP", "15m"))) == 1 and log.history(Partition("KRW-BAD", "15m")).empty
    drift = checks_of(result, "signals")["drift"]
    figures = drift.metadata["by_partition"].value
    assert figures["KRW-NONE|15m"] == {"skipped": "no champion"} and figures["KRW-XRP|15m"]["model_version"] == "1"
    assert figures["KRW-BAD|15m"]["skipped"].startswith("champion version 7 unusable")
