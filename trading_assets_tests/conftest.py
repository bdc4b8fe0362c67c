"""Shared fixtures: a private data folder per test, a PostgreSQL server, synthetic candles."""

from __future__ import annotations

import os

import pandas as pd
import pytest
from dagster import instance_for_test

from trading_assets.defs.partitions import DEFAULT_SYMBOLS, add_symbols
from trading_assets.sources import SyntheticSource
from trading_assets_tests.servers import PostgresServer


def data_resources(**replace):
    """The resources as the code location binds them (locations from defaults, not the environment), with
    ``replace`` swapped in: for ``materialize`` of a few assets."""
    from trading_assets.defs.definitions import bound_resources
    from trading_assets.defs.resources import Locations

    return {**bound_resources(Locations()), **replace}


# Read when the code location loads (its declared lineage, its code version): the tests expect the defaults.
for _var in ("TRADING_FEATURE_SET", "TRADING_REFERENCE_SYMBOLS"):
    os.environ.pop(_var, None)

# A fixed end keeps every test deterministic (the synthetic source is a pure function of time).
END = pd.Timestamp("2026-10-01", tz="UTC")


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    """Every test gets its own data folder and no inherited database/instance/MLflow settings."""
    path = tmp_path / "data"
    monkeypatch.setenv("TRADING_DATA_DIR", str(path))
    for var in ("TRADING_DB_URL", "DAGSTER_HOME", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    return path


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server for the session (Debian's postgresql package must be installed)."""
    try:
        server = PostgresServer()
    except RuntimeError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture
def bare_instance(tmp_path):
    """A Dagster instance in a temporary DAGSTER_HOME (SQLite), no symbols registered."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    with instance_for_test(temp_dir=str(home)) as inst:
        yield inst


@pytest.fixture
def instance(bare_instance):
    """A temporary Dagster instance with the default symbols (KRW-BTC, KRW-ETH) registered."""
    add_symbols(bare_instance, DEFAULT_SYMBOLS)
    return bare_instance


@pytest.fixture
def candles_1m() -> pd.DataFrame:
    """Two days of synthetic 1-minute candles (with missing bars)."""
    return SyntheticSource(seed=3).fetch("KRW-BTC", "1m", END - pd.Timedelta(days=2), END)
