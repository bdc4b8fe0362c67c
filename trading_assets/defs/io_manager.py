"""One Parquet file per asset partition: ``<base>/<asset>/<symbol>/<timeframe>.parquet``.

Built on Dagster's ``UPathIOManager``, so the base path may be any fsspec URL (object storage
later). Local writes are atomic: the frame goes to a temporary file beside the target, which is
then renamed over it, so a crash never leaves a half-written partition. ``DataFrame.attrs``
(span, scaler parameters, ...) travel inside the Parquet file.
"""

from __future__ import annotations

import uuid

import pandas as pd
from dagster import ConfigurableIOManagerFactory, InputContext, OutputContext, UPathIOManager
from pydantic import Field
from upath import UPath

from trading_assets.settings import data_dir


class _ParquetUPathIOManager(UPathIOManager):
    extension = ".parquet"

    def dump_to_path(self, context: OutputContext, obj: pd.DataFrame, path: UPath) -> None:
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"{context.asset_key.to_user_string()} must be a pandas DataFrame, got {type(obj)}")
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            with tmp.open("wb") as f:
                obj.to_parquet(f, engine="pyarrow")
            if hasattr(tmp, "replace"):
                tmp.replace(path)
            else:  # object stores: the upload above is already all-or-nothing
                tmp.rename(path)
        finally:
            if tmp.exists():
                tmp.unlink()

    def load_from_path(self, context: InputContext, path: UPath) -> pd.DataFrame:
        with path.open("rb") as f:
            return pd.read_parquet(f, engine="pyarrow")


class ParquetIOManager(ConfigurableIOManagerFactory):
    """Stores DataFrame assets as Parquet, one file per partition."""

    base_path: str | None = Field(default=None, description="Base path or URL (default <data dir>/assets)")

    def create_io_manager(self, context) -> _ParquetUPathIOManager:
        return _ParquetUPathIOManager(base_path=UPath(self.base_path or data_dir() / "assets"))
