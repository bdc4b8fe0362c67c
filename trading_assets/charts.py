"""Pictures of a partition's research results, as PNG bytes (matplotlib, headless).

They go to MLflow as artifacts and into Dagster metadata as Markdown images (data URIs), so the
asset's page in the UI shows them without another server.
"""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from trading_assets.evaluation import sign_strategy  # noqa: E402


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    """A Markdown image holding the PNG inline (renders in Dagster's metadata panel)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def training_curves(history: list[dict[str, float]], title: str) -> bytes:
    """Train and validation loss per epoch."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    ax.plot(epochs, [h["val_loss"] for h in history], marker="o", label="validation")
    ax.set(xlabel="epoch", ylabel="MSE (return units)", title=title)
    ax.legend()
    return _png(fig)


def strategy_returns(frame: pd.DataFrame, fee_bp: float, delay: int) -> tuple[pd.Series, pd.Series]:
    """Cumulative net log return of the sign rule and of buy-and-hold, per out-of-sample bar."""
    ret = frame["next_return"].to_numpy("float64")
    _, realised, _, _, net = sign_strategy(frame["prediction"].to_numpy("float64"), ret, fee_bp, delay)
    index = frame.index[delay:][np.isfinite(ret[delay:])]
    return pd.Series(np.cumsum(net), index=index), pd.Series(np.cumsum(realised), index=index)


def equity_curves(predictions: pd.DataFrame, fee_bp: float, delay: int, title: str) -> bytes:
    """Cumulative net log return per model (sign rule, fees, delay) against buy-and-hold; fold starts marked."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    hold = None
    for model, frame in predictions.groupby("model", sort=True):
        frame = frame.sort_index()
        strategy, hold = strategy_returns(frame, fee_bp, delay)
        ax.plot(strategy.index, strategy.to_numpy(), label=f"{model} (net)")
        for start in frame.groupby("fold").apply(lambda g: g.index.min(), include_groups=False).iloc[1:]:
            ax.axvline(start, color="grey", lw=0.5, ls=":")
    if hold is not None:
        ax.plot(hold.index, hold.to_numpy(), color="black", lw=1, label="buy and hold")
    ax.set(ylabel="cumulative log return", title=f"{title} ({fee_bp:g} bp per side, {delay}-bar delay)")
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    return _png(fig)


def predicted_vs_realised(predictions: pd.DataFrame, title: str) -> bytes:
    """Scatter of forecast against realised label per model, with the identity line."""
    fig, ax = plt.subplots(figsize=(5, 4))
    for model, frame in predictions.groupby("model", sort=True):
        ax.scatter(frame["prediction"], frame["label"], s=3, alpha=0.4, label=model)
    lim = float(np.nanmax(np.abs(predictions["label"]))) if len(predictions) else 1.0
    ax.plot([-lim, lim], [-lim, lim], color="black", lw=0.8)
    ax.set(xlabel="forecast", ylabel="realised", title=title)
    ax.legend(fontsize=8, markerscale=3)
    return _png(fig)
