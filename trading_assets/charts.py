"""Pictures of a partition's data and research results, as PNG bytes (matplotlib, headless).

They go to MLflow as artifacts and into Dagster metadata as Markdown images (data URIs), so the
asset's page in the UI shows them without another server.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # no pyplot: no global figure registry, no GUI backend, faster import

from trading_assets.execution import Execution


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return buffer.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    """A Markdown image holding the PNG inline (renders in Dagster's metadata panel)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


# Overlays drawn on the candles when the frame has them (indicators), and the oscillator panel below.
PRICE_OVERLAYS: tuple[str, ...] = ("sma_20", "ema_12", "bb_upper_20", "bb_lower_20")
OSCILLATOR = "rsi_14"


def filled_bars(frame: pd.DataFrame) -> np.ndarray:
    """Bars filled flat at the previous close with zero volume (how the candle grid marks a missing bar)."""
    flat = (frame["open"] == frame["close"]) & (frame["high"] == frame["close"]) & (frame["low"] == frame["close"])
    return (flat & (frame["volume"] == 0)).to_numpy()


def candlestick(frame: pd.DataFrame, title: str, filled: np.ndarray | None = None, max_bars: int = 240) -> bytes:
    """The last ``max_bars`` candles with the overlays the frame has, volume, RSI, and filled bars marked.

    ``filled`` is a mask over ``frame`` (default :func:`filled_bars`); a frame without indicators gets a
    20-bar SMA of close so the price panel always shows a trend line.
    """
    mask = filled_bars(frame) if filled is None else np.asarray(filled, dtype=bool)
    tail, mask = frame.iloc[-max_bars:], mask[-max_bars:]
    x = np.arange(len(tail))
    oscillator = OSCILLATOR in tail.columns
    fig = Figure(figsize=(8, 5.2 if oscillator else 4.2))
    axes = fig.subplots(
        3 if oscillator else 2,
        1,
        sharex=True,
        gridspec_kw={"height_ratios": [3, 1, 1] if oscillator else [3, 1]},
    )
    price, volume = axes[0], axes[1]
    up = (tail["close"] >= tail["open"]).to_numpy()
    colors = np.where(up, "tab:green", "tab:red")
    width = 0.7 * 72 * fig.get_figwidth() / max(len(x), 20)  # a bar's width in points: line collections draw fast
    price.vlines(x, tail["low"], tail["high"], colors=colors, lw=0.7)
    low, high = tail[["open", "close"]].min(axis=1), tail[["open", "close"]].max(axis=1)
    price.vlines(x, low, high, colors=colors, lw=width, capstyle="butt")
    overlays = [c for c in PRICE_OVERLAYS if c in tail.columns]
    if overlays:
        for column in overlays:
            price.plot(x, tail[column].to_numpy(), lw=0.9, label=column)
    else:
        sma = frame["close"].iloc[-(max_bars + 19) :].rolling(20).mean().iloc[-max_bars:]
        price.plot(x, sma.to_numpy(), lw=0.9, label="close SMA 20")
    if mask.any():
        price.scatter(x[mask], tail["close"].to_numpy()[mask], marker="x", color="black", s=14, zorder=3)
        for ax in axes:
            ax.vlines(x[mask], 0, 1, transform=ax.get_xaxis_transform(), colors="orange", alpha=0.25, lw=width / 0.7)
    price.plot([], [], color="orange", alpha=0.5, lw=6, label=f"filled bars ({int(mask.sum())})")
    price.set(title=title, ylabel="price")
    price.legend(fontsize=7, loc="upper left", ncol=3)
    volume.vlines(x, 0, tail["volume"].to_numpy(), colors=colors, lw=width, capstyle="butt")
    volume.set(ylabel="volume")
    if oscillator:
        axes[2].plot(x, tail[OSCILLATOR].to_numpy(), color="tab:purple", lw=0.9)
        axes[2].axhline(70, color="grey", lw=0.5, ls="--")
        axes[2].axhline(30, color="grey", lw=0.5, ls="--")
        axes[2].set(ylabel=OSCILLATOR, ylim=(0, 100))
    ticks = x[:: max(1, len(x) // 6)]
    axes[-1].set_xticks(ticks, [tail.index[i].strftime("%m-%d %H:%M") for i in ticks], rotation=20, fontsize=7)
    return _png(fig)


def training_curves(history: list[dict[str, float]], title: str) -> bytes:
    """Train and validation loss per epoch."""
    fig = Figure(figsize=(6, 3.2))
    ax = fig.subplots()
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    ax.plot(epochs, [h["val_loss"] for h in history], marker="o", label="validation")
    ax.set(xlabel="epoch", ylabel="MSE (return units)", title=title)
    ax.legend()
    return _png(fig)


def strategy_returns(frame: pd.DataFrame, execution: Execution) -> tuple[pd.Series, pd.Series]:
    """Cumulative net log return of the execution model's rule and of buy-and-hold, per out-of-sample bar."""
    from trading_assets.evaluation import simulate  # scipy and statsmodels: not for the data assets' charts

    sim = simulate(frame, execution)
    return pd.Series(sim.net.cumsum(), index=frame.index), pd.Series(sim.market.cumsum(), index=frame.index)


def equity_curves(predictions: pd.DataFrame, execution: Execution, title: str) -> bytes:
    """Cumulative net log return per model (the execution model's rule, after costs) against buy-and-hold;
    fold starts marked, the hold-out shaded."""
    fig = Figure(figsize=(7, 3.6))
    ax = fig.subplots()
    hold = None
    for model, frame in predictions.groupby("model", sort=True):
        frame = frame.sort_index()
        strategy, hold = strategy_returns(frame, execution)
        ax.plot(strategy.index, strategy.to_numpy(), label=f"{model} (net)")
        for start in frame.groupby("fold").apply(lambda g: g.index.min(), include_groups=False).iloc[1:]:
            ax.axvline(start, color="grey", lw=0.5, ls=":")
    if hold is not None:
        ax.plot(hold.index, hold.to_numpy(), color="black", lw=1, label="buy and hold")
    if "holdout" in predictions and predictions["holdout"].any():
        held_out = predictions.index[predictions["holdout"].to_numpy()]
        ax.axvspan(held_out.min(), held_out.max(), color="grey", alpha=0.15, label="hold-out")
    cost = execution.costs.per_side * 1e4
    ax.set(
        ylabel="cumulative log return",
        title=f"{title} ({execution.side}, {cost:g} bp per side, {execution.fill} +{execution.delay_bars})",
    )
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    return _png(fig)


def predicted_vs_realised(predictions: pd.DataFrame, title: str) -> bytes:
    """Scatter of forecast against realised label per model, with the identity line."""
    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    for model, frame in predictions.groupby("model", sort=True):
        ax.scatter(frame["prediction"], frame["label"], s=3, alpha=0.4, label=model)
    lim = float(np.nanmax(np.abs(predictions["label"]))) if len(predictions) else 1.0
    ax.plot([-lim, lim], [-lim, lim], color="black", lw=0.8)
    ax.set(xlabel="forecast", ylabel="realised", title=title)
    ax.legend(fontsize=8, markerscale=3)
    return _png(fig)
