"""Tests of pose retargeting (preprocess/retarget.py, preprocess/retarget_official.py) on synthetic skeletons."""
from __future__ import annotations

import math

import numpy as np
import pytest

from wan_animate_kit.preprocess.keypoints import BODY20_LIMBS, to_body20
from wan_animate_kit.preprocess.pose_types import PoseSequence
from wan_animate_kit.preprocess.retarget import (
    BONE_NAMES, RETARGET_REPLACEMENT_WARNING, choose_anchor_frame, retarget,
)
from wan_animate_kit.preprocess.retarget_official import B20_TO_COCO

# --------------------------------------------------------------------------------------------
# synthetic skeletons
# --------------------------------------------------------------------------------------------
DRIVER = dict(shoulder=40, upper_arm=60, forearm=50, torso=100, thigh=90, calf=85, head=30, eye=8,
              ear=10, foot=20)
CHARACTER = dict(shoulder=30, upper_arm=70, forearm=60, torso=90, thigh=110, calf=100, head=40,
                 eye=10, ear=12, foot=25)
BONE_PART = ["shoulder", "shoulder", "upper_arm", "forearm", "upper_arm", "forearm", "torso", "thigh",
             "calf", "torso", "thigh", "calf", "head", "eye", "ear", "eye", "ear", "foot", "foot"]
H = math.pi / 2
STANDING = dict(r_shoulder=math.pi, r_upper_arm=H + 0.2, r_forearm=H + 0.1, l_upper_arm=H - 0.2,
                l_forearm=H - 0.1, r_torso=H + 0.15, r_thigh=H, r_calf=H, l_torso=H - 0.15, l_thigh=H,
                l_calf=H, neck_nose=-H, r_eye=-H - 0.9, r_ear=math.pi - 0.2, l_eye=-H + 0.9, l_ear=0.2,
                l_foot=H - 0.5, r_foot=H + 0.5)
HAND_OFFSETS = np.random.default_rng(0).uniform(-12, 12, (21, 2))
FACE_OFFSETS = np.random.default_rng(1).uniform(-6, 6, (68, 2))


def body20(props: dict, angles: dict | None = None, neck=(300.0, 120.0), **scale_bones) -> np.ndarray:
    """[20, 2] joint positions from bone lengths (``props`` x optional per-bone factors) and angles."""
    ang = dict(STANDING, **(angles or {}))
    ang["l_shoulder"] = ang["r_shoulder"] + math.pi  # the neck is the shoulder midpoint
    xy = np.zeros((20, 2))
    xy[1] = neck
    for b, (p, c) in enumerate(BODY20_LIMBS):
        name = BONE_NAMES[b]
        length = props[BONE_PART[b]] * scale_bones.get(name, 1.0)
        if name == "l_shoulder":
            length = props["shoulder"] * scale_bones.get("r_shoulder", 1.0)
        xy[c] = xy[p] + length * np.array([math.cos(ang[name]), math.sin(ang[name])])
    return xy


def to133(xy20: np.ndarray, conf: float = 0.9) -> np.ndarray:
    """[20, 2] body -> [133, 3] whole-body points (toes split in two, heels, face, hands)."""
    kp = np.zeros((133, 3))
    for j, c in B20_TO_COCO.items():
        kp[c, :2] = xy20[j]
    for toe, (a, b), ankle, heel in ((18, (17, 18), 13, 19), (19, (20, 21), 10, 22)):
        kp[a, :2] = xy20[toe] + (2.0, 1.0)
        kp[b, :2] = xy20[toe] - (2.0, 1.0)
        kp[heel, :2] = xy20[ankle] + (0.0, 6.0)
    kp[23:91, :2] = xy20[0] + FACE_OFFSETS
    kp[91:112, :2] = xy20[7] + HAND_OFFSETS + (0, 8)
    kp[112:133, :2] = xy20[4] + HAND_OFFSETS[::-1] + (0, 8)
    kp[:, 2] = conf
    return kp


def seq(frames: list[np.ndarray], width=640, height=480) -> PoseSequence:
    kps = np.stack(frames)[:, None].astype(np.float32)
    return PoseSequence(kps, (7,), width, height, fps=25.0)


def ground(xy20: np.ndarray, y: float) -> np.ndarray:
    """Shift a body so its lowest ankle/toe sits at ``y``."""
    return xy20 + (0.0, y - xy20[[10, 13, 18, 19], 1].max())


def out20(res) -> np.ndarray:
    return to_body20(res.poses.subject_keypoints).astype(np.float64)


def lengths(b20: np.ndarray) -> np.ndarray:
    vec = np.stack([b20[..., c, :2] - b20[..., p, :2] for p, c in BODY20_LIMBS], axis=-2)
    return np.hypot(vec[..., 0], vec[..., 1])


def angles(b20: np.ndarray) -> np.ndarray:
    vec = np.stack([b20[..., c, :2] - b20[..., p, :2] for p, c in BODY20_LIMBS], axis=-2)
    return np.arctan2(vec[..., 1], vec[..., 0])


def moving_driver(n: int = 6) -> list[np.ndarray]:
    """Driver frames with constant bone lengths: arms swing, torso shifts, feet on y=440."""
    frames = []
    for t in range(n):
        a = 0.35 * math.sin(t)
        xy = body20(DRIVER, dict(r_upper_arm=H + 0.2 + a, r_forearm=H + 0.1 + 2 * a, l_upper_arm=H - 0.2 - a,
                                 l_forearm=H - 0.4 + a, r_thigh=H + 0.1 * a, l_thigh=H - 0.1 * a,
                                 neck_nose=-H + 0.1 * a), neck=(300 + 10 * t, 120.0))
        frames.append(to133(ground(xy, 440.0)))
    return frames


REF_W, REF_H = 512, 768


def character(props=CHARACTER, angles_=None, **scale_bones) -> np.ndarray:
    return to133(ground(body20(props, angles_, neck=(256.0, 250.0), **scale_bones), 700.0))


# --------------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["improved", "official"])
@pytest.mark.parametrize("out_size", [(REF_W, REF_H), (256, 384)])
def test_every_bone_gets_the_reference_length_and_keeps_the_driver_angle(mode, out_size):
    drv = seq(moving_driver())
    ref_kp = character()
    res = retarget(drv, seq([ref_kp], REF_W, REF_H), mode=mode, out_width=out_size[0], out_height=out_size[1])
    fit = out_size[0] / REF_W
    want = lengths(to_body20(ref_kp)[None].astype(np.float64))[0] * fit
    got = out20(res)
    # official: the reference is measured on a canvas with truncated sides (int(W * scale_min)),
    # which changes its bones by up to 1/(side * scale_min) relative
    assert np.abs(lengths(got) / want - 1).max() < (1e-4 if mode == "improved" else 3e-3)
    d_ang = angles(got) - angles(to_body20(np.stack(drv.subject_keypoints)).astype(np.float64))
    assert np.abs(np.angle(np.exp(1j * d_ang))).max() < 1e-4
    assert res.body_type == "full_body"
    assert res.poses.retargeted and (res.poses.width, res.poses.height) == out_size


def test_full_body_anchor_lands_on_the_reference_feet_and_hips():
    drv = seq(moving_driver())
    ref_kp = character()
    ref20 = to_body20(ref_kp).astype(np.float64)
    for mode in ("official", "improved"):
        res = retarget(drv, seq([ref_kp], REF_W, REF_H), mode=mode, out_width=REF_W, out_height=REF_H)
        o = out20(res)[res.anchor_frame]
        tol = 1e-3 if mode == "improved" else 1.5  # official: truncated measuring canvas (see above)
        assert o[[8, 11], 0].mean() == pytest.approx(ref20[[8, 11], 0].mean(), abs=tol)
        if mode == "official":  # the frame's lower ankle on the reference's ankle-toe midpoint
            ref_ground = max((ref20[10, 1] + ref20[19, 1]) / 2, (ref20[13, 1] + ref20[18, 1]) / 2)
            assert o[[10, 13], 1].max() == pytest.approx(ref_ground, abs=tol)
        else:  # lowest foot point on the reference's lowest foot point
            assert o[[10, 13, 18, 19], 1].max() == pytest.approx(ref20[[10, 13, 18, 19], 1].max(), abs=1e-3)


def test_feet_follow_the_driver_ground_in_improved_mode_and_drift_in_official_mode():
    stand = ground(body20(DRIVER), 440.0)
    crouch = ground(body20(DRIVER, dict(r_thigh=H - 0.9, l_thigh=H - 0.7, r_calf=H + 0.9, l_calf=H + 0.8,
                                        r_torso=H + 0.4, l_torso=H + 0.1)), 440.0)
    jump = stand - (0.0, 30.0)
    drv = seq([to133(stand), to133(crouch), to133(jump), to133(stand)])
    ref = seq([character()], REF_W, REF_H)
    res = retarget(drv, ref, mode="improved", out_width=REF_W, out_height=REF_H)
    assert res.anchor_frame in (0, 3)
    low = out20(res)[:, [10, 13, 18, 19], 1].max(axis=1)
    ref_low = to_body20(character())[[10, 13, 18, 19], 1].max()
    expected = ref_low + np.array([0.0, 0.0, -30.0, 0.0]) * res.scale
    assert np.abs(low - expected).max() < 0.01
    off = retarget(drv, ref, mode="official", out_width=REF_W, out_height=REF_H)
    low_off = out20(off)[:, [10, 13], 1].max(axis=1)
    assert abs((low_off[1] - low_off[0])) > 2.0  # the official character sinks or floats when crouching


def test_first_frame_mid_turn_stretches_the_forearm_in_official_mode_only():
    frames = moving_driver(5)
    turned = body20(DRIVER, neck=(300.0, 120.0), r_shoulder=0.6, l_forearm=0.4)  # turned torso, forearm at camera
    frames[0] = to133(ground(turned, 440.0))
    drv = seq(frames)
    ref_kp = character()
    ref_len = lengths(to_body20(ref_kp)[None].astype(np.float64))[0]
    ref = seq([ref_kp], REF_W, REF_H)
    official = retarget(drv, ref, mode="official", out_width=REF_W, out_height=REF_H)
    later = lengths(out20(official))[1:]
    assert official.anchor_frame == 0
    assert (later[:, 5] > 2.0 * ref_len[5]).all()  # left forearm 2.5x too long
    assert (later[:, 3] > 2.0 * ref_len[3]).all()  # and the right one through max symmetrisation
    assert (later[:, 0] > 1.5 * ref_len[0]).all()  # shoulders too wide
    improved = retarget(drv, ref, mode="improved", out_width=REF_W, out_height=REF_H)
    assert improved.anchor_frame != 0
    assert np.abs(lengths(out20(improved))[1:] - ref_len).max() < 0.01


def test_anchor_frame_choice_prefers_extended_frontal_frames_and_can_be_forced():
    frames = moving_driver(4)
    frames[0] = to133(ground(body20(DRIVER, r_shoulder=0.5, l_forearm=0.4, r_forearm=0.5), 440.0))
    b20 = to_body20(np.stack(frames))
    best, scores = choose_anchor_frame(b20, 0.5)
    assert best != 0 and scores[0] < scores[best]
    frames[2][[5, 6], 2] = 0.1  # no neck in frame 2
    _, scores = choose_anchor_frame(to_body20(np.stack(frames)), 0.5)
    assert scores[2] == -np.inf
    res = retarget(seq(frames), seq([character()], REF_W, REF_H), anchor_frame=0, mode="improved", out_width=REF_W,
                   out_height=REF_H)
    assert res.anchor_frame == 0


# --------------------------------------------------------------------------------------------
# body types
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("hidden, kind", [([15, 16, 17, 18, 19, 20, 21, 22], "three_quarter"),
                                          ([11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22], "half_body")])
def test_reference_without_legs_falls_back_to_a_neck_anchor(hidden, kind):
    ref_kp = character()
    ref_kp[hidden, 2] = 0.0
    ref20 = to_body20(ref_kp)
    for mode in ("improved", "official"):
        res = retarget(seq(moving_driver()), seq([ref_kp], REF_W, REF_H), mode=mode, out_width=256,
                       out_height=384)
        assert res.body_type == kind
        assert any("reference" in w and "neck" in w for w in res.warnings)
        neck = out20(res)[res.anchor_frame, 1, :2]
        np.testing.assert_allclose(neck, ref20[1, :2] * 0.5, atol=1e-3 if mode == "improved" else 1.0)
        assert np.isfinite(res.ratios).all() and (res.ratios > 0).all()
        assert np.isfinite(res.poses.subject_keypoints).all()


def test_driver_without_legs_in_frame_anchors_on_the_neck():
    frames = moving_driver(3)
    for f in frames:
        f[[13, 14, 15, 16, 17, 18, 19, 20, 21, 22], 2] = 0.1
    ref_kp = character()
    res = retarget(seq(frames), seq([ref_kp], REF_W, REF_H), mode="improved", out_width=REF_W, out_height=REF_H)
    assert res.body_type == "three_quarter"
    np.testing.assert_allclose(out20(res)[res.anchor_frame, 1, :2], to_body20(ref_kp)[1, :2], atol=1e-3)


# --------------------------------------------------------------------------------------------
# ratios
# --------------------------------------------------------------------------------------------
def test_tpose_pair_sets_the_ratios():
    t_arms = dict(r_upper_arm=math.pi, r_forearm=math.pi, l_upper_arm=0.0, l_forearm=0.0)
    same = {k: v * 1.2 for k, v in DRIVER.items()}  # the character has the driver's proportions
    drv = seq(moving_driver(3))
    ref = seq([to133(ground(body20(same, neck=(256.0, 250.0)), 700.0))], REF_W, REF_H)
    drv_t = seq([to133(ground(body20(DRIVER, t_arms, neck=(320.0, 100.0)), 450.0))])
    long_arms = {"r_upper_arm": 1.3, "r_forearm": 1.3, "l_upper_arm": 1.3, "l_forearm": 1.3}
    ref_t = seq([to133(ground(body20({k: 2 * v for k, v in same.items()}, t_arms, neck=(500.0, 150.0),
                                     **long_arms), 900.0))], 1000, 1000)
    arms = [2, 3, 4, 5]
    rest = [i for i in range(19) if i not in arms]
    for mode in ("improved", "official"):
        plain = retarget(drv, ref, mode=mode, out_width=REF_W, out_height=REF_H)
        # float32 input; official: truncated measuring canvas
        np.testing.assert_allclose(plain.relative_ratios, 1.0, atol=1e-4 if mode == "improved" else 3e-3)
        res = retarget(drv, ref, mode=mode, out_width=REF_W, out_height=REF_H, ref_tpose=ref_t, drv_tpose=drv_t)
        tol = 1e-4 if mode == "improved" else 3e-3  # official: the T-pose too is measured truncated
        np.testing.assert_allclose(res.relative_ratios[arms], 1.3, atol=tol)
        np.testing.assert_allclose(res.relative_ratios[rest], 1.0, atol=tol)
        np.testing.assert_allclose(res.ratios, res.relative_ratios * res.scale)
        assert res.scale == pytest.approx(1.2, rel=1e-6)
        got = lengths(out20(res))
        drv_len = lengths(to_body20(drv.subject_keypoints).astype(np.float64))
        np.testing.assert_allclose(got[:, arms], drv_len[:, arms] * 1.3 * 1.2, atol=0.01, rtol=tol)


def test_part_scale_multiplies_head_and_leg_bones():
    drv = seq(moving_driver(3))
    ref_kp = character()
    ref_len = lengths(to_body20(ref_kp)[None].astype(np.float64))[0]
    res = retarget(drv, seq([ref_kp], REF_W, REF_H), mode="improved", out_width=REF_W, out_height=REF_H,
                   part_scale={"head": 2.0, "legs": 0.8})
    got = lengths(out20(res))
    factor = np.ones(19)
    factor[[12, 13, 14, 15, 16]] = 2.0
    factor[[7, 8, 10, 11, 17, 18]] = 0.8
    assert np.abs(got - ref_len * factor).max() < 0.01


def test_improved_mode_clamps_wild_ratios_and_official_does_not():
    ref_kp = character(r_forearm=3.0, l_forearm=3.0)
    drv = seq(moving_driver(3))
    res = retarget(drv, seq([ref_kp], REF_W, REF_H), mode="improved", out_width=REF_W, out_height=REF_H)
    raw = CHARACTER["forearm"] * 3.0 / DRIVER["forearm"] / res.scale
    assert raw > 2.0
    assert res.relative_ratios[3] == pytest.approx(2.0) and res.relative_ratios[5] == pytest.approx(2.0)
    assert any("forearm" in w and "clamped" in w for w in res.warnings)
    off = retarget(drv, seq([ref_kp], REF_W, REF_H), mode="official", out_width=REF_W, out_height=REF_H)
    assert off.relative_ratios[3] == pytest.approx(raw, rel=3e-3)  # truncated measuring canvas


@pytest.mark.parametrize("mode", ["improved", "official"])
def test_feet_are_clamped_to_half_the_calf(mode):
    ref_kp = character(l_foot=2.4, r_foot=2.4)  # feet of 60 px on 100 px calves
    drv = seq(moving_driver(3))
    res = retarget(drv, seq([ref_kp], REF_W, REF_H), mode=mode, out_width=REF_W, out_height=REF_H,
                   ratio_clamp=(0.5, 4.0))  # let the foot ratio through the clamp
    got = lengths(out20(res))
    np.testing.assert_allclose(got[:, [17, 18]], 0.5 * got[:, [11, 8]], atol=0.01)
    out = res.poses.subject_keypoints.astype(np.float64)
    np.testing.assert_allclose(out[:, [17, 18], :2].mean(axis=1), out20(res)[:, 18, :2], atol=1e-3)


def test_missing_reference_bone_takes_its_twin_then_the_torso():
    ref_kp = character()
    ref_kp[10, 2] = 0.0  # right wrist unseen: right forearm missing
    res = retarget(seq(moving_driver(3)), seq([ref_kp], REF_W, REF_H), mode="improved", out_width=REF_W, out_height=REF_H)
    assert res.ratios[3] == pytest.approx(res.ratios[5])
    ref_len = lengths(to_body20(character())[None].astype(np.float64))[0]
    assert np.abs(lengths(out20(res))[:, 3] - ref_len[5]).max() < 0.01
    ref_kp[9, 2] = 0.0  # both wrists unseen: forearms take the torso ratio
    res = retarget(seq(moving_driver(3)), seq([ref_kp], REF_W, REF_H), mode="improved", out_width=REF_W, out_height=REF_H)
    assert res.relative_ratios[3] == pytest.approx(res.relative_ratios[6])
    assert any("forearm" in w for w in res.warnings)


# --------------------------------------------------------------------------------------------
# the 133 points
# --------------------------------------------------------------------------------------------
def test_low_confidence_points_are_carried_through_untouched():
    frames = moving_driver(3)
    frames[1][7, 2] = 0.3  # left elbow
    frames[1][14, 2] = 0.45  # right knee
    frames[1][95:100, 2] = 0.2  # some left-hand points
    frames[2][40, 2] = 0.1  # a face landmark
    drv = seq(frames)
    res = retarget(drv, seq([character()], REF_W, REF_H), mode="improved", out_width=256, out_height=384)
    out = res.poses.subject_keypoints
    src = drv.subject_keypoints
    np.testing.assert_array_equal(out[..., 2], src[..., 2])
    for t, idx in ((1, 7), (1, 14), (1, 97), (2, 40)):
        np.testing.assert_array_equal(out[t, idx], src[t, idx])
    assert not np.allclose(out[1, 9, :2], src[1, 9, :2])  # the confident wrist still moved
    # the wrist hangs from the shoulder with the mean arm ratio (its elbow is not there)
    r = (res.ratios[4] + res.ratios[5]) / 2 * 0.5
    want = np.hypot(*(src[1, 9, :2] - src[1, 5, :2])) * r
    assert np.hypot(*(out[1, 9, :2] - out[1, 5, :2])) == pytest.approx(want, abs=0.01)


def test_hands_face_and_feet_ride_on_their_joints():
    drv = seq(moving_driver(3))
    res = retarget(drv, seq([character()], REF_W, REF_H), mode="improved", out_width=REF_W, out_height=REF_H)
    out = res.poses.subject_keypoints.astype(np.float64)
    src = drv.subject_keypoints.astype(np.float64)
    for hand, wrist, bone in ((slice(91, 112), 9, 5), (slice(112, 133), 10, 3)):
        np.testing.assert_allclose(out[:, hand, :2] - out[:, wrist, None, :2],
                                   (src[:, hand, :2] - src[:, wrist, None, :2]) * res.ratios[bone], atol=1e-3)
    face_k = (res.ratios[13] + res.ratios[15]) / 2
    np.testing.assert_allclose(out[:, 23:91, :2] - out[:, 0, None, :2],
                               (src[:, 23:91, :2] - src[:, 0, None, :2]) * face_k, atol=1e-3)
    o20 = out20(res)
    np.testing.assert_allclose(out[:, [17, 18], :2].mean(axis=1), o20[:, 18, :2], atol=1e-3)
    np.testing.assert_allclose(out[:, [20, 21], :2].mean(axis=1), o20[:, 19, :2], atol=1e-3)


def test_crossed_hands_are_swapped_back():
    frames = moving_driver(2)
    f = frames[1]
    f[91:112], f[112:133] = f[112:133].copy(), f[91:112].copy()
    for mode in ("improved", "official"):
        res = retarget(seq(frames), seq([character()], REF_W, REF_H), mode=mode, out_width=REF_W,
                       out_height=REF_H)
        out = res.poses.subject_keypoints
        assert np.hypot(*(out[1, 91, :2] - out[1, 9, :2])) < np.hypot(*(out[1, 91, :2] - out[1, 10, :2]))


def test_only_the_subject_is_kept():
    other = [to133(ground(body20(CHARACTER, neck=(150.0, 100.0)), 450.0)) for _ in range(3)]
    mine = moving_driver(3)
    kps = np.stack([np.stack(other), np.stack(mine)], axis=1).astype(np.float32)
    drv = PoseSequence(kps, (3, 9), 640, 480, subject=1, fps=30.0)
    ref = seq([character()], REF_W, REF_H)
    res = retarget(drv, ref, mode="improved", out_width=REF_W, out_height=REF_H)
    p = res.poses
    assert p.num_people == 1 and p.track_ids == (9,) and p.subject == 0 and p.fps == 30.0
    assert p.detected.shape == (3, 1) and p.retargeted
    alone = retarget(seq(mine), ref, mode="improved", out_width=REF_W, out_height=REF_H)
    np.testing.assert_allclose(p.subject_keypoints, alone.poses.subject_keypoints, atol=1e-4)


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------
def test_errors_name_the_bad_input():
    drv = seq(moving_driver(2))
    ref = seq([character()], REF_W, REF_H)
    empty_ref = PoseSequence(np.zeros((1, 0, 133, 3), np.float32), (), REF_W, REF_H)
    with pytest.raises(ValueError, match="reference: no person"):
        retarget(drv, empty_ref, out_width=REF_W, out_height=REF_H)
    with pytest.raises(ValueError, match="reference: no person"):
        retarget(drv, seq([np.zeros((133, 3))], REF_W, REF_H), out_width=REF_W, out_height=REF_H)
    with pytest.raises(ValueError, match="driving"):
        retarget(PoseSequence(np.zeros((2, 0, 133, 3), np.float32), (), 640, 480), ref,
                 out_width=REF_W, out_height=REF_H)
    with pytest.raises(ValueError, match="out_width"):
        retarget(drv, ref, out_width=0, out_height=REF_H)
    with pytest.raises(ValueError, match="out_height"):
        retarget(drv, ref, out_width=REF_W, out_height=-4)
    with pytest.raises(ValueError, match="canvas mismatch"):
        retarget(drv, ref, out_width=512, out_height=512)
    with pytest.raises(ValueError, match="ref_tpose and drv_tpose"):
        retarget(drv, ref, out_width=REF_W, out_height=REF_H, ref_tpose=ref)
    with pytest.raises(ValueError, match="mode"):
        retarget(drv, ref, mode="fancy", out_width=REF_W, out_height=REF_H)
    with pytest.raises(ValueError, match="part_scale"):
        retarget(drv, ref, out_width=REF_W, out_height=REF_H, part_scale={"tail": 2.0})
    with pytest.raises(ValueError, match="anchor_frame"):
        retarget(drv, ref, out_width=REF_W, out_height=REF_H, anchor_frame=5)
    with pytest.raises(ValueError, match="ratio_clamp"):
        retarget(drv, ref, out_width=REF_W, out_height=REF_H, ratio_clamp=(1.5, 2.0))
    # official T-pose route whose scale falls back to the canvas area: the size correction needs
    # the edited head and shoulders to have a width
    flat = character()
    flat[0, 2] = 0.3  # weak nose: no height scale
    flat[[0, 1, 2, 3, 4], 0] = 256.0
    with pytest.raises(ValueError, match="ref_tpose: the head or the shoulders"):
        retarget(drv, ref, out_width=REF_W, out_height=REF_H, ref_tpose=seq([flat], REF_W, REF_H),
                 drv_tpose=seq([moving_driver(1)[0]]))
    no_neck = character()
    no_neck[[5, 6], 2] = 0.0
    with pytest.raises(ValueError, match="reference: the character's shoulders"):
        retarget(drv, seq([no_neck], REF_W, REF_H), out_width=REF_W, out_height=REF_H)


def test_replacement_warning_text():
    assert isinstance(RETARGET_REPLACEMENT_WARNING, str)
    assert "Replacement" in RETARGET_REPLACEMENT_WARNING and "Animation" in RETARGET_REPLACEMENT_WARNING


def test_old_mode_name_default_is_the_improved_mode():
    """The pack's own mode was called 'default'; saved workflows and scripts may still pass that name."""
    from wan_animate_kit.preprocess.retarget import MODES, canonical_mode

    assert MODES == ("improved", "official") and "default" not in MODES
    assert canonical_mode("default") == "improved" and canonical_mode("official") == "official"
    drv, ref = seq(moving_driver(4)), seq([character()], REF_W, REF_H)
    old = retarget(drv, ref, mode="default", out_width=REF_W, out_height=REF_H)
    new = retarget(drv, ref, mode="improved", out_width=REF_W, out_height=REF_H)
    official = retarget(drv, ref, out_width=REF_W, out_height=REF_H)
    assert old.mode == new.mode == "improved" and official.mode == "official"
    np.testing.assert_array_equal(old.poses.subject_keypoints, new.poses.subject_keypoints)
    assert not np.allclose(official.poses.subject_keypoints, new.poses.subject_keypoints)
    with pytest.raises(ValueError, match="'improved'"):
        retarget(drv, ref, mode="Default", out_width=REF_W, out_height=REF_H)


@pytest.mark.parametrize("mode", ["official", "improved"])
def test_a_reference_on_another_canvas_is_placed_like_a_letterboxed_reference_image(mode):
    """A reference pose on a canvas of another aspect is placed on the output canvas with the pack's
    one keypoint letterbox (the official padding_resize geometry, whole-pixel bars): the same result
    as a reference pose already letterboxed to the output canvas."""
    from wan_animate_kit.preprocess.resolution import letterbox_geometry, letterbox_keypoints

    drv = seq(moving_driver())
    ref_kp = character()
    out_w, out_h = 600, 461  # within the aspect tolerance; the centre bar is 5.5 px, the official int(5.5) = 5
    assert letterbox_geometry(640, 480, out_w, out_h) == (600, 450, 0, 5)
    placed = letterbox_keypoints(ref_kp[None], 640, 480, out_w, out_h)[0]
    a = retarget(drv, seq([ref_kp]), mode=mode, out_width=out_w, out_height=out_h)
    b = retarget(drv, seq([placed], out_w, out_h), mode=mode, out_width=out_w, out_height=out_h)
    np.testing.assert_allclose(a.poses.subject_keypoints, b.poses.subject_keypoints, atol=1e-3)
