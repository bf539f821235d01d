"""CUB-200-2011 and Tiny-ImageNet loaders on tiny fixtures in the exact on-disk formats."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data_fixtures import write_cub_fixture, write_tiny_imagenet_fixture
from infocam.data import CUB200, TinyImageNet
from infocam.data.transforms import wsol_transform
from infocam.errors import CorruptImageError, DatasetNotFoundError


def object_box(image) -> list[int]:
    """Tight box of the drawn (non-background) rectangle in a fixture image."""
    a = np.asarray(image, dtype=np.int32)
    ys, xs = np.nonzero(np.abs(a - 40).max(axis=2) > 60)
    return [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]


@pytest.fixture
def cub(tmp_path):
    return write_cub_fixture(tmp_path, n_classes=4, train_per_class=3, test_per_class=5)


@pytest.fixture
def tiny(tmp_path):
    return write_tiny_imagenet_fixture(tmp_path, n_classes=3, train_per_class=4, val_per_class=5)


# ---------------------------------------------------------------- CUB-200-2011
def test_cub_train_labels_and_boxes(cub):
    ds = CUB200(cub, "train")
    assert len(ds) == 12 and ds.num_classes == 4
    assert ds.classes[0] == "001.Bird_1"
    assert torch.bincount(ds.labels).tolist() == [3, 3, 3, 3]  # 0-based labels
    # Independent reading of bounding_boxes.txt: x, y, w, h -> x, y, x + w - 1, y + h - 1.
    raw = {
        int(r[0]): [float(v) for v in r[1:]]
        for r in (line.split() for line in (cub / "bounding_boxes.txt").read_text().splitlines())
    }
    for i in range(len(ds)):
        x, y, w, h = raw[int(ds.image_ids[i])]
        assert ds.boxes[i].tolist() == [x, y, x + w - 1, y + h - 1]
        image, label, boxes = ds[i]
        assert label == int(ds.labels[i]) and boxes.shape == (1, 4)
        assert object_box(image) == boxes[0].int().tolist()  # the box is on the drawn object


def test_cub_val_test_halves_of_official_test(cub):
    official = CUB200(cub, "official_test")
    val, test = CUB200(cub, "val"), CUB200(cub, "test")
    assert len(official) == 20 and len(val) == 8 and len(test) == 12
    assert torch.bincount(val.labels).tolist() == [2] * 4  # floor(5 / 2) per class
    ids = set(val.image_ids.tolist())
    assert not ids & set(test.image_ids.tolist())
    assert ids | set(test.image_ids.tolist()) == set(official.image_ids.tolist())
    assert not ids & set(CUB200(cub, "train").image_ids.tolist())
    assert torch.equal(CUB200(cub, "val").image_ids, val.image_ids)  # seeded
    assert not torch.equal(CUB200(cub, "val", split_seed=1).image_ids, val.image_ids)


def test_cub_imbalanced_training_split(tmp_path):
    root = write_cub_fixture(tmp_path, n_classes=6, train_per_class=4, test_per_class=1)
    ds = CUB200(root, "train", imbalanced=True, imbalance_seed=0)
    assert len(ds.halved_classes) == 3
    counts = torch.bincount(ds.labels, minlength=6).tolist()
    assert counts == [2 if c in ds.halved_classes else 4 for c in range(6)]
    fixed = CUB200(root, "train", imbalanced=True, imbalanced_classes=[0, 5])
    assert torch.bincount(fixed.labels, minlength=6).tolist() == [2, 4, 4, 4, 4, 2]
    with pytest.raises(ValueError, match="imbalanced=True needs split='train'"):
        CUB200(root, "val", imbalanced=True)


def test_cub_parent_root_transform_and_dataloader(cub):
    t = wsol_transform(train=False, resize=64, crop=56)
    ds = CUB200(cub.parent, "test", transform=t)
    image, _, boxes = ds[0]
    assert image.shape == (3, 56, 56) and boxes.dtype == torch.float32
    assert bool((boxes >= 0).all() and (boxes <= 55).all())
    images, labels, boxes = next(iter(DataLoader(ds, batch_size=4)))
    assert images.shape == (4, 3, 56, 56) and labels.shape == (4,) and boxes.shape == (4, 1, 4)


@pytest.mark.parametrize("name", ["bounding_boxes.txt", "train_test_split.txt", "classes.txt"])
def test_cub_missing_index_file_is_named(cub, name):
    (cub / name).unlink()
    with pytest.raises(DatasetNotFoundError, match=f"missing file .*{name}"):
        CUB200(cub, "train")


def test_cub_missing_and_corrupt_images_are_named(cub):
    ds = CUB200(cub, "train")
    ds.files[0].unlink()
    with pytest.raises(DatasetNotFoundError, match="missing image .*" + ds.files[0].name):
        ds[0]
    data = ds.files[1].read_bytes()
    ds.files[1].write_bytes(data[: len(data) // 3])  # truncated JPEG
    with pytest.raises(CorruptImageError) as info:
        ds[1]
    assert info.value.path == ds.files[1] and str(ds.files[1]) in str(info.value)
    ds.files[2].write_bytes(b"not a jpeg at all")
    with pytest.raises(CorruptImageError, match=ds.files[2].name):
        ds[2]


def test_cub_bad_input(cub, tmp_path):
    with pytest.raises(ValueError, match=r"split must be one of \('train', 'val', 'test'"):
        CUB200(cub, "validation")
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        CUB200(tmp_path / "nowhere")
    path = cub / "bounding_boxes.txt"
    path.write_text(path.read_text().replace(".0 ", " x ", 1))
    with pytest.raises(ValueError, match=r"bounding_boxes\.txt: line 1: expected 5 fields"):
        CUB200(cub)


# ---------------------------------------------------------------- Tiny-ImageNet
def test_tiny_train_labels_follow_wnids_and_boxes_are_corners(tiny):
    ds = TinyImageNet(tiny, "train")
    wnids = (tiny / "wnids.txt").read_text().split()
    assert ds.wnids == wnids and len(ds) == 12
    assert ds.classes[1] == "thing 1, item 1"  # from words.txt
    for i in range(len(ds)):
        wnid = ds.files[i].parent.parent.name
        assert int(ds.labels[i]) == wnids.index(wnid)
        image, _, boxes = ds[i]
        assert image.size == (64, 64)
        # Corner format: the file's x1 y1 x2 y2 are the object's inclusive corners.
        assert object_box(image) == boxes[0].int().tolist()


def test_tiny_val_split_and_halves(tiny):
    official = TinyImageNet(tiny, "official_val")
    rows = [
        line.split("\t")
        for line in (tiny / "val" / "val_annotations.txt").read_text().split("\n")
        if line
    ]
    assert [f.name for f in official.files] == [r[0] for r in rows]
    assert official.boxes.tolist() == [[float(v) for v in r[2:]] for r in rows]
    for i in range(len(official)):
        assert object_box(official[i][0]) == official.boxes[i].int().tolist()
    val, test = TinyImageNet(tiny, "val"), TinyImageNet(tiny, "test")
    assert torch.bincount(val.labels).tolist() == [2, 2, 2]
    assert torch.bincount(test.labels).tolist() == [3, 3, 3]
    assert {f.name for f in val.files}.isdisjoint({f.name for f in test.files})
    assert len(val) + len(test) == len(official)


def test_tiny_errors(tiny):
    wnid = (tiny / "wnids.txt").read_text().split()[2]
    (tiny / "train" / wnid / f"{wnid}_boxes.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match=f"missing file .*{wnid}_boxes.txt"):
        TinyImageNet(tiny, "train")
    ann = tiny / "val" / "val_annotations.txt"
    ann.write_text(ann.read_text().replace(wnid, "n00000000", 1))
    with pytest.raises(ValueError, match="wnid 'n00000000' not in"):
        TinyImageNet(tiny, "val")
    (tiny / "wnids.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"missing file .*wnids\.txt"):
        TinyImageNet(tiny.parent, "val")
