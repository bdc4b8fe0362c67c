"""Sliding windows over a features frame, without copying per sample, split chronologically.

A sample ending at row t sees feature rows ``t - seq_len + 1 .. t`` and predicts the log return
over the next ``horizon`` candles, ``sum(target[t .. t + horizon - 1])`` (``target[t]`` is the
return from t to t + 1). A sample belongs to a span when its window *and* its label lie inside
the span; with a split gap of at least ``seq_len + horizon`` rows no sample of one span touches
rows of another.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from trading_assets.features import TARGET
from trading_assets.splits import Split, chronological_split


@dataclass
class SequenceData:
    """Features as one (rows, features) tensor plus sample end positions per span."""

    features: torch.Tensor  # (rows, n_features) float32
    labels: torch.Tensor  # (rows,) float32: label of the sample ending at each row (NaN if none)
    last_return: torch.Tensor  # (rows,) float32: return over the ``horizon`` candles up to the row
    seq_len: int
    horizon: int
    split: Split
    train_ends: torch.Tensor
    validation_ends: torch.Tensor
    test_ends: torch.Tensor
    feature_columns: list[str]
    index: pd.DatetimeIndex

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
        )


def _ends(span: range, seq_len: int, horizon: int) -> torch.Tensor:
    return torch.arange(span.start + seq_len - 1, span.stop - horizon + 1, dtype=torch.long)


def build_sequences(
    frame: pd.DataFrame,
    seq_len: int,
    horizon: int = 1,
    train_fraction: float = 0.7,
    validation_fraction: float = 0.15,
    gap: int | None = None,
) -> SequenceData:
    """Windows over ``frame`` (features + ``target``) and the chronological split of their samples."""
    if seq_len < 1 or horizon < 1:
        raise ValueError(f"seq_len ({seq_len}) and horizon ({horizon}) must be positive")
    gap = seq_len + horizon if gap is None else gap
    if gap < seq_len + horizon - 1:
        raise ValueError(f"split gap {gap} < seq_len + horizon - 1 = {seq_len + horizon - 1}: spans would share rows")
    columns = [c for c in frame.columns if c != TARGET]
    values = np.ascontiguousarray(frame[columns].to_numpy(dtype=np.float32))
    target = frame[TARGET].to_numpy(dtype=np.float64)
    csum = np.concatenate([[0.0], np.cumsum(target)])
    n = len(frame)
    labels = np.full(n, np.nan)
    labels[: n - horizon + 1] = csum[horizon:] - csum[: n - horizon + 1]  # sum(target[t .. t+h-1])
    last = np.full(n, np.nan)
    last[horizon:] = csum[horizon:n] - csum[: n - horizon]  # sum(target[t-h .. t-1]) = return into t
    split = chronological_split(n, train_fraction, validation_fraction, gap)
    ends = [_ends(span, seq_len, horizon) for span in (split.train, split.validation, split.test)]
    if min(len(e) for e in ends) == 0:
        raise ValueError(f"{n} rows give an empty span for seq_len {seq_len}, horizon {horizon}, gap {gap}")
    return SequenceData(
        torch.from_numpy(values),
        torch.from_numpy(labels.astype(np.float32)),
        torch.from_numpy(last.astype(np.float32)),
        seq_len,
        horizon,
        split,
        *ends,
        columns,
        frame.index,
    )
