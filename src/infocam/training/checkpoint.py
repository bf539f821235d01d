"""Checkpoints that survive a crash: atomic writes, safe loads, clear errors.

A checkpoint is written to a temporary file in the destination folder, flushed to disk
(``fsync``) and renamed over the old one (``os.replace``, atomic on POSIX and Windows), so a
reader sees either the previous checkpoint or the new one, never half of one. If writing fails
(disk full, permissions, Ctrl-C) the temporary file is removed and the previous checkpoint is
left untouched.

Every checkpoint carries a SHA-256 of its content (:mod:`infocam._checksum`), checked on load:
a file whose bytes changed since it was written (a flipped bit in a tensor) is refused.

Loading uses ``torch.load(weights_only=True)``: tensors, numbers, strings and containers only.
A file whose unpickling would construct arbitrary Python objects (and so could run code) is
refused with a :class:`~infocam.errors.CheckpointError`.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from infocam._checksum import with_checksum
from infocam._safe_load import safe_torch_load
from infocam.errors import CheckpointError
from infocam.training.progress import clean_json

__all__ = ["atomic_write", "load_checkpoint", "load_model_state", "save_checkpoint"]

# Read once: mkstemp creates files with mode 0600; give checkpoints the usual 0666 & ~umask.
_UMASK = os.umask(0)
os.umask(_UMASK)
_MAX_LISTED = 8


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(file)`` on a temporary file next to ``path``, then rename it to ``path``.

    On any failure (including ``KeyboardInterrupt``) the temporary file is removed, ``path`` is
    left as it was, and an ``OSError`` names the file and the reason.
    """
    path = Path(path)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            reason = exc.strerror or str(exc)
            kept = "the previous file is unchanged" if path.exists() else "nothing was written"
            raise OSError(exc.errno, f"could not write ({reason}); {kept}", str(path)) from exc
        raise
    _fsync_dir(folder)
    return path


def save_checkpoint(state: Mapping[str, Any], path: str | Path) -> Path:
    """Save ``state`` (a dict of tensors, numbers, strings, lists, dicts) atomically to ``path``.

    A SHA-256 of the content is stored with it (key ``"sha256"``, reserved) and checked by
    :func:`load_checkpoint`, which returns the state without it. Returns the path.
    Raises ``OSError`` naming ``path`` when the disk is full or the folder is not writable;
    the checkpoint that was at ``path`` before survives.
    """
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a dict; got {type(state).__name__}")
    # Serialise to memory first: a pickling error then never touches the disk.
    buffer = io.BytesIO()
    torch.save(with_checksum(state), buffer)
    return atomic_write(path, lambda f: f.write(buffer.getbuffer()))


def write_json(obj: Any, path: str | Path) -> Path:
    """Write ``obj`` as indented JSON, atomically. Always valid JSON: NaN and +-inf (which
    JSON cannot hold; ``json.dumps`` would write bare ``NaN``) are written as ``null``."""
    text = json.dumps(clean_json(obj), indent=2, sort_keys=False, allow_nan=False) + "\n"
    return atomic_write(path, lambda f: f.write(text.encode()))


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint saved by :func:`save_checkpoint` (or any ``torch.save`` of plain data).

    Only tensors, numbers, strings and containers are accepted (``weights_only=True``). A file
    that needs arbitrary Python objects, that is truncated or not a checkpoint, or whose content
    no longer matches its stored SHA-256 (corrupt), raises
    :class:`~infocam.errors.CheckpointError`; a missing file raises ``FileNotFoundError``.
    An infocam checkpoint written before checksums were stored loads with an
    :class:`~infocam.errors.UnverifiedCheckpointWarning`.
    """
    path = Path(path)
    state = safe_torch_load(path, what="checkpoint", map_location=map_location)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a checkpoint dict")
    return state


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    more = len(keys) - _MAX_LISTED
    return shown + (f" ... and {more} more" if more > 0 else "")


def _strip_prefix(state: Mapping[str, Any], prefixes: tuple[str, ...]) -> dict[str, Any]:
    """Drop a wrapper prefix (DDP ``module.``, compile ``_orig_mod.``) that every key has."""
    out = dict(state)
    for prefix in prefixes:
        if out and all(k.startswith(prefix) for k in out):
            out = {k[len(prefix) :]: v for k, v in out.items()}
    return out


def load_model_state(
    model: nn.Module, state_dict: Mapping[str, Any], *, source: str = "checkpoint"
) -> nn.Module:
    """Load ``state_dict`` into ``model`` strictly, or explain exactly why it does not fit.

    Raises :class:`~infocam.errors.CheckpointError` listing the missing keys, the unexpected
    keys and the shape mismatches (``source`` names where the state came from).
    """
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(f"{source} has no model state dict (got {type(state_dict).__name__})")
    state = _strip_prefix(state_dict, ("module.", "_orig_mod."))
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and isinstance(state[k], torch.Tensor) and state[k].shape != v.shape
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {_listing(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {_listing(unexpected)}")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatch(es): {_listing(mismatched)}")
        raise CheckpointError(
            f"{source} is for another model ({type(model).__name__} does not match): "
            + "; ".join(parts)
        )
    model.load_state_dict(state, strict=True)
    return model
