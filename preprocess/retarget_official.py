"""Building blocks of pose retargeting, and the official Wan-Animate rules (official:
wan/modules/animate/preprocess/retarget_pose.py).

Everything works on the official 20-point body (``keypoints.to_body20``) and its 19 bones in
``BODY20_LIMBS`` order, vectorised over frames. Units: a *ratio* is reference pixels per driving
pixel for one bone; ``g`` (the global scale) is reference pixels per driving pixel for the whole body
(the official ``scale_min`` is ``1 / g``); a *relative* ratio is ``ratio / g`` (1 = same proportions).

The module is pure numpy; ``retarget.py`` puts the pieces together into the public API.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .keypoints import BODY20_LIMBS

BONE_NAMES: tuple[str, ...] = (
    "r_shoulder", "l_shoulder", "r_upper_arm", "r_forearm", "l_upper_arm", "l_forearm",
    "r_torso", "r_thigh", "r_calf", "l_torso", "l_thigh", "l_calf",
    "neck_nose", "r_eye", "r_ear", "l_eye", "l_ear", "l_foot", "r_foot",
)
NUM_BONES = len(BODY20_LIMBS)
PARENT = np.array([p for p, _ in BODY20_LIMBS])
CHILD = np.array([c for _, c in BODY20_LIMBS])

# Left/right bone pairs: shoulders, upper arms, forearms, torso sides, thighs, calves, feet.
SYMMETRIC_PAIRS = ((0, 1), (2, 4), (3, 5), (6, 9), (7, 10), (8, 11), (17, 18))
# Nose->eye and eye->ear pairs (the official code averages these).
AVERAGED_PAIRS = ((13, 15), (14, 16))
PART_BONES: dict[str, tuple[int, ...]] = {
    "head": (12, 13, 14, 15, 16),
    "torso": (0, 1, 6, 9),
    "arms": (2, 3, 4, 5),
    "legs": (7, 8, 10, 11, 17, 18),
}
FOOT_CALF = ((17, 11), (18, 8))  # (foot bone, calf bone of the same side)
ROOT = 1  # the neck
BODY_TYPES = ("half_body", "three_quarter", "full_body")
ANKLES = (10, 13)
HIPS = (8, 11)
FOOT_POINTS = (10, 13, 18, 19)  # ankles and toes of the 20-point body

# 20-point body index -> the COCO-WholeBody index it is copied from (Neck and Toes are pair means).
B20_TO_COCO = {0: 0, 2: 6, 3: 8, 4: 10, 5: 5, 6: 7, 7: 9, 8: 12, 9: 14, 10: 16, 11: 11, 12: 13,
               13: 15, 14: 2, 15: 1, 16: 4, 17: 3}
# Groups of COCO points that ride on one 20-point joint: (indices, joint).
L_FOOT_EXTRA, R_FOOT_EXTRA = np.arange(17, 20), np.arange(20, 23)
FACE_POINTS = np.arange(23, 91)
L_HAND_POINTS, R_HAND_POINTS = np.arange(91, 112), np.arange(112, 133)
L_WRIST20, R_WRIST20, NOSE20, L_ANKLE20, R_ANKLE20 = 7, 4, 0, 13, 10


# --------------------------------------------------------------------------------------------
# measurements
# --------------------------------------------------------------------------------------------
def bone_lengths(b20: np.ndarray, thr: float) -> np.ndarray:
    """[..., 20, 3] body -> [..., 19] bone lengths in pixels, NaN where an end is below ``thr``."""
    b20 = np.asarray(b20, dtype=np.float64)
    vec = b20[..., CHILD, :2] - b20[..., PARENT, :2]
    ok = (b20[..., CHILD, 2] >= thr) & (b20[..., PARENT, 2] >= thr)
    return np.where(ok, np.hypot(vec[..., 0], vec[..., 1]), np.nan)


def _nose_to(b20: np.ndarray, pair: tuple[int, int], thr: float) -> float:
    """Vertical distance from the nose to the mean y of ``pair`` (NaN if any is below ``thr``)."""
    idx = [0, *pair]
    if np.any(b20[idx, 2] < thr):
        return float("nan")
    return float(abs(b20[list(pair), 1].mean() - b20[0, 1]))


def global_scale(src: np.ndarray, dst: np.ndarray, src_wh: tuple[int, int], dst_wh: tuple[int, int],
                 thr: float = 0.5) -> tuple[float, str]:
    """Official global scale: dst height / src height, in dst pixels per src pixel.

    Height is nose -> mean ankle y when nose and ankles pass ``thr`` in both bodies, else nose ->
    mean hip y, else the square root of the canvas-area ratio. Returns (g, method name).
    """
    for pair, name in ((ANKLES, "nose_to_ankles"), (HIPS, "nose_to_hips")):
        hs, hd = _nose_to(src, pair, thr), _nose_to(dst, pair, thr)
        if hs > 1e-6 and hd > 1e-6:
            return hd / hs, name
    return float(np.sqrt(dst_wh[0] * dst_wh[1]) / np.sqrt(src_wh[0] * src_wh[1])), "canvas_area"


def body_type(b20: np.ndarray, width: int, height: int, thr: float = 0.4) -> str:
    """'full_body' (hips and ankles in frame, score >= thr), 'three_quarter' (hips only) or 'half_body'."""
    def seen(i: int) -> bool:
        x, y, c = b20[i]
        return bool(c >= thr and 0 <= x <= width and 0 <= y <= height)

    hips = all(seen(i) for i in HIPS)
    if hips and all(seen(i) for i in ANKLES):
        return "full_body"
    return "three_quarter" if hips else "half_body"


def min_body_type(a: str, b: str) -> str:
    return BODY_TYPES[min(BODY_TYPES.index(a), BODY_TYPES.index(b))]


def _fmax(a: np.ndarray) -> np.ndarray:
    """Max over the last axis ignoring NaN (NaN where all are NaN), without warnings."""
    return np.fmax.reduce(a, axis=-1)


def lowest_foot_y(xy: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """[..., 20, 2], [..., 20] -> [...] largest y among confident ankles and toes (NaN if none)."""
    idx = list(FOOT_POINTS)
    return _fmax(np.where(ok[..., idx], xy[..., idx, 1], np.nan))


def hip_mid_x(xy: np.ndarray, ok: np.ndarray) -> float:
    return float(xy[list(HIPS), 0].mean()) if ok[list(HIPS)].all() else float("nan")


# --------------------------------------------------------------------------------------------
# official ratio rules
# --------------------------------------------------------------------------------------------
def official_relative_ratios(src_len: np.ndarray, dst_len: np.ndarray, unit: float
                             ) -> tuple[np.ndarray, list[str]]:
    """Official per-bone ratios, relative to ``unit`` (the global scale of the pair they come from).

    ratio = dst_len / src_len; a missing ratio becomes the mean of the two shoulder ratios (1.0 if
    those are missing too); left/right pairs take the max, eye and ear pairs are averaged
    (official: retarget_pose.py, retarget_pose and rescale_shorten_skeleton). The official plain
    route measures every bone whatever its score, so a ratio is only missing here when a driving
    bone has zero length (where the official code stops with a division error).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.asarray(dst_len, np.float64) / (np.asarray(src_len, np.float64) * unit)
    bad = ~np.isfinite(rel)
    warnings: list[str] = []
    if bad.any():
        if not bad[0] and not bad[1]:
            fill, how = (rel[0] + rel[1]) / 2, "the mean shoulder ratio"
        else:
            fill, how = 1.0, "the global scale (shoulders missing too)"
        rel[bad] = fill
        names = ", ".join(BONE_NAMES[i] for i in np.flatnonzero(bad))
        warnings.append(f"bone ratio missing for {names}: used {how}")
    for a, b in SYMMETRIC_PAIRS:
        rel[a] = rel[b] = max(rel[a], rel[b])
    for a, b in AVERAGED_PAIRS:
        rel[a] = rel[b] = (rel[a] + rel[b]) / 2
    return rel, warnings


def apply_part_scale(rel: np.ndarray, part_scale: dict[str, float]) -> np.ndarray:
    """Multiply the relative ratios of each body part by its user factor."""
    rel = rel.copy()
    for part, factor in part_scale.items():
        rel[list(PART_BONES[part])] *= float(factor)
    return rel


# --------------------------------------------------------------------------------------------
# rebuilding the skeleton
# --------------------------------------------------------------------------------------------
@dataclass
class Chain:
    """The rebuilt 20-point body of every frame, in reference pixels before translation.

    out: [T, 20, 2], NaN where the joint was not placed (below the threshold).
    placed: [T, 20] bool.
    base_out, base_drv: [T, 20, 2] output and driving position of each joint's nearest placed
        ancestor (the joint itself when placed): what points hanging from the joint move with.
    ratios: [T, 19] the ratio each bone really got (feet clamped to the calf, root bones of frames
        without a confident neck set to the global scale).
    """

    out: np.ndarray
    placed: np.ndarray
    base_out: np.ndarray
    base_drv: np.ndarray
    ratios: np.ndarray


def rebuild_chain(xy: np.ndarray, ok: np.ndarray, ratios: np.ndarray, g: float,
                  foot_clamp: float = 0.5) -> Chain:
    """Rebuild every frame outward from the neck, keeping each driving bone angle.

    xy [T, 20, 2] driving positions, ok [T, 20] confidence mask, ratios [19] reference px per
    driving px. The neck lands at ``xy_neck * g``. A joint below the threshold is not placed; its
    children hang from the nearest placed ancestor, their offset scaled by the mean ratio of the
    bones in between. In a frame whose neck is not confident, the bones leaving the neck use ``g``
    (the torso keeps the driver's proportions there, the limbs are still retargeted).
    """
    xy = np.asarray(xy, np.float64)
    t = xy.shape[0]
    eff = np.broadcast_to(np.asarray(ratios, np.float64), (t, NUM_BONES)).copy()
    vec = xy[:, CHILD] - xy[:, PARENT]
    length = np.hypot(vec[..., 0], vec[..., 1])
    bone_ok = ok[:, CHILD] & ok[:, PARENT]
    for foot, calf in FOOT_CALF:
        valid = bone_ok[:, foot] & bone_ok[:, calf] & (length[:, foot] > 1e-9)
        cap = foot_clamp * length[:, calf] * eff[:, calf] / np.where(valid, length[:, foot], 1.0)
        eff[:, foot] = np.where(valid, np.minimum(eff[:, foot], cap), eff[:, foot])
    from_root = PARENT == ROOT
    eff[:, from_root] = np.where(ok[:, [ROOT]], eff[:, from_root], g)

    out = np.full_like(xy, np.nan)
    base_out = np.empty_like(xy)
    base_drv = np.empty_like(xy)
    rsum = np.zeros((t, 20))
    rcnt = np.zeros((t, 20))
    base_out[:, ROOT] = xy[:, ROOT] * g
    base_drv[:, ROOT] = xy[:, ROOT]
    out[:, ROOT] = np.where(ok[:, [ROOT]], base_out[:, ROOT], np.nan)
    for b, (p, c) in enumerate(BODY20_LIMBS):
        s = rsum[:, p] + eff[:, b]
        n = rcnt[:, p] + 1.0
        pos = base_out[:, p] + (xy[:, c] - base_drv[:, p]) * (s / n)[:, None]
        here = ok[:, c]
        h2 = here[:, None]
        out[:, c] = np.where(h2, pos, np.nan)
        base_out[:, c] = np.where(h2, pos, base_out[:, p])
        base_drv[:, c] = np.where(h2, xy[:, c], base_drv[:, p])
        rsum[:, c] = np.where(here, 0.0, s)
        rcnt[:, c] = np.where(here, 0.0, n)
    return Chain(out=out, placed=ok.copy(), base_out=base_out, base_drv=base_drv, ratios=eff)


def swap_crossed_hands(kps: np.ndarray, ok: np.ndarray, strict: bool) -> np.ndarray:
    """Swap the two hands (x, y and score) in frames where they sit on the wrong wrists.

    The pack's rule ('improved' mode): the left-hand root is closer to the right wrist than to the
    left one and, with ``strict``, the right-hand root is closer to the left wrist. The swapped
    hands then hang from the wrist they are near. (The official rule, which tests the right-hand
    root only and keeps the other hand's root offset, is ``place_hands_official``.)
    Returns a copy; ``kps`` is [T, 133, 3], ``ok`` its [T, 133] confidence mask.
    """
    lw, rw, lr, rr = 9, 10, L_HAND_POINTS[0], R_HAND_POINTS[0]

    def dist(i: int, j: int) -> np.ndarray:
        return np.hypot(*(kps[:, i, :2] - kps[:, j, :2]).T)

    swap = ok[:, lw] & ok[:, rw] & ok[:, lr] & (dist(lr, rw) < dist(lr, lw))
    if strict:
        swap &= ok[:, rr] & (dist(rr, lw) < dist(rr, rw))
    kps = kps.copy()
    if swap.any():
        left = kps[swap][:, L_HAND_POINTS].copy()
        kps[np.ix_(swap, L_HAND_POINTS)] = kps[swap][:, R_HAND_POINTS]
        kps[np.ix_(swap, R_HAND_POINTS)] = left
    return kps


def assemble_133(kps: np.ndarray, ok: np.ndarray, chain: Chain, hand_scale: tuple[float, float],
                 face_scale: float, snap_hand_root: bool) -> tuple[np.ndarray, np.ndarray]:
    """Write the rebuilt body back into the 133 COCO-WholeBody points.

    kps [T, 133, 3] driving points, ok [T, 133] their confidence mask. Body points take their
    20-point position; toes and heels hang from their ankle scaled like the (clamped) foot bone, so
    the big/small-toe mean stays the rebuilt toe; face landmarks follow the nose scaled by
    ``face_scale``; hands follow their wrist scaled by ``hand_scale`` (right, left). With
    ``snap_hand_root`` (official), the hand root lands on the wrist and the hand is scaled about it.
    Returns xy [T, 133, 2] in reference pixels (NaN where not moved) and the moved mask [T, 133].
    """
    t = kps.shape[0]
    xy = np.full((t, kps.shape[1], 2), np.nan)
    moved = np.zeros(ok.shape, bool)
    for j, c in B20_TO_COCO.items():
        here = ok[:, c] & chain.placed[:, j]
        xy[:, c] = np.where(here[:, None], chain.out[:, j], np.nan)
        moved[:, c] = here

    def hang(points: np.ndarray, joint: int, k, pivot: np.ndarray | None = None) -> None:
        anchor_out = chain.base_out[:, joint]
        pivot = chain.base_drv[:, joint] if pivot is None else pivot
        k = np.broadcast_to(np.asarray(k, np.float64), (t,))
        pos = anchor_out[:, None] + (kps[:, points, :2] - pivot[:, None]) * k[:, None, None]
        here = ok[:, points]
        xy[:, points] = np.where(here[..., None], pos, np.nan)
        moved[:, points] = here

    hang(L_FOOT_EXTRA, L_ANKLE20, chain.ratios[:, 17])
    hang(R_FOOT_EXTRA, R_ANKLE20, chain.ratios[:, 18])
    hang(FACE_POINTS, NOSE20, face_scale)
    for points, joint, k in ((R_HAND_POINTS, R_WRIST20, hand_scale[0]),
                             (L_HAND_POINTS, L_WRIST20, hand_scale[1])):
        pivot = None
        if snap_hand_root:
            root = points[0]
            use = ok[:, root] & chain.placed[:, joint]
            pivot = np.where(use[:, None], kps[:, root, :2], chain.base_drv[:, joint])
        hang(points, joint, k, pivot)
    return xy, moved


# --------------------------------------------------------------------------------------------
# the official plain route (no T-poses), rule by rule
# --------------------------------------------------------------------------------------------
OFFICIAL_SCALE_SCORE = 0.5  # nose/ankle/hip scores must be strictly above this for the height scale
OFFICIAL_BODY_SCORE = 0.4   # hips/ankles at or above this count for the body type
OFFICIAL_HAND_SCORE = 0.4   # hand points at or above this are moved (the rest are dropped)


def official_scale(src: np.ndarray, dst: np.ndarray, src_wh: tuple[int, int], dst_wh: tuple[int, int]
                   ) -> tuple[float, str]:
    """The official ``scale_min`` (source px per destination px) and the rule that gave it.

    Height = |mean ankle y - nose y| when the nose and both ankles of both bodies score strictly
    above 0.5, else the same with the hips, else the square root of the canvas-area ratio
    (official: retarget_pose.py, retarget_pose). src/dst are [20, 3] bodies in pixels.
    """
    for pair, name in ((ANKLES, "nose_to_ankles"), (HIPS, "nose_to_hips")):
        idx = [0, *pair]
        if (src[idx, 2] > OFFICIAL_SCALE_SCORE).all() and (dst[idx, 2] > OFFICIAL_SCALE_SCORE).all():
            hs = abs((float(src[pair[0], 1]) + float(src[pair[1], 1])) / 2 - float(src[0, 1]))
            hd = abs((float(dst[pair[0], 1]) + float(dst[pair[1], 1])) / 2 - float(dst[0, 1]))
            if hs > 1e-6 and hd > 1e-6:
                return hs / hd, name
    return float(np.sqrt(src_wh[0] * src_wh[1]) / np.sqrt(dst_wh[0] * dst_wh[1])), "canvas_area"


def official_canvas_factors(width: int, height: int, scale_min: float) -> tuple[float, float]:
    """How the official code distorts the reference when it measures it on a canvas scaled by
    ``scale_min`` with truncated sides (``int(W * scale_min)``, ``int(H * scale_min)``): the factors
    (kx, ky) by which reference x and y end up multiplied (each within 1/(side * scale_min) of 1)."""
    kx = int(width * scale_min) / (width * scale_min)
    ky = int(height * scale_min) / (height * scale_min)
    return kx, ky


def official_edit_compensation(body: np.ndarray, edited: np.ndarray, wh: tuple[int, int],
                               edited_wh: tuple[int, int]) -> float:
    """The official correction for an editing model that changed the person's size, used when the
    T-pose pair's scale fell back to the canvas area: max(head width ratio, shoulder length ratio)
    of the body over its edited version (head width = x extent of nose, eyes and ears, relative to
    the canvas width; shoulders in pixels). NaN when the edited head or shoulders have no width.
    Official: retarget_pose.py, calculate_scale_ratio."""
    head = [0, 14, 15, 16, 17]

    def head_width(b: np.ndarray, w: int) -> float:
        return float(b[head, 0].max() - b[head, 0].min()) / w

    def shoulders(b: np.ndarray) -> float:
        return float(np.hypot(*(b[5, :2] - b[2, :2])))

    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.array([head_width(body, wh[0]), shoulders(body)]) / np.array(
            [head_width(edited, edited_wh[0]), shoulders(edited)])
    return float(ratios.max()) if np.isfinite(ratios).all() else float("nan")


def official_body_type(b20: np.ndarray, height: int, thr: float = OFFICIAL_BODY_SCORE) -> str:
    """Official body type: hips and ankles with score >= thr and y <= canvas height ('full_body'),
    the hips only ('three_quarter') or neither ('half_body'). Only the bottom edge is checked
    (official: retarget_pose.py, check_full_body)."""
    def seen(i: int) -> bool:
        return bool(b20[i, 2] >= thr and b20[i, 1] <= height)

    hips = all(seen(i) for i in HIPS)
    if hips and all(seen(i) for i in ANKLES):
        return "full_body"
    return "three_quarter" if hips else "half_body"


def place_hands_official(kps: np.ndarray, drv_wrists: np.ndarray, out_wrists: np.ndarray, k: float,
                         drv_wh: tuple[int, int], thr: float = OFFICIAL_HAND_SCORE
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The official hand placement, frame by frame (official: retarget_pose.py, get_scaled_pose,
    deal_hand_keypoints and get_handpose_meta).

    kps [T, 133, 3] driving points; drv_wrists / out_wrists [T, 2, 2]: (right, left) wrist of the
    driving body and of the retargeted body (output pixels); k: hand scale (output px per driving
    px). Each hand is scaled by k about its own root point. A hand whose root scores >= thr is
    shifted so its root lands on its wrist; otherwise it moves with its wrist. The swap test looks
    at the right-hand root only (or at (-W, -H) of the driving canvas when that root is below thr):
    when it is farther from the right wrist than from the left one, the two hands trade wrists but
    keep the other hand's root offset, so they can land away from the wrist. Output coordinates are
    truncated towards zero like the official ``int()``. Points below thr are not moved.

    Returns (hands [T, 42, 3]: the COCO left-hand slots 91-111 then the right-hand slots 112-132,
    each slot holding the hand attached to that side's wrist, with its score; moved [T, 42]: the
    points placed; swapped [T]).
    """
    kps = np.asarray(kps, np.float64)
    t = kps.shape[0]
    r_pts, l_pts = kps[:, R_HAND_POINTS], kps[:, L_HAND_POINTS]
    r_root, l_root = r_pts[:, 0], l_pts[:, 0]
    r_ok, l_ok = r_root[:, 2] >= thr, l_root[:, 2] >= thr

    def scaled(pts: np.ndarray) -> np.ndarray:
        root = pts[:, :1, :2]
        return root + (pts[..., :2] - root) * k

    shift_r = out_wrists[:, 0] - np.where(r_ok[:, None], r_root[:, :2], drv_wrists[:, 0])
    shift_l = out_wrists[:, 1] - np.where(l_ok[:, None], l_root[:, :2], drv_wrists[:, 1])
    probe = np.where(r_ok[:, None], r_root[:, :2], -np.asarray(drv_wh, np.float64))
    d_right = np.hypot(*(drv_wrists[:, 0] - probe).T)
    d_left = np.hypot(*(drv_wrists[:, 1] - probe).T)
    swapped = d_right > d_left
    sw = swapped[:, None, None]
    r_xy = np.trunc(scaled(r_pts) + np.where(sw, shift_l[:, None], shift_r[:, None]))
    l_xy = np.trunc(scaled(l_pts) + np.where(sw, shift_r[:, None], shift_l[:, None]))
    r_hand = np.concatenate([np.where((r_pts[..., 2] >= thr)[..., None], r_xy, r_pts[..., :2]),
                             r_pts[..., 2:]], axis=-1)
    l_hand = np.concatenate([np.where((l_pts[..., 2] >= thr)[..., None], l_xy, l_pts[..., :2]),
                             l_pts[..., 2:]], axis=-1)
    left_slot = np.where(sw, r_hand, l_hand)
    right_slot = np.where(sw, l_hand, r_hand)
    hands = np.concatenate([left_slot, right_slot], axis=1)
    moved = hands[..., 2] >= thr
    assert hands.shape == (t, 42, 3)
    return hands, moved, swapped
