"""benchmarks/mi_peers.py: the brute-force k-NN path (used above 20-D) equals the k-d tree."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from infocam import GaussianMixture

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "mi_peers.py"
_spec = importlib.util.spec_from_file_location("mi_peers", _PATH)
mi_peers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mi_peers)


def test_brute_force_neighbour_counts_equal_the_kd_tree(one_thread):
    x, y = GaussianMixture.paper(2).sample(1200, seed=3, dtype=torch.float64)
    noise = np.random.default_rng(0).standard_normal((1200, 28))
    x = np.concatenate([x.numpy(), noise], 1)  # 30-D: the brute-force path in knn_ross
    x = x + 1e-10 * np.random.default_rng(0).standard_normal(x.shape)
    y = y.numpy()
    tree = mi_peers._ross_counts_tree(x, y, 3)
    brute = mi_peers._ross_counts_brute(x, y, 3, chunk=257)  # chunks that do not divide N
    np.testing.assert_array_equal(brute, tree)
    assert (tree >= 3).all()  # at least the k same-class neighbours inside the radius
