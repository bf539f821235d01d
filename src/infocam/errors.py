"""Exceptions that carry what went wrong and where, shared by data, training and the CLI.

They subclass the built-in exception a caller would already catch (``FileNotFoundError``,
``OSError``, ``ValueError``), so ``except OSError`` keeps working.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "CheckpointError",
    "CorruptImageError",
    "DatasetNotFoundError",
    "RunFolderError",
    "UnverifiedCheckpointWarning",
]


class DatasetNotFoundError(FileNotFoundError):
    """A dataset folder or one of its files is missing.

    The message names what was looked for, where, and how to get it.
    """

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else Path(path)

    def __str__(self) -> str:
        return str(self.args[0])


class CorruptImageError(OSError):
    """An image file exists but cannot be decoded; ``path`` names it."""

    def __init__(self, path: str | Path, reason: str = "") -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"corrupt image {self.path}" + (f": {reason}" if reason else ""))

    def __str__(self) -> str:
        return str(self.args[0])


class CheckpointError(ValueError):
    """A checkpoint cannot be used: unreadable, unsafe to load, or for another model."""


class UnverifiedCheckpointWarning(UserWarning):
    """An infocam checkpoint without a checksum (written before they were stored) was loaded."""


class RunFolderError(ValueError):
    """A run folder cannot be used: another run holds it, or it holds an earlier run."""
