"""Look-ahead checks on features and indicators, warm-up sufficiency on indicators.

They call the same domain functions as the assets (see trading_assets.causality), on the stored
upstream partition, so they cost about one extra computation of the asset. Both can be switched
off per run (``enabled: false``) for huge spans.

No `from __future__ import annotations` here: Dagster reads the config and resource annotations.
"""

from dataclasses import asdict
from typing import Literal

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetIn,
    Config,
    MetadataValue,
)
from pydantic import Field

from trading_assets.calendars import get_calendar
from trading_assets.candles import CANDLE_COLUMNS, fill_candle_grid
from trading_assets.causality import (
    CUT_FRACTIONS,
    CUT_MAX_ROWS,
    cut_points,
    features_look_ahead,
    indicators_look_ahead,
    warmup_drifts,
)
from trading_assets.defs.assets import features, indicators
from trading_assets.defs.partition_checks import check_result, partition_check, partition_metadata
from trading_assets.defs.partitions import split_partition_key
from trading_assets.defs.resources import CandleSourceResource, CandleStoreResource
from trading_assets.execution import Execution
from trading_assets.features import FeatureConfig
from trading_assets.indicators import INDICATORS, indicator_warmups
from trading_assets.provenance import Provenance
from trading_assets.timeframes import NAME_PATTERN


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
    feature_set: str = Field(
        pattern=NAME_PATTERN,
        default=FeatureConfig.feature_set,
        description="Feature set (FEATURE_SETS) whose start invariance is checked",
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


def _look_ahead_result(context: AssetCheckExecutionContext, diffs, cuts) -> AssetCheckResult:
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
        },
    )


@partition_check(
    features,
    "no_look_ahead",
    additional_ins={"indicators": AssetIn("indicators")},
    description="Rebuild features from indicators truncated at a few cut points t and "
    "compare rows <= t with the stored features: any difference is look-ahead.",
)
def features_no_look_ahead(
    context: AssetCheckExecutionContext, config: LookAheadConfig, frame: pd.DataFrame, indicators: pd.DataFrame
) -> AssetCheckResult:
    if not config.enabled:
        return _skipped(context)
    symbol, timeframe = split_partition_key(context.partition_key)
    cuts = cut_points(frame.index, str(context.partition_key), tuple(config.cut_fractions), config.max_rows)
    provenance = Provenance.of(frame)
    feature_config = FeatureConfig(**provenance.feature_config)
    execution = Execution.from_dict(provenance.execution)
    diffs = features_look_ahead(indicators, frame, symbol, timeframe, feature_config, cuts, execution)
    return _look_ahead_result(context, diffs, cuts)


@partition_check(
    indicators,
    "no_look_ahead",
    additional_ins={"raw_candles": AssetIn("raw_candles")},
    description="Recompute indicators from candles truncated at a few cut points t and compare rows <= t.",
)
def indicators_no_look_ahead(
    context: AssetCheckExecutionContext, config: LookAheadConfig, frame: pd.DataFrame, raw_candles: pd.DataFrame
) -> AssetCheckResult:
    if not config.enabled:
        return _skipped(context)
    symbol, timeframe = split_partition_key(context.partition_key)
    cuts = cut_points(frame.index, str(context.partition_key), tuple(config.cut_fractions), config.max_rows)
    return _look_ahead_result(context, indicators_look_ahead(raw_candles, frame, symbol, timeframe, cuts), cuts)


@partition_check(
    indicators,
    "warmup_sufficient",
    blocking=False,
    additional_ins={"raw_candles": AssetIn("raw_candles")},
    description="Recompute indicators, and the features of the configured feature set from them, with more history "
    "before the "
    "span (only the extra history is read from the candle store; the rest is the run's raw_candles); WARN when "
    "values inside the span move, with the warm-up that would have been enough. Never passes when the history "
    "is shorter than the warm-up (WARN, or ERROR by config) or there is none to compare with.",
)
def indicators_warmup_sufficient(
    context: AssetCheckExecutionContext,
    config: WarmupConfig,
    frame: pd.DataFrame,
    raw_candles: pd.DataFrame,
    candle_source: CandleSourceResource,
    candle_store: CandleStoreResource,
) -> AssetCheckResult:
    if not config.enabled:
        return _skipped(context)
    symbol, timeframe = split_partition_key(context.partition_key)
    provenance = Provenance.of(raw_candles)
    calendar = get_calendar(provenance.calendar)
    warmup = provenance.warmup_bars
    before = warmup - provenance.lead_in_bars  # bars needed before the stored frame's first row
    first_row, (span, span_end) = frame.index[0], provenance.span
    available = int(raw_candles.index.searchsorted(first_row))
    if available < before:
        affected = sorted(
            col for name, bars in indicator_warmups().items() if bars > available for col in INDICATORS[name].columns
        )
        problem = (
            f"history is short: {available} bars available before {first_row.isoformat()}, {before} needed "
            f"({before - available} missing); values early in the span depend on where the history starts"
        )
        return check_result(
            context,
            [problem],
            {
                "warmup_bars": before,
                "bars_available": available,
                "bars_missing": before - available,
                "affected_columns": MetadataValue.json(affected),
                "compared_with_bars": 0,
            },
            AssetCheckSeverity[config.short_history_severity],
        )
    longer_warmup = int(warmup * config.history_factor)
    extra_start = calendar.start_before(timeframe, first_row, longer_warmup)
    # Only the history before the stored warm-up is new: collect (the store fetches only what it
    # lacks) and load just that, then put it in front of the candles the run already has.
    with candle_store.get_store() as store:
        store.collect(candle_source.get_source(), symbol, timeframe, extra_start, span_end)
        extra = store.load(symbol, timeframe, extra_start, raw_candles.index[0])
    longer = fill_candle_grid(
        pd.concat([extra, raw_candles[list(CANDLE_COLUMNS)]]),
        timeframe,
        extra_start,
        span_end,
        calendar,
        provenance.max_fill_bars,
    )
    drifts = warmup_drifts(
        frame,
        longer.frame,
        symbol,
        timeframe,
        span,
        before,
        FeatureConfig(feature_set=config.feature_set),
        config.tolerance,
    )
    needed = max((d.bars_to_converge for d in drifts), default=0)
    history = int(longer.frame.index.searchsorted(first_row))
    advice = (
        f"{timeframe} needs more than {before} warm-up bars: at least {needed} "
        f"(lower CandleWindowConfig.warmup_tolerance or raise it by hand)"
    )
    problems = [advice] if drifts else []
    if history <= available:
        problems.append(
            f"no history before the run's {available} warm-up bars to compare with ({history} bars in the store): "
            "convergence is unverified"
        )
    return check_result(
        context,
        problems,
        {
            "warmup_bars": before,
            "lead_in_bars": warmup - before,
            "bars_available": available,
            "compared_with_bars": history,
            "moved_columns": MetadataValue.json([asdict(d) for d in drifts]),
            "bars_needed": needed,
            "tolerance": config.tolerance,
        },
        AssetCheckSeverity.WARN,
    )
