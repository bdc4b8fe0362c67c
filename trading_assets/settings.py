"""The platform's settings: the one module that reads the environment.

Every variable the platform reads is declared here, with what it sets. Values given on a command line
reach in-process runs through :func:`given` (a context), never by writing the environment.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

# Locations (paths, hosts, credentials): Locations resource field -> its environment variable.
LOCATION_VARS: dict[str, str] = {
    "db_url": "TRADING_DB_URL",
    "assets_path": "TRADING_ASSETS_PATH",
    "files_dir": "TRADING_FILES_DIR",
    "upbit_base_url": "TRADING_UPBIT_BASE_URL",
    "ccxt_api_url": "TRADING_CCXT_API_URL",
    "mlflow_tracking_uri": "MLFLOW_TRACKING_URI",
    "alert_webhook_url": "TRADING_ALERT_WEBHOOK_URL",
    "alert_log_path": "TRADING_ALERT_LOG",
    "alert_outbox_path": "TRADING_ALERT_OUTBOX",
    "webui_url": "DAGSTER_WEBUI_URL",
    "champion_cache": "TRADING_CHAMPION_CACHE",
    "optuna_storage": "TRADING_OPTUNA_STORAGE",
}
DATA_DIR_VAR = "TRADING_DATA_DIR"
DAGSTER_HOME_VAR = "DAGSTER_HOME"
ALERT_SENSOR_INTERVAL_VAR = "TRADING_ALERT_SENSOR_INTERVAL"
REFRESH_CRON_VAR = "TRADING_REFRESH_CRON_{timeframe}"  # upper-case timeframe, e.g. TRADING_REFRESH_CRON_5M
TRAINING_CRON_VAR = "TRADING_TRAINING_CRON"
FEATURE_SET_VAR = "TRADING_FEATURE_SET"  # the code location's feature set: its default, and the lineage declared
REFERENCE_SYMBOLS_VAR = "TRADING_REFERENCE_SYMBOLS"  # comma-separated, one per quote currency
DEFAULT_REFERENCE_SYMBOLS = "KRW-BTC"

_GIVEN: ContextVar[dict[str, str]] = ContextVar("given_locations", default={})


def env(name: str) -> str | None:
    """The variable ``name``, or None when unset or empty."""
    return os.environ.get(name) or None


@contextmanager
def given(**locations: str | None) -> Iterator[None]:
    """Locations given by the caller (the CLI's ``--files-dir``, ``--upbit-url``), ahead of the environment,
    for the code run inside the block (in-process runs included)."""
    unknown = set(locations) - set(LOCATION_VARS)
    if unknown:
        raise ValueError(f"unknown location(s) {sorted(unknown)}; expected some of {sorted(LOCATION_VARS)}")
    token = _GIVEN.set({**_GIVEN.get(), **{k: v for k, v in locations.items() if v}})
    try:
        yield
    finally:
        _GIVEN.reset(token)


def location(field: str) -> str | None:
    """The location ``field``: given by the caller, else its environment variable, else None."""
    return _GIVEN.get().get(field) or env(LOCATION_VARS[field])


def given_locations() -> dict[str, str]:
    """The locations given by the caller now (redaction hides their credentials)."""
    return dict(_GIVEN.get())


def data_dir() -> Path:
    """``$TRADING_DATA_DIR``, or ``./data`` relative to the working directory.

    Owner-only (mode 0700), created so or made so when found wider: it holds the candle store, the alert
    log and models.
    """
    path = Path(env(DATA_DIR_VAR) or "data").resolve()
    if not path.exists():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    elif path.stat().st_mode & 0o077 and path.stat().st_uid == os.getuid():
        path.chmod(0o700)
    return path


def default_db_url() -> str:
    """``$TRADING_DB_URL``, or a SQLite file in the data folder."""
    return location("db_url") or f"sqlite:///{data_dir() / 'candles.sqlite'}"


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, or a SQLite store in ``<data dir>/mlflow`` (the registry needs a database)."""
    return location("mlflow_tracking_uri") or f"sqlite:///{data_dir() / 'mlflow' / 'mlflow.db'}"


def dagster_home() -> Path | None:
    """``$DAGSTER_HOME`` (a production instance), or None: the embedded instance in the data folder."""
    home = env(DAGSTER_HOME_VAR)
    return Path(home) if home else None


def embedded_dagster_home() -> Path:
    """Where the embedded instance lives: ``<data dir>/dagster_home``."""
    return data_dir() / "dagster_home"


def alert_sensor_interval() -> int:
    """Seconds between the alert sensors' ticks (``$TRADING_ALERT_SENSOR_INTERVAL``, default 30)."""
    return int(env(ALERT_SENSOR_INTERVAL_VAR) or 30)


def refresh_cron(timeframe: str, default: str) -> str:
    """The refresh schedule's cron of ``timeframe`` (``$TRADING_REFRESH_CRON_<TF>``), else ``default``."""
    return env(REFRESH_CRON_VAR.format(timeframe=timeframe.upper())) or default


def training_cron(default: str) -> str:
    """The training schedule's cron (``$TRADING_TRAINING_CRON``), else ``default``."""
    return env(TRAINING_CRON_VAR) or default


def feature_set() -> str:
    """The code location's feature set ($TRADING_FEATURE_SET, default ``default``), validated: the runs' default,
    and the one whose reads of other partitions ``features`` declares as upstream."""
    from trading_assets.features import DEFAULT_FEATURE_SET
    from trading_assets.features import feature_set as named_set

    name = env(FEATURE_SET_VAR) or DEFAULT_FEATURE_SET
    try:
        named_set(name)
    except ValueError as error:
        raise ValueError(f"{FEATURE_SET_VAR}: {error}") from None
    return name


def reference_symbols() -> tuple[str, ...]:
    """The reference symbol of each quote currency (the ``cross_asset`` feature set joins its candles), validated:
    $TRADING_REFERENCE_SYMBOLS, default KRW-BTC (for every KRW market)."""
    from trading_assets.timeframes import validate_symbol

    listed = (env(REFERENCE_SYMBOLS_VAR) or DEFAULT_REFERENCE_SYMBOLS).split(",")
    symbols = tuple(validate_symbol(s.strip()) for s in listed)
    quotes = [s.split("-")[0] for s in symbols]
    if len(set(quotes)) != len(quotes):
        raise ValueError(f"{REFERENCE_SYMBOLS_VAR}: one reference symbol per quote currency, got {', '.join(symbols)}")
    return symbols


def location_settings_error() -> str | None:
    """The message of an invalid code-location setting (``$TRADING_FEATURE_SET``, ``$TRADING_REFERENCE_SYMBOLS``),
    else None: the command line stops with it before the definitions, which read them, are imported."""
    try:
        feature_set()
        reference_symbols()
    except ValueError as error:
        return str(error)
    return None


def child_environment(**variables: str) -> dict[str, str]:
    """This process's environment plus ``variables``, for a child process (the web UI)."""
    return {**os.environ, **variables}
