"""Fixtures of the Dagster-layer tests: one full pipeline run shared by the training, research and live tests."""

import pytest

from trading_assets.defs import defs
from trading_assets_tests.defs.pipeline import KEY, RUN_CONFIG, pipeline_home, run


@pytest.fixture(scope="package")
def pipeline(tmp_path_factory):
    """One full run of the graph (data, trained_model, predictions, evaluation) and the leaderboard."""
    data_dir = tmp_path_factory.mktemp("research") / "data"
    with pipeline_home(data_dir, ["KRW-ETH"]) as instance:
        result = run(instance, RUN_CONFIG, "full_pipeline_job", KEY)
        board = defs.resolve_job_def("leaderboard_job").execute_in_process(instance=instance, raise_on_error=False)
        yield data_dir, result, board
