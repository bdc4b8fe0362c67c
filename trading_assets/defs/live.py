"""The live path: the champion a partition trades on, and its signals for every new bar.

``champion`` judges the partition's challenger (the newest trained version) on the research loop's
evidence (trading_assets.champions.decide) and moves the MLflow alias, recording the evidence and the
decision as tags, in its metadata and as an alert. ``signals`` scores the new bars with the champion's
cached bundle and appends them to the signal history (trading_assets.signals).

No `from __future__ import annotations` here: Dagster reads the config and resource annotations.
"""

import warnings
from dataclasses import replace
from functools import partial
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
    BackfillPolicy,
    BetaWarning,
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

from trading_assets.champions import CHALLENGER, CHAMPION, Evidence, decide
from trading_assets.defs.dagster_private import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from trading_assets.defs.io_manager import read_frame, stored_path
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
from trading_assets.redaction import redact
from trading_assets.signals import ChampionMismatchError, SignalLog, age_in_bars, drift, score_new_bars
from trading_assets.timeframes import TIMEFRAMES

# backfill_policy is beta in Dagster 1.13; the warning would reach the terminal on every import.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=BetaWarning)
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
    alerts.raise_model_alert(partition, challenger, verb, decision.reason, context.run_id)
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


@asset(
    **LIVE,
    deps=["champion", "indicators"],
    backfill_policy=BackfillPolicy.single_run(),
    kinds={"pytorch", "sql"},
    check_specs=[
        AssetCheckSpec(
            SIGNAL_CHECK,
            asset="signals",
            description="ERROR when a champion's cached bundle does not load or does not fit its partition's "
            "features (names the partition, the model version and the mismatch); no signal of that partition is "
            "written then",
        )
    ],
    description="The champion's forecast and the execution rule's position for every bar after the last signal "
    "(the first run: the newest bar), with the model version, the data version of the indicators it was computed "
    "from and when it was generated. Append-only (in the candle store's database, one transaction per partition); "
    "a partition without a champion is skipped with the reason. Scores from the local champion cache: no tracking "
    "server needed. One run may cover many partitions (a range of symbols of one timeframe, as the sensor asks).",
)
def signals(
    context: AssetExecutionContext,
    mlflow_tracking: MlflowResource,
    candle_store: CandleStoreResource,
    execution: ExecutionResource,
    feature_config: FeatureConfigResource,
) -> MaterializeResult:
    cache, config, now = mlflow_tracking.champion_cache(), feature_config.config(), pd.Timestamp.now(tz="UTC")
    outcomes: dict[str, dict[str, Any]] = {}
    with candle_store.get_store() as store:
        log = SignalLog(store)
        for key in context.partition_keys:  # one at a time: only one partition's indicators in memory
            partition = partition_of(key)
            cached = cache.read(partition)
            if cached is None:
                outcomes[key] = {"skipped": f"{partition}: no champion yet: nothing to score (skipped)"}
                context.log.info(outcomes[key]["skipped"])
                continue
            stamp = {"model_name": cached.model_name, "model_version": cached.version, "features_version": ""}
            stamp["features_version"] = _version(context, key)
            try:  # a partition that cannot be scored stops its own signals, not the others' of the run
                indicators = read_frame(stored_path(mlflow_tracking.locations, "indicators", partition))
                trade = execution.for_symbol(partition.symbol)
                lent = partial(feature_config.context, partition, indicators=indicators)
                outcomes[key] = _score(log, partition, cached, indicators, config, trade, stamp, now, lent)
            except Exception as exc:  # noqa: BLE001 - recorded: the ERROR check names it and alerts
                outcomes[key] = {"stopped": f"{partition}: {type(exc).__name__}: {redact(exc)}", "rows_appended": 0}
            context.log.info(f"{partition}: {outcomes[key].get('stopped') or outcomes[key]['rows_appended']} signal(s)")
    problems = [o["stopped"] for o in outcomes.values() if "stopped" in o]
    metadata = next(iter(outcomes.values())) if len(outcomes) == 1 else _run_metadata(outcomes)
    return MaterializeResult(
        metadata=metadata, check_results=[check_result(context, problems, {}, AssetCheckSeverity.ERROR, SIGNAL_CHECK)]
    )


def _score(log: SignalLog, partition: Partition, cached, indicators, config, trade, stamp, now, lent) -> dict[str, Any]:
    """Score and append one partition's new bars with the feature set the champion was trained on (``lent``: what
    a set reads from other partitions, by the set's name); its metadata, with ``stopped`` when its champion is
    unusable (nothing written then)."""
    try:
        bundle = cached.load_bundle()
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:  # missing, bounded, mismatched weights
        champion = f"champion {cached.model_name} version {cached.version}"
        return {"stopped": f"{partition}: {champion}: the cached bundle does not load: {exc}", "rows_appended": 0}
    last = log.last(partition)
    config = replace(config, feature_set=bundle.info.get("feature_set") or config.feature_set)
    try:
        scored = score_new_bars(
            indicators,
            partition,
            bundle,
            config,
            trade,
            last[0] if last else None,
            last[1] if last else 0.0,
            stamp,
            now,
            lent(config.feature_set),
        )
    except ChampionMismatchError as exc:
        return {"stopped": str(exc), "rows_appended": 0}
    written = log.append(partition, scored.rows)
    return _signal_metadata(scored.rows, written, scored.unscored, stamp)


def _run_metadata(outcomes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A run over several partitions: the totals, and each partition's figures."""
    return {
        "partitions": len(outcomes),
        "rows_appended": sum(int(o.get("rows_appended", 0)) for o in outcomes.values()),
        "skipped": sum("skipped" in o for o in outcomes.values()),
        "stopped": sum("stopped" in o for o in outcomes.values()),
        "by_partition": MetadataValue.json(outcomes),
    }


def _version(context: AssetExecutionContext, key: str) -> str:
    """The data version of the indicators partition the signals are computed from."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("indicators"), asset_partitions=[key]), limit=1
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


class DriftConfig(Config):
    window_bars: int = Field(default=500, ge=20, description="Newest bars compared with the champion's training span")
    max_reference_bars: int = Field(default=5000, ge=20, description="Most bars of the training span read")
    threshold: float = Field(
        default=0.3, gt=0, le=1, description="WARN above this Kolmogorov-Smirnov statistic (features or forecasts)"
    )


@asset_check(
    asset=signals,
    name="drift",
    blocking=False,
    description="WARN when a feature of the newest window, or the champion's forecasts on it, is distributed "
    "unlike on the champion's training span (two-sample Kolmogorov-Smirnov statistic above the threshold); "
    "evaluated for each partition of the run, the drifted ones named.",
)
def signals_drift(
    context: AssetCheckExecutionContext,
    config: DriftConfig,
    mlflow_tracking: MlflowResource,
) -> AssetCheckResult:
    cache, problems, figures = mlflow_tracking.champion_cache(), [], {}
    for key in context.partition_keys:
        partition = partition_of(key)
        cached = cache.read(partition)
        if cached is None:
            figures[key] = {"skipped": "no champion"}
            continue
        try:
            features = read_frame(stored_path(mlflow_tracking.locations, "features", partition))
            bundle = cached.load_bundle()
            fit = features.loc[pd.Timestamp(bundle.scaler.fit_start) : pd.Timestamp(bundle.scaler.fit_end)]
            reference, recent = fit.iloc[-config.max_reference_bars :], features.iloc[-config.window_bars :]
            moved = drift(recent, reference, bundle.feature_columns)
            forecasts = [pd.DataFrame({"f": bundle.predict(frame)}) for frame in (recent, reference)]
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:  # champion_usable stops it
            figures[key] = {"skipped": f"champion version {cached.version} unusable or no features: {exc}"}
            continue
        forecast_drift = drift(*forecasts, ["f"]).get("f", 0.0)
        drifted = {c: round(v, 4) for c, v in moved.items() if v > config.threshold}
        if drifted:
            problems.append(f"{partition}: features drifted from the training span: {drifted}")
        if forecast_drift > config.threshold:
            problems.append(f"{partition}: forecasts drifted from the training span: KS {forecast_drift:.3f}")
        figures[key] = {"feature_ks": moved, "forecast_ks": forecast_drift, "model_version": cached.version}
    single = figures[context.partition_key] if len(figures) == 1 and context.has_partition_key else None
    metadata = {k: MetadataValue.json(v) if isinstance(v, dict) else v for k, v in (single or {}).items()}
    return check_result(
        context, problems, metadata or {"by_partition": MetadataValue.json(figures)}, AssetCheckSeverity.WARN
    )


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
    description="Scores the new bars: after indicators are materialized for partitions with a champion, one "
    "signals run per timeframe for all of them (a range of symbols: one process, not one per partition); a "
    "partition without a champion is not asked for.",
)
def signals_after_new_candles(context: SensorEvaluationContext, mlflow_tracking: MlflowResource):
    after = int(context.cursor) if context.cursor else None
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("indicators"), after_storage_id=after), limit=200, ascending=True
    ).records
    if not records:
        return SkipReason("no new indicators")
    context.update_cursor(str(records[-1].storage_id))
    cache = mlflow_tracking.champion_cache()
    wanted = {partition_of(r.partition_key) for r in records if r.partition_key}
    wanted = {p for p in wanted if cache.read(p) is not None}
    if not wanted:
        return SkipReason(f"{len(records)} new indicators materialization(s), none of a partition with a champion")
    symbols = context.instance.get_dynamic_partitions("symbol")
    last = records[-1].storage_id
    return [
        RunRequest(run_key=f"signals:{first}..{end}:{last}", tags=range_tags(first, end))
        for first, end in symbol_ranges(wanted, symbols)
    ]


def symbol_ranges(wanted: set[Partition], symbols: list[str]) -> list[tuple[str, str]]:
    """``wanted`` as the fewest partition key ranges of one timeframe each: runs of consecutive symbols in the
    symbol partitions' order (a Dagster range of a symbol x timeframe partitioning is a rectangle)."""
    order = {s: i for i, s in enumerate(symbols)}
    ranges = []
    for timeframe in sorted({p.timeframe for p in wanted}):
        positions = sorted(order[p.symbol] for p in wanted if p.timeframe == timeframe and p.symbol in order)
        start = 0
        for i in range(1, len(positions) + 1):
            if i == len(positions) or positions[i] != positions[i - 1] + 1:
                first, end = symbols[positions[start]], symbols[positions[i - 1]]
                ranges.append((Partition(first, timeframe).key, Partition(end, timeframe).key))
                start = i
    return ranges


def range_tags(first: str, end: str) -> dict[str, str]:
    """The tags of a run over the partition key range ``first``..``end`` (inclusive)."""
    return {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: end}


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
