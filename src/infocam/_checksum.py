"""A SHA-256 over a checkpoint's content, so that a damaged file is refused, not used.

``torch.load`` checks nothing: bytes flipped inside a tensor's data (a bad disk sector, a
truncated copy that happens to keep the zip directory) load as different numbers. Every
checkpoint :func:`infocam.training.save_checkpoint` writes carries the digest of its content
under :data:`CHECKSUM_KEY`; :func:`infocam._safe_load.safe_torch_load` recomputes it and refuses
the file when it differs.

The digest walks the saved object in its own order (dicts keep their insertion order through
``torch.save``/``torch.load``) and hashes, for every tensor, its dtype, shape and raw bytes
(on the CPU, contiguous: where it was saved from or is loaded to does not matter), and, for
every other value, its type and exact value (floats by ``float.hex``), with lengths, so that
no two different checkpoints hash alike by concatenation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["CHECKSUM_KEY", "state_digest", "with_checksum"]

CHECKSUM_KEY = "sha256"


def state_digest(obj: Any) -> str:
    """Hex SHA-256 of ``obj`` (tensors, numbers, strings, bytes, None and containers of them)."""
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def with_checksum(state: Mapping[str, Any]) -> dict[str, Any]:
    """``state`` as a dict with its digest added last under :data:`CHECKSUM_KEY`."""
    if CHECKSUM_KEY in state:
        raise ValueError(
            f"state must not have a key {CHECKSUM_KEY!r}: it is reserved for the checksum "
            "save_checkpoint adds"
        )
    out = dict(state)
    out[CHECKSUM_KEY] = state_digest(out)
    return out


def _tag(h: Any, tag: bytes, payload: bytes) -> None:
    h.update(tag + str(len(payload)).encode() + b":" + payload)


def _feed(h: Any, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        _feed_tensor(h, obj)
    elif isinstance(obj, Mapping):
        _tag(h, b"D", str(len(obj)).encode())
        for key, value in obj.items():
            _feed(h, key)
            _feed(h, value)
    elif isinstance(obj, list | tuple):
        _tag(h, b"L", str(len(obj)).encode())
        for value in obj:
            _feed(h, value)
    elif obj is None:
        h.update(b"N")
    elif isinstance(obj, bool):
        h.update(b"B1" if obj else b"B0")
    elif isinstance(obj, int):
        _tag(h, b"I", str(obj).encode())
    elif isinstance(obj, float):
        _tag(h, b"F", obj.hex().encode())
    elif isinstance(obj, str):
        _tag(h, b"S", obj.encode("utf-8", "surrogatepass"))
    elif isinstance(obj, bytes | bytearray):
        _tag(h, b"Y", bytes(obj))
    else:  # torch.dtype, torch.device, complex, ...: what weights_only=True can load
        _tag(h, b"O", f"{type(obj).__qualname__}:{obj!r}".encode())


def _feed_tensor(h: Any, t: torch.Tensor) -> None:
    t = t.detach()
    if t.layout != torch.strided:
        t = t.to_dense()
    t = t.resolve_conj().resolve_neg().cpu().contiguous()
    _tag(h, b"T", f"{t.dtype}|{tuple(t.shape)}".encode())
    if t.is_quantized:
        t = t.int_repr()
    raw = t.reshape(-1).view(torch.uint8).numpy()  # a view: no copy of a contiguous CPU tensor
    h.update(b"R" + str(raw.nbytes).encode() + b":")
    h.update(memoryview(raw))
