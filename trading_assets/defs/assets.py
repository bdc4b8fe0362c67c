"""The data assets: raw_candles -> indicators -> features, partitioned by symbol x timeframe.

No `from __future__ import annotations` here: Dagster reads the config and resource annotations.
"""

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetRecordsFilter,
    AssetsDefinition,
    Config,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    RetryRequested,
    asset,
)
from pydantic import Field

from trading_assets import settings
from trading_assets.candles import FilledCandles, fill_candle_grid
from trading_assets.defs.context import declared_lineage, undeclared_reads
from trading_assets.defs.dagster_private import CODE_VERSION_TAG
from trading_assets.defs.incremental import incremental_check, previous_output, verified
from trading_assets.defs.metadata import counts_metadata, frame_metadata
from trading_assets.defs.partitions import market_partitions, partition_of
from trading_assets.defs.resources import (
    CandleSourceResource,
    CandleStoreResource,
    ExecutionResource,
    FeatureConfigResource,
    IncrementalResource,
)
from trading_assets.defs.runs import collect_progress
from trading_assets.defs.versions import CODE_VERSION, frame_data_version
from trading_assets.errors import SourceUnavailableError, StoreError
from trading_assets.execution import Execution
from trading_assets.features import (
    FeatureConfig,
    FeatureContext,
    FeatureReport,
    FeatureResult,
    build_features,
    extend_features,
    feature_breaks,
    feature_resume,
    feature_set,
    lead_in_shortfall,
    older_lent_rows,
)
from trading_assets.incremental import Lineage, resume_point, unpack_mask
from trading_assets.indicators import (
    IndicatorResult,
    compute_indicators,
    extend_indicators,
    indicator_names,
    prepare_candles,
)
from trading_assets.partition import Partition
from trading_assets.provenance import Provenance
from trading_assets.redaction import redact
from trading_assets.schemas import RawCandlesModel, features_schema, indicators_schema
from trading_assets.sources.base import CandleSource, source_identity
from trading_assets.store import CandleStore, CollectResult
from trading_assets.timeframes import TIME_PATTERN, get_timeframe
from trading_assets.window import (
    FILLED,
    CandleWindow,
    WindowPlan,
    WindowRequest,
    assemble_window,
    extend_filled,
    tail_start,
)

# What an incremental raw window must have as a full one does, besides its bars: which were filled, the breaks.
RAW_ATTRS = (FILLED, "breaks", "filled_bars", "filled_bars_in_span", "history_bars", "span_start", "span_end")

# Every data asset: one partitioning, one Parquet file per partition, one group.
DATA_ASSET = {
    "partitions_def": market_partitions,
    "io_manager_key": "parquet_io_manager",
    "group_name": "market_data",
    "code_version": CODE_VERSION,
}


class CandleWindowConfig(Config):
    """The span of candles a partition covers."""

    days: float | None = Field(
        default=None,
        gt=0,
        description="Length of the requested span in days; default per timeframe "
        "(trading_assets.timeframes.DEFAULT_SPAN_DAYS: 8 up to 5m, 56 up to 60m, 245 for 240m, 740 for 1d)",
    )
    bars: int | None = Field(
        default=None,
        gt=0,
        description="Length of the requested span in bars of the partition's timeframe (instead of days)",
    )
    end: str | None = Field(
        pattern=TIME_PATTERN,
        default=None,
        description="Exclusive end of the span (ISO 8601, UTC unless an offset is given); "
        "default: now. Clamped to the start of the bar in progress, which is not closed yet.",
    )
    max_span_bars: int = Field(
        default=WindowRequest.max_span_bars,
        gt=0,
        description="Most bars a requested span may hold (checked before anything is fetched); the default is two "
        "years of 1m bars. Raise it on purpose for longer spans: memory grows with the bars.",
    )
    warmup_tolerance: float = Field(
        default=WindowRequest.warmup_tolerance,
        gt=0,
        lt=1,
        description="How far smoothed indicators may still depend on where the history "
        "starts; sets the warm-up length (see trading_assets.indicators.warmup_bars)",
    )
    max_fill_bars: int = Field(
        default=WindowRequest.max_fill_bars,
        ge=0,
        description="Longest run of missing session bars filled flat at the previous close (no trades); a "
        "longer gap is a break: left open, reported by the continuity check, never spanned by a sample",
    )
    max_invalid_fraction: float = Field(
        default=WindowRequest.max_invalid_fraction,
        ge=0,
        le=1,
        description="Most bars of the requested span the source may deliver with invalid values (missing or "
        "non-numeric cell, high < low, negative volume, ...) before the step stops; each such bar is "
        "treated as missing. Bars outside the span never count.",
    )

    def request(self) -> WindowRequest:
        return WindowRequest(**{f: getattr(self, f) for f in WindowRequest.__dataclass_fields__})


def _request_reporter(
    context: AssetExecutionContext, partition: Partition, source: str, every_seconds: float = 2.0
) -> Callable[[int, int], None]:
    """Logs the exchange requests done / expected: the first, the last and one every ``every_seconds``."""
    last = 0.0

    def report(done: int, expected: int) -> None:
        nonlocal last
        if done in (1, expected) or time.monotonic() - last >= every_seconds:
            last = time.monotonic()
            context.log.info(collect_progress(partition.symbol, partition.timeframe, source, done, expected))

    return report


def candle_chart(frame: pd.DataFrame, title: str, filled: np.ndarray | None = None) -> MetadataValue:
    """The candlestick chart of the partition's last bars as a Markdown image (see trading_assets.charts)."""
    from trading_assets import charts

    return MetadataValue.md(charts.markdown_image(charts.candlestick(frame, title, filled), title))


def chart_inputs(data_version: DataVersion, title: str, filled: np.ndarray) -> str:
    """A digest of what the raw candles' chart is drawn from: the candles (their data version), the title
    and the filled-bar mask (the data version counts filled bars, the mask says which)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{data_version.value}\0{title}\0".encode())
    digest.update(np.packbits(np.asarray(filled, dtype=bool)).tobytes())
    return digest.hexdigest()


def chart_metadata(
    context: AssetExecutionContext,
    frame: pd.DataFrame,
    title: str,
    filled: np.ndarray | None = None,
    inputs: str | None = None,
) -> dict[str, Any]:
    """The chart of the partition's last bars (``chart``, with ``chart_last_bar``), drawn again only when it
    would change: matplotlib costs ~0.5 s a process and a chart ~0.3 s.

    Kept from the partition's last materialization by this code version when it was drawn from the same
    ``inputs`` (a re-collection that found nothing new), and between the comparisons of an incremental refresh
    with a full computation (every ``incremental.verify_every`` refreshes; ``chart_last_bar`` says how old it
    is). Drawn for a computation in full and at each comparison.
    """
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=context.asset_key, asset_partitions=[context.partition_key]), limit=1
    ).records
    last = records[0].asset_materialization if records else None
    if last is not None and (last.tags or {}).get(CODE_VERSION_TAG) == CODE_VERSION and "chart" in last.metadata:
        same_inputs = inputs is not None and getattr(last.metadata.get("chart_inputs"), "value", None) == inputs
        lineage = Lineage.of(frame)
        between = lineage is not None and lineage.incremental and not lineage.verification_due(_verify_every(context))
        if same_inputs or between:
            kept = {k: last.metadata[k] for k in ("chart", "chart_last_bar") if k in last.metadata}
            return {**kept, **({"chart_inputs": inputs} if inputs else {})}
    drawn = {"chart": candle_chart(frame, title, filled), "chart_last_bar": frame.index[-1].isoformat()}
    return {**drawn, **({"chart_inputs": inputs} if inputs else {})}


def _verify_every(context: AssetExecutionContext) -> int:
    return context.resources.incremental.verify_every


@asset(
    **DATA_ASSET,
    kinds={"pandas", "parquet"},
    check_specs=[incremental_check("raw_candles")],
    description="OHLCV candles on the symbol's session grid (UTC), the requested span plus indicator warm-up "
    "counted in session bars; short gaps (<= max_fill_bars) filled flat at the previous close with zero volume and "
    "counted, longer gaps kept as breaks, bars with invalid values treated as missing. A refresh collects and fills "
    "only the bars after the previous output (see incremental). Transient source errors re-run the step "
    "(candle_source.step_retries); a ban, an unknown market or bad data do not.",
)
def raw_candles(
    context: AssetExecutionContext,
    config: CandleWindowConfig,
    candle_source: CandleSourceResource,
    candle_store: CandleStoreResource,
    feature_config: FeatureConfigResource,
    incremental: IncrementalResource,
):  # MaterializeResult carrying the frame (an annotation would make Dagster type-check it as Nothing)
    partition = partition_of(context.partition_key)
    calendar = candle_source.calendar_for(partition.symbol)
    plan = WindowPlan.of(partition, calendar, config.request(), feature_config.lead_in_bars())
    source = candle_source.get_source()
    if hasattr(source, "on_page"):  # an exchange: report requests done / expected (the CLI shows an ETA)
        source.on_page = _request_reporter(context, partition, source.name)
    previous = None if candle_store.refresh else previous_output(context, incremental)
    if previous is not None and frame_data_version(previous).value != Lineage.of(previous).token:
        previous = None  # the stored candles are not those it recorded (changed on disk): compute all
    try:
        with candle_store.get_store() as store:
            window = _collect_window(store, source, plan, candle_store, previous)
            reference = partial(_stored_window, store, plan, source.name)
            frame, check = verified(context, incremental, window.frame, lambda: reference().frame, 0.0, RAW_ATTRS)
    except (SourceUnavailableError, StoreError) as exc:
        raise _retry_if_transient(context, candle_source, partition, exc) from exc
    for warning in window.warnings:
        context.log.warning(warning)
    context.log.info(window.summary(source.name))
    return _raw_candles_output(context, window, frame, source_identity(source), check)


def _collect_window(
    store: CandleStore, source: CandleSource, plan: WindowPlan, candle_store: CandleStoreResource, previous
) -> CandleWindow:
    """The window of ``plan``: ``previous`` extended by the bars after it where it allows (a collection and
    fill of the tail only), else collected and filled in full; its lineage attached."""
    args = (plan.calendar, plan.request.max_fill_bars)
    args += (candle_store.refresh, candle_store.refetch_bars, candle_store.refetch_breaks)
    start = None if previous is None else tail_start(plan, previous, candle_store.refetch_bars)
    if start is not None:
        tail, collected = store.filled_window(source, plan.partition, start, plan.span_end, *args)
        filled = extend_filled(plan, previous, tail)
        meet = tail.frame.index[~tail.filled_mask][0] if filled is not None else None  # see extend_filled
        if filled is not None and not _kept_breaks_filled(store, source, plan, filled, meet, candle_store):
            window = assemble_window(plan, filled, collected, source.name)
            Lineage.of(previous).extended_by(None, meet).attach(window.frame)
            return window
    filled, collected = store.filled_window(source, plan.partition, plan.fetch_start, plan.span_end, *args)
    window = assemble_window(plan, filled, collected, source.name)
    Lineage.full().attach(window.frame)
    return window


def _kept_breaks_filled(
    store: CandleStore,
    source: CandleSource,
    plan: WindowPlan,
    filled: FilledCandles,
    meet: pd.Timestamp,
    candle_store: CandleStoreResource,
) -> bool:
    """Ask again for the newest ``refetch_breaks`` breaks of the window that lie in its kept rows (the tail's were
    asked by its own collection), as a full collection does; True when the source had bars there now (the
    window is then collected in full)."""
    delta = get_timeframe(plan.partition.timeframe).delta
    newest = filled.breaks[-candle_store.refetch_breaks :] if candle_store.refetch_breaks else ()
    kept = [(b.after + delta, b.resume) for b in newest if b.after < meet]
    return (
        bool(kept)
        and store.collect_spans(source, plan.partition, kept, store.coverage(plan.partition)).rows_fetched > 0
    )


def _stored_window(store: CandleStore, plan: WindowPlan, source: str) -> CandleWindow:
    """The window of ``plan`` computed in full from what the store holds (no collection): what an incremental
    refresh is compared with."""
    partition, start, end = plan.partition, plan.fetch_start, plan.span_end
    candles = store.load(partition, start, end)
    filled = fill_candle_grid(candles, partition.timeframe, start, end, plan.calendar, plan.request.max_fill_bars)
    return assemble_window(plan, filled, CollectResult(), source)


def _retry_if_transient(
    context: AssetExecutionContext,
    candle_source: CandleSourceResource,
    partition: Partition,
    exc: SourceUnavailableError | StoreError,
) -> Exception:
    """A step retry with backoff for a transient error; ``exc`` itself for a ban, bad data, a full disk:
    retrying unchanged input cannot help those."""
    if not exc.transient:
        return exc
    wait = candle_source.step_retry_seconds * 2 ** (context.retry_number)
    what = "store" if isinstance(exc, StoreError) else "source"
    context.log.warning(f"{partition}: transient {what} error, step retry in {wait:.0f}s: {redact(exc)}")
    return RetryRequested(max_retries=candle_source.step_retries, seconds_to_wait=wait)


def _raw_candles_output(
    context: AssetExecutionContext, window: CandleWindow, frame: pd.DataFrame, source: str, check: AssetCheckResult
):  # MaterializeResult carrying the frame (an annotation would make Dagster type-check it as Nothing)
    """The window's ``frame`` as ``raw_candles``' output: its data version (the same candles again: downstream
    stays fresh; it is the frame's lineage token too), the chart (drawn again only when its inputs changed),
    what the window holds and the incremental check."""
    filled, collected, plan = window.filled, window.collected, window.plan
    data_version = frame_data_version(frame)
    Lineage.of(frame).but(token=data_version.value).attach(frame)
    title = f"{plan.partition} raw candles"
    mask = unpack_mask(frame.attrs[FILLED], len(frame))  # the stored frame's (the full one, after a difference)
    chart = chart_metadata(context, frame, title, mask, chart_inputs(data_version, title, mask))
    return MaterializeResult(
        value=frame,
        data_version=data_version,
        check_results=[check],
        metadata={
            **frame_metadata(frame, RawCandlesModel),
            "symbol": plan.partition.symbol,
            "timeframe": plan.partition.timeframe,
            "source": source,
            "calendar": plan.calendar.name,
            "span_start": plan.span_start.isoformat(),
            "span_end": plan.span_end.isoformat(),
            "span_rows": int((frame.index >= plan.span_start).sum()),
            "span_session_bars": window.span_bars,
            "warmup_bars": plan.warmup,
            "warmup_rows": window.history,
            "missing_bars_filled": filled.filled,
            "missing_bars_filled_in_span": window.provenance.filled_bars_in_span,
            "leading_missing_bars": filled.leading_missing,
            "trailing_missing_bars": filled.trailing_missing,
            "breaks": len(filled.breaks),
            "break_examples": MetadataValue.json([b.describe() for b in filled.breaks[:20]]),
            "invalid_bars": len(collected.invalid_bars),
            "invalid_bar_examples": MetadataValue.json(collected.invalid_bars[:20]),
            "candles_fetched": collected.rows_fetched,
            "fetched_spans": MetadataValue.json([[a.isoformat(), b.isoformat()] for a, b in collected.fetched_spans]),
            **chart,
        },
    )


@asset(
    **DATA_ASSET,
    kinds={"pandas", "parquet", "talib"},
    check_specs=[incremental_check("indicators")],
    description=f"Candles plus {len(indicator_names())} TA-Lib indicators over exactly the requested span "
    "(warm-up trimmed; see trading_assets.indicators.INDICATORS). A refresh computes only the changed bars, from "
    "their warm-up (see incremental).",
)
def indicators(
    context: AssetExecutionContext, raw_candles: pd.DataFrame, incremental: IncrementalResource
):  # MaterializeResult carrying the frame (an annotation would make Dagster type-check it as Nothing)
    partition = partition_of(context.partition_key)
    candles, pollution = prepare_candles(raw_candles, partition)
    provenance = Provenance.of(raw_candles)
    span_start, _ = provenance.span
    keep_from = None
    if span_start is not None:  # the requested span plus the features' lead-in (session bars)
        first = int(candles.index.searchsorted(span_start)) - provenance.lead_in_bars
        keep_from = candles.index[max(first, 0)] if len(candles) else span_start
    result = _indicators_of(candles, keep_from, raw_candles, previous_output(context, incremental))
    frame, check = verified(
        context,
        incremental,
        result.frame,
        lambda: provenance.attach(compute_indicators(candles, keep_from).frame),
        provenance.warmup_tolerance,
    )
    nan_counts = frame.isna().sum()
    if nan_counts.any():
        context.log.warning(f"{partition}: NaN after warm-up trimming: {nan_counts[nan_counts > 0].to_dict()}")
    return MaterializeResult(
        value=frame,
        check_results=[check],
        metadata={
            **frame_metadata(frame, indicators_schema()),
            "computed_rows": computed_rows(frame),
            "warmup_rows_trimmed": result.warmup_rows_trimmed,
            "nan_counts": counts_metadata(nan_counts.to_dict()),
            "flat_window_replacements": counts_metadata(result.flat_replacements),
            "coerced_cells": counts_metadata(pollution.coerced),
            "dropped_columns": MetadataValue.json(pollution.dropped_columns),
            **chart_metadata(context, frame, f"{partition} candles and indicators"),
        },
    )


def _indicators_of(
    candles: pd.DataFrame, keep_from: pd.Timestamp | None, raw_candles: pd.DataFrame, previous: pd.DataFrame | None
) -> IndicatorResult:
    """The indicators from ``keep_from`` on: ``previous`` extended by the changed bars where it allows, else all
    computed; the raw candles' provenance and the lineage attached."""
    provenance, source = Provenance.of(raw_candles), Lineage.of(raw_candles)
    token = source.token if source else None
    resume = resume_point(previous, raw_candles, keep_from)
    history = provenance.warmup_bars - provenance.lead_in_bars
    result = None if resume is None else extend_indicators(previous, candles, keep_from, resume, history)
    if result is None:
        result, lineage = compute_indicators(candles, keep_from), Lineage.full(token)
    else:
        lineage = Lineage.of(previous).extended_by(token, resume)
    lineage.attach(provenance.attach(result.frame))
    return result


def features_asset(declared: str) -> AssetsDefinition:
    """The ``features`` asset of a code location whose feature set is ``declared`` (``TRADING_FEATURE_SET``): its
    upstream is the partition's own indicators, plus the other partitions that set reads (see defs/context), so
    the UI draws them, staleness follows them and backfills wait for them. A run may pick another set
    (``feature_config``); it then reads what that set needs all the same, undeclared (a warning says so)."""
    ins, deps = declared_lineage(declared, raw_candles)

    @asset(
        **DATA_ASSET,
        name="features",
        kinds={"pandas", "parquet"},
        ins=ins,
        deps=deps,
        check_specs=[incremental_check("features")],
        description="Model-ready float32 features (cleaned, outlier-clipped with time-aligned trailing blocks, "
        "unscaled: each model fits its scaler on its own train span) plus `target`, the one-bar log return of the "
        "trade the execution model fills (by default bought at the next bar's open): the label is the trade. A "
        "refresh computes only the changed rows, from the lead-in they need (see incremental). The "
        "multi_timeframe and cross_asset sets also read the indicators of the symbol's coarser timeframes and the "
        f"candles of the reference symbol, joined as of each bar's close. Declared lineage: the {declared!r} set's.",
    )
    def _features(
        context: AssetExecutionContext,
        indicators: pd.DataFrame,
        execution: ExecutionResource,
        feature_config: FeatureConfigResource,
        incremental: IncrementalResource,
    ):  # MaterializeResult carrying the frame (an annotation would make Dagster type-check it as Nothing)
        return _build_features(context, indicators, execution, feature_config, incremental, declared)

    return _features


def _build_features(
    context: AssetExecutionContext,
    indicators: pd.DataFrame,
    execution: ExecutionResource,
    feature_config: FeatureConfigResource,
    incremental: IncrementalResource,
    declared: str,
) -> MaterializeResult:
    partition = partition_of(context.partition_key)
    config = feature_config.config(partition)
    location = settings.feature_set()
    if feature_config.feature_set is None and config.feature_set != location:
        context.log.info(f"{partition}: the code location's feature set {location} does not serve it: default set")
    undeclared = undeclared_reads(declared, config.feature_set)
    if undeclared:
        context.log.warning(f"{partition}: {undeclared}")
    trade = execution.for_symbol(partition.symbol)
    provenance = Provenance.of(indicators)
    shortfall = lead_in_shortfall(partition, provenance.lead_in_bars, config)
    if shortfall:
        context.log.warning(shortfall)
    lent = feature_config.context(partition, config.feature_set, indicators)
    build = FeatureBuild(partition, config, trade, indicators, lent)
    previous = previous_output(context, incremental)
    if lent is not None and previous is not None:
        context.log.info(f"{partition}: feature set {config.feature_set} reads other partitions: computed in full")
    result = build.extend(previous)
    frame, check = verified(context, incremental, result.frame, lambda: build.full().frame, provenance.warmup_tolerance)
    report = result.report
    for col, examples in report.pollution.examples.items():
        context.log.warning(
            f"{partition}: coerced {report.pollution.coerced[col]} non-numeric cells in '{col}', e.g. {examples[:3]}"
        )
    metadata = _features_metadata(frame, report, config, trade)
    if lent is not None:
        reads = feature_set(config.feature_set).reads(partition, settings.reference_symbols())
        metadata["read_partitions"] = MetadataValue.json([f"{asset} {other.key}" for asset, other in reads])
        older = older_lent_rows(lent, frame.index, partition.timeframe)
        metadata["rows_joined_to_an_older_bar"] = counts_metadata(older)
        if any(older.values()):
            context.log.warning(
                f"{partition}: rows joined to an older bar than the one closing with them (not stored yet, or "
                f"missing): {older}; a computation after those bars are stored changes them"
            )
    version = frame_data_version(frame)  # the same rows again: what follows stays fresh
    return MaterializeResult(value=frame, data_version=version, check_results=[check], metadata=metadata)


features = features_asset(settings.feature_set())


@dataclass(frozen=True)
class FeatureBuild:
    """The features of one partition's indicators: in full, or extending the previous output."""

    partition: Partition
    config: FeatureConfig
    trade: Execution
    indicators: pd.DataFrame
    context: FeatureContext | None = None  # the other partitions the feature set reads

    def full(self) -> FeatureResult:
        args = (self.indicators, self.partition, self.config, self._span_start(), self.trade)
        result = build_features(*args, context=self.context)
        self._attach(result.frame)
        return result

    def extend(self, previous: pd.DataFrame | None) -> FeatureResult:
        """``previous`` extended by the changed rows where it allows (see resume_point), else :meth:`full`. A set
        reading other partitions computes in full: their changes are not tracked row by row."""
        span_start, source = self._span_start(), Lineage.of(self.indicators)
        extendable = self.context is None and self._same_recipe(previous)
        resume = resume_point(previous, self.indicators, span_start) if extendable else None
        if resume is None or source is None:
            result = self.full()
            Lineage.full(source.token if source else None).attach(result.frame)
            return result
        args = (self.indicators, self.partition, self.config, span_start, self.trade, resume)
        result = extend_features(previous, *args)
        self._attach(result.frame)
        changed = feature_resume(self.indicators.index, resume, self.trade)  # where the rows may differ
        Lineage.of(previous).extended_by(source.token, changed).attach(result.frame)
        return result

    def _same_recipe(self, previous: pd.DataFrame | None) -> bool:
        """Whether ``previous`` was built with this feature set, preprocessing and label (execution): rows built
        otherwise are never kept."""
        if previous is None:
            return False
        mine = Provenance.of(previous)
        recorded = (mine.feature_set, mine.feature_config, mine.execution)
        wanted = (self.config.feature_set, asdict(self.config), self.trade.as_dict())
        return json.dumps(recorded, sort_keys=True, default=str) == json.dumps(wanted, sort_keys=True, default=str)

    def _span_start(self) -> pd.Timestamp | None:
        return Provenance.of(self.indicators).span[0]

    def _attach(self, frame: pd.DataFrame) -> None:
        provenance = Provenance.of(self.indicators)
        provenance.but(
            execution=self.trade.as_dict(),
            feature_set=self.config.feature_set,
            feature_config=asdict(self.config),
            breaks=feature_breaks(self.indicators.index, frame.index, provenance.break_times()),
        ).attach(frame)


def computed_rows(frame: pd.DataFrame) -> str:
    """Which rows this materialization computed (the cleaning counts beside it are theirs): all, or those from
    the splice point of an incremental refresh on (the rows before were kept from the previous one)."""
    lineage = Lineage.of(frame)
    if lineage is None or not lineage.incremental:
        return "all"
    return f"from {lineage.changed_from} (incremental; the rows before kept)"


def _features_metadata(frame: pd.DataFrame, report: FeatureReport, config: FeatureConfig, trade: Execution) -> dict:
    """What the features' materialization shows: schema figures, the label, and what cleaning did per column."""
    return {
        **frame_metadata(frame, features_schema(config.feature_set)),
        "feature_set": config.feature_set,
        "computed_rows": computed_rows(frame),
        "label": f"one-bar log return of the trade filled at the {trade.fill} {trade.delay_bars} bar(s) later",
        "feature_columns": MetadataValue.json([c for c in frame.columns if c != "target"]),
        "coerced_cells": counts_metadata(report.pollution.coerced),
        "coerced_examples": MetadataValue.json(report.pollution.examples),
        "dropped_columns": MetadataValue.json(report.pollution.dropped_columns),
        "non_finite_cells": counts_metadata(report.non_finite),
        "forward_filled_cells": counts_metadata(report.filled),
        "clipped_cells": counts_metadata(report.clipped),
        "rows_dropped_incomplete": report.rows_dropped,
    }
