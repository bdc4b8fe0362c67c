"""Chronological train | validation | test splits with a gap between spans.

The features asset fits its scaler on the train span computed here, and training splits the same
frame with the same function, so the two always agree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Split:
    """Row ranges (half-open, positional) of each span."""

    train: range
    validation: range
    test: range


def chronological_split(
    n_rows: int, train_fraction: float = 0.7, validation_fraction: float = 0.15, gap: int = 64
) -> Split:
    """Split ``n_rows`` rows in time order, leaving ``gap`` rows unused between spans.

    ``gap`` should be at least the model's sequence length plus its horizon so that no window
    of one span overlaps another span. Raises if the spans would be empty.
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
