"""CAM pipeline speed: maps + boxes + metric, and MaxBoxAccV2 vs wsolevaluation's loop.

Features shaped like ResNet50's last block (N x 2048 x 14 x 14, a 1000-class linear head),
each with an object-like blob so that the maps have something to find; maps go to 224 x 224.

1. Pipeline, images/s (same inputs, same run):
   * infocam: ``class_activation_maps`` (one einsum) -> ``upsample_maps`` -> ``normalize_maps``
     -> ``boxes_from_maps`` (threshold 0.2) -> ``LocalizationEvaluator.update``;
   * torch-cam ``CAM`` (hooks on the same GAP + linear model) + the per-image cv2 loop of
     wsolevaluation / the CAM paper (cv2.resize, min-max, cv2.threshold, largest contour,
     boundingRect, IoU);
   * pytorch-grad-cam ``GradCAM`` (equals CAM up to scale for a GAP + linear head; needs a
     backward pass) + the same cv2 loop.
2. Maps vs a ResNet50 forward pass (cost per image).
3. MaxBoxAccV2 per image at cam_curve_interval 0.01 and 0.001: ``MaxBoxAccEvaluator`` (both
   backends: ``opencv``, contours once per distinct cut, and ``compiled``, the C module
   ``infocam._maxbox``) vs the faithful re-statement of wsolevaluation's loop in
   ``wsol_reference.py``; scores must match.

Run: ``python benchmarks/cam_pipeline.py [--n 64] [--n-maxbox 32] [--threads 1]``
(``--quick`` for a short run). Results: ``benchmarks/results/cam_pipeline.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from infocam.cam import class_activation_maps
from infocam.localization import (
    LocalizationEvaluator,
    MaxBoxAccEvaluator,
    normalize_maps,
    upsample_maps,
)
from wsol_reference import ReferenceBoxEvaluator

K, M, H, SIZE = 2048, 1000, 14, 224
RESULTS = Path(__file__).resolve().parent / "results"


class GapHead(nn.Module):
    """The head of ResNet50 on precomputed features: identity 'layer4', GAP, Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.layer4 = nn.Identity()
        self.fc = nn.Linear(K, M)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.layer4(x).mean((2, 3)))


def make_inputs(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    centre = torch.randint(3, H - 3, (n, 2), generator=g)
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(H), indexing="ij")
    sigma = 1.5 + 2 * torch.rand(n, generator=g)
    d2 = (yy - centre[:, 0, None, None]) ** 2 + (xx - centre[:, 1, None, None]) ** 2
    blob = torch.exp(-d2 / (2 * sigma[:, None, None] ** 2))  # (n, 14, 14)
    target = torch.randint(0, M, (n,), generator=g)
    head = GapHead()
    with torch.no_grad():
        head.fc.weight.copy_(torch.randn(M, K, generator=g) * 0.02)
        head.fc.bias.zero_()
    # features: noise + a blob along the target's weight direction
    feats = torch.relu(torch.randn(n, K, H, H, generator=g) * 0.5)
    feats += blob[:, None] * head.fc.weight[target].clamp(min=0)[:, :, None, None] * 30
    scale = SIZE / H
    r = (1.0 + 2.0 * torch.rand(n, generator=g)) * sigma * scale  # loose or tight boxes
    shift = (torch.rand(n, 2, generator=g) - 0.5) * 4 * scale  # up to 2 cells off
    cy, cx = ((centre.float() + 0.5) * scale + shift).unbind(1)
    gt = torch.stack([cx - r, cy - r, cx + r, cy + r], 1).clamp(0, SIZE - 1).long()
    return feats, head.eval(), target, gt


def timeit(fn, repeat: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def cv2_loop(maps_np: np.ndarray, gt: np.ndarray) -> int:
    """The per-image loop users write after torch-cam: resize, min-max, threshold, contour."""
    hits = 0
    for cam, box in zip(maps_np, gt, strict=True):
        cam = cv2.resize(cam, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
        cam = (cam - cam.min()) / max(cam.max() - cam.min(), 1e-12)
        img = (cam * 255).astype(np.uint8)
        _, binary = cv2.threshold(img, int(0.2 * img.max()), 255, cv2.THRESH_BINARY)
        contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
        if contours:
            x, y, w, h = cv2.boundingRect(max(contours, key=cv2.contourArea))
            pred = np.array([x, y, x + w - 1, y + h - 1])
        else:
            pred = np.zeros(4, dtype=int)
        lt, rb = np.maximum(pred[:2], box[:2]), np.minimum(pred[2:], box[2:])
        inter = np.prod(np.maximum(rb - lt + 1, 0))
        area = np.prod(pred[2:] - pred[:2] + 1) + np.prod(box[2:] - box[:2] + 1) - inter
        hits += int(inter / area >= 0.5)
    return hits


def pipeline_rows(feats, head, target, gt, repeat):
    n = feats.shape[0]
    rows = []
    with torch.no_grad():
        logits = head(feats)

    def ours():
        maps = class_activation_maps(feats, head.fc.weight, target, "cam")
        big = upsample_maps(maps, SIZE)  # boxes_from_maps min-max normalises itself
        ev = LocalizationEvaluator()
        ev.update(big, gt, target, logits)
        return ev

    t = timeit(ours, repeat)
    rows.append(("infocam CAM", t, n / t))

    def ours_info():
        maps = class_activation_maps(feats, head.fc.weight, target, "infocam+", 3, logits)
        ev = LocalizationEvaluator()
        ev.update(upsample_maps(maps, SIZE), gt, target, logits)
        return ev

    t = timeit(ours_info, repeat)
    rows.append(("infocam infoCAM+ (region 3)", t, n / t))

    try:
        from torchcam.methods import CAM
    except ImportError:
        rows.append(("torch-cam CAM + cv2 loop: not installed (pip install torchcam)", None, None))
    else:

        def torchcam_run():
            with CAM(head, target_layer="layer4", fc_layer="fc", input_shape=(K, H, H)) as ext:
                with torch.no_grad():
                    scores = head(feats)
                maps = ext(target.tolist(), scores)[0]
            return cv2_loop(maps.numpy().astype(np.float32), gt.numpy())

        t = timeit(torchcam_run, repeat)
        rows.append(("torch-cam CAM + per-image cv2 loop", t, n / t))

    try:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    except ImportError:
        rows.append(("pytorch-grad-cam: not installed (pip install grad-cam)", None, None))
    else:

        def gradcam_run():
            with GradCAM(model=head, target_layers=[head.layer4]) as cam:
                targets = [ClassifierOutputTarget(int(c)) for c in target]
                maps = cam(input_tensor=feats.clone().requires_grad_(True), targets=targets)
            return cv2_loop(maps.astype(np.float32), gt.numpy())

        t = timeit(gradcam_run, repeat)
        rows.append(("pytorch-grad-cam GradCAM + per-image cv2 loop", t, n / t))
    return rows


def forward_cost(feats, head, target, n_forward: int):
    import torchvision

    model = torchvision.models.resnet50(weights=None).eval()
    x = torch.randn(n_forward, 3, SIZE, SIZE)
    with torch.no_grad():
        t_fwd = timeit(lambda: model(x), 1) / n_forward
    n = feats.shape[0]
    t_map = timeit(lambda: class_activation_maps(feats, head.fc.weight, target, "infocam+"), 3)
    return t_fwd, t_map / n


def maxbox_rows(maps, gts, threads: int, repeat: int):
    """Per-image seconds of wsolevaluation's loop and both MaxBoxAccEvaluator backends.

    The three run in turn ``repeat`` times (best of each kept), so that a load change on a
    shared machine hits them alike; the scores must be equal.
    """
    rows = []
    n = maps.shape[0]
    maps_np = maps.numpy()
    for interval in (0.01, 0.001):
        best = {"ref": float("inf"), "opencv": float("inf"), "compiled": float("inf")}
        scores = {}
        for _ in range(repeat):
            ref = ReferenceBoxEvaluator(cam_curve_interval=interval)
            t0 = time.perf_counter()
            for m, g in zip(maps_np, gts, strict=True):
                ref.accumulate(m, g[None])
            best["ref"] = min(best["ref"], (time.perf_counter() - t0) / n)
            scores["ref"] = ref.compute()
            for backend in ("opencv", "compiled"):
                ev = MaxBoxAccEvaluator(
                    cam_curve_interval=interval, num_threads=threads, backend=backend
                )
                t0 = time.perf_counter()
                ev.update(maps, gts[:, None])
                best[backend] = min(best[backend], (time.perf_counter() - t0) / n)
                scores[backend] = ev.compute()
        equal = scores["ref"] == scores["opencv"] == scores["compiled"]
        rows.append((interval, best, scores["ref"]["MaxBoxAccV2"], equal))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64, help="batch size of the pipeline (default 64)")
    ap.add_argument("--n-maxbox", type=int, default=32, help="images for MaxBoxAccV2 timing")
    ap.add_argument("--n-forward", type=int, default=4, help="images for the ResNet50 forward")
    ap.add_argument("--threads", type=int, default=1, help="torch / MaxBoxAcc threads")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="n=16, n-maxbox=8, repeat=1")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.n_maxbox, args.repeat, args.n_forward = 16, 8, 1, 2
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)

    feats, head, target, gt = make_inputs(args.n, args.seed)
    lines = [
        f"CAM pipeline, N={args.n} features 2048x14x14 -> 224x224, M=1000, "
        f"{args.threads} thread(s), {platform.processor() or platform.machine()}",
        "",
        f"{'pipeline (maps + boxes + metric update)':<52}{'ms/batch':>10}{'images/s':>10}"
        f"{'time / infocam CAM':>20}",
    ]
    rows = pipeline_rows(feats, head, target, gt, args.repeat)
    base = rows[0][2]
    for name, t, ips in rows:
        if t is None:
            lines.append(f"{name:<52}")
        else:
            lines.append(f"{name:<52}{t * 1e3:>10.1f}{ips:>10.0f}{base / ips:>19.1f}x")

    t_fwd, t_map = forward_cost(feats, head, target, args.n_forward)
    lines += [
        "",
        f"ResNet50 forward per image: {t_fwd * 1e3:.1f} ms; infoCAM+ maps per image: "
        f"{t_map * 1e3:.3f} ms = {100 * t_map / t_fwd:.3f}% of the forward pass",
        "",
    ]

    fm, hm, tm, gm = make_inputs(args.n_maxbox, args.seed + 1)
    with torch.no_grad():
        maps = class_activation_maps(fm, hm.fc.weight, tm)
    maps = normalize_maps(upsample_maps(maps.double(), SIZE))
    lines.append(
        f"MaxBoxAccV2, {args.n_maxbox} maps 224x224, ms/image (best of {args.repeat}); "
        f"infocam backends: opencv (contours per distinct cut) and compiled (infocam._maxbox)"
    )
    lines.append(
        f"{'cam_curve_interval':<20}{'wsol loop':>10}{'opencv':>10}{'compiled':>10}"
        f"{'wsol/opencv':>13}{'wsol/compiled':>15}  scores equal (MaxBoxAccV2)"
    )
    mrows = maxbox_rows(maps, gm.numpy(), args.threads, max(args.repeat, 1))
    for interval, t, score, eq in mrows:
        lines.append(
            f"{interval:<20}{t['ref'] * 1e3:>10.2f}{t['opencv'] * 1e3:>10.2f}"
            f"{t['compiled'] * 1e3:>10.3f}{t['ref'] / t['opencv']:>12.1f}x"
            f"{t['ref'] / t['compiled']:>14.1f}x  {eq} ({score:.4f})"
        )
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cam_pipeline.md").write_text("```\n" + text + "\n```\n")
    payload = {
        "args": vars(args),
        "pipeline": [{"name": n, "seconds": t, "images_per_s": i} for n, t, i in rows],
        "resnet50_forward_ms": t_fwd * 1e3,
        "maps_ms_per_image": t_map * 1e3,
        "maxboxacc": [
            {
                "interval": interval,
                "wsol_loop_s": t["ref"],
                "opencv_s": t["opencv"],
                "compiled_s": t["compiled"],
                "maxboxaccv2": score,
                "equal": eq,
            }
            for interval, t, score, eq in mrows
        ],
    }
    (RESULTS / "cam_pipeline.json").write_text(json.dumps(payload, indent=2))
    return 0 if all(r[-1] for r in mrows) else 1  # unequal scores fail the run


if __name__ == "__main__":
    sys.exit(main())
