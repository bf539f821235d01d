"""WSOL evaluation: box settings chosen on the validation split, scores on the test split.

For a trained GAP classifier and a dataset of ``(image, label, boxes)`` items:

1. :func:`localization_grid` scores GT-known Loc for every method (CAM, infoCAM, infoCAM+),
   region size ``r`` and box threshold ``t`` of a grid, from ONE forward pass per batch (the
   maps of every method and region are einsums on the same features).
2. :func:`select_settings` picks, per method, the ``(r, t)`` with the highest GT-known Loc on
   the **validation** split (ties: smallest ``r``, then smallest ``t``).
3. :func:`evaluate_localization` applies those settings to the **test** split: GT-known Loc,
   Top-1 Loc, Top-1 / Top-5 classification (:class:`~infocam.LocalizationEvaluator`, IoU >=
   0.5) and MaxBoxAccV2 (:class:`~infocam.MaxBoxAccEvaluator`, threshold-free, at the chosen
   ``r``); when the items carry a mask, PxAP too (:class:`~infocam.localization.PxAPEvaluator`,
   threshold-free, at the chosen ``r``, from the same maps in the same pass).

:func:`evaluate_wsol` runs the three steps; the test split is never seen by the selection.
Maps are computed for the TRUE class (GT-known protocol); Top-1 Loc additionally needs a
correct top-1 prediction, as in the paper and wsolevaluation.

Items are ``(image, label, boxes)`` or ``(image, label, boxes, mask)``: ``mask`` an ``(H, W)``
tensor at image size in wsolevaluation's encoding (``get_mask``): 1 foreground, 0 background,
255 ignored. Every item of a data set has a mask, or none does.

Under ``torchrun`` (an initialised ``torch.distributed`` group) each process scores one
contiguous shard of the data (no padding, nothing counted twice) and the evaluators' integer
counters are summed over the processes before any score is read, so every process ends with
the single-process numbers; rank 0's shard starts the data set, so its ``examples`` are the
first images.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from infocam._validation import check_int, check_real
from infocam.cam import (
    DEFAULT_REGION_PADDING,
    LEAST_LIKELY,
    METHODS,
    REGION_PADDINGS,
    CAMExtractor,
    class_activation_maps,
)
from infocam.localization import (
    NORMALIZATIONS,
    LocalizationEvaluator,
    MaxBoxAccEvaluator,
    PxAPEvaluator,
    normalize_maps,
    sum_over_processes,
    upsample_maps,
)
from infocam.training.distributed import rank_and_world

__all__ = [
    "DEFAULT_REGIONS",
    "DEFAULT_THRESHOLDS",
    "BoxSetting",
    "WSOLEvalOptions",
    "evaluate_fixed",
    "evaluate_localization",
    "evaluate_wsol",
    "localization_grid",
    "select_settings",
    "wsol_collate",
]

DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 20))
DEFAULT_REGIONS: tuple[int, ...] = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class BoxSetting:
    """The region size and box threshold of one method, and its validation score (None when
    the setting was fixed, not chosen: the paper protocol)."""

    region: int
    threshold: float
    val_gt_known_loc: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "threshold": self.threshold,
            "val_gt_known_loc": self.val_gt_known_loc,
        }


def wsol_collate(items: Sequence[tuple[Any, ...]]) -> tuple[Any, ...]:
    """Collate ``(image, label, boxes)`` items: stacked images, labels, a list of (G_i, 4);
    ``(image, label, boxes, mask)`` items also give the masks stacked (N, H, W)."""
    lengths = {len(it) for it in items}
    if not lengths <= {3, 4} or len(lengths) > 1:
        raise ValueError(
            "WSOL items must all be (image, label, boxes) or all (image, label, boxes, mask); "
            f"got items of {sorted(lengths)} elements"
        )
    images = torch.stack([it[0] for it in items])
    labels = torch.tensor([int(it[1]) for it in items], dtype=torch.long)
    boxes = [torch.as_tensor(it[2], dtype=torch.float32) for it in items]
    if lengths == {4}:
        return images, labels, boxes, torch.stack([torch.as_tensor(it[3]) for it in items])
    return images, labels, boxes


def _mask_parts(masks: torch.Tensor, size: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Foreground and ignore masks from wsolevaluation's encoding (1 / 0 / 255), checked."""
    if tuple(masks.shape[-2:]) != tuple(size) or masks.dim() != 3:
        raise ValueError(
            f"masks must be (N, H, W) at the image size {tuple(size)}; got {tuple(masks.shape)}"
        )
    fg, ignore = masks == 1, masks == 255
    if not bool((fg | ignore | (masks == 0)).all()):
        odd = masks[~(fg | ignore | (masks == 0))][:3].tolist()
        raise ValueError(
            f"mask values must be 1 (foreground), 0 (background) or 255 (ignored); got {odd}"
        )
    return fg, ignore


def _check_methods(methods: Sequence[str]) -> tuple[str, ...]:
    methods = tuple(methods)
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(f"methods must be a non-empty subset of {METHODS}; got {methods!r}")
    return methods


def _check_choice(value: Any, name: str, choices: Sequence[str]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}; got {value!r}")


def _check_grid(
    regions: Sequence[int], thresholds: Sequence[float]
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The grid as Python ints and floats (numpy numbers and 0-d tensors are accepted)."""

    def items(values: Any, what: str) -> list[Any]:
        sized = hasattr(values, "__len__") and not isinstance(values, str)
        if not sized or len(values) == 0:
            raise ValueError(f"{what}; got {values!r}")
        return list(values)

    rs = items(regions, "regions must be a non-empty list of integers >= 1")
    ts = items(thresholds, "thresholds must be a non-empty list of numbers in [0, 1)")
    return (
        tuple(check_int(r, f"regions[{i}]", minimum=1) for i, r in enumerate(rs)),
        tuple(check_real(t, f"thresholds[{i}]", 0, 1, high_open=True) for i, t in enumerate(ts)),
    )


@dataclass(frozen=True)
class WSOLEvalOptions:
    """How a WSOL evaluation runs: the settings every step of it takes, checked once.

    ``methods`` to score; the grid of ``regions`` (r >= 1) and box ``thresholds`` (in
    [0, 1)) the validation split chooses from; a hit is IoU >= ``iou_threshold``;
    MaxBoxAccV2's and PxAP's ``cam_curve_interval``; ``region_padding`` places the region
    window and ``least_likely`` picks infoCAM+'s least likely class (``"global"`` /
    ``"region"``; see :func:`infocam.class_activation_maps`); ``normalize`` brings a map to
    [0, 1] before the box threshold (``"minmax"`` / ``"max"``; see
    :func:`infocam.normalize_maps`); how to run: ``batch_size``, ``device``, ``workers``
    (DataLoader processes), ``quiet`` (no progress bar).

    The functions below take one (``options``) and/or its fields as keyword arguments, which
    override it: ``evaluate_wsol(model, val, test, regions=(1, 3))``.
    """

    methods: Sequence[str] = METHODS
    regions: Sequence[int] = DEFAULT_REGIONS
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS
    iou_threshold: float = 0.5
    cam_curve_interval: float = 0.01
    region_padding: str = DEFAULT_REGION_PADDING
    least_likely: str = "global"
    normalize: str = "minmax"
    batch_size: int = 64
    device: str | torch.device = "cpu"
    workers: int = 0
    quiet: bool = True

    def __post_init__(self) -> None:
        regions, thresholds = _check_grid(self.regions, self.thresholds)
        object.__setattr__(self, "methods", _check_methods(self.methods))
        object.__setattr__(self, "regions", regions)
        object.__setattr__(self, "thresholds", thresholds)
        _check_choice(self.region_padding, "region_padding", REGION_PADDINGS)
        _check_choice(self.least_likely, "least_likely", LEAST_LIKELY)
        _check_choice(self.normalize, "normalize", NORMALIZATIONS)
        b = self.batch_size
        if isinstance(b, bool) or not isinstance(b, int) or b < 1:
            raise ValueError(f"batch_size must be an integer >= 1; got {b!r}")

    @classmethod
    def of(cls, options: WSOLEvalOptions | None = None, **overrides: Any) -> WSOLEvalOptions:
        """``options`` (default: the defaults) with ``overrides`` of its fields; an unknown
        name raises ``TypeError`` naming it."""
        base = options if options is not None else cls()
        if not isinstance(base, cls):
            raise TypeError(f"options must be a {cls.__name__}; got {type(base).__name__}")
        return dataclasses.replace(base, **overrides) if overrides else base


def _extractor(model: nn.Module) -> CAMExtractor:
    # Our GAP models name their trunk and head; other models are searched by CAMExtractor.
    features, fc = getattr(model, "features", None), getattr(model, "fc", None)
    if isinstance(features, nn.Module) and isinstance(fc, nn.Linear):
        return CAMExtractor(model, feature_layer=features, classifier=fc)
    return CAMExtractor(model)


def _shard(data: Dataset) -> Dataset:
    """This process's contiguous share of ``data`` (all of it outside distributed runs)."""
    rank, world = rank_and_world()
    if world == 1:
        return data
    n = len(data)  # type: ignore[arg-type]
    return Subset(data, range(rank * n // world, (rank + 1) * n // world))


def _batches(
    model: nn.Module, data: Dataset, opts: WSOLEvalOptions, desc: str
) -> Iterator[tuple[torch.Tensor, ...]]:
    """Per batch: images, labels, logits, gt boxes (on the device), CAM features, fc weight,
    and the masks (on the device; None when the items carry none)."""
    device = torch.device(opts.device)
    extractor = _extractor(model)
    loader = DataLoader(
        _shard(data),
        batch_size=opts.batch_size,
        shuffle=False,
        num_workers=opts.workers,
        collate_fn=wsol_collate,
    )
    model.to(device)
    for images, labels, boxes, *masks in tqdm(loader, desc=desc, disable=opts.quiet, leave=False):
        images, labels = images.to(device), labels.to(device)
        mask = masks[0].to(device) if masks else None
        res = extractor(images, target=labels, method="cam")
        gts = [b.to(device) for b in boxes]
        weight = dict(model.named_modules())[extractor.classifier_].weight
        yield images, labels, res.logits.float(), gts, res.features, weight, mask


def _maps(
    features: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    logits: torch.Tensor,
    method: str,
    region: int,
    size: Sequence[int],
    opts: WSOLEvalOptions,
) -> torch.Tensor:
    """The true class's maps at image size, normalised to [0, 1] as ``opts.normalize`` says."""
    with torch.no_grad():
        maps = class_activation_maps(
            features,
            weight,
            labels,
            method,
            region,
            logits,
            region_padding=opts.region_padding,
            least_likely=opts.least_likely,
        )
        return normalize_maps(upsample_maps(maps.float(), size), opts.normalize)


def localization_grid(
    model: nn.Module, data: Dataset, options: WSOLEvalOptions | None = None, **overrides: Any
) -> dict[str, torch.Tensor]:
    """GT-known Loc (%) of every ``(region, threshold)``: ``{method: (len(regions), len(T))}``.

    A hit is IoU >= ``iou_threshold`` between the box of the largest connected component of
    ``map > t`` (true class's map, upsampled to the image and min-max normalised) and any
    ground-truth box of the image. ``options`` / ``overrides``: see :class:`WSOLEvalOptions`.
    """
    opts = WSOLEvalOptions.of(options, **overrides)
    methods, regions, thresholds = opts.methods, opts.regions, opts.thresholds
    evs = {
        (m, r, t): LocalizationEvaluator(t, opts.iou_threshold, normalize=opts.normalize)
        for m in methods
        for r in regions
        for t in thresholds
    }
    batches = _batches(model, data, opts, "select (val)")
    for images, labels, logits, gts, feats, weight, _ in batches:
        for m in methods:
            for r in regions:
                size = images.shape[-2:]
                maps = _maps(feats, weight, labels, logits, m, r, size, opts)
                for t in thresholds:
                    evs[m, r, t].update(maps, gts, labels, logits)
    sum_over_processes(list(evs.values()))
    if int(next(iter(evs.values())).counts[0]) == 0:  # counts[0]: images seen, all processes
        raise ValueError("data is empty: nothing to evaluate")
    return {
        m: torch.tensor(
            [[evs[m, r, t].compute()["gt_known_loc"] for t in thresholds] for r in regions],
            dtype=torch.float64,
        )
        for m in methods
    }


def select_settings(
    grid: dict[str, torch.Tensor], regions: Sequence[int], thresholds: Sequence[float]
) -> dict[str, BoxSetting]:
    """Per method, the ``(region, threshold)`` of the grid with the highest score.

    Ties go to the smallest region, then the smallest threshold (the first in the grid's
    row-major order when both are given ascending).
    """
    out = {}
    for m, scores in grid.items():
        if tuple(scores.shape) != (len(regions), len(thresholds)):
            raise ValueError(
                f"grid[{m!r}] must have shape ({len(regions)}, {len(thresholds)}); "
                f"got {tuple(scores.shape)}"
            )
        k = int(torch.argmax(scores.flatten()))  # argmax returns the first maximum
        i, j = divmod(k, len(thresholds))
        out[m] = BoxSetting(int(regions[i]), float(thresholds[j]), float(scores[i, j]))
    return out


def evaluate_localization(
    model: nn.Module,
    data: Dataset,
    settings: dict[str, BoxSetting],
    options: WSOLEvalOptions | None = None,
    *,
    keep: int = 0,
    **overrides: Any,
) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """Scores of each method of ``settings`` on ``data`` (percentages).

    Returns ``(scores, examples)``: ``scores[method]`` has ``gt_known_loc``, ``top1_loc``,
    ``top1_cls``, ``top5_cls`` (at the method's region and threshold) and ``MaxBoxAccV2``,
    ``MaxBoxAcc@30/50/70`` (at its region), and ``PxAP`` (at its region) when the items carry
    masks; ``examples`` holds the first ``keep`` images with
    labels, predictions, ground-truth boxes and each method's map and box, for figures.
    The methods are those of ``settings``; the other options: see :class:`WSOLEvalOptions`.
    """
    if not settings:
        raise ValueError("settings must name at least one method")
    _check_methods(list(settings))
    opts = WSOLEvalOptions.of(options, **overrides)
    loc = {
        m: LocalizationEvaluator(s.threshold, opts.iou_threshold, normalize=opts.normalize)
        for m, s in settings.items()
    }
    mba = {m: MaxBoxAccEvaluator(cam_curve_interval=opts.cam_curve_interval) for m in settings}
    pxap = {m: PxAPEvaluator(cam_curve_interval=opts.cam_curve_interval) for m in settings}
    with_masks: bool | None = None  # the first batch tells; every other must agree
    examples: dict[str, Any] = {
        "images": [],
        "labels": [],
        "pred": [],
        "gt": [],
        "maps": {},
        "boxes": {},
    }
    batches = _batches(model, data, opts, "evaluate (test)")
    for images, labels, logits, gts, feats, weight, masks in batches:
        room = keep - len(examples["labels"])
        if with_masks is None:
            with_masks = masks is not None
        elif with_masks != (masks is not None):
            raise ValueError("every item of the data set must carry a mask, or none")
        parts = _mask_parts(masks, images.shape[-2:]) if masks is not None else None
        for m, s in settings.items():
            size = images.shape[-2:]
            maps = _maps(feats, weight, labels, logits, m, s.region, size, opts)
            boxes = loc[m].update(maps, gts, labels, logits)
            mba[m].update(maps, gts)
            if parts is not None:
                pxap[m].update(maps, *parts)
            if room > 0:
                examples["maps"].setdefault(m, []).extend(maps[:room].cpu())
                examples["boxes"].setdefault(m, []).extend(boxes[:room].cpu().tolist())
        if room > 0:
            examples["images"].extend(images[:room].cpu())
            examples["labels"].extend(labels[:room].cpu().tolist())
            examples["pred"].extend(logits[:room].argmax(1).cpu().tolist())
            examples["gt"].extend(g.cpu().tolist() for g in gts[:room])
    sum_over_processes([*loc.values(), *mba.values(), *pxap.values()])
    scores = {}
    for m in settings:
        if int(loc[m].counts[0]) == 0:
            raise ValueError("data is empty: nothing to evaluate")
        scores[m] = {**loc[m].compute(), **mba[m].compute()}
        if int(pxap[m].n) > 0:  # summed over processes: a shard without images still reports
            scores[m].update(pxap[m].compute())
    return scores, examples


def evaluate_wsol(
    model: nn.Module,
    val_data: Dataset,
    test_data: Dataset,
    options: WSOLEvalOptions | None = None,
    *,
    keep: int = 0,
    **overrides: Any,
) -> dict[str, Any]:
    """Choose each method's ``(region, threshold)`` on ``val_data``; score on ``test_data``.

    Returns a JSON-ready dict: ``settings`` (the choice and its validation GT-known Loc),
    ``val_grid`` (GT-known Loc of the whole grid on validation), ``test`` (scores per method)
    and ``examples`` (not JSON: the first ``keep`` test images for a figure).
    ``options`` / ``overrides``: see :class:`WSOLEvalOptions`.
    """
    opts = WSOLEvalOptions.of(options, **overrides)
    grid = localization_grid(model, val_data, opts)
    settings = select_settings(grid, opts.regions, opts.thresholds)
    test, examples = evaluate_localization(model, test_data, settings, opts, keep=keep)
    return {
        "settings": {m: s.to_dict() for m, s in settings.items()},
        "val_grid": {
            "regions": list(opts.regions),
            "region_padding": opts.region_padding,
            "least_likely": opts.least_likely,
            "normalize": opts.normalize,
            "thresholds": [float(t) for t in opts.thresholds],
            "gt_known_loc": {m: g.tolist() for m, g in grid.items()},
        },
        "test": test,
        "examples": examples,
    }


def evaluate_fixed(
    model: nn.Module,
    test_data: Dataset,
    settings: dict[str, BoxSetting],
    options: WSOLEvalOptions | None = None,
    *,
    keep: int = 0,
    **overrides: Any,
) -> dict[str, Any]:
    """Score ``test_data`` with fixed ``settings`` (the paper protocol: nothing is chosen).

    Returns the JSON-ready ``settings`` and ``test`` scores (as :func:`evaluate_wsol`, without
    ``val_grid``) and the ``examples``. ``options`` / ``overrides``: see
    :class:`WSOLEvalOptions`.
    """
    opts = WSOLEvalOptions.of(options, **overrides)
    test, examples = evaluate_localization(model, test_data, settings, opts, keep=keep)
    return {
        "settings": {m: s.to_dict() for m, s in settings.items()},
        "test": test,
        "examples": examples,
    }
