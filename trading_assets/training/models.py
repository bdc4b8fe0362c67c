"""Sequence regressors: (batch, seq_len, n_features) -> (batch,) predicted return (standardised).

To add an architecture: write a builder ``(n_features, ModelConfig) -> nn.Module`` (here or in
any module) and declare it once in :data:`trading_assets.training.config.MODELS`.
"""

from __future__ import annotations

import importlib
import math

import torch
from torch import nn

from trading_assets.training.config import MODELS, ModelConfig, known_model


class RecurrentRegressor(nn.Module):
    """LSTM / GRU (optionally bidirectional); the last step's hidden state feeds a linear head."""

    def __init__(self, n_features: int, config: ModelConfig, cell: type[nn.Module], bidirectional: bool) -> None:
        super().__init__()
        self.rnn = cell(
            n_features,
            config.hidden_size,
            config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            bidirectional=bidirectional,
        )
        self.head = nn.Sequential(
            nn.Dropout(config.dropout), nn.Linear(config.hidden_size * (2 if bidirectional else 1), 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1]).squeeze(-1)


class TransformerRegressor(nn.Module):
    """Transformer encoder with a causal mask and learned positions; reads the last position."""

    def __init__(self, n_features: int, config: ModelConfig, max_len: int = 4096) -> None:
        super().__init__()
        d_model = config.hidden_size
        if d_model % config.num_heads:
            raise ValueError(f"hidden_size {d_model} must be divisible by num_heads {config.num_heads}")
        self.embed = nn.Linear(n_features, d_model)
        self.position = nn.Parameter(torch.randn(max_len, d_model) / math.sqrt(d_model))
        layer = nn.TransformerEncoderLayer(d_model, config.num_heads, 4 * d_model, config.dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.num_layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        h = self.embed(x) + self.position[:length]
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=x.device, dtype=h.dtype)
        return self.head(self.encoder(h, mask=mask, is_causal=True)[:, -1]).squeeze(-1)


class LinearRegressor(nn.Module):
    """Ridge regression on the last row of the window: the floor any deep model must beat.

    ``closed_form``: the trainer solves it exactly (:func:`trading_assets.training.trainer.fit_ridge`).
    """

    closed_form = True

    def __init__(self, n_features: int, config: ModelConfig) -> None:
        super().__init__()
        self.linear = nn.Linear(n_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x[:, -1]).squeeze(-1)


def bilstm(n_features: int, config: ModelConfig) -> nn.Module:
    return RecurrentRegressor(n_features, config, nn.LSTM, bidirectional=True)


def lstm(n_features: int, config: ModelConfig) -> nn.Module:
    return RecurrentRegressor(n_features, config, nn.LSTM, bidirectional=False)


def gru(n_features: int, config: ModelConfig) -> nn.Module:
    return RecurrentRegressor(n_features, config, nn.GRU, bidirectional=False)


def transformer(n_features: int, config: ModelConfig) -> nn.Module:
    return TransformerRegressor(n_features, config)


def linear(n_features: int, config: ModelConfig) -> nn.Module:
    return LinearRegressor(n_features, config)


def build_model(n_features: int, config: ModelConfig) -> nn.Module:
    """The network of ``config.kind``, built by its :data:`~trading_assets.training.config.MODELS` entry."""
    module, function = MODELS[known_model(config.kind)].builder.split(":")
    return getattr(importlib.import_module(module), function)(n_features, config)
