"""Fixtures of the Dagster-layer tests: one full pipeline run shared by the training, research and live tests."""

import pytest

from trading_assets.defs import defs
from trading_assets_tests.defs.pipeline import KEY, RUN_CONFIG, run


@pytest.fixture(scope="package")
def pipeline(tmp_path_factory):
    """One full run of the graph (data, trained_model, predictions, evaluation) and the leaderboard."""
    from dagster import instance_for_test

    data_dir = tmp_path_factory.mktemp("research") / "data"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRADING_DATA_DIR", str(data_dir))
        for var in ("TRADING_DB_URL", "DAGSTER_HOME", "MLFLOW_TRACKING_URI"):
            mp.delenv(var, raising=False)
        with instance_for_test() as instance:
            from trading_assets.defs.partitions import add_symbols

            add_symbols(instance, ["KRW-ETH"])
            result = run(instance, RUN_CONFIG, "full_pipeline_job", KEY)
            board = defs.resolve_job_def("leaderboard_job").execute_in_process(instance=instance, raise_on_error=False)
            yield data_dir, result, board
