"""trained_model: a thin adapter around trading_assets.training.pipeline.train_and_track.

No `from __future__ import annotations` here: Dagster reads the config and resource annotations.
"""

from collections.abc import Callable
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import pandas as pd
from dagster import (
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    DagsterInstance,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field, field_validator

from trading_assets.defs.jobs import GPU_K8S_CONFIG
from trading_assets.defs.partition_checks import check_result
from trading_assets.defs.partitions import market_partitions, partition_of
from trading_assets.defs.resources import ExecutionResource, Locations, MlflowResource
from trading_assets.defs.versions import CODE_VERSION
from trading_assets.features import DEFAULT_FEATURE_SET
from trading_assets.partition import Partition
from trading_assets.provenance import Provenance
from trading_assets.timeframes import DEVICE_PATTERN, NAME_PATTERN
from trading_assets.training.config import (
    PRESETS,
    ModelConfig,
    ModelSpec,
    SequenceConfig,
    SplitConfig,
    TrainConfig,
    build_spec,
    known_model,
    with_params,
)

if TYPE_CHECKING:
    from trading_assets.execution import Execution
    from trading_assets.training.pipeline import TrainOutcome

GPU_POOL = "gpu"
_MODEL, _TRAIN, _SEQ, _SPLIT = ModelConfig(), TrainConfig(), SequenceConfig(), SplitConfig()


def dagster_run_alive(instance: DagsterInstance) -> Callable[[str], bool]:
    """Whether a Dagster run (by id) exists and is not finished: the MLflow runs of others are stale."""

    def alive(run_id: str) -> bool:
        run = instance.get_run_by_id(run_id) if run_id else None
        return run is not None and not run.is_finished

    return alive


class ModelSettings(Config):
    """Network, sequence, split and training settings; defaults from trading_assets.training.config.

    ``preset: research`` is the research team's BiLSTM; it fills only the fields not set explicitly.
    The label's horizon and entry lag are the execution model's (the ``execution`` resource).
    """

    preset: str | None = Field(default=None, description=f"one of {sorted(PRESETS)}; explicit fields win")
    hidden_size: int = Field(default=_MODEL.hidden_size, gt=0)
    num_layers: int = Field(default=_MODEL.num_layers, gt=0)
    dropout: float = Field(default=_MODEL.dropout, ge=0, lt=1)
    num_heads: int = Field(default=_MODEL.num_heads, gt=0, description="Transformer attention heads")
    top_k: int = Field(default=_MODEL.top_k, gt=0, le=64, description="TimesNet: periods per block")
    num_leaves: int = Field(default=_MODEL.num_leaves, ge=2, description="LightGBM: leaves per tree")
    max_trees: int = Field(default=_MODEL.max_trees, gt=0, description="LightGBM: cap on trees (early stopping)")
    tuned: bool = Field(
        default=False,
        description="Apply the best configuration the partition's tuning asset found for the model (fields set "
        "explicitly here win); refused when the model has not been tuned",
    )
    seq_len: int = Field(default=_SEQ.seq_len, gt=0, description="Candles per input window")
    epochs: int = Field(default=_TRAIN.epochs, gt=0, description="Cap: training runs until early stopping stops it")
    batch_size: int = Field(default=_TRAIN.batch_size, gt=0)
    learning_rate: float = Field(default=_TRAIN.learning_rate, gt=0)
    weight_decay: float = Field(default=_TRAIN.weight_decay, ge=0)
    patience: int = Field(default=_TRAIN.patience, gt=0, description="Early stopping: epochs without improvement")
    min_delta: float = Field(
        default=_TRAIN.min_delta, ge=0, lt=1, description="Relative validation improvement that resets patience"
    )
    grad_clip: float = Field(default=_TRAIN.grad_clip, gt=0)
    seed: int = _TRAIN.seed
    device: str = Field(
        pattern=DEVICE_PATTERN,
        default=_TRAIN.device,
        description="auto (GPU with most free memory, else CPU), cpu, cuda:N",
    )
    amp: bool = Field(default=_TRAIN.amp, description="bf16 autocast on CUDA")
    train_fraction: float = Field(default=_SPLIT.train_fraction, gt=0, lt=1, description="Chronological train share")
    validation_fraction: float = Field(default=_SPLIT.validation_fraction, gt=0, lt=1, description="Validation share")
    split_gap: int | None = Field(
        default=_SPLIT.gap, ge=0, description="Rows between spans; default seq_len + delay_bars + horizon - 1"
    )

    def spec(self, execution: "Execution", tuned: dict[str, dict] | None = None) -> ModelSpec:
        """The model spec; the label's horizon and entry lag come from the execution model. ``tuned``: the
        model's tuned settings (see :func:`tuned_settings`), applied where no field was set explicitly."""
        names = {f.name for cls in (ModelConfig, TrainConfig, SequenceConfig) for f in fields(cls)}
        names |= {"model", "train_fraction", "validation_fraction", "split_gap"}
        values = {k: v for k, v in self.model_dump().items() if k in names}
        values.update(horizon=execution.horizon, entry_lag=execution.entry_lag)
        spec = build_spec(values, explicit=set(self.model_fields_set), preset=self.preset)
        own = (tuned or {}).get(spec.model.kind)
        return with_params(spec, own["params"]) if own else spec

    def unset(self, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` less the fields this config sets explicitly (they win over tuned values)."""
        return {k: v for k, v in params.items() if k not in self.model_fields_set}


def tuned_settings(
    config: ModelSettings,
    locations: Locations,
    partition: Partition,
    models: list[str],
    features: pd.DataFrame,
    unseen_from: pd.Timestamp,
) -> dict[str, dict]:
    """Per model of ``models``, the best settings and the trials of the partition's stored
    ``tuning`` asset (``{kind: {"params": ..., "trials": n}}``, less the fields ``config`` sets explicitly: they
    win); a model it did not tune is an error naming it (one without a search space, the ridge floor, has nothing
    to tune). Refused when the sweep read rows from ``unseen_from`` on (the caller's test data: its scores would
    be chosen on them) or another feature set than ``features``'. Called with ``config.tuned`` only."""
    from trading_assets.defs.io_manager import read_frame, stored_path
    from trading_assets.training.config import MODELS

    try:
        stored = read_frame(stored_path(locations, "tuning", partition)).attrs
    except FileNotFoundError:
        stored = {}
    best, span_end = stored.get("best", {}), pd.Timestamp(stored.get("span_end") or unseen_from)
    feature_set = Provenance.of(features).feature_set or DEFAULT_FEATURE_SET
    missing = [m for m in models if m not in best and MODELS[m].search_space]  # linear: nothing to tune
    if missing:
        raise ValueError(
            f"{partition}: tuned: true, but no tuning result for {missing}; run `trading-assets tune --symbols "
            f"{partition.symbol} --timeframes {partition.timeframe} --models {','.join(missing)}` first"
        )
    used = [m for m in models if m in best]
    if used and (span_end >= unseen_from or stored.get("feature_set") != feature_set):
        raise ValueError(
            f"{partition}: tuned: true, but the sweep read features up to {span_end} ({stored.get('feature_set')}), "
            f"and these are tested from {unseen_from} ({feature_set}); tune again on these features"
        )
    return {m: {**best[m], "params": config.unset(best[m]["params"])} for m in used}


class TrainedModelConfig(ModelSettings):
    """The production model's architecture and settings."""

    model: str = Field(
        default=_MODEL.kind,
        pattern=NAME_PATTERN,
        description="A model of trading_assets.training.config.MODELS (bilstm, lstm, gru, transformer, linear, "
        "or one an extension registers); checked against the registry when the run starts",
    )

    @field_validator("model")
    @classmethod
    def _registered(cls, name: str) -> str:
        return known_model(name)


def label_execution(
    execution: ExecutionResource, frame: pd.DataFrame, partition: Partition, horizon: bool = False
) -> "Execution":
    """The run's execution for ``symbol``, refused (before any work) when ``frame``'s label was built for another
    fill (and, with ``horizon``, another holding period)."""
    symbol, timeframe = partition.symbol, partition.timeframe
    from trading_assets.errors import CandleDataError
    from trading_assets.execution import ExecutionError
    from trading_assets.provenance import Provenance

    try:
        trade = execution.for_symbol(symbol)
        names = ("fill", "delay_bars", "horizon") if horizon else ("fill", "delay_bars")
        trade.check_label(Provenance.of(frame).execution, names)
    except ExecutionError as exc:
        raise CandleDataError(symbol, timeframe, str(exc)) from exc
    return trade


def epoch_line(epoch: int, metrics: dict[str, float]) -> str:
    return f"epoch {epoch}: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())


def partition_tags(context: AssetExecutionContext, asset_name: str) -> dict[str, str]:
    partition = partition_of(context.partition_key)
    symbol, timeframe = partition.symbol, partition.timeframe
    return {
        "symbol": symbol,
        "timeframe": timeframe,
        "partition_key": str(context.partition_key),
        "dagster_run_id": context.run_id,
        "dagster_asset": asset_name,
    }


@asset(
    partitions_def=market_partitions,
    code_version=CODE_VERSION,
    group_name="models",
    kinds={"pytorch", "mlflow"},
    pool=GPU_POOL,
    op_tags={"dagster-k8s/config": GPU_K8S_CONFIG},  # per-step pods under k8s_job_executor
    check_specs=[
        AssetCheckSpec(
            "beats_baseline",
            asset="trained_model",
            description="WARN when the model's MSE on the held-out test span (never used for early stopping) "
            "does not beat the best naive forecast fit on the train span (zero, train mean, AR(1))",
        )
    ],
    description="The production model per partition: a bundle of network, scaler (fit on its train span) and "
    "feature columns, trained on `features`, tracked in MLflow and registered as trading_assets-<symbol>-<timeframe> "
    "with the alias `challenger` (the `champion` asset decides whether it trades).",
)
def trained_model(
    context: AssetExecutionContext,
    config: TrainedModelConfig,
    features: pd.DataFrame,
    mlflow_tracking: MlflowResource,
    execution: ExecutionResource,
) -> MaterializeResult:
    # torch and mlflow load here, not with the code location: data steps and the UI stay light
    from trading_assets.calendars import get_calendar
    from trading_assets.provenance import Provenance
    from trading_assets.training.pipeline import train_and_track
    from trading_assets.training.tracking import registered_model_name

    partition = partition_of(context.partition_key)
    timeframe = partition.timeframe
    trade = label_execution(execution, features, partition)
    spec = config.spec(trade, _tuned(config, mlflow_tracking.locations, partition, features, trade))
    tags = partition_tags(context, "trained_model")
    with mlflow_tracking.open_run(str(context.partition_key), tags, dagster_run_alive(context.instance)) as tracker:
        outcome = train_and_track(
            features,
            spec,
            tracker,
            partition,
            get_calendar(Provenance.of(features).calendar).bars_per_year(timeframe),
            trade,
            registered_model_name(partition),
            on_epoch=lambda epoch, metrics: context.log.info(epoch_line(epoch, metrics)),
        )
    mlflow_tracking.registry().mark_challenger(partition, outcome.registered["registered_version"], config.model)
    verdict = outcome.baseline_verdict()
    return MaterializeResult(  # with the check declared on the asset, evaluated here
        metadata=_trained_model_metadata(outcome, mlflow_tracking, tracker, trade, features),
        check_results=[
            check_result(context, verdict.problems, verdict.figures(), AssetCheckSeverity.WARN, "beats_baseline")
        ],
    )


def _tuned(
    config: TrainedModelConfig, locations: Locations, partition: Partition, features: pd.DataFrame, trade: "Execution"
) -> dict[str, dict]:
    """The tuned settings trained_model applies (see tuned_settings): from a sweep that read no row of its test
    span or the purge gap before it."""
    if not config.tuned:
        return {}
    from trading_assets.splits import chronological_split

    spec = config.spec(trade)
    split = chronological_split(len(features), spec.split.train_fraction, spec.split.validation_fraction, spec.gap)
    unseen = features.index[max(split.test.start - spec.gap, 0)]
    return tuned_settings(config, locations, partition, [config.model], features, unseen)


def _trained_model_metadata(
    outcome: "TrainOutcome", mlflow_tracking: MlflowResource, tracker: Any, trade: "Execution", features: pd.DataFrame
) -> dict[str, Any]:
    """What the trained model's materialization shows: its MLflow run and registered version, how training
    went, the test figures and the curves."""
    from trading_assets.charts import markdown_image
    from trading_assets.training.tracking import content_hash

    report, test = outcome.report, outcome.test_metrics
    return {
        "mlflow_run_id": tracker.run_id,
        "mlflow_run": mlflow_tracking.run_link(tracker.experiment_id, tracker.run_id),
        "registered_model": outcome.registered["registered_model"],
        "registered_version": outcome.registered["registered_version"],
        "load_with": MetadataValue.md(
            f'`mlflow.pyfunc.load_model("{outcome.registered["registered_uri"]}").predict(features_frame)`'
        ),
        "device": report.device,
        "train_loss": report.train_loss,
        "val_loss": report.val_loss,
        "test_loss": report.test_loss,
        "best_epoch": report.best_epoch,
        "epochs_run": report.epochs_run,
        "stop_reason": report.stop_reason,
        "execution": MetadataValue.json(trade.as_dict()),
        "wall_seconds": report.wall_seconds,
        "samples_per_second": report.samples_per_second,
        "peak_gpu_memory_mb": report.peak_gpu_memory_mb if report.peak_gpu_memory_mb is not None else 0.0,
        "scaler_fit_start": outcome.bundle.scaler.fit_start,
        "scaler_fit_end": outcome.bundle.scaler.fit_end,
        "baselines": MetadataValue.json(report.baselines),
        "test_metrics": MetadataValue.json({k: v for k, v in test.items() if not k.startswith("backtest_")}),
        "test_backtest": MetadataValue.json(
            {k.removeprefix("backtest_"): v for k, v in test.items() if k.startswith("backtest_")}
        ),
        "training_curves": MetadataValue.md(markdown_image(outcome.images["training_curves"], "training curves")),
        "features_sha256": content_hash(features),
    }
