"""Read features and integer labels from a CSV or NPZ file (``infocam mi``'s input).

CSV: a header row, comma-separated, numeric feature columns, one integer label column.
NPZ: named arrays; ``label`` names the (N,) label array and ``features`` the (N, D) or (N,)
feature array (by default the only other array in the file).
"""

from __future__ import annotations

import csv
import math
import zipfile
import zlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.lib.npyio import NpzFile

__all__ = ["load_table"]


def load_table(
    path: str | Path, label: str, features: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Return ``(X (N, D) float64, y (N,) int64, feature names)`` from ``path``."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(2, f"no such data file (looked in {p.resolve().parent})", str(p))
    suffix = p.suffix.lower()
    if suffix == ".npz":
        x, y, names, columns = _load_npz(p, label, features)
    elif suffix in (".csv", ".txt", ".tsv"):
        x, y, names = _load_csv(p, label, features, delimiter="\t" if suffix == ".tsv" else ",")
        columns = names
    else:
        raise ValueError(f"DATA must be a .csv, .tsv or .npz file; got {p.name!r}")
    _check_finite_features(x, columns, p.name)
    return x, y, names


def _check_finite_features(x: np.ndarray, columns: Sequence[str], source: str) -> None:
    """Refuse NaN or inf naming the first one's column and data row (1 = the first after the
    header); the estimator would refuse them too, but only as 'X'."""
    bad = ~np.isfinite(x)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(
            f"{source}: feature {columns[j]!r} holds {x[i, j]} in data row {i + 1} "
            f"({int(bad.sum())} non-finite value(s) in all); features must be finite numbers "
            "(a value beyond +-1.8e308 reads as inf)"
        )


_INT64_LIMIT = 2.0**63


def _plain(v: object) -> object:
    """A numpy scalar as the Python value it holds (its repr is what a user typed)."""
    return v.item() if isinstance(v, np.generic) else v


def _labels(values: np.ndarray, name: str, source: str) -> np.ndarray:
    arr = np.asarray(values)
    kind = arr.dtype.kind
    if kind == "i" or (kind == "u" and (arr.size == 0 or arr.max() < _INT64_LIMIT)):
        return arr.astype(np.int64)
    if kind in "uf":
        bad = next((v for v in arr.ravel() if not _is_int(v)), None)
        if bad is None:
            return arr.astype(np.int64)
        raise ValueError(_label_error(f"label array {name!r}", source, bad))
    example = f" (e.g. {_plain(arr.ravel()[0])!r})" if arr.size else ""
    raise ValueError(
        f"label array {name!r} in {source} must hold integer class labels; got dtype "
        f"{arr.dtype}{example}"
    )


def _label_error(what: str, source: str, bad: object) -> str:
    what = f"{what} in {source}"
    try:
        f = float(bad)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        f = math.nan
    if math.isfinite(f) and f == round(f):  # integral, but no int64 holds it
        return (
            f"{what} must hold integer class labels that fit in 64 bits (|label| < 2**63); "
            f"got {_plain(bad)!r}"
        )
    return f"{what} must hold integer class labels; got {_plain(bad)!r}"


def _is_int(v: object) -> bool:
    """An integer-valued finite number (or numeric text) that fits an int64."""
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return False
    return math.isfinite(f) and f == round(f) and abs(f) < _INT64_LIMIT


def _repeated(names: Sequence[str]) -> list[str]:
    """The names that occur more than once, sorted (one pass: wide CSVs have many)."""
    return sorted(n for n, k in Counter(names).items() if k > 1)


def _check_feature_names(names: Sequence[str], label: str, source: str) -> None:
    """``features``: no name twice, and not the label (it would leak into X)."""
    if label in names:
        raise ValueError(
            f"features: {label!r} is the label; it cannot also be a feature of {source}"
        )
    dups = _repeated(names)
    if dups:
        raise ValueError(f"features: {dups} given more than once")


def _load_csv(
    p: Path, label: str, features: Sequence[str] | None, delimiter: str
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    # utf-8-sig: Excel's "CSV UTF-8" starts with a byte-order mark, read as part of column 1.
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh, delimiter=delimiter))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{p.name}: not UTF-8 text ({exc}); save it as UTF-8") from None
    rows = [r for r in rows if r and any(c.strip() for c in r)]
    if len(rows) < 2:
        raise ValueError(f"{p}: needs a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    dup_cols = _repeated(header)
    if dup_cols:
        raise ValueError(f"{p.name}: column name(s) {dup_cols} appear more than once in the header")
    if label not in header:
        raise ValueError(f"label: column {label!r} not found in {p.name}; columns: {header}")
    names = list(features) if features else [h for h in header if h != label]
    missing = [n for n in names if n not in header]
    if missing:
        raise ValueError(f"features: column(s) {missing} not found in {p.name}; columns: {header}")
    if not names:
        raise ValueError(f"{p.name}: no feature columns besides the label {label!r}")
    _check_feature_names(names, label, p.name)
    body = rows[1:]
    for i, r in enumerate(body, start=2):
        if len(r) != len(header):
            raise ValueError(f"{p.name} line {i}: {len(r)} fields, header has {len(header)}")
    cols = {h: j for j, h in enumerate(header)}
    try:
        x = np.array([[float(r[cols[n]]) for n in names] for r in body], dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"{p.name}: feature columns must be numeric ({exc})") from None
    raw = [r[cols[label]].strip() for r in body]
    bad = next((v for v in raw if not _is_int(v)), None)
    if bad is not None:
        raise ValueError(_label_error(f"label column {label!r}", p.name, bad))
    y = np.array([round(float(v)) for v in raw], dtype=np.int64)
    return x, y, names


_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip archive; an empty one
# What np.load raises for a damaged archive; reading is lazy, so also when an array is read.
_NPZ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError)


def _unreadable(p: Path, reason: object) -> ValueError:
    if isinstance(reason, zlib.error):
        reason = f"corrupt compressed data: {reason}"
    elif isinstance(reason, BaseException):
        reason = f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__
    return ValueError(f"{p.name}: not a readable .npz file ({reason})")


def _open_npz(p: Path) -> NpzFile:
    with p.open("rb") as fh:
        magic = fh.read(6)
    if not magic:
        raise _unreadable(p, "the file is empty")
    if magic == b"\x93NUMPY":
        raise _unreadable(
            p, "it is a single .npy array; save named arrays with numpy.savez(path, X=..., y=...)"
        )
    if not magic.startswith(_ZIP_MAGIC):
        raise _unreadable(p, "not a zip archive")
    try:
        data = np.load(p, allow_pickle=False)
    except _NPZ_ERRORS as exc:
        raise _unreadable(p, exc) from None
    if not isinstance(data, NpzFile):  # np.load also returns arrays and pickles
        raise _unreadable(p, f"np.load gave a {type(data).__name__}, not named arrays")
    return data


def _read_array(data: NpzFile, key: str, p: Path) -> np.ndarray:
    try:
        return np.asarray(data[key])
    except _NPZ_ERRORS as exc:
        if "allow_pickle" in str(exc):
            raise ValueError(
                f"array {key!r} in {p.name} holds Python objects (dtype object); only numeric "
                "arrays are read (no pickles)"
            ) from None
        raise _unreadable(p, exc) from None


def _load_npz(
    p: Path, label: str, features: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """X, y, the feature arrays' names and a name per column of X (``a`` or ``a[j]``)."""
    with _open_npz(p) as data:
        keys = list(data.files)
        if label not in keys:
            raise ValueError(f"label: array {label!r} not found in {p.name}; arrays: {keys}")
        if features:
            missing = [n for n in features if n not in keys]
            if missing:
                raise ValueError(f"features: array(s) {missing} not in {p.name}; arrays: {keys}")
            names = list(features)
            _check_feature_names(names, label, p.name)
        else:
            names = [k for k in keys if k != label]
            if len(names) != 1:
                raise ValueError(
                    f"{p.name} holds arrays {keys}: name the feature array(s) (features)"
                )
        y = _labels(_read_array(data, label, p), label, p.name)
        if y.ndim != 1:
            raise ValueError(f"label array {label!r} must be 1-D; got shape {y.shape}")
        parts, columns = [], []
        for n in names:
            a = _read_array(data, n, p)
            if a.dtype.kind not in "iuf":
                raise ValueError(f"array {n!r} in {p.name} must be numeric; got dtype {a.dtype}")
            if a.ndim == 0 or a.shape[0] != y.shape[0]:
                raise ValueError(
                    f"array {n!r} in {p.name} must have one row per label ({y.shape[0]}, ...); "
                    f"got shape {a.shape}"
                )
            parts.append(a.reshape(a.shape[0], math.prod(a.shape[1:])).astype(np.float64))
            width = parts[-1].shape[1]
            columns += [n] if a.ndim == 1 else [f"{n}[{j}]" for j in range(width)]
    x = np.concatenate(parts, axis=1)
    return x, y, names, columns
