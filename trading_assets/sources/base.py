"""The interface every candle source implements."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import pandas as pd

from trading_assets.redaction import redact
from trading_assets.timeframes import get_timeframe


@runtime_checkable
class CandleSource(Protocol):
    """Somewhere candles come from.

    ``fetch`` returns the canonical candle frame (see :mod:`trading_assets.candles`) holding every
    candle the source has whose bar starts in ``[start, end)``; bars without trades are absent,
    as on an exchange. It may be empty when the source simply has no candles there; it raises
    :class:`~trading_assets.errors.UnknownSymbolError` for a market it does not know.

    A source that fetches in pages may also offer ``fetch_batches`` (same arguments) yielding
    :class:`CandleBatch` es as they arrive, so the store commits each one (see :func:`iter_batches`).
    """

    name: str

    def fetch(self, symbol: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame: ...


def source_identity(source: CandleSource) -> str:
    """What the candle store records as the origin of a series: the source's kind and where it reads from.

    A source may define ``identity``; otherwise its ``name`` plus its ``base_url`` or ``directory`` when it
    has one, so two directories or two servers never mix in one store. Credentials in a URL are masked.
    """
    explicit = getattr(source, "identity", None)
    if explicit:
        return redact(explicit)
    where = getattr(source, "base_url", None) or getattr(source, "directory", None)
    return redact(f"{source.name}:{where}" if where else source.name)


@dataclass(frozen=True)
class CandleBatch:
    """Every candle the source has in ``[start, end)`` (canonical frame), one page of a fetch."""

    candles: pd.DataFrame
    start: pd.Timestamp
    end: pd.Timestamp  # exclusive


def iter_batches(
    source: CandleSource, symbol: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp
) -> Iterator[CandleBatch]:
    """The source's pages when it pages (``fetch_batches``), else one batch of ``fetch``.

    A single batch covers the window up to its last candle received, not beyond: a source whose answer
    stopped short (a stale or cut page) never lets the store claim bars that did not arrive; the next
    collection asks for the rest.
    """
    fetch_batches = getattr(source, "fetch_batches", None)
    if fetch_batches is not None:
        yield from fetch_batches(symbol, timeframe, start, end)
    else:
        candles = source.fetch(symbol, timeframe, start, end)
        last = candles.index[-1] + get_timeframe(timeframe).delta if len(candles) else end
        yield CandleBatch(candles, start, min(end, last))
