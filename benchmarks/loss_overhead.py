"""Forward + backward time of PCSoftmaxCrossEntropy vs F.cross_entropy (the alternative).

N=4096, M=1000 by default, float32, on the CPU and on CUDA when present. Both are timed in
the same run, interleaved, and reported as a ratio (target: <= 1.2x). Also times the
functional form (which re-validates the prior each call) and the logit-adjusted
cross-entropy a user would write by hand, ``F.cross_entropy(logits + log_prior, y)``.

Run: ``python benchmarks/loss_overhead.py [--n 4096 --m 1000 --repeats 30]``.
Writes ``benchmarks/results/loss_overhead.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import infocam


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fwd_bwd(fn, logits: torch.Tensor, target: torch.Tensor, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        x = logits.detach().requires_grad_(True)
        _sync(logits.device)
        t0 = time.perf_counter()
        fn(x, target).backward()
        _sync(logits.device)
        times.append(time.perf_counter() - t0)
    return times


def bench(device: torch.device, n: int, m: int, repeats: int) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(n, m, generator=g) * 3).to(device)
    target = torch.randint(0, m, (n,), generator=g).to(device)
    prior = torch.distributions.Dirichlet(torch.ones(m)).sample().clamp_min(1e-6)
    prior = prior / prior.sum()
    module = infocam.PCSoftmaxCrossEntropy(prior).to(device)
    log_prior = prior.log().to(device)
    candidates = {
        "F.cross_entropy (baseline)": F.cross_entropy,
        "PCSoftmaxCrossEntropy": module,
        "pc_softmax_cross_entropy (functional)": lambda x, y: infocam.pc_softmax_cross_entropy(
            x, y, prior
        ),
        "F.cross_entropy(logits + log p) by hand": lambda x, y: F.cross_entropy(x + log_prior, y),
    }
    for fn in candidates.values():  # warm-up
        time_fwd_bwd(fn, logits, target, 3)
    samples: dict[str, list[float]] = {k: [] for k in candidates}
    for _ in range(repeats):  # interleave so drift hits every candidate alike
        for name, fn in candidates.items():
            samples[name] += time_fwd_bwd(fn, logits, target, 1)
    base = statistics.median(samples["F.cross_entropy (baseline)"])
    rows = []
    for name, ts in samples.items():
        med = statistics.median(ts)
        rows.append(
            {"device": str(device), "loss": name, "median_ms": med * 1e3, "ratio": med / base}
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--m", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    rows = [r for d in devices for r in bench(d, args.n, args.m, args.repeats)]
    print(f"forward+backward, N={args.n}, M={args.m}, float32, median of {args.repeats}")
    print(f"{'device':<8}{'loss':<42}{'median ms':>11}{'vs F.cross_entropy':>20}")
    for r in rows:
        print(f"{r['device']:<8}{r['loss']:<42}{r['median_ms']:>11.2f}{r['ratio']:>19.2f}x")
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "n": args.n,
        "m": args.m,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "cpus": os.cpu_count(),
        "load_1min": round(os.getloadavg()[0], 2),  # other jobs on the machine
    }
    path = args.out / "loss_overhead.json"
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
