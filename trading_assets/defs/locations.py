"""Where the platform reads, writes and connects: bound from the environment, never from run config.

Dagster lets a run's config override any field of a top-level resource, and the UI's launchpad
offers exactly that to whoever reaches it. A field that says where to read files, which host to call
or holds a credential must not be one of them: :class:`Locations` is a resource nested inside the
others (``CandleSourceResource(locations=...)``), and a nested resource's fields are not part of the
run config schema (a test proves it). :meth:`Locations.from_env` binds each field to its variable
with ``EnvVar``, so the UI shows the variable's name, never its value.

No `from __future__ import annotations` here: Dagster reads the field annotations.
"""

import os
from pathlib import Path

from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from trading_assets.settings import data_dir, default_db_url, default_tracking_uri

UPBIT_URL = "https://api.upbit.com"
WEBUI_URL = "http://127.0.0.1:3000"
# field -> the environment variable it is bound to
ENV_VARS: dict[str, str] = {
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
}


class Locations(ConfigurableResource):
    """Paths, hosts and credentials. Unset fields fall back to their variable, then to the data folder."""

    db_url: str | None = Field(default=None, description="Candle store URL; default SQLite in the data folder")
    assets_path: str | None = Field(default=None, description="Base path or URL of the Parquet assets")
    files_dir: str | None = Field(default=None, description="Candle files of the files source")
    upbit_base_url: str | None = Field(default=None, description=f"Upbit REST API base URL; default {UPBIT_URL}")
    ccxt_api_url: str | None = Field(
        default=None, description="Public API URL of the ccxt exchange (a mirror); default the exchange's own"
    )
    mlflow_tracking_uri: str | None = Field(default=None, description="MLflow tracking and registry URI")
    alert_webhook_url: str | None = Field(default=None, description="Slack-compatible webhook (a secret)")
    alert_log_path: str | None = Field(default=None, description="JSON-lines alert log")
    alert_outbox_path: str | None = Field(
        default=None, description="SQLite outbox of alerts to deliver; default <data dir>/alerts_outbox.sqlite"
    )
    webui_url: str | None = Field(default=None, description=f"Base of run links in alerts; default {WEBUI_URL}")

    @classmethod
    def from_env(cls) -> "Locations":
        """Every field whose variable is set, bound to it with ``EnvVar`` (the rest take their defaults)."""
        return cls(**{field: EnvVar(var) for field, var in ENV_VARS.items() if os.environ.get(var)})

    def _get(self, field: str) -> str | None:
        return getattr(self, field) or os.environ.get(ENV_VARS[field]) or None

    def resolved_db_url(self) -> str:
        return self._get("db_url") or default_db_url()

    def resolved_assets_path(self) -> str:
        return self._get("assets_path") or str(data_dir() / "assets")

    def resolved_files_dir(self) -> Path:
        files_dir = self._get("files_dir")
        return Path(files_dir) if files_dir else data_dir() / "candle_files"

    def resolved_upbit_base_url(self) -> str:
        return self._get("upbit_base_url") or UPBIT_URL

    def resolved_ccxt_api_url(self) -> str | None:
        return self._get("ccxt_api_url")

    def resolved_tracking_uri(self) -> str:
        return self._get("mlflow_tracking_uri") or default_tracking_uri()

    def resolved_webhook(self) -> str | None:
        return self._get("alert_webhook_url")

    def resolved_alert_log(self) -> Path:
        log_path = self._get("alert_log_path")
        return Path(log_path) if log_path else data_dir() / "alerts.jsonl"

    def resolved_alert_outbox(self) -> Path:
        outbox_path = self._get("alert_outbox_path")
        return Path(outbox_path) if outbox_path else data_dir() / "alerts_outbox.sqlite"

    def resolved_webui_url(self) -> str:
        return self._get("webui_url") or WEBUI_URL
