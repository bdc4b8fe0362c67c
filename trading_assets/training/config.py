"""Model, training and split settings (no torch import, so configuration stays cheap to load).

Each default is defined once, here; the Dagster config classes are built from these dataclasses
by field name (see :mod:`trading_assets.defs.training`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from trading_assets.splits import SplitConfig


@dataclass(frozen=True)
class Param:
    """One tunable setting: a range of a ModelConfig or TrainConfig field (log-uniform when ``log``; integers
    in ``step``s when ``integer``)."""

    low: float
    high: float
    log: bool = False
    integer: bool = False
    step: int = 1


@dataclass(frozen=True)
class ModelEntry:
    description: str
    builder: str  # "module:function" taking (n_features, ModelConfig) and returning an nn.Module
    search_space: dict[str, Param] = field(default_factory=dict)  # what the tuning asset samples


_TRAINING = {"learning_rate": Param(1e-4, 1e-2, log=True), "weight_decay": Param(1e-6, 1e-2, log=True)}
_RECURRENT = {
    "hidden_size": Param(8, 128, log=True, integer=True),
    "num_layers": Param(1, 3, integer=True),
    "dropout": Param(0.0, 0.5),
    **_TRAINING,
}


# The one declaration of the architectures (torch-free, so Dagster config and the CLI read it
# cheaply): the config's model choice, the walk-forward model list and build_model come from it.
MODELS: dict[str, ModelEntry] = {
    "bilstm": ModelEntry("bidirectional LSTM over the window", "trading_assets.training.models:bilstm", _RECURRENT),
    "lstm": ModelEntry("LSTM", "trading_assets.training.models:lstm", _RECURRENT),
    "gru": ModelEntry("GRU", "trading_assets.training.models:gru", _RECURRENT),
    "transformer": ModelEntry(
        "causal Transformer encoder",
        "trading_assets.training.models:transformer",
        {  # hidden_size in steps of 16: a multiple of the 4 heads
            "hidden_size": Param(16, 128, integer=True, step=16),
            "num_layers": Param(1, 3, integer=True),
            "dropout": Param(0.0, 0.3),
            **_TRAINING,
        },
    ),
    "timesnet": ModelEntry(
        "TimesNet: FFT period discovery and 2-D inception blocks (Wu et al., ICLR 2023)",
        "trading_assets.training.models:timesnet",
        {
            "hidden_size": Param(8, 64, log=True, integer=True),
            "num_layers": Param(1, 3, integer=True),
            "top_k": Param(1, 4, integer=True),
            "dropout": Param(0.0, 0.3),
            **_TRAINING,
        },
    ),
    "lightgbm": ModelEntry(
        "LightGBM gradient-boosted trees on the window's last row (the tabular baseline)",
        "trading_assets.training.models:lightgbm",
        {"num_leaves": Param(4, 128, log=True, integer=True), "max_trees": Param(50, 1000, log=True, integer=True)},
    ),
    "linear": ModelEntry(
        "closed-form ridge regression on the window's last row (the floor)", "trading_assets.training.models:linear"
    ),
}


def known_model(name: str) -> str:
    """``name`` if it is registered in :data:`MODELS` now, else a ValueError listing the choices."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")
    return name


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "bilstm"  # a key of MODELS
    hidden_size: int = 32
    num_layers: int = 1
    dropout: float = 0.1
    num_heads: int = 4  # transformer only
    top_k: int = 2  # timesnet only: periods per block
    num_leaves: int = 31  # lightgbm only: leaves per tree
    max_trees: int = 500  # lightgbm only: a cap; early stopping on the validation span picks the number


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 100  # a cap: training runs until early stopping stops it
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 3  # epochs without a validation improvement of min_delta before stopping
    min_delta: float = 1e-3  # relative improvement of the validation loss that counts
    grad_clip: float = 1.0
    seed: int = 42
    device: str = "auto"
    amp: bool = True  # bf16 autocast when on CUDA


@dataclass(frozen=True)
class SequenceConfig:
    seq_len: int = 32  # candles per input window
    horizon: int = 1  # the trade's holding period in bars (the execution model's; see trading_assets.execution)
    entry_lag: int = 1  # bars from the decision to the fill (the execution model's delay_bars)

    @property
    def min_gap(self) -> int:
        """Rows between spans so that no window or label of one span reaches into the next."""
        return self.seq_len + self.entry_lag + self.horizon - 1


@dataclass(frozen=True)
class ModelSpec:
    """Everything that defines one trained model, apart from its data."""

    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    sequence: SequenceConfig = SequenceConfig()
    split: SplitConfig = SplitConfig()

    @property
    def gap(self) -> int:
        return self.sequence.min_gap if self.split.gap is None else self.split.gap

    def params(self) -> dict[str, Any]:
        """Flat parameters for tracking (``model.hidden_size``, ``train.seed``, ``seq_len`` ...)."""
        out: dict[str, Any] = {}
        for prefix, part in (("model", self.model), ("train", self.train)):
            out.update({f"{prefix}.{f.name}": getattr(part, f.name) for f in fields(part)})
        out.update({f.name: getattr(self.sequence, f.name) for f in fields(self.sequence)})
        out.update({f"split.{f.name}": getattr(self.split, f.name) for f in fields(self.split)})
        out["split.gap"] = self.gap
        return out


# Named presets: the values they set, applied where the user did not set a value explicitly.
PRESETS: dict[str, dict[str, Any]] = {
    "research": {  # the research team's bidirectional LSTM
        "kind": "bilstm",
        "hidden_size": 1024,
        "num_layers": 4,
        "dropout": 0.2,
        "learning_rate": 5e-4,
        "batch_size": 128,
    },
}


def build_spec(values: dict[str, Any], explicit: set[str] | None = None, preset: str | None = None) -> ModelSpec:
    """A :class:`ModelSpec` from flat field values (by name); a preset fills the fields not in ``explicit``."""
    values = dict(values)
    if preset:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
        explicit = set(values) if explicit is None else explicit
        values.update({k: v for k, v in PRESETS[preset].items() if k not in explicit})
    if "model" in values and "kind" not in values:
        values["kind"] = values.pop("model")
    parts = {}
    for name, cls in (("model", ModelConfig), ("train", TrainConfig), ("sequence", SequenceConfig)):
        parts[name] = cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})
    split_names = {"train_fraction": "train_fraction", "validation_fraction": "validation_fraction", "split_gap": "gap"}
    parts["split"] = SplitConfig(**{dst: values[src] for src, dst in split_names.items() if src in values})
    return ModelSpec(**parts)


def with_kind(spec: ModelSpec, kind: str) -> ModelSpec:
    """The same spec with another architecture."""
    return replace(spec, model=replace(spec.model, kind=kind))


def with_params(spec: ModelSpec, params: dict[str, Any]) -> ModelSpec:
    """The same spec with ``params`` (ModelConfig and TrainConfig fields by name, e.g. tuned ones) set."""
    unknown = set(params) - {f.name for cls in (ModelConfig, TrainConfig) for f in fields(cls)}
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}: not fields of ModelConfig or TrainConfig")
    model = replace(spec.model, **{k: v for k, v in params.items() if k in ModelConfig.__dataclass_fields__})
    train = replace(spec.train, **{k: v for k, v in params.items() if k in TrainConfig.__dataclass_fields__})
    return replace(spec, model=model, train=train)
