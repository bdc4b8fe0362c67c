"""MLflow: one run per trained partition, the model registered per symbol and timeframe.

The logged model is a pyfunc that takes a features frame (the ``features`` asset's columns) and
returns the predicted ``horizon``-candle log return for every row with a full window:

    mlflow.pyfunc.load_model("models:/trading_assets-KRW-BTC-1m/latest").predict(features_frame)
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import requests
import torch
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from trading_assets.features import TARGET
from trading_assets.training.trainer import TrainReport

log = logging.getLogger(__name__)


class MlflowUnavailableError(RuntimeError):
    """The tracking server cannot be used; raised before any training starts."""


def registered_model_name(symbol: str, timeframe: str) -> str:
    return f"trading_assets-{symbol}-{timeframe}"


def content_hash(frame: pd.DataFrame) -> str:
    """SHA-256 of the frame's values, index and column names."""
    digest = hashlib.sha256()
    digest.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    digest.update(",".join(map(str, frame.columns)).encode())
    return digest.hexdigest()


def connect(tracking_uri: str, experiment: str, timeout: float = 5.0) -> tuple[MlflowClient, str]:
    """Check the store answers and return a client and the experiment id (created if needed)."""
    if tracking_uri.startswith(("http://", "https://")):
        try:
            response = requests.get(tracking_uri.rstrip("/") + "/health", timeout=timeout)
            response.raise_for_status()
        except requests.RequestException as exc:
            raise MlflowUnavailableError(f"MLflow tracking server {tracking_uri} is unreachable: {exc}") from exc
    elif tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            return client, found.experiment_id
        artifacts = None
        if tracking_uri.startswith("sqlite:///"):  # keep artifacts beside the database, not in the cwd
            artifacts = (Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts").resolve().as_uri()
        return client, client.create_experiment(experiment, artifact_location=artifacts)
    except Exception as exc:  # noqa: BLE001 - any failure here means the store is unusable
        raise MlflowUnavailableError(f"MLflow store {tracking_uri} is not usable: {exc}") from exc


class SequencePredictor(mlflow.pyfunc.PythonModel):
    """Predicts from a features frame: one value per row, NaN until a full window exists."""

    def __init__(
        self,
        model: torch.nn.Module,
        feature_columns: list[str],
        seq_len: int,
        horizon: int,
        target_mean: float,
        target_std: float,
    ) -> None:
        self.model = model.to("cpu").eval()
        self.feature_columns = feature_columns
        self.seq_len = seq_len
        self.horizon = horizon
        self.target_mean = target_mean
        self.target_std = target_std

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        values = torch.from_numpy(np.ascontiguousarray(model_input[self.feature_columns].to_numpy(dtype=np.float32)))
        out = np.full(len(values), np.nan, dtype=np.float64)
        if len(values) >= self.seq_len:
            windows = values.unfold(0, self.seq_len, 1).transpose(1, 2)
            with torch.no_grad():
                preds = torch.cat([self.model(windows[i : i + 1024]) for i in range(0, len(windows), 1024)])
            out[self.seq_len - 1 :] = preds.double().numpy() * self.target_std + self.target_mean
        return pd.DataFrame({"prediction": out}, index=model_input.index)


def log_training_run(
    client: MlflowClient,
    tracking_uri: str,
    run_id: str,
    predictor: SequencePredictor,
    features: pd.DataFrame,
    report: TrainReport,
    symbol: str,
    timeframe: str,
) -> dict[str, str]:
    """Log the report, the dataset and the model into an open MLflow run; register the model."""
    for key, value in report.metrics().items():  # per-epoch series keep the plain names
        client.log_metric(run_id, f"final_{key}", value)
    client.log_dict(run_id, asdict(report), "report.json")
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    example = features[predictor.feature_columns].iloc[: predictor.seq_len + 2]
    signature = infer_signature(example, predictor.predict(None, example))
    name = registered_model_name(symbol, timeframe)
    with mlflow.start_run(run_id=run_id):
        dataset = mlflow.data.from_pandas(
            features.reset_index(),
            name=f"features-{symbol}-{timeframe}",
            digest=content_hash(features)[:32],
            targets=TARGET,
        )
        mlflow.log_input(dataset, context="training")
        info = mlflow.pyfunc.log_model(
            name="model", python_model=predictor, signature=signature, input_example=example, registered_model_name=name
        )
    version = info.registered_model_version
    return {
        "model_uri": info.model_uri,
        "registered_model": name,
        "registered_version": str(version),
        "registered_uri": f"models:/{name}/{version}",
    }
