"""Box-aware transforms: hand-computed cases and boxes that still bound a drawn rectangle."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode

from infocam.data.transforms import (
    CenterCrop,
    Compose,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    ToTensor,
    crop_boxes,
    hflip_boxes,
    resize_boxes,
    wsol_transform,
)

EXACT = InterpolationMode.NEAREST_EXACT


def rect_image(h: int, w: int, box, as_pil: bool = False):
    """A (1, h, w) float image, 1 on the inclusive box and 0 elsewhere (or an L-mode PIL)."""
    x1, y1, x2, y2 = box
    img = torch.zeros(1, h, w)
    img[:, y1 : y2 + 1, x1 : x2 + 1] = 1.0
    if as_pil:
        return Image.fromarray((img[0].numpy() * 255).astype(np.uint8))
    return img


def tight_box(img) -> list[int]:
    """Inclusive box of pixels above half intensity."""
    a = np.asarray(img, dtype=np.float64)
    a = a[0] if a.ndim == 3 else a
    a = a / 255.0 if a.max() > 1.5 else a
    ys, xs = np.nonzero(a > 0.5)
    return [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]


def test_known_case_resize_centercrop_flip_by_hand():
    # 200 x 100 image (W x H), object on columns 80..139, rows 10..49 (inclusive).
    box = torch.tensor([[80, 10, 139, 49]])
    image = rect_image(100, 200, (80, 10, 139, 49))
    pipeline = Compose(
        [Resize(50, interpolation=EXACT), CenterCrop(40), RandomHorizontalFlip(p=1.0)]
    )
    out, out_box = pipeline(image, box)
    # Resize(50): shorter side 100 -> 50, so 200 x 100 -> 100 x 50, scale 1/2.
    #   edges [80, 140) x [10, 50) -> [40, 70) x [5, 25): inclusive [40, 5, 69, 24].
    # CenterCrop(40) of 100 x 50: top = round(10 / 2) = 5, left = round(60 / 2) = 30.
    #   -> [10, 0, 39, 19].
    # Flip, width 40: x1' = 39 - 39 = 0, x2' = 39 - 10 = 29.  -> [0, 0, 29, 19].
    assert out.shape == (1, 40, 40)
    assert out_box.dtype == torch.float32
    assert out_box.tolist() == [[0.0, 0.0, 29.0, 19.0]]
    assert tight_box(out) == [0, 0, 29, 19]


def test_box_ops_by_hand():
    b = torch.tensor([[0, 0, 9, 4]])
    # Resize 10x20 (H x W) -> 15x30: edges [0, 10) x [0, 5) * 1.5 -> [0, 15) x [0, 7.5).
    assert resize_boxes(b, (10, 20), (15, 30)).tolist() == [[0.0, 0.0, 14.0, 6.5]]
    assert hflip_boxes(b, 20).tolist() == [[10.0, 0.0, 19.0, 4.0]]
    # Crop window rows 2..11, cols 5..14: the box is clipped to cols 0..4, rows 0..2.
    assert crop_boxes(b, top=2, left=5, height=10, width=10).tolist() == [[0.0, 0.0, 4.0, 2.0]]
    # A box entirely outside the window comes back empty (x2 = x1 - 1), not as a 1-pixel box.
    empty = crop_boxes(torch.tensor([[0, 0, 3, 3]]), top=0, left=10, height=5, width=5)
    assert empty.tolist() == [[0.0, 0.0, -1.0, 3.0]]
    # Padding crop (window larger than the image, negative origin) shifts the box.
    assert crop_boxes(b, top=-3, left=-2, height=30, width=30).tolist() == [[2, 3, 11, 7]]


@pytest.mark.parametrize("as_pil", [False, True])
def test_random_pipelines_keep_box_on_the_rectangle(as_pil):
    """Draw a filled rectangle, transform, check the box bounds it (within a pixel)."""
    g = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(40, 120, size=2))
        x1, x2 = sorted(int(v) for v in rng.choice(w, 2, replace=False))
        y1, y2 = sorted(int(v) for v in rng.choice(h, 2, replace=False))
        image = rect_image(h, w, (x1, y1, x2, y2), as_pil=as_pil)
        pipeline = Compose(
            [
                Resize(int(rng.integers(30, 90)), interpolation=EXACT),
                RandomResizedCrop(32, scale=(0.5, 1.0), interpolation=EXACT, generator=g),
                RandomHorizontalFlip(generator=g),
            ]
        )
        out, box = pipeline(image, torch.tensor([[x1, y1, x2, y2]]))
        (bx1, by1, bx2, by2) = box[0].tolist()
        if bx2 - bx1 < 1 or by2 - by1 < 1:  # object (nearly) cropped away
            continue
        got = tight_box(out)
        assert np.allclose(got, [bx1, by1, bx2, by2], atol=1.0), (got, box)


def test_pil_and_tensor_give_same_boxes_and_bilinear_still_bounds():
    box = torch.tensor([[13, 7, 50, 33]])
    t = wsol_transform(train=False, resize=64, crop=56, mean=(0.0,), std=(1.0,))
    out_t, b_t = t(rect_image(48, 80, (13, 7, 50, 33)), box)
    out_p, b_p = t(rect_image(48, 80, (13, 7, 50, 33), as_pil=True), box)
    assert torch.equal(b_t, b_p)
    assert out_t.shape == out_p.shape == (1, 56, 56)
    assert np.allclose(tight_box(out_t), b_t[0].tolist(), atol=1.0)


def test_random_transforms_are_seeded():
    image = torch.rand(3, 50, 70)
    box = torch.tensor([[10, 10, 40, 30]])

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        t = Compose([RandomResizedCrop(24, generator=g), RandomHorizontalFlip(generator=g)])
        return [t(image, box) for _ in range(5)]

    a, b, c = run(1), run(1), run(2)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x[0], y[0]) and torch.equal(x[1], y[1])
    assert any(not torch.equal(x[1], y[1]) for x, y in zip(a, c, strict=True))
    torch.manual_seed(7)  # generator=None draws from the global RNG
    first = RandomCrop(20)(image, box)[1]
    torch.manual_seed(7)
    assert torch.equal(first, RandomCrop(20)(image, box)[1])


def test_flip_probability_zero_and_one():
    box = torch.tensor([[1, 2, 3, 4]])
    image = torch.rand(1, 8, 10)
    same, b0 = RandomHorizontalFlip(p=0.0)(image, box)
    assert torch.equal(same, image) and b0.tolist() == [[1, 2, 3, 4]]
    flipped, b1 = RandomHorizontalFlip(p=1.0)(image, box)
    assert torch.equal(flipped, image.flip(-1)) and b1.tolist() == [[6, 2, 8, 4]]


def test_to_tensor_and_normalize():
    pil = Image.fromarray(np.full((4, 6, 3), 255, np.uint8))
    x, _ = ToTensor()(pil, torch.zeros(1, 4))
    assert x.shape == (3, 4, 6) and x.dtype == torch.float32 and float(x.max()) == 1.0
    y, _ = Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))(x, torch.zeros(1, 4))
    assert torch.allclose(y, torch.full_like(y, 2.0))
    g, _ = ToTensor()(torch.full((5, 5), 51, dtype=torch.uint8), torch.zeros(1, 4))
    assert g.shape == (1, 5, 5) and torch.allclose(g, torch.full_like(g, 0.2))


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"boxes must have shape \(G, 4\)"):
        Resize(10)(torch.rand(1, 20, 20), torch.zeros(4))
    with pytest.raises(TypeError, match="size must be an int or an"):
        CenterCrop("big")
    with pytest.raises(ValueError, match="larger than the image"):
        RandomCrop(30)(torch.rand(1, 20, 20), torch.zeros(1, 4))
    with pytest.raises(TypeError, match="put ToTensor"):
        Normalize((0.5,), (0.5,))(Image.new("L", (4, 4)), torch.zeros(1, 4))
    with pytest.raises(ValueError, match="p must be a probability"):
        RandomHorizontalFlip(p=2)
