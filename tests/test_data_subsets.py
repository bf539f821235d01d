"""Seeded class-wise subsets: the paper's imbalanced / balanced MNIST, stratified halves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from infocam.data import balanced_subset, imbalanced_subset, load_mnist, stratified_split


@pytest.fixture(scope="module")
def labels():
    return load_mnist().train_labels


def test_imbalanced_mnist_exact_counts(labels):
    idx = imbalanced_subset(labels, classes=(0, 2, 4, 6, 8), keep=0.5, seed=0)
    assert idx.dtype == torch.int64
    assert torch.equal(idx, idx.unique())  # sorted, no duplicates
    full = torch.bincount(labels, minlength=10)
    kept = torch.bincount(labels[idx], minlength=10)
    for c in range(10):
        want = round(int(full[c]) * 0.5) if c % 2 == 0 else int(full[c])
        assert int(kept[c]) == want, c
    # Half-to-even rounding, as Python's round: 5923 / 2 = 2961.5 -> 2962.
    assert int(kept[0]) == 2962 and int(kept[8]) == 2926
    assert idx.numel() == 45255


def test_imbalanced_is_seeded_and_random_within_class(labels):
    a = imbalanced_subset(labels, seed=3)
    assert torch.equal(a, imbalanced_subset(labels.numpy(), seed=3))  # numpy input, same seed
    b = imbalanced_subset(labels, seed=4)
    assert not torch.equal(a, b)
    zeros = torch.nonzero(labels == 0).flatten()
    kept_zeros = a[labels[a] == 0]
    assert not torch.equal(kept_zeros, zeros[: kept_zeros.numel()])  # not just the first ones
    # Every selected index of the odd classes is there: all are kept.
    assert torch.equal(a[labels[a] % 2 == 1], torch.nonzero(labels % 2 == 1).flatten())


def test_imbalanced_edge_cases():
    y = torch.tensor([0, 0, 0, 1, 1, 3])
    assert imbalanced_subset(y, classes=(0, 1, 3), keep=0.0).numel() == 0
    assert torch.equal(imbalanced_subset(y, classes=(0,), keep=1.0), torch.arange(6))
    assert torch.equal(imbalanced_subset(y, classes=(7,), keep=0.5), torch.arange(6))
    assert imbalanced_subset(torch.zeros(0, dtype=torch.long)).numel() == 0


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"labels": torch.zeros(3)}, TypeError, "labels must hold integer"),
        ({"labels": torch.zeros(2, 2, dtype=torch.long)}, ValueError, "labels must be 1-D"),
        ({"labels": torch.tensor([0, -1])}, ValueError, "non-negative"),
        ({"labels": torch.tensor([0, 1]), "keep": 1.5}, ValueError, r"keep must be .* \[0, 1\]"),
        ({"labels": torch.tensor([0, 1]), "classes": (-1,)}, ValueError, "classes must be"),
    ],
)
def test_imbalanced_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        imbalanced_subset(**kwargs)


def test_balanced_subset(labels):
    idx = balanced_subset(labels, seed=0)
    assert torch.bincount(labels[idx]).tolist() == [5421] * 10  # smallest class: digit 5
    idx = balanced_subset(labels, per_class=100, seed=1)
    assert torch.bincount(labels[idx]).tolist() == [100] * 10
    assert not torch.equal(idx, balanced_subset(labels, per_class=100, seed=2))
    with pytest.raises(ValueError, match="per_class=5422 exceeds the smallest class"):
        balanced_subset(labels, per_class=5422)


def test_stratified_split_halves():
    y = torch.tensor(np.random.default_rng(0).integers(0, 7, size=301))
    first, rest = stratified_split(y, 0.5, seed=5)
    assert torch.equal(torch.sort(torch.cat([first, rest])).values, torch.arange(301))
    counts = torch.bincount(y, minlength=7)
    assert torch.equal(torch.bincount(y[first], minlength=7), counts // 2)
    f2, _ = stratified_split(y, 0.5, seed=6)
    assert not torch.equal(first, f2)
    assert torch.equal(first, stratified_split(y, 0.5, seed=5)[0])


def test_imbalanced_rejects_non_integer_classes():
    with pytest.raises(TypeError, match="classes must be a sequence of ints"):
        imbalanced_subset(torch.tensor([0, 1]), classes=(0.5,))
    assert imbalanced_subset(torch.tensor([0, 1]), classes=np.array([1]), keep=0.0).tolist() == [0]
