"""The execution model: one declaration of how a forecast becomes a trade, used everywhere.

A decision is taken at bar t's close. It is **filled** at the open (``fill="open"``) or the close
(``fill="close"``) of the bar ``delay_bars`` later (default: the next bar's open), **held** for ``horizon`` bars of that
fill price series, and **charged** fee + half-spread + slippage per side on every change of
position. The same definition gives

* the label every model learns (:func:`trade_returns`, the features' ``target`` column): the log
  return the trade realises, so a model that forecasts its label well earns it in the backtest;
* the positions of the backtest (:func:`positions`): ``long_only`` (spot markets cannot short) or
  ``long_short``; the cost-aware rule enters or flips only when the forecast beats the round-trip
  cost and otherwise holds;
* the stress case: the same positions filled one bar later (:meth:`Execution.stressed`), reported next
  to the result, never instead of it.

Costs default per market (:data:`MARKET_COSTS`, by the quote currency of ``QUOTE-BASE``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np

Fill = Literal["open", "close"]
Side = Literal["long_only", "long_short"]


class ExecutionError(ValueError):
    """An execution or cost setting that cannot hold; names the field and the allowed range."""


@dataclass(frozen=True)
class Costs:
    """Per-side trading costs in basis points of the traded value."""

    fee_bp: float = 5.0
    half_spread_bp: float = 1.0
    slippage_bp: float = 1.0

    @property
    def per_side(self) -> float:
        """Cost of one side as a log-return fraction."""
        return (self.fee_bp + self.half_spread_bp + self.slippage_bp) / 1e4

    @property
    def round_trip(self) -> float:
        return 2 * self.per_side

    def validate(self) -> Costs:
        for name, value in asdict(self).items():
            if not (np.isfinite(value) and 0 <= value <= 1000):
                raise ExecutionError(f"costs.{name} = {value}: allowed range 0 <= {name} <= 1000 (basis points)")
        return self


# Where the defaults come from (quote currency -> costs):
# * fee: Upbit's published trading fees, KRW market 0.05 % (taker and maker), BTC and USDT markets 0.25 %;
# * half-spread and slippage: assumptions for liquid markets (KRW-BTC's quoted spread is about one tick,
#   well under 1 bp), 1 bp each; set them per market for thinner books.
MARKET_COSTS: dict[str, Costs] = {
    "KRW": Costs(fee_bp=5.0),
    "BTC": Costs(fee_bp=25.0),
    "USDT": Costs(fee_bp=25.0),
}
DEFAULT_COSTS = Costs()


def market_costs(symbol: str) -> Costs:
    """The default costs of ``symbol``'s market (``QUOTE-BASE``), else :data:`DEFAULT_COSTS`."""
    return MARKET_COSTS.get(symbol.split("-", 1)[0], DEFAULT_COSTS)


@dataclass(frozen=True)
class Execution:
    """When a decision taken at bar t's close is filled, for how long it is held and how it is traded."""

    fill: Fill = "open"  # the price that fills: the open or the close of the bar delay_bars later
    delay_bars: int = 1
    horizon: int = 1  # bars the position is held (and the label's length)
    side: Side = "long_only"
    cost_aware: bool = True
    costs: Costs = DEFAULT_COSTS

    @property
    def entry_lag(self) -> int:
        """Rows after the decision row whose price fills the trade."""
        return self.delay_bars

    @property
    def label_reach(self) -> int:
        """Rows after the decision row that the label reads (its exit price's row)."""
        return self.entry_lag + self.horizon

    def stressed(self) -> Execution:
        """The same trade filled one bar later."""
        return replace(self, delay_bars=self.delay_bars + 1)

    def validate(self) -> Execution:
        if self.fill not in ("open", "close"):
            raise ExecutionError(f"execution.fill = {self.fill!r}: allowed 'open' or 'close'")
        if self.side not in ("long_only", "long_short"):
            raise ExecutionError(f"execution.side = {self.side!r}: allowed 'long_only' or 'long_short'")
        if not 1 <= self.delay_bars <= 1000:
            raise ExecutionError(
                f"execution.delay_bars = {self.delay_bars}: allowed 1 <= delay_bars <= 1000 (0 would fill at a "
                "price of the bar that produced the forecast)"
            )
        if not 1 <= self.horizon <= 10_000:
            raise ExecutionError(f"execution.horizon = {self.horizon}: allowed 1 <= horizon <= 10000 bars")
        self.costs.validate()
        return self

    def check_fits(self, rows: int, what: str) -> None:
        """Refuse an execution whose trade does not fit in ``rows`` rows (a fold, the data)."""
        if self.label_reach >= rows:
            raise ExecutionError(
                f"execution.horizon = {self.horizon} with entry lag {self.entry_lag}: a trade reads "
                f"{self.label_reach} bars ahead, {what} has {rows}; "
                f"allowed horizon <= {max(rows - 1 - self.entry_lag, 0)}"
            )

    def check_label(self, recorded: dict[str, Any], names: tuple[str, ...] = ("fill", "delay_bars")) -> None:
        """Refuse a frame whose label was built for another trade (``recorded``: its provenance's execution)."""
        if not recorded:
            return
        built = {name: recorded.get(name) for name in names}
        run = {name: getattr(self, name) for name in names}
        if built != run:
            raise ExecutionError(
                f"the label upstream was built for the execution {built}, the run's execution is {run}; "
                "materialize the upstream assets again with this execution"
            )

    def as_dict(self) -> dict[str, Any]:
        """Flat, JSON-friendly (provenance, MLflow params, table columns)."""
        out = {k: v for k, v in asdict(self).items() if k != "costs"}
        out.update(asdict(self.costs))
        out["cost_per_side_bp"] = self.costs.per_side * 1e4
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Execution:
        cost_names = {"fee_bp", "half_spread_bp", "slippage_bp"}
        costs = Costs(**{k: float(v) for k, v in values.items() if k in cost_names})
        own = {k: values[k] for k in ("fill", "delay_bars", "horizon", "side", "cost_aware") if k in values}
        return cls(**own, costs=costs)


def trade_returns(open_: np.ndarray, close: np.ndarray, execution: Execution) -> np.ndarray:
    """Per decision row t: the one-bar log return of the fill price series from the entry (``target``).

    Fill ``open`` with delay d: ``log(open[t + d + 1] / open[t + d])`` (the default d = 1 buys at the next
    bar's open); ``close``: ``log(close[t + d + 1] / close[t + d])``. A position decided at t and held
    ``horizon`` bars earns ``sum(target[t .. t + horizon - 1])`` (:func:`trading_assets.labels.forward_labels`).
    NaN where the rows run out.
    """
    price = np.asarray(open_ if execution.fill == "open" else close, dtype="float64")
    lag = execution.entry_lag
    out = np.full(len(price), np.nan)
    if len(price) > lag + 1:
        out[: len(price) - lag - 1] = np.log(price[lag + 1 :] / price[lag:-1])
    return out


def positions(forecast: np.ndarray, execution: Execution) -> np.ndarray:
    """The rule's position after each decision (one contiguous run of bars; flat before the first).

    Sign rule (``cost_aware`` False): long when the forecast is positive, short (``long_short``) or flat
    (``long_only``) when negative, unchanged at exactly zero. Cost-aware: the same, but a position is
    entered or flipped only when the forecast's size beats the round-trip cost; otherwise it is held.
    """
    f = np.nan_to_num(np.asarray(forecast, dtype="float64"))
    threshold = execution.costs.round_trip if execution.cost_aware else 0.0
    low = 0.0 if execution.side == "long_only" else -1.0
    signal = np.where(f > threshold, 1.0, np.where(f < -threshold, low, np.nan))
    # hold where the forecast is inside the band: forward fill the last decided position, flat at the start
    idx = np.where(np.isnan(signal), 0, np.arange(len(signal)))
    np.maximum.accumulate(idx, out=idx)
    held = signal[idx]
    return np.where(np.isnan(held), 0.0, held)


def exposure(position: np.ndarray, horizon: int) -> np.ndarray:
    """Net exposure per bar when each decision is held ``horizon`` bars as one of ``horizon`` equal tranches."""
    if horizon == 1:
        return position.astype("float64")
    csum = np.concatenate([[0.0], np.cumsum(position, dtype="float64")])
    idx = np.arange(1, len(position) + 1)
    return (csum[idx] - csum[np.maximum(idx - horizon, 0)]) / horizon
