"""Streaming stitcher (keep_all=False): the same video as the whole-video stitcher, in flat memory."""
from __future__ import annotations

import numpy as np
import pytest

from wan_animate_kit.preprocess.segments import plan_segments
from wan_animate_kit.preprocess.stitching import Stitcher


def _segments(plan, h, w, seed):
    rng = np.random.default_rng(seed)
    out = []
    for seg in plan.segments:
        last = seg.index == plan.num_segments - 1
        n = seg.keep_from + seg.count if last and seed % 2 else plan.clip_len  # odd seeds: shortened last
        out.append(rng.integers(0, 256, size=(n, h, w, 3), dtype=np.uint8))
    return out


@pytest.mark.parametrize("n,clip,g,crossfade,colour", [
    (20, 9, 1, False, 0.0), (20, 9, 1, True, 0.0), (13, 9, 5, True, 0.0), (31, 9, 5, True, 0.7),
    (5, 9, 5, True, 0.0), (9, 9, 1, False, 1.0), (40, 13, 5, False, 0.5), (3, 5, 1, True, 0.0)])
@pytest.mark.parametrize("seed", [0, 1])
def test_streaming_equals_whole_video(n, clip, g, crossfade, colour, seed):
    plan = plan_segments(n, clip, g)
    whole = Stitcher(plan, 6, 5, crossfade=crossfade, colour_strength=colour)
    stream = Stitcher(plan, 6, 5, crossfade=crossfade, colour_strength=colour, keep_all=False)
    assert stream.frames is None
    parts, tails_w, tails_s = [], [], []
    for k, raw in enumerate(_segments(plan, 6, 5, seed)):
        tails_w.append(whole.add(k, raw))
        tails_s.append(stream.add(k, raw))
        part = stream.take_final()
        assert np.array_equal(stream.latest, whole.latest)  # still there after the frames left
        assert len(part) == stream.final - sum(len(p) for p in parts)
        parts.append(part)
        # nothing handed out is changed later: it equals the finished whole video's frames
    got = np.concatenate(parts)
    assert got.shape == (n, 6, 5, 3) and stream.released == n
    assert np.array_equal(got, whole.frames)
    for a, b in zip(tails_w, tails_s):
        assert (a is None and b is None) or np.array_equal(a, b)


def test_crossfaded_frames_are_held_back_until_the_next_segment():
    plan = plan_segments(13, 9, 5)  # starts 0, 4: segment 1 blends frames 4..8
    st = Stitcher(plan, 2, 2, crossfade=True, keep_all=False)
    st.add(0, np.full((9, 2, 2, 3), 60, np.uint8))
    first = st.take_final()
    assert len(first) == 4 and (first == 60).all()  # frames 4..8 may still change
    st.add(1, np.full((9, 2, 2, 3), 120, np.uint8))
    rest = st.take_final()
    assert len(rest) == 9 and 60 < rest[0, 0, 0, 0] < 120 and (rest[-4:] == 120).all()
    assert len(st.take_final()) == 0


def test_hard_cut_releases_every_written_frame():
    plan = plan_segments(20, 9, 1)
    st = Stitcher(plan, 2, 2, keep_all=False)
    st.add(0, np.zeros((9, 2, 2, 3), np.uint8))
    assert len(st.take_final()) == 9


def test_streaming_needs_take_final_after_each_add():
    plan = plan_segments(40, 9, 1)
    st = Stitcher(plan, 2, 2, keep_all=False)
    st.add(0, np.zeros((9, 2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match="take_final"):
        st.add(1, np.zeros((9, 2, 2, 3), np.uint8))
        st.add(2, np.zeros((9, 2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match="keep_all"):
        Stitcher(plan, 2, 2, out=np.zeros((40, 2, 2, 3), np.uint8), keep_all=False)
