"""Load weights into the model factories: a torchvision weight name or a user's file.

``weights`` may be

- ``None``: keep the fresh initialisation;
- a torchvision weight name (``"IMAGENET1K_V1"``, ``"DEFAULT"``,
  ``"VGG16_Weights.IMAGENET1K_V1"``) or the enum member itself: read from torch hub's cache,
  ``$TORCH_HOME/hub/checkpoints/<file>``, downloaded there if the machine is online;
- a path (``str`` or ``os.PathLike``) to a state-dict file, read with
  ``torch.load(weights_only=True)``; a checkpoint dict holding the state dict under
  ``"state_dict"``, ``"model"`` or ``"model_state_dict"`` and ``module.`` / ``_orig_mod.``
  prefixes (DDP, ``torch.compile``) are accepted;
- a state dict (mapping of names to tensors).

A state dict is used in one of two readings. (1) It is the model's own: every key and shape
matches, and it is loaded whole (head included). (2) It is a torchvision checkpoint of the
backbone: its keys are mapped onto the model and its classifier is dropped, so only the new
head (``head_prefixes``) may be missing. Anything else raises :class:`CheckpointError` listing
the missing and unexpected keys and the shape mismatches.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.models import WeightsEnum

from infocam._safe_load import safe_torch_load
from infocam.errors import CheckpointError

__all__ = ["TorchvisionSource", "WeightsLike", "load_weights"]

WeightsLike = str | os.PathLike | Mapping[str, torch.Tensor] | WeightsEnum | None

_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")
_STRIP_PREFIXES = ("module.", "_orig_mod.")
_PATH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".tar")
_LIST_AT_MOST = 12


@dataclass(frozen=True)
class TorchvisionSource:
    """How a torchvision checkpoint maps onto one of our models.

    Attributes:
        weights_enum: the torchvision weights enum (e.g. ``VGG16_Weights``) whose members
            name the downloadable checkpoints.
        to_model_keys: maps a torchvision state dict to the model's key names and drops the
            torchvision classifier.
    """

    weights_enum: type[WeightsEnum]
    to_model_keys: Callable[[Mapping[str, torch.Tensor]], dict[str, torch.Tensor]]


def load_weights(
    model: nn.Module,
    weights: WeightsLike,
    *,
    torchvision: TorchvisionSource | None = None,
    head_prefixes: tuple[str, ...] = (),
    arch: str = "model",
) -> list[str]:
    """Load ``weights`` into ``model`` in place; return the keys left at initialisation.

    The returned list is empty when the state dict was the model's own, and holds the new
    head's keys when a torchvision backbone was loaded. See the module docstring for the
    accepted forms of ``weights``.

    Raises:
        TypeError: ``weights`` is of an unsupported type.
        ValueError: an unknown torchvision weight name.
        FileNotFoundError: a missing file, or torchvision weights that are neither cached nor
            downloadable (the message says which file to place where).
        CheckpointError: an unreadable or unsafe file, or keys/shapes that do not fit.
    """
    if weights is None:
        return []
    source, state, from_torchvision = _read(weights, torchvision, arch)
    state = _unwrap(state, source)
    model_state = model.state_dict()
    readings: list[tuple[_Diff, str]] = []

    if not from_torchvision:  # reading (1): the model's own state dict, loaded whole
        own = _Diff.of(state, model_state)
        if own.ok():
            model.load_state_dict(state, strict=False)  # strict=False: BN counters may be absent
            return []
        readings.append((own, "the model's own state dict"))
    if torchvision is not None:  # reading (2): a torchvision backbone, new head
        mapped = torchvision.to_model_keys(state)
        tv = _Diff.of(mapped, model_state, allowed_missing=head_prefixes)
        if tv.ok():
            model.load_state_dict(mapped, strict=False)
            return tv.allowed
        readings.append((tv, f"a torchvision {torchvision.weights_enum.__name__} backbone"))
    diff, reading = min(readings, key=lambda r: r[0].count())  # report the closer reading
    raise CheckpointError(diff.message(source, arch, reading))


@dataclass
class _Diff:
    missing: list[str]
    unexpected: list[str]
    mismatched: list[str]
    allowed: list[str]

    @classmethod
    def of(
        cls,
        state: Mapping[str, torch.Tensor],
        model_state: Mapping[str, torch.Tensor],
        allowed_missing: tuple[str, ...] = (),
    ) -> _Diff:
        missing, allowed = [], []
        for key in model_state:
            if key in state or key.endswith("num_batches_tracked"):
                continue
            if allowed_missing and key.startswith(allowed_missing):
                allowed.append(key)
            else:
                missing.append(key)
        unexpected = [key for key in state if key not in model_state]
        mismatched = [
            f"{key}: file {tuple(state[key].shape)} vs model {tuple(model_state[key].shape)}"
            for key in state
            if key in model_state and state[key].shape != model_state[key].shape
        ]
        return cls(missing, unexpected, mismatched, allowed)

    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def count(self) -> int:
        return len(self.missing) + len(self.unexpected) + len(self.mismatched)

    def message(self, source: str, arch: str, reading: str) -> str:
        parts = []
        for label, keys in (
            ("missing keys", self.missing),
            ("unexpected keys", self.unexpected),
            ("shape mismatches", self.mismatched),
        ):
            if keys:
                shown = ", ".join(keys[:_LIST_AT_MOST])
                rest = len(keys) - _LIST_AT_MOST
                more = f" ... and {rest} more" if rest > 0 else ""
                parts.append(f"{len(keys)} {label}: {shown}{more}")
        return f"weights {source} do not fit {arch} (read as {reading}); " + "; ".join(parts)


def _read(
    weights: object, torchvision: TorchvisionSource | None, arch: str
) -> tuple[str, object, bool]:
    """Return (description for messages, loaded object, whether it is a torchvision file)."""
    if isinstance(weights, WeightsEnum):
        enum = _check_enum(weights, torchvision, arch)
        return str(enum), _torchvision_state_dict(enum), True
    if isinstance(weights, Mapping):
        return "(state dict)", weights, False
    if isinstance(weights, os.PathLike):
        return str(weights), _load_file(Path(weights)), False
    if isinstance(weights, str):
        path = Path(weights).expanduser()
        if path.is_file() or _looks_like_path(weights):
            return str(path), _load_file(path), False
        enum = resolve_weights_name(weights, torchvision and torchvision.weights_enum, arch)
        return str(enum), _torchvision_state_dict(enum), True
    raise TypeError(
        "weights must be None, a torchvision weight name, a path or a state dict; "
        f"got {type(weights).__name__}"
    )


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.lower().endswith(_PATH_SUFFIXES)


def resolve_weights_name(name: str, enum_cls: type[WeightsEnum] | None, arch: str) -> WeightsEnum:
    """``"IMAGENET1K_V1"``, ``"DEFAULT"`` or ``"ResNet50_Weights.IMAGENET1K_V1"`` -> the member
    of ``enum_cls`` (the torchvision weights enum of ``arch``); a clear error otherwise."""
    if enum_cls is None:
        raise ValueError(
            f"weights={name!r}: {arch} has no torchvision weights and no file of that name "
            "exists; give a path to a state-dict file"
        )
    prefix, _, member = name.rpartition(".")
    valid = ", ".join(f"{enum_cls.__name__}.{m}" for m in enum_cls.__members__)
    if (prefix and prefix != enum_cls.__name__) or member not in enum_cls.__members__:
        raise ValueError(
            f"weights={name!r} is neither a file nor a torchvision weight name for {arch}; "
            f"expected a path or one of {valid}"
        )
    return enum_cls[member]


def _check_enum(weights: WeightsEnum, torchvision: TorchvisionSource | None, arch: str):
    if torchvision is None or not isinstance(weights, torchvision.weights_enum):
        expected = "none" if torchvision is None else torchvision.weights_enum.__name__
        raise ValueError(
            f"weights={weights} do not belong to {arch}; expected torchvision weights: {expected}"
        )
    return weights


def _torchvision_state_dict(weights: WeightsEnum) -> dict[str, torch.Tensor]:
    """Read torchvision weights from torch hub's cache, downloading them if possible."""
    return _load_file(torchvision_weights_file(weights))


def torchvision_weights_file(weights: WeightsEnum) -> Path:
    """The file of torchvision ``weights`` in torch hub's cache, downloaded there if missing.

    Raises:
        FileNotFoundError: not cached and not downloadable (offline, or a bad hash); the
            message names the URL and the exact file to place.
    """
    filename = Path(urlparse(weights.url).path).name
    target = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if target.is_file():
        return target
    # torch.hub's own download with its hash check (the hex run after the last '-' of the file
    # name), called directly: load_state_dict_from_url would first print "Downloading: ..." to
    # stderr, which offline is a stray line before our one-line error.
    digest = re.search(r"-([a-f0-9]+)\.", filename)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(
            weights.url, str(target), digest.group(1) if digest else None, progress=False
        )
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; a bad hash a RuntimeError
        raise FileNotFoundError(
            f"torchvision weights {weights} are not cached and could not be downloaded from "
            f"{weights.url} ({exc}). Without internet, copy {filename} to {target} "
            "(the folder is $TORCH_HOME/hub/checkpoints), or pass the file's path as weights"
        ) from exc
    return target


def _load_file(path: Path) -> object:
    return safe_torch_load(path, what="weights file")


def _unwrap(obj: object, source: str) -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint, with DDP/compile prefixes stripped."""
    if isinstance(obj, Mapping) and not _all_tensors(obj):
        for key in _WRAPPER_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not _all_tensors(obj):
        raise CheckpointError(
            f"weights {source} hold no state dict: expected a mapping of names to tensors "
            f"(optionally under one of {list(_WRAPPER_KEYS)}); got {type(obj).__name__}"
        )
    state = dict(obj)
    for prefix in _STRIP_PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def _all_tensors(obj: Mapping) -> bool:
    return all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
