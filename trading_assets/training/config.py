"""Model and training settings (no torch import, so configuration stays cheap to load)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ModelKind = Literal["bilstm", "lstm", "gru", "transformer"]


@dataclass(frozen=True)
class ModelConfig:
    kind: ModelKind = "bilstm"
    hidden_size: int = 32
    num_layers: int = 1
    dropout: float = 0.1
    num_heads: int = 4  # transformer only


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 3
    grad_clip: float = 1.0
    seed: int = 42
    device: str = "auto"
    amp: bool = True  # bf16 autocast when on CUDA


# The research team's bidirectional LSTM.
PRESETS: dict[str, tuple[ModelConfig, TrainConfig]] = {
    "research": (
        ModelConfig("bilstm", hidden_size=1024, num_layers=4, dropout=0.2),
        TrainConfig(learning_rate=5e-4, batch_size=128),
    ),
}
