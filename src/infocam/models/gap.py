"""CNN classifiers with a global-average-pool + linear head, the structure CAM needs.

Every model here is a :class:`GAPClassifier`:

- ``model.features``: the convolutional trunk, ``(N, C, H, W) -> (N, K, h, w)``; its output
  is the last spatial feature map, the ``g`` of CAM (ADL layers, when asked for, sit inside
  it and are the identity in eval mode);
- ``model.pool``: ``nn.AdaptiveAvgPool2d(1)``;
- ``model.fc``: the final ``nn.Linear(K, num_classes)``, the ``W`` of CAM.

``forward(x) = fc(flatten(pool(features(x))))``, so class activation maps are
``einsum("mk,nkhw->nmhw", fc.weight, features(x))`` with no backward pass.

Backbone parameter names follow torchvision (``features.0.weight`` for VGG16's first conv,
``features.layer3.0.conv1.weight`` for ResNet), so torchvision checkpoints map onto them;
ADL layers hold no parameters and are inserted under their own names, so a checkpoint
trained with ADL loads into the same model without ADL and vice versa.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn
from torchvision.models import ResNet18_Weights, ResNet50_Weights, VGG16_Weights
from torchvision.models import resnet18 as tv_resnet18
from torchvision.models import resnet50 as tv_resnet50

from infocam.models._common import check_num_classes
from infocam.models.adl import ADL
from infocam.models.weights import TorchvisionSource, WeightsLike, load_weights

__all__ = [
    "GAPClassifier",
    "resnet18_gap",
    "resnet50_gap",
    "small_gap_cnn",
    "vgg16_gap",
]


class GAPClassifier(nn.Module):
    """``features -> global average pool -> linear``.

    Args:
        features: module mapping images to feature maps ``(N, num_features, h, w)``.
        num_features: channels ``K`` of the feature maps.
        num_classes: outputs ``M`` of the linear head.

    Attributes:
        features: the trunk whose output is the CAM feature map.
        pool: ``nn.AdaptiveAvgPool2d(1)``.
        fc: ``nn.Linear(num_features, num_classes)``, the CAM weights.
    """

    def __init__(self, features: nn.Module, num_features: int, num_classes: int) -> None:
        super().__init__()
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(num_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def _adl_factory(drop_rate: float, drop_threshold: float) -> Callable[[], ADL]:
    ADL(drop_rate, drop_threshold)  # validate once, before building anything
    return lambda: ADL(drop_rate, drop_threshold)


# ---------------------------------------------------------------- VGG16-GAP

# torchvision's VGG16 configuration "D" without pool5: indices of the Sequential below match
# torchvision's ``features`` (conv at 0, 2, 5, ..., 28; pools at 4, 9, 16, 23).
_VGG16_CFG: tuple[int | str, ...] = (
    *(64, 64, "M", 128, 128, "M", 256, 256, 256, "M"),
    *(512, 512, 512, "M", 512, 512, 512),
)
# ADL positions of Choe & Shim (2019): after pool3, after conv4_3's ReLU, after conv5_3's ReLU.
_VGG16_ADL_AFTER = {"16": "adl_pool3", "22": "adl_conv4_3", "29": "adl_conv5_3"}


def _vgg16_features(adl: Callable[[], ADL] | None) -> nn.Sequential:
    modules: list[nn.Module] = []
    in_channels = 3
    for v in _VGG16_CFG:
        if v == "M":
            modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            modules += [nn.Conv2d(in_channels, int(v), kernel_size=3, padding=1), nn.ReLU(True)]
            in_channels = int(v)
    layers: list[tuple[str, nn.Module]] = []
    for index, module in enumerate(modules):  # names "0".."29" as in torchvision
        layers.append((str(index), module))
        if adl is not None and str(index) in _VGG16_ADL_AFTER:
            layers.append((_VGG16_ADL_AFTER[str(index)], adl()))
    layers.append(("conv6", nn.Conv2d(512, 1024, kernel_size=3, padding=1)))
    layers.append(("relu6", nn.ReLU(inplace=True)))
    features = nn.Sequential(OrderedDict(layers))
    for m in features.modules():  # torchvision's VGG initialisation
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return features


def _vgg16_from_torchvision(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not k.startswith("classifier.")}


def vgg16_gap(
    num_classes: int,
    weights: WeightsLike = None,
    adl: bool = False,
    *,
    adl_drop_rate: float = 0.75,
    adl_drop_threshold: float = 0.8,
) -> GAPClassifier:
    """VGG16-GAP (Zhou et al. 2016; Choe & Shim 2019): 14x14 CAMs at 224 px.

    torchvision's VGG16 convolutions without pool5, then ``conv6`` (512->1024, 3x3, pad 1) +
    ReLU, global average pooling and ``Linear(1024, num_classes)``. ``model.features`` ends
    with ``conv6``/``relu6`` (output ``(N, 1024, H/16, W/16)``); ``model.fc`` is the head.

    Args:
        num_classes: number of classes.
        weights: ``None``, a torchvision ``VGG16_Weights`` name (``"IMAGENET1K_V1"``), or a
            path / state dict (see :func:`infocam.models.weights.load_weights`). torchvision
            weights fill the 13 VGG convolutions; ``conv6`` and ``fc`` stay new.
        adl: insert :class:`ADL` after pool3 (``features.adl_pool3``), conv4_3
            (``features.adl_conv4_3``) and conv5_3 (``features.adl_conv5_3``).
        adl_drop_rate, adl_drop_threshold: the ADL parameters.
    """
    num_classes = check_num_classes(num_classes)
    make_adl = _adl_factory(adl_drop_rate, adl_drop_threshold) if adl else None
    model = GAPClassifier(_vgg16_features(make_adl), 1024, num_classes)
    nn.init.normal_(model.fc.weight, 0.0, 0.01)  # torchvision's VGG linear initialisation
    nn.init.zeros_(model.fc.bias)
    load_weights(
        model,
        weights,
        torchvision=TorchvisionSource(VGG16_Weights, _vgg16_from_torchvision),
        head_prefixes=("features.conv6.", "fc."),
        arch="vgg16_gap",
    )
    return model


# ---------------------------------------------------------------- ResNet-GAP


def _resnet_from_torchvision(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"features.{k}": v for k, v in state.items() if not k.startswith("fc.")}


def _stage_with_adl(stage: nn.Sequential, after: Sequence[int], adl: Callable[[], ADL]):
    """``stage`` with ADL after the given blocks, named ``adl<i>`` (block names unchanged)."""
    items: list[tuple[str, nn.Module]] = []
    for i, block in enumerate(stage):
        items.append((str(i), block))
        if i in after:
            items.append((f"adl{i}", adl()))
    return nn.Sequential(OrderedDict(items))


def _resnet_gap(
    tv_model: nn.Module,
    num_features: int,
    num_classes: int,
    adl: Callable[[], ADL] | None,
    weights: WeightsLike,
    source: TorchvisionSource,
    arch: str,
) -> GAPClassifier:
    # layer4 at stride 1 (Choe & Shim 2019): output stride 16, 14x14 maps at 224 px.
    first = tv_model.layer4[0]
    for m in first.modules():
        if isinstance(m, nn.Conv2d) and m.stride != (1, 1):
            m.stride = (1, 1)
    first.stride = 1
    layer3, layer4 = tv_model.layer3, tv_model.layer4
    if adl is not None:
        # After layer3[0], layer4[0] and the last block of layer4 (layer4[2] in ResNet50).
        layer3 = _stage_with_adl(layer3, [0], adl)
        layer4 = _stage_with_adl(layer4, [0, len(layer4) - 1], adl)
    features = nn.Sequential(
        OrderedDict(
            conv1=tv_model.conv1,
            bn1=tv_model.bn1,
            relu=tv_model.relu,
            maxpool=tv_model.maxpool,
            layer1=tv_model.layer1,
            layer2=tv_model.layer2,
            layer3=layer3,
            layer4=layer4,
        )
    )
    model = GAPClassifier(features, num_features, num_classes)
    load_weights(model, weights, torchvision=source, head_prefixes=("fc.",), arch=arch)
    return model


def resnet50_gap(
    num_classes: int,
    weights: WeightsLike = None,
    adl: bool = False,
    *,
    adl_drop_rate: float = 0.75,
    adl_drop_threshold: float = 0.8,
) -> GAPClassifier:
    """ResNet50 with layer4 at stride 1, GAP and ``Linear(2048, num_classes)``: 14x14 at 224 px.

    ``model.features`` holds torchvision's ``conv1, bn1, relu, maxpool, layer1..layer4``
    (``layer4[0]``'s ``conv2`` and ``downsample`` stride set to 1), output
    ``(N, 2048, H/16, W/16)``; ``model.fc`` is the head.

    Args:
        num_classes: number of classes.
        weights: ``None``, a torchvision ``ResNet50_Weights`` name (``"IMAGENET1K_V1"``), or a
            path / state dict; torchvision weights fill the trunk, ``fc`` stays new.
        adl: insert :class:`ADL` after ``layer3[0]``, ``layer4[0]`` and ``layer4[2]``
            (named ``features.layer3.adl0``, ``features.layer4.adl0``,
            ``features.layer4.adl2``; positional indexing of those stages then counts the ADL
            layers, the block names ``"0"``, ``"1"``... do not change).
        adl_drop_rate, adl_drop_threshold: the ADL parameters.
    """
    num_classes = check_num_classes(num_classes)
    make_adl = _adl_factory(adl_drop_rate, adl_drop_threshold) if adl else None
    return _resnet_gap(
        tv_resnet50(weights=None),
        2048,
        num_classes,
        make_adl,
        weights,
        TorchvisionSource(ResNet50_Weights, _resnet_from_torchvision),
        "resnet50_gap",
    )


def resnet18_gap(
    num_classes: int,
    weights: WeightsLike = None,
    adl: bool = False,
    *,
    adl_drop_rate: float = 0.75,
    adl_drop_threshold: float = 0.8,
) -> GAPClassifier:
    """ResNet18 built like :func:`resnet50_gap`: layer4 at stride 1, GAP, ``Linear(512, M)``.

    ``model.features`` outputs ``(N, 512, H/16, W/16)``. ResNet18's layer4 has two blocks,
    so ADL goes after ``layer3[0]``, ``layer4[0]`` and ``layer4[1]`` (its last block, the
    counterpart of ResNet50's ``layer4[2]``).
    """
    num_classes = check_num_classes(num_classes)
    make_adl = _adl_factory(adl_drop_rate, adl_drop_threshold) if adl else None
    return _resnet_gap(
        tv_resnet18(weights=None),
        512,
        num_classes,
        make_adl,
        weights,
        TorchvisionSource(ResNet18_Weights, _resnet_from_torchvision),
        "resnet18_gap",
    )


# ---------------------------------------------------------------- small GAP CNN


def small_gap_cnn(
    num_classes: int,
    weights: WeightsLike = None,
    adl: bool = False,
    *,
    in_channels: int = 1,
    widths: Sequence[int] = (16, 32, 64, 128, 128),
    downsample: int = 3,
    adl_drop_rate: float = 0.75,
    adl_drop_threshold: float = 0.8,
) -> GAPClassifier:
    """A small GAP CNN for low-resolution images (e.g. 96x96 synthetic digits), fast on a CPU.

    One ``conv{i}`` (3x3, pad 1, no bias) + ``bn{i}`` + ``relu{i}`` per entry of ``widths``;
    the first ``downsample`` of them are followed by ``pool{i}`` (2x2 max-pool), so the maps
    are ``H / 2**downsample`` (12x12 at 96 px with the defaults, receptive field 54 px).
    ``model.features`` outputs ``(N, widths[-1], h, w)``; ``model.fc`` is the head.

    With ``adl=True``, ADL sits at the places it has in VGG16-GAP, counted from the last
    pool (d = ``downsample``): after ``pool{d-1}``, after ``relu{d}`` (before the last pool)
    and after the last ReLU; positions that do not exist for very shallow nets are skipped.
    ``weights`` may be a path or a state dict of this model.
    """
    num_classes = check_num_classes(num_classes)
    in_channels = check_num_classes(in_channels, "in_channels")
    widths = [check_num_classes(w, f"widths[{i}]") for i, w in enumerate(widths)]
    if not widths:
        raise ValueError("widths must hold at least one channel count; got none")
    if isinstance(downsample, bool) or not isinstance(downsample, int):
        raise TypeError(f"downsample must be an int; got {type(downsample).__name__}")
    if not 0 <= downsample < len(widths):
        raise ValueError(
            f"downsample must be in [0, {len(widths) - 1}] (the last conv is never pooled); "
            f"got {downsample}"
        )
    make_adl = _adl_factory(adl_drop_rate, adl_drop_threshold) if adl else None
    n, d = len(widths), downsample
    adl_after = {f"pool{d - 1}", f"relu{d}", f"relu{n}"} if make_adl else set()

    layers: list[tuple[str, nn.Module]] = []

    def add(name: str, module: nn.Module) -> None:
        layers.append((name, module))
        if make_adl is not None and name in adl_after:
            layers.append((f"adl_{name}", make_adl()))

    previous = in_channels
    for i, width in enumerate(widths, start=1):
        add(f"conv{i}", nn.Conv2d(previous, width, kernel_size=3, padding=1, bias=False))
        add(f"bn{i}", nn.BatchNorm2d(width))
        add(f"relu{i}", nn.ReLU(inplace=True))
        if i <= d:
            add(f"pool{i}", nn.MaxPool2d(2))
        previous = width
    features = nn.Sequential(OrderedDict(layers))
    for m in features.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    model = GAPClassifier(features, widths[-1], num_classes)
    load_weights(model, weights, arch="small_gap_cnn")
    return model
