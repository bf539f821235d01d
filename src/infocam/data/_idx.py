"""Reader for the IDX format of LeCun's MNIST files (and Fashion-MNIST, which copies it).

An IDX file is a 4-byte magic number ``0x00 0x00 <dtype> <ndim>``, then ``ndim`` big-endian
uint32 dimension sizes, then the data in C order, big-endian. MNIST uses dtype ``0x08``
(unsigned byte). Files may be gzip-compressed (``.gz``).
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path

import numpy as np
import torch

__all__ = ["IDXFormatError", "read_idx"]

# IDX type byte -> numpy big-endian dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IDXFormatError(OSError):
    """An IDX file is truncated, corrupt or not what was expected; ``path`` names it."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __str__(self) -> str:
        return str(self.args[0])


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise IDXFormatError(path, f"truncated or corrupt gzip stream ({exc})") from exc


def read_idx(
    path: str | Path,
    *,
    expected_ndim: int | None = None,
    expected_shape: tuple[int | None, ...] | None = None,
    md5: str | None = None,
) -> torch.Tensor:
    """Read one IDX file into a tensor (uint8 data stays ``torch.uint8``).

    ``expected_shape`` may hold ``None`` for free dimensions. ``md5`` is checked against the
    *decompressed* bytes, so a re-gzipped copy of the same data still verifies.

    Raises:
        IDXFormatError: bad magic number, unexpected dimensions, truncated data, trailing
            bytes, or checksum mismatch; the message names the file.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise IDXFormatError(path, f"file has {len(raw)} bytes, too short for an IDX header")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise IDXFormatError(
            path, f"bad IDX magic number 0x{raw[:4].hex()} (expected 0x0000<type><ndim>)"
        )
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    if expected_ndim is not None and ndim != expected_ndim:
        raise IDXFormatError(path, f"expected a {expected_ndim}-D IDX array; header says {ndim}-D")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXFormatError(path, f"truncated header ({len(raw)} bytes, need {header})")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    if expected_shape is not None and any(
        e is not None and e != s for e, s in zip(expected_shape, shape, strict=True)
    ):
        raise IDXFormatError(path, f"expected shape {expected_shape}; header says {shape}")
    need = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != need:
        what = "truncated" if len(raw) < need else "has trailing bytes"
        raise IDXFormatError(
            path, f"file {what}: {len(raw)} bytes, header {shape} implies {need} bytes"
        )
    if md5 is not None:
        got = hashlib.md5(raw, usedforsecurity=False).hexdigest()
        if got != md5:
            raise IDXFormatError(
                path,
                f"md5 of decompressed data is {got}, expected {md5} "
                "(corrupt or different data; pass verify=False to skip this check)",
            )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    # Native byte order, writable copy: torch does not take big-endian or read-only buffers.
    return torch.from_numpy(data.astype(dtype.newbyteorder("="), copy=True))
