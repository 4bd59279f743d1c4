"""Mask shaping a chunk at a time (preprocess/mask_video.py) equals the whole-stack functions."""
import numpy as np
import pytest
import torch

from wan_animate_kit.preprocess.frames import PackedMasks
from wan_animate_kit.preprocess.mask_video import empty_frames, nearest_filled, placed_masks, shape_masks
from wan_animate_kit.preprocess.masks import (fill_empty_masks, letterbox_masks, mask_coverage, resize_masks,
                                              shape_mask_sequence)


def _blobs(t=11, h=40, w=56, seed=0):
    rng = np.random.default_rng(seed)
    m = np.zeros((t, h, w), np.float32)
    for i in range(t):
        if i in (0, 4, 5, 10):
            continue  # empty frames, also at both ends
        y, x = rng.integers(2, h - 12), rng.integers(2, w - 15)
        m[i, y:y + 9, x:x + 12] = 1.0
        m[i, rng.integers(0, h), rng.integers(0, w)] = 0.7  # a stray pixel widens the box
    return m


@pytest.mark.parametrize("as_packed", [False, True])
@pytest.mark.parametrize("opts", [dict(), dict(block=False), dict(kh=3, kw=2, grid="even"), dict(fill_empty=False),
                                  dict(heads=True)])
def test_chunked_shaping_equals_the_whole_stack(as_packed, opts):
    m = _blobs()
    heads = None
    if opts.pop("heads", False):
        heads = np.zeros((len(m), 5, 3), np.float32)
        heads[:, :, 0], heads[:, :, 1], heads[:, :, 2] = 20, 12, 0.9
        heads[:, 1:, 0] += np.arange(1, 5) * 2
    fill = opts.pop("fill_empty", True)
    src = torch.from_numpy(m)
    if as_packed:
        src = PackedMasks(56, 40)
        src.append(m)
    got, empty, cov = shape_masks(src, chunk=3, head_points=heads, head_radius_scale=1.5, fill_empty=fill, **opts)
    whole = m >= 0.5
    if fill:
        whole, want_empty = fill_empty_masks(whole)
        assert empty == want_empty == [0, 4, 5, 10]
    else:
        assert empty == []
    want = shape_mask_sequence(whole, head_points=heads, head_radius_scale=1.5, **opts)
    assert np.array_equal(got.get(range(len(m))) >= 128, want)
    assert np.array_equal(cov, mask_coverage(want))


def test_nearest_filled_takes_the_earlier_frame_on_a_tie():
    assert nearest_filled([0, 2, 5, 6], 8) == {0: 1, 2: 1, 5: 4, 6: 7}
    assert nearest_filled([0, 1], 2) == {}  # nothing to fill from
    m = np.zeros((4, 3, 3), bool)
    m[1, 1, 1] = True
    assert empty_frames(torch.from_numpy(m.astype(np.float32)), chunk=3) == [0, 2, 3]


def test_placed_masks_are_the_resized_letterboxed_frames():
    m = _blobs(5, 20, 28).astype(np.float32) * 0.8  # soft values survive for a MASK batch
    want = letterbox_masks(resize_masks(m, 40, 56), 64, 64)
    got = np.concatenate([placed_masks(torch.from_numpy(m), s, min(5, s + 2), 56, 40, 64, 64) for s in (0, 2, 4)])
    assert np.array_equal(got, want)
    single = placed_masks(torch.from_numpy(m[1:2]), 0, 3, 56, 40, 64, 64)
    assert single.shape == (3, 64, 64) and np.array_equal(single[2], want[1])
