"""Matching a person across two trackings of the same clip by position (preprocess/person_match.py)."""
import numpy as np
import pytest

from wan_animate_kit.preprocess.person_match import match_person
from wan_animate_kit.preprocess.pose_types import PoseSequence


def _person(t, x0, y0, w, h, conf=0.9):
    """[t, 133, 3]: points spread over the box (x0, y0, w, h), drifting right by 1 px a frame."""
    rng = np.random.default_rng(int(x0 * 7 + y0))
    base = np.stack([x0 + rng.uniform(0, w, 133), y0 + rng.uniform(0, h, 133)], 1)
    out = np.zeros((t, 133, 3), np.float32)
    for i in range(t):
        out[i, :, :2] = base + [i, 0]
        out[i, :, 2] = conf
    return out


def _seq(people, subject=0, width=200, height=100, detected=None):
    kps = np.stack(people, axis=1)
    return PoseSequence(kps, tuple(range(len(people))), width, height, subject=subject, detected=detected)


def _iou(a, b):
    """Plain box IoU restated: xyxy boxes of the confident points."""
    def box(k):
        k = k[k[:, 2] >= 0.3]
        return k[:, 0].min(), k[:, 1].min(), k[:, 0].max(), k[:, 1].max()
    ax1, ay1, ax2, ay2 = box(a)
    bx1, by1, bx2, by2 = box(b)
    iw, ih = max(0, min(ax2, bx2) - max(ax1, bx1)), max(0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    return inter / ((ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter)


def test_columns_in_another_order_are_matched_by_position():
    a, b = _person(9, 10, 10, 40, 80), _person(9, 120, 15, 40, 80)
    original = _seq([a, b], subject=1)                      # person B is the subject
    retracked = _seq([b + [[0.5, -0.5, 0]], a], subject=0)  # ids in another order, points moved a little
    found = match_person(retracked, original)
    assert found.index == 0 and found.shared_frames == 9
    expect = np.mean([_iou(original.keypoints[t, 1], retracked.keypoints[t, 0]) for t in range(9)])
    assert found.iou == pytest.approx(expect, rel=1e-5)
    assert found.ious[1] == 0.0  # the other person's box never overlaps
    assert match_person(retracked, _seq([a, b], subject=0)).index == 1


def test_appearance_plays_no_part_only_positions():
    """Keypoint confidences (what a changed look would move) differ; the position decides."""
    a, b = _person(5, 10, 10, 40, 80), _person(5, 60, 10, 40, 80)  # overlapping neighbours
    low_a = a.copy()
    low_a[..., 2] = 0.4
    found = match_person(_seq([b, low_a]), _seq([a, b], subject=0))
    assert found.index == 1


def test_keypoint_distance_breaks_an_iou_tie():
    a = _person(3, 10, 10, 40, 80)
    near = a.copy()
    near[:, :5, :2] += 2.0  # same box (the extreme points may move a little), points slightly off
    far = a.copy()
    perm = np.random.default_rng(0).permutation(133)
    far[:, :, :2] = a[:, perm, :2]  # identical box, every point somewhere else in it
    found = match_person(_seq([far, near]), _seq([a]))
    assert found.index == 1


def test_other_canvas_is_scaled_and_frames_without_the_reference_are_skipped():
    a, b = _person(4, 10, 10, 40, 80), _person(4, 120, 15, 40, 80)
    half = _seq([a * [0.5, 0.5, 1], b * [0.5, 0.5, 1]], subject=1, width=100, height=50)
    det = np.ones((4, 2), bool)
    det[:2, 1] = False
    full = _seq([a, b], detected=det)
    found = match_person(full, half)
    assert found.index == 1 and found.shared_frames == 2 and found.iou == pytest.approx(1.0, abs=1e-5)


def test_errors():
    a = _person(4, 10, 10, 40, 80)
    with pytest.raises(ValueError, match="frames"):
        match_person(_seq([a]), _seq([a[:3]]))
    empty = PoseSequence(np.zeros((4, 0, 133, 3), np.float32), (), 200, 100)
    with pytest.raises(ValueError, match="no tracked person"):
        match_person(empty, _seq([a]))
    det = np.zeros((4, 1), bool)
    det[:2] = True
    other = np.ones((4, 1), bool)
    other[:2] = False
    with pytest.raises(ValueError, match="shares a detected frame"):
        match_person(_seq([a], detected=det), _seq([a], detected=other))
