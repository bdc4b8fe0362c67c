"""Chronological splits: train | validation | test for one model, and walk-forward folds on a calendar grid.

Spans are half-open positional row ranges with ``gap`` unused rows between them, so that no
window or label of one span reaches into the next (``gap >= seq_len + horizon - 1``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class SplitConfig:
    """Chronological train | validation | test shares; the purge gap defaults to seq_len + entry_lag + horizon - 1."""

    train_fraction: float = 0.7
    validation_fraction: float = 0.15
    gap: int | None = None  # rows left out between spans; None: the smallest safe gap


DEFAULT_SPLIT = SplitConfig()


@dataclass(frozen=True)
class Split:
    """Row ranges (half-open, positional) of each span."""

    train: range
    validation: range
    test: range


def chronological_split(
    n_rows: int,
    train_fraction: float = DEFAULT_SPLIT.train_fraction,
    validation_fraction: float = DEFAULT_SPLIT.validation_fraction,
    gap: int = 0,
) -> Split:
    """Split ``n_rows`` rows in time order, leaving ``gap`` rows unused between spans.

    Raises ``ValueError`` if a span would be empty.
    """
    if not (0 < train_fraction < 1 and 0 <= validation_fraction < 1 and train_fraction + validation_fraction < 1):
        raise ValueError(f"bad split fractions train={train_fraction} validation={validation_fraction}")
    usable = n_rows - 2 * gap
    n_train = int(usable * train_fraction)
    n_val = int(usable * validation_fraction)
    train = range(0, n_train)
    validation = range(n_train + gap, n_train + gap + n_val)
    test = range(validation.stop + gap, n_rows)
    if min(len(train), len(validation), len(test)) <= 0:
        raise ValueError(
            f"{n_rows} rows are too few for a split with gap {gap}: "
            f"train {len(train)}, validation {len(validation)}, test {len(test)}"
        )
    return Split(train, validation, test)


# The fold grid per timeframe: test blocks are whole calendar periods (pandas period aliases), so a
# block holds a few hundred bars or more and a longer span leaves every earlier block where it was.
FOLD_PERIODS: dict[str, str] = {
    "1m": "D",
    "5m": "D",
    "15m": "W",
    "30m": "W",
    "60m": "W",
    "240m": "M",
    "1d": "Q",
}


@dataclass(frozen=True)
class FoldGrid:
    """Walk-forward folds on a calendar grid (see :func:`time_folds`)."""

    period: str  # pandas period alias: D (UTC days), W (weeks from Monday), M (months), Q (quarters)
    min_train_periods: int = 3  # the first test block is at least the 4th period of the data
    max_folds: int = 4  # test blocks: the last ones before the hold-out
    holdout_periods: int = 1  # the last periods, never used for ranking
    scheme: Literal["expanding", "rolling"] = "expanding"
    validation_fraction: float = 0.15  # of each fold's history, after a gap: early stopping

    def validate(self) -> FoldGrid:
        if self.min_train_periods < 1 or self.max_folds < 1 or self.holdout_periods < 0:
            raise ValueError(
                f"bad fold grid: min_train_periods {self.min_train_periods} (>= 1), max_folds {self.max_folds} "
                f"(>= 1), holdout_periods {self.holdout_periods} (>= 0)"
            )
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction {self.validation_fraction}: allowed 0 < validation_fraction < 1")
        return self


@dataclass(frozen=True)
class Fold:
    """One walk-forward fold: fit on ``train`` (early stopping on ``validation``), predict ``test``."""

    number: int
    train: range
    validation: range
    test: range
    holdout: bool = False


def period_blocks(index: pd.DatetimeIndex, period: str) -> list[range]:
    """Positional row ranges of ``index`` (sorted, UTC) per calendar period, in time order."""
    if not len(index):
        return []
    keys = index.tz_convert("UTC").tz_localize(None).to_period(period).asi8
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    stops = np.concatenate([starts[1:], [len(index)]])
    return [range(int(a), int(b)) for a, b in zip(starts, stops)]


def time_folds(index: pd.DatetimeIndex, grid: FoldGrid, gap: int) -> list[Fold]:
    """Walk-forward folds whose test blocks are calendar periods, plus the hold-out (the last fold).

    Block k (0 = the period of the first row) may be a test block once ``k >= min_train_periods``.
    The test folds are the last ``max_folds`` such blocks before the last ``holdout_periods``, which
    form the hold-out; a last block shorter than half the typical one joins the block before it. Each
    fold learns from rows strictly before its block, ``gap`` rows earlier: the expanding scheme from
    row 0, the rolling one from a window of the first ``min_train_periods`` periods' length. Since a
    fold depends only on the data's start and its own block, a later end leaves every earlier fold
    and its forecasts as they were.
    """
    grid.validate()
    blocks = period_blocks(index, grid.period)
    typical = float(np.median([len(b) for b in blocks])) if blocks else 0.0
    if len(blocks) > 2 and len(blocks[-1]) < typical / 2:
        blocks[-2:] = [range(blocks[-2].start, blocks[-1].stop)]
    candidates = blocks[grid.min_train_periods :]
    holdout = candidates[len(candidates) - grid.holdout_periods :] if grid.holdout_periods else []
    tests = candidates[: len(candidates) - len(holdout)][-grid.max_folds :]
    if not tests:
        raise ValueError(
            f"{len(index)} rows span {len(blocks)} periods of '{grid.period}': too few for a test fold after "
            f"{grid.min_train_periods} training periods and {grid.holdout_periods} hold-out periods "
            f"(needs at least {grid.min_train_periods + grid.holdout_periods + 1})"
        )
    window = blocks[grid.min_train_periods].start - gap  # rows the rolling scheme learns from
    spans = [(b, False) for b in tests]
    if holdout:
        spans.append((range(holdout[0].start, holdout[-1].stop), True))
    out = []
    for number, (test, is_holdout) in enumerate(spans, start=1):
        learn_stop = test.start - gap
        learn_start = 0 if grid.scheme == "expanding" else max(0, learn_stop - window)
        n_val = int((learn_stop - learn_start) * grid.validation_fraction)
        validation = range(learn_stop - n_val, learn_stop)
        train = range(learn_start, validation.start - gap)
        if min(len(train), len(validation), len(test)) <= 0:
            raise ValueError(
                f"{len(index)} rows are too few for walk-forward fold {number} with gap {gap}: "
                f"train {len(train)}, validation {len(validation)}, test {len(test)} rows"
            )
        out.append(Fold(number, train, validation, test, is_holdout))
    return out
