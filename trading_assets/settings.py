"""Where the platform keeps its local state when nothing else is configured."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """``$TRADING_DATA_DIR``, or ``./data`` relative to the working directory.

    Owner-only (mode 0700), created so or made so when found wider: it holds the candle store, the alert
    log and models.
    """
    path = Path(os.environ.get("TRADING_DATA_DIR", "data")).resolve()
    if not path.exists():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    elif path.stat().st_mode & 0o077 and path.stat().st_uid == os.getuid():
        path.chmod(0o700)
    return path


def default_db_url() -> str:
    """``$TRADING_DB_URL``, or a SQLite file in the data folder."""
    return os.environ.get("TRADING_DB_URL") or f"sqlite:///{data_dir() / 'candles.sqlite'}"


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, or a SQLite store in ``<data dir>/mlflow`` (the registry needs a database)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{data_dir() / 'mlflow' / 'mlflow.db'}"
