"""``CAMExtractor``: maps of any CNN with a global-average-pool + linear head, from images.

Hooks exist for one call only and are removed even when the model raises; every module's
train/eval flag is restored; the feature layer and classifier are found on the first call and
checked to reproduce the logits.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from infocam._validation import as_tensor, check_floating
from infocam.cam.head import AffineHead, HeadStep, affine_head, walk_head
from infocam.cam.maps import (
    DEFAULT_REGION_PADDING,
    LeastLikely,
    Method,
    RegionPadding,
    _check_method,
    check_least_likely,
    check_region,
    class_activation_maps,
)

__all__ = ["CAMExtractor", "CAMResult"]

_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)  # global pooling layers


@dataclass(frozen=True)
class CAMResult:
    """What ``CAMExtractor`` returns: logits (N, M), maps (N, h, w) or (N, M, h, w), target,
    the features (N, K, h, w) and the head as an :class:`~infocam.cam.head.AffineHead`
    (``logits = scale * (weight @ mean_hw(features)) + bias``: a CAM's spatial mean plus
    ``head.bias[n, y]`` is the logit)."""

    logits: torch.Tensor
    maps: torch.Tensor
    target: torch.Tensor | None
    features: torch.Tensor
    head: AffineHead | None = None


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode; restore each one's own flag afterwards."""
    modes = [(mod, mod.training) for mod in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for mod, mode in modes:
            mod.training = mode


@contextmanager
def _hooks(handles: list[Any]) -> Iterator[list[Any]]:
    """Remove every hook handle on exit, even when the forward pass raised."""
    try:
        yield handles
    finally:
        for h in handles:
            h.remove()


def _resolve(model: nn.Module, layer: nn.Module | str, arg: str) -> tuple[str, nn.Module]:
    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if layer not in modules:
            raise ValueError(f"{arg} {layer!r} is not a submodule name of the model")
        return layer, modules[layer]
    if isinstance(layer, nn.Module):
        for name, mod in model.named_modules():
            if mod is layer:
                return name, mod
        raise ValueError(f"{arg} must be a submodule of the model; got a foreign {type(layer)}")
    raise TypeError(f"{arg} must be a module name (str) or an nn.Module; got {type(layer)}")


class CAMExtractor:
    """Maps for a CNN whose head is global average pooling + a head affine in the pooled vector.

    ``extractor(images, target=None, method="cam", region=1)`` runs one forward pass with a
    forward hook on the feature layer (hooks exist only for that call and are removed even if
    the model raises), in eval mode (each module's train/eval flag is restored afterwards), and
    returns a :class:`CAMResult` with ``.logits`` (N, M) and ``.maps`` at feature resolution.
    ``target=None`` uses the top-1 prediction; ``target="all"`` gives every class's map.
    The keywords ``region_padding`` (default ``"centered"``) and ``least_likely`` (``"global"``
    or ``"region"``, infoCAM+'s Eq. 15) are those of :func:`~infocam.class_activation_maps`.

    When ``feature_layer`` / ``classifier`` are not given they are found on the first call: the
    classifier is the last ``nn.Linear`` executed, the feature layer the outermost module that
    produced the last 4-D output before the global pooling (an adaptive pooling layer with a
    1 x 1 output, when the model has one) with as many channels as the classifier has inputs.
    In-place operations applied to that output before pooling (DenseNet's
    ``F.relu(inplace=True)``) are seen by the maps, as they should be. The pair is then
    checked: averaging the features and applying the classifier must reproduce the logits,
    with the classifier's own weights and again with random ones put in its place for one
    forward pass (so a zero-initialised head cannot pass vacuously); otherwise the model has
    no GAP + linear head and a ``ValueError`` names what was found. The found names are kept
    in ``feature_layer_`` and ``classifier_``. An empty batch (N = 0) raises ``ValueError``.

    Beyond GAP + ``Linear``, any head that is affine in the pooled vector gives exact maps
    (see :mod:`infocam.cam.head`): a ``LayerNorm`` / ``LayerNorm2d`` (per sample: ConvNeXt),
    an eval-mode ``BatchNorm1d``, a 1 x 1 ``Conv2d`` classifier of the pooled map, several
    linear heads averaged, or none at all (SqueezeNet: the classifier is a 1 x 1 convolution
    *before* the pooling, and the map of class ``y`` is channel ``y`` of the last
    activation). The classifier is then the last ``nn.Linear`` or 1 x 1 ``nn.Conv2d`` run;
    every layer between the pooling and the logits is checked in float64 against its
    recorded input and output, and ``head_steps_`` lists them. ``CAMResult.head`` gives the
    effective weight, per-sample scale and bias: ``maps.mean((-2, -1)) + head.bias`` equals
    the logits (``target="all"``, ``method="cam"``, ``region=1``). A head that is not affine
    (an activation, an MLP, a GroupNorm, max / GeM pooling) is refused naming the layer.

    Channels-last features (N, h, w, K) before the pooling (timm's Swin, NesT) are found
    too: ``channels_last_`` is then True and the features are permuted to (N, K, h, w).

    When no module outputs a spatial map before the pooling (``Sequential(AdaptiveAvgPool2d(1),
    Flatten(), Linear)`` applied to a feature map), the features are the pooling layer's
    *input*, taken by a forward pre-hook: ``feature_layer_`` then names the pooling layer and
    ``features_from_input_`` is True.
    """

    def __init__(
        self,
        model: nn.Module,
        feature_layer: nn.Module | str | None = None,
        classifier: nn.Linear | nn.Conv2d | str | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        self.model = model
        self.feature_layer = feature_layer
        self.classifier = classifier
        self.feature_layer_: str | None = None
        self.classifier_: str | None = None
        self.features_from_input_ = False
        self.channels_last_ = (
            False  # the feature layer gives (N, h, w, K): permuted to (N, K, h, w)
        )
        self.between_: list[str] = []  # the layers run between features and classifier
        self.head_steps_: list[HeadStep] | None = None  # None: GAP + the classifier alone
        self._leaves: list[tuple[str, nn.Module, Any, Any]] = []  # recorded by _detect
        if feature_layer is not None:
            self.feature_layer_ = _resolve(model, feature_layer, "feature_layer")[0]
        if classifier is not None:
            name, mod = _resolve(model, classifier, "classifier")
            if not _is_classifier(mod):
                raise TypeError(
                    f"classifier {name!r} must be an nn.Linear or a 1 x 1 nn.Conv2d; "
                    f"got {type(mod)}"
                )
            self.classifier_ = name

    # -- detection -------------------------------------------------------------------------
    def _detect(self, images: torch.Tensor) -> None:
        order: list[tuple[str, nn.Module, Any]] = []
        pool_inputs: dict[int, Any] = {}  # index into order -> first input when it is 4-D
        inputs: dict[int, Any] = {}  # index into order -> first input

        def record(name: str):
            def hook(mod: nn.Module, inp: Any, out: Any) -> None:
                first = inp[0] if inp else None
                if isinstance(first, torch.Tensor) and first.dim() == 4:
                    pool_inputs[len(order)] = first  # a pooling layer's input may be the map
                inputs[len(order)] = first
                order.append((name, mod, out))

            return hook

        modules = dict(self.model.named_modules())
        handles = [m.register_forward_hook(record(n)) for n, m in modules.items() if n]
        with _hooks(handles), _eval_mode(self.model), torch.no_grad():
            self.model(images)
        if self.classifier_ is None:
            linears = [(n, o) for n, m, o in order if _is_classifier(m)]
            if not linears:
                raise ValueError(
                    f"could not find the classifier: {type(self.model).__name__} runs no "
                    "nn.Linear (nor a 1 x 1 nn.Conv2d); pass classifier= (the final linear "
                    "layer after global pooling)"
                )
            self.classifier_ = linears[-1][0]
        fc = dict(self.model.named_modules())[self.classifier_]
        i_fc = max(i for i, (n, _, _) in enumerate(order) if n == self.classifier_)
        fc_out = order[i_fc][2]
        # a convolutional classifier before the pooling (SqueezeNet): the map is its output
        conv_first = (
            isinstance(fc, nn.Conv2d)
            and isinstance(fc_out, torch.Tensor)
            and fc_out.dim() == 4
            and fc_out.shape[2] * fc_out.shape[3] > 1
        )
        i_end = len(order) if conv_first else i_fc
        k_in = fc.out_channels if conv_first else _in_features(fc)
        if self.feature_layer_ is None:
            # Only maps computed before the global pooling count: after it come (N, K, 1, 1)
            # tensors (the pooled vector, a LayerNorm of it, ...) that are no spatial map.
            pools = [
                i
                for i, (_, m, o) in enumerate(order[:i_end])
                if isinstance(m, _POOLS)
                and isinstance(o, torch.Tensor)
                and o.dim() == 4
                and o.shape[2] * o.shape[3] == 1
            ]
            end = pools[-1] if pools else i_end
            spatial = [
                (n, o) for n, _, o in order[:end] if isinstance(o, torch.Tensor) and o.dim() == 4
            ]
            pooled_input = pool_inputs.get(end) if pools else None
            if not spatial and isinstance(pooled_input, torch.Tensor) and pooled_input.dim() == 4:
                # the model's input is the feature map: take it where the pooling layer gets it
                self.feature_layer_ = order[end][0]
                self.features_from_input_ = True
                self.between_ = _leaf_names(order[end:i_fc])
                self._leaves = _leaves(order[end:], inputs, end)
                return
            if not spatial:
                raise ValueError(
                    f"could not find a spatial feature map: no module of "
                    f"{type(self.model).__name__} outputs a (N, K, h, w) tensor before the "
                    f"classifier {self.classifier_!r}; pass feature_layer="
                )
            # channels first (N, K, h, w), or channels last (N, h, w, K: timm's Swin, NesT)
            fitting = [(n, o) for n, o in spatial if o.shape[1] == k_in or o.shape[3] == k_in]
            if fitting and fitting[-1][1].shape[1] != k_in:
                self.channels_last_ = True
            last = (fitting or spatial)[-1][1]
            # The outermost module that returned this very tensor fires its hook last.
            i_feat = max(i for i, (_, _, o) in enumerate(order[:end]) if o is last)
            self.feature_layer_ = order[i_feat][0]
            # A 1 x 1 "map" made by a parameter-free layer from a larger map is a pooled
            # vector (timm's avg+max pooling, GeM, a hand-written mean), not a map: take the
            # map where that layer gets it; the head check then decides whether it pools by
            # the plain mean a CAM needs.
            mod, pooled_from = order[i_feat][1], pool_inputs.get(i_feat)
            if (
                not self.channels_last_
                and last.shape[2] * last.shape[3] == 1
                and isinstance(pooled_from, torch.Tensor)
                and pooled_from.shape[2] * pooled_from.shape[3] > 1
                and next(mod.parameters(recurse=True), None) is None
            ):
                # the innermost module that received this map and returned the 1 x 1 output
                i_feat = min(
                    i
                    for i, (_, _, o) in enumerate(order[:end])
                    if o is last and pool_inputs.get(i) is pooled_from
                )
                self.feature_layer_ = order[i_feat][0]
                self.features_from_input_ = True
            # the leaf layers run between the features and the classifier, for messages
            first = i_feat + (not self.features_from_input_)
            self.between_ = _leaf_names(order[first:i_fc])
            self._leaves = _leaves(order[first:], inputs, first)
        else:  # a given feature layer: the head is what runs after its last call
            calls = [i for i, (n, _, _) in enumerate(order) if n == self.feature_layer_]
            if not calls:
                raise ValueError(
                    f"feature_layer {self.feature_layer_!r} is not run by the model's forward pass"
                )
            i_feat = calls[-1]
            first = i_feat + (not self.features_from_input_)
            self._leaves = _leaves(order[first:], inputs, first)

    def _check_head(self, images: torch.Tensor) -> None:
        feats, out = self._forward(images)
        fc = dict(self.model.named_modules())[self.classifier_]
        k = feats.shape[1]
        io = "input" if self.features_from_input_ else "output"
        kind = "Linear" if isinstance(fc, nn.Linear) else "Conv2d"
        what = (
            f"feature layer {self.feature_layer_!r} ({io} {tuple(feats.shape[1:])}) and "
            f"classifier {self.classifier_!r} ({kind} {_in_features(fc)} -> {_out_features(fc)})"
        )
        self.head_steps_ = None
        if isinstance(fc, nn.Linear) and fc.in_features == k:
            # GAP + the classifier alone: the float64 reference, the model's rounding aside
            with torch.no_grad():
                b = None if fc.bias is None else fc.bias.double()
                pooled = F.linear(feats.double().mean((2, 3)), fc.weight.double(), b)
            if _reproduces(out, pooled):
                self._probe_head(images, what)
                return
        # any other head affine in the pooled vector, walked layer by layer
        try:
            with torch.no_grad():
                steps = walk_head(self._leaves, feats, _reproduces)
                head = affine_head(steps, feats)
                ok = _reproduces(out, head.logits(feats))
        except ValueError as exc:
            reason = f": {exc}"
        else:
            reason = "" if ok else ": something that is not a module changes the logits"
        if reason:
            raise ValueError(
                f"no GAP + linear head found: averaging {what} does not reproduce the model's "
                f"logits{self._between()}{reason}; CAMs need logits affine in mean_hw(features) "
                "(max, avg+max, GeM and attention pooling admit no exact CAM). Pass "
                "feature_layer= and classifier= if the model has such a head"
            )
        self.head_steps_ = steps

    def _probe_head(self, images: torch.Tensor, what: str) -> None:
        """Check the head with random weights: logits = W_r mean_hw(features) + b_r.

        The check with the model's own weights passes vacuously when they are all zero (a
        fresh torchvision ViT's zero-initialised head: 0 == 0 whatever the classifier reads).
        Here a forward hook replaces the classifier's output by ``Linear(input; W_r, b_r)``
        with random non-zero ``W_r, b_r`` (a fixed local generator: the global RNG is not
        touched, the model's parameters are not changed), so the logits must follow the
        classifier's real input, and that input must be the features' spatial mean.
        """
        fc = dict(self.model.named_modules())[self.classifier_]
        gen = torch.Generator().manual_seed(0)
        w = torch.randn(fc.out_features, fc.in_features, generator=gen) / fc.in_features**0.5
        b = torch.randn(fc.out_features, generator=gen)

        def random_head(mod: nn.Module, inp: Any, out: Any) -> torch.Tensor:
            x = inp[0]
            return F.linear(x, w.to(x.device, x.dtype), b.to(x.device, x.dtype))

        with _hooks([fc.register_forward_hook(random_head)]):
            feats, out = self._forward(images)
        with torch.no_grad():
            dev = feats.device
            expect = F.linear(feats.double().mean((2, 3)), w.to(dev).double(), b.to(dev).double())
        if not _reproduces(out, expect):
            raise ValueError(
                f"no GAP + linear head found: with random weights in the classifier, {what} "
                f"do not give logits = Linear(mean_hw(features)){self._between()} (the model's "
                "own head weights only passed that check vacuously, e.g. all zero); pass "
                "feature_layer= and classifier= if the model has such a head"
            )

    def _between(self) -> str:
        """'' or ', through <the layers run between the features and the classifier>'."""
        return f" through {', '.join(self.between_[:4])}" if self.between_ else ""

    def _forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        store: dict[str, torch.Tensor] = {}
        layer = dict(self.model.named_modules())[self.feature_layer_]

        def hook(mod: nn.Module, inp: Any, out: Any) -> None:
            store["features"] = out

        def pre_hook(mod: nn.Module, inp: Any) -> None:
            store["features"] = inp[0] if inp else None

        if self.features_from_input_:
            handle = layer.register_forward_pre_hook(pre_hook)
        else:
            handle = layer.register_forward_hook(hook)
        with _hooks([handle]), _eval_mode(self.model):
            with torch.no_grad():
                out = self.model(images)
        if not isinstance(out, torch.Tensor) or out.dim() != 2:
            raise ValueError(
                f"the model must return logits of shape (N, M); got "
                f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}"
            )
        feats = store.get("features")
        if self.channels_last_ and isinstance(feats, torch.Tensor) and feats.dim() == 4:
            feats = feats.permute(0, 3, 1, 2)  # (N, h, w, K) -> (N, K, h, w), a view
        if not isinstance(feats, torch.Tensor) or feats.dim() != 4:
            verb = "get as input" if self.features_from_input_ else "output"
            raise ValueError(
                f"feature_layer {self.feature_layer_!r} must {verb} (N, K, h, w); got "
                f"{tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats)}"
            )
        return feats, out

    # -- call ------------------------------------------------------------------------------
    def __call__(
        self,
        images: torch.Tensor,
        target: Any = None,
        method: Method = "cam",
        region: int = 1,
        *,
        region_padding: RegionPadding = DEFAULT_REGION_PADDING,
        least_likely: LeastLikely = "global",
    ) -> CAMResult:
        _check_method(method)
        check_region(region, region_padding)
        check_least_likely(least_likely)
        x = check_floating(as_tensor(images, "images"), "images")
        if x.dim() != 4:
            raise ValueError(f"images must have shape (N, C, H, W); got {tuple(x.shape)}")
        if x.shape[0] == 0:
            # Refused on every call, not only the first: layer detection and the head check
            # need a real forward pass (an empty one passes any check vacuously), and a result
            # must not depend on whether an earlier call detected the layers.
            raise ValueError(
                f"images must hold at least one image (N >= 1); got an empty batch of shape "
                f"{tuple(x.shape)}"
            )
        if self.feature_layer_ is None or self.classifier_ is None or self._unchecked_conv():
            given = (self.feature_layer_, self.classifier_)
            try:
                self._detect(x)
                self._check_head(x)
            except BaseException:
                # a pair that failed its check is not kept: the next call detects again
                self.feature_layer_, self.classifier_ = given
                self.features_from_input_ = self.channels_last_ = False
                self.between_ = []
                self.head_steps_ = None
                raise
        feats, logits = self._forward(x)
        t = logits.argmax(1) if target is None else target
        head = self._head(feats, logits)
        maps = class_activation_maps(
            feats,
            head.weight,
            t,
            method,
            region,
            logits,
            region_padding=region_padding,
            least_likely=least_likely,
        )
        if head.scale is not None:  # a positive per-sample scale (LayerNorm's 1 / sigma)
            maps = maps * head.scale.to(maps.dtype).reshape(-1, *[1] * (maps.dim() - 1))
        t_out = None if isinstance(t, str) else torch.as_tensor(t, device=logits.device)
        return CAMResult(logits=logits, maps=maps, target=t_out, features=feats, head=head)

    def _unchecked_conv(self) -> bool:
        """A given 1 x 1 convolution classifier whose head has not been walked yet."""
        fc = dict(self.model.named_modules()).get(self.classifier_)
        return isinstance(fc, nn.Conv2d) and self.head_steps_ is None

    def _head(self, feats: torch.Tensor, logits: torch.Tensor) -> AffineHead:
        """This batch's head; a walked head must reproduce this batch's logits too."""
        fc = dict(self.model.named_modules())[self.classifier_]
        if self.head_steps_ is None:
            n, m = logits.shape
            b = fc.bias if fc.bias is not None else torch.zeros(m, device=logits.device)
            return AffineHead(weight=fc.weight, bias=b.detach().double().expand(n, m))
        with torch.no_grad():
            head = affine_head(self.head_steps_, feats)
            if not _reproduces(logits, head.logits(feats)):
                raise ValueError(
                    f"the head after feature layer {self.feature_layer_!r} no longer reproduces "
                    "the model's logits on this batch (was the model changed?); make a new "
                    "CAMExtractor"
                )
        return head

    def __repr__(self) -> str:
        inp = ", features_from_input=True" if self.features_from_input_ else ""
        inp += ", channels_last=True" if self.channels_last_ else ""
        return (
            f"CAMExtractor(model={type(self.model).__name__}, "
            f"feature_layer={self.feature_layer_!r}{inp}, classifier={self.classifier_!r})"
        )


def _is_classifier(mod: nn.Module) -> bool:
    """An ``nn.Linear``, or a 1 x 1 ``nn.Conv2d`` (a convolutional classifier)."""
    return isinstance(mod, nn.Linear) or (
        isinstance(mod, nn.Conv2d) and mod.kernel_size == (1, 1) and mod.groups == 1
    )


def _in_features(mod: nn.Module) -> int:
    return mod.in_features if isinstance(mod, nn.Linear) else mod.in_channels


def _out_features(mod: nn.Module) -> int:
    return mod.out_features if isinstance(mod, nn.Linear) else mod.out_channels


def _leaves(
    order: list[tuple[str, nn.Module, Any]], inputs: dict[int, Any], offset: int
) -> list[tuple[str, nn.Module, Any, Any]]:
    """``(name, module, first input, output)`` of each leaf call in a slice of the order."""
    return [
        (n, m, inputs.get(offset + i), o)
        for i, (n, m, o) in enumerate(order)
        if next(m.children(), None) is None
    ]


def _leaf_names(order: list[tuple[str, nn.Module, Any]]) -> list[str]:
    """``'name' (Type)`` of each leaf module in a slice of the recorded forward order."""
    return [f"{n!r} ({type(m).__name__})" for n, m, _ in order if next(m.children(), None) is None]


def _reproduces(out: torch.Tensor, expect: torch.Tensor) -> bool:
    """``out`` (the model's logits) equals ``expect`` (computed in float64) up to the rounding
    of the logits' dtype: 1e-5 of the largest logit for float32 (true heads agree to ~2e-6; a
    wrong layer that almost fits, such as a patch embedding under residual blocks scaled by
    1e-4, is ~1e-3 off), 4 ulps for half types (bfloat16 logits differ by ~1e-2)."""
    if out.shape != expect.shape:
        return False
    eps = torch.finfo(out.dtype).eps if out.is_floating_point() else 0.0
    tol = max(1e-5, 4 * eps)
    scale = float(out.double().abs().max()) + 1e-12
    return bool(torch.allclose(expect.double(), out.double(), rtol=tol, atol=tol * scale))
