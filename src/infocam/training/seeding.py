"""One seed for Python, NumPy, torch and the data order; capture and restore every RNG.

The data order never depends on an RNG's running state: epoch ``e`` is shuffled with a
generator seeded from ``(seed, e)`` (as ``DistributedSampler`` does), so a resumed run sees
the same batches as an uninterrupted one. The running states of Python's ``random``, NumPy's
global generator and torch's CPU/CUDA generators (dropout, augmentation in the main process)
are saved in each checkpoint and restored on resume.
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch

__all__ = ["capture_rng_state", "restore_rng_state", "seed_everything", "set_deterministic"]

_CUBLAS_KEY = "CUBLAS_WORKSPACE_CONFIG"


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an int; got {type(seed).__name__}")
    if not 0 <= int(seed) < 2**63:
        raise ValueError(f"seed must be in [0, 2**63); got {seed}")
    return int(seed)


def seed_everything(seed: int) -> int:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every GPU).

    NumPy's legacy seeding takes 32 bits, so it gets ``seed % 2**32``. Returns ``seed``.
    """
    seed = _check_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeding the global generator is the point
    torch.manual_seed(seed)  # also seeds every CUDA device
    return seed


def set_deterministic(enabled: bool, *, cuda: bool = False) -> None:
    """Turn PyTorch's deterministic algorithms on (``enabled=True``).

    On CUDA, cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG`` set before its first call to be
    deterministic; it is set here (kept if the user set it) and cuDNN autotuning is turned
    off. With ``enabled=False`` nothing global is switched off (a user's own
    ``torch.use_deterministic_algorithms(True)`` stays), but cuDNN autotuning is enabled on
    CUDA when determinism is not in force.
    """
    if enabled:
        if cuda or torch.cuda.is_available():
            os.environ.setdefault(_CUBLAS_KEY, ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    elif cuda and not torch.are_deterministic_algorithms_enabled():
        torch.backends.cudnn.benchmark = True


def derive_seed(seed: int, *salt: int) -> int:
    """A seed for a sub-stream (rank, epoch, ...) that stays in [0, 2**63)."""
    ss = np.random.SeedSequence([int(seed), *map(int, salt)])
    low, high = (int(v) for v in ss.generate_state(2, dtype=np.uint32))
    return (low | (high << 32)) % 2**63


def capture_rng_state() -> dict[str, Any]:
    """Every global RNG's running state, as plain data that ``weights_only`` loading reads."""
    version, internal, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()  # noqa: NPY002
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "numpy": {
            "name": np_name,
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`capture_rng_state` returned."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    n = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"])
    )
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])
