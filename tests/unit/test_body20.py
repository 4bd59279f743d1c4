"""The 133 -> 20-point body conversion and its official invalid-frame rule (official:
wan/modules/animate/preprocess/pose2d_utils.py, load_pose_metas_from_kp2ds_seq)."""
from __future__ import annotations

import numpy as np

from wan_animate_kit.preprocess.keypoints import hold_invalid_bodies, invalid_body_frames, to_body20

# COCO-WholeBody index pair averaged into each of the 20 body joints, written out again here
PAIRS = [(0, 0), (5, 6), (6, 6), (8, 8), (10, 10), (5, 5), (7, 7), (9, 9), (12, 12), (14, 14), (16, 16),
         (11, 11), (13, 13), (15, 15), (2, 2), (1, 1), (4, 4), (3, 3), (17, 18), (20, 21)]


def frames(n, seed=0):
    rng = np.random.default_rng(seed)
    k = np.zeros((n, 133, 3), np.float32)
    k[..., :2] = rng.uniform(5, 600, (n, 133, 2))
    k[..., 2] = rng.uniform(0, 1, (n, 133))
    return k


def official_bodies(seq):
    """Frame by frame as the official loop does it: a body whose every joint has min(x, y) < 0
    is replaced by the body kept for the previous frame."""
    out, last = [], None
    for kp in seq:
        body = np.array([[(kp[a, c] + kp[b, c]) / 2 for c in range(3)] for a, b in PAIRS])
        if max(min(x, y) for x, y in body[:, :2]) < 0:
            body = last
        last = body
        out.append(body)
    return np.stack(out)


def off_canvas(kp, rng):
    """Every body point above (or left of) the canvas; the other coordinate anywhere."""
    neg, free = (1, 0) if rng.random() < 0.5 else (0, 1)
    kp[:23, neg] = -rng.uniform(1, 300, 23)
    kp[:23, free] = rng.uniform(-300, 300, 23)


def test_conversion_is_the_pair_mean():
    k = frames(1)[0]
    want = np.array([(k[a] + k[b]) / 2 for a, b in PAIRS])
    np.testing.assert_allclose(to_body20(k), want, rtol=1e-6)


def test_invalid_frames_take_the_previous_body_like_the_official_loop():
    rng = np.random.default_rng(3)
    k = frames(7)
    for t in (2, 3, 5):  # a run of two, then one more
        off_canvas(k[t], rng)
    k[6, :23, :2] = -5.0
    k[6, 0, :2] = (0.0, 10.0)  # one joint at x = 0, y >= 0: not every joint is negative, kept
    got = to_body20(k)
    np.testing.assert_allclose(got, official_bodies(k), rtol=1e-6)
    np.testing.assert_array_equal(got[3], got[1])  # the run repeats the last valid body, scores too
    assert not np.array_equal(got[6], got[5])
    np.testing.assert_array_equal(invalid_body_frames(k), [False, False, True, True, False, True, False])
    # the pack's old behaviour stays available
    own = to_body20(k, hold_invalid=False)
    np.testing.assert_array_equal(own[2], to_body20(k[2]))


def test_hold_on_the_133_points_matches_and_keeps_hands_and_face():
    rng = np.random.default_rng(4)
    k = frames(5, seed=1)
    off_canvas(k[1], rng)
    off_canvas(k[2], rng)
    held = hold_invalid_bodies(k)
    np.testing.assert_array_equal(held[1:3, :23], k[[0, 0], :23])
    np.testing.assert_array_equal(held[:, 23:], k[:, 23:])
    np.testing.assert_array_equal(to_body20(held, hold_invalid=False), to_body20(k))
    assert (k[1, :23, :2] < 0).any()  # the input is not modified


def test_first_frame_single_frames_and_people():
    rng = np.random.default_rng(5)
    k = frames(3, seed=2)
    off_canvas(k[0], rng)  # no previous body: the official loop fails there, the pack keeps it
    off_canvas(k[1], rng)
    got = to_body20(k)
    np.testing.assert_array_equal(got[1], got[0])
    np.testing.assert_array_equal(got[0], to_body20(k[0]))
    np.testing.assert_array_equal(to_body20(k[1]), to_body20(k, hold_invalid=False)[1])  # [133, 3]: as it is
    # [T, P, 133, 3]: each person along time
    two = np.stack([frames(3, seed=6), k], axis=1)
    got2 = to_body20(two)
    np.testing.assert_array_equal(got2[:, 1], got)
    np.testing.assert_array_equal(got2[:, 0], to_body20(two[:, 0], hold_invalid=False))
    np.testing.assert_array_equal(hold_invalid_bodies(two)[:, 1], hold_invalid_bodies(k))
