"""Sequence regressors: (batch, seq_len, n_features) -> (batch,) predicted return (standardised).

To add an architecture: write a builder ``(n_features, ModelConfig) -> nn.Module`` (here or in
any module) and declare it once in :data:`trading_assets.training.config.MODELS`.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import numpy as np
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
        if length > len(self.position):
            raise ValueError(f"transformer: windows of {length} rows, more than its {len(self.position)} positions")
        h = self.embed(x) + self.position[:length]
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=x.device, dtype=h.dtype)
        return self.head(self.encoder(h, mask=mask, is_causal=True)[:, -1]).squeeze(-1)


class LinearRegressor(nn.Module):
    """Ridge regression on the last row of the window: the floor any deep model must beat.

    It fits itself: the trainer solves it exactly (:func:`trading_assets.training.trainer.fit_ridge`).
    """

    def __init__(self, n_features: int, config: ModelConfig) -> None:
        super().__init__()
        self.linear = nn.Linear(n_features, 1)

    def fit_direct(self, data, mean: float, std: float, seed: int) -> tuple[float, str]:
        from trading_assets.training.trainer import fit_ridge

        return fit_ridge(self, data, mean, std)[1], "closed_form"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x[:, -1]).squeeze(-1)


class InceptionBlock(nn.Module):
    """Parallel 2-D convolutions with kernels 1, 3, 5, ... (same padding), averaged (TimesNet's Inception block)."""

    def __init__(self, in_channels: int, out_channels: int, num_kernels: int = 3) -> None:
        super().__init__()
        self.kernels = nn.ModuleList(
            nn.Conv2d(in_channels, out_channels, kernel_size=2 * i + 1, padding=i) for i in range(num_kernels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([kernel(x) for kernel in self.kernels], dim=-1).mean(-1)


class TimesBlock(nn.Module):
    """One TimesNet block: the window's dominant periods from its FFT amplitude, each period's 1-D series
    folded into a 2-D (cycles x phase) map, 2-D inception convolutions over it, the results unfolded and
    summed with softmax weights of each sample's amplitude at those periods, plus a residual.

    The periods are chosen from the amplitude spectrum averaged over training batches (a running average kept
    as a buffer, as batch norm keeps its statistics), not from the batch at hand: in eval mode a window's
    forecast does not depend on which other windows share its batch, so serving one bar gives what a batch
    gave. The reference implementation chooses them from each batch.
    """

    def __init__(self, d_model: int, top_k: int, momentum: float = 0.1) -> None:
        super().__init__()
        self.top_k, self.momentum = top_k, momentum
        self.conv = nn.Sequential(InceptionBlock(d_model, 2 * d_model), nn.GELU(), InceptionBlock(2 * d_model, d_model))
        self.register_buffer("amplitude", torch.zeros(0))  # per frequency, sized by the first window seen

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        if prefix + "amplitude" in state_dict:  # its length is the trained windows' frequency count
            self.amplitude = torch.zeros_like(state_dict[prefix + "amplitude"])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _periods(self, spectrum: torch.Tensor) -> list[int]:
        amplitude = spectrum.mean(dim=(0, 2)).detach()
        if self.training or self.amplitude.numel() != amplitude.numel():
            if self.amplitude.numel() != amplitude.numel():
                self.amplitude = amplitude.clone()
            else:
                self.amplitude.mul_(1 - self.momentum).add_(self.momentum * amplitude)
        reference = self.amplitude.clone()
        reference[0] = 0  # the mean is not a period
        k = min(self.top_k, reference.numel() - 1)
        frequencies = torch.topk(reference, k).indices.clamp(min=1).tolist()
        length = (spectrum.shape[1] - 1) * 2
        return [max(length // f, 1) for f in frequencies]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, channels = x.shape
        spectrum = torch.fft.rfft(x.float(), dim=1).abs()  # float32: the FFT has no bf16 kernel
        if spectrum.shape[1] < 2:
            return x
        periods = self._periods(spectrum)
        outputs = []
        for period in periods:
            folded_length = -(-length // period) * period
            padded = torch.cat([x, x.new_zeros(batch, folded_length - length, channels)], dim=1)
            grid = padded.reshape(batch, folded_length // period, period, channels).permute(0, 3, 1, 2)
            out = self.conv(grid).permute(0, 2, 3, 1).reshape(batch, folded_length, channels)
            outputs.append(out[:, :length])
        frequencies = [max(length // p, 1) for p in periods]
        weights = torch.softmax(spectrum.mean(-1)[:, frequencies], dim=1).to(x.dtype)  # per sample
        return x + (torch.stack(outputs, dim=-1) * weights[:, None, None, :]).sum(-1)


class TimesNetRegressor(nn.Module):
    """TimesNet (Wu et al., "TimesNet: Temporal 2D-Variation Modeling for General Time Series Analysis",
    ICLR 2023), written from the paper: a linear embedding with learned positions, ``num_layers`` TimesBlocks
    with layer norm, and a regression head on the last step and the window's mean (the paper's
    classification head flattens the window; this one does not tie the network to one ``seq_len``)."""

    def __init__(self, n_features: int, config: ModelConfig, max_len: int = 4096) -> None:
        super().__init__()
        d_model = config.hidden_size
        self.embed = nn.Linear(n_features, d_model)
        self.position = nn.Parameter(torch.randn(max_len, d_model) / math.sqrt(d_model))
        self.blocks = nn.ModuleList(TimesBlock(d_model, config.top_k) for _ in range(config.num_layers))
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(2 * d_model, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > len(self.position):
            raise ValueError(f"timesnet: windows of {x.shape[1]} rows, more than its {len(self.position)} positions")
        h = self.dropout(self.embed(x) + self.position[: x.shape[1]])
        for block in self.blocks:
            h = self.norm(block(h))
        h = self.dropout(torch.nn.functional.gelu(h))
        return self.head(torch.cat([h[:, -1], h.mean(dim=1)], dim=-1)).squeeze(-1)


class GradientBoostedRegressor(nn.Module):
    """LightGBM gradient-boosted trees on the window's last row: the tabular baseline deep models must beat
    (Qlib's Alpha158 benchmarks). It fits itself (:meth:`fit_direct`: boosting with early stopping on the
    validation span, deterministic) instead of the gradient loop; its trees are saved in LightGBM's own text
    model format (``lightgbm.txt`` in the bundle: no pickle) and predicted on the CPU."""

    FILE = "lightgbm.txt"
    MAX_FILE_BYTES = 1 << 30

    def __init__(self, n_features: int, config: ModelConfig) -> None:
        super().__init__()
        self.n_features, self.config = n_features, config
        self.booster = None

    def fit_direct(self, data, mean: float, std: float, seed: int) -> tuple[float, str]:
        """Boost on the train span, stop when the validation span has not improved for 50 trees; returns the
        validation MSE in return units and the stop reason."""
        import lightgbm

        def rows(
            ends: torch.Tensor,
        ) -> tuple[np.ndarray, np.ndarray]:  # the data may sit on a GPU: trees fit on the CPU
            x, y = data.features[ends].double(), (data.labels[ends].double() - mean) / std
            return x.cpu().numpy(), y.cpu().numpy()

        (x, y), (xv, yv) = rows(data.train_ends), rows(data.validation_ends)
        params = {
            "objective": "regression",
            "learning_rate": 0.05,
            "num_leaves": self.config.num_leaves,
            "min_data_in_leaf": 50,
            "feature_fraction": 0.8,
            "seed": seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": 1,
            "verbose": -1,
        }
        train_set = lightgbm.Dataset(x, y, free_raw_data=True)
        valid_set = lightgbm.Dataset(xv, yv, reference=train_set)
        self.booster = lightgbm.train(
            params,
            train_set,
            num_boost_round=self.config.max_trees,
            valid_sets=[valid_set],
            callbacks=[lightgbm.early_stopping(50, verbose=False)],
        )
        pred = self.booster.predict(xv, num_iteration=self.booster.best_iteration) * std + mean
        val = float(np.mean((pred - (yv * std + mean)) ** 2))
        return val, "early_stopping" if self.booster.best_iteration < self.config.max_trees else "tree_cap"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.booster is None:
            raise RuntimeError("lightgbm: the trees are not fitted or loaded")
        rows = x[:, -1].detach().float().cpu().numpy().astype(np.float64)
        pred = self.booster.predict(rows, num_iteration=self.booster.best_iteration or None)
        return torch.as_tensor(pred, dtype=torch.float32, device=x.device)

    def save_files(self, directory: Path) -> None:
        """The trees as LightGBM's text model (its best iteration)."""
        self.booster.save_model(str(directory / self.FILE), num_iteration=self.booster.best_iteration or None)

    def load_files(self, directory: Path) -> None:
        import lightgbm

        path = directory / self.FILE
        size = path.stat().st_size
        if size > self.MAX_FILE_BYTES:
            raise ValueError(f"{path}: {size:,} bytes, more than the {self.MAX_FILE_BYTES:,} a bundle may hold")
        self.booster = lightgbm.Booster(model_file=str(path))
        if self.booster.num_feature() != self.n_features:
            raise ValueError(f"{path}: trees over {self.booster.num_feature()} features, expected {self.n_features}")


def bilstm(n_features: int, config: ModelConfig) -> nn.Module:
    return RecurrentRegressor(n_features, config, nn.LSTM, bidirectional=True)


def lstm(n_features: int, config: ModelConfig) -> nn.Module:
    return RecurrentRegressor(n_features, config, nn.LSTM, bidirectional=False)


def gru(n_features: int, config: ModelConfig) -> nn.Module:
    return RecurrentRegressor(n_features, config, nn.GRU, bidirectional=False)


def transformer(n_features: int, config: ModelConfig) -> nn.Module:
    return TransformerRegressor(n_features, config)


def timesnet(n_features: int, config: ModelConfig) -> nn.Module:
    return TimesNetRegressor(n_features, config)


def lightgbm(n_features: int, config: ModelConfig) -> nn.Module:
    return GradientBoostedRegressor(n_features, config)


def linear(n_features: int, config: ModelConfig) -> nn.Module:
    return LinearRegressor(n_features, config)


def build_model(n_features: int, config: ModelConfig) -> nn.Module:
    """The network of ``config.kind``, built by its :data:`~trading_assets.training.config.MODELS` entry."""
    module, function = MODELS[known_model(config.kind)].builder.split(":")
    return getattr(importlib.import_module(module), function)(n_features, config)
