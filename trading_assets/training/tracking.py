"""MLflow tracking: :class:`MlflowTracker` implements the pipeline's :class:`~trading_assets.training.pipeline.Tracker`.

:class:`MlflowTracker` is one MLflow run (nested runs for walk-forward folds). The registered
model is a pyfunc defined by code (``serving.py``) around a :class:`ModelBundle` artifact, with
the project's code in its ``code`` folder and explicit requirements, so it loads in a clean
environment without unpickling anything:

    mlflow.pyfunc.load_model("models:/trading_assets-KRW-BTC-1m/latest").predict(features_frame)
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import requests
import torch
from mlflow.entities import Metric, Param
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

import trading_assets
from trading_assets.labels import TARGET
from trading_assets.partition import Partition
from trading_assets.processes import exclusive
from trading_assets.redaction import redact
from trading_assets.training.bundle import ModelBundle

log = logging.getLogger(__name__)

SERVING_CODE = Path(__file__).with_name("serving.py")
# The modules a served model imports (numpy, pandas and torch only): shipped as the model's code.
SERVING_MODULES = (
    "__init__.py",
    "splits.py",
    "training/__init__.py",
    "training/bundle.py",
    "training/config.py",
    "training/models.py",
    "training/scaling.py",
)


FILES_TAG = "trading_assets.files_sha256"  # model version tag: every stored file's SHA-256 at registration


class MlflowUnavailableError(RuntimeError):
    """The tracking server cannot be used; raised before any training starts."""


def registered_model_name(partition: Partition) -> str:
    """The MLflow registered model of ``partition``'s production model."""
    return f"trading_assets-{partition.symbol}-{partition.timeframe}"


def content_hash(frame: pd.DataFrame) -> str:
    """SHA-256 of the frame's values, index and column names."""
    digest = hashlib.sha256()
    digest.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    digest.update(",".join(map(str, frame.columns)).encode())
    return digest.hexdigest()


def serving_requirements(kind: str = "") -> list[str]:
    """What the registered model of ``kind`` needs to load and predict, pinned to this environment's versions."""
    needs = [
        f"mlflow-skinny=={mlflow.__version__}",
        f"torch=={torch.__version__.split('+')[0]}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
    ]
    if kind == "lightgbm":
        import lightgbm

        needs.append(f"lightgbm=={lightgbm.__version__}")
    return needs


def connect(tracking_uri: str, experiment: str, timeout: float = 5.0) -> tuple[MlflowClient, str]:
    """Check the store answers and return a client and the experiment id (created if needed)."""
    if tracking_uri.startswith(("http://", "https://")):
        try:
            response = requests.get(tracking_uri.rstrip("/") + "/health", timeout=timeout)
            response.raise_for_status()
        except requests.RequestException as exc:
            raise MlflowUnavailableError(
                f"MLflow tracking server {redact(tracking_uri)} is unreachable: {redact(exc)}"
            ) from exc
    elif tracking_uri.startswith("sqlite:///"):
        # first use creates the tables: one process at a time, or parallel first runs break the store
        path = Path(tracking_uri.removeprefix("sqlite:///"))
        with exclusive(path.with_name(path.name + ".lock")):
            repair_half_created(path)
            return _experiment(tracking_uri, experiment)
    return _experiment(tracking_uri, experiment)


def repair_half_created(path: Path) -> None:
    """Repair a SQLite MLflow store whose creation or migration was cut short (a full disk, a kill).

    A store without its schema version and without runs holds nothing: it is removed and created again.
    A leftover ``_alembic_tmp_<table>`` beside its table (an interrupted batch migration, which makes every
    later migration fail) is dropped. Anything else is reported with the exact repair step.
    """
    if not path.exists():
        return
    try:
        with closing(sqlite3.connect(path)) as db:
            tables = {row[0] for row in db.execute("select name from sqlite_master where type = 'table'")}
            empty = "runs" not in tables or db.execute("select count(*) from runs").fetchone()[0] == 0
            if "alembic_version" not in tables and empty:
                db.close()
                path.unlink()
                log.warning("MLflow store %s was never fully created and held no runs: created again", path)
                return
            for leftover in sorted(t for t in tables if t.startswith("_alembic_tmp_")):
                table = leftover.removeprefix("_alembic_tmp_")
                if table not in tables:
                    raise MlflowUnavailableError(
                        f"MLflow store {path} was left half-migrated: table {table!r} is missing and {leftover!r} "
                        f"holds its rows. Back the file up, then run: sqlite3 {path} "
                        f'\'ALTER TABLE "{leftover}" RENAME TO "{table}"\''
                    )
                db.execute(f'DROP TABLE "{leftover}"')
                db.commit()
                log.warning("MLflow store %s: dropped %s, left by an interrupted migration", path, leftover)
    except sqlite3.DatabaseError as exc:
        raise MlflowUnavailableError(
            f"MLflow store {path} is not a readable SQLite database ({exc}); move it aside and run again to create "
            "a new one (its runs are lost unless restored from a backup)"
        ) from exc


def _experiment(tracking_uri: str, experiment: str) -> tuple[MlflowClient, str]:
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
        raise MlflowUnavailableError(f"MLflow store {redact(tracking_uri)} is not usable: {redact(exc)}") from exc


def file_digests(directory: Path) -> dict[str, str]:
    """SHA-256 of every file under ``directory``, by relative path."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


class TamperedModelError(RuntimeError):
    """A registered model's stored files are not the ones registered."""


def load_registered_bundle(name: str, version: str, tracking_uri: str, dst: Path) -> ModelBundle:
    """The :class:`ModelBundle` of a registered model version, loaded with the installed package's code.

    Nothing from the artifact store runs: the model's files are downloaded to ``dst``, every one is
    checked against the SHA-256 recorded at registration (a changed, added or missing file is refused),
    and only the bundle's JSON and weights are read (``ModelBundle.load``: bounded sizes, no pickle).
    ``mlflow.pyfunc.load_model`` by contrast imports the stored ``serving.py`` and code folder.
    """
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    model_version = client.get_model_version(name, version)
    recorded = model_version.tags.get(FILES_TAG)
    if not recorded:
        raise TamperedModelError(f"model {name} version {version} has no recorded file digests; register it again")
    mlflow.set_registry_uri(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version}", dst_path=str(dst)))
    expected, found = json.loads(recorded), file_digests(local)
    changed = sorted(p for p in expected.keys() | found.keys() if expected.get(p) != found.get(p))
    if changed:
        raise TamperedModelError(
            f"model {name} version {version}: stored files differ from what was registered: {changed[:10]}"
        )
    return ModelBundle.load(local / "artifacts" / "bundle")


def end_stale_runs(
    client: MlflowClient, experiment_id: str, tags: dict[str, str], dagster_run_alive: Callable[[str], bool]
) -> list[str]:
    """End as FAILED the MLflow runs still RUNNING with the same partition and asset ``tags`` (all of them
    without tags) whose Dagster run is no longer alive (its worker was killed), and their nested runs
    (walk-forward folds) still RUNNING; returns their ids."""
    query = " and ".join(
        [f"tags.{k} = '{tags[k]}'" for k in ("partition_key", "dagster_asset") if k in tags]
        + ["attributes.status = 'RUNNING'"]
    )
    running = client.search_runs([experiment_id], filter_string=query)
    stale = [r.info.run_id for r in running if not dagster_run_alive(r.data.tags.get("dagster_run_id", ""))]
    for parent in list(stale):
        children = client.search_runs(
            [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent}' and attributes.status = 'RUNNING'"
        )
        stale += [r.info.run_id for r in children]
    for run_id in stale:
        client.set_terminated(run_id, "FAILED")
        log.warning("MLflow run %s (%s) was left RUNNING by a dead Dagster run: ended FAILED", run_id, query)
    return stale


class MlflowTracker:
    """One MLflow run; :meth:`child` opens nested runs (walk-forward folds)."""

    def __init__(self, client: MlflowClient, tracking_uri: str, experiment_id: str, run_id: str) -> None:
        self.client = client
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.run_id = run_id

    @classmethod
    @contextmanager
    def run(
        cls,
        client: MlflowClient,
        tracking_uri: str,
        experiment_id: str,
        name: str,
        tags: dict[str, str],
        parent: MlflowTracker | None = None,
    ) -> Iterator[MlflowTracker]:
        """An MLflow run that ends FINISHED, or FAILED when the block raises (also on KeyboardInterrupt)."""
        if parent is not None:
            tags = {**tags, "mlflow.parentRunId": parent.run_id}
        run = client.create_run(experiment_id, run_name=name, tags=tags)
        tracker = cls(client, tracking_uri, experiment_id, run.info.run_id)
        try:
            yield tracker
        except BaseException:
            client.set_terminated(tracker.run_id, "FAILED")
            raise
        client.set_terminated(tracker.run_id, "FINISHED")

    def child(self, name: str, tags: dict[str, str]):
        return MlflowTracker.run(self.client, self.tracking_uri, self.experiment_id, name, tags, parent=self)

    def log_params(self, params: dict[str, Any]) -> None:
        """One request for all parameters (a tracking store round trip per value is slow)."""
        self.client.log_batch(self.run_id, params=[Param(k, str(v)) for k, v in params.items()])

    def set_tags(self, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, value)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """One request for all finite metrics, at ``step``."""
        now = int(time.time() * 1000)
        batch = [
            Metric(k, float(v), now, step or 0)
            for k, v in metrics.items()
            if isinstance(v, (int, float, np.number)) and np.isfinite(v)
        ]
        self.client.log_batch(self.run_id, metrics=batch)

    def log_dict(self, data: dict[str, Any], path: str) -> None:
        self.client.log_dict(self.run_id, data, path)

    def log_image(self, png: bytes, path: str) -> None:
        """The PNG bytes as they are (no decode and re-encode)."""
        self._log_file(path, lambda file: file.write_bytes(png))

    def log_table(self, frame: pd.DataFrame, path: str) -> None:
        self._log_file(path, frame.to_parquet)

    def _log_file(self, path: str, write: Callable[[Path], object]) -> None:
        """Write an artifact with ``write`` into a temporary file and log it at ``path``."""
        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / Path(path).name
            write(file)
            self.client.log_artifact(self.run_id, str(file), str(Path(path).parent) if Path(path).parent.name else None)

    def log_dataset(self, features: pd.DataFrame, name: str) -> None:
        mlflow.set_tracking_uri(self.tracking_uri)
        with mlflow.start_run(run_id=self.run_id):
            dataset = mlflow.data.from_pandas(
                features.reset_index(), name=name, digest=content_hash(features)[:32], targets=TARGET
            )
            mlflow.log_input(dataset, context="training")

    def log_bundle(self, bundle: ModelBundle, features: pd.DataFrame, registered_name: str) -> dict[str, str]:
        """Log the bundle as a pyfunc model defined by code and register it under ``registered_name``."""
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        example = features[bundle.feature_columns].iloc[: bundle.seq_len + 2]
        signature = infer_signature(example, bundle.predict(example).to_frame())
        with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_id=self.run_id):
            path = bundle.save(Path(tmp) / "bundle")
            package = Path(tmp) / "code" / "trading_assets"
            for module in SERVING_MODULES:
                (package / module).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(Path(trading_assets.__file__).parent / module, package / module)
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(SERVING_CODE),
                artifacts={"bundle": str(path)},
                code_paths=[str(package)],
                pip_requirements=serving_requirements(bundle.model_config.kind),
                signature=signature,
                input_example=example,
                registered_model_name=registered_name,
            )
        version = info.registered_model_version
        with tempfile.TemporaryDirectory() as tmp:  # what the artifact store holds now, as registered
            stored = Path(mlflow.artifacts.download_artifacts(f"models:/{registered_name}/{version}", dst_path=tmp))
            self.client.set_model_version_tag(
                registered_name, str(version), FILES_TAG, json.dumps(file_digests(stored), sort_keys=True)
            )
        return {
            "model_uri": info.model_uri,
            "registered_model": registered_name,
            "registered_version": str(version),
            "registered_uri": f"models:/{registered_name}/{version}",
        }
