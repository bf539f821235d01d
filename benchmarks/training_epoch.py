"""One training epoch on MNIST-sized in-memory data: infocam.training.fit vs a hand loop.

60,000 x 784 float32 inputs, 10 classes, an MLP 784-256-10, Adam, batch 256, 1 thread on
the CPU (CUDA too when present). Timed in the same run, interleaved, median of repeats:

- ``hand loop + DataLoader``: what a user writes with plain PyTorch
  (``DataLoader(TensorDataset(x, y), shuffle=True)``, per-sample indexing and collate);
- ``hand loop + index batches``: the same loop over ``x[perm[i:i+B]]`` slices (the floor);
- ``fit (tensors)``: ``infocam.training.fit`` on ``(x, y)`` (batched indexing), with metrics,
  per-class counts, checkpoint to a temp folder, JSON log;
- ``hand loop + Dataset`` / ``fit (Dataset)``: a map-style Dataset returning ``(x[i], y[i])``
  through a DataLoader (0 workers), by hand and through ``fit``.

Run: ``python benchmarks/training_epoch.py [--n 60000 --repeats 3]``.
Writes ``benchmarks/results/training_epoch.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from infocam.training import TrainConfig, fit


class Pairs(torch.utils.data.Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i]


def model_and_opt(device: torch.device):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10)).to(device)
    return model, torch.optim.Adam(model.parameters(), lr=1e-3)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def hand_loop(x, y, batch: int, device: torch.device, *, loader: str = "") -> float:
    model, opt = model_and_opt(device)
    if loader:
        ds = TensorDataset(x, y) if loader == "tensor" else Pairs(x, y)
        batches = DataLoader(ds, batch_size=batch, shuffle=True)
    else:
        perm = torch.randperm(len(y))
        batches = (
            (x[perm[i : i + batch]], y[perm[i : i + batch]]) for i in range(0, len(y), batch)
        )
    _sync(device)
    t0 = time.perf_counter()
    for xb, yb in batches:
        xb, yb = xb.to(device), yb.to(device)
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    _sync(device)
    return time.perf_counter() - t0


def fit_epoch(x, y, batch: int, device: torch.device, *, dataset: bool) -> float:
    model, _ = model_and_opt(device)
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(epochs=1, batch_size=batch, lr=1e-3, quiet=True, out=out,
                          device=str(device))  # fmt: skip
        data = Pairs(x, y) if dataset else (x, y)
        _sync(device)
        t0 = time.perf_counter()
        fit(model, F.cross_entropy, data, None, cfg)
        _sync(device)
        return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=60000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.n, 784, generator=g)
    y = torch.randint(0, 10, (args.n,), generator=g)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    methods = {
        "hand loop + DataLoader": lambda d: hand_loop(x, y, args.batch, d, loader="tensor"),
        "hand loop + index batches": lambda d: hand_loop(x, y, args.batch, d),
        "hand loop + Dataset": lambda d: hand_loop(x, y, args.batch, d, loader="pairs"),
        "fit (tensors)": lambda d: fit_epoch(x, y, args.batch, d, dataset=False),
        "fit (Dataset)": lambda d: fit_epoch(x, y, args.batch, d, dataset=True),
    }
    rows = []
    for device in devices:
        times: dict[str, list[float]] = {m: [] for m in methods}
        for _ in range(args.repeats):  # interleaved, so machine load hits all alike
            for name, fn in methods.items():
                times[name].append(fn(device))
        base = statistics.median(times["hand loop + DataLoader"])
        print(f"\n{device}: one epoch, n={args.n}, batch {args.batch}, median of {args.repeats}")
        print(f"{'method':28s} {'seconds':>8s} {'samples/s':>10s} {'vs DataLoader':>14s}")
        for name, ts in times.items():
            med = statistics.median(ts)
            row = {"device": str(device), "method": name, "seconds": med}
            row.update(samples_per_s=args.n / med, speedup_vs_dataloader=base / med)
            rows.append(row)
            print(f"{name:28s} {med:8.3f} {args.n / med:10.0f} {base / med:13.2f}x")
    out = Path(__file__).parent / "results" / "training_epoch.json"
    out.parent.mkdir(exist_ok=True)
    meta = {"torch": torch.__version__, "python": platform.python_version(), "threads": 1,
            "cpus": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 2)}  # fmt: skip
    out.write_text(json.dumps({"args": vars(args), "meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
