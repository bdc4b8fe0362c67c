"""The model bundle: everything a trained model needs to serve, stored without pickled objects.

A bundle directory holds ``weights.pt`` (the network's ``state_dict``, loaded with
``torch.load(weights_only=True)``, which refuses arbitrary objects) and ``bundle.json`` (the
architecture, the feature columns, the scaler fit on the training span, the window length and
horizon, the label's standardisation). :meth:`ModelBundle.predict` takes the ``features`` asset's
frame and returns one forecast per row, aligned to the bar it forecasts from (NaN until a full
window exists). Only numpy, pandas and torch are imported: serving needs nothing else.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from trading_assets.training.config import ModelConfig
from trading_assets.training.models import build_model
from trading_assets.training.scaling import Scaler

WEIGHTS = "weights.pt"
CONFIG = "bundle.json"
FORMAT_VERSION = 1
MAX_CONFIG_BYTES = 1 << 20  # the JSON of a real bundle is a few kB
MAX_WEIGHTS_BYTES = 4 << 30
_LIMITS = {"hidden_size": 16_384, "num_layers": 64, "num_heads": 256, "top_k": 64}  # ModelConfig fields
MAX_FEATURES, MAX_SEQ_LEN = 4096, 100_000


def check_bounds(config: dict[str, Any], model_config: ModelConfig, weights_bytes: int, where: Path) -> None:
    """Refuse a bundle whose declared shape is out of range, or whose network would hold more parameters than
    its weights file could fill, before any tensor is allocated (the network is sized on the meta device)."""
    problems = [
        f"{name} {getattr(model_config, name)!r} not in 1..{limit}"
        for name, limit in _LIMITS.items()
        if not (isinstance(getattr(model_config, name), int) and 1 <= getattr(model_config, name) <= limit)
    ]
    columns, seq_len = config.get("feature_columns"), config.get("seq_len")
    if not (isinstance(columns, list) and 1 <= len(columns) <= MAX_FEATURES):
        problems.append(f"feature_columns: 1..{MAX_FEATURES} names expected")
    if not (isinstance(seq_len, int) and 1 <= seq_len <= MAX_SEQ_LEN):
        problems.append(f"seq_len {seq_len!r} not in 1..{MAX_SEQ_LEN}")
    if not problems:
        with torch.device("meta"):
            parameters = sum(p.numel() for p in build_model(len(columns), model_config).parameters())
        if parameters * 2 > weights_bytes + (1 << 20):  # at least 2 bytes per parameter are stored
            problems.append(f"{parameters:,} parameters cannot come from a {weights_bytes:,}-byte weights file")
    if problems:
        raise ValueError(f"{where}: not a bundle this code loads: {'; '.join(problems)}")


@dataclass
class ModelBundle:
    network: nn.Module
    model_config: ModelConfig
    feature_columns: list[str]
    scaler: Scaler
    seq_len: int
    horizon: int
    target_mean: float
    target_std: float
    info: dict[str, Any] = field(default_factory=dict)  # provenance: symbol, timeframe, feature set, spans

    @torch.no_grad()
    def predict(self, frame: pd.DataFrame, batch_size: int = 1024) -> pd.Series:
        """Forecast of the ``horizon``-candle log return from every row of ``frame`` with a full window."""
        missing = [c for c in self.feature_columns if c not in frame.columns]
        if missing:
            raise ValueError(f"features frame lacks the model's columns {missing}")
        values = self.scaler.transform(frame[self.feature_columns].to_numpy(dtype=np.float64), self.feature_columns)
        out = np.full(len(frame), np.nan, dtype=np.float64)
        if len(values) >= self.seq_len:
            windows = torch.from_numpy(np.ascontiguousarray(values)).unfold(0, self.seq_len, 1).transpose(1, 2)
            model = self.network.to("cpu").eval()
            preds = torch.cat([model(windows[i : i + batch_size]) for i in range(0, len(windows), batch_size)])
            out[self.seq_len - 1 :] = preds.double().numpy() * self.target_std + self.target_mean
        return pd.Series(out, index=frame.index, name="prediction")

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.detach().cpu() for k, v in self.network.state_dict().items()}, directory / WEIGHTS)
        if hasattr(self.network, "save_files"):  # a model kept in its own format beside the tensors (lightgbm)
            self.network.save_files(directory)
        config = {
            "format_version": FORMAT_VERSION,
            "model_config": asdict(self.model_config),
            "feature_columns": self.feature_columns,
            "scaler": self.scaler.to_dict(),
            "seq_len": self.seq_len,
            "horizon": self.horizon,
            "target_mean": self.target_mean,
            "target_std": self.target_std,
            "info": self.info,
        }
        (directory / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> ModelBundle:
        """Read a bundle; its sizes are checked before anything is allocated (see :func:`check_bounds`)."""
        directory = Path(directory)
        for name, limit in ((CONFIG, MAX_CONFIG_BYTES), (WEIGHTS, MAX_WEIGHTS_BYTES)):
            size = (directory / name).stat().st_size
            if size > limit:
                raise ValueError(f"{directory / name}: {size:,} bytes, more than the {limit:,} a bundle may hold")
        config = json.loads((directory / CONFIG).read_text())
        if config.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{directory}: bundle format {config.get('format_version')}, expected {FORMAT_VERSION}")
        model_config = ModelConfig(**config["model_config"])
        check_bounds(config, model_config, (directory / WEIGHTS).stat().st_size, directory)
        network = build_model(len(config["feature_columns"]), model_config)
        network.load_state_dict(torch.load(directory / WEIGHTS, map_location="cpu", weights_only=True))
        if hasattr(network, "load_files"):
            network.load_files(directory)
        return cls(
            network.eval(),
            model_config,
            config["feature_columns"],
            Scaler.from_dict(config["scaler"]),
            config["seq_len"],
            config["horizon"],
            config["target_mean"],
            config["target_std"],
            config.get("info", {}),
        )
