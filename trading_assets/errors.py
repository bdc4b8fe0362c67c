"""Errors that name what went wrong: which symbol, which timeframe, which column, which rows."""

from __future__ import annotations

from collections.abc import Sequence


class CandleDataError(ValueError):
    """Bad candle data (or a bad answer from a source) for one symbol and timeframe."""

    def __init__(
        self,
        symbol: str,
        timeframe: str,
        problem: str,
        column: str | None = None,
        examples: Sequence[object] = (),
    ) -> None:
        self.symbol = symbol
        self.timeframe = timeframe
        self.column = column
        self.problem = problem
        self.examples = list(examples)[:5]
        where = f"{symbol} {timeframe}" + (f" column '{column}'" if column else "")
        text = f"{where}: {problem}"
        if self.examples:
            text += f"; first offending rows: {self.examples}"
        super().__init__(text)


class UnknownSymbolError(CandleDataError):
    """The source does not know this market."""


class EmptySourceError(CandleDataError):
    """The source answered, but with no candles for the requested span."""


class SourceUnavailableError(RuntimeError):
    """The source could not be reached or kept failing after retries.

    ``transient``: worth retrying the whole step later (network, 5xx, malformed answers); not for a
    ban (Upbit's HTTP 418), where retrying soon makes it longer.
    """

    def __init__(self, message: str, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class StoreError(RuntimeError):
    """The candle store failed: names the store (redacted URL), the operation and the cause.

    ``transient``: a lost connection, worth retrying the step; not a full disk or a broken schema.
    """

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
