"""The MLflow model registry as the platform uses it: challenger and champion aliases, with the evidence.

A partition's registered model is ``trading_assets-<symbol>-<timeframe>``. Each version carries its model
kind and, once judged, the evidence and the decision (tags); the registered model keeps the history of its
champions (a tag), so :meth:`Registry.rollback` can move ``champion`` back to the one before.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from trading_assets.champions import CHALLENGER, CHAMPION, CachedChampion, ChampionCache, Evidence
from trading_assets.partition import Partition
from trading_assets.training.tracking import load_registered_bundle, registered_model_name

KIND_TAG = "trading_assets.model_kind"
EVIDENCE_TAG = "trading_assets.evidence"
DECISION_TAG = "trading_assets.decision"
HISTORY_TAG = "trading_assets.champion_history"  # on the registered model: champion versions, oldest first


@dataclass(frozen=True)
class VersionRow:
    name: str
    version: str
    aliases: tuple[str, ...]
    kind: str
    decision: str
    created: int  # epoch ms


class Registry:
    """Aliases, evidence and the local champion cache of the partitions' registered models."""

    def __init__(self, tracking_uri: str, cache: ChampionCache) -> None:
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self.cache = cache

    def mark_challenger(self, partition: Partition, version: str, kind: str) -> None:
        """``version`` (just registered) is the partition's challenger."""
        name, version = registered_model_name(partition), str(version)
        self.client.set_model_version_tag(name, version, KIND_TAG, kind)
        self.client.set_registered_model_alias(name, CHALLENGER, version)

    def alias(self, partition: Partition, alias: str) -> str | None:
        """The version ``alias`` points at, or None."""
        try:
            return str(self.client.get_model_version_by_alias(registered_model_name(partition), alias).version)
        except MlflowException:
            return None

    def kind(self, partition: Partition, version: str) -> str:
        return self.client.get_model_version(registered_model_name(partition), version).tags.get(KIND_TAG, "")

    def evidence(self, partition: Partition, version: str) -> Evidence | None:
        """The evidence recorded when ``version`` was judged, or None."""
        tags = self.client.get_model_version(registered_model_name(partition), version).tags
        return Evidence.from_dict(json.loads(tags[EVIDENCE_TAG])) if EVIDENCE_TAG in tags else None

    def record(self, partition: Partition, version: str, evidence: Evidence | None, decision: str) -> None:
        """The evidence and decision on ``version`` (tags), whatever the decision."""
        name = registered_model_name(partition)
        if evidence is not None:
            self.client.set_model_version_tag(name, version, EVIDENCE_TAG, json.dumps(evidence.as_dict()))
        self.client.set_model_version_tag(name, version, DECISION_TAG, decision[:4000])

    def history(self, partition: Partition) -> list[str]:
        tags = self.client.get_registered_model(registered_model_name(partition)).tags
        return json.loads(tags.get(HISTORY_TAG, "[]"))

    def decision(self, partition: Partition, version: str) -> str:
        """The decision recorded on ``version`` ('' when it was never judged)."""
        return self.client.get_model_version(registered_model_name(partition), version).tags.get(DECISION_TAG, "")

    def promote(self, partition: Partition, version: str) -> CachedChampion:
        """Make ``version`` the champion: its bundle (digests checked) is staged in the local cache, then the alias
        moves, the history grows, and last the cache points at it; a failure on the way leaves the cache on the
        champion the registry still names."""
        name = registered_model_name(partition)
        self.client.get_model_version(name, version)  # an unknown version fails here, before anything moves
        folder = self._stage(partition, version)
        history = [v for v in self.history(partition) if v != version] + [version]
        self.client.set_registered_model_alias(name, CHAMPION, version)
        self.client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
        return self.cache.point(partition, name, version, folder)

    def rollback(self, partition: Partition) -> tuple[str, str]:
        """Move ``champion`` back to the champion before the current one; returns (from, to)."""
        history, current = self.history(partition), self.alias(partition, CHAMPION)
        at = history.index(current) if current in history else -1
        if current is None or at < 1:
            raise ValueError(f"{partition}: no champion before version {current} to roll back to (history {history})")
        previous, name = history[at - 1], registered_model_name(partition)
        folder = self._stage(partition, previous)
        self.client.set_registered_model_alias(name, CHAMPION, previous)
        self.client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history[:at]))
        self.client.set_model_version_tag(name, current, DECISION_TAG, f"rolled back to version {previous}")
        self.cache.point(partition, name, previous, folder)
        return current, previous

    def recache(self, partition: Partition, version: str) -> CachedChampion:
        """Cache ``version`` (the registry's champion) again, e.g. on a new volume or after a failed promotion."""
        return self.cache.point(partition, registered_model_name(partition), version, self._stage(partition, version))

    def _stage(self, partition: Partition, version: str) -> str:
        with tempfile.TemporaryDirectory() as tmp:
            load_registered_bundle(registered_model_name(partition), version, self.tracking_uri, Path(tmp))
            return self.cache.stage(partition, version, Path(tmp) / "artifacts" / "bundle")

    def versions(self, partition: Partition | None = None) -> list[VersionRow]:
        """Every version of the partition's registered model (all partitions' without one), newest first."""
        query = f"name = '{registered_model_name(partition)}'" if partition else "name LIKE 'trading_assets-%'"
        rows = []
        for model in self.client.search_registered_models(filter_string=query):
            aliases: dict[str, list[str]] = {}
            for alias, version in (model.aliases or {}).items():
                aliases.setdefault(str(version), []).append(alias)
            for v in self.client.search_model_versions(f"name = '{model.name}'"):
                rows.append(
                    VersionRow(
                        model.name,
                        str(v.version),
                        tuple(sorted(aliases.get(str(v.version), []))),
                        v.tags.get(KIND_TAG, ""),
                        v.tags.get(DECISION_TAG, ""),
                        int(v.creation_timestamp),
                    )
                )
        return sorted(rows, key=lambda r: (r.name, -int(r.version)))
