"""Pandera schemas: the single source of truth for each data asset's columns, dtypes and value rules.

Missing values are deliberately *not* part of the raw and indicator schemas (``nullable=True``):
their budget is the NaN-rate check's (per asset and column, default 0 %), so a NaN burst is reported
once, by that check, with the rate of every column. Features allow no NaN at all.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Index, Series

from trading_assets.features import DEFAULT_FEATURE_SET, TARGET, feature_set
from trading_assets.indicators import indicator_columns

UTC_NS = {"unit": "ns", "tz": "UTC"}


class CandleModel(pa.DataFrameModel):
    """Canonical candles: float64 OHLCV, consistent OHLC, unique increasing UTC bar starts."""

    open_time: Index[pd.DatetimeTZDtype] = pa.Field(
        dtype_kwargs=UTC_NS, unique=True, description="bar start (UTC), on the timeframe's grid"
    )
    open: Series[np.float64] = pa.Field(gt=0, nullable=True, description="first trade price of the bar")
    high: Series[np.float64] = pa.Field(gt=0, nullable=True, description="highest trade price of the bar")
    low: Series[np.float64] = pa.Field(gt=0, nullable=True, description="lowest trade price of the bar")
    close: Series[np.float64] = pa.Field(gt=0, nullable=True, description="last trade price of the bar")
    volume: Series[np.float64] = pa.Field(
        ge=0, nullable=True, description="traded base-currency volume (0 on a filled bar)"
    )
    value: Series[np.float64] = pa.Field(ge=0, nullable=True, description="traded quote-currency turnover")

    class Config:
        strict = True
        coerce = False

    @pa.check("open_time", name="monotonic_increasing", element_wise=False)
    def _increasing(cls, index: pd.Series) -> bool:
        return bool(pd.Index(index).is_monotonic_increasing)

    @pa.dataframe_check(name="high_covers_open_close")
    def _high(cls, df: pd.DataFrame) -> pd.Series:
        return ~(df["high"] < df[["open", "close", "low"]].max(axis=1))

    @pa.dataframe_check(name="low_under_open_close")
    def _low(cls, df: pd.DataFrame) -> pd.Series:
        return ~(df["low"] > df[["open", "close"]].min(axis=1))


class RawCandlesModel(CandleModel):
    """``raw_candles``."""


def indicators_schema() -> pa.DataFrameSchema:
    """``indicators``: candles plus every registered indicator column, float64, within its declared values."""
    columns = {}
    for name, column in indicator_columns().items():
        checks = []
        if column.bounds is not None:
            checks += [pa.Check.ge(column.bounds[0]), pa.Check.le(column.bounds[1])]
        if column.ge is not None:
            checks.append(pa.Check.ge(column.ge))
        if column.gt is not None:
            checks.append(pa.Check.gt(column.gt))
        columns[name] = pa.Column(np.float64, checks, nullable=True, description=column.description)
    return CandleModel.to_schema().add_columns(columns).set_name("IndicatorsSchema")


def features_schema(name: str = DEFAULT_FEATURE_SET) -> pa.DataFrameSchema:
    """``features`` of the feature set ``name``: every column float32, finite, no NaN, no constant feature column."""
    finite = pa.Check(lambda s: pd.Series(np.isfinite(s.to_numpy()), index=s.index), name="finite")
    not_constant = pa.Check(  # min < max: the same answer as nunique() > 1 without hashing every value
        lambda s: len(s) < 2 or bool(np.nanmin(s.to_numpy()) < np.nanmax(s.to_numpy())), name="not_constant"
    )
    columns = {
        f.name: pa.Column(np.float32, [finite, not_constant], nullable=False, description=f.description)
        for f in feature_set(name).outputs()
    }
    columns[TARGET] = pa.Column(
        np.float32, finite, nullable=False, description="label: log return from this bar's close to the next one's"
    )
    return pa.DataFrameSchema(
        columns,
        index=pa.Index(pd.DatetimeTZDtype("ns", "UTC"), unique=True, name="open_time", description="bar start (UTC)"),
        strict=True,
        name="FeaturesSchema",
    )
