"""The pipeline run the Dagster-layer tests share: a planted edge the research loop must find."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from dagster import DagsterInstance, instance_for_test

from trading_assets.defs import defs
from trading_assets.defs.partitions import add_symbols, partition_key
from trading_assets_tests.conftest import END

MODEL = {"epochs": 3, "seq_len": 24, "hidden_size": 16}
RESEARCH = {"fold_period": "D", "max_folds": 3}
RUN_CONFIG = {
    "ops": {
        "raw_candles": {"config": {"days": 20.0, "end": END.isoformat()}},
        "trained_model": {"config": {**MODEL, "model": "gru"}},
        "predictions": {"config": {**MODEL, **RESEARCH, "models": ["gru", "linear"]}},
    },
    # a planted edge: the research loop must find it through Dagster too
    "resources": {"candle_source": {"config": {"synthetic_edge": "persistent", "synthetic_edge_strength": 0.8}}},
}
KEY = partition_key("KRW-ETH", "15m")


def run(instance, run_config=RUN_CONFIG, job="full_pipeline_job", key=KEY):
    return defs.resolve_job_def(job).execute_in_process(
        partition_key=key, instance=instance, run_config=run_config, raise_on_error=False
    )


def meta(result, node):
    return {k: v.value for k, v in result.asset_materializations_for_node(node)[0].metadata.items()}


def checks_of(result, asset):
    return {e.check_name: e for e in result.get_asset_check_evaluations() if e.asset_key.to_user_string() == asset}


@contextmanager
def pipeline_home(data_dir: Path, symbols: list[str]) -> Iterator[DagsterInstance]:
    """A test instance with ``symbols`` registered, over ``data_dir`` and no inherited store, instance or MLflow
    settings, for a fixture that outlives one test."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRADING_DATA_DIR", str(data_dir))
        for var in ("TRADING_DB_URL", "DAGSTER_HOME", "MLFLOW_TRACKING_URI"):
            mp.delenv(var, raising=False)
        with instance_for_test() as instance:
            add_symbols(instance, symbols)
            yield instance
