"""trading_assets: exchange candles -> indicators -> features -> trained models, as Dagster assets.

The top-level modules are plain domain code (pandas / numpy / TA-Lib / torch) with no Dagster
import; the Dagster layer lives in :mod:`trading_assets.defs`.
"""

__version__ = "0.1.0"
