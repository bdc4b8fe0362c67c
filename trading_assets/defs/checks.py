"""Partition-aware asset checks on every data asset, built from the Pandera schemas.

Each check evaluates the partition that was just materialized (``partitions_def=``) and is
blocking: an ERROR stops the downstream assets of that partition in the same run. Severity:

* schema, dtype pollution, NaN rate over budget, broken bar grid (duplicates, disorder, a break longer
  than ``max_break_bars``): ERROR;
* breaks, many filled (missing) candles, incomplete coverage of the requested span's session bars: WARN.

No `from __future__ import annotations` here: Dagster reads the config annotations.
"""

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetsDefinition,
    Config,
    MetadataValue,
)
from pydantic import Field

from trading_assets import quality
from trading_assets.calendars import get_calendar
from trading_assets.candles import CANDLE_COLUMNS
from trading_assets.defs.assets import features, indicators, raw_candles
from trading_assets.defs.causality_checks import (
    features_no_look_ahead,
    indicators_no_look_ahead,
    indicators_warmup_sufficient,
)
from trading_assets.defs.partition_checks import check_result, partition_check
from trading_assets.defs.partitions import partition_of
from trading_assets.features import DEFAULT_FEATURE_SET, TARGET, feature_columns
from trading_assets.indicators import indicator_columns
from trading_assets.provenance import Provenance
from trading_assets.quality import ContinuityLimits
from trading_assets.schemas import RawCandlesModel, features_schema, indicators_schema


def _feature_columns(frame: pd.DataFrame) -> list[str]:
    """The columns of the feature set the frame was built with."""
    return feature_columns(Provenance.of(frame).feature_set or DEFAULT_FEATURE_SET)


NUMERIC_COLUMNS = {
    "raw_candles": lambda frame: CANDLE_COLUMNS,
    "indicators": lambda frame: (*CANDLE_COLUMNS, *indicator_columns()),
    "features": lambda frame: (*_feature_columns(frame), TARGET),
}
SCHEMAS = {
    "raw_candles": lambda frame: RawCandlesModel,
    "indicators": lambda frame: indicators_schema(),
    "features": lambda frame: features_schema(Provenance.of(frame).feature_set or DEFAULT_FEATURE_SET),
}


class NanRateConfig(Config):
    """NaN budget of one asset: a default rate and per-column overrides (0.0 = none allowed)."""

    max_nan_rate: float = Field(default=0.0, ge=0, le=1, description="Largest NaN share allowed in any column")
    column_max_nan_rate: dict[str, float] = Field(default_factory=dict, description="Per-column overrides")


class ContinuityConfig(Config):
    """When a patched or broken session grid deserves a warning, and when an error (quality.ContinuityLimits)."""

    max_filled_fraction: float = Field(
        default=ContinuityLimits.max_filled_fraction,
        ge=0,
        le=1,
        description="WARN when more than this share of bars was filled",
    )
    min_coverage: float = Field(
        default=ContinuityLimits.min_coverage,
        ge=0,
        le=1,
        description="WARN when fewer of the requested span's session bars are present",
    )
    max_break_bars: int = Field(
        default=ContinuityLimits.max_break_bars,
        ge=0,
        description="Breaks (gaps in sessions too long to fill) WARN; one longer than this many bars is an ERROR",
    )

    def limits(self) -> ContinuityLimits:
        return ContinuityLimits(self.max_filled_fraction, self.min_coverage, self.max_break_bars)


def _schema_check(asset_def: AssetsDefinition) -> AssetChecksDefinition:
    name = asset_def.key.to_user_string()
    schema = SCHEMAS[name]

    @partition_check(
        asset_def,
        "schema",
        description=f"Pandera schema of {name}: columns, dtypes and value rules.",
    )
    def check(context: AssetCheckExecutionContext, frame: pd.DataFrame) -> AssetCheckResult:
        failures = quality.schema_failures(frame, schema(frame))
        return check_result(
            context,
            [f"{f['column']}: {f['check']} x{f['count']}" for f in failures[:5]],
            {"failed_rules": len(failures), "failures": MetadataValue.json(failures), "rows": len(frame)},
        )

    return check


def _pollution_check(asset_def: AssetsDefinition) -> AssetChecksDefinition:
    name = asset_def.key.to_user_string()
    numeric = NUMERIC_COLUMNS[name]

    @partition_check(
        asset_def,
        "dtype_pollution",
        description=f"No strings/objects inside the numeric columns of {name}, no unexpected columns.",
    )
    def check(context: AssetCheckExecutionContext, frame: pd.DataFrame) -> AssetCheckResult:
        found = quality.dtype_pollution(frame, numeric(frame))
        polluted = {c: f["count"] for c, f in found.columns.items()}
        problem = f"non-numeric cells {polluted}, unexpected columns {list(found.unexpected_columns)}"
        return check_result(
            context,
            [] if found.clean else [problem],
            {
                "polluted_cells": sum(polluted.values()),
                "polluted_columns": MetadataValue.json(found.columns),
                "unexpected_columns": MetadataValue.json(found.unexpected_columns),
            },
        )

    return check


def _nan_check(asset_def: AssetsDefinition) -> AssetChecksDefinition:
    name = asset_def.key.to_user_string()

    @partition_check(
        asset_def,
        "nan_rate",
        description=f"Share of NaN per column of {name} against its budget (default 0 %).",
    )
    def check(context: AssetCheckExecutionContext, config: NanRateConfig, frame: pd.DataFrame) -> AssetCheckResult:
        rates = quality.nan_rates(frame)
        over = {
            c: {"rate": r, "max": config.column_max_nan_rate.get(c, config.max_nan_rate)}
            for c, r in rates.items()
            if r > config.column_max_nan_rate.get(c, config.max_nan_rate)
        }
        problem = "NaN over budget: " + ", ".join(
            f"{c} {quality.percent(v['rate'])} > {quality.percent(v['max'])}" for c, v in over.items()
        )
        provenance = Provenance.of(frame)
        leading = quality.leading_nan_rows(frame[list(over)]) if over else 0
        short = provenance.warmup_bars - provenance.history_bars
        if leading and short > 0:
            problem += (
                f"; the first {leading} rows are NaN because history is missing: {provenance.history_bars} of "
                f"{provenance.warmup_bars} warm-up bars were available ({short} missing)"
            )
        return check_result(
            context,
            [problem] if over else [],
            {
                "max_nan_rate": max(rates.values(), default=0.0),
                "over_budget": MetadataValue.json(over),
                "nan_rates": MetadataValue.json(rates),
            },
        )

    return check


def _continuity_check(asset_def: AssetsDefinition) -> AssetChecksDefinition:
    name = asset_def.key.to_user_string()

    @partition_check(
        asset_def,
        "continuity",
        description=f"{name}: no duplicated or disordered bars; breaks (session gaps too long to fill) WARN, "
        "ERROR above max_break_bars; coverage of the requested span's session bars; WARN when many bars were filled.",
    )
    def check(context: AssetCheckExecutionContext, config: ContinuityConfig, frame: pd.DataFrame) -> AssetCheckResult:
        timeframe = partition_of(context.partition_key).timeframe
        calendar = get_calendar(Provenance.of(frame).calendar)
        found = quality.judge_continuity(frame, timeframe, calendar, config.limits())
        metadata = {k: MetadataValue.json(v) if isinstance(v, list) else v for k, v in found.figures.items()}
        severity = AssetCheckSeverity.ERROR if found.errors else AssetCheckSeverity.WARN
        return check_result(context, found.errors + found.warnings, metadata, severity)

    return check


# The checks on every data asset's partition (the data-quality tests run these alone).
data_checks: list[AssetChecksDefinition] = [
    *(
        factory(a)
        for a in (raw_candles, indicators, features)
        for factory in (_schema_check, _pollution_check, _nan_check)
    ),
    _continuity_check(raw_candles),
    _continuity_check(indicators),
]

# Every asset check of the code location, declared once: definitions.py registers these and the alert sensor
# watches them. A new check is a `@partition_check` function, or a factory applied to assets, listed here.
CHECKS: list[AssetChecksDefinition] = [
    *data_checks,
    features_no_look_ahead,
    indicators_no_look_ahead,
    indicators_warmup_sufficient,
]
