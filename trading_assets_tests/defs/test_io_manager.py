"""The Parquet IO manager: candles from the store round-trip bit for bit through the asset files."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from dagster import AssetIn, AssetKey, asset, materialize
from upath import UPath

from trading_assets.defs.io_manager import ParquetIOManager, _ParquetUPathIOManager, read_provenance
from trading_assets.defs.partitions import market_partitions, partition_key
from trading_assets.defs.resources import Locations
from trading_assets.partition import Partition
from trading_assets.sources import SyntheticSource
from trading_assets.store import CandleStore
from trading_assets_tests.conftest import END

START = END - pd.Timedelta(days=3)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/candles.sqlite"
    return request.getfixturevalue("postgres").create_database(f"io_{tmp_path.name[-12:].lower().replace('-', '_')}")


def assert_bit_exact(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a, b, check_exact=True, check_freq=False)
    assert a.index.name == b.index.name and str(a.index.dtype) == str(b.index.dtype)
    assert list(map(str, a.dtypes)) == list(map(str, b.dtypes))
    for col in a.columns:
        x, y = a[col].to_numpy(), b[col].to_numpy()
        assert x.tobytes() == y.tobytes(), col


def test_store_and_parquet_round_trip_bit_exactly(instance, tmp_path, store_url):
    source = SyntheticSource(seed=11)
    with CandleStore(store_url) as store:
        store.collect(source, Partition("KRW-BTC", "1m"), START, END)
        expected = store.load(Partition("KRW-BTC", "1m"), START, END)
    attrs = {"span_start": START.isoformat(), "warmup_bars": 12, "scaler": {"mean": [0.1, 1 / 3], "fit": None}}
    seen = {}

    @asset(partitions_def=market_partitions, io_manager_key="io")
    def stored_candles() -> pd.DataFrame:
        with CandleStore(store_url) as s:
            frame = s.load(Partition("KRW-BTC", "1m"), START, END)
        frame.attrs = attrs
        return frame

    @asset(partitions_def=market_partitions, io_manager_key="io", ins={"candles": AssetIn("stored_candles")})
    def mixed_dtypes(candles: pd.DataFrame) -> pd.DataFrame:
        seen["candles"] = candles
        out = candles.assign(
            close32=candles["close"].astype("float32"), up=candles["close"] > candles["open"], n=np.arange(len(candles))
        )
        out.attrs = {**candles.attrs, "derived": True}
        seen["mixed"] = out
        return out

    key = partition_key("KRW-BTC", "1m")
    base = tmp_path / "assets"
    result = materialize(
        [stored_candles, mixed_dtypes],
        partition_key=str(key),
        instance=instance,
        resources={"io": ParquetIOManager(locations=Locations(assets_path=str(base)))},
    )
    assert result.success
    assert_bit_exact(seen["candles"], expected)
    assert seen["candles"].attrs == attrs
    path = base / "mixed_dtypes" / "KRW-BTC" / "1m.parquet"
    reread = pd.read_parquet(path)  # plain pandas reads the same frame, attrs included
    assert_bit_exact(reread, seen["mixed"])
    assert reread.attrs == {**attrs, "derived": True}
    assert [str(t) for t in reread.dtypes.iloc[-3:]] == ["float32", "bool", "int64"]
    provenance = read_provenance(UPath(path))
    assert provenance["asset"] == "mixed_dtypes" and provenance["partition"] == str(key)
    assert provenance["run_id"] == result.run_id and provenance["rows"] == len(expected)
    assert not [p for p in base.rglob("*") if p.name.endswith(".tmp")]
    # within the run the downstream asset got the frame of the table just written, not a read of the file:
    # a reader in another process (a fresh IO manager) gets the same frame from the file, bit for bit
    for name, frame in (("stored_candles", seen["candles"]), ("mixed_dtypes", seen["mixed"])):
        from_file = _ParquetUPathIOManager(UPath(base)).load_from_path(None, UPath(base / name / "KRW-BTC/1m.parquet"))
        assert_bit_exact(from_file, frame)
        assert from_file.attrs == frame.attrs


def test_frames_written_in_a_run_are_not_read_back_until_the_file_changes(tmp_path, monkeypatch):
    manager = _ParquetUPathIOManager(UPath(tmp_path))
    path = UPath(tmp_path / "candles.parquet")
    frame = SyntheticSource(seed=3).fetch("KRW-BTC", "1m", START, END)
    frame.attrs = {"span": [START.isoformat(), END.isoformat()]}

    class Context:  # what dump_to_path reads of Dagster's OutputContext
        asset_key, has_partition_key, partition_key, run_id = AssetKey("candles"), False, None, "run"

    manager.dump_to_path(Context(), frame, path)
    reads = []
    read_table = pq.read_table
    monkeypatch.setattr(pq, "read_table", lambda *a, **k: reads.append(a) or read_table(*a, **k))
    loaded = manager.load_from_path(None, path)
    assert not reads  # what was written, not the file
    assert_bit_exact(loaded, frame)
    assert loaded.attrs == frame.attrs
    loaded.iloc[0, 0] = -1.0  # a consumer changing its view leaves the kept frame alone
    assert manager.load_from_path(None, path).iloc[0, 0] == frame.iloc[0, 0]
    other = frame * 1.5  # another writer replaces the file (same rows, same layout): it is read again
    other.attrs = {}
    _ParquetUPathIOManager(UPath(tmp_path)).dump_to_path(Context(), other, path)
    assert_bit_exact(manager.load_from_path(None, path), other)
    assert len(reads) == 1

    # a type Parquet does not keep as it is (seconds come back as milliseconds): the frame is read back,
    # so the checks see what any reader of the file sees
    stamped = frame.assign(seen_at=frame.index.as_unit("s").tz_localize(None))
    manager.dump_to_path(Context(), stamped, path)
    loaded = manager.load_from_path(None, path)
    assert len(reads) == 2
    assert str(loaded["seen_at"].dtype) == str(pd.read_parquet(path.path)["seen_at"].dtype) == "datetime64[ms]"
