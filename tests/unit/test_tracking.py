"""Multi-person tracking with stable ids through crossings and occlusions, and subject choice."""
from __future__ import annotations

import numpy as np
import pytest

from wan_animate_kit.preprocess import pose_types as pt
from wan_animate_kit.preprocess.pose_types import PoseSequence
from wan_animate_kit.preprocess.tracking import (FrameDetections, box_iou, keypoint_boxes, person_boxes,
                                                 select_subject, track_people)

W, H = 1280, 720


def skeleton(cx: float, foot_y: float, height: float, phase: float = 0.0) -> np.ndarray:
    """A walking person [133, 3] whose box is about ``height`` tall with its feet at ``foot_y``."""
    s = height / 560.0
    top = foot_y - 560 * s
    k = np.zeros((133, 3), np.float32)
    swing = 40 * np.sin(phase)

    def put(i, x, y):
        k[i] = (cx + x * s, top + y * s, 0.9)

    put(pt.NOSE, 0, 20); put(pt.L_EYE, 8, 12); put(pt.R_EYE, -8, 12); put(pt.L_EAR, 18, 16); put(pt.R_EAR, -18, 16)
    put(pt.L_SHOULDER, 60, 100); put(pt.R_SHOULDER, -60, 100)
    put(pt.L_ELBOW, 70 + swing / 2, 200); put(pt.R_ELBOW, -70 - swing / 2, 200)
    put(pt.L_WRIST, 75 + swing, 290); put(pt.R_WRIST, -75 - swing, 290)
    put(pt.L_HIP, 40, 300); put(pt.R_HIP, -40, 300)
    put(pt.L_KNEE, 45 - swing, 420); put(pt.R_KNEE, -45 + swing, 420)
    put(pt.L_ANKLE, 45 - swing, 540); put(pt.R_ANKLE, -45 + swing, 540)
    for i, (dx, dy) in zip(range(17, 23), [(60, 560), (70, 555), (35, 550), (-60, 560), (-70, 555), (-35, 550)]):
        put(i, dx, dy)
    ang = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    k[pt.FACE, 0] = cx + 15 * s * np.cos(ang)
    k[pt.FACE, 1] = top + 25 * s + 20 * s * np.sin(ang)
    k[pt.FACE, 2] = 0.8
    for hand, sign in ((pt.LEFT_HAND, 1), (pt.RIGHT_HAND, -1)):
        base = k[pt.L_WRIST if sign > 0 else pt.R_WRIST, :2]
        k[hand, 0] = base[0] + sign * np.linspace(0, 30 * s, 21)
        k[hand, 1] = base[1] + np.linspace(0, 20 * s, 21)
        k[hand, 2] = 0.7
    return k


def make_video(paths, t_len: int, hidden=None, seed: int = 0, extra=None):
    """Per-frame detections (shuffled) and, per frame, the true person of each detection.

    paths: per person a function t -> (cx, foot_y, height). hidden: {person: frames not detected}.
    extra: {frame: keypoints} spurious one-off detections.
    """
    rng = np.random.default_rng(seed)
    frames, truth = [], []
    for t in range(t_len):
        kps, who = [], []
        for p, path in enumerate(paths):
            if hidden and t in hidden.get(p, ()):
                continue
            cx, fy, h = path(t)
            k = skeleton(cx, fy, h, phase=0.3 * t + p)
            k[:, :2] += rng.normal(0, 1.5, (133, 2))
            kps.append(k)
            who.append(p)
        if extra and t in extra:
            kps.append(extra[t])
            who.append(-1)
        order = rng.permutation(len(kps))
        kps = np.stack([kps[i] for i in order]) if kps else np.zeros((0, 133, 3), np.float32)
        frames.append((keypoint_boxes(kps) if len(kps) else np.zeros((0, 4)), kps))
        truth.append([who[i] for i in order])
    return frames, truth


def identities(seq: PoseSequence, frames, truth) -> list[set[int]]:
    """For each output column, the set of true people it holds."""
    out = []
    for p in range(seq.num_people):
        ids = set()
        for t in range(seq.num_frames):
            if not seq.detected[t, p]:
                continue
            kps = frames[t][1]
            j = int(np.argmin(np.abs(kps - seq.keypoints[t, p]).sum(axis=(1, 2))))
            assert np.array_equal(kps[j], seq.keypoints[t, p])
            ids.add(truth[t][j])
        out.append(ids)
    return out


def test_two_people_crossing_keep_ids():
    t_len = 60
    paths = [lambda t: (200 + 15 * t, 650, 480),      # walks right
             lambda t: (1080 - 15 * t, 660, 500)]     # walks left; they overlap fully near t = 29
    frames, truth = make_video(paths, t_len)
    seq = track_people(frames, W, H, fps=30)
    assert seq.num_people == 2 and seq.track_ids == (0, 1)
    assert identities(seq, frames, truth) == [{0}, {1}]
    assert seq.detected.all()


def test_three_people_with_occlusion_at_crossing():
    t_len = 70
    paths = [lambda t: (150 + 14 * t, 650, 480),
             lambda t: (1130 - 14 * t, 655, 470),
             lambda t: (640 + 2 * t, 600, 330)]       # a smaller person standing in the middle, behind
    hidden = {1: set(range(30, 36)), 2: set(range(33, 37))}   # occluded while the others pass
    frames, truth = make_video(paths, t_len, hidden=hidden, seed=1)
    seq, boxes = track_people(frames, W, H, fps=30, return_boxes=True)
    assert seq.num_people == 3
    assert sorted(identities(seq, frames, truth), key=min) == [{0}, {1}, {2}]
    col1 = [p for p, ids in enumerate(identities(seq, frames, truth)) if ids == {1}][0]
    assert not seq.detected[30:36, col1].any() and seq.detected[36:, col1].all()
    assert not seq.keypoints[30:36, col1].any()   # absent frames are zeros
    assert boxes.shape == (t_len, 3, 4)
    assert seq.subject == col1 or seq.subject == [p for p, ids in enumerate(identities(seq, frames, truth))
                                                   if ids == {0}][0]  # one of the two big people


def test_spurious_detections_dropped_and_late_arrivals_get_new_ids():
    t_len = 40
    paths = [lambda t: (300 + 5 * t, 650, 450), lambda t: (1000, 650, 450)]
    hidden = {1: set(range(0, 20))}     # the second person arrives at frame 20
    ghost = skeleton(640, 300, 150)
    frames, truth = make_video(paths, t_len, hidden=hidden, extra={5: ghost})
    seq = track_people(frames, W, H, fps=30, min_hits=3)
    ids = identities(seq, frames, truth)
    assert ids == [{0}, {1}]            # the one-frame ghost is gone, order is first appearance
    assert not seq.detected[:20, 1].any() and seq.detected[20:, 1].all()


def test_track_lost_longer_than_max_age_restarts():
    t_len = 40
    frames, truth = make_video([lambda t: (300 + 5 * t, 650, 450)], t_len, hidden={0: set(range(10, 25))})
    assert track_people(frames, W, H, max_age=20).num_people == 1
    assert track_people(frames, W, H, max_age=5).num_people == 2


def test_input_forms_and_errors():
    k = skeleton(400, 650, 450)
    kps = k[None]
    for frame in ((keypoint_boxes(kps), kps), {"boxes": None, "keypoints": kps}, kps,
                  FrameDetections(np.array([[100, 100, 700, 700, 0.9]]), kps)):
        seq = track_people([frame, frame, None, frame], W, H, min_hits=1)
        assert seq.num_people == 1 and seq.detected[:, 0].tolist() == [True, True, False, True]
    two = track_people([[k, skeleton(900, 650, 450)]] * 3, W, H)   # a plain list of two people
    assert two.num_people == 2
    empty = track_people([None, None], W, H)
    assert empty.num_people == 0 and empty.keypoints.shape == (2, 0, 133, 3)
    with pytest.raises(ValueError, match="boxes"):
        FrameDetections(np.zeros((1, 3)), kps)
    with pytest.raises(ValueError, match="133"):
        FrameDetections(None, np.zeros((1, 17, 3)))
    with pytest.raises(ValueError, match="2 boxes but 1"):
        FrameDetections(np.zeros((2, 4)), kps)


def test_box_iou():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    np.testing.assert_allclose(box_iou(a, b)[0], [1.0, 50 / 150, 0.0])


def _three_people_seq() -> PoseSequence:
    kps = np.zeros((10, 3, 133, 3), np.float32)
    kps[:, 0] = skeleton(200, 650, 300)
    kps[:, 1] = skeleton(640, 700, 600)    # the largest
    kps[2:, 2] = skeleton(1000, 650, 400)  # appears at frame 2
    return PoseSequence(kps, (0, 1, 2), W, H)


def test_select_subject_modes():
    seq = _three_people_seq()
    assert select_subject(seq, "largest").subject == 1
    assert select_subject(seq, "2").subject == 2
    assert select_subject(seq, 0).subject == 0
    assert select_subject(seq, "210,500").subject == 0          # inside person 0's box
    assert select_subject(seq, " 700 , 400 ").subject == 1
    # person 2 is absent at frame 0: a click on its place picks the nearest person present then
    assert select_subject(seq, "1000,500").subject == 1
    assert select_subject(seq, "0.16,0.7").subject == 0          # fractions of the canvas
    with pytest.raises(ValueError, match="out of range"):
        select_subject(seq, "3")
    with pytest.raises(ValueError, match="largest"):
        select_subject(seq, "tallest")
    with pytest.raises(ValueError, match="no person"):
        select_subject(PoseSequence(np.zeros((2, 0, 133, 3)), (), W, H), "largest")


def test_person_boxes_zero_where_absent():
    seq = _three_people_seq()
    boxes = person_boxes(seq)
    assert boxes.shape == (10, 3, 4)
    assert not boxes[:2, 2].any() and (boxes[2:, 2, 2] > boxes[2:, 2, 0]).all()
