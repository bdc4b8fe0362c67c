"""Look-ahead checks on features and indicators, warm-up sufficiency on indicators.

They call the same domain functions as the assets (see trading_assets.causality), on the stored
upstream partition, so they cost about one extra computation of the asset; the look-ahead checks after an
incremental refresh audit the rows it computed, at the cost of those rows. Both can be switched
off per run (``enabled: false``) for huge spans.

No `from __future__ import annotations` here: Dagster reads the config and resource annotations.
"""

import json
from dataclasses import asdict
from typing import Literal

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetIn,
    AssetKey,
    Config,
    MetadataValue,
)
from pydantic import Field

from trading_assets.causality import (
    CUT_FRACTIONS,
    CUT_MAX_ROWS,
    WARMUP_AUDIT_ROWS,
    WarmupAudit,
    cut_points,
    features_look_ahead,
    indicators_look_ahead,
    refreshed_cuts,
)
from trading_assets.defs.assets import features, indicators
from trading_assets.defs.dagster_private import AssetCheckExecutionRecordStatus, PartitionKeyFilter
from trading_assets.defs.partition_checks import check_result, partition_check, partition_metadata
from trading_assets.defs.partitions import partition_of
from trading_assets.defs.resources import (
    CandleSourceResource,
    CandleStoreResource,
    FeatureConfigResource,
    IncrementalResource,
)
from trading_assets.errors import CandleDataError
from trading_assets.execution import Execution
from trading_assets.features import DEFAULT_FEATURE_SET, FeatureConfig
from trading_assets.incremental import Lineage
from trading_assets.provenance import Provenance


class LookAheadConfig(Config):
    enabled: bool = Field(default=True, description="Switch the check off (e.g. for huge spans)")
    cut_fractions: list[float] = Field(
        default=list(CUT_FRACTIONS),
        description="Cut points as fractions of the span, or of its first max_rows rows (jittered per partition)",
    )
    max_rows: int | None = Field(
        default=CUT_MAX_ROWS, gt=10, description="Place the cuts within the span's first rows (None: the whole span)"
    )


class WarmupConfig(Config):
    enabled: bool = Field(default=True, description="Switch the check off (e.g. for huge spans)")
    history_factor: float = Field(default=2.0, gt=1, description="Recompute with this many times the warm-up")
    tolerance: float = Field(default=1e-4, gt=0, description="Allowed move, as a share of the column's std in the span")
    prefix_rows: int = Field(
        default=WARMUP_AUDIT_ROWS,
        ge=10,
        description="Compare the span's first rows when every difference ends in their first half, else every row",
    )
    short_history_severity: Literal["WARN", "ERROR"] = Field(
        default="WARN",
        description="Severity when the available history is shorter than the warm-up the partition needs "
        "(the check never passes then: there is nothing to compare with)",
    )


def _skipped(context: AssetCheckExecutionContext) -> AssetCheckResult:
    return AssetCheckResult(
        passed=True, description="disabled by config", metadata={**partition_metadata(context), "skipped": True}
    )


def _cuts(context: AssetCheckExecutionContext, config: LookAheadConfig, frame: pd.DataFrame):
    """The cut points and the first row audited: after an incremental refresh the rows it computed (see
    trading_assets.causality), else the whole frame (None)."""
    key, fractions = str(context.partition_key), tuple(config.cut_fractions)
    lineage = Lineage.whole(frame)
    if lineage is not None and lineage.incremental and lineage.changed_from:
        since = pd.Timestamp(lineage.changed_from)
        return refreshed_cuts(frame.index, since, key, fractions), since
    return cut_points(frame.index, key, fractions, config.max_rows), None


def _look_ahead_result(context: AssetCheckExecutionContext, diffs, cuts, since) -> AssetCheckResult:
    first = min(diffs, key=lambda d: d.first_timestamp) if diffs else None
    problem = "uses data after t: " + ", ".join(f"{d.column} from {d.first_timestamp}" for d in diffs[:5])
    return check_result(
        context,
        [problem] if diffs else [],
        {
            "cut_points": MetadataValue.json([c.isoformat() for c in cuts]),
            "non_causal_columns": MetadataValue.json([asdict(d) for d in diffs]),
            "first_column": first.column if first else "",
            "first_timestamp": first.first_timestamp if first else "",
            "rows_audited": "all" if since is None else f"from {since.isoformat()} (the rows the refresh computed)",
        },
    )


@partition_check(
    features,
    "no_look_ahead",
    additional_ins={"indicators": AssetIn("indicators")},
    description="Rebuild features from indicators truncated at a few cut points t and "
    "compare rows <= t with the stored features: any difference is look-ahead. The other partitions a feature set "
    "reads are cut to the bars closed by t's close. After an incremental refresh: cuts in the rows it computed, "
    "rebuilt as it built them.",
)
def features_no_look_ahead(
    context: AssetCheckExecutionContext,
    config: LookAheadConfig,
    frame: pd.DataFrame,
    indicators: pd.DataFrame,
    feature_config: FeatureConfigResource,
) -> AssetCheckResult:
    if not config.enabled:
        return _skipped(context)
    partition = partition_of(context.partition_key)
    cuts, since = _cuts(context, config, frame)
    provenance = Provenance.of(frame)
    execution = Execution.from_dict(provenance.execution)
    lent = feature_config.context(partition, provenance.feature_set or DEFAULT_FEATURE_SET, indicators)
    config_used = FeatureConfig(**provenance.feature_config)
    diffs = features_look_ahead(indicators, frame, partition, config_used, cuts, execution, lent, since)
    return _look_ahead_result(context, diffs, cuts, since)


@partition_check(
    indicators,
    "no_look_ahead",
    additional_ins={"raw_candles": AssetIn("raw_candles")},
    description="Recompute indicators from candles truncated at a few cut points t and compare rows <= t. After an "
    "incremental refresh: cuts in the rows it computed, recomputed as it computed them.",
)
def indicators_no_look_ahead(
    context: AssetCheckExecutionContext, config: LookAheadConfig, frame: pd.DataFrame, raw_candles: pd.DataFrame
) -> AssetCheckResult:
    if not config.enabled:
        return _skipped(context)
    cuts, since = _cuts(context, config, frame)
    diffs = indicators_look_ahead(raw_candles, frame, partition_of(context.partition_key), cuts, since)
    return _look_ahead_result(context, diffs, cuts, since)


@partition_check(
    indicators,
    "warmup_sufficient",
    blocking=False,
    additional_ins={"raw_candles": AssetIn("raw_candles")},
    description="Recompute indicators, and the features of the feature_config resource from them, with more "
    "history before the span (only the extra history is read from the candle store; the rest is the run's "
    "raw_candles), over the span's first rows when every difference ends early there, else over the whole span; "
    "WARN when values inside the span move, with the warm-up that would have been enough. After an incremental "
    "refresh that kept the rows compared (compared_rows), the previous output's passing verdict is carried "
    "(carried_from_run), except every incremental.verify_every-th refresh. Never passes when the history is "
    "shorter than the warm-up (WARN, or ERROR by config) or there is none to compare with.",
)
def indicators_warmup_sufficient(
    context: AssetCheckExecutionContext,
    config: WarmupConfig,
    frame: pd.DataFrame,
    raw_candles: pd.DataFrame,
    candle_source: CandleSourceResource,
    candle_store: CandleStoreResource,
    feature_config: FeatureConfigResource,
    incremental: IncrementalResource,
) -> AssetCheckResult:
    if not config.enabled:
        return _skipped(context)
    p = partition_of(context.partition_key)
    audit = WarmupAudit(frame, raw_candles, p)
    finding, lineage, features = audit.short(), Lineage.whole(frame), feature_config.config(p)
    settings = _warmup_settings(config, features, audit)
    carried = None if finding else _carried_warmup(context, audit, lineage, settings, incremental.verify_every)
    if carried is not None:
        return carried
    if finding is None:
        extra_start = audit.extra_start(config.history_factor)
        # Only the history before the stored warm-up is new: collect (the store fetches only what it
        # lacks) and load just that; the rest is the run's raw_candles.
        with candle_store.get_store() as store:
            store.collect(candle_source.get_source(), p, extra_start, audit.provenance.span[1])
            extra = store.load(p, extra_start, raw_candles.index[0])
        lent = None
        try:
            lent = feature_config.context(p, features.feature_set, frame)
        except CandleDataError as error:  # the features step fails with it; the indicators are still audited
            context.log.warning(f"the warm-up of the features is not compared: {error}")
            features = None
        finding = audit.compare(extra, extra_start, features, config.tolerance, lent, config.prefix_rows)
    severity = AssetCheckSeverity[config.short_history_severity] if finding.short_history else AssetCheckSeverity.WARN
    audited = {"audited_frame": lineage.token if lineage else "", "settings": settings, "carried_from_run": ""}
    return check_result(context, finding.problems, {**_metadata(finding.figures), **audited}, severity)


def _warmup_settings(config: WarmupConfig, features: FeatureConfig, audit: WarmupAudit) -> str:
    """What a warm-up verdict depends on besides the rows: the audit's settings, the features compared and the
    warm-up and lead-in the frame was computed with."""
    return json.dumps(
        {
            "history_factor": config.history_factor,
            "tolerance": config.tolerance,
            "prefix_rows": config.prefix_rows,
            "features": asdict(features),
            "warmup_bars": audit.provenance.warmup_bars,
            "lead_in_bars": audit.provenance.lead_in_bars,
        },
        sort_keys=True,
    )


def _carried_warmup(
    context: AssetCheckExecutionContext,
    audit: WarmupAudit,
    lineage: Lineage | None,
    settings: str,
    verify_every: int,
) -> AssetCheckResult | None:
    """The previous verdict, when it still holds; else None (compare).

    It holds for an incremental refresh (not one due for comparison with a full computation: every
    ``verify_every``-th, and every full computation, is compared) of an output whose own verdict passed with the
    same settings and compared the features, when the refresh kept every row that comparison read (its first
    computed row lies past them) and the window has not slid past the middle of them: the rows that left at its
    start only move it onto rows computed with more history than the warm-up, which the comparison found
    converged. The figures of the history are this frame's; the others are the comparison's, whose run
    ``carried_from_run`` names.
    """
    if lineage is None or not lineage.incremental or lineage.verification_due(verify_every):
        return None
    key = AssetCheckKey(AssetKey("indicators"), "warmup_sufficient")
    statuses = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}
    history = context.instance.event_log_storage.get_asset_check_execution_history(
        key, limit=1, status=statuses, partition_filter=PartitionKeyFilter(key=context.partition_key)
    )
    evaluation = history[0].evaluation if history else None
    if evaluation is None or not evaluation.passed:
        return None
    previous = {k: getattr(v, "value", v) for k, v in evaluation.metadata.items()}
    if previous.get("audited_frame") != lineage.base or previous.get("settings") != settings:
        return None
    if not previous.get("features_compared") or len(previous.get("compared_rows") or ()) != 2:
        return None
    first, last = (pd.Timestamp(t) for t in previous["compared_rows"])
    if pd.Timestamp(lineage.changed_from) <= last or audit.frame.index[0] > first + (last - first) / 2:
        return None
    carried = {k: v for k, v in previous.items() if k not in ("symbol", "timeframe", "partition")}
    carried.update(
        bars_available=audit.available,
        warmup_bars=audit.before,
        audited_frame=lineage.token,
        carried_from_run=previous.get("carried_from_run") or history[0].run_id,
    )
    return check_result(context, [], _metadata(carried), AssetCheckSeverity.WARN)


def _metadata(figures: dict) -> dict:
    """Lists and dicts as JSON metadata."""
    return {k: MetadataValue.json(v) if isinstance(v, list | dict) else v for k, v in figures.items()}
