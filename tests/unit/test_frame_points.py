"""User points that name their own frame (SAM2 Points Editor) split by frame and merged into a chunk plan."""
from __future__ import annotations

import json

import numpy as np
import pytest

from wan_animate_kit.preprocess.frame_points import add_frame_points, group_by_frame
from wan_animate_kit.preprocess.sam_prompts import ChunkPrompts


def _lists(groups):
    return {f: (p.tolist(), n.tolist()) for f, (p, n) in groups.items()}


def test_points_group_by_their_frame_and_frameless_ones_by_points_frame():
    pos = json.dumps([{"x": 1, "y": 2, "frame": 4}, {"x": 3, "y": 4}, {}, {"x": 5, "y": 6, "frame": 0}])
    neg = json.dumps([[7, 8], {"x": 9, "y": 10, "frame": 4}])
    groups = group_by_frame(pos, neg, default_frame=2, num_frames=5)
    assert list(groups) == [0, 2, 4]  # increasing frames
    assert _lists(groups) == {0: ([[5, 6]], []), 2: ([[3, 4]], [[7, 8]]), 4: ([[1, 2]], [[9, 10]])}
    assert group_by_frame("", None, 0, 3) == {}
    assert _lists(group_by_frame('{"x": 1, "y": 1, "frame": 2}', "[3, 4]", 1, 3)) == {1: ([], [[3, 4]]),
                                                                                         2: ([[1, 1]], [])}


@pytest.mark.parametrize("frame", [5, -1, 1.5, "1", True])
def test_a_frame_outside_the_video_is_refused(frame):
    with pytest.raises(ValueError, match="negative point 0 is on frame"):
        group_by_frame(None, json.dumps([{"x": 1, "y": 1, "frame": frame}]), 0, 5)


def _plan():
    key = (np.full((2, 2), 7, np.float32), np.ones(2, np.int32))
    return [ChunkPrompts(0, 4, frames={0: key}), ChunkPrompts(4, 8, frames={0: key}), ChunkPrompts(8, 10)]


def _frames(chunk):
    return {t: (p.tolist(), lab.tolist()) for t, (p, lab) in chunk.frames.items()}


def test_add_puts_points_after_the_frames_keypoints():
    plans = _plan()
    pos, neg = np.array([[1, 2]], np.float32), np.array([[3, 4]], np.float32)
    add_frame_points(plans, 4, pos, neg, "add", set())
    add_frame_points(plans, 2, pos, np.zeros((0, 2), np.float32), "add", set())
    assert _frames(plans[1]) == {0: ([[7, 7], [7, 7], [1, 2], [3, 4]], [1, 1, 1, 0])}
    assert _frames(plans[0]) == {0: ([[7, 7], [7, 7]], [1, 1]), 2: ([[1, 2]], [1])}
    assert list(plans[0].frames) == [0, 2]


def test_replace_drops_the_chunks_keypoints_once_and_a_promptless_chunk_is_seeded_no_more():
    plans = _plan()
    plans[2].from_previous = True
    replaced: set[int] = set()
    one = np.array([[1, 2]], np.float32)
    none = np.zeros((0, 2), np.float32)
    add_frame_points(plans, 6, one, none, "replace", replaced)
    add_frame_points(plans, 5, none, one, "replace", replaced)  # same chunk: the first user points stay
    add_frame_points(plans, 9, one, none, "replace", replaced)
    assert _frames(plans[1]) == {1: ([[1, 2]], [0]), 2: ([[1, 2]], [1])}
    assert _frames(plans[0]) == {0: ([[7, 7], [7, 7]], [1, 1])}  # untouched chunk
    assert _frames(plans[2]) == {1: ([[1, 2]], [1])} and plans[2].from_previous is False
    assert replaced == {4, 8}
