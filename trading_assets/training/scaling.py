"""Z-score scaling fit on a model's training span; travels inside the model bundle as plain numbers."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Scaler:
    """Per-column mean/std and the span (ISO timestamps) they were fit on."""

    columns: list[str]
    mean: list[float]
    std: list[float]
    fit_start: str
    fit_end: str

    @classmethod
    def fit(cls, values: np.ndarray, columns: list[str], fit_start: str, fit_end: str) -> Scaler:
        """Fit on ``values`` (the training rows only)."""
        if len(values) == 0:
            raise ValueError("cannot fit a scaler on no rows")
        span = values.astype("float64")
        std = span.std(axis=0)
        std = np.where(std > 0, std, 1.0)  # a constant column stays 0 after centring
        return cls(list(columns), span.mean(axis=0).tolist(), std.tolist(), fit_start, fit_end)

    def transform(self, values: np.ndarray, columns: list[str]) -> np.ndarray:
        """Scaled float32 copy of ``values`` (rows x ``columns``); the columns must be the ones fit."""
        if list(columns) != self.columns:
            raise ValueError(f"scaler fit on {self.columns}, asked to scale {list(columns)}")
        out = (values.astype("float64") - np.asarray(self.mean)) / np.asarray(self.std)
        return out.astype("float32")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scaler:
        return cls(**data)
