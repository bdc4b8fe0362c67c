"""Training loop: early stopping with best-checkpoint restore, gradient clipping, bf16 autocast on
CUDA, reproducible on the CPU, a clear error on GPU out-of-memory, and a clean GPU afterwards.

A network that can be solved exactly (the ``linear`` floor: ridge regression) is fit in closed form,
its penalty chosen on the validation span, instead of by gradient descent.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from trading_assets.training.config import TrainConfig
from trading_assets.training.sequences import SequenceData

log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """Training could not run (e.g. the GPU ran out of memory)."""


@dataclass
class TrainReport:
    train_loss: float
    val_loss: float
    test_loss: float
    best_epoch: int
    epochs_run: int
    stop_reason: str  # early_stopping, epoch_cap, closed_form (ridge) or tree_cap (boosting)
    wall_seconds: float
    samples_per_second: float
    seconds_per_epoch: float
    peak_gpu_memory_mb: float | None
    device: str
    baselines: dict[str, dict[str, float]]
    target_mean: float
    target_std: float
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def best_baseline_val_loss(self) -> float:
        return min(b["val_loss"] for b in self.baselines.values())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def metrics(self) -> dict[str, float]:
        out = {k: float(v) for k, v in asdict(self).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        for name, losses in self.baselines.items():
            out.update({f"baseline_{name}_{k}": v for k, v in losses.items()})
        return out


def select_device(spec: str = "auto") -> torch.device:
    """``auto``: the CUDA device with the most free memory, else the CPU; or an explicit device."""
    if spec != "auto":
        device = torch.device(spec)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise TrainingError(f"device {spec!r} requested but CUDA is not available")
        return device
    if not torch.cuda.is_available() or torch.cuda.device_count() == 0:
        return torch.device("cpu")
    free = [torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count())]
    return torch.device("cuda", max(range(len(free)), key=free.__getitem__))


def naive_forecasts(data: SequenceData, ends: torch.Tensor) -> dict[str, torch.Tensor]:
    """The naive forecasts at ``ends``, each fit on the train span only.

    ``zero``: no move; ``train_mean``: the train labels' mean; ``ar1``: OLS of the label on the
    return into the bar (momentum when positive, the contrarian forecast when negative).
    """
    y = data.labels[data.train_ends].double()
    x = data.last_return[data.train_ends].double()
    ok = ~torch.isnan(x)
    x, y_ar = x[ok], y[ok]
    var = float(((x - x.mean()) ** 2).sum())
    phi = float(((x - x.mean()) * (y_ar - y_ar.mean())).sum()) / var if var > 0 else 0.0
    intercept = float(y_ar.mean()) - phi * float(x.mean()) if len(x) else 0.0
    last = torch.nan_to_num(data.last_return[ends].double())
    return {
        "zero": torch.zeros(len(ends), dtype=torch.float64, device=ends.device),
        "train_mean": torch.full((len(ends),), float(y.mean()), dtype=torch.float64, device=ends.device),
        "ar1": intercept + phi * last,
    }


def baseline_losses(data: SequenceData) -> dict[str, dict[str, float]]:
    """MSE of the naive forecasts (see :func:`naive_forecasts`) on validation and test."""
    out: dict[str, dict[str, float]] = {}
    for span, ends in (("val_loss", data.validation_ends), ("test_loss", data.test_ends)):
        y = data.labels[ends].double()
        for name, forecast in naive_forecasts(data, ends).items():
            out.setdefault(name, {})[span] = float(((forecast - y) ** 2).mean())
    return out


RIDGE_ALPHAS = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5)  # times the number of train samples / 1e3


def fit_ridge(model: nn.Module, data: SequenceData, mean: float, std: float) -> tuple[float, float]:
    """Closed-form ridge of the standardised label on the window's last row, the penalty picked on validation.

    Writes the solution into ``model.linear`` and returns (alpha, validation MSE in return units).
    """

    def rows(ends: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        x = data.features[ends].double().cpu().numpy()
        y = data.labels[ends].double().cpu().numpy()
        return x, y

    x, y = rows(data.train_ends)
    xv, yv = rows(data.validation_ends)
    x_mean, y_std = x.mean(axis=0), (y - mean) / std
    xc = x - x_mean
    gram, cross = xc.T @ xc, xc.T @ (y_std - y_std.mean())
    best: tuple[float, float, np.ndarray] | None = None
    for alpha in RIDGE_ALPHAS:
        w = np.linalg.solve(gram + alpha * len(x) / 1e3 * np.eye(len(gram)), cross)
        pred = ((xv - x_mean) @ w + y_std.mean()) * std + mean
        val = float(np.mean((pred - yv) ** 2))
        if best is None or val < best[1]:
            best = (alpha, val, w)
    alpha, val, w = best
    with torch.no_grad():
        model.linear.weight.copy_(torch.from_numpy(w).float()[None, :])
        model.linear.bias.fill_(float(y_std.mean() - x_mean @ w))
    return alpha, val


def _autocast(device: torch.device, amp: bool):
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and device.type == "cuda")


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: SequenceData,
    ends: torch.Tensor,
    batch_size: int,
    mean: float,
    std: float,
    device: torch.device,
    amp: bool,
) -> float:
    """MSE in return units over the samples ending at ``ends``."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(ends), batch_size):
        x, y = data.batch(ends[i : i + batch_size])
        with _autocast(device, amp):
            pred = model(x).float() * std + mean
        total += float(((pred - y) ** 2).sum())
        count += len(y)
    return total / max(count, 1)


def train(
    model: nn.Module,
    data: SequenceData,
    config: TrainConfig,
    on_epoch: Callable[[int, dict[str, float]], Any] | None = None,
) -> tuple[nn.Module, TrainReport]:
    """Train ``model`` on ``data``; returns the best-validation model (on the CPU) and the report."""
    device = select_device(config.device)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    baselines = baseline_losses(data)
    train_labels = data.labels[data.train_ends].double()
    mean, std = float(train_labels.mean()), float(train_labels.std().clamp_min(1e-12))
    optimizer = None
    try:
        data = data.to(device)
        model = model.to(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        best_state, best_val, best_epoch, stale = None, float("inf"), 0, 0
        history: list[dict[str, float]] = []
        started, train_seconds, samples = time.perf_counter(), 0.0, 0
        stop_reason = "epoch_cap"
        fits_itself = hasattr(model, "fit_direct")  # the ridge floor, the boosted trees: no gradient loop
        if fits_itself:
            best_val, stop_reason = model.fit_direct(data, mean, std, config.seed)
            best_state = model.state_dict()
            samples, train_seconds = len(data.train_ends), time.perf_counter() - started
        else:
            optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        for epoch in range(1, 1 if fits_itself else config.epochs + 1):
            model.train()
            epoch_start = time.perf_counter()
            order = data.train_ends[torch.randperm(len(data.train_ends), generator=generator).to(device)]
            running, seen = 0.0, 0
            for i in range(0, len(order), config.batch_size):
                x, y = data.batch(order[i : i + config.batch_size])
                with _autocast(device, config.amp):
                    pred = model(x).float()
                loss = nn.functional.mse_loss(pred, (y - mean) / std)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                running += float(loss.detach()) * len(y)
                seen += len(y)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            epoch_train_seconds = time.perf_counter() - epoch_start
            train_seconds += epoch_train_seconds
            samples += seen
            val_loss = evaluate(model, data, data.validation_ends, config.batch_size * 4, mean, std, device, config.amp)
            metrics = {
                "train_loss": running / seen * std**2,
                "val_loss": val_loss,
                "train_seconds": epoch_train_seconds,
                "epoch_seconds": time.perf_counter() - epoch_start,
            }
            history.append({"epoch": epoch, **metrics})
            if on_epoch:
                on_epoch(epoch, metrics)
            log.info("epoch %d: train %.3g val %.3g", epoch, metrics["train_loss"], val_loss)
            if val_loss < best_val:
                improved = val_loss < best_val * (1 - config.min_delta)
                best_val, best_epoch = val_loss, epoch
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                stale = 0 if improved else stale + 1
            else:
                stale += 1
            if stale >= config.patience:
                stop_reason = "early_stopping"
                break
        model.load_state_dict(best_state)
        train_loss = evaluate(model, data, data.train_ends, config.batch_size * 4, mean, std, device, config.amp)
        test_loss = evaluate(model, data, data.test_ends, config.batch_size * 4, mean, std, device, config.amp)
        peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
        report = TrainReport(
            train_loss=train_loss,
            val_loss=best_val,
            test_loss=test_loss,
            best_epoch=best_epoch,
            epochs_run=len(history),
            stop_reason=stop_reason,
            wall_seconds=time.perf_counter() - started,
            samples_per_second=samples / train_seconds if train_seconds else 0.0,
            seconds_per_epoch=train_seconds / len(history) if history else 0.0,
            peak_gpu_memory_mb=peak,
            device=str(device),
            baselines=baselines,
            target_mean=mean,
            target_std=std,
            history=history,
        )
        return model, report
    except torch.cuda.OutOfMemoryError as exc:
        raise TrainingError(
            f"CUDA out of memory on {device} (batch_size {config.batch_size}, "
            f"{sum(p.numel() for p in model.parameters()):,} parameters): reduce batch_size, hidden_size, "
            f"num_layers or seq_len, or pick a GPU with more free memory"
        ) from exc
    finally:
        model.to("cpu")
        del optimizer
        if device.type == "cuda":
            release_gpu(device)


def release_gpu(device: torch.device) -> None:
    """Leave the GPU as found: no cached blocks, peak statistics reset."""
    gc.collect()
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
