"""Pixel tests of the official skeleton drawing (official: wan/modules/animate/preprocess/human_visualization.py,
draw_aapose_by_meta_new)."""
from __future__ import annotations

import numpy as np
import pytest

from wan_animate_kit.preprocess import pose_types as pt
from wan_animate_kit.preprocess.keypoints import BODY20_COLORS, BODY20_LIMBS, HAND_EDGES, to_body20
from wan_animate_kit.preprocess.pose_types import PoseSequence
from wan_animate_kit.preprocess.render import (HAND_EDGE_COLORS, BodyHold, iter_pose_chunks, render_pose_frame,
                                               render_pose_sequence, iter_pose_frames,
                                               sequence_keypoints_for_canvas, stick_width_for)
from wan_animate_kit.preprocess.resolution import letterbox_geometry, padding_resize


def standing_person(cx: float = 640.0, top: float = 120.0, s: float = 1.0) -> np.ndarray:
    """A frontal T-pose-ish person [133, 3] with every point confident; face and hands placed too."""
    k = np.zeros((133, 3), np.float32)

    def put(i, x, y, c=1.0):
        k[i] = (cx + x * s, top + y * s, c)

    put(pt.NOSE, 0, 0)
    put(pt.L_EYE, 12, -10); put(pt.R_EYE, -12, -10)
    put(pt.L_EAR, 25, -5); put(pt.R_EAR, -25, -5)
    put(pt.L_SHOULDER, 70, 80); put(pt.R_SHOULDER, -70, 80)
    put(pt.L_ELBOW, 190, 80); put(pt.R_ELBOW, -190, 80)     # horizontal upper arms
    put(pt.L_WRIST, 300, 80); put(pt.R_WRIST, -300, 80)
    put(pt.L_HIP, 45, 280); put(pt.R_HIP, -45, 280)
    put(pt.L_KNEE, 50, 400); put(pt.R_KNEE, -50, 400)
    put(pt.L_ANKLE, 50, 520); put(pt.R_ANKLE, -50, 520)
    put(pt.L_BIG_TOE, 70, 560); put(pt.L_SMALL_TOE, 80, 555); put(pt.L_HEEL, 45, 540)
    put(pt.R_BIG_TOE, -70, 560); put(pt.R_SMALL_TOE, -80, 555); put(pt.R_HEEL, -45, 540)
    # face landmarks: a ring left of the head, far from every body point and limb
    ang = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    k[pt.FACE, 0] = cx - 200 * s + 20 * s * np.cos(ang)
    k[pt.FACE, 1] = top - 60 * s + 20 * s * np.sin(ang)
    k[pt.FACE, 2] = 1.0
    # hands: fingers fanning out from the wrists
    for hand, sign in ((pt.LEFT_HAND, 1), (pt.RIGHT_HAND, -1)):
        pts = np.zeros((21, 3), np.float32)
        pts[0] = (cx + sign * 300 * s, top + 80 * s, 1.0)
        for f in range(5):
            for j in range(4):
                pts[1 + 4 * f + j] = (cx + sign * (310 + 12 * (j + 1)) * s, top + (60 + 10 * f) * s, 1.0)
        k[hand] = pts
    return k


def limb_color(i: int) -> tuple[int, int, int]:
    return tuple(int(c * 0.6) for c in BODY20_COLORS[i])


def mid(k: np.ndarray, a: int, b: int) -> tuple[int, int]:
    return int((k[a, 0] + k[b, 0]) / 2), int((k[a, 1] + k[b, 1]) / 2)


def test_canvas_black_rgb_uint8():
    img = render_pose_frame(np.zeros((133, 3), np.float32), 320, 200)
    assert img.shape == (200, 320, 3) and img.dtype == np.uint8 and img.max() == 0


def test_stick_width_formula():
    assert stick_width_for(1280, 720) == 2
    assert stick_width_for(1920, 1080) == 4
    assert stick_width_for(640, 360) == 1
    assert stick_width_for(100, 100) == 1


def test_limb_colours_are_dimmed_and_joints_full():
    k = standing_person()
    img = render_pose_frame(k, 1280, 720)
    # right upper arm: body20 limb index 2 = (RShoulder, RElbow)
    x, y = mid(k, pt.R_SHOULDER, pt.R_ELBOW)
    assert tuple(img[y, x]) == limb_color(2)
    # left lower arm: limb 5 (LElbow, LWrist)
    x, y = mid(k, pt.L_ELBOW, pt.L_WRIST)
    assert tuple(img[y, x]) == limb_color(5)
    # joints in their full colour: body20 joint 3 = RElbow, joint 7 = LWrist is covered by the hand
    ex, ey = int(k[pt.R_ELBOW, 0]), int(k[pt.R_ELBOW, 1])
    assert tuple(img[ey, ex]) == tuple(BODY20_COLORS[3])
    nx, ny = int(k[pt.NOSE, 0]), int(k[pt.NOSE, 1])
    assert tuple(img[ny, nx]) == tuple(BODY20_COLORS[0])


@pytest.mark.parametrize("w,h", [(1280, 720), (1920, 1080)])
def test_limb_width_follows_stick_width(w, h):
    k = standing_person(cx=w / 2)
    img = render_pose_frame(k, w, h)
    sw = stick_width_for(w, h)
    x, _ = mid(k, pt.R_SHOULDER, pt.R_ELBOW)
    col = img[:, x]
    lit = np.where((col == limb_color(2)).all(axis=1))[0]
    assert lit.size in (2 * sw + 1, 2 * sw + 2), lit
    assert lit.max() - lit.min() + 1 == lit.size  # one contiguous band


def test_low_confidence_limb_not_drawn():
    k = standing_person()
    k[pt.R_ELBOW, 2] = 0.45  # body20 RElbow score 0.45 < 0.5
    img = render_pose_frame(k, 1280, 720)
    x, y = mid(k, pt.R_SHOULDER, pt.R_ELBOW)
    assert tuple(img[y, x]) == (0, 0, 0)
    x, y = mid(k, pt.R_ELBOW, pt.R_WRIST)
    assert tuple(img[y, x]) == (0, 0, 0)
    ex, ey = int(k[pt.R_ELBOW, 0]), int(k[pt.R_ELBOW, 1])
    assert tuple(img[ey, ex]) == (0, 0, 0)
    # the other arm is still there
    x, y = mid(k, pt.L_SHOULDER, pt.L_ELBOW)
    assert tuple(img[y, x]) == limb_color(4)
    # exactly at the threshold it is drawn
    k[pt.R_ELBOW, 2] = 0.5
    img = render_pose_frame(k, 1280, 720)
    x, y = mid(k, pt.R_SHOULDER, pt.R_ELBOW)
    assert tuple(img[y, x]) == limb_color(2)


def test_face_landmarks_not_drawn_head_points_drawn():
    k = standing_person()
    img = render_pose_frame(k, 1280, 720)
    x0, x1 = int(k[pt.FACE, 0].min()) - 3, int(k[pt.FACE, 0].max()) + 3
    y0, y1 = int(k[pt.FACE, 1].min()) - 3, int(k[pt.FACE, 1].max()) + 3
    assert img[y0:y1, x0:x1].max() == 0
    # the head (nose-eye) limb is drawn, and the eyes
    x, y = mid(k, pt.NOSE, pt.R_EYE)
    assert img[y, x].any()
    no_head = render_pose_frame(k, 1280, 720, draw_head=False)
    assert not no_head[y, x].any()
    nx, ny = int(k[pt.NOSE, 0]), int(k[pt.NOSE, 1])
    assert not no_head[ny, nx].any()


def test_hips_hang_from_neck_without_hip_line():
    k = standing_person()
    img = render_pose_frame(k, 1280, 720)
    neck = (k[pt.L_SHOULDER] + k[pt.R_SHOULDER]) / 2
    i_rhip = BODY20_LIMBS.index((1, 8))
    i_lhip = BODY20_LIMBS.index((1, 11))
    for hip, idx in ((pt.R_HIP, i_rhip), (pt.L_HIP, i_lhip)):
        x, y = int((neck[0] + k[hip, 0]) / 2), int((neck[1] + k[hip, 1]) / 2)
        assert tuple(img[y, x]) == limb_color(idx)
    # nothing between the hips
    hx = int((k[pt.L_HIP, 0] + k[pt.R_HIP, 0]) / 2)
    hy = int(k[pt.L_HIP, 1])
    assert not img[hy - 1:hy + 2, hx - 10:hx + 10].any()


def test_hands_drawn_rainbow_with_blue_joints():
    k = standing_person()
    img = render_pose_frame(k, 1280, 720)
    hand = k[pt.RIGHT_HAND]
    tip = hand[4]  # thumb tip
    assert tuple(img[int(tip[1]), int(tip[0])]) == (0, 0, 255)
    # middle of the 2-3 edge (edge index 2) has its rainbow colour
    a, b = hand[2], hand[3]
    assert HAND_EDGES[2] == (2, 3)
    x = int((a[0] + b[0]) / 2)
    y = int(a[1])
    assert tuple(img[y, x]) == HAND_EDGE_COLORS[2] == (255, 153, 0)
    assert HAND_EDGE_COLORS[0] == (255, 0, 0)
    assert len(set(HAND_EDGE_COLORS)) == len(HAND_EDGES)
    off = render_pose_frame(k, 1280, 720, draw_hands=False)
    assert not off[y, x].any()


def test_hand_points_at_origin_or_low_score_skipped():
    k = np.zeros((133, 3), np.float32)
    k[pt.LEFT_HAND] = standing_person()[pt.LEFT_HAND]
    k[pt.LEFT_HAND.start + 4] = (0.0, 0.0, 1.0)   # at the origin: skipped
    k[pt.LEFT_HAND.start + 8, 2] = 0.3            # low score: skipped
    img = render_pose_frame(k, 1280, 720)
    assert not img[:5, :5].any()
    p = k[pt.LEFT_HAND.start + 8]
    assert not img[int(p[1]), int(p[0])].any()
    p = k[pt.LEFT_HAND.start + 12]
    assert tuple(img[int(p[1]), int(p[0])]) == (0, 0, 255)


def test_letterboxed_placement_matches_padding_resize():
    src_w, src_h, dst_w, dst_h = 1024, 768, 1104, 816  # 4:3 into the official 4:3 size: 8 px side bars
    k = standing_person(cx=512, top=130, s=0.9)
    seq = PoseSequence(k[None, None], (0,), src_w, src_h)
    frames = render_pose_sequence(seq, dst_w, dst_h)
    assert frames.shape == (1, dst_h, dst_w, 3)
    new_w, new_h, ox, oy = letterbox_geometry(src_w, src_h, dst_w, dst_h)
    assert (ox, oy) == (8, 0)
    assert not frames[0][:, :ox].any() and not frames[0][:, ox + new_w:].any()
    # the official way: draw at the source size, then padding_resize the picture
    official = padding_resize(render_pose_frame(k, src_w, src_h), dst_w, dst_h)
    body = to_body20(k)
    for joint in (3, 6, 9, 13):  # elbows, right knee, left ankle: where their colours land
        color = np.array(BODY20_COLORS[joint])
        # where the joint lands (official keypoint letterbox, AAPoseMeta.padding_resize2: one scale,
        # x * s + bar), as a pixel index (the drawing truncates)
        scale = new_h / src_h
        ex = int(body[joint, 0] * scale + ox)
        ey = int(body[joint, 1] * scale + oy)
        x0, y0 = int(ex) - 8, int(ey) - 8
        centres = []
        for img, tol in ((frames[0], 0), (official, 60)):
            win = img[y0:y0 + 17, x0:x0 + 17].astype(int)
            ys, xs = np.where(np.abs(win - color).sum(axis=2) <= tol)
            assert xs.size > 0
            centres.append((x0 + xs.mean(), y0 + ys.mean()))
        assert np.allclose(centres[0], centres[1], atol=1.0)
        assert np.allclose(centres[0], (ex, ey), atol=1.0)


def test_stretch_and_iterator_and_all_people():
    k1 = standing_person(cx=400)
    k2 = standing_person(cx=900)
    seq = PoseSequence(np.stack([k1, k2])[None].repeat(2, axis=0), (3, 7), 1280, 720, subject=1)
    subject_only = render_pose_sequence(seq)
    assert subject_only.shape == (2, 720, 1280, 3)
    x, y = mid(k2, pt.R_SHOULDER, pt.R_ELBOW)
    assert tuple(subject_only[0, y, x]) == limb_color(2)
    x1, y1 = mid(k1, pt.R_SHOULDER, pt.R_ELBOW)
    assert not subject_only[0, y1, x1].any()
    both = next(iter_pose_frames(seq, people="all"))
    assert tuple(both[y1, x1]) == limb_color(2)
    stretched = render_pose_sequence(seq, 640, 720, letterbox=False)[0]
    assert tuple(stretched[y, int(x * 640 / 1280)]) == limb_color(2)  # official x / W * W'


def test_other_canvas_draws_the_officially_rescaled_keypoints():
    """Drawing at another size = drawing, on that canvas, the keypoints moved the official way:
    stretched x / W * W' (pose2d_utils.py, normalised then AAPoseMeta.from_humanapi_meta), letterboxed
    x * s + bar with the limiting side's scale (AAPoseMeta.padding_resize2)."""
    k = standing_person(cx=700, top=100, s=0.8)
    k[pt.LEFT_HAND.start + 3] = 0  # a missing hand point stays out
    seq = PoseSequence(k[None, None], (0,), 1280, 720)
    moved = k.astype(np.float64).copy()
    moved[:, 0] = moved[:, 0] / 1280 * 832
    moved[:, 1] = moved[:, 1] / 720 * 480
    moved[pt.LEFT_HAND.start + 3] = 0
    got = render_pose_sequence(seq, 832, 480, letterbox=False)[0]
    assert (got == render_pose_frame(moved.astype(np.float32), 832, 480)).all()
    # 16:9 into 480x480: limited by the width, bars above and below
    boxed = k.astype(np.float64).copy()
    boxed[:, 0] = boxed[:, 0] * (480 / 1280)
    boxed[:, 1] = boxed[:, 1] * (480 / 1280) + int((480 - int(480 / 1280 * 720)) / 2)
    boxed[pt.LEFT_HAND.start + 3] = 0
    got = render_pose_sequence(seq, 480, 480)[0]
    assert (got == render_pose_frame(boxed.astype(np.float32), 480, 480)).all()


def test_bad_input_raises():
    with pytest.raises(ValueError, match="133"):
        render_pose_frame(np.zeros((17, 3)), 100, 100)
    with pytest.raises(ValueError, match="canvas"):
        render_pose_frame(np.zeros((133, 3)), 0, 100)


# --- the official body hold when drawing a sequence -------------------------------------------------
# Re-statement of the official rule (pose2d_utils.py, load_pose_metas_from_kp2ds_seq): the 20-point
# body is the mean of these COCO-WholeBody pairs; when min(x, y) of every body point is negative the
# frame takes the previous frame's body (scores included). The body only reads COCO 0-21, so copying
# COCO 0-22 of the previous (already held) frame gives exactly the held 20-point body.
_OFFICIAL_A = [0, 6, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3, 17, 20]
_OFFICIAL_B = [0, 5, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3, 18, 21]


def official_held(kps: np.ndarray) -> np.ndarray:
    """[T, 133, 3] -> the same frames with failed bodies replaced as the official extraction does."""
    out = np.array(kps, dtype=np.float32, copy=True)
    for t in range(1, len(out)):
        body = (kps[t, _OFFICIAL_A] + kps[t, _OFFICIAL_B]) / 2
        if body[:, :2].min(axis=1).max() < 0:
            out[t, :23] = out[t - 1, :23]
    return out


def failed_frame(cx: float) -> np.ndarray:
    """A person whose body and feet lie entirely left of the canvas (x < 0), hands inside it."""
    k = standing_person(cx=cx, top=60, s=0.25)
    k[:23, 0] -= cx + 80  # body x now in about [-155, -5]
    assert ((k[_OFFICIAL_A, :2] + k[_OFFICIAL_B, :2]) / 2).min(axis=1).max() < 0
    return k


def held_sequence_case():
    """7 frames on a 320x360 canvas: 0, 1, 4, 6 detected (moving right), 2, 3, 5 failed."""
    good = {t: standing_person(cx=120 + 12 * t, top=60, s=0.25) for t in (0, 1, 4, 6)}
    kps = np.stack([good[t] if t in good else failed_frame(150 + t) for t in range(7)])
    return PoseSequence(kps[:, None], (0,), 320, 360)


@pytest.mark.parametrize("size", [(320, 360), (640, 360)])  # own canvas; letterboxed with 160 px side bars
def test_sequence_drawing_holds_failed_bodies_as_official(size):
    seq = held_sequence_case()
    w, h = size
    want = render_pose_sequence(PoseSequence(official_held(seq.subject_keypoints)[:, None], (0,), 320, 360),
                                w, h, hold_invalid=False)
    got = render_pose_sequence(seq, w, h)
    np.testing.assert_array_equal(got, want)
    for chunk in (1, 2, 3, 4, 7, 16):  # drawn chunk by chunk: the last body is carried across chunks
        np.testing.assert_array_equal(np.concatenate(list(iter_pose_chunks(seq, chunk, w, h))), want)
    np.testing.assert_array_equal(np.stack(list(iter_pose_frames(seq, w, h))), want)
    own = render_pose_sequence(seq, w, h, hold_invalid=False)
    for t in (0, 1, 4, 6):
        np.testing.assert_array_equal(own[t], want[t])
    for t, src in ((2, 1), (3, 1), (5, 4)):  # failed frames show the body of the last good frame
        assert not np.array_equal(own[t], want[t])
        x, y = mid(standing_person(cx=120 + 12 * src, top=60, s=0.25), pt.R_HIP, pt.R_KNEE)
        x += (w - 320) // 2
        assert tuple(want[t, y, x]) == limb_color(7) and not own[t, y, x].any()
    # the hold is decided on the pose's own canvas: on the wider canvas the failed bodies would be
    # inside the picture after the letterbox shift, and are still replaced
    if w == 640:
        assert own[2].any(axis=2)[:, :160].sum() > 200 and not want[2].any(axis=2)[:, :160].any()


def test_body_hold_streams_like_the_whole_sequence_and_skips_retargeted_poses():
    seq = held_sequence_case()
    kps = seq.subject_keypoints
    want = official_held(kps)
    for cuts in ([7], [1] * 7, [2, 1, 4], [3, 0, 4]):
        hold, parts, s = BodyHold(), [], 0
        for n in cuts:
            parts.append(hold(kps[s:s + n]))
            s += n
        np.testing.assert_array_equal(np.concatenate(parts), want)
    np.testing.assert_array_equal(sequence_keypoints_for_canvas(seq, hold_invalid=True)[:, 0], want)
    np.testing.assert_array_equal(sequence_keypoints_for_canvas(seq)[:, 0], kps)  # plain: as stored
    # a failed first frame has nothing before it and keeps its own body; the next failed one takes it
    first = np.stack([failed_frame(150), failed_frame(160), standing_person(cx=150, top=60, s=0.25)])
    held = BodyHold()(first)
    np.testing.assert_array_equal(held[0], first[0])
    np.testing.assert_array_equal(held[1, :23], first[0, :23])
    np.testing.assert_array_equal(held[1, 23:], first[1, 23:])  # face and hands stay the frame's own
    # several people: each column is held on its own
    two = np.stack([kps, kps[::-1]], axis=1)
    both = BodyHold()(two)
    np.testing.assert_array_equal(both[:, 0], want)
    np.testing.assert_array_equal(both[:, 1], official_held(kps[::-1]))
    # retargeted poses were held before retargeting; the official draws the retarget output as it is
    from dataclasses import replace
    moved = replace(seq, retargeted=True)
    np.testing.assert_array_equal(render_pose_sequence(moved), render_pose_sequence(seq, hold_invalid=False))
    with pytest.raises(ValueError, match="chunk_frames"):
        next(iter_pose_chunks(seq, 0))
