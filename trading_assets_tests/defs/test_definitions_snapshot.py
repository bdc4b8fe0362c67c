"""The definitions, pinned: asset keys, checks, jobs, schedules, sensors, resources and every config schema.

A change to any of them fails here until the snapshot is written again on purpose:

    UPDATE_DEFINITIONS_SNAPSHOT=1 python -m pytest trading_assets_tests/defs/test_definitions_snapshot.py

and the diff of ``definitions_snapshot.json`` is reviewed with the change (as dagster-open-platform's
``test_defs.py`` does for its code location).
"""

import json
import os
from pathlib import Path
from typing import Any

from trading_assets.defs import defs

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")


def _schema(config_type: Any) -> Any:
    """A config type as plain data: kind, fields (required, default), enum values, inner types."""
    kind = config_type.kind.name
    if config_type.kind.name in ("STRICT_SHAPE", "SHAPE", "PERMISSIVE_SHAPE", "SELECTOR"):
        return {
            "kind": kind,
            "fields": {
                name: {
                    "type": _schema(field.config_type),
                    "required": field.is_required,
                    **({"default": field.default_value} if field.default_provided else {}),
                }
                for name, field in sorted(config_type.fields.items())
            },
        }
    if kind == "ENUM":
        return {"kind": kind, "values": sorted(v.config_value for v in config_type.enum_values)}
    if kind in ("ARRAY", "NONEABLE"):
        return {"kind": kind, "of": _schema(config_type.inner_type)}
    if kind == "MAP":
        return {"kind": kind, "key": config_type.key_type.given_name, "of": _schema(config_type.inner_type)}
    return {"kind": kind, "name": config_type.given_name}


def snapshot() -> dict[str, Any]:
    repo = defs.get_repository_def()
    jobs = {}
    for job in sorted(repo.get_all_jobs(), key=lambda j: j.name):
        if job.name.startswith("__"):
            continue
        jobs[job.name] = {
            "assets": sorted(k.to_user_string() for k in job.asset_layer.executable_asset_keys),
            "run_config": _schema(job.run_config_schema.config_type),
        }
    graph = defs.resolve_asset_graph()
    return {
        "assets": {
            key.to_user_string(): {
                "group": graph.get(key).group_name,
                "partitioned": graph.get(key).partitions_def is not None,
                "code_version": graph.get(key).code_version is not None,
                "kinds": sorted(graph.get(key).kinds),
                "deps": sorted(k.to_user_string() for k in graph.get(key).parent_keys),
            }
            for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
        },
        "checks": sorted(f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys),
        "jobs": jobs,
        "schedules": sorted(s.name for s in repo.schedule_defs),
        "sensors": sorted(s.name for s in repo.sensor_defs),
        "resources": sorted(defs.resources or {}),
    }


def test_definitions_match_the_snapshot():
    current = json.loads(json.dumps(snapshot(), sort_keys=True, default=str))
    if os.environ.get("UPDATE_DEFINITIONS_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    pinned = json.loads(SNAPSHOT.read_text())
    for section in current:
        assert current[section] == pinned[section], (
            f"the definitions' {section} changed; if on purpose, write the snapshot again "
            "(UPDATE_DEFINITIONS_SNAPSHOT=1) and review its diff"
        )
