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

from trading_assets.execution import Execution, positions
from trading_assets.features import FeatureConfig, FeatureContext, build_features, feature_memory_bars
from trading_assets.partition import Partition
from trading_assets.store import CandleStore
from trading_assets.timeframes import get_timeframe


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
    context: FeatureContext | None = None,
) -> Scored:
    """Signals for the bars of ``indicators`` after ``after`` (none yet: the newest bar only), each with the
    champion's forecast, the position and ``stamp`` (model name and version, features data version)."""
    index = indicators.index
    new = index[index > after] if after is not None else index[-1:]
    if new.empty:
        return Scored(_empty(), 0)
    first = int(index.searchsorted(new[0]))
    memory, back = feature_memory_bars(config), bundle.seq_len - 1
    while True:  # the model's window before the first new bar, in feature rows (incomplete rows are dropped)
        start = max(first - back, 0)
        features = build_features(
            indicators.iloc[max(start - memory, 0) :],
            partition,
            config,
            span_start=index[start],
            execution=execution,
            keep_unlabelled=True,
            context=context,
        ).frame
        if start == 0 or int(features.index.searchsorted(new[0])) >= bundle.seq_len - 1:
            break
        back *= 2
    missing = [c for c in bundle.feature_columns if c not in features.columns]
    if missing:
        raise ChampionMismatchError(
            f"{partition}: champion {stamp['model_name']} version {stamp['model_version']} needs feature columns "
            f"{missing} that its feature set {config.feature_set!r} does not have"
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
    """The append-only signal history of every partition, in ``store``'s database (its ``signals`` table)."""

    def __init__(self, store: CandleStore) -> None:
        self.store = store

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
        """Insert the ``rows`` after the newest stored signal, all or none (one transaction). Rows at or before it
        were written by an earlier or a concurrent run and stay as they are: history never changes. Returns the
        rows written."""
        series = (partition.symbol, partition.timeframe)
        with self.store.transaction(series=series, operation=f"signal append of {partition}") as cur:
            cur.execute(self.store.sql("SELECT MAX(open_time) FROM signals WHERE symbol = ? AND timeframe = ?"), series)
            newest = cur.fetchone()[0]
            if newest is not None:
                rows = rows[rows.index > pd.Timestamp(newest, unit="ms", tz="UTC")]
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
    from scipy.stats import ks_2samp  # here: scipy.stats costs ~0.5 s a process, and only this check reads it

    out = {}
    for column in columns:
        a, b = recent[column].dropna().to_numpy(), reference[column].dropna().to_numpy()
        if len(a) and len(b):
            out[column] = float(ks_2samp(a, b, method="asymp").statistic)  # the statistic only: no exact p-value
    return out
