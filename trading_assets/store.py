"""The candle store: a SQL database (SQLite file by default, PostgreSQL in production).

Candles are keyed by ``(symbol, timeframe, open_time)`` and upserted idempotently. Next to them
the store records which span of each series it has already collected (``candle_coverage``), so
incremental collection asks the source only for what lies outside that span, and a bar the
exchange never emitted (no trades) is not asked for again and again.

Rows move as Arrow through ADBC drivers, never as per-row Python objects: a write bulk-ingests the
frame into a temporary staging table (binary COPY on PostgreSQL) and merges it in SQL (see
``CandleStore._merge``); the coverage update commits in the same transaction.
A read fetches an Arrow table. SQLite runs in WAL mode with a busy timeout, and a write takes the
write lock up front (``BEGIN IMMEDIATE``), so concurrent runs wait for each other instead of failing
with ``database is locked``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import adbc_driver_manager
import adbc_driver_postgresql.dbapi
import adbc_driver_sqlite.dbapi
import pandas as pd
import pyarrow as pa
from adbc_driver_manager.dbapi import Connection, Cursor
from sqlalchemy.engine import make_url

from trading_assets.calendars import TradingCalendar
from trading_assets.candles import CANDLE_COLUMNS, FilledCandles, empty_candles, fill_candle_grid, normalize_candles
from trading_assets.errors import CandleDataError, StoreError
from trading_assets.partition import Partition
from trading_assets.redaction import redact, redacted_errors, url_secrets
from trading_assets.sources.base import CandleSource, iter_batches, source_identity
from trading_assets.timeframes import get_timeframe, to_utc

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 120_000  # four one-year writers queue for seconds, never this long
_STAGING = "candles_staging"
_LOCK_SPACE = 7253  # PostgreSQL advisory locks: the schema (one key), a series (this key + hash of its name)
_VALUES = ", ".join(CANDLE_COLUMNS)
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS candles (symbol VARCHAR(32) NOT NULL, timeframe VARCHAR(8) NOT NULL, "
    "open_time BIGINT NOT NULL, "  # bar start, epoch milliseconds UTC
    + "".join(f"{c} DOUBLE PRECISION NOT NULL, " for c in CANDLE_COLUMNS)
    + "PRIMARY KEY (symbol, timeframe, open_time))",
    "CREATE TABLE IF NOT EXISTS candle_coverage (symbol VARCHAR(32) NOT NULL, timeframe VARCHAR(8) NOT NULL, "
    "start_ms BIGINT NOT NULL, end_ms BIGINT NOT NULL, "  # [start, end), epoch milliseconds UTC
    "source VARCHAR(512) NOT NULL, PRIMARY KEY (symbol, timeframe))",
    # the signal history (trading_assets.signals.SignalLog) lives beside the candles: one database, one lock
    "CREATE TABLE IF NOT EXISTS signals (symbol VARCHAR(32) NOT NULL, timeframe VARCHAR(8) NOT NULL, "
    "open_time BIGINT NOT NULL, forecast DOUBLE PRECISION NOT NULL, position DOUBLE PRECISION NOT NULL, "
    "model_name VARCHAR(128) NOT NULL, model_version VARCHAR(16) NOT NULL, features_version VARCHAR(128) NOT NULL, "
    "generated_at BIGINT NOT NULL, PRIMARY KEY (symbol, timeframe, open_time))",
)


def _ms(ts: pd.Timestamp) -> int:
    return int(to_utc(ts).value // 1_000_000)


def _union(
    a: tuple[pd.Timestamp, pd.Timestamp] | None, b: tuple[pd.Timestamp, pd.Timestamp]
) -> tuple[pd.Timestamp, pd.Timestamp]:
    return b if a is None else (min(a[0], b[0]), max(a[1], b[1]))


@dataclass(frozen=True)
class Coverage:
    start: pd.Timestamp
    end: pd.Timestamp  # exclusive
    source: str


def _far_from(current: Coverage, start: pd.Timestamp, end: pd.Timestamp) -> bool:
    """Whether ``[start, end)`` lies apart from the coverage by more than its own length: fetching the gap
    between would be unbounded work (an old ``--end`` on a store of recent candles)."""
    window = end - start
    return current.start - end > window or start - current.end > window


@dataclass
class CollectResult:
    """What one incremental collection asked the source for and got."""

    fetched_spans: list[tuple[pd.Timestamp, pd.Timestamp]] = field(default_factory=list)
    rows_fetched: int = 0
    invalid_bars: list[str] = field(default_factory=list)  # bars the source had with invalid values (not stored)


_DISK_FULL = ("database or disk is full", "no space left on device", "disk full", "could not extend file")
_CONNECTION_LOST = (
    "no connection to the server",
    "server closed the connection",
    "terminating connection",
    "connection refused",
    "could not connect",
    "connection reset",
    "broken pipe",
    "the database system is shutting down",
    "the database system is starting up",
)


def store_error(display_url: str, operation: str, exc: BaseException) -> StoreError:
    """A :class:`StoreError` for ``exc``: the store, the operation and the cause (disk full, connection lost)."""
    text = redact(str(exc)).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    lowered = str(exc).lower()
    if any(marker in lowered for marker in _DISK_FULL) or getattr(exc, "errno", None) == 28:
        cause, transient = "disk full", False
    elif any(marker in lowered for marker in _CONNECTION_LOST):
        cause, transient = "connection to the database lost", True
    else:
        cause, transient = type(exc).__name__, False
    return StoreError(f"candle store {display_url}: {operation} failed: {cause}: {text}", transient=transient)


class CandleStore:
    """Candles in SQL, moved as Arrow through ADBC.

    ``url`` keeps the SQLAlchemy convention: ``sqlite:///path`` or ``postgresql+psycopg2://user:pw@host/db``.
    One store holds one connection (PostgreSQL: a second one for long reads, opened on first use); close
    them with :meth:`dispose` or use the store as a context manager.
    """

    parallel_read_bars = 100_000  # PostgreSQL: longer reads take two connections (see load)

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.display_url = redact(url)  # no user, no password
        self.dialect = parsed.get_backend_name()
        self._second: Connection | None = None  # PostgreSQL: the other half of a long read (see load)
        if self.dialect == "sqlite":
            path = parsed.database or ":memory:"
            if path != ":memory:":
                Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self._conn: Connection = adbc_driver_sqlite.dbapi.connect(path, autocommit=True)
            with self._conn.cursor() as cur:
                cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
                cur.execute("PRAGMA journal_mode = WAL")
                cur.fetchall()
                cur.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at checkpoints, never corrupt
        elif self.dialect == "postgresql":
            self._uri = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
            with redacted_errors(url_secrets(self._uri)):
                self._conn = adbc_driver_postgresql.dbapi.connect(self._uri, autocommit=True)
        else:
            raise ValueError(f"unsupported candle store URL {self.display_url}: use sqlite:/// or postgresql://")
        with self._transaction(operation="schema creation") as cur:
            if self.dialect == "postgresql":  # concurrent CREATE TABLE IF NOT EXISTS can race on the catalog
                cur.execute(f"SELECT pg_advisory_xact_lock({_LOCK_SPACE})")
            for ddl in _SCHEMA:
                cur.execute(ddl)

    def __enter__(self) -> CandleStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.dispose()

    def transaction(self, series: tuple[str, str] | None = None, operation: str = "write"):
        """One explicit transaction on the store's database (see :meth:`_transaction`): what lives beside the
        candles (the signal history) commits or rolls back the same way."""
        return self._transaction(series, operation)

    def cursor(self) -> Cursor:
        """A cursor for reads outside a transaction."""
        return self._conn.cursor()

    def sql(self, text: str) -> str:
        return self._sql(text)

    def _sql(self, text: str) -> str:
        """``?`` placeholders in the driver's style (PostgreSQL: ``$1, $2, ..``)."""
        if self.dialect != "postgresql":
            return text
        counter = iter(range(1, text.count("?") + 1))
        return re.sub(r"\?", lambda _: f"${next(counter)}", text)

    def _control(self, statement: str, conn: Connection | None = None) -> None:
        with (conn or self._conn).cursor() as cur:  # a fresh statement: a failed one may still hold its parameters
            cur.execute(statement)

    @contextmanager
    def _transaction(self, series: tuple[str, str] | None = None, operation: str = "write") -> Iterator[Cursor]:
        """One explicit transaction, rolled back on error.

        SQLite holds the database's write lock from the start. PostgreSQL takes a transaction-scoped
        advisory lock on ``series`` (symbol, timeframe): writers of one series queue, others run in parallel.
        A database error leaves as :class:`StoreError` naming the store, ``operation`` and the cause (a
        failed rollback after it, e.g. on a lost connection, never hides it).
        """
        try:
            self._control("BEGIN IMMEDIATE" if self.dialect == "sqlite" else "BEGIN")
            try:
                with self._conn.cursor() as cur:
                    if series is not None and self.dialect == "postgresql":
                        lock = f"SELECT 1 FROM pg_advisory_xact_lock({_LOCK_SPACE}, hashtext($1))"
                        cur.execute(lock, ("/".join(series),))
                        cur.fetchall()
                    yield cur
            except BaseException:
                try:
                    self._control("ROLLBACK")
                except (adbc_driver_manager.Error, OSError) as rollback:  # the first error says what broke
                    log.debug("rollback after a failed %s on %s: %s", operation, self.display_url, rollback)
                raise
            self._control("COMMIT")
        except (adbc_driver_manager.Error, OSError) as exc:
            raise store_error(self.display_url, operation, exc) from exc

    def upsert(
        self,
        partition: Partition,
        candles: pd.DataFrame,
        covered: tuple[pd.Timestamp, pd.Timestamp, str] | None = None,
    ) -> int:
        """Insert or update ``candles`` (canonical frame) in one transaction; returns the row count.

        ``covered`` = (start, end, source name) extends the recorded coverage of the series in the
        same transaction.
        """
        symbol, timeframe = partition.symbol, partition.timeframe
        candles = normalize_candles(candles, symbol, timeframe)
        batch = pa.table(
            {"open_time": candles.index.as_unit("ms").asi8, **{c: candles[c].to_numpy() for c in CANDLE_COLUMNS}}
        )
        with self._transaction(series=(symbol, timeframe), operation=f"upsert of {symbol} {timeframe}") as cur:
            if batch.num_rows:
                self._merge(cur, symbol, timeframe, batch)
            if covered is not None:
                self._extend_coverage(cur, symbol, timeframe, *covered)
        return batch.num_rows

    def _merge(self, cur: Cursor, symbol: str, timeframe: str, batch: pa.Table) -> None:
        """Bulk-ingest ``batch`` into a temporary staging table and merge it into ``candles``.

        Bars that changed are updated, new ones inserted, unchanged ones not rewritten (re-collecting a
        span costs reads, not writes). When no stored bar of the series falls in the batch's span (a first
        collection, new bars at the end) that is one plain ``INSERT .. SELECT``. Otherwise SQLite runs one
        ``INSERT .. SELECT .. ON CONFLICT DO UPDATE``; on PostgreSQL, whose speculative insertion makes
        that twice as slow as a plain insert, an ``UPDATE .. FROM`` of the changed bars and an
        ``INSERT .. WHERE NOT EXISTS`` of the new ones. Writers of one series hold its lock (see
        ``_transaction``), so the check cannot race.
        """
        staging = f"temp.{_STAGING}" if self.dialect == "sqlite" else _STAGING
        key = (symbol, timeframe, int(batch["open_time"][0].as_py()), int(batch["open_time"][-1].as_py()))
        in_span = "c.symbol = ? AND c.timeframe = ? AND c.open_time BETWEEN ? AND ?"
        cur.execute(self._sql(f"SELECT EXISTS (SELECT 1 FROM candles AS c WHERE {in_span})"), key)
        overlaps = bool(cur.fetchone()[0])
        cur.adbc_ingest(_STAGING, batch, mode="create", temporary=True)
        values = ", ".join(f"s.{c}" for c in CANDLE_COLUMNS)
        insert = f"INSERT INTO candles (symbol, timeframe, open_time, {_VALUES}) SELECT ?, ?, s.open_time, {values}"

        def changed(stored: str, new: str) -> str:
            return " OR ".join(f"{stored}.{c} <> {new}.{c}" for c in CANDLE_COLUMNS)

        if not overlaps:
            cur.execute(self._sql(f"{insert} FROM {staging} AS s"), key[:2])
        elif self.dialect == "sqlite":
            assign = ", ".join(f"{c} = excluded.{c}" for c in CANDLE_COLUMNS)
            cur.execute(
                f"{insert} FROM {staging} AS s WHERE true ON CONFLICT (symbol, timeframe, open_time) "
                f"DO UPDATE SET {assign} WHERE {changed('candles', 'excluded')}",
                key[:2],
            )
        else:
            cur.execute(f"ANALYZE {staging}")  # a temporary table has no statistics for the join plan
            assign = ", ".join(f"{c} = s.{c}" for c in CANDLE_COLUMNS)
            cur.execute(
                self._sql(
                    f"UPDATE candles AS c SET {assign} FROM {staging} AS s "
                    f"WHERE {in_span} AND c.open_time = s.open_time AND ({changed('c', 's')})"
                ),
                key,
            )
            cur.execute(
                self._sql(
                    f"{insert} FROM {staging} AS s WHERE NOT EXISTS "
                    f"(SELECT 1 FROM candles AS c WHERE {in_span} AND c.open_time = s.open_time)"
                ),
                key[:2] + key,
            )
        cur.execute(f"DROP TABLE {staging}")

    def _extend_coverage(
        self, cur: Cursor, symbol: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp, source: str
    ) -> None:
        lo, hi = ("LEAST", "GREATEST") if self.dialect == "postgresql" else ("min", "max")
        cur.execute(
            self._sql(
                "INSERT INTO candle_coverage (symbol, timeframe, start_ms, end_ms, source) VALUES (?, ?, ?, ?, ?) "
                f"ON CONFLICT (symbol, timeframe) DO UPDATE SET start_ms = {lo}(candle_coverage.start_ms, "
                f"excluded.start_ms), end_ms = {hi}(candle_coverage.end_ms, excluded.end_ms), source = excluded.source"
            ),
            (symbol, timeframe, _ms(start), _ms(end), source),
        )

    def coverage(self, partition: Partition) -> Coverage | None:
        """The span ``[start, end)`` already collected for this series, and from which source."""
        symbol, timeframe = partition.symbol, partition.timeframe
        with self._conn.cursor() as cur:
            cur.execute(
                self._sql("SELECT start_ms, end_ms, source FROM candle_coverage WHERE symbol = ? AND timeframe = ?"),
                (symbol, timeframe),
            )
            row = cur.fetchone()
        if row is None:
            return None
        return Coverage(pd.Timestamp(row[0], unit="ms", tz="UTC"), pd.Timestamp(row[1], unit="ms", tz="UTC"), row[2])

    def load(self, partition: Partition, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Stored candles with bar start in ``[start, end)``, as the canonical frame.

        On PostgreSQL a span of more than ``parallel_read_bars`` bars is read as two halves at once,
        over a second connection, both in one snapshot: the server's COPY, one row per bar, is the
        bottleneck of a long read, and two of them use both cores.
        """
        symbol, timeframe = partition.symbol, partition.timeframe
        lo, hi = _ms(start), _ms(end)
        bars = (hi - lo) / (get_timeframe(timeframe).delta.value / 1e6)
        if self.dialect == "postgresql" and bars > self.parallel_read_bars:
            table = self._read_halves(symbol, timeframe, lo, hi)
        else:
            table = self._read(self._conn, symbol, timeframe, lo, hi)
        if table.num_rows == 0:
            return empty_candles()
        index = pd.DatetimeIndex(
            pd.to_datetime(table.column("open_time").to_numpy(), unit="ms", utc=True), name="open_time"
        ).as_unit("ns")
        return pd.DataFrame(
            {c: table.column(c).to_numpy().astype("float64", copy=False) for c in CANDLE_COLUMNS}, index=index
        )

    def _read(self, conn: Connection, symbol: str, timeframe: str, lo: int, hi: int) -> pa.Table:
        with conn.cursor() as cur:
            cur.execute(
                self._sql(
                    f"SELECT open_time, {_VALUES} FROM candles WHERE symbol = ? AND timeframe = ? "
                    "AND open_time >= ? AND open_time < ? ORDER BY open_time"
                ),
                (symbol, timeframe, lo, hi),
            )
            return cur.fetch_arrow_table()

    def _read_halves(self, symbol: str, timeframe: str, lo: int, hi: int) -> pa.Table:
        """``_read`` of ``[lo, mid)`` here and ``[mid, hi)`` on the second connection, in one exported snapshot."""
        if self._second is None:
            with redacted_errors(url_secrets(self._uri)):
                self._second = adbc_driver_postgresql.dbapi.connect(self._uri, autocommit=True)
        second, mid = self._second, lo + (hi - lo) // 2
        begin = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        self._control(begin)
        try:
            with self._conn.cursor() as cur:
                cur.execute("SELECT pg_export_snapshot()")
                snapshot = str(cur.fetchone()[0])
            if not re.fullmatch(r"[0-9A-Fa-f-]+", snapshot):
                raise RuntimeError(f"unexpected snapshot id from the server: {snapshot!r}")
            self._control(begin, second)
            try:
                self._control(f"SET TRANSACTION SNAPSHOT '{snapshot}'", second)
                with ThreadPoolExecutor(1) as pool:  # the driver releases the GIL while it reads
                    later = pool.submit(self._read, second, symbol, timeframe, mid, hi)
                    earlier = self._read(self._conn, symbol, timeframe, lo, mid)
                    return pa.concat_tables([earlier, later.result()])
            finally:
                self._control("ROLLBACK", second)  # read only: nothing to commit
        finally:
            self._control("ROLLBACK")

    def collect(
        self,
        source: CandleSource,
        partition: Partition,
        start: pd.Timestamp,
        end: pd.Timestamp,
        refresh: bool = False,
        refetch_bars: int = 0,
    ) -> CollectResult:
        """Make the store hold everything the source has in ``[start, end)``, fetching only what is new.

        The collected span stays one contiguous interval: a request disjoint from it also fetches
        the hole in between. When the span grows at its end, the last ``refetch_bars`` bars already
        collected are fetched again, so a candle the exchange published late or corrected replaces
        what the store had. ``refresh`` fetches the whole ``[start, end)`` again. Fetched candles are
        upserted (never deleted). Each batch of the source (see ``iter_batches``) is committed as it
        arrives and extends the coverage as soon as it joins it, so a failure keeps what was fetched
        and the next collection resumes from there.
        The series' recorded source identity (kind + where it reads from) must match the source's.
        """
        timeframe = partition.timeframe
        start, end = to_utc(start), to_utc(end)
        current = self.coverage(partition)
        if current is None or refresh or _far_from(current, start, end):
            spans = [(start, end)]  # a window far from what is stored: that window only, never the gap between
        else:
            spans = []
            if start < current.start:
                spans.append((start, current.start))
            if end > current.end:
                tail = current.end - refetch_bars * get_timeframe(timeframe).delta
                spans.append((max(tail, current.start, start), end))
        return self.collect_spans(source, partition, spans, current)

    def collect_spans(
        self,
        source: CandleSource,
        partition: Partition,
        spans: list[tuple[pd.Timestamp, pd.Timestamp]],
        current: Coverage | None = None,
    ) -> CollectResult:
        """Fetch exactly ``spans`` and upsert what arrives; the recorded coverage (one interval) grows only
        where a batch touches it, so a detached window is fetched without claiming the gap before it."""
        symbol, timeframe = partition.symbol, partition.timeframe
        identity = source_identity(source)
        if current is not None and current.source not in (identity, source.name):  # bare name: older stores
            raise CandleDataError(
                symbol,
                timeframe,
                f"the candle store ({self.display_url}) holds candles collected from '{current.source}', "
                f"not from '{identity}'; use another database for this source (TRADING_DB_URL or the "
                "candle_store resource) so the two never mix",
            )
        result = CollectResult()
        covered = None if current is None else (current.start, current.end)
        for lo, hi in spans:
            fetched = 0
            done: tuple[pd.Timestamp, pd.Timestamp] | None = None  # contiguous part of [lo, hi) committed so far
            for batch in iter_batches(source, symbol, timeframe, lo, hi):
                done = _union(done, (batch.start, batch.end))
                # coverage stays one interval: record the batch once it touches what is already covered
                touches = covered is None or (done[0] <= covered[1] and done[1] >= covered[0])
                if touches:
                    covered = _union(covered, done)
                span = (*done, identity) if touches else None
                result.invalid_bars += batch.candles.attrs.get("invalid_bars", [])
                fetched += self.upsert(partition, batch.candles, covered=span)
            result.rows_fetched += fetched
            result.fetched_spans.append((lo, hi))
            log.info("collected %d %s %s candles in [%s, %s) from %s", fetched, symbol, timeframe, lo, hi, identity)
        return result

    def filled_window(
        self,
        source: CandleSource,
        partition: Partition,
        start: pd.Timestamp,
        end: pd.Timestamp,
        calendar: TradingCalendar | None = None,
        max_fill_bars: int | None = None,
        refresh: bool = False,
        refetch_bars: int = 0,
        refetch_breaks: int = 0,
    ) -> tuple[FilledCandles, CollectResult]:
        """Collect ``[start, end)`` incrementally, load it and fill the session grid (see ``fill_candle_grid``).

        The newest ``refetch_breaks`` breaks inside the window (gaps longer than ``max_fill_bars``) are asked
        for again: a hole the store holds inside its recorded coverage (a page an exchange cut short, kept by
        an older version) fills without ``--refresh``; a market that had no trades answers with nothing.
        """
        timeframe = partition.timeframe
        collected = self.collect(source, partition, start, end, refresh, refetch_bars)
        candles = self.load(partition, start, end)
        filled = fill_candle_grid(candles, timeframe, start, end, calendar, max_fill_bars)
        delta = get_timeframe(timeframe).delta
        gaps = [(b.after + delta, b.resume) for b in filled.breaks][-refetch_breaks:] if refetch_breaks else []
        if gaps:
            again = self.collect_spans(source, partition, gaps, self.coverage(partition))
            collected.fetched_spans += again.fetched_spans
            collected.invalid_bars += again.invalid_bars
            collected.rows_fetched += again.rows_fetched
            if again.rows_fetched:
                candles = self.load(partition, start, end)
                filled = fill_candle_grid(candles, timeframe, start, end, calendar, max_fill_bars)
        return filled, collected

    def dispose(self) -> None:
        """Close the connection(s) (idempotent)."""
        if self._second is not None:
            self._second.close()
        self._conn.close()
