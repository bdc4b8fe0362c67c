"""The trained_model asset: a PyTorch sequence model per partition, tracked and registered in MLflow.

No `from __future__ import annotations` here: Dagster reads the config and resource annotations.
"""

from dataclasses import asdict
from typing import Literal

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    ConfigurableResource,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from trading_assets.defs.jobs import GPU_K8S_CONFIG
from trading_assets.defs.partitions import market_partitions, split_partition_key
from trading_assets.errors import CandleDataError
from trading_assets.settings import default_tracking_uri
from trading_assets.timeframes import get_timeframe
from trading_assets.training.config import PRESETS, ModelConfig, TrainConfig

GPU_POOL = "gpu"


class MlflowResource(ConfigurableResource):
    """Where training runs are tracked: one MLflow run per materialized partition."""

    tracking_uri: str | None = Field(
        default=None, description="default $MLFLOW_TRACKING_URI, else SQLite in the data dir"
    )
    experiment: str = Field(default="trading_assets", description="MLflow experiment name")

    def resolved_uri(self) -> str:
        return self.tracking_uri or default_tracking_uri()

    def run_link(self, experiment_id: str, run_id: str) -> str:
        uri = self.resolved_uri()
        if uri.startswith(("http://", "https://")):
            return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
        return f"run {run_id} in {uri} (browse with: mlflow ui --backend-store-uri {uri})"


class TrainedModelConfig(Config):
    """Model and training settings; ``preset: research`` is the research team's BiLSTM."""

    preset: str | None = Field(default=None, description="research: BiLSTM 1024 x 4, lr 5e-4, batch 128")
    model: Literal["bilstm", "lstm", "gru", "transformer"] = Field(default="bilstm", description="Architecture")
    hidden_size: int = Field(default=32, gt=0)
    num_layers: int = Field(default=1, gt=0)
    dropout: float = Field(default=0.1, ge=0, lt=1)
    num_heads: int = Field(default=4, gt=0, description="Transformer attention heads")
    seq_len: int = Field(default=32, gt=0, description="Candles per input window")
    horizon: int = Field(default=1, gt=0, description="Predict the log return over this many candles")
    epochs: int = Field(default=10, gt=0)
    batch_size: int = Field(default=256, gt=0)
    learning_rate: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    patience: int = Field(default=3, gt=0, description="Early stopping: epochs without validation improvement")
    grad_clip: float = Field(default=1.0, gt=0)
    seed: int = 42
    device: str = Field(default="auto", description="auto (GPU with most free memory, else CPU), cpu, cuda, cuda:N")
    amp: bool = Field(default=True, description="bf16 autocast on CUDA")

    def resolve(self) -> tuple[ModelConfig, TrainConfig]:
        model = ModelConfig(self.model, self.hidden_size, self.num_layers, self.dropout, self.num_heads)
        training = TrainConfig(
            self.epochs,
            self.batch_size,
            self.learning_rate,
            self.weight_decay,
            self.patience,
            self.grad_clip,
            self.seed,
            self.device,
            self.amp,
        )
        if self.preset:
            if self.preset not in PRESETS:
                raise ValueError(f"unknown preset {self.preset!r}; expected one of {sorted(PRESETS)}")
            preset_model, preset_train = PRESETS[self.preset]
            model = preset_model
            training = TrainConfig(
                **{
                    **asdict(training),
                    "learning_rate": preset_train.learning_rate,
                    "batch_size": preset_train.batch_size,
                }
            )
        return model, training


@asset(
    partitions_def=market_partitions,
    group_name="models",
    kinds={"pytorch", "mlflow"},
    pool=GPU_POOL,
    op_tags={"dagster-k8s/config": GPU_K8S_CONFIG},  # per-step pods under k8s_job_executor
    check_specs=[
        AssetCheckSpec(
            "beats_baseline",
            asset="trained_model",
            description="WARN when validation loss does not beat the best naive baseline",
        )
    ],
    description="A PyTorch sequence model per partition, trained on the chronological train span of `features`, "
    "tracked in MLflow and registered as trading_assets-<symbol>-<timeframe>.",
)
def trained_model(
    context: AssetExecutionContext, config: TrainedModelConfig, features: pd.DataFrame, mlflow_tracking: MlflowResource
) -> MaterializeResult:
    # torch and mlflow load here, not with the code location: data steps and the UI stay light
    from trading_assets.training.evaluation import sign_backtest
    from trading_assets.training.models import build_model
    from trading_assets.training.sequences import build_sequences
    from trading_assets.training.tracking import SequencePredictor, connect, content_hash, log_training_run
    from trading_assets.training.trainer import train

    symbol, timeframe = split_partition_key(context.partition_key)
    model_config, train_config = config.resolve()
    feature_config = features.attrs.get("feature_config", {})
    train_fraction = feature_config.get("train_fraction", 0.7)
    validation_fraction = feature_config.get("validation_fraction", 0.15)
    gap = feature_config.get("split_gap", config.seq_len + config.horizon)
    try:  # the same chronological split the features' scaler was fit on
        data = build_sequences(features, config.seq_len, config.horizon, train_fraction, validation_fraction, gap)
    except ValueError as exc:
        raise CandleDataError(
            symbol, timeframe, f"{exc} (features' split_gap {gap}, seq_len {config.seq_len}, horizon {config.horizon})"
        ) from exc
    scaler = features.attrs.get("scaler", {})
    train_end = features.index[data.split.train.stop - 1]
    if scaler and pd.Timestamp(scaler["fit_end"]) > train_end:
        raise CandleDataError(
            symbol,
            timeframe,
            f"the scaler was fit up to {scaler['fit_end']}, past the train span's "
            f"end {train_end.isoformat()}: validation data leaked into the scaling",
        )

    client, experiment_id = connect(mlflow_tracking.resolved_uri(), mlflow_tracking.experiment)  # fail early
    model = build_model(len(data.feature_columns), model_config)
    run = client.create_run(
        experiment_id,
        run_name=f"{symbol}|{timeframe}",
        tags={
            "symbol": symbol,
            "timeframe": timeframe,
            "partition_key": str(context.partition_key),
            "dagster_run_id": context.run_id,
            "dagster_asset": "trained_model",
        },
    )
    run_id = run.info.run_id
    try:
        params = {
            **{f"model.{k}": v for k, v in asdict(model_config).items()},
            **{f"train.{k}": v for k, v in asdict(train_config).items()},
            "seq_len": config.seq_len,
            "horizon": config.horizon,
            "split_gap": gap,
            "train_fraction": train_fraction,
            "validation_fraction": validation_fraction,
            "train_samples": len(data.train_ends),
            "validation_samples": len(data.validation_ends),
            "test_samples": len(data.test_ends),
            "n_features": len(data.feature_columns),
            "parameters": sum(p.numel() for p in model.parameters()),
            "preset": config.preset or "none",
        }
        for key, value in params.items():
            client.log_param(run_id, key, value)

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            for key, value in metrics.items():
                client.log_metric(run_id, key, value, step=epoch)
            context.log.info(f"epoch {epoch}: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))

        model, report = train(model, data, train_config, on_epoch)
        predictor = SequencePredictor(
            model, data.feature_columns, config.seq_len, config.horizon, report.target_mean, report.target_std
        )
        # trade the sign of the registered model's forecasts over the test span
        ends = data.test_ends.numpy()
        window = features.iloc[ends[0] - config.seq_len + 1 : ends[-1] + 1]
        forecasts = predictor.predict(None, window)["prediction"].to_numpy()[config.seq_len - 1 :]
        backtest = sign_backtest(
            forecasts, data.labels.numpy()[ends], config.horizon, 365 * 1440 / get_timeframe(timeframe).minutes
        )
        for key, value in backtest.as_dict().items():
            client.log_metric(run_id, f"backtest_{key}", value)
        registered = log_training_run(
            client, mlflow_tracking.resolved_uri(), run_id, predictor, features, report, symbol, timeframe
        )
        client.set_terminated(run_id, "FINISHED")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise

    best_baseline = min(report.baselines, key=lambda b: report.baselines[b]["val_loss"])
    beats = report.val_loss < report.baselines[best_baseline]["val_loss"]
    return MaterializeResult(
        metadata={
            "mlflow_run_id": run_id,
            "mlflow_run": MetadataValue.url(mlflow_tracking.run_link(experiment_id, run_id))
            if mlflow_tracking.resolved_uri().startswith("http")
            else mlflow_tracking.run_link(experiment_id, run_id),
            "registered_model": registered["registered_model"],
            "registered_version": registered["registered_version"],
            "load_with": MetadataValue.md(
                f'`mlflow.pyfunc.load_model("{registered["registered_uri"]}").predict(features_frame)`'
            ),
            "device": report.device,
            "train_loss": report.train_loss,
            "val_loss": report.val_loss,
            "test_loss": report.test_loss,
            "best_epoch": report.best_epoch,
            "epochs_run": report.epochs_run,
            "wall_seconds": report.wall_seconds,
            "samples_per_second": report.samples_per_second,
            "peak_gpu_memory_mb": report.peak_gpu_memory_mb if report.peak_gpu_memory_mb is not None else 0.0,
            "baselines": MetadataValue.json(report.baselines),
            "test_backtest": MetadataValue.json(backtest.as_dict()),
            "features_sha256": content_hash(features),
        },
        check_results=[
            AssetCheckResult(
                check_name="beats_baseline",
                passed=beats,
                severity=AssetCheckSeverity.WARN,
                description=None
                if beats
                else f"validation loss {report.val_loss:.4g} does not beat the "
                f"{best_baseline} baseline ({report.baselines[best_baseline]['val_loss']:.4g})",
                metadata={
                    "val_loss": report.val_loss,
                    "best_baseline": best_baseline,
                    "best_baseline_val_loss": report.baselines[best_baseline]["val_loss"],
                    "test_loss": report.test_loss,
                    "baseline_test_loss": report.baselines[best_baseline]["test_loss"],
                },
            )
        ],
    )
