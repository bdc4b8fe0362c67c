"""The live path: the champion a partition trades on, and its signals for every new bar.

``champion`` judges the partition's challenger (the newest trained version) on the research loop's
evidence (trading_assets.champions.decide) and moves the MLflow alias, recording the evidence and the
decision as tags, in its metadata and as an alert. ``signals`` scores the new bars with the champion's
cached bundle and appends them to the signal history (trading_assets.signals).

No `from __future__ import annotations` here: Dagster reads the config and resource annotations.
"""

import time
from typing import Any

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetRecordsFilter,
    Config,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SkipReason,
    asset,
    asset_check,
    schedule,
    sensor,
)
from pydantic import Field

from trading_assets.alerts import ModelAlert
from trading_assets.champions import CHALLENGER, CHAMPION, Decision, Evidence, decide
from trading_assets.defs.partition_checks import check_result
from trading_assets.defs.partitions import market_partitions, partition_of
from trading_assets.defs.resources import (
    AlertResource,
    CandleStoreResource,
    ExecutionResource,
    FeatureConfigResource,
    MlflowResource,
)
from trading_assets.defs.versions import CODE_VERSION
from trading_assets.partition import Partition
from trading_assets.signals import ChampionMismatchError, SignalLog, age_in_bars, drift, score_new_bars
from trading_assets.timeframes import TIMEFRAMES

LIVE = {"partitions_def": market_partitions, "group_name": "live", "code_version": CODE_VERSION}
SIGNAL_CHECK = "champion_usable"


class ChampionConfig(Config):
    significance_level: float = Field(
        default=0.05, gt=0, lt=1, description="Level the challenger's Holm-adjusted net edge must reach"
    )


@asset(
    **LIVE,
    deps=["trained_model"],
    ins={"evaluation": AssetIn("evaluation")},
    kinds={"mlflow"},
    description="The partition's champion: the challenger (the newest trained version) replaces it only when its "
    "model's net edge after costs is significant after Holm's adjustment, positive and confirmed on the hold-out, "
    "and (against a sitting champion) beats the champion's recorded evidence. Every decision is recorded as "
    "MLflow tags, here and as an alert; a promoted bundle is cached locally for scoring.",
)
def champion(
    context: AssetExecutionContext,
    config: ChampionConfig,
    evaluation: pd.DataFrame,
    mlflow_tracking: MlflowResource,
    alerts: AlertResource,
) -> MaterializeResult:
    partition = partition_of(context.partition_key)
    registry = mlflow_tracking.registry()
    challenger, sitting = registry.alias(partition, CHALLENGER), registry.alias(partition, CHAMPION)
    cached = mlflow_tracking.champion_cache().read(partition)
    if sitting and (cached is None or cached.version != sitting):  # a new volume, an interrupted promotion
        registry.recache(partition, sitting)
    judged = registry.decision(partition, challenger) if challenger else ""
    if challenger is None or challenger == sitting or judged:  # every version is judged once
        reason = "no trained version yet" if challenger is None else f"version {challenger}: {judged or 'champion'}"
        return MaterializeResult(metadata={"decision": "none", "reason": reason, "champion_version": sitting or ""})
    evidence = Evidence.from_evaluation(evaluation, registry.kind(partition, challenger))
    decision = decide(evidence, registry.evidence(partition, sitting) if sitting else None, config.significance_level)
    verb = "promoted" if decision.promote else "refused"
    if decision.promote:
        registry.promote(partition, challenger)
    registry.record(partition, challenger, evidence, f"{verb}: {decision.reason}")
    context.log.info(f"{partition}: challenger version {challenger} {verb}: {decision.reason}")
    _alert(context, alerts, partition, challenger, verb, decision)
    return MaterializeResult(
        metadata={
            "decision": verb,
            "reason": decision.reason,
            "challenger_version": challenger,
            "champion_version": challenger if decision.promote else sitting or "",
            "previous_champion_version": sitting or "",
            "evidence": MetadataValue.json(evidence.as_dict() if evidence else {}),
        }
    )


def _alert(
    context: AssetExecutionContext, alerts: AlertResource, partition: Partition, version: str, verb: str, d: Decision
) -> None:
    from trading_assets.training.tracking import registered_model_name

    name, url = registered_model_name(partition), alerts.run_url(context.run_id)
    alerts.raise_alert(ModelAlert(partition.key, name, version, verb, d.reason, context.run_id, url, time.time()))


@asset(
    **LIVE,
    deps=["champion"],
    ins={"indicators": AssetIn("indicators")},
    kinds={"pytorch", "sql"},
    check_specs=[
        AssetCheckSpec(
            SIGNAL_CHECK,
            asset="signals",
            description="ERROR when the champion's cached bundle does not load or does not fit the partition's "
            "features (names the model version and the mismatch); no signal is written then",
        )
    ],
    description="The champion's forecast and the execution rule's position for every bar after the last signal "
    "(the first run: the newest bar), with the model version, the data version of the indicators it was computed "
    "from and when it was generated. Append-only (in the candle store's database, one transaction per run); a "
    "partition without a champion is skipped with the reason. Scores from the local champion cache: no tracking "
    "server needed.",
)
def signals(
    context: AssetExecutionContext,
    indicators: pd.DataFrame,
    mlflow_tracking: MlflowResource,
    candle_store: CandleStoreResource,
    execution: ExecutionResource,
    feature_config: FeatureConfigResource,
) -> MaterializeResult:
    partition = partition_of(context.partition_key)
    cached = mlflow_tracking.champion_cache().read(partition)
    if cached is None:
        reason = f"{partition}: no champion yet: nothing to score (skipped)"
        context.log.info(reason)
        return _signals_result(context, {"skipped": reason, "rows_appended": 0}, [])
    stamp = {"model_name": cached.model_name, "model_version": cached.version, "features_version": _version(context)}
    try:
        bundle = cached.load_bundle()
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:  # missing, bounded, mismatched weights
        problem = f"champion {cached.model_name} version {cached.version}: the cached bundle does not load: {exc}"
        return _signals_result(context, {"stopped": problem, "rows_appended": 0}, [problem])
    with candle_store.get_store() as store:
        log = SignalLog(store)
        last = log.last(partition)
        try:
            scored = score_new_bars(
                indicators,
                partition,
                bundle,
                feature_config.config(),
                execution.for_symbol(partition.symbol),
                last[0] if last else None,
                last[1] if last else 0.0,
                stamp,
                pd.Timestamp.now(tz="UTC"),
            )
        except ChampionMismatchError as exc:
            return _signals_result(context, {"stopped": str(exc), "rows_appended": 0}, [str(exc)])
        written = log.append(partition, scored.rows)
    context.log.info(f"{partition}: {written} signal(s) from {cached.model_name} version {cached.version}")
    return _signals_result(context, _signal_metadata(scored.rows, written, scored.unscored, stamp), [])


def _version(context: AssetExecutionContext) -> str:
    """The data version of the indicators partition the signals are computed from."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("indicators"), asset_partitions=[context.partition_key]), limit=1
    ).records
    return (records[0].asset_materialization.tags or {}).get("dagster/data_version", "") if records else ""


def _signal_metadata(rows: pd.DataFrame, written: int, unscored: int, stamp: dict[str, str]) -> dict[str, Any]:
    last = rows.iloc[-1] if len(rows) else None
    return {
        "rows_appended": written,
        "bars_without_history": unscored,
        "model_version": stamp["model_version"],
        "indicators_data_version": stamp["features_version"],
        "last_bar": rows.index[-1].isoformat() if last is not None else "",
        "last_forecast": float(last["forecast"]) if last is not None else 0.0,
        "last_position": float(last["position"]) if last is not None else 0.0,
    }


def _signals_result(context: AssetExecutionContext, metadata: dict, problems: list[str]) -> MaterializeResult:
    return MaterializeResult(
        metadata=metadata,
        check_results=[check_result(context, problems, {}, AssetCheckSeverity.ERROR, SIGNAL_CHECK)],
    )


class DriftConfig(Config):
    window_bars: int = Field(default=500, ge=20, description="Newest bars compared with the champion's training span")
    max_reference_bars: int = Field(default=5000, ge=20, description="Most bars of the training span read")
    threshold: float = Field(
        default=0.3, gt=0, le=1, description="WARN above this Kolmogorov-Smirnov statistic (features or forecasts)"
    )


@asset_check(
    asset=signals,
    name="drift",
    partitions_def=market_partitions,
    blocking=False,
    additional_ins={"features": AssetIn("features")},
    description="WARN when a feature of the newest window, or the champion's forecasts on it, is distributed "
    "unlike on the champion's training span (two-sample Kolmogorov-Smirnov statistic above the threshold).",
)
def signals_drift(
    context: AssetCheckExecutionContext, config: DriftConfig, features: pd.DataFrame, mlflow_tracking: MlflowResource
) -> AssetCheckResult:
    cached = mlflow_tracking.champion_cache().read(partition_of(context.partition_key))
    if cached is None:
        return check_result(context, [], {"skipped": "no champion"}, AssetCheckSeverity.WARN)
    bundle = cached.load_bundle()
    fit = features.loc[pd.Timestamp(bundle.scaler.fit_start) : pd.Timestamp(bundle.scaler.fit_end)]
    reference, recent = fit.iloc[-config.max_reference_bars :], features.iloc[-config.window_bars :]
    moved = drift(recent, reference, bundle.feature_columns)
    forecasts = [pd.DataFrame({"f": bundle.predict(frame)}) for frame in (recent, reference)]
    forecast_drift = drift(*forecasts, ["f"]).get("f", 0.0)
    drifted = {c: round(v, 4) for c, v in moved.items() if v > config.threshold}
    problems = [f"features drifted from the training span: {drifted}"] if drifted else []
    if forecast_drift > config.threshold:
        problems.append(f"forecasts drifted from the training span: KS {forecast_drift:.3f}")
    figures = {"feature_ks": MetadataValue.json(moved), "forecast_ks": forecast_drift, "model_version": cached.version}
    return check_result(context, problems, figures, AssetCheckSeverity.WARN)


class FreshnessConfig(Config):
    warn_after_bars: float = Field(default=2, gt=0, description="WARN when the newest signal is this many bars old")
    error_after_bars: float = Field(default=5, gt=0, description="ERROR when the newest signal is this many bars old")


@asset_check(
    asset=signals,
    name="fresh",
    blocking=False,
    description="Every partition with a champion has a signal for a recent bar: WARN after warn_after_bars closed "
    "bars without one, ERROR after error_after_bars (per timeframe, against now). Evaluated by the "
    "signals_freshness schedule.",
)
def signals_fresh(
    context: AssetCheckExecutionContext,
    config: FreshnessConfig,
    mlflow_tracking: MlflowResource,
    candle_store: CandleStoreResource,
) -> AssetCheckResult:
    cache, now = mlflow_tracking.champion_cache(), pd.Timestamp.now(tz="UTC")
    symbols = context.instance.get_dynamic_partitions("symbol")
    ages: dict[str, float | None] = {}
    with candle_store.get_store() as store:
        log = SignalLog(store)
        for partition in (Partition(s, tf) for s in symbols for tf in TIMEFRAMES):
            if cache.read(partition) is not None:
                last = log.last(partition)
                ages[partition.key] = None if last is None else age_in_bars(last[0], partition.timeframe, now)
    late = {k: a for k, a in ages.items() if a is None or a > config.warn_after_bars}
    errors = {k: a for k, a in late.items() if a is None or a > config.error_after_bars}
    problems = [f"no recent signal (bars old; None: never): {late}"] if late else []
    severity = AssetCheckSeverity.ERROR if errors else AssetCheckSeverity.WARN
    return AssetCheckResult(
        passed=not problems,
        severity=severity,
        description="; ".join(problems) or None,
        metadata={"ages_in_bars": MetadataValue.json(ages), "stale": len(late), "beyond_error": len(errors)},
    )


LIVE_CHECKS = [signals_drift, signals_fresh]


@sensor(
    name="signals_after_new_candles",
    job_name="signals_job",
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Scores the new bars: after indicators are materialized for a partition with a champion, one "
    "signals run for it (a partition without a champion is not asked for).",
)
def signals_after_new_candles(context: SensorEvaluationContext, mlflow_tracking: MlflowResource):
    after = int(context.cursor) if context.cursor else None
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("indicators"), after_storage_id=after), limit=200, ascending=True
    ).records
    if not records:
        return SkipReason("no new indicators")
    context.update_cursor(str(records[-1].storage_id))
    cache, newest = mlflow_tracking.champion_cache(), {}
    for record in records:  # one run per partition, for its newest materialization
        if record.partition_key and cache.read(partition_of(record.partition_key)) is not None:
            newest[record.partition_key] = record.storage_id
    if not newest:
        return SkipReason(f"{len(records)} new indicators materialization(s), none of a partition with a champion")
    return [RunRequest(run_key=f"signals:{key}:{storage_id}", partition_key=key) for key, storage_id in newest.items()]


@schedule(
    name="signals_freshness",
    cron_schedule="*/5 * * * *",
    job_name="signals_freshness_job",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.STOPPED,
    description="Evaluates the signals' freshness check every five minutes (failures alert).",
)
def signals_freshness(context: ScheduleEvaluationContext):
    return RunRequest(run_key=f"fresh@{context.scheduled_execution_time.isoformat()}")
