import multiprocessing
import sqlite3
from contextlib import closing

import pandas as pd
import pytest
import sqlalchemy as sa

from trading_assets.errors import CandleDataError
from trading_assets.partition import Partition
from trading_assets.sources import SyntheticSource
from trading_assets.store import CandleStore, Coverage
from trading_assets_tests.conftest import END

BTC_1M = Partition("KRW-BTC", "1m")
ETH_1M = Partition("KRW-ETH", "1m")
ETH_5M = Partition("KRW-ETH", "5m")
BTC_60M = Partition("KRW-BTC", "60m")
XRP_1M = Partition("KRW-XRP", "1m")
BTC_5M = Partition("KRW-BTC", "5m")


class CountingSource:
    """Records what the store asks for, serves synthetic candles."""

    name = "counting"

    def __init__(self):
        self.inner = SyntheticSource(seed=4)
        self.calls = []

    def fetch(self, symbol, timeframe, start, end):
        self.calls.append((start, end))
        return self.inner.fetch(symbol, timeframe, start, end)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/candles.sqlite"
    else:
        url = request.getfixturevalue("postgres").create_database(
            f"store_{tmp_path.name[-12:].lower().replace('-', '_')}"
        )
    with CandleStore(url) as s:
        yield s


def sql(store: CandleStore, *statements: str) -> list[tuple]:
    """Run ``statements`` in one transaction on a connection of its own (sqlite3 / psycopg2, not ADBC).

    Returns the rows of the last one.
    """
    if store.dialect == "sqlite":
        with closing(sqlite3.connect(sa.engine.make_url(store.url).database)) as conn, conn:
            cursors = [conn.execute(q) for q in statements]
            return cursors[-1].fetchall()
    engine = sa.create_engine(store.url)
    try:
        with engine.begin() as conn:
            results = [conn.execute(sa.text(q)) for q in statements]
            return [tuple(r) for r in results[-1].all()] if results[-1].returns_rows else []
    finally:
        engine.dispose()


def test_upsert_is_idempotent_and_updates(store, candles_1m):
    assert store.upsert(BTC_1M, candles_1m) == len(candles_1m)
    store.upsert(BTC_1M, candles_1m)
    assert sql(store, "SELECT count(*) FROM candles") == [(len(candles_1m),)]
    loaded = store.load(BTC_1M, candles_1m.index[0], END)
    pd.testing.assert_frame_equal(loaded, candles_1m, check_freq=False)
    changed = candles_1m.iloc[:3].copy()
    changed["volume"] += 1
    changed["value"] += 1
    store.upsert(BTC_1M, changed)
    again = store.load(BTC_1M, candles_1m.index[0], candles_1m.index[3])
    pd.testing.assert_frame_equal(again, changed, check_freq=False)
    assert store.load(ETH_1M, candles_1m.index[0], END).empty


def test_incremental_collection_fetches_only_what_is_missing(store):
    source = CountingSource()
    day = pd.Timedelta(days=1)
    first = store.collect(source, ETH_5M, END - 2 * day, END - day)
    assert first.fetched_spans == [(END - 2 * day, END - day)] and first.rows_fetched > 250
    second = store.collect(source, ETH_5M, END - 2 * day, END - day)
    assert second.fetched_spans == [] and len(source.calls) == 1
    third = store.collect(source, ETH_5M, END - 3 * day, END)
    assert third.fetched_spans == [(END - 3 * day, END - 2 * day), (END - day, END)]
    assert store.coverage(ETH_5M) == Coverage(END - 3 * day, END, "counting")
    expected = source.inner.fetch("KRW-ETH", "5m", END - 3 * day, END)
    pd.testing.assert_frame_equal(store.load(ETH_5M, END - 3 * day, END), expected, check_freq=False)


def test_failed_write_leaves_nothing_behind(store, candles_1m):
    bad = candles_1m.iloc[:10].copy()
    bad.iloc[5, bad.columns.get_loc("low")] = bad["high"].iloc[5] * 2
    with pytest.raises(CandleDataError, match="high < low"):
        store.upsert(BTC_1M, bad, covered=(bad.index[0], bad.index[-1], "test"))
    assert store.load(BTC_1M, bad.index[0], END).empty
    assert store.coverage(BTC_1M) is None


def test_candles_of_two_sources_never_mix(store):
    day = pd.Timedelta(days=1)
    store.collect(SyntheticSource(seed=1), BTC_60M, END - 2 * day, END)
    with pytest.raises(
        CandleDataError,
        match=r"KRW-BTC 60m: the candle store .* holds candles collected from "
        r"'synthetic\(seed=1\)', not from 'synthetic\(seed=2\)'",
    ):
        store.collect(SyntheticSource(seed=2), BTC_60M, END - 3 * day, END)


def test_a_failing_write_keeps_what_was_committed(store, candles_1m):
    minute = pd.Timedelta(minutes=1)
    first, second = candles_1m.iloc[:1000], candles_1m.iloc[500:2000].copy()
    second[["volume", "value"]] += 1
    store.upsert(BTC_1M, first, covered=(first.index[0], first.index[-1] + minute, "test"))
    before = store.coverage(BTC_1M)
    # The database refuses the coverage row of the second write, after its candles were merged.
    if store.dialect == "sqlite":
        sql(
            store,
            "CREATE TRIGGER refuse BEFORE UPDATE ON candle_coverage WHEN NEW.source = 'refused' "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END",
        )
    else:
        sql(store, "ALTER TABLE candle_coverage ADD CONSTRAINT refuse CHECK (source <> 'refused')")
    with pytest.raises(Exception, match="refuse"):
        store.upsert(BTC_1M, second, covered=(second.index[0], second.index[-1] + minute, "refused"))
    pd.testing.assert_frame_equal(store.load(BTC_1M, first.index[0], END), first, check_freq=False)
    assert store.coverage(BTC_1M) == before
    # The staging table went with the rollback: the same write goes through once allowed.
    store.upsert(BTC_1M, second, covered=(second.index[0], second.index[-1] + minute, "test"))
    expected = pd.concat([first.iloc[:500], second])
    pd.testing.assert_frame_equal(store.load(BTC_1M, first.index[0], END), expected, check_freq=False)
    assert store.coverage(BTC_1M) == Coverage(first.index[0], second.index[-1] + minute, "test")


def test_reads_and_writes_move_as_arrow_with_exact_values(store):
    candles = SyntheticSource(seed=5).fetch("KRW-XRP", "1m", END - pd.Timedelta(days=30), END)
    assert store.upsert(XRP_1M, candles) == len(candles) > 40_000
    loaded = store.load(XRP_1M, END - pd.Timedelta(days=30), END)
    pd.testing.assert_frame_equal(loaded, candles, check_exact=True, check_freq=False)
    assert str(loaded.index.dtype) == "datetime64[ns, UTC]" and set(map(str, loaded.dtypes)) == {"float64"}
    assert (loaded.to_numpy().view("int64") == candles.to_numpy().view("int64")).all()  # bit for bit


def _write_one_year(url: str, symbol: str, barrier) -> int:
    source = SyntheticSource(seed=9)
    candles = source.fetch(symbol, "1m", END - pd.Timedelta(days=365), END)
    with CandleStore(url) as store:
        barrier.wait(300)  # the processes start and build their candles on a machine another test worker shares
        return store.upsert(Partition(symbol, "1m"), candles, covered=(END - pd.Timedelta(days=365), END, source.name))


def test_four_processes_write_one_year_each_to_sqlite_at_once(tmp_path):
    url = f"sqlite:///{tmp_path}/candles.sqlite"
    symbols = ["KRW-BTC", "KRW-ETH", "KRW-XRP", "KRW-SOL"]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Manager().Barrier(len(symbols))
    with ctx.Pool(len(symbols)) as pool:
        written = pool.starmap(_write_one_year, [(url, s, barrier) for s in symbols])
    assert min(written) > 500_000
    with CandleStore(url) as store:
        for symbol, rows in zip(symbols, written):
            assert len(store.load(Partition(symbol, "1m"), END - pd.Timedelta(days=365), END)) == rows
            assert store.coverage(Partition(symbol, "1m")) == Coverage(
                END - pd.Timedelta(days=365), END, "synthetic(seed=9)"
            )
        assert sql(store, "PRAGMA journal_mode") == [("wal",)]


def _write_series(url: str, volume_shift: float, barrier) -> int | str:
    """Rows written, or the error (as text: a driver's exception may not survive the trip back)."""
    candles = SyntheticSource(seed=9).fetch("KRW-BTC", "5m", END - pd.Timedelta(days=20), END)
    candles = candles.iloc[int(volume_shift) * 1000 :].copy()  # overlapping spans, different starts
    candles["volume"] += volume_shift
    with CandleStore(url) as store:
        barrier.wait(300)  # the processes start and build their candles on a machine another test worker shares
        try:
            return store.upsert(BTC_5M, candles)
        except Exception as exc:  # noqa: BLE001
            return f"{type(exc).__name__}: {exc}"


def test_concurrent_writers_of_one_series_queue_instead_of_colliding(store):
    """Three processes write overlapping spans of the same series at once: none fails on a duplicate key."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Manager().Barrier(3)
    with ctx.Pool(3) as pool:
        written = pool.starmap(_write_series, [(store.url, shift, barrier) for shift in (0.0, 1.0, 2.0)])
    full = SyntheticSource(seed=9).fetch("KRW-BTC", "5m", END - pd.Timedelta(days=20), END)
    assert written == [len(full), len(full) - 1000, len(full) - 2000]
    loaded = store.load(BTC_5M, full.index[0], END)
    pd.testing.assert_index_equal(loaded.index, full.index)
    pd.testing.assert_frame_equal(loaded.drop(columns="volume"), full.drop(columns="volume"), check_freq=False)
    shift = (loaded["volume"] - full["volume"]).round(9)
    assert set(shift.unique()) <= {0.0, 1.0, 2.0}  # every bar is one writer's, whole
    assert (shift.iloc[:1000] == 0.0).all()  # only the first writer had these bars


def test_refresh_refetch_and_source_identity(tmp_path, candles_1m):
    from trading_assets.sources import FileSource

    files = tmp_path / "files"
    files.mkdir()
    frame = candles_1m.iloc[:200]
    frame.drop(frame.index[150]).to_parquet(files / "KRW-BTC_1m.parquet")  # the bar comes late
    source = FileSource(files)
    start = frame.index[0]
    with CandleStore(f"sqlite:///{tmp_path / 'c.db'}") as store:
        store.collect(source, BTC_1M, start, frame.index[160])
        assert store.coverage(BTC_1M).source == f"files:{files.resolve()}"
        frame.to_parquet(files / "KRW-BTC_1m.parquet")  # the late candle is published, one earlier corrected
        corrected = frame.copy()
        corrected.iloc[100, corrected.columns.get_loc("close")] = corrected["high"].iloc[100]
        corrected.to_parquet(files / "KRW-BTC_1m.parquet")
        result = store.collect(source, BTC_1M, start, frame.index[170], refetch_bars=12)
        tail = frame.index[160] - pd.Timedelta(minutes=12)  # the last 12 bars again
        assert result.fetched_spans == [(tail, frame.index[170])] and tail <= frame.index[150]
        assert frame.index[150] in store.load(BTC_1M, start, frame.index[170]).index
        assert store.load(BTC_1M, start, END)["close"].iloc[100] == frame["close"].iloc[100]
        store.collect(source, BTC_1M, start, frame.index[170], refresh=True)
        assert store.load(BTC_1M, start, END)["close"].iloc[100] == corrected["close"].iloc[100]

        class Failing(FileSource):
            def fetch(self, *args):
                raise RuntimeError("source down")

        with pytest.raises(RuntimeError, match="source down"):
            store.collect(Failing(files), BTC_1M, start, frame.index[170], refresh=True)
        assert len(store.load(BTC_1M, start, END)) == 170  # nothing stored is lost
        other = tmp_path / "other"
        other.mkdir()
        with pytest.raises(CandleDataError, match="holds candles collected from 'files:"):
            store.collect(FileSource(other), BTC_1M, start, frame.index[170], refresh=True)


@pytest.mark.postgres
def test_a_long_postgres_read_comes_in_two_halves_of_one_snapshot(postgres, tmp_path):
    candles = SyntheticSource(seed=6).fetch("KRW-BTC", "1m", END - pd.Timedelta(days=3), END)
    with CandleStore(postgres.create_database("halves")) as store:
        store.upsert(BTC_1M, candles)
        whole = store.load(BTC_1M, candles.index[0], END)
        assert store._second is None  # 3 days of 1m: one query
        store.parallel_read_bars = 100
        for start, end in [(candles.index[0], END), (candles.index[7], candles.index[1001]), (END, END)]:
            halves = store.load(BTC_1M, start, end)
            pd.testing.assert_frame_equal(halves, whole.loc[start : end - pd.Timedelta(minutes=1)], check_freq=False)
        assert store._second is not None
        # both halves ended their transactions: a write on either connection goes through
        store.upsert(BTC_1M, candles.iloc[:10].assign(volume=candles["volume"].iloc[:10] + 1))
        assert sql(store, "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'") == [(0,)]


def test_a_full_disk_is_named_as_such_with_the_store_and_the_operation(tmp_path, candles_1m):
    """SQLite with a page cap standing in for a full disk: the error names store, operation and cause, not
    the failed rollback, and nothing of the batch is left behind."""
    from trading_assets.errors import StoreError

    store = CandleStore(f"sqlite:///{tmp_path / 'candles.sqlite'}")
    store.upsert(BTC_1M, candles_1m.iloc[:10])
    with closing(sqlite3.connect(tmp_path / "candles.sqlite")) as db:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
    store._control(f"PRAGMA max_page_count = {pages + 2}")
    with pytest.raises(StoreError) as failed:
        store.upsert(BTC_1M, candles_1m)
    message = str(failed.value)
    assert message.startswith(
        f"candle store sqlite:///{tmp_path / 'candles.sqlite'}: upsert of KRW-BTC 1m failed: disk full"
    )
    assert "rollback" not in message.lower() and not failed.value.transient
    assert len(store.load(BTC_1M, candles_1m.index[0], END)) == 10
    store.dispose()


@pytest.mark.postgres
def test_a_lost_database_connection_is_named_and_transient(postgres, candles_1m):
    from trading_assets.errors import StoreError

    url = postgres.create_database("lost")
    store = CandleStore(url)
    store.upsert(BTC_1M, candles_1m.iloc[:10])
    engine = sa.create_engine(url)
    with engine.connect() as conn:  # the server drops the store's connection (a restart does the same)
        conn.execute(sa.text("select pg_terminate_backend(pid) from pg_stat_activity where pid <> pg_backend_pid() "
                             "and datname = 'lost'"))  # fmt: skip
    engine.dispose()
    with pytest.raises(StoreError) as failed:
        store.upsert(BTC_1M, candles_1m.iloc[10:20])
    assert "upsert of KRW-BTC 1m failed: connection to the database lost" in str(failed.value)
    assert failed.value.transient  # raw_candles turns it into a step retry
    with CandleStore(url) as again:  # the step's retry opens a new connection: it works
        again.upsert(BTC_1M, candles_1m.iloc[10:20])
        assert len(again.load(BTC_1M, candles_1m.index[0], END)) == 20


def test_a_window_far_from_the_stored_span_fetches_only_itself(store):
    """An old --end on a store of recent candles: the window and nothing of the years between."""
    source = CountingSource()
    day = pd.Timedelta(days=1)
    store.collect(source, ETH_5M, END - 2 * day, END)
    far = store.collect(source, ETH_5M, END - 400 * day, END - 398 * day)
    assert far.fetched_spans == [(END - 400 * day, END - 398 * day)] and far.rows_fetched < 2 * 288 + 10
    assert store.coverage(ETH_5M) == Coverage(END - 2 * day, END, "counting")  # no claim on the gap
    expected = source.inner.fetch("KRW-ETH", "5m", END - 400 * day, END - 398 * day)
    pd.testing.assert_frame_equal(store.load(ETH_5M, END - 400 * day, END - 398 * day), expected, check_freq=False)
    near = store.collect(source, ETH_5M, END - 3 * day, END - 2.5 * day)  # close by: kept contiguous
    assert near.fetched_spans == [(END - 3 * day, END - 2 * day)]


def test_a_hole_inside_the_recorded_coverage_is_fetched_again_without_refresh(store):
    """Candles missing inside the coverage (a page cut short, kept by an older version) show as a break and
    are asked for again by the next collection, no --refresh needed."""
    source = CountingSource()
    day = pd.Timedelta(days=1)
    store.collect(source, ETH_5M, END - 2 * day, END)
    hole = (END - day - pd.Timedelta(hours=3), END - day)
    store._control(  # drop 3 hours of stored candles, the coverage left as it was
        f"DELETE FROM candles WHERE symbol = 'KRW-ETH' AND timeframe = '5m' AND open_time >= "
        f"{int(hole[0].value // 1_000_000)} AND open_time < {int(hole[1].value // 1_000_000)}"
    )
    filled, collected = store.filled_window(source, ETH_5M, END - 2 * day, END, max_fill_bars=5, refetch_breaks=3)
    assert not filled.breaks and collected.rows_fetched >= 30
    assert any(lo <= hole[0] and hi >= hole[1] - pd.Timedelta(minutes=5) for lo, hi in collected.fetched_spans)
    expected = source.inner.fetch("KRW-ETH", "5m", END - 2 * day, END)
    pd.testing.assert_frame_equal(store.load(ETH_5M, END - 2 * day, END), expected, check_freq=False)


class StoppingShortSource(CountingSource):
    """Answers the first request only up to its middle (a stale page that ended a ccxt fetch early)."""

    def fetch(self, symbol, timeframe, start, end):
        candles = super().fetch(symbol, timeframe, start, end)
        return candles.iloc[: len(candles) // 2] if len(self.calls) == 1 else candles


def test_coverage_is_what_arrived_when_a_source_stops_short(store):
    source = StoppingShortSource()
    day = pd.Timedelta(days=1)
    store.collect(source, ETH_5M, END - 2 * day, END)
    covered = store.coverage(ETH_5M)
    assert covered.start == END - 2 * day and covered.end < END - 0.9 * day  # not the window it asked for
    store.collect(source, ETH_5M, END - 2 * day, END)  # the next collection asks for the rest
    assert store.coverage(ETH_5M).end == END
    expected = source.inner.fetch("KRW-ETH", "5m", END - 2 * day, END)
    pd.testing.assert_frame_equal(store.load(ETH_5M, END - 2 * day, END), expected, check_freq=False)
