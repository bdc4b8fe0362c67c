"""Sliding windows over a features frame, without copying per sample, split chronologically.

A sample ending at row t sees feature rows ``t - seq_len + 1 .. t`` and predicts the log return of
the trade decided at t's close, ``sum(target[t .. t + horizon - 1])`` (``target[t]`` is the one-bar
return of the fill price series from the entry, ``entry_lag`` bars later; see
:mod:`trading_assets.execution`). The label reads prices up to row ``t + entry_lag + horizon``. A
training or validation sample belongs to a span when its window *and* the prices its label reads lie
inside the span; with a gap of at least ``seq_len + entry_lag + horizon - 1`` rows between spans no
sample of one span touches rows of another. No sample's window or label spans a break (a gap in
the candles left open; the frame's provenance in ``frame.attrs`` lists them). Features are scaled
with a :class:`Scaler` fit on the train span's rows only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from trading_assets.labels import TARGET, forward_labels
from trading_assets.provenance import Provenance
from trading_assets.splits import DEFAULT_SPLIT, Split, chronological_split
from trading_assets.training.scaling import Scaler


@dataclass
class SequenceData:
    """Scaled features as one (rows, features) tensor plus sample end positions per span."""

    features: torch.Tensor  # (rows, n_features) float32, scaled
    labels: torch.Tensor  # (rows,) float32: label of the sample ending at each row (NaN if none)
    last_return: torch.Tensor  # (rows,) float32: the latest label already realised at the row (AR(1) input)
    seq_len: int
    horizon: int
    split: Split
    train_ends: torch.Tensor
    validation_ends: torch.Tensor
    test_ends: torch.Tensor
    feature_columns: list[str]
    index: pd.DatetimeIndex
    scaler: Scaler

    def windows(self) -> torch.Tensor:
        """All windows as a strided view, (rows - seq_len + 1, seq_len, n_features); no copy."""
        return self.features.unfold(0, self.seq_len, 1).transpose(1, 2)

    def batch(self, ends: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows and labels of the samples ending at ``ends`` (one gather per batch)."""
        return self.windows()[ends - (self.seq_len - 1)], self.labels[ends]

    def to(self, device: torch.device) -> SequenceData:
        pin = device.type == "cuda"
        move = (lambda t: t.pin_memory().to(device, non_blocking=True)) if pin else (lambda t: t.to(device))
        return SequenceData(
            move(self.features),
            move(self.labels),
            move(self.last_return),
            self.seq_len,
            self.horizon,
            self.split,
            self.train_ends.to(device),
            self.validation_ends.to(device),
            self.test_ends.to(device),
            self.feature_columns,
            self.index,
            self.scaler,
        )


def _ends(
    span: range,
    seq_len: int,
    horizon: int,
    window_from_history: bool = False,
    breaks: np.ndarray | None = None,
    entry_lag: int = 1,
    rows: int | None = None,
) -> torch.Tensor:
    """Sample ends in ``span``; with ``breaks`` (per row: 1 where a break lies just before the row, cumulated),
    only samples whose rows ``end - seq_len + 1 .. end + entry_lag + horizon`` hold no break.

    A training span keeps the prices its labels read inside it; a test span (``window_from_history``)
    forecasts every row of the span whose label exists in the frame of ``rows`` rows, its window reaching
    back into the history before the span.
    """
    reach = entry_lag + horizon
    if window_from_history:
        first = max(span.start, seq_len - 1)
        stop = min(span.stop, (rows if rows is not None else span.stop) - horizon + 1)
    else:
        first, stop = span.start + seq_len - 1, span.stop - reach + 1
    ends = torch.arange(first, max(first, stop), dtype=torch.long)
    if breaks is None or not len(ends) or breaks[-1] == 0:
        return ends
    e = ends.numpy()
    last = np.minimum(e + reach, len(breaks) - 1)
    return ends[torch.from_numpy(breaks[last] == breaks[e - seq_len + 1])]


def break_counts(frame: pd.DataFrame) -> np.ndarray:
    """Cumulated count of breaks before each row of ``frame`` (from its provenance)."""
    marks = np.zeros(len(frame), dtype=np.int64)
    positions = frame.index.get_indexer(Provenance.of(frame).break_times())
    marks[positions[positions > 0]] = 1
    return np.cumsum(marks)


def build_sequences(
    frame: pd.DataFrame,
    seq_len: int,
    horizon: int = 1,
    train_fraction: float = DEFAULT_SPLIT.train_fraction,
    validation_fraction: float = DEFAULT_SPLIT.validation_fraction,
    gap: int | None = None,
    split: Split | None = None,
    test_windows_from_history: bool = False,
    entry_lag: int = 1,
) -> SequenceData:
    """Scaled windows over ``frame`` (features + ``target``) and the chronological split of their samples.

    ``split`` overrides the fractions (walk-forward folds); with ``test_windows_from_history`` a
    test sample's window may start before the test span (its inputs are the past), so every test
    row with a label gets a sample.
    """
    if seq_len < 1 or horizon < 1:
        raise ValueError(f"seq_len ({seq_len}) and horizon ({horizon}) must be positive")
    min_gap = seq_len + entry_lag + horizon - 1
    gap = min_gap if gap is None else gap
    if gap < min_gap:
        raise ValueError(f"split gap {gap} < seq_len + entry_lag + horizon - 1 = {min_gap}: spans would share rows")
    columns = [c for c in frame.columns if c != TARGET]
    raw = frame[columns].to_numpy(dtype=np.float64)
    labels, last = forward_labels(frame[TARGET].to_numpy(dtype=np.float64), horizon, entry_lag)
    n = len(frame)
    split = split or chronological_split(n, train_fraction, validation_fraction, gap)
    breaks = break_counts(frame)
    ends = [
        _ends(split.train, seq_len, horizon, breaks=breaks, entry_lag=entry_lag),
        _ends(split.validation, seq_len, horizon, breaks=breaks, entry_lag=entry_lag),
        _ends(split.test, seq_len, horizon, test_windows_from_history, breaks, entry_lag, n),
    ]
    if min(len(e) for e in ends) == 0:
        raise ValueError(
            f"{n} rows give an empty span for seq_len {seq_len}, horizon {horizon}, gap {gap} "
            f"(train {len(ends[0])}, validation {len(ends[1])}, test {len(ends[2])} samples)"
        )
    train_rows = raw[split.train.start : split.train.stop]
    scaler = Scaler.fit(
        train_rows, columns, frame.index[split.train.start].isoformat(), frame.index[split.train.stop - 1].isoformat()
    )
    return SequenceData(
        torch.from_numpy(np.ascontiguousarray(scaler.transform(raw, columns))),
        torch.from_numpy(labels.astype(np.float32)),
        torch.from_numpy(last.astype(np.float32)),
        seq_len,
        horizon,
        split,
        *ends,
        columns,
        frame.index,
        scaler,
    )


def required_rows(
    seq_len: int, horizon: int, train_fraction: float, validation_fraction: float, gap: int, entry_lag: int = 1
) -> int:
    """The fewest feature rows for which the chronological split leaves a sample in every span."""
    n = 2 * gap + 3
    while True:
        try:
            split = chronological_split(n, train_fraction, validation_fraction, gap)
        except ValueError:
            n += 1
            continue
        if all(
            len(_ends(s, seq_len, horizon, entry_lag=entry_lag)) for s in (split.train, split.validation, split.test)
        ):
            return n
        n += 1
