"""Long-video segment arithmetic: padding, segment plans, stitching, mask packing."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from wan_animate_kit.preprocess.segments import (build_i2v_mask, latent_frames, pack_mask_4ch, pingpong_indices,
                                                 plan_segments)


def slow_pingpong(n, target):
    """Reference: walk forwards and backwards one step at a time."""
    out, i, step = [], 0, 1
    for _ in range(target):
        out.append(i)
        if n == 1:
            continue
        if not 0 <= i + step < n:
            step = -step
        i += step
    return out


@pytest.mark.parametrize("n,target", [(1, 5), (2, 7), (3, 10), (5, 20), (4, 3), (77, 305), (6, 0)])
def test_pingpong_matches_walk(n, target):
    assert pingpong_indices(n, target).tolist() == slow_pingpong(n, target)


def test_pingpong_examples_and_errors():
    assert pingpong_indices(4, 10).tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    assert pingpong_indices(1, 3).tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="at least one"):
        pingpong_indices(0, 3)


def test_latent_frames():
    assert [latent_frames(t) for t in (1, 4, 5, 77, 81)] == [1, 1, 2, 20, 21]
    with pytest.raises(ValueError):
        latent_frames(0)


def official_segments(real_len, clip_len, refert):
    """The official loop (§1.4) written out, for lengths where it works (real_len > refert)."""
    stride = clip_len - refert
    extra = (stride - (real_len - refert) % stride) % stride
    target = real_len + extra
    starts, start = [], 0
    while start + refert < target:
        starts.append(start)
        start += stride
    return target, starts


@pytest.mark.parametrize("guidance", [1, 5])
@pytest.mark.parametrize("n", [1, 2, 5, 6, 76, 77, 78, 149, 150, 153, 154, 300, 301, 1000])
def test_plan_lengths(n, guidance):
    plan = plan_segments(n, 77, guidance)
    # the output is exactly n frames, each covered once, in order
    covered = np.concatenate([np.arange(s.out_start, s.out_stop) for s in plan.segments])
    assert covered.tolist() == list(range(n))
    assert all(s.count >= 1 for s in plan.segments)
    assert plan.target_len >= max(n, 77)
    assert (plan.target_len - guidance) % plan.stride == 0
    assert plan.num_segments == (plan.target_len - guidance) // plan.stride
    for s in plan.segments:
        assert s.stop - s.start == 77 and len(s.source) == 77
        assert s.keep_from == (0 if s.index == 0 else guidance)
        # output frame j of a segment is source frame j (before padding wraps)
        assert s.source[s.keep][: s.count].tolist() == list(range(s.out_start, s.out_stop))
    if n > guidance:  # where the official loop works at all
        target, starts = official_segments(n, 77, guidance)
        assert plan.target_len == target and list(plan.starts) == starts


def test_official_examples():
    p = plan_segments(300, 77, 1)
    assert (p.target_len, p.num_segments, p.stride) == (305, 4, 76)
    assert [s.count for s in p.segments] == [77, 76, 76, 71]
    p = plan_segments(300, 77, 5)
    assert (p.target_len, p.num_segments, p.stride) == (365, 5, 72)
    assert sum(s.count for s in p.segments) == 300


def test_short_videos_get_one_padded_segment():
    for n in (1, 2, 5, 76):
        p = plan_segments(n, 77, 5)
        assert p.num_segments == 1 and p.target_len == 77
        assert p.segments[0].source.max() == n - 1
    assert plan_segments(1, 77, 1).segments[0].source.tolist() == [0] * 77


def test_assemble_numpy_and_torch():
    n = 160
    p = plan_segments(n, 77, 5)
    outs = [np.arange(s.start, s.stop) for s in p.segments]  # frame k of a segment "is" padded frame start+k
    assert p.assemble(outs).tolist() == list(range(n))
    touts = [torch.from_numpy(o) for o in outs]
    assert p.assemble(touts).tolist() == list(range(n))
    with pytest.raises(ValueError, match="segment outputs"):
        p.assemble(outs[:-1])


def test_plan_validation():
    with pytest.raises(ValueError, match="4n\\+1"):
        plan_segments(100, 76, 1)
    with pytest.raises(ValueError, match="1 or 5"):
        plan_segments(100, 77, 77)
    with pytest.raises(ValueError, match="positive"):
        plan_segments(0, 77, 1)


def test_pack_mask_layout():
    t, h, w = 9, 2, 3
    m = np.arange(t, dtype=np.float32)[:, None, None] * np.ones((1, h, w), np.float32)
    packed = pack_mask_4ch(m)
    assert packed.shape == (4, 3, h, w)
    assert packed[:, 0, 0, 0].tolist() == [0, 0, 0, 0]
    for k in (1, 2):
        assert packed[:, k, 0, 0].tolist() == [4 * k - 3, 4 * k - 2, 4 * k - 1, 4 * k]
    tp = pack_mask_4ch(torch.from_numpy(m))
    assert isinstance(tp, torch.Tensor) and np.array_equal(tp.numpy(), packed)
    with pytest.raises(ValueError, match="4n\\+1"):
        pack_mask_4ch(np.zeros((8, 2, 2)))


def test_build_i2v_mask():
    keep = np.zeros((77, 4, 4), np.float32)
    keep[:, :, 2:] = 1  # right half is background
    m = build_i2v_mask(77, 4, 4, known_frames=5, keep=keep)
    assert m.shape == (4, 20, 4, 4)
    assert (m[:, :2] == 1).all()  # guidance 5 makes latent frames 0 and 1 fully known
    assert (m[:, 2:, :, :2] == 0).all() and (m[:, 2:, :, 2:] == 1).all()
    assert (build_i2v_mask(1, 2, 2, known_frames=1) == 1).all()
    assert (build_i2v_mask(77, 2, 2, known_frames=0) == 0).all()
