"""The tuning asset through Dagster: a sweep per model with a nested MLflow run per trial, its best settings
applied by `tuned: true`, its trials counted by the leaderboard; the CLI's tune command."""

import pandas as pd
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from trading_assets.app.cli import main
from trading_assets.defs import defs
from trading_assets.defs.partitions import partition_key
from trading_assets_tests.conftest import END

KEY = partition_key("KRW-BTC", "5m")
DATA = {"ops": {"raw_candles": {"config": {"days": 14.0, "end": END.isoformat()}}}}


def _run(instance, job, config):
    return defs.resolve_job_def(job).execute_in_process(
        partition_key=KEY, instance=instance, run_config=config, raise_on_error=False
    )


def test_the_best_tuned_settings_feed_the_research_loop_and_the_board_counts_the_trials(instance, data_dir):
    assert _run(instance, "market_data_job", DATA).success
    tuned = _run(instance, "tuning_job", {"ops": {"tuning": {"config": {"models": ["lightgbm"], "trials": 3}}}})
    assert tuned.success
    trials = pd.read_parquet(data_dir / "assets" / "tuning" / "KRW-BTC" / "5m.parquet")
    best = trials.attrs["best"]["lightgbm"]
    assert len(trials) == 3 and set(trials["state"]) <= {"COMPLETE", "PRUNED"} and best["trials"] == 3
    uri = f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(uri)
    [parent] = client.search_runs(
        client.get_experiment_by_name("trading_assets").experiment_id, "tags.dagster_asset = 'tuning'"
    )
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(c.data.tags["trial"] for c in children) == ["0", "1", "2"]  # a nested run per trial

    research = {"ops": {"predictions": {"config": {"models": ["lightgbm", "linear"], "tuned": True}}}}
    assert _run(instance, "research_job", research).success
    predictions = pd.read_parquet(data_dir / "assets" / "predictions" / "KRW-BTC" / "5m.parquet")
    assert predictions.attrs["research"]["tuned"] == {"lightgbm": best["params"]}
    assert predictions.attrs["research"]["tuning_trials"] == {"lightgbm": 3}
    board = defs.resolve_job_def("leaderboard_job").execute_in_process(instance=instance)
    verdict = board.asset_materializations_for_node("leaderboard")[0].metadata["verdict"].value
    assert " of 4 entries tried" in verdict  # 2 models, and 2 more configurations the sweep tried

    earlier = {"ops": {"raw_candles": {"config": {"days": 14.0, "end": (END - pd.Timedelta(days=3)).isoformat()}}}}
    assert _run(instance, "market_data_job", earlier).success  # its test folds now lie inside the sweep's span
    leaky = _run(instance, "research_job", research)
    assert not leaky.success
    failure = leaky.get_step_failure_events()[0].event_specific_data.error
    assert "the sweep read features up to" in "".join(e.message for e in (failure, failure.cause) if e)

    untuned = _run(instance, "training_job", {"ops": {"trained_model": {"config": {"model": "gru", "tuned": True}}}})
    assert not untuned.success
    failure = untuned.get_step_failure_events()[0].event_specific_data.error
    error = "".join(e.message for e in (failure, failure.cause) if e)
    assert "no tuning result for ['gru']" in error and "trading-assets tune --symbols KRW-BTC --timeframes 5m" in error


def test_tune_refuses_models_it_cannot_tune():
    bad = CliRunner().invoke(main, ["tune", "--models", "mlp"])
    assert bad.exit_code == 2 and "unknown; expected some of" in bad.output
    flat = CliRunner().invoke(main, ["tune", "--models", "linear"])
    assert flat.exit_code == 2 and "nothing to tune" in flat.output
