"""Fixtures shared by the test modules."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import torch


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` inside, the caller's count restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread for a test: tiny matmuls gain nothing from more, and on a busy
    2-core machine intra-op threads only add contention (measured up to 40x slower)."""
    with _torch_threads(1):
        yield


@pytest.fixture(scope="module")
def one_thread_module() -> Iterator[None]:
    """:func:`one_thread` for a whole test module (and its module-scoped fixtures)."""
    with _torch_threads(1):
        yield


@pytest.fixture
def tiny_vit() -> torch.nn.Module:
    """A small torchvision ViT (class-token read-out, zero-initialised ``heads.head``), seeded."""
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32,
        num_classes=5,
    )  # fmt: skip
