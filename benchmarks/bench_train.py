"""Training throughput of a model config on the device it runs on.

Prints samples/s and seconds per training epoch (validation excluded) for the research preset
(BiLSTM, hidden 1024, 4 layers, batch 128) by default, on data the size of the old pipeline's
(about 6,900 training sequences). The first epoch includes warm-up (cuDNN autotuning, allocator
growth) and is reported separately.

    python benchmarks/bench_train.py [--preset research] [--sequences 6900] [--seq-len 60] [--epochs 3]
    python benchmarks/bench_train.py --preset none --hidden 64 --layers 2   # a small model
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from trading_assets.features import TARGET, feature_columns
from trading_assets.training.config import ModelConfig, TrainConfig, build_spec
from trading_assets.training.models import build_model
from trading_assets.training.sequences import build_sequences
from trading_assets.training.trainer import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="research", help="research or none")
    parser.add_argument("--kind", default="bilstm")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--sequences", type=int, default=6900, help="training sequences per epoch")
    parser.add_argument("--seq-len", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-amp", action="store_true")
    args = parser.parse_args()

    if args.preset != "none":
        spec = build_spec({}, preset=args.preset)
        model_config, batch, lr = spec.model, spec.train.batch_size, spec.train.learning_rate
    else:
        model_config, batch, lr = ModelConfig(args.kind, args.hidden, args.layers), 256, 1e-3
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=batch,
        learning_rate=lr,
        patience=args.epochs + 1,
        device=args.device,
        amp=not args.no_amp,
    )
    # rows so that the 70 % train span holds `sequences` samples
    rows = int((args.sequences + args.seq_len) / 0.7) + 2 * (args.seq_len + 1) + 10
    columns = feature_columns()
    rng = np.random.default_rng(0)
    idx = pd.date_range("2024-01-01", periods=rows, freq="1min", tz="UTC")
    frame = pd.DataFrame(rng.standard_normal((rows, len(columns))).astype("float32"), index=idx, columns=columns)
    frame[TARGET] = (rng.standard_normal(rows) * 1e-3).astype("float32")
    data = build_sequences(frame, args.seq_len)
    model = build_model(len(columns), model_config)
    params = sum(p.numel() for p in model.parameters())
    started = time.perf_counter()
    _, report = train(model, data, config)
    epochs = report.history
    steady = epochs[1:] or epochs
    per_epoch = sum(e["train_seconds"] for e in steady) / len(steady)
    print(
        f"device                : {report.device}{' (bf16 autocast)' if config.amp and 'cuda' in report.device else ''}"
    )
    if torch.cuda.is_available() and "cuda" in report.device:
        print(f"gpu                   : {torch.cuda.get_device_name(torch.device(report.device))}")
    print(
        f"model                 : {model_config.kind} hidden {model_config.hidden_size} x {model_config.num_layers} "
        f"layers, {params:,} parameters, batch {batch}, seq_len {args.seq_len}"
    )
    print(f"training sequences    : {len(data.train_ends):,} per epoch")
    print(f"first epoch (warm-up) : {epochs[0]['train_seconds']:.3f} s")
    print(f"seconds per epoch     : {per_epoch:.3f} s (mean of epochs 2..{len(epochs)})")
    print(f"samples per second    : {len(data.train_ends) / per_epoch:,.0f}")
    print(f"peak GPU memory       : {report.peak_gpu_memory_mb or 0:,.0f} MiB")
    print(f"total wall time       : {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
