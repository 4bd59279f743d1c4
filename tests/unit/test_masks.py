"""Mask shaping: dilation, block masks, head growth, feathering, empty frames, environment."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from wan_animate_kit.preprocess import masks as M


def slow_dilate(mask, k, iterations):
    """Reference max filter with cv2's default anchor (k//2) and no border influence."""
    m = mask.astype(np.float64)
    h, w = m.shape
    a = k // 2
    for _ in range(iterations):
        out = np.zeros_like(m)
        for y in range(h):
            for x in range(w):
                y0, y1 = max(0, y - a), min(h, y - a + k)
                x0, x1 = max(0, x - a), min(w, x - a + k)
                out[y, x] = m[y0:y1, x0:x1].max()
        m = out
    return m


def slow_block(mask, kh, kw):
    """Reference block mask written as the definition: cells with integer edges floor(i*size/cells)."""
    on = M.binary(mask)
    out = np.zeros(on.shape, bool)
    ys, xs = np.nonzero(on)
    if len(ys) == 0:
        return out
    y1, y2, x1, x2 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    ch, cw = min(kh, y2 - y1), min(kw, x2 - x1)
    for i in range(ch):
        for j in range(cw):
            a, b = y1 + i * (y2 - y1) // ch, y1 + (i + 1) * (y2 - y1) // ch
            c, d = x1 + j * (x2 - x1) // cw, x1 + (j + 1) * (x2 - x1) // cw
            if on[a:b, c:d].any():
                out[a:b, c:d] = True
    return out


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def random_mask(rng, h=23, w=31, p=0.03):
    return rng.random((h, w)) < p


@pytest.mark.parametrize("k,it", [(3, 1), (7, 3), (4, 2), (5, 0)])
def test_dilate_equals_definition(rng, k, it):
    m = random_mask(rng)
    out = M.dilate(m, k, it)
    assert out.dtype == bool
    assert np.array_equal(out, slow_dilate(m, k, it) > 0)
    u8 = M.dilate(m.astype(np.uint8) * 255, k, it)
    assert u8.dtype == np.uint8 and set(np.unique(u8)) <= {0, 255}
    assert np.array_equal(u8 > 0, out)


def test_dilate_soft_and_stack(rng):
    soft = rng.random((12, 14)).astype(np.float32) * (rng.random((12, 14)) < 0.1)
    assert np.allclose(M.dilate(soft, 3, 2), slow_dilate(soft, 3, 2))
    stack = np.stack([random_mask(rng) for _ in range(3)])
    out = M.dilate(stack, 7, 3)
    for t in range(3):
        assert np.array_equal(out[t], M.dilate(stack[t], 7, 3))
    with pytest.raises(ValueError, match="kernel"):
        M.dilate(stack, 0, 1)


def official_aug_mask(body_mask: np.ndarray, w_len: int = 1, h_len: int = 1) -> np.ndarray:
    """Re-statement of the official get_aug_mask (utils.py) on a uint8 0/1 mask (a copy is changed).

    Box from the first to the last non-zero pixel (inclusive), step int(extent / n) per axis, cells
    walked from the first pixel with the last row/column never reached; a cell with any non-zero
    pixel becomes 1. Raises where the official code raises (empty mask, zero step)."""
    m = body_mask.copy()
    ys, xs = np.nonzero(m)
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())
    sw, sh = int(np.int32((x1 - x0) / w_len)), int(np.int32((y1 - y0) / h_len))
    for cx in range(x0, x1, sw):
        for cy in range(y0, y1, sh):
            a, b = min(cy, y1), min(cy + sh, y1)
            c, d = min(cx, x1), min(cx + sw, x1)
            if m[a:b, c:d].sum() > 0:
                m[a:b, c:d] = 1
    return m


def official_mask_chain(sam_mask: np.ndarray, iterations: int = 3, k: int = 7, w_len: int = 1, h_len: int = 1):
    """The official replacement mask of one frame (process_pipepline.py): dilate, then get_aug_mask."""
    dilated = cv2.dilate(sam_mask, np.ones((k, k), np.uint8), iterations=iterations)
    return official_aug_mask(dilated, w_len, h_len)


def blob_masks(rng, n: int, h: int = 60, w: int = 80) -> list[np.ndarray]:
    """uint8 0/1 masks: random blobs, masks on every border, tiny masks (one pixel, a line)."""
    out = []
    for i in range(n):
        m = (rng.random((h, w)) < rng.choice([0.002, 0.01, 0.05])).astype(np.uint8)
        if i % 4 == 1:
            m[:, 0] = m[0, :] = 1              # touching the top and left border
        if i % 4 == 2:
            m[-1, rng.integers(w)] = m[rng.integers(h), -1] = 1   # bottom and right border
        if not m.any():
            m[rng.integers(h), rng.integers(w)] = 1
        out.append(m)
    one = np.zeros((h, w), np.uint8)
    one[h // 2, w // 3] = 1
    line = np.zeros((h, w), np.uint8)
    line[5, 10:40] = 1
    corner = np.zeros((h, w), np.uint8)
    corner[-1, -1] = corner[0, 0] = 1
    diag = np.zeros((h, w), np.uint8)
    diag[10, 60] = diag[40, 20] = 1        # the only on pixels lie on the box's last row / column
    return out + [one, line, corner, diag, np.ones((h, w), np.uint8)]


@pytest.mark.parametrize("kh,kw", [(1, 1), (2, 3), (4, 4), (7, 5), (20, 10)])
def test_official_block_equals_get_aug_mask(rng, kh, kw):
    for m in blob_masks(rng, 12):
        try:
            want = official_aug_mask(m, w_len=kw, h_len=kh)
        except ValueError:   # zero step: the official code stops
            continue
        got = M.block_mask(m, kh, kw)
        assert got.dtype == np.uint8 and np.array_equal(got, want)
        assert np.array_equal(M.block_mask(m.astype(bool), kh, kw), want.astype(bool))
        assert np.array_equal(M.block_mask(m * 255, kh, kw), want * 255)


@pytest.mark.parametrize("k,it,kh,kw", [(7, 3, 1, 1), (3, 1, 1, 1), (7, 3, 10, 5), (5, 2, 3, 3)])
def test_official_mask_chain_pixel_equal(rng, k, it, kh, kw):
    masks = np.stack(blob_masks(rng, 8))
    got = M.shape_mask_sequence(masks, kernel=k, iterations=it, kh=kh, kw=kw)
    for t, m in enumerate(masks):
        assert np.array_equal(got[t], official_mask_chain(m, it, k, kw, kh)), t


def test_official_block_leaves_the_last_row_and_column():
    m = np.zeros((10, 12), np.uint8)
    m[2, 3] = 1
    m[7, 9] = 1
    want = np.zeros_like(m)
    want[2:7, 3:9] = 1           # the box less its last row (7) and column (9)
    want[7, 9] = 1               # which keep the mask's own pixels
    assert np.array_equal(M.block_mask(m), want)
    # 2 columns over 7 px of extent: step int(6 / 2) = 3 -> cells [3, 6), [6, 9)
    m2 = np.zeros((10, 12), np.uint8)
    m2[2, 3] = m2[6, 9] = m2[4, 7] = 1
    want2 = m2.copy()
    want2[2:6, 3:6] = 1
    want2[2:6, 6:9] = 1
    assert np.array_equal(M.block_mask(m2, 1, 2), want2)
    # a 7-column grid over 6 px of extent: the official step would be 0; here 1 px
    assert np.array_equal(M.block_mask(m2, 1, 7), M.block_mask(m2, 1, 6))
    # a single row or column (no official cell) and an empty frame are unchanged
    row = np.zeros((4, 8), np.uint8)
    row[1, 2:6] = 1
    assert np.array_equal(M.block_mask(row), row)
    assert not M.block_mask(np.zeros((4, 8), np.uint8)).any()


def test_official_and_even_grids_differ_as_documented(rng):
    m = np.zeros((60, 80), np.uint8)
    m[10:50, 15:70] = rng.random((40, 55)) < 0.2
    m[10, 15] = m[49, 69] = 1
    off, even = M.block_mask(m, 1, 1), M.block_mask(m, 1, 1, grid="even")
    assert (even >= off).all() and even[10:50, 15:70].all()
    assert not off[49, :].all() and not off[:, 69].all() and off[10:49, 15:69].all()


@pytest.mark.parametrize("kh,kw", [(1, 1), (2, 3), (4, 4), (7, 5), (50, 50)])
def test_block_equals_definition(rng, kh, kw):
    for _ in range(5):
        m = random_mask(rng, p=0.02)
        out = M.block_mask(m, kh, kw, grid="even")
        assert np.array_equal(out, slow_block(m, kh, kw))
        assert (out >= m).all()  # a block mask covers the mask


def test_even_block_1x1_is_bounding_box():
    m = np.zeros((10, 12), np.uint8)
    m[2, 3] = 1
    m[7, 9] = 1
    out = M.block_mask(m, grid="even")
    want = np.zeros_like(m)
    want[2:8, 3:10] = 1
    assert np.array_equal(out, want)
    assert M.bounding_box(m) == (3, 2, 10, 8)


def test_block_small_box_and_empty():
    m = np.zeros((10, 10), bool)
    m[4, 4] = True
    assert np.array_equal(M.block_mask(m, 8, 8, grid="even"), m)  # a 1x1 box with an 8x8 grid: no zero step
    assert np.array_equal(M.block_mask(m, 8, 8), m)
    assert not M.block_mask(np.zeros((5, 5), bool), 2, 2).any()
    assert not M.block_mask(np.zeros((5, 5), bool), 2, 2, grid="even").any()
    assert M.bounding_box(np.zeros((5, 5), bool)) is None
    f = M.block_mask(m.astype(np.float32) * 0.9, 1, 1, grid="even")
    assert f.dtype == np.float32 and f[4, 4] == 1.0


def test_grow_head_covers_above_head():
    m = np.zeros((200, 200), np.uint8)
    m[100:190, 80:120] = 255  # a body without the top of the head
    head = np.array([[100, 90, 0.9], [95, 85, 0.9], [105, 85, 0.9], [88, 88, 0.8], [112, 88, 0.8],
                     [100, 5, 0.1]], np.float32)  # last point is not confident and must be ignored
    out = M.grow_head(m, head, threshold=0.3)
    assert out.dtype == np.uint8 and set(np.unique(out)) <= {0, 255}
    assert (out >= m).all()
    assert out[60, 100] == 255  # hair region above the eyes
    assert out[30, 100] == 0  # but not unbounded: ellipse half-height 1.3 * 24 around y = 87 - 12
    assert out[5, 100] == 0
    # too few confident points: unchanged
    assert np.array_equal(M.grow_head(m, head * [1, 1, 0.1]), m)
    # stacks take per-frame points
    stack = np.stack([m, m])
    pts = np.stack([head, head * [1, 1, 0]])
    out2 = M.grow_head(stack, pts)
    assert np.array_equal(out2[0], out) and np.array_equal(out2[1], m)


def test_feather_soft_edge_and_inside():
    m = np.zeros((40, 40), bool)
    m[10:30, 10:30] = True
    f = M.feather(m, 4)
    assert f.dtype == np.float32 and 0 <= f.min() and f.max() <= 1
    assert f[20, 20] == pytest.approx(1.0) and f[0, 0] == 0.0
    assert 0.2 < f[20, 10] < 0.8  # edge is soft
    fi = M.feather(m, 4, inside=True)
    assert (fi[~m] == 0).all() and fi[20, 20] == pytest.approx(1.0)
    assert np.array_equal(M.feather(m, 0), m.astype(np.float32))


@pytest.mark.parametrize("inside", [False, True])
def test_feather_crop_equals_full_frame_blur(rng, inside):
    """Filtering only around the mask must give the same result as filtering the whole frame."""
    import cv2

    for m in (random_mask(rng, 60, 70, 0.002), np.pad(np.ones((10, 12), np.uint8) * 255, ((0, 40), (5, 30)))):
        r = 5
        full = M.to_float(m)
        if inside:
            full = cv2.erode(full, np.ones((11, 11), np.uint8), borderType=cv2.BORDER_REPLICATE)
        want = cv2.GaussianBlur(full, (11, 11), 2.5, borderType=cv2.BORDER_REPLICATE)
        assert np.allclose(M.feather(m, r, inside=inside), want, atol=1e-6)


def test_fill_empty_masks():
    t = np.zeros((6, 4, 4), np.uint8)
    t[1, 0, 0] = 1
    t[4, 3, 3] = 1
    out, empty = M.fill_empty_masks(t)
    assert empty == [0, 2, 3, 5]
    assert np.array_equal(out[0], t[1]) and np.array_equal(out[2], t[1])  # tie at 2 -> earlier
    assert np.array_equal(out[3], t[4]) and np.array_equal(out[5], t[4])
    assert np.array_equal(out[1], t[1]) and np.array_equal(out[4], t[4])
    allempty = np.zeros((3, 4, 4), bool)
    out, empty = M.fill_empty_masks(allempty)
    assert empty == [0, 1, 2] and not out.any()


def test_shape_mask_sequence_chain(rng):
    stack = np.stack([random_mask(rng, 40, 40, 0.005) for _ in range(3)] + [np.zeros((40, 40), bool)])
    out = M.shape_mask_sequence(stack, kernel=3, iterations=2, kh=2, kw=2)
    even = M.shape_mask_sequence(stack, kernel=3, iterations=2, kh=2, kw=2, grid="even")
    for t in range(4):
        assert np.array_equal(out[t], M.block_mask(M.dilate(stack[t], 3, 2), 2, 2))
        assert np.array_equal(even[t], M.block_mask(M.dilate(stack[t], 3, 2), 2, 2, grid="even"))
    assert not out[3].any()
    assert np.array_equal(M.shape_mask_sequence(stack, iterations=0, block=False), stack)


def test_environment_frames_exact():
    rng = np.random.default_rng(1)
    frames = rng.random((3, 8, 9, 3)).astype(np.float32) + 0.01
    mask = rng.random((3, 8, 9)) < 0.4
    env = M.environment_frames(frames, mask)
    assert (env[mask] == 0).all()
    assert np.array_equal(env[~mask], frames[~mask])
    env_u8 = M.environment_frames(frames, mask.astype(np.uint8) * 255)
    assert np.array_equal(env_u8, env)
    tenv = M.environment_frames(torch.from_numpy(frames), mask)
    assert np.array_equal(tenv.numpy(), env)
    with pytest.raises(ValueError, match="does not match"):
        M.environment_frames(frames, mask[:, :4])


def test_overlay_and_composite():
    frames = np.full((2, 4, 4, 3), 100, np.uint8)
    mask = np.zeros((2, 4, 4), bool)
    mask[:, 0, 0] = True
    ov = M.overlay(frames, mask, (255, 0, 0), 0.5)
    assert ov.dtype == np.uint8 and ov[0, 0, 0].tolist() == [178, 50, 50] and ov[0, 1, 1].tolist() == [100] * 3
    gen = np.ones((2, 4, 4, 3), np.float32)
    src = np.zeros((2, 4, 4, 3), np.float32)
    soft = np.zeros((2, 4, 4), np.float32)
    soft[:, 0, 0] = 0.25
    comp = M.composite(gen, src, soft)
    assert comp[0, 0, 0, 0] == pytest.approx(0.25) and comp[0, 1, 1, 0] == 0
    tcomp = M.composite(torch.from_numpy(gen), torch.from_numpy(src), soft)
    assert np.allclose(tcomp.numpy(), comp)


def test_coverage_and_warnings():
    m = np.zeros((3, 10, 10), bool)
    m[1, :5] = True
    m[2] = True
    assert M.mask_coverage(m).tolist() == [0.0, 0.5, 1.0]
    msgs = M.coverage_warnings(m)
    assert len(msgs) == 2 and "empty" in msgs[0] and "cover" in msgs[1]
    assert M.coverage_warnings(m[1:2]) == []


def test_resize_masks_nearest():
    m = np.zeros((2, 16, 16), bool)
    m[:, :8, :8] = True
    r = M.resize_masks(m, 2, 2)
    assert r.dtype == bool and r[:, 0, 0].all() and not r[:, 1, 1].any()


def test_bad_shapes():
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        M.dilate(np.zeros(5), 3, 1)
    with pytest.raises(ValueError, match="grid"):
        M.block_mask(np.zeros((4, 4)), 0, 1)
    with pytest.raises(ValueError, match="grid rule"):
        M.block_mask(np.zeros((4, 4)), 1, 1, grid="floor")


def test_binary_rule():
    f = np.array([[0.0, 0.3, 0.5, 1.0]], np.float32)
    assert M.binary(f).tolist() == [[False, False, True, True]]
    assert M.binary(np.array([[0, 1, 255]], np.uint8)).tolist() == [[False, True, True]]
    assert M.block_mask(f, grid="even").tolist() == [[0, 0, 1, 1]]  # the 0.3 pixel is not part of the box
