"""Chronological splits: train | validation | test for one model, and walk-forward folds.

Spans are half-open positional row ranges with ``gap`` unused rows between them, so that no
window or label of one span reaches into the next (``gap >= seq_len + horizon - 1``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from trading_assets.training.config import SplitConfig

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


@dataclass(frozen=True)
class Fold:
    """One walk-forward fold: fit on ``train`` (early stopping on ``validation``), predict ``test``."""

    number: int
    train: range
    validation: range
    test: range


def walk_forward_folds(
    n_rows: int,
    folds: int,
    gap: int,
    min_train_fraction: float = 0.5,
    validation_fraction: float = 0.15,
    scheme: Literal["expanding", "rolling"] = "expanding",
) -> list[Fold]:
    """``folds`` consecutive test blocks after the first ``min_train_fraction`` of the rows.

    Each fold learns only from rows strictly before its test block, ``gap`` rows earlier: the
    expanding scheme from row 0, the rolling one from a window as long as the first fold's. Its
    last ``validation_fraction`` (after another gap) is held out for early stopping.
    """
    if folds < 1 or not 0 < min_train_fraction < 1 or not 0 < validation_fraction < 1:
        raise ValueError(f"bad walk-forward settings: folds={folds}, min_train_fraction={min_train_fraction}")
    first_test = int(n_rows * min_train_fraction)
    size = (n_rows - first_test) // folds
    history = first_test - gap  # rows the first fold may learn from
    out = []
    for k in range(folds):
        test_start = first_test + k * size
        test = range(test_start, n_rows if k == folds - 1 else test_start + size)
        learn_stop = test_start - gap
        learn_start = 0 if scheme == "expanding" else max(0, learn_stop - history)
        n_val = int((learn_stop - learn_start) * validation_fraction)
        validation = range(learn_stop - n_val, learn_stop)
        train = range(learn_start, validation.start - gap)
        if min(len(train), len(validation), len(test)) <= 0:
            raise ValueError(
                f"{n_rows} rows are too few for {folds} walk-forward folds with gap {gap}: fold {k + 1} has "
                f"train {len(train)}, validation {len(validation)}, test {len(test)} rows"
            )
        out.append(Fold(k + 1, train, validation, test))
    return out
