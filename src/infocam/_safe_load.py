"""One loader for every torch file infocam reads: weights, checkpoints, torch hub's cache.

``torch.load(weights_only=True)`` accepts tensors, numbers, strings and containers and refuses
anything whose unpickling would construct other Python objects (and so could run code). This
module turns torch's failures into a :class:`~infocam.errors.CheckpointError` that says which of
three things went wrong, without repeating torch's advice to pass ``weights_only=False``:

- the file stores Python objects (the blocked ``GLOBAL`` is named): refused as unsafe;
- the file is not a torch file at all (text, an image, truncated or damaged bytes);
- the file is missing: ``FileNotFoundError`` naming the path looked for;
- the file's content no longer matches the SHA-256 stored in it when it was written (corrupt).

A dict holding the checksum key of :mod:`infocam._checksum` (every checkpoint
:func:`~infocam.training.save_checkpoint` writes) is verified and returned without that key.
Foreign files (a plain ``torch.save`` of a state dict, torchvision's weights) have none and
load as they are; an infocam checkpoint (a ``format`` of ``"infocam...."``) written before
checksums were stored loads with an :class:`~infocam.errors.UnverifiedCheckpointWarning`.
"""

from __future__ import annotations

import errno
import pickle
import re
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from infocam._checksum import CHECKSUM_KEY, state_digest
from infocam.errors import CheckpointError, UnverifiedCheckpointWarning

__all__ = ["safe_torch_load", "torchvision_hub_loads_safely"]

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def safe_torch_load(path: str | Path, *, what: str = "file", map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with errors that name ``what`` and ``path``.

    Raises:
        FileNotFoundError: no file at ``path`` (the message says where it was looked for).
        CheckpointError: the file would construct Python objects (unsafe), it is not a
            readable torch file (text, truncated, corrupt), or its content does not match the
            checksum stored in it (corrupt).
    """
    path = Path(path)
    if not path.is_file():
        where = "its folder exists" if path.parent.is_dir() else "its folder does not exist either"
        raise FileNotFoundError(
            errno.ENOENT, f"{what} not found ({where})", str(path.expanduser().resolve())
        )
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _GLOBAL.search(str(exc))
        if found is not None:
            raise CheckpointError(
                f"refusing to load {what} {path}: it stores the Python object "
                f"{found.group(1)}, which could run code when loaded; only tensors, numbers, "
                "strings and containers are accepted (save the model's state_dict() alone)"
            ) from exc
        raise _not_a_torch_file(path, what, exc) from exc
    except MemoryError:
        raise
    except Exception as exc:  # KeyError, EOFError, RuntimeError, BadZipFile, ...: not torch data
        raise _not_a_torch_file(path, what, exc) from exc
    return _verified(obj, path, what)


def _verified(obj: Any, path: Path, what: str) -> Any:
    """``obj`` without its checksum once the checksum matches; see the module docstring."""
    if not isinstance(obj, dict):
        return obj
    if CHECKSUM_KEY not in obj:
        fmt = obj.get("format")
        if isinstance(fmt, str) and fmt.startswith("infocam."):
            warnings.warn(
                f"{what} {path} has no checksum (written before infocam stored one): "
                "it loads unverified",
                UnverifiedCheckpointWarning,
                stacklevel=3,
            )
        return obj
    stored = obj.pop(CHECKSUM_KEY)
    if not isinstance(stored, str) or stored != state_digest(obj):
        raise CheckpointError(
            f"{what} {path}: checksum mismatch, the file is corrupt (its content differs from "
            "the SHA-256 stored when it was written); use another copy or retrain"
        )
    return obj


def _not_a_torch_file(path: Path, what: str, exc: BaseException) -> CheckpointError:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    # torch's own first line is its advice to drop weights_only; keep the line naming the fault
    lines = [line for line in lines if "weights_only" not in line] or [type(exc).__name__]
    return CheckpointError(
        f"{what} {path} is not a readable torch file (not made by torch.save, truncated or "
        f"corrupt): {lines[-1].strip()[:200]}"
    )


_HUB_LOCK = threading.RLock()


@contextmanager
def torchvision_hub_loads_safely() -> Iterator[None]:
    """While active, torchvision's model builders read weights through :func:`safe_torch_load`.

    torchvision's ``WeightsEnum.get_state_dict`` calls ``torch.hub.load_state_dict_from_url``
    with ``weights_only=False``, so a poisoned file in ``$TORCH_HOME/hub/checkpoints`` would run
    code. The builders themselves are kept (they set ``num_classes``, ``aux_logits``,
    ``image_size`` ... from the weights' metadata); only the read is replaced, and only for the
    duration of the block. The file must already be in the cache
    (:func:`infocam.models.weights.torchvision_weights_file` fetches it first).
    """
    from torchvision.models import WeightsEnum

    from infocam.models.weights import torchvision_weights_file

    def get_state_dict(self: WeightsEnum, *args: Any, **kwargs: Any) -> Any:
        return safe_torch_load(torchvision_weights_file(self), what=f"torchvision weights {self}")

    with _HUB_LOCK:
        original = WeightsEnum.__dict__["get_state_dict"]
        WeightsEnum.get_state_dict = get_state_dict
        try:
            yield
        finally:
            WeightsEnum.get_state_dict = original
