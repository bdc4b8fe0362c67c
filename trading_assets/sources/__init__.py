"""Candle sources: one small interface, three implementations (Upbit REST API, files, synthetic)."""

from trading_assets.sources.base import CandleSource
from trading_assets.sources.files import FileSource
from trading_assets.sources.synthetic import SyntheticSource
from trading_assets.sources.upbit import UpbitSource

__all__ = ["CandleSource", "FileSource", "SyntheticSource", "UpbitSource"]
