"""The candle store: a SQL database (SQLite file by default, PostgreSQL in production).

Candles are keyed by ``(symbol, timeframe, open_time)`` and upserted idempotently. Next to them
the store records which span of each series it has already collected (``candle_coverage``), so
incremental collection asks the source only for what lies outside that span, and a bar the
exchange never emitted (no trades) is not asked for again and again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from trading_assets.candles import CANDLE_COLUMNS, FilledCandles, empty_candles, fill_candle_grid, normalize_candles
from trading_assets.errors import CandleDataError
from trading_assets.sources.base import CandleSource
from trading_assets.timeframes import to_utc

log = logging.getLogger(__name__)

metadata = sa.MetaData()
candles_table = sa.Table(
    "candles",
    metadata,
    sa.Column("symbol", sa.String(32), primary_key=True),
    sa.Column("timeframe", sa.String(8), primary_key=True),
    sa.Column("open_time", sa.BigInteger, primary_key=True, comment="bar start, epoch milliseconds UTC"),
    *(sa.Column(c, sa.Float(precision=53), nullable=False) for c in CANDLE_COLUMNS),
)
coverage_table = sa.Table(
    "candle_coverage",
    metadata,
    sa.Column("symbol", sa.String(32), primary_key=True),
    sa.Column("timeframe", sa.String(8), primary_key=True),
    sa.Column("start_ms", sa.BigInteger, nullable=False),
    sa.Column("end_ms", sa.BigInteger, nullable=False, comment="exclusive"),
    sa.Column("source", sa.String(64), nullable=False, comment="name of the source the span was collected from"),
)
_CHUNK = 5_000


def _ms(ts: pd.Timestamp) -> int:
    return int(to_utc(ts).value // 1_000_000)


@dataclass(frozen=True)
class Coverage:
    start: pd.Timestamp
    end: pd.Timestamp  # exclusive
    source: str


@dataclass
class CollectResult:
    """What one incremental collection asked the source for and got."""

    fetched_spans: list[tuple[pd.Timestamp, pd.Timestamp]] = field(default_factory=list)
    rows_fetched: int = 0


class CandleStore:
    """Candles in SQL through SQLAlchemy."""

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.engine = sa.create_engine(url)
        metadata.create_all(self.engine)

    def _insert(self, table: sa.Table):
        return (postgresql if self.engine.dialect.name == "postgresql" else sqlite).insert(table)

    def upsert(
        self,
        symbol: str,
        timeframe: str,
        candles: pd.DataFrame,
        covered: tuple[pd.Timestamp, pd.Timestamp, str] | None = None,
    ) -> int:
        """Insert or update ``candles`` (canonical frame) in one transaction; returns the row count.

        ``covered`` = (start, end, source name) extends the recorded coverage of the series in the
        same transaction.
        """
        candles = normalize_candles(candles, symbol, timeframe)
        times = candles.index.as_unit("ms").asi8
        records = [
            {
                "symbol": symbol,
                "timeframe": timeframe,
                "open_time": int(t),
                **dict(zip(CANDLE_COLUMNS, map(float, row))),
            }
            for t, row in zip(times, candles[list(CANDLE_COLUMNS)].to_numpy())
        ]
        stmt = self._insert(candles_table)
        stmt = stmt.on_conflict_do_update(
            index_elements=["symbol", "timeframe", "open_time"],
            set_={c: stmt.excluded[c] for c in CANDLE_COLUMNS},
        )
        with self.engine.begin() as conn:
            for i in range(0, len(records), _CHUNK):
                conn.execute(stmt, records[i : i + _CHUNK])
            if covered is not None:
                self._extend_coverage(conn, symbol, timeframe, *covered)
        return len(records)

    def _extend_coverage(
        self, conn: sa.Connection, symbol: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp, source: str
    ) -> None:
        current = self._coverage(conn, symbol, timeframe)
        lo, hi = _ms(start), _ms(end)
        if current is not None:
            lo, hi = min(lo, current[0]), max(hi, current[1])
        values = {"start_ms": lo, "end_ms": hi, "source": source}
        stmt = self._insert(coverage_table).values(symbol=symbol, timeframe=timeframe, **values)
        conn.execute(stmt.on_conflict_do_update(index_elements=["symbol", "timeframe"], set_=values))

    @staticmethod
    def _coverage(conn: sa.Connection, symbol: str, timeframe: str) -> tuple[int, int, str] | None:
        row = conn.execute(
            sa.select(coverage_table.c.start_ms, coverage_table.c.end_ms, coverage_table.c.source).where(
                coverage_table.c.symbol == symbol, coverage_table.c.timeframe == timeframe
            )
        ).first()
        return (row[0], row[1], row[2]) if row else None

    def coverage(self, symbol: str, timeframe: str) -> Coverage | None:
        """The span ``[start, end)`` already collected for this series, and from which source."""
        with self.engine.connect() as conn:
            span = self._coverage(conn, symbol, timeframe)
        if span is None:
            return None
        return Coverage(pd.Timestamp(span[0], unit="ms", tz="UTC"), pd.Timestamp(span[1], unit="ms", tz="UTC"), span[2])

    def load(self, symbol: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Stored candles with bar start in ``[start, end)``, as the canonical frame."""
        c = candles_table.c
        query = (
            sa.select(c.open_time, *(c[col] for col in CANDLE_COLUMNS))
            .where(c.symbol == symbol, c.timeframe == timeframe, c.open_time >= _ms(start), c.open_time < _ms(end))
            .order_by(c.open_time)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return empty_candles()
        data = np.asarray(rows, dtype="float64")
        index = pd.DatetimeIndex(pd.to_datetime(data[:, 0].astype("int64"), unit="ms", utc=True), name="open_time")
        return pd.DataFrame(data[:, 1:], index=index.as_unit("ns"), columns=list(CANDLE_COLUMNS))

    def collect(
        self, source: CandleSource, symbol: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp
    ) -> CollectResult:
        """Make the store hold everything the source has in ``[start, end)``, fetching only what is new.

        The collected span stays one contiguous interval: a request disjoint from it also fetches
        the hole in between.
        """
        start, end = to_utc(start), to_utc(end)
        current = self.coverage(symbol, timeframe)
        if current is None:
            spans = [(start, end)]
        else:
            if current.source != source.name:
                raise CandleDataError(
                    symbol,
                    timeframe,
                    f"the candle store ({self.engine.url.render_as_string()}) holds candles "
                    f"collected from '{current.source}', not from '{source.name}'; use another database for this "
                    "source (TRADING_DB_URL or the candle_store resource) so the two never mix",
                )
            spans = []
            if start < current.start:
                spans.append((start, current.start))
            if end > current.end:
                spans.append((current.end, end))
        result = CollectResult()
        for lo, hi in spans:
            candles = source.fetch(symbol, timeframe, lo, hi)
            result.rows_fetched += self.upsert(symbol, timeframe, candles, covered=(lo, hi, source.name))
            result.fetched_spans.append((lo, hi))
            log.info(
                "collected %d %s %s candles in [%s, %s) from %s", len(candles), symbol, timeframe, lo, hi, source.name
            )
        return result

    def filled_window(
        self, source: CandleSource, symbol: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp
    ) -> tuple[FilledCandles, CollectResult]:
        """Collect ``[start, end)`` incrementally, load it and fill the bar grid (see ``fill_candle_grid``)."""
        collected = self.collect(source, symbol, timeframe, start, end)
        candles = self.load(symbol, timeframe, start, end)
        return fill_candle_grid(candles, timeframe, start, end), collected

    def __enter__(self) -> CandleStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.dispose()

    def dispose(self) -> None:
        self.engine.dispose()
