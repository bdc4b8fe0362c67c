"""Live signals: the champion's forecast and the execution rule's position for every new bar, append-only.

:func:`score_new_bars` builds the newest features from the stored indicators (the features are
start-invariant, so a tail of :func:`~trading_assets.features.feature_memory_bars` rows before the window
gives the values a full recomputation gives, unlabelled last bars included) and scores them with the
champion's :class:`~trading_assets.training.bundle.ModelBundle`. :class:`SignalLog` keeps the history in
the candle store's database: rows are only ever inserted, after the last one, in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from trading_assets.execution import Execution, positions
from trading_assets.features import FeatureConfig, build_features, feature_memory_bars
from trading_assets.partition import Partition
from trading_assets.store import CandleStore
from trading_assets.timeframes import get_timeframe

COLUMNS = ("forecast", "position", "model_name", "model_version", "features_version", "generated_at")
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS signals (symbol VARCHAR(32) NOT NULL, timeframe VARCHAR(8) NOT NULL, "
    "open_time BIGINT NOT NULL, forecast DOUBLE PRECISION NOT NULL, position DOUBLE PRECISION NOT NULL, "
    "model_name VARCHAR(128) NOT NULL, model_version VARCHAR(16) NOT NULL, features_version VARCHAR(128) NOT NULL, "
    "generated_at BIGINT NOT NULL, PRIMARY KEY (symbol, timeframe, open_time))"
)


class ChampionMismatchError(ValueError):
    """The champion's bundle cannot score this partition's features."""


def next_positions(forecasts: np.ndarray, previous: float, execution: Execution) -> np.ndarray:
    """The rule's positions after each of ``forecasts``, continuing from the ``previous`` position (a forecast
    inside the cost band holds it), exactly as :func:`~trading_assets.execution.positions` over the whole run."""
    lead = {1.0: np.inf, -1.0: -np.inf}.get(float(previous), -np.inf if execution.side == "long_only" else 0.0)
    return positions(np.r_[lead, np.asarray(forecasts, dtype="float64")], execution)[1:]


@dataclass(frozen=True)
class Scored:
    """Signal rows for the new bars, and the bars that could not be scored yet (too little history)."""

    rows: pd.DataFrame
    unscored: int


def score_new_bars(
    indicators: pd.DataFrame,
    partition: Partition,
    bundle,  # ModelBundle
    config: FeatureConfig,
    execution: Execution,
    after: pd.Timestamp | None,
    previous_position: float,
    stamp: dict[str, str],
    now: pd.Timestamp,
) -> Scored:
    """Signals for the bars of ``indicators`` after ``after`` (none yet: the newest bar only), each with the
    champion's forecast, the position and ``stamp`` (model name and version, features data version)."""
    index = indicators.index
    new = index[index > after] if after is not None else index[-1:]
    if new.empty:
        return Scored(_empty(), 0)
    first = int(index.searchsorted(new[0]))
    memory = feature_memory_bars(config)
    start = max(first - bundle.seq_len + 1 - memory, 0)
    span_start = index[max(first - bundle.seq_len + 1, 0)]
    features = build_features(
        indicators.iloc[start:], partition, config, span_start=span_start, execution=execution, keep_unlabelled=True
    ).frame
    missing = [c for c in bundle.feature_columns if c not in features.columns]
    if missing:
        raise ChampionMismatchError(
            f"{partition}: champion {stamp['model_name']} version {stamp['model_version']} needs feature columns "
            f"{missing} that the partition's feature set {config.feature_set!r} does not have"
        )
    forecast = bundle.predict(features).reindex(new)
    scored = forecast.dropna()
    out = pd.DataFrame(index=scored.index.rename("open_time"))
    out["forecast"] = scored.to_numpy()
    out["position"] = next_positions(scored.to_numpy(), previous_position, execution)
    for key in ("model_name", "model_version", "features_version"):
        out[key] = stamp[key]
    out["generated_at"] = now
    return Scored(out, int(forecast.isna().sum()))


def _empty() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in ("forecast", "position")})
    for c in ("model_name", "model_version", "features_version"):
        frame[c] = pd.Series(dtype="object")
    frame["generated_at"] = pd.Series(dtype="datetime64[ns, UTC]")
    frame.index = pd.DatetimeIndex([], tz="UTC", name="open_time")
    return frame


class SignalLog:
    """The append-only signal history of every partition, in ``store``'s database."""

    def __init__(self, store: CandleStore) -> None:
        self.store = store
        with store.transaction(operation="signal schema creation") as cur:
            cur.execute(_SCHEMA)

    def last(self, partition: Partition) -> tuple[pd.Timestamp, float] | None:
        """The newest signal's bar and position, or None."""
        with self.store.cursor() as cur:
            cur.execute(
                self.store.sql(
                    "SELECT open_time, position FROM signals WHERE symbol = ? AND timeframe = ? "
                    "ORDER BY open_time DESC LIMIT 1"
                ),
                (partition.symbol, partition.timeframe),
            )
            row = cur.fetchone()
        return None if row is None else (pd.Timestamp(row[0], unit="ms", tz="UTC"), float(row[1]))

    def append(self, partition: Partition, rows: pd.DataFrame) -> int:
        """Insert ``rows`` after the newest stored signal, all or none (one transaction); a row at or before
        it is refused: history never changes. Returns the rows written."""
        if rows.empty:
            return 0
        series = (partition.symbol, partition.timeframe)
        with self.store.transaction(series=series, operation=f"signal append of {partition}") as cur:
            cur.execute(self.store.sql("SELECT MAX(open_time) FROM signals WHERE symbol = ? AND timeframe = ?"), series)
            newest = cur.fetchone()[0]
            first = int(rows.index[0].value // 1_000_000)
            if newest is not None and first <= newest:
                raise ValueError(
                    f"{partition}: signal history is append-only: {rows.index[0]} is not after the newest stored "
                    f"signal {pd.Timestamp(newest, unit='ms', tz='UTC')}"
                )
            insert = self.store.sql(
                "INSERT INTO signals (symbol, timeframe, open_time, forecast, position, model_name, model_version, "
                "features_version, generated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            )
            for time, r in rows.iterrows():
                cur.execute(
                    insert,
                    (
                        *series,
                        int(time.value // 1_000_000),
                        float(r["forecast"]),
                        float(r["position"]),
                        str(r["model_name"]),
                        str(r["model_version"]),
                        str(r["features_version"]),
                        int(pd.Timestamp(r["generated_at"]).value // 1_000_000),
                    ),
                )
        return len(rows)

    def partitions(self) -> list[Partition]:
        """Every partition with signals."""
        with self.store.cursor() as cur:
            cur.execute("SELECT DISTINCT symbol, timeframe FROM signals ORDER BY symbol, timeframe")
            return [Partition(symbol, timeframe) for symbol, timeframe in cur.fetchall()]

    def history(self, partition: Partition, limit: int | None = None) -> pd.DataFrame:
        """The partition's signals, oldest first (the newest ``limit`` with one)."""
        query = (
            "SELECT open_time, forecast, position, model_name, model_version, features_version, generated_at "
            "FROM signals WHERE symbol = ? AND timeframe = ? ORDER BY open_time DESC"
            + (f" LIMIT {int(limit)}" if limit else "")
        )
        with self.store.cursor() as cur:
            cur.execute(self.store.sql(query), (partition.symbol, partition.timeframe))
            table = cur.fetch_arrow_table()
        frame = table.to_pandas()
        if frame.empty:
            return _empty()
        frame["open_time"] = pd.to_datetime(frame["open_time"], unit="ms", utc=True)
        frame["generated_at"] = pd.to_datetime(frame["generated_at"], unit="ms", utc=True)
        return frame.set_index("open_time").sort_index()


def age_in_bars(last: pd.Timestamp, timeframe: str, now: pd.Timestamp) -> float:
    """Closed bars since the one ``last`` signalled: 0 while the next bar is still forming."""
    tf = get_timeframe(timeframe)
    return max((tf.floor(now) - last) / tf.delta - 1, 0.0)


def drift(recent: pd.DataFrame, reference: pd.DataFrame, columns: list[str]) -> dict[str, float]:
    """The two-sample Kolmogorov-Smirnov statistic of each column: ``recent`` against ``reference``."""
    out = {}
    for column in columns:
        a, b = recent[column].dropna().to_numpy(), reference[column].dropna().to_numpy()
        if len(a) and len(b):
            out[column] = float(stats.ks_2samp(a, b).statistic)
    return out
