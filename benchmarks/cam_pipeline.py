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
   ``infocam._maxbox``, on one thread and on all of torch's) vs the faithful re-statement of
   wsolevaluation's loop in ``wsol_reference.py``; scores must match. Three families of
   maps: one blob, three blobs (secondary peaks), and real CAMs of an ImageNet
   EfficientNet-Lite0 on scikit-image's photos (when ``infocam[bench]`` is installed).

Run: ``python benchmarks/cam_pipeline.py [--n 64] [--n-maxbox 32] [--threads 1]
[--maxbox-threads N]``
(``--quick`` for a short run). Results: ``benchmarks/results/cam_pipeline.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
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


def make_inputs(n: int, seed: int, blobs: int = 1):
    """Features with ``blobs`` object-like blobs along the target's weight direction (the
    first at full strength, the others at 30-80%: the secondary peaks real CAMs have), and a
    ground-truth box around the first."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(H), indexing="ij")
    centres, sigmas, heat = [], [], torch.zeros(n, H, H)
    for b in range(blobs):
        centre = torch.randint(3, H - 3, (n, 2), generator=g)
        sigma = 1.5 + 2 * torch.rand(n, generator=g)
        d2 = (yy - centre[:, 0, None, None]) ** 2 + (xx - centre[:, 1, None, None]) ** 2
        amp = 1.0 if b == 0 else 0.3 + 0.5 * torch.rand(n, 1, 1, generator=g)
        heat += amp * torch.exp(-d2 / (2 * sigma[:, None, None] ** 2))  # (n, 14, 14)
        centres.append(centre)
        sigmas.append(sigma)
    target = torch.randint(0, M, (n,), generator=g)
    head = GapHead()
    with torch.no_grad():
        head.fc.weight.copy_(torch.randn(M, K, generator=g) * 0.02)
        head.fc.bias.zero_()
    # features: noise + the blobs along the target's weight direction
    feats = torch.relu(torch.randn(n, K, H, H, generator=g) * 0.5)
    feats += heat[:, None] * head.fc.weight[target].clamp(min=0)[:, :, None, None] * 30
    scale = SIZE / H
    r = (1.0 + 2.0 * torch.rand(n, generator=g)) * sigmas[0] * scale  # loose or tight boxes
    shift = (torch.rand(n, 2, generator=g) - 0.5) * 4 * scale  # up to 2 cells off
    cy, cx = ((centres[0].float() + 0.5) * scale + shift).unbind(1)
    gt = torch.stack([cx - r, cy - r, cx + r, cy + r], 1).clamp(0, SIZE - 1).long()
    return feats, head.eval(), target, gt


def photo_cams(n: int, seed: int):
    """Real CAMs: ImageNet-pretrained EfficientNet-Lite0 (the ``infocam[demo]`` wheels) on
    random crops and flips of scikit-image's photos, 7 x 7 maps -> 224 x 224, with a random
    box each (no ground truth exists; the box only sets the IoUs both sides compute). None
    when the model or scikit-image is not installed."""
    try:
        from skimage import data as skdata

        from infocam.models.registry import load_classifier

        model = load_classifier("efficientnet_lite0", "imagenet")
    except (ImportError, ValueError):
        return None
    from infocam import CAMExtractor
    from infocam._imagenet import IMAGENET_MEAN, IMAGENET_STD

    names = ["chelsea", "coffee", "rocket", "astronaut", "motorcycle_left", "horse", "camera"]
    photos = []
    for name in names:
        try:
            img = torch.from_numpy(np.ascontiguousarray(getattr(skdata, name)())).float() / 255
        except Exception:  # a photo that needs a download: skip it
            continue
        photos.append(img[..., None].expand(*img.shape, 3) if img.ndim == 2 else img[..., :3])
    if not photos:
        return None
    g = torch.Generator().manual_seed(seed)
    batch = []
    for i in range(n):
        img = photos[i % len(photos)].permute(2, 0, 1)
        h, w = img.shape[1:]
        s = 0.5 + 0.5 * float(torch.rand(1, generator=g))
        ch, cw = int(h * s), int(w * s)
        y0 = int(torch.randint(0, h - ch + 1, (1,), generator=g))
        x0 = int(torch.randint(0, w - cw + 1, (1,), generator=g))
        crop = img[None, :, y0 : y0 + ch, x0 : x0 + cw]
        crop = torch.nn.functional.interpolate(crop, size=(SIZE, SIZE), mode="bilinear")[0]
        batch.append(crop.flip(-1) if float(torch.rand(1, generator=g)) < 0.5 else crop)
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    x = (torch.stack(batch) - mean) / std
    with torch.inference_mode():
        maps = CAMExtractor(model)(x, method="cam").maps
    maps = normalize_maps(upsample_maps(maps, SIZE))  # float32
    c = torch.randint(40, SIZE - 40, (n, 2), generator=g)
    r = torch.randint(20, 80, (n, 1), generator=g)
    gt = torch.cat([c - r, c + r], 1).clamp(0, SIZE - 1)
    return maps, gt


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
    """Per-image seconds of wsolevaluation's loop and MaxBoxAccEvaluator: the opencv backend,
    the compiled one on 1 thread and on ``threads`` threads.

    All run in turn ``repeat`` times (best of each kept), so that a load change on a shared
    machine hits them alike; the scores must be equal.
    """
    rows = []
    n = maps.shape[0]
    maps_np = maps.numpy()
    runs = {"opencv": ("opencv", 1), "compiled": ("compiled", 1)}
    if threads > 1:
        runs[f"compiled x{threads}"] = ("compiled", threads)
    for interval in (0.01, 0.001):
        best = dict.fromkeys(["ref", *runs], float("inf"))
        scores = {}
        for _ in range(repeat):
            ref = ReferenceBoxEvaluator(cam_curve_interval=interval)
            t0 = time.perf_counter()
            for m, g in zip(maps_np, gts, strict=True):
                ref.accumulate(m, g[None])
            best["ref"] = min(best["ref"], (time.perf_counter() - t0) / n)
            scores["ref"] = ref.compute()
            for name, (backend, nthreads) in runs.items():
                ev = MaxBoxAccEvaluator(
                    cam_curve_interval=interval, num_threads=nthreads, backend=backend
                )
                t0 = time.perf_counter()
                ev.update(maps, gts[:, None])
                best[name] = min(best[name], (time.perf_counter() - t0) / n)
                scores[name] = ev.compute()
        equal = all(v == scores["ref"] for v in scores.values())
        rows.append((interval, best, scores["ref"]["MaxBoxAccV2"], equal))
    return rows


def maxbox_families(n: int, seed: int):
    """The maps MaxBoxAccV2 is timed on: name -> (maps (n, 224, 224) in [0, 1], boxes)."""
    families = {}
    for name, blobs in (("one blob", 1), ("three blobs", 3)):
        f, head, t, gt = make_inputs(n, seed, blobs=blobs)
        with torch.no_grad():
            maps = class_activation_maps(f, head.fc.weight, t)
        families[name] = (normalize_maps(upsample_maps(maps, SIZE)), gt)  # float32, as CAMs are
    photos = photo_cams(n, seed)
    if photos is not None:
        families["photos (EfficientNet-Lite0)"] = photos
    return families


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64, help="batch size of the pipeline (default 64)")
    ap.add_argument("--n-maxbox", type=int, default=32, help="images for MaxBoxAccV2 timing")
    ap.add_argument("--n-forward", type=int, default=4, help="images for the ResNet50 forward")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (pipeline)")
    ap.add_argument(
        "--maxbox-threads",
        type=int,
        default=0,
        help="threads of the parallel MaxBoxAccV2 column (default: torch's default)",
    )
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="n=16, n-maxbox=8, repeat=1")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.n_maxbox, args.repeat, args.n_forward = 16, 8, 1, 2
    default_threads = torch.get_num_threads()  # before the pipeline's setting below
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

    threads = args.maxbox_threads or default_threads
    lines.append(
        f"MaxBoxAccV2, {args.n_maxbox} float32 maps 224x224 per family, ms/image (best of "
        f"{args.repeat}); infocam backends: opencv (contours per distinct cut) and compiled "
        f"(infocam._maxbox) on 1 and {threads} thread(s)"
    )
    cols = ["opencv", "compiled"] + ([f"compiled x{threads}"] if threads > 1 else [])
    head_cols = "".join(f"{c:>13}" for c in cols) + "".join(f"{'wsol/' + c:>19}" for c in cols)
    lines.append(f"{'maps':<29}{'interval':>9}{'wsol loop':>11}{head_cols}  equal (MaxBoxAccV2)")
    mrows = []
    for family, (maps, gt) in maxbox_families(args.n_maxbox, args.seed + 1).items():
        for interval, t, score, eq in maxbox_rows(maps, gt.numpy(), threads, args.repeat):
            mrows.append((family, interval, t, score, eq))
            vals = "".join(f"{t[c] * 1e3:>13.3f}" for c in cols)
            ratios = "".join(f"{t['ref'] / t[c]:>18.1f}x" for c in cols)
            lines.append(
                f"{family:<29}{interval:>9}{t['ref'] * 1e3:>11.2f}{vals}{ratios}  {eq} "
                f"({score:.4f})"
            )
    if "photos (EfficientNet-Lite0)" not in {r[0] for r in mrows}:
        lines.append(
            "(photos row skipped: needs the infocam[demo] wheels and scikit-image; "
            "pip install -e '.[bench]')"
        )
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cam_pipeline.md").write_text("```\n" + text + "\n```\n")
    payload = {
        "args": vars(args),
        "meta": {
            "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "load_1min": round(os.getloadavg()[0], 2),  # other jobs on the machine
        },
        "pipeline": [{"name": n, "seconds": t, "images_per_s": i} for n, t, i in rows],
        "resnet50_forward_ms": t_fwd * 1e3,
        "maps_ms_per_image": t_map * 1e3,
        "maxboxacc": [
            {
                "maps": family,
                "interval": interval,
                "wsol_loop_s": t["ref"],
                **{f"{k.replace(' ', '_')}_s": v for k, v in t.items() if k != "ref"},
                "maxboxaccv2": score,
                "equal": eq,
            }
            for family, interval, t, score, eq in mrows
        ],
    }
    (RESULTS / "cam_pipeline.json").write_text(json.dumps(payload, indent=2))
    return 0 if all(r[-1] for r in mrows) else 1  # unequal scores fail the run


if __name__ == "__main__":
    sys.exit(main())
