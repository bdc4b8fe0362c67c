"""Candle sources: one small interface, a registry of implementations (Upbit REST API, ccxt, files, synthetic).

:data:`SOURCES` is the one place a source is declared: the resource's ``kind`` choices, its builder,
the CLI's ``--source`` choices and their descriptions all come from it. Adding a source is a module
implementing :class:`CandleSource` plus one entry here; its settings come from the resource's
``options`` dict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from trading_assets.sources.base import CandleSource, source_identity
from trading_assets.sources.files import FileSource
from trading_assets.sources.synthetic import SyntheticSource
from trading_assets.sources.upbit import UpbitSource


def _ccxt_source() -> type[CandleSource]:
    """``CcxtSource``, imported on first use: ccxt's hundred exchange modules take a third of a second."""
    from trading_assets.sources.ccxt_source import CcxtSource

    return CcxtSource


def __getattr__(name: str) -> Any:
    if name == "CcxtSource":
        return _ccxt_source()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class SourceSettings(Protocol):
    """What a builder reads: the candle source resource's fields."""

    upbit_base_url: str
    upbit_requests_per_second: float
    upbit_max_retries: int
    files_dir: str
    files_timezone: str
    files_adjusted: Literal["ignore", "use"]
    ccxt_exchange: str
    ccxt_markets: dict[str, str]
    ccxt_api_url: str | None
    ccxt_options: dict[str, Any]
    synthetic_seed: int
    synthetic_edge: str
    synthetic_edge_strength: float
    options: dict[str, Any]


@dataclass(frozen=True)
class SourceSpec:
    """A registered source: what it is (one line) and how to build it from the settings."""

    description: str
    build: Callable[[SourceSettings], CandleSource]


SOURCES: dict[str, SourceSpec] = {
    "synthetic": SourceSpec(
        "offline, seeded, optionally with a planted edge",
        lambda s: SyntheticSource(
            seed=s.synthetic_seed, edge=s.synthetic_edge, edge_strength=s.synthetic_edge_strength
        ),
    ),
    "upbit": SourceSpec(
        "Upbit REST API",
        lambda s: UpbitSource(s.upbit_base_url, s.upbit_requests_per_second, s.upbit_max_retries),
    ),
    "ccxt": SourceSpec(
        "any exchange ccxt supports (ccxt_exchange, ccxt_markets)",
        lambda s: _ccxt_source()(s.ccxt_exchange, s.ccxt_markets, s.ccxt_api_url, options=s.ccxt_options),
    ),
    "files": SourceSpec(
        "CSV/Parquet/JSON files",
        lambda s: FileSource(s.files_dir, timezone=s.files_timezone, adjusted=s.files_adjusted),
    ),
}


def known_source(kind: str) -> str:
    """``kind`` if it is registered in :data:`SOURCES` now, else a ValueError listing the choices."""
    if kind not in SOURCES:
        raise ValueError(f"unknown candle source {kind!r}; registered: {', '.join(SOURCES)}")
    return kind


def build_source(kind: str, settings: SourceSettings) -> CandleSource:
    """The registered source ``kind``, built from ``settings``."""
    return SOURCES[known_source(kind)].build(settings)


def describe_sources() -> str:
    """One line naming every registered source, e.g. for a field description or a CLI help."""
    return ", ".join(f"{name} ({spec.description})" for name, spec in SOURCES.items())


__all__ = [
    "SOURCES",
    "known_source",
    "CandleSource",
    "CcxtSource",
    "FileSource",
    "SourceSettings",
    "SourceSpec",
    "SyntheticSource",
    "UpbitSource",
    "build_source",
    "describe_sources",
    "source_identity",
]
