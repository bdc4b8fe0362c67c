"""One Parquet file per asset partition: ``<base>/<asset>/<symbol>/<timeframe>.parquet``.

Built on Dagster's ``UPathIOManager``, so the base path may be any fsspec URL (object storage
later). Frames are written with pyarrow directly: the index, every column's dtype (float32 stays
float32, UTC timestamps stay UTC) and the values round-trip bit for bit. ``DataFrame.attrs`` (span,
scaler parameters, ...) and the file's provenance (asset, partition, run, write time) travel in the
Parquet schema metadata. Local writes are atomic: the file goes to a temporary name beside the
target, which is then renamed over it, so a crash never leaves a half-written partition; the
temporary file of a writer killed mid-write is removed by the next write of that partition.

Within one run (the in-process executor shares the IO manager between steps) a local file is not
read back after it was written: the checks of an asset get copy-on-write views of the frame converted
from the very Arrow table that was written, as long as the file's inode, size and modification time
are unchanged, and only when the file's schema is the table's (every type kept as it is, so the frame
is what reading the file gives, bit for bit); any other file is read once.
"""

from __future__ import annotations

import copy
import json
import os
import uuid
from collections import OrderedDict
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from dagster import ConfigurableIOManagerFactory, InputContext, OutputContext, UPathIOManager
from pydantic import Field
from upath import UPath

from trading_assets.defs.resources import Locations
from trading_assets.defs.run_guard import refuse_environment_in_run_config
from trading_assets.partition import Partition
from trading_assets.processes import process_gone
from trading_assets.timeframes import validate_symbol, validate_timeframe

ATTRS_KEY = b"PANDAS_ATTRS"  # the key pandas itself uses: pd.read_parquet restores attrs too
PROVENANCE_KEY = b"trading_assets.provenance"


def frame_to_table(frame: pd.DataFrame, provenance: dict[str, Any]) -> pa.Table:
    """``frame`` as an Arrow table with its index, its ``attrs`` and ``provenance`` in the schema metadata."""
    table = pa.Table.from_pandas(frame, preserve_index=True)
    metadata = {
        **(table.schema.metadata or {}),
        ATTRS_KEY: json.dumps(frame.attrs).encode(),
        PROVENANCE_KEY: json.dumps(provenance).encode(),
    }
    return table.replace_schema_metadata(metadata)


def table_to_frame(table: pa.Table) -> pd.DataFrame:
    """The frame :func:`frame_to_table` stored, ``attrs`` included."""
    frame = table.to_pandas()
    frame.attrs = json.loads((table.schema.metadata or {}).get(ATTRS_KEY, b"{}"))
    return frame


def read_provenance(path: UPath) -> dict[str, Any]:
    """Who wrote a partition file: asset, partition, run id, write time (UTC), rows."""
    with path.open("rb") as f:
        return json.loads(pq.read_schema(f).metadata[PROVENANCE_KEY])


def read_frame(path: UPath) -> pd.DataFrame:
    """The frame a Parquet file of this IO manager holds, ``attrs`` included (read whole, never cached)."""
    with path.open("rb") as f:
        return table_to_frame(pq.read_table(f))


def _partition_path(asset_path: UPath, symbol: str, timeframe: str) -> UPath:
    """``<asset path>/<symbol>/<timeframe>``, symbol and timeframe validated (they become directory names)."""
    return asset_path / validate_symbol(symbol) / validate_timeframe(timeframe)


def stored_path(locations: Locations, asset: str, partition: Partition) -> UPath:
    """Where the IO manager keeps ``asset``'s ``partition``, for a step that reads partitions one at a time (or
    its own previous output) rather than through its inputs."""
    base = UPath(locations.resolved_assets_path()) / asset
    return _partition_path(base, partition.symbol, partition.timeframe).with_suffix(_ParquetUPathIOManager.extension)


def _local_stamp(path: UPath) -> tuple[int, int, int] | None:
    """Inode, size and modification time of a local file; None for object storage (never cached).

    A rename keeps all three, and a writer replacing the file (temp file + rename) changes the inode.
    """
    if path.protocol not in ("", "file", "local"):
        return None
    st = os.stat(path.path)
    return st.st_ino, st.st_size, st.st_mtime_ns


def _remove_orphans(path: UPath) -> None:
    """Delete temporary files beside ``path`` left by local writers that died (kill -9) mid-write."""
    if path.protocol not in ("", "file", "local") or not path.parent.exists():
        return
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name.removeprefix(f".{path.name}.").split(".")[0]
        if not pid.isdigit() or process_gone(int(pid)):  # no pid: written by an older version
            tmp.unlink(missing_ok=True)


class _ParquetUPathIOManager(UPathIOManager):
    extension = ".parquet"

    def __init__(self, base_path: UPath, cache_entries: int = 3) -> None:
        super().__init__(base_path=base_path)
        self._cache_entries = cache_entries
        self._cache: OrderedDict[str, tuple[tuple[int, int, int], pd.DataFrame]] = OrderedDict()

    def get_path_for_partition(self, context: InputContext | OutputContext, path: UPath, partition: str) -> UPath:
        """``<asset path>/<symbol>/<timeframe>``, symbol and timeframe validated (they become directory names)."""
        symbol, _, timeframe = partition.rpartition("/")
        return _partition_path(path, symbol, timeframe)

    def dump_to_path(self, context: OutputContext, obj: pd.DataFrame, path: UPath) -> None:
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"{context.asset_key.to_user_string()} must be a pandas DataFrame, got {type(obj)}")
        table = frame_to_table(
            obj,
            {
                "asset": context.asset_key.to_user_string(),
                "partition": str(context.partition_key) if context.has_partition_key else None,
                "run_id": context.run_id,
                "written_at": pd.Timestamp.now(tz="UTC").isoformat(),
                "rows": len(obj),
            },
        )
        self._cache.pop(str(path), None)
        # Dictionary encoding buys nothing on float columns (values rarely repeat) and triples the write time.
        plain = [f.name for f in table.schema if pa.types.is_floating(f.type)]
        use_dictionary = [f.name for f in table.schema if f.name not in plain]
        _remove_orphans(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        try:
            with tmp.open("wb") as f:
                pq.write_table(table, f, use_dictionary=use_dictionary)
            # stamped before the rename: a writer renaming its file over ours right after cannot get our frame
            stamp = _local_stamp(tmp) if self._cache_entries else None
            if stamp is not None and not pq.read_schema(tmp.path).equals(table.schema, check_metadata=False):
                stamp = None  # a type Parquet does not keep (second timestamps come back as ms): read it back
            if hasattr(tmp, "replace"):
                tmp.replace(path)
            else:  # object stores: the upload above is already all-or-nothing
                tmp.rename(path)
        finally:
            if tmp.exists():
                tmp.unlink()
        if stamp is not None:  # the checks load it next: no read back
            self._remember(str(path), stamp, table_to_frame(table))

    def _remember(self, key: str, stamp: tuple[int, int, int], frame: pd.DataFrame) -> None:
        """Keep ``frame`` for the next loads of ``key`` while the file's stamp (see ``_local_stamp``) is ``stamp``."""
        self._cache[key] = (stamp, frame)
        while len(self._cache) > self._cache_entries:
            self._cache.popitem(last=False)

    def load_partitions(self, context: InputContext):
        """The partitions of an input, by key; just one frame for one partition, and for the run's own partition
        where the input's mapping also declares others that the step reads itself (``features``' coarser
        timeframes, see defs/context). One partition is read without Dagster's two DEBUG lines per load (about
        40 stored events a run: LOADED_INPUT says it all)."""
        keys = [str(key) for key in context.asset_partition_keys]
        wanted = keys[0] if len(keys) == 1 else str(context.partition_key) if context.has_partition_key else None
        if wanted in keys:
            paths = self._get_paths_for_partitions(context)
            return self.load_from_path(context, next(path for key, path in paths.items() if str(key) == wanted))
        return super().load_partitions(context)

    def load_from_path(self, context: InputContext, path: UPath) -> pd.DataFrame:
        stamp, key = _local_stamp(path), str(path)
        cached = self._cache.get(key)
        if cached is None or cached[0] != stamp:
            frame = read_frame(path)
            if stamp is None or self._cache_entries == 0:
                return frame
            self._remember(key, stamp, frame)
            cached = (stamp, frame)
        self._cache.move_to_end(key)
        view = cached[1].copy(deep=False)  # copy-on-write: a consumer changing it never changes the cache
        view.attrs = copy.deepcopy(cached[1].attrs)
        return view


class ParquetIOManager(ConfigurableIOManagerFactory):
    """Stores DataFrame assets as Parquet, one file per partition, under ``locations.assets_path``
    ($TRADING_ASSETS_PATH, default <data dir>/assets)."""

    locations: Locations
    cache_entries: int = Field(
        default=3, ge=0, description="Frames kept in memory per run, so the checks of an asset read its file once"
    )

    def create_io_manager(self, context) -> _ParquetUPathIOManager:
        refuse_environment_in_run_config(context.dagster_run)
        return _ParquetUPathIOManager(UPath(self.locations.resolved_assets_path()), self.cache_entries)
