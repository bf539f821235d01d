"""Which classifiers of the torchvision zoo get an exact CAM from ``CAMExtractor``.

For each model of ``torchvision.models.list_models(module=torchvision.models)``: random
weights, BatchNorm statistics set from a few random images (so features are not ~0), the
final classifier re-drawn from normal(0, 0.05) (a zero head must not pass vacuously), then one
``CAMExtractor`` call at the smallest of 64 / 128 / 224 px the model runs at. A model is
*supported* when its maps' spatial mean plus the head's bias terms reproduces its logits to
<= 1e-5 of the largest logit, *refused* when the extractor says why in one line, and *wrong*
(never expected) when it returns maps that do not reproduce the logits.

Run: ``python benchmarks/cam_zoo.py [--models NAME ...] [--out FILE]``; writes
``benchmarks/results/cam_zoo.json`` (atomically), which ``render_docs.py`` turns into the
table of ``docs/models.md``. Minutes on 2 cores (the big ViTs dominate).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch import nn

from infocam.cam import CAMExtractor
from infocam.training.checkpoint import write_json

RESULTS = Path(__file__).resolve().parent / "results" / "cam_zoo.json"
SIZES = (64, 128, 224)
TOLERANCE = 1e-5
# the slowest to build and run on a CPU (hundreds of millions of weights): measured last, so an
# interrupted run has the rest
LAST = ("vgg", "vit_", "wide_resnet", "regnet_y_32gf", "regnet_y_128gf", "efficientnet_v2_l")
# the layer-naming part of a refusal: "... the model's logits[ through ...]: <why>; CAMs need"
_WHY = re.compile(r"the model's logits(?: through [^:]*)?: (.*?); CAMs need")


def head_kind(ext: CAMExtractor) -> str:
    """A short name of the head the extractor found: ``gap+linear``, ``layernorm+linear``..."""
    if ext.head_steps_ is None:
        return "gap+linear"
    kinds = [s.kind for s in ext.head_steps_ if s.kind != "noop"]
    if not kinds:
        return "identity (classifier before the pooling)"
    if any(s.branch for s in ext.head_steps_):
        return "averaged(" + "+".join(dict.fromkeys(kinds)) + ")"
    return "+".join(kinds)


def prepare(model: nn.Module, size: int, seed: int = 0) -> nn.Module:
    """Random BatchNorm statistics from 4 random images and a non-zero random classifier."""
    gen = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if norms:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average: the statistics of these images
        model.eval()  # only the norms in train mode: no dropout, no auxiliary heads
        for m in norms:
            m.train()
        with torch.no_grad():
            model(torch.randn(4, 3, size, size, generator=gen))
    heads = [
        m
        for m in model.modules()
        if isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1))
    ]
    if heads:
        with torch.no_grad():
            heads[-1].weight.normal_(0.0, 0.05, generator=gen)
    return model.eval()


def check(model: nn.Module, images: torch.Tensor) -> dict[str, Any]:
    """One extractor call: status ``supported`` / ``refused`` / ``wrong`` and the details."""
    ext = CAMExtractor(model)
    try:
        res = ext(images, target="all")
    except ValueError as exc:
        line = str(exc).splitlines()[0]
        why = _WHY.search(line)
        return {"status": "refused", "reason": why.group(1) if why else line, "message": line}
    logits = res.logits.double()
    got = res.maps.double().mean((2, 3)) + res.head.bias.double()
    rel = float((got - logits).abs().max() / logits.abs().max().clamp_min(1e-12))
    return {
        "status": "supported" if rel <= TOLERANCE else "wrong",
        "head": head_kind(ext),
        "feature_layer": ext.feature_layer_,
        "classifier": ext.classifier_,
        "map": list(res.maps.shape[-2:]),
        "rel_error": rel,
    }


def run_model(build: Any, name: str, seed: int = 0) -> dict[str, Any]:
    """Build ``name`` with ``build(name)`` and check it at the smallest size it runs at."""
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    model = build(name)
    last: Exception | None = None
    for size in SIZES:
        try:
            prepare(model, size, seed)
            images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))
            row = check(model, images)
        except (RuntimeError, AssertionError, IndexError) as exc:  # too small for the model
            last = exc
            continue
        return {"model": name, "size": size, **row, "seconds": time.perf_counter() - t0}
    reason = f"does not run at {SIZES} px: {str(last).splitlines()[0] if last else ''}"
    return {"model": name, "status": "error", "reason": reason, "seconds": time.perf_counter() - t0}


def torchvision_build(name: str) -> nn.Module:
    import torchvision

    with warnings.catch_warnings():  # GoogLeNet / Inception's note on their initialisation
        warnings.simplefilter("ignore", FutureWarning)
        return torchvision.models.get_model(name, weights=None, num_classes=10)


def timm_build(spec: str) -> nn.Module:
    """A timm model by name, ``name:pool`` to pick its ``global_pool`` (``resnet18:avgmax``)."""
    import timm

    name, _, pool = spec.partition(":")
    kwargs = {"global_pool": pool} if pool else {}
    return timm.create_model(name, pretrained=False, num_classes=10, **kwargs)


def summary(rows: list[dict[str, Any]]) -> dict[str, int]:
    counts = Counter(r["status"] for r in rows)
    return {k: counts.get(k, 0) for k in ("supported", "refused", "wrong", "error")}


def main(argv: list[str] | None = None) -> int:
    import torchvision

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", help="torchvision names (default: the whole zoo)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="result file (JSON)")
    ap.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1))
    ap.add_argument(
        "--resume",
        action="store_true",
        help="keep the models already in --out (but those that did not run), run the rest",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    zoo = torchvision.models.list_models(module=torchvision.models)
    names = args.models or sorted(zoo, key=lambda n: n.startswith(LAST))
    done: dict[str, dict[str, Any]] = {}
    if args.resume and args.out.exists():
        rows = json.loads(args.out.read_text())["rows"]
        done = {r["model"]: r for r in rows if r["status"] != "error"}  # errors are retried
    for name in names:
        if name in done:
            continue
        row = run_model(torchvision_build, name)
        row["library"] = "torchvision"
        done[name] = row
        what = row.get("head") or row.get("reason", "")
        print(f"{name:24s} {row['status']:9s} {row['seconds']:6.1f}s  {what[:110]}", flush=True)
        _write(args.out, done, args.threads, zoo)  # a partial table survives a stop
    return _write(args.out, done, args.threads, zoo)


def _write(out: Path, done: dict[str, dict[str, Any]], threads: int, zoo: list[str]) -> int:
    import torchvision

    rows = [done[k] for k in sorted(done)]
    missing = [n for n in zoo if n not in done]
    meta = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "machine": platform.machine(),
        "threads": threads,
        "not_measured": missing,
        "tolerance": TOLERANCE,
        "sizes": list(SIZES),
        "num_classes": 10,
    }
    data = {"meta": meta, "summary": {"torchvision": summary(rows)}, "rows": rows}
    write_json(data, out)
    if not missing:
        print(json.dumps(data["summary"]))
    return 1 if data["summary"]["torchvision"]["wrong"] else 0


if __name__ == "__main__":
    sys.exit(main())
