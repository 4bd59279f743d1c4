"""Official-mode retargeting against an independent, step-by-step re-statement of the official
algorithm (official: wan/modules/animate/preprocess/retarget_pose.py, get_retarget_pose /
retarget_pose / write_to_poses / get_scaled_pose; the body conversion and its invalid-frame rule:
pose2d_utils.py, load_pose_metas_from_kp2ds_seq).

The re-statement below works like the official code does: normalised coordinates, per-frame
Python loops, bones rebuilt from a length and an angle (atan2 / cos / sin), the reference measured
on a canvas of int(W * scale_min) x int(H * scale_min), hands through the official left/right
bookkeeping. It shares no code with the pack.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from test_retarget import BONE_PART, CHARACTER, DRIVER, STANDING, to133  # skeleton builders
from wan_animate_kit.preprocess.keypoints import BODY20_LIMBS, hold_invalid_bodies
from wan_animate_kit.preprocess.pose_types import PoseSequence
from wan_animate_kit.preprocess.retarget import retarget

# COCO-WholeBody index pair averaged into each of the 20 body joints (official "AAPose" body)
BODY_FROM_COCO = [(0, 0), (5, 6), (6, 6), (8, 8), (10, 10), (5, 5), (7, 7), (9, 9), (12, 12), (14, 14),
                  (16, 16), (11, 11), (13, 13), (15, 15), (2, 2), (1, 1), (4, 4), (3, 3), (17, 18), (20, 21)]
# bones as (start joint, end joint), 0-based, in the official drawing / rebuilding order
BONES = [(1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12),
         (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (13, 18), (10, 19)]
MAX_PAIRS = [(0, 1), (2, 4), (3, 5), (6, 9), (7, 10), (8, 11), (17, 18)]
MEAN_PAIRS = [(13, 15), (14, 16)]


# --------------------------------------------------------------------------------------------
# the official algorithm, re-stated
# --------------------------------------------------------------------------------------------
def body_of(kp, w, h):
    """Normalised [x, y, score] per body joint."""
    out = []
    for a, b in BODY_FROM_COCO:
        x = (float(kp[a, 0]) / w + float(kp[b, 0]) / w) / 2
        y = (float(kp[a, 1]) / h + float(kp[b, 1]) / h) / 2
        out.append([x, y, (float(kp[a, 2]) + float(kp[b, 2])) / 2])
    return out


def hand_of(kp, first, w, h):
    return [[float(kp[i, 0]) / w, float(kp[i, 1]) / h, float(kp[i, 2])] for i in range(first, first + 21)]


def ref_scale_min(src, dst, sw, sh, dw, dh, with_fallback=False):
    for a, b in ((10, 13), (8, 11)):
        if all(p[i][2] > 0.5 for p in (src, dst) for i in (0, a, b)):
            hs = sh * abs((src[a][1] + src[b][1]) / 2 - src[0][1])
            hd = dh * abs((dst[a][1] + dst[b][1]) / 2 - dst[0][1])
            return (hs / hd, False) if with_fallback else hs / hd
    s = math.sqrt(sh * sw) / math.sqrt(dh * dw)
    return (s, True) if with_fallback else s


def size_change(body, w, h, edited, ew, eh):
    """Head width (normalised x extent of nose, eyes, ears) and shoulder length (pixels) of a body
    over its edited version: the larger ratio."""
    xs, exs = [body[i][0] for i in (0, 14, 15, 16, 17)], [edited[i][0] for i in (0, 14, 15, 16, 17)]
    sh = math.hypot((body[5][0] - body[2][0]) * w, (body[5][1] - body[2][1]) * h)
    esh = math.hypot((edited[5][0] - edited[2][0]) * ew, (edited[5][1] - edited[2][1]) * eh)
    return max((max(xs) - min(xs)) / (max(exs) - min(exs)), sh / esh)


def kind_of(body):
    def there(i):
        return body[i][1] <= 1 and body[i][2] >= 0.4
    if there(10) and there(13) and there(8) and there(11):
        return 2
    return 1 if there(8) and there(11) else 0


def rebuild(px, ratios, clamp_feet):
    """Joints in pixels -> rebuilt joints: each bone keeps its angle, length x ratio."""
    lengths, angs = [], []
    for i, (a, b) in enumerate(BONES):
        dx, dy = px[a][0] - px[b][0], px[a][1] - px[b][1]
        lengths.append(math.sqrt(dx * dx + dy * dy) * ratios[i])
        angs.append(math.atan2(dy, dx))
    if clamp_feet:
        for foot, calf in ((18, 8), (17, 11)):
            if lengths[foot] > 0.5 * lengths[calf]:
                lengths[foot] = 0.5 * lengths[calf]
    new = [list(p[:2]) for p in px]
    for i, (a, b) in enumerate(BONES):
        new[b] = [new[a][0] - lengths[i] * math.cos(angs[i]), new[a][1] - lengths[i] * math.sin(angs[i])]
    return new


def official_retarget(drv_frames, dw, dh, ref_kp, rw, rh, edit=None):
    """Per frame: (body [20, 3] in reference pixels, left-hand list, right-hand list) as the
    official code labels them (None for a dropped hand point). ``edit``: (driving edited pose,
    its width, height, reference edited pose, its width, height) for the edited-pose route."""
    bodies = []
    for kp in drv_frames:
        body = body_of(kp, dw, dh)
        if max(min(p[0], p[1]) for p in body) < 0:
            body = bodies[-1]  # the whole body off the canvas's top/left: previous frame's body
        bodies.append(body)
    src, dst = bodies[0], body_of(ref_kp, rw, rh)
    s = ref_scale_min(src, dst, dw, dh, rw, rh)
    mw, mh = int(rw * s), int(rh * s)  # the reference's measuring canvas, truncated
    ratios = []
    for a, b in BONES:
        ld = math.hypot((dst[a][0] - dst[b][0]) * mw, (dst[a][1] - dst[b][1]) * mh)
        ls = math.hypot((src[a][0] - src[b][0]) * dw, (src[a][1] - src[b][1]) * dh)
        ratios.append(ld / ls)
    if edit is not None:  # bone ratios from the edited pair instead, measured the same way
        se_kp, sew, seh, de_kp, dew, deh = edit
        src_e, dst_e = body_of(se_kp, sew, seh), body_of(de_kp, dew, deh)
        s_e, fell_back = ref_scale_min(src_e, dst_e, sew, seh, dew, deh, with_fallback=True)
        k_src = size_change(src, dw, dh, src_e, sew, seh) if fell_back else 1
        k_dst = size_change(dst, rw, rh, dst_e, dew, deh) if fell_back else 1
        mwe, mhe = int(dew * s_e), int(deh * s_e)
        ratios = []
        for a, b in BONES:
            ld = math.hypot((dst_e[a][0] - dst_e[b][0]) * mwe, (dst_e[a][1] - dst_e[b][1]) * mhe)
            ls = math.hypot((src_e[a][0] - src_e[b][0]) * sew, (src_e[a][1] - src_e[b][1]) * seh)
            ratios.append(ld * k_dst / ls / k_src)
    for a, b in MAX_PAIRS:
        ratios[a] = ratios[b] = max(ratios[a], ratios[b])
    for a, b in MEAN_PAIRS:
        ratios[a] = ratios[b] = (ratios[a] + ratios[b]) / 2
    full = min(kind_of(dst), kind_of(src)) == 2
    first = rebuild([[p[0] * dw, p[1] * dh] for p in src], ratios, clamp_feet=False)
    if full:
        ground = max((dst[10][1] + dst[19][1]) / 2, (dst[13][1] + dst[18][1]) / 2) * mh
        delta = [(first[8][0] + first[11][0]) / 2 - (dst[8][0] + dst[11][0]) * mw / 2,
                 max(first[10][1], first[13][1]) - ground]
    else:
        delta = [first[1][0] - dst[1][0] * mw, first[1][1] - dst[1][1] * mh]

    k = max(ratios[0], ratios[1]) / s
    results = []
    for t, kp in enumerate(drv_frames):
        px = [[p[0] * dw, p[1] * dh, p[2]] for p in bodies[t]]
        new = rebuild(px, ratios, clamp_feet=True)
        out = [[(new[j][0] - delta[0]) / s, (new[j][1] - delta[1]) / s, px[j][2]] for j in range(20)]

        def scaled(hand):  # about the hand's root, in normalised units; dropped below 0.4
            rx, ry = hand[0][0], hand[0][1]
            return [None if p[2] < 0.4 else [p[0] * k - rx * (k - 1), p[1] * k - ry * (k - 1), p[2]]
                    for p in hand]

        # deal_hand_keypoints returns (right, left) and the caller unpacks (left, right):
        # "left" below is the COCO right hand, "right" the COCO left hand
        left, right = scaled(hand_of(kp, 112, dw, dh)), scaled(hand_of(kp, 91, dw, dh))
        d_left = [out[4][0] - px[4][0], out[4][1] - px[4][1]]
        d_right = [out[7][0] - px[7][0], out[7][1] - px[7][1]]
        if left[0] is not None:
            d_left = [d_left[0] + px[4][0] - left[0][0] * dw, d_left[1] + px[4][1] - left[0][1] * dh]
        if right[0] is not None:
            d_right = [d_right[0] + px[7][0] - right[0][0] * dw, d_right[1] + px[7][1] - right[0][1] * dh]
        probe = [-dw, -dh] if left[0] is None else [left[0][0] * dw, left[0][1] * dh]
        dis_l = math.hypot(px[4][0] - probe[0], px[4][1] - probe[1])
        dis_r = math.hypot(px[7][0] - probe[0], px[7][1] - probe[1])

        def place(hand, d):
            return [None if p is None else [int(p[0] * dw + d[0]), int(p[1] * dh + d[1]), p[2]] for p in hand]

        if dis_l > dis_r:
            out_right, out_left = place(left, d_right), place(right, d_left)
        else:
            out_left, out_right = place(left, d_left), place(right, d_right)
        results.append((out, out_left, out_right))
    return results


# --------------------------------------------------------------------------------------------
# random but plausible skeletons
# --------------------------------------------------------------------------------------------
def skeleton(rng, props, neck, size, jitter=0.25):
    ang = {k: v + rng.uniform(-jitter, jitter) for k, v in STANDING.items()}
    ang["l_shoulder"] = ang["r_shoulder"] + math.pi
    xy = np.zeros((20, 2))
    xy[1] = neck
    names = ["r_shoulder", "l_shoulder", "r_upper_arm", "r_forearm", "l_upper_arm", "l_forearm", "r_torso",
             "r_thigh", "r_calf", "l_torso", "l_thigh", "l_calf", "neck_nose", "r_eye", "r_ear", "l_eye",
             "l_ear", "l_foot", "r_foot"]
    for b, (p, c) in enumerate(BODY20_LIMBS):
        length = props[BONE_PART[b]] * size * (1.0 if b < 2 else rng.uniform(0.85, 1.15))
        xy[c] = xy[p] + length * np.array([math.cos(ang[names[b]]), math.sin(ang[names[b]])])
    kp = to133(xy)
    kp[:, :2] += rng.normal(0.0, 0.3, (133, 2))
    kp[:, 2] = rng.uniform(0.55, 1.0, 133)
    return kp


def roughen(rng, kp, body_low=True):
    """Low-score and 'missing' joints, hand scores around 0.4-0.5, sometimes a weak hand root."""
    if body_low:
        for i in rng.choice(np.r_[0:5, 7:17], 3, replace=False):  # not the shoulders (the neck)
            kp[i, 2] = rng.uniform(0.05, 0.45)
        i = rng.choice(np.r_[7:17])
        kp[i] = (0.0, 0.0, 0.0) if rng.random() < 0.5 else (*rng.uniform(0, 300, 2), 0.02)  # missing
    for first in (91, 112):
        idx = first + rng.choice(21, 8, replace=False)
        kp[idx, 2] = rng.uniform(0.35, 0.5, 8)  # around the official 0.4 and the pack's 0.5
        if rng.random() < 0.3:
            kp[first, 2] = rng.uniform(0.1, 0.39)  # weak hand root
    return kp


def make_case(seed, drv_wh, ref_wh, fit, frames=6, ref_hide=()):
    rng = np.random.default_rng(seed)
    dw, dh = drv_wh
    drv = []
    for t in range(frames):
        kp = skeleton(rng, DRIVER, (dw * 0.5 + rng.uniform(-40, 40), dh * 0.25 + rng.uniform(-10, 10)), dh / 480)
        if t:
            kp = roughen(rng, kp)
        if t == 2 or (t == 4 and seed % 2):  # hands on the wrong wrists
            kp[91:112], kp[112:133] = kp[112:133].copy(), kp[91:112].copy()
        drv.append(kp)
    drv[3][:23, :2] = -rng.uniform(1, 50, (23, 2))  # a failed detection: the whole body off the canvas
    drv[3][:23, 0] *= -1  # ... x positive but y negative still counts as 'all negative'
    if frames > 5:  # and a run of two: both take frame 2's body
        drv[4 if seed % 3 == 0 else 5][:23, :2] = -rng.uniform(1, 50, (23, 2))
    rw, rh = ref_wh
    ref = skeleton(rng, CHARACTER, (rw * 0.5, rh * 0.3), rh / 768 * 1.5)
    ref = roughen(rng, ref, body_low=False)
    for i in ref_hide:
        ref[i, 2] = 0.3
    drv = [k.astype(np.float32) for k in drv]
    ref = ref.astype(np.float32)
    out_wh = (int(rw * fit), int(rh * fit))
    return drv, ref, out_wh


CASES = [  # seed, driving canvas, reference canvas, output canvas / reference canvas, hidden ref points
    (0, (640, 480), (512, 768), 1.0, ()),
    (1, (720, 1280), (480, 640), 2.0, ()),
    (2, (1280, 720), (720, 1280), 1.0, (15, 16)),  # reference ankles weak: three-quarter
    (3, (640, 480), (512, 768), 1.5, (11, 12)),  # reference hips weak: half body
    (4, (480, 640), (832, 480), 1.0, (0,)),  # reference nose weak: canvas-area scale
    (5, (640, 480), (512, 768), 1.0, ()),
]


@pytest.mark.parametrize("seed, drv_wh, ref_wh, fit, hide", CASES)
def test_official_mode_matches_the_official_algorithm(seed, drv_wh, ref_wh, fit, hide):
    drv, ref, (ow, oh) = make_case(seed, drv_wh, ref_wh, fit, ref_hide=hide)
    res = retarget(PoseSequence(np.stack(drv)[:, None], (1,), *drv_wh), PoseSequence(ref[None, None], (1,), *ref_wh),
                   out_width=ow, out_height=oh)  # official is the default mode
    assert res.mode == "official"
    # the official pipeline extracts the reference on the reference image resized to the output canvas
    ref_out = ref.copy()
    ref_out[:, :2] *= fit
    want = official_retarget(drv, *drv_wh, ref_out, ow, oh)
    got = res.poses.subject_keypoints.astype(np.float64)
    moved_low = 0
    for t, (body, lhand, rhand) in enumerate(want):
        gb = np.array([(got[t, a] + got[t, b]) / 2 for a, b in BODY_FROM_COCO])
        np.testing.assert_allclose(gb[:, :2], np.array(body)[:, :2], atol=1e-3, rtol=0, err_msg=f"frame {t}")
        np.testing.assert_allclose(gb[:, 2], np.array(body)[:, 2], atol=1e-6)
        # the official output files each hand under the other side's label (see official_retarget):
        # the pack files it under the wrist it follows
        for official_hand, first in ((rhand, 91), (lhand, 112)):
            for i, p in enumerate(official_hand):
                if p is None:
                    continue
                moved_low += p[2] < 0.5
                np.testing.assert_allclose(got[t, first + i], p, atol=1e-3, rtol=0,
                                           err_msg=f"frame {t}, point {first + i}")
    assert moved_low > 0  # hand points scored 0.4-0.5 were exercised


@pytest.mark.parametrize("seed, weak_edit_nose", [(7, False), (8, True)])
def test_official_mode_with_edited_poses_matches_the_official_algorithm(seed, weak_edit_nose):
    """The edited-pose (T-pose) route; a weak nose on the edited reference makes its scale fall
    back to the canvas area, which brings in the official size correction."""
    drv, ref, (ow, oh) = make_case(seed, (640, 480), (256, 384), 2.0)
    rng = np.random.default_rng(seed + 100)
    drv_t = roughen(rng, skeleton(rng, DRIVER, (300.0, 110.0), 1.1), body_low=False).astype(np.float32)
    ref_t = roughen(rng, skeleton(rng, CHARACTER, (200.0, 180.0), 1.6), body_low=False)
    if weak_edit_nose:
        ref_t[0, 2] = 0.3
    ref_t = ref_t.astype(np.float32)  # on a 400 x 600 canvas, letterboxed to the output like the image
    res = retarget(PoseSequence(np.stack(drv)[:, None], (1,), 640, 480), PoseSequence(ref[None, None], (1,), 256, 384),
                   out_width=ow, out_height=oh, drv_tpose=PoseSequence(drv_t[None, None], (1,), 720, 540),
                   ref_tpose=PoseSequence(ref_t[None, None], (1,), 400, 600))
    ref_out, ref_t_out = ref.copy(), ref_t.copy()
    ref_out[:, :2] *= 2.0
    ref_t_out[:, :2] *= ow / 400
    want = official_retarget(drv, 640, 480, ref_out, ow, oh, edit=(drv_t, 720, 540, ref_t_out, ow, oh))
    got = res.poses.subject_keypoints.astype(np.float64)
    for t, (body, lhand, rhand) in enumerate(want):
        gb = np.array([(got[t, a] + got[t, b]) / 2 for a, b in BODY_FROM_COCO])
        np.testing.assert_allclose(gb[:, :2], np.array(body)[:, :2], atol=1e-3, rtol=0, err_msg=f"frame {t}")
        for official_hand, first in ((rhand, 91), (lhand, 112)):
            for i, p in enumerate(official_hand):
                if p is not None:
                    np.testing.assert_allclose(got[t, first + i], p, atol=1e-3, rtol=0)


def test_cases_cover_the_official_branches():
    """The random cases really reach each branch of the official code."""
    kinds, swaps, scales, weak_roots = set(), 0, set(), 0
    for seed, drv_wh, ref_wh, fit, hide in CASES:
        drv, ref, (ow, oh) = make_case(seed, drv_wh, ref_wh, fit, ref_hide=hide)
        src, dst = body_of(drv[0], *drv_wh), body_of(ref, *ref_wh)
        kinds.add(min(kind_of(src), kind_of(dst)))
        s = ref_scale_min(src, dst, *drv_wh, *ref_wh)
        scales.add(s == math.sqrt(drv_wh[0] * drv_wh[1]) / math.sqrt(ref_wh[0] * ref_wh[1]))
        for kp in drv:
            weak_roots += kp[112, 2] < 0.4
            body = body_of(kp, *drv_wh)
            root = kp[112, :2] if kp[112, 2] >= 0.4 else np.array([-drv_wh[0], -drv_wh[1]])
            wr, wl = np.array(body[4][:2]) * drv_wh, np.array(body[7][:2]) * drv_wh
            swaps += np.hypot(*(wr - root)) > np.hypot(*(wl - root))
    assert kinds == {0, 1, 2} and scales == {True, False} and swaps >= 3 and weak_roots >= 1


def test_official_mode_moves_what_the_pack_mode_leaves():
    """(b) low-score joints are retargeted, (c) hand points from 0.4, (d) crossed hands keep the
    other hand's root offset (they land off the wrist) in official mode; 'improved' mode differs."""
    drv, ref, (ow, oh) = make_case(0, (640, 480), (512, 768), 1.0)
    drv[2][[9, 10, 91, 112], 2] = 0.9  # confident wrists and hand roots in the crossed-hands frame
    d = PoseSequence(np.stack(drv)[:, None], (1,), 640, 480)
    r = PoseSequence(ref[None, None], (1,), 512, 768)
    off = retarget(d, r, out_width=ow, out_height=oh).poses.subject_keypoints
    own = retarget(d, r, mode="improved", out_width=ow, out_height=oh).poses.subject_keypoints
    src = hold_invalid_bodies(d.subject_keypoints)  # both modes take frames 3 and 5 from frame 2
    low = (src[1:, :17, 2] < 0.5)
    assert low.any()
    assert not np.isclose(off[1:, :17, :2][low], src[1:, :17, :2][low]).all(axis=-1).any()
    np.testing.assert_array_equal(own[1:, :17, :2][low], src[1:, :17, :2][low])
    hand = (src[1, 91:, 2] >= 0.4) & (src[1, 91:, 2] < 0.5)  # frame 1: hands not crossed
    assert hand.any()
    np.testing.assert_array_equal(own[1, 91:, :2][hand], src[1, 91:, :2][hand])
    assert not np.isclose(off[1, 91:, :2][hand], src[1, 91:, :2][hand]).all(axis=-1).any()
    # frame 2: crossed hands (both roots confident). The pack's mode hangs each hand from the wrist
    # it is near; the official one shifts it by the other hand's root offset, so it lands a whole
    # root-to-root distance away from its wrist
    roots = np.hypot(*(src[2, 91, :2] - src[2, 112, :2]))
    k = np.hypot(*(off[2, 5, :2] - off[2, 6, :2])) / np.hypot(*(src[2, 5, :2] - src[2, 6, :2]))
    for out, wrist, slot in ((off, 9, 91), (off, 10, 112), (own, 9, 91), (own, 10, 112)):
        gap = np.hypot(*(out[2, slot, :2] - out[2, wrist, :2]))
        if out is off:
            assert gap > 0.5 * roots * k
        else:
            assert gap < 0.5 * roots * k
