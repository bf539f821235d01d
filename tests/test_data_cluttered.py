"""ClutteredDigits: determinism, exact boxes, disjoint source pools, cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data_fixtures import write_mnist_fixture
from infocam.data import ClutteredDigits, cluttered, load_mnist
from infocam.data.transforms import Compose, RandomHorizontalFlip, Resize

SMALL = {"size": 64, "n": 48, "scale": (1.0, 1.8)}


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


def test_deterministic_and_seeded(mnist):
    a = ClutteredDigits(split="train", seed=1, data=mnist, **SMALL)
    b = ClutteredDigits(split="train", seed=1, data=mnist, **SMALL)
    c = ClutteredDigits(split="train", seed=2, data=mnist, **SMALL)
    assert torch.equal(a.images, b.images) and torch.equal(a.boxes, b.boxes)
    assert torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    assert a.images.shape == (48, 64, 64) and a.images.dtype == torch.uint8
    # Generation does not depend on the rendering batch size.
    g1, g2 = (torch.Generator().manual_seed(5) for _ in range(2))
    pool = mnist.test_images[:100]
    r1 = cluttered.render_cluttered(pool, 20, size=64, generator=g1, batch_size=7)
    r2 = cluttered.render_cluttered(pool, 20, size=64, generator=g2, batch_size=64)
    assert all(torch.equal(x, y) for x, y in zip(r1, r2, strict=True))


def test_boxes_are_the_exact_tight_box_of_the_digit(mnist):
    clean = ClutteredDigits(split="test", seed=3, n_clutter=0, data=mnist, **SMALL)
    noisy = ClutteredDigits(split="test", seed=3, n_clutter=6, data=mnist, **SMALL)
    # The digit draws come first, so both have the same digits at the same places.
    assert torch.equal(clean.boxes, noisy.boxes)
    assert torch.equal(clean.source_index, noisy.source_index)
    for i in range(len(clean)):
        ys, xs = np.nonzero(clean.images[i].numpy())  # only the digit is on the clean canvas
        assert clean.boxes[i].tolist() == [xs.min(), ys.min(), xs.max(), ys.max()]
    # Clutter is combined by maximum: it adds strokes but never hides the digit ...
    assert bool((noisy.images >= clean.images).all())
    # ... and there is clutter outside the digit's box.
    outside = noisy.images.clone()
    for i, (x1, y1, x2, y2) in enumerate(noisy.boxes.int().tolist()):
        outside[i, y1 : y2 + 1, x1 : x2 + 1] = 0
    assert int((outside > 0).flatten(1).any(1).sum()) > len(noisy) // 2
    # Labels are those of the placed MNIST test digits.
    assert torch.equal(clean.labels, mnist.test_labels[clean.source_index])
    width = clean.boxes[:, 2] - clean.boxes[:, 0] + 1
    assert float(width.max()) <= 28 * 1.8 and float(width.min()) >= 1


def test_splits_draw_from_disjoint_pools(mnist):
    kw = {"size": 64, "n": 400, "scale": (1.0, 1.5), "n_clutter": 0}
    train = ClutteredDigits(split="train", data=mnist, val_pool=200, **kw)
    val = ClutteredDigits(split="val", data=mnist, val_pool=200, **kw)
    assert set(train.source_index.tolist()).isdisjoint(val.source_index.tolist())
    assert len(set(val.source_index.tolist())) == 200  # n > pool: every pool image used
    test = ClutteredDigits(split="test", data=mnist, **kw)
    assert int(test.source_index.max()) < 10000


def test_item_format_and_transform(mnist):
    ds = ClutteredDigits(split="val", data=mnist, **SMALL)
    image, label, boxes = ds[3]
    assert image.shape == (1, 64, 64) and image.dtype == torch.float32
    assert float(image.max()) <= 1.0 and label == int(ds.labels[3])
    assert torch.equal(boxes, ds.boxes[3:4])
    t = Compose([Resize(32), RandomHorizontalFlip(p=1.0)])
    ds_t = ClutteredDigits(split="val", data=mnist, transform=t, **SMALL)
    image, _, boxes = ds_t[3]
    x1, y1, x2, y2 = ds.boxes[3].tolist()
    assert image.shape == (1, 32, 32)
    assert boxes.tolist() == [[31 - ((x2 + 1) / 2 - 1), y1 / 2, 31 - x1 / 2, (y2 + 1) / 2 - 1]]


def test_cache_roundtrip(tmp_path, mnist, monkeypatch):
    a = ClutteredDigits(split="train", data=mnist, cache_dir=tmp_path, **SMALL)
    files = list(tmp_path.glob("cluttered-digits-train-*.npz"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))

    def fail(*args, **kwargs):
        raise AssertionError("should have been read from the cache")

    monkeypatch.setattr(cluttered, "render_cluttered", fail)
    b = ClutteredDigits(split="train", cache_dir=tmp_path, data=mnist, **SMALL)
    assert torch.equal(a.images, b.images) and torch.equal(a.boxes, b.boxes)
    assert torch.equal(a.labels, b.labels)
    files[0].write_bytes(b"garbage")
    with pytest.raises(OSError, match="cannot use ClutteredDigits cache"):
        ClutteredDigits(split="train", cache_dir=tmp_path, data=mnist, **SMALL)


def test_from_mnist_root_and_fashion_source(tmp_path):
    write_mnist_fixture(tmp_path, n_train=40, n_test=10, subdir="FashionMNIST")
    from infocam.data import load_fashion_mnist

    data = load_fashion_mnist(tmp_path, verify=False)
    ds = ClutteredDigits(split="test", source="fashion-mnist", data=data, n=5, size=56)
    assert ds.classes[0] == "T-shirt/top" and len(ds) == 5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"split": "dev"}, "split must be one of"),
        ({"source": "cifar"}, "source must be one of"),
        ({"n": 0}, "n must be a positive int"),
        ({"size": 40, "scale": (1.0, 2.0)}, "size=40 is too small"),
        ({"clutter_size": 15}, r"clutter_size must be in \[1, 14\]"),
        ({"scale": (2.0, 1.0)}, "scale must be"),
    ],
)
def test_bad_arguments(kwargs, match, mnist):
    with pytest.raises(ValueError, match=match):
        ClutteredDigits(data=mnist, **{"n": 4, **kwargs})


def _reference_render(pool, n, size, scale, n_clutter, clutter_size, seed):
    """Naive reference: every layer sampled over the WHOLE canvas, combined by max."""
    import torch.nn.functional as tnf

    g = torch.Generator().manual_seed(seed)
    p, k = pool.shape[0], n_clutter
    target = torch.cat([torch.randperm(p, generator=g) for _ in range(-(-n // p))])[:n]
    s = torch.empty(n).uniform_(scale[0], scale[1], generator=g)
    left = torch.rand(n, generator=g) * (size - 28 * s)
    top = torch.rand(n, generator=g) * (size - 28 * s)
    other = (target[:, None] + 1 + torch.randint(p - 1, (n, k), generator=g)) % p
    cs = torch.empty(n, k).uniform_(scale[0], scale[1], generator=g)
    cleft = torch.rand(n, k, generator=g) * (size - clutter_size * cs)
    ctop = torch.rand(n, k, generator=g) * (size - clutter_size * cs)
    wxy = torch.randint(4, 28 - 4 - clutter_size + 1, (n, k, 2), generator=g).float()
    u = torch.arange(size, dtype=torch.float32) + 0.5

    def layer(img, sc, lx, ty, wx=0.0, wy=0.0, side=None):
        rx, ry = (u - lx) / sc, (u - ty) / sc
        gx = (2 * (rx + wx) / 28 - 1)[None, :].expand(size, -1)
        gy = (2 * (ry + wy) / 28 - 1)[:, None].expand(-1, size)
        grid = torch.stack([gx, gy], -1)[None]
        out = tnf.grid_sample(img.float()[None, None], grid, align_corners=False)[0, 0]
        if side is not None:
            out = out * (((ry >= 0) & (ry < side))[:, None] & ((rx >= 0) & (rx < side))[None])
        return out.round()

    images = torch.empty(n, size, size, dtype=torch.uint8)
    for i in range(n):
        canvas = layer(pool[target[i]], s[i], left[i], top[i])
        for j in range(k):
            frag = layer(pool[other[i, j]], cs[i, j], cleft[i, j], ctop[i, j],
                         wxy[i, j, 0], wxy[i, j, 1], clutter_size)  # fmt: skip
            canvas = torch.maximum(canvas, frag)
        images[i] = canvas.clamp(0, 255).to(torch.uint8)
    return images


def test_patch_rendering_matches_whole_canvas_reference(mnist):
    pool = mnist.test_images[:300]
    kw = {"size": 72, "scale": (1.0, 2.5), "n_clutter": 4, "clutter_size": 12}
    got, _, _ = cluttered.render_cluttered(
        pool, 30, generator=torch.Generator().manual_seed(9), batch_size=8, **kw
    )
    want = _reference_render(pool, 30, seed=9, **kw)
    assert torch.equal(got, want)


def test_masks_are_the_digit_pixels_clutter_is_background(tmp_path, mnist):
    clean = ClutteredDigits(split="test", seed=3, n_clutter=0, data=mnist, **SMALL)
    noisy = ClutteredDigits(
        split="test", seed=3, data=mnist, with_masks=True, cache_dir=tmp_path, **SMALL
    )
    assert noisy.masks.dtype == torch.bool and noisy.masks.shape == (48, 64, 64)
    # the mask is the digit's own pixels (all there is on a clean canvas), clutter or not
    assert torch.equal(clean.masks, clean.images > 0)
    assert torch.equal(noisy.masks, clean.masks)
    assert bool(((noisy.images > 0) & ~noisy.masks).any())  # clutter pixels: background
    for i in range(3):  # the box is the mask's tight box
        ys, xs = np.nonzero(noisy.masks[i].numpy())
        assert noisy.boxes[i].tolist() == [xs.min(), ys.min(), xs.max(), ys.max()]
    *_, mask = noisy[5]
    assert mask.dtype == torch.uint8 and torch.equal(mask.bool(), noisy.masks[5])
    assert len(clean[5]) == 3  # without with_masks, items stay (image, label, boxes)
    cached = ClutteredDigits(split="test", seed=3, data=mnist, cache_dir=tmp_path, **SMALL)
    assert torch.equal(cached.masks, noisy.masks)  # read back from the packed cache
    resized = ClutteredDigits(
        split="test", seed=3, data=mnist, with_masks=True, transform=Resize(32), **SMALL
    )
    with pytest.raises(ValueError, match="with_masks needs a transform that keeps"):
        resized[0]
    with pytest.raises(TypeError, match="with_masks must be True or False"):
        ClutteredDigits(split="test", data=mnist, with_masks=1, **SMALL)
