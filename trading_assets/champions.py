"""Champion and challenger: which trained model a partition trades on, and why.

Every trained version is the partition's *challenger*. It becomes the *champion* only on evidence from the
research loop (see trading_assets.evaluation): its model kind's net edge after costs must be significant after
Holm's adjustment over the partition's models, positive, and confirmed on the hold-out (which only the
research loop's chosen model gets); against a sitting champion it must also beat the champion's recorded
evidence on both. :func:`decide` returns the decision with its reason; nothing here talks to MLflow.

The champion's bundle is kept in a local cache (:class:`ChampionCache`) written when it is promoted, so
scoring needs no tracking server: a partition's directory holds one folder per cached version and a
``champion.json`` pointer replaced atomically once the version's folder is complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from trading_assets.partition import Partition

CHAMPION, CHALLENGER = "champion", "challenger"


@dataclass(frozen=True)
class Evidence:
    """What the research loop found for one model kind of a partition."""

    model: str
    edge_pvalue_adj: float  # Holm-adjusted p-value of the net edge over the partition's models
    edge_t: float  # HAC t-statistic of the net edge (walk-forward folds)
    net_log_return: float  # walk-forward, after costs
    holdout_net_log_return: float | None  # None: the model was not the chosen one, so it has no hold-out
    holdout_edge_pvalue: float | None = None

    @classmethod
    def from_evaluation(cls, table: pd.DataFrame, model: str) -> Evidence | None:
        """The evidence for ``model`` in an evaluation table (None when the model was not evaluated)."""
        overall = table[(table["model"] == model) & (table["scope"] == "overall")]
        if overall.empty:
            return None
        row = overall.iloc[0]
        holdout = table[(table["model"] == model) & (table["scope"] == "holdout")]
        hold = holdout.iloc[0] if len(holdout) else None
        return cls(
            model,
            float(row["edge_pvalue_adj"]),
            float(row["backtest_edge_t_stat"]),
            float(row["backtest_net_log_return"]),
            None if hold is None else float(hold["backtest_net_log_return"]),
            None if hold is None else float(hold["backtest_edge_pvalue"]),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Evidence:
        return cls(**{k: values.get(k) for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide(challenger: Evidence | None, champion: Evidence | None, level: float = 0.05) -> Decision:
    """Whether ``challenger`` replaces ``champion`` (None: there is none yet), and why."""
    if challenger is None:
        return Decision(False, "the challenger's model was not evaluated by the research loop")
    c = challenger
    if not (c.edge_pvalue_adj <= level and c.net_log_return > 0):
        return Decision(
            False,
            f"{c.model}: no significant net edge after costs (adjusted p {c.edge_pvalue_adj:.3g} > {level:g} or "
            f"net log return {c.net_log_return:.3g} <= 0)",
        )
    if c.holdout_net_log_return is None:
        return Decision(False, f"{c.model}: not the research loop's chosen model, so no hold-out confirms it")
    if not c.holdout_net_log_return > 0:
        return Decision(
            False, f"{c.model}: the hold-out does not confirm it (net log return {c.holdout_net_log_return:.3g})"
        )
    if champion is None:
        return Decision(
            True,
            f"{c.model}: first champion: significant net edge (adjusted p {c.edge_pvalue_adj:.3g}) "
            f"confirmed on the hold-out (net log return {c.holdout_net_log_return:.3g})",
        )
    if not c.edge_t > champion.edge_t:
        return Decision(
            False, f"{c.model}: net edge t {c.edge_t:.3g} does not beat the champion's {champion.edge_t:.3g}"
        )
    sitting_holdout = champion.holdout_net_log_return if champion.holdout_net_log_return is not None else 0.0
    if not c.holdout_net_log_return >= sitting_holdout:  # a champion without a hold-out (set by hand) counts 0
        return Decision(
            False,
            f"{c.model}: hold-out net log return {c.holdout_net_log_return:.3g} below the champion's "
            f"{sitting_holdout:.3g}",
        )
    return Decision(
        True,
        f"{c.model}: beats the champion (net edge t {c.edge_t:.3g} > {champion.edge_t:.3g}, "
        f"hold-out {c.holdout_net_log_return:.3g} >= {sitting_holdout:.3g})",
    )


@dataclass(frozen=True)
class CachedChampion:
    """A partition's champion as cached: the registered model version and where its bundle lies."""

    partition: Partition
    model_name: str
    version: str
    bundle_dir: Path
    promoted_at: str

    def load_bundle(self):  # -> ModelBundle; torch loads only here
        from trading_assets.training.bundle import ModelBundle

        return ModelBundle.load(self.bundle_dir)


def _digest(directory: Path) -> str:
    """One digest of every file under ``directory`` (names and contents)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(directory)}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


class ChampionCache:
    """The champions' bundles on local disk, one directory per partition under ``root``.

    :meth:`stage` copies a bundle into a folder named by its version and content (a reset registry that
    reuses a version number never gets the old files); :meth:`point` then switches the partition's
    ``champion.json`` to it with one atomic rename, so a reader sees the previous champion or the new one.
    """

    POINTER = "champion.json"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, partition: Partition) -> Path:
        return self.root / partition.symbol / partition.timeframe

    def stage(self, partition: Partition, version: str, bundle_dir: Path) -> str:
        """Copy ``bundle_dir`` into the partition's cache (fsynced; reused when identical); its folder name."""
        home = self._dir(partition)
        home.mkdir(parents=True, exist_ok=True)
        folder = f"v{int(version)}-{_digest(bundle_dir)}"
        if (home / folder).exists():
            return folder
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=home))
        try:
            shutil.copytree(bundle_dir, staging / "bundle")
            for path in (staging / "bundle").rglob("*"):
                if path.is_file():
                    with open(path, "rb") as handle:
                        os.fsync(handle.fileno())
            try:
                os.rename(staging / "bundle", home / folder)  # complete, or not there at all
            except OSError:
                if not (home / folder).exists():  # else a concurrent writer staged the same content first
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return folder

    def point(self, partition: Partition, model_name: str, version: str, folder: str) -> CachedChampion:
        """Make the staged ``folder`` the partition's champion (atomic replace of the pointer)."""
        home = self._dir(partition)
        record = {
            "model_name": model_name,
            "version": str(int(version)),
            "folder": folder,
            "promoted_at": pd.Timestamp.now(tz="UTC").isoformat(),
        }
        fd, tmp = tempfile.mkstemp(prefix=".champion-", dir=home)
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, home / self.POINTER)
        return self.read(partition)

    def write(self, partition: Partition, model_name: str, version: str, bundle_dir: Path) -> CachedChampion:
        """:meth:`stage` then :meth:`point`."""
        return self.point(partition, model_name, version, self.stage(partition, version, bundle_dir))

    def read(self, partition: Partition) -> CachedChampion | None:
        """The cached champion of ``partition``, or None."""
        pointer = self._dir(partition) / self.POINTER
        if not pointer.exists():
            return None
        record = json.loads(pointer.read_text())
        folder = Path(record["folder"]).name  # a name inside the partition's directory, nothing else
        return CachedChampion(
            partition,
            record["model_name"],
            str(int(record["version"])),
            self._dir(partition) / folder,
            record["promoted_at"],
        )
