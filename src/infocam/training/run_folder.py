"""One run per folder: a lock against concurrent runs, and no silent overwriting of a run.

:func:`claim_run_folder` is held for the whole of a run that writes into a folder
(``infocam train --out``, :func:`~infocam.training.fit` with ``config.out``, the
reproductions):

- **Lock.** ``FOLDER/.lock`` is locked with ``fcntl.flock`` and holds the owner's pid. A second
  run into the same folder is refused at once, naming the folder and that pid. The kernel drops
  the lock when its process ends, however it ends (SIGKILL included), so a lock file left by a
  dead run is simply taken over; a run that ends normally removes it. On systems without
  ``fcntl`` (Windows) no lock is taken.
- **No overwriting.** A folder that already holds anything (besides the lock file) is refused
  unless the run continues it (``resume``) or replaces it (``overwrite``: the files named in
  ``remove`` are deleted first, so nothing of the old run is mistaken for the new one).

Claims nest within one thread (the CLI claims the folder before loading data, then ``fit``
claims it again): the inner claim is a no-op.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from infocam.errors import RunFolderError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "claim_run_folder"]

LOCK_NAME = ".lock"
_MAX_LISTED = 4
_held: dict[tuple[Path, int], int] = {}  # (folder, thread) -> nesting depth
_held_guard = threading.Lock()


@contextlib.contextmanager
def claim_run_folder(
    folder: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    remove: Sequence[str] = (),
    what: str = "run folder",
) -> Iterator[Path]:
    """Create ``folder``, lock it and check it may be written; release the lock at exit.

    Raises :class:`~infocam.errors.RunFolderError` (a ``ValueError``) when another process
    holds the folder, or when it holds files and neither ``resume`` nor ``overwrite`` is set.
    With ``overwrite`` the files ``remove`` (names relative to ``folder``) are deleted. A
    folder created here that is still empty at the end is removed.
    """
    folder = Path(folder)
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: continue a run or replace it")
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    key = (folder.resolve(), threading.get_ident())
    with _held_guard:
        depth = _held.get(key, 0)
        _held[key] = depth + 1
    fd = None
    try:
        if depth == 0:
            fd = _lock(folder, what)
            _check_contents(folder, resume, overwrite, remove, what)
        yield folder
    finally:
        with _held_guard:
            _held[key] -= 1
            if not _held[key]:
                del _held[key]
        if fd is not None:
            _unlock(folder, fd)
        if created and depth == 0:  # a run that failed before writing anything leaves no folder
            with contextlib.suppress(OSError):
                folder.rmdir()


def _lock(folder: Path, what: str) -> int | None:
    if fcntl is None:
        return None
    path = folder / LOCK_NAME
    for _ in range(100):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                raise
            raise RunFolderError(
                f"{what} {folder} is in use by another run (pid {holder or '?'}, lock file "
                f"{path}); wait for it to finish, or choose another folder"
            ) from None
        # A finishing run removes the file it locked: ours must still be the one at ``path``.
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is not None and os.path.samestat(os.fstat(fd), current):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)
    raise RunFolderError(f"{what} {folder}: could not take the lock file {path}")


def _read_pid(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""


def _unlock(folder: Path, fd: int) -> None:
    # Remove the file while still holding the lock: a waiting run then sees it is gone.
    with contextlib.suppress(OSError):
        os.unlink(folder / LOCK_NAME)
    os.close(fd)


def _check_contents(
    folder: Path, resume: bool, overwrite: bool, remove: Sequence[str], what: str
) -> None:
    if overwrite:
        for name in remove:
            path = folder / name
            if path.is_file() or path.is_symlink():
                path.unlink()
        return
    if resume:
        return
    found = sorted(p.name for p in folder.iterdir() if p.name != LOCK_NAME)
    if found:
        shown = ", ".join(found[:_MAX_LISTED]) + (" ..." if len(found) > _MAX_LISTED else "")
        raise RunFolderError(
            f"{what} {folder} is not empty ({shown}): resume continues the run in it, "
            "overwrite replaces it; or choose another folder"
        )
