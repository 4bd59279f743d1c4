"""Pose retargeting for Animation mode: move the driving motion onto the reference character's body.

``retarget(driving, reference, ...)`` rebuilds every driving frame on the official 20-point body
with the reference's bone lengths (each bone keeps its driving angle), places the result where the
character stands in the reference image and writes it back as 133 COCO-WholeBody points on the
output canvas. Two modes:

* ``'official'`` (the default) reproduces the official plain route (official: wan/modules/animate/preprocess/retarget_pose.py, get_retarget_pose) to float
  precision: ratios from driving frame 0, max symmetrisation of ratios, translation offsets from
  frame 0, every joint moved whatever its score, the reference measured on the official truncated
  canvas, hands moved from score 0.4 and placed by the official swap rule, whole pixels. It fails
  when frame 0 is not a front-facing, stretched pose (foreshortened bones in frame 0 give stretched
  bones later).
* ``'improved'`` is the pack's own mode (called ``'default'`` before; that name is still accepted,
  see ``MODE_ALIASES``): it picks an anchor frame (the most extended, frontal pose,
  or the user's), symmetrises bone *lengths* by max (the less foreshortened side wins), clamps
  every relative ratio, falls back to the twin bone then the torso for missing bones, keeps the
  feet on the ground frame by frame, measures the reference without truncation, copies keypoints
  below ``threshold`` through untouched (hands included: 0.5, not 0.4), and only swaps crossed
  hands when both roots sit on the other wrist, hanging each from the wrist it is near.

Units: ``scale`` is reference pixels per driving pixel (the official ``scale_min`` is ``1/scale``);
``ratios`` are per bone in the same unit; ``relative_ratios = ratios / scale``.
Confident points keep their scores. In both modes a driving frame whose whole body is at negative
x or y takes the previous frame's body (the official extraction rule, ``keypoints.to_body20``).
Replacement mode never retargets: see ``RETARGET_REPLACEMENT_WARNING``.
"""
from __future__ import annotations

import math
import warnings as _warnings
from dataclasses import dataclass, field

import numpy as np

from .keypoints import hold_invalid_bodies, invalid_body_frames, to_body20
from .pose_types import PoseSequence
from .resolution import letterbox_transform
from .retarget_official import (
    AVERAGED_PAIRS, BONE_NAMES, PART_BONES, SYMMETRIC_PAIRS, apply_part_scale, assemble_133,
    body_type, bone_lengths, global_scale, hip_mid_x, lowest_foot_y, min_body_type,
    official_body_type, official_canvas_factors, official_edit_compensation, official_relative_ratios,
    official_scale,
    place_hands_official, rebuild_chain, swap_crossed_hands,
)

__all__ = ["RetargetResult", "retarget", "choose_anchor_frame", "improved_relative_ratios",
           "RETARGET_REPLACEMENT_WARNING", "BONE_NAMES", "PART_BONES", "MODES", "MODE_ALIASES", "canonical_mode"]

MODES = ("improved", "official")
# Old mode names still accepted from saved workflows and API prompts: the pack's own mode was
# called 'default' while it was the default, which it no longer is.
MODE_ALIASES = {"default": "improved"}
RETARGET_REPLACEMENT_WARNING = (
    "Pose retargeting only applies to Animation mode. Replacement mode keeps the driving video's "
    "own body proportions (the character is inserted into the video's person), so the retargeted "
    "poses are ignored: feed the un-retargeted poses, or switch to Animation mode.")
ASPECT_TOLERANCE = 0.05  # relative difference allowed between the reference and output aspect


@dataclass
class RetargetResult:
    """What ``retarget`` returns.

    poses: the retargeted subject only, on an out_width x out_height canvas, ``retargeted=True``.
    ratios: [19] reference px per driving px per bone (``BONE_NAMES`` order), as used.
    relative_ratios: ``ratios / scale`` (1 = the character has the driver's proportions).
    anchor_frame: driving frame the ratios (unless T-poses were given) and the placement come from.
    body_type: 'full_body' (anchored on the feet), 'three_quarter' or 'half_body' (on the neck).
    scale: global scale, reference px per driving px.
    """

    poses: PoseSequence
    ratios: np.ndarray
    anchor_frame: int
    body_type: str
    scale: float
    warnings: list[str] = field(default_factory=list)
    relative_ratios: np.ndarray | None = None
    mode: str = "improved"
    scale_method: str = ""

    def ratio_dict(self) -> dict[str, float]:
        return {n: float(r) for n, r in zip(BONE_NAMES, self.ratios)}


# --------------------------------------------------------------------------------------------
# improved-mode rules (the pack's own)
# --------------------------------------------------------------------------------------------
def _robust_max(a: np.ndarray, axis: int = 0) -> np.ndarray:
    """95th percentile ignoring NaN (NaN for an all-NaN column), without warnings."""
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanpercentile(a, 95, axis=axis)


def choose_anchor_frame(b20: np.ndarray, thr: float) -> tuple[int, np.ndarray]:
    """Pick the most extended, most frontal driving frame.

    b20 [T, 20, 3]. Score = 2 x extension (mean over the 19 bones of length / the bone's
    95th-percentile length over the clip, capped at 1, missing bones count 0) + frontality
    (shoulder width over torso length, relative to its clip 95th percentile) + 0.5 when the person
    faces the camera (left shoulder on the image right). Frames without a confident neck score -inf.
    Returns (frame, scores); frame is -1 if no frame has a confident neck.
    """
    b20 = np.asarray(b20, np.float64)
    lengths = bone_lengths(b20, thr)
    with np.errstate(divide="ignore", invalid="ignore"):
        ext = np.nan_to_num(np.minimum(lengths / _robust_max(lengths), 1.0)).mean(axis=1)
        shoulder = lengths[:, 0]
        hips_ok = (b20[:, [8, 11], 2] >= thr).all(axis=1) & (b20[:, 1, 2] >= thr)
        torso = np.hypot(*(b20[:, [8, 11], :2].mean(axis=1) - b20[:, 1, :2]).T)
        spread = np.where(hips_ok & (torso > 1e-9), shoulder / torso, np.nan)
        frontal = np.where(np.isfinite(spread), spread / _robust_max(spread), shoulder / _robust_max(shoulder))
    frontal = np.nan_to_num(np.minimum(frontal, 1.0))
    facing = (b20[:, 5, 0] > b20[:, 2, 0]) & (b20[:, [2, 5], 2] >= thr).all(axis=1)
    scores = 2.0 * ext + frontal + 0.5 * facing
    scores = np.where(b20[:, 1, 2] >= thr, scores, -np.inf)
    if not np.isfinite(scores).any():
        return -1, scores
    return int(np.argmax(scores)), scores


def improved_relative_ratios(src_len: np.ndarray, dst_len: np.ndarray, unit: float,
                             clamp: tuple[float, float]) -> tuple[np.ndarray, list[str]]:
    """Relative ratios of the improved mode.

    Left/right (and eye/ear) pairs first take the max *length* on each side, so a foreshortened or
    missing bone takes its twin; a bone still missing takes the torso ratio, else 1. Each ratio is
    then clamped to ``clamp``. ``unit`` is the global scale of the pair the lengths come from.
    """
    src = np.asarray(src_len, np.float64).copy()
    dst = np.asarray(dst_len, np.float64).copy()
    for a, b in SYMMETRIC_PAIRS + AVERAGED_PAIRS:
        src[a] = src[b] = np.fmax(src[a], src[b])
        dst[a] = dst[b] = np.fmax(dst[a], dst[b])
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = dst / (src * unit)
    bad = ~np.isfinite(rel) | (rel <= 0)
    warnings: list[str] = []
    if bad.any():
        torso_ok = not bad[6]
        fill = rel[6] if torso_ok else 1.0
        names = ", ".join(BONE_NAMES[i] for i in np.flatnonzero(bad))
        how = "the torso ratio" if torso_ok else "the global scale (torso missing too)"
        warnings.append(f"bone ratio missing on both sides for {names}: used {how}")
        rel[bad] = fill
    lo, hi = clamp
    clipped = np.clip(rel, lo, hi)
    for i in np.flatnonzero(clipped != rel):
        warnings.append(f"relative ratio of {BONE_NAMES[i]} ({rel[i]:.2f}) clamped to {clipped[i]:.2f}")
    return clipped, warnings


# --------------------------------------------------------------------------------------------
# argument checks
# --------------------------------------------------------------------------------------------
def _subject(seq: PoseSequence, name: str) -> np.ndarray:
    if not isinstance(seq, PoseSequence):
        raise ValueError(f"{name}: expected a PoseSequence, got {type(seq).__name__}")
    if seq.num_frames == 0:
        raise ValueError(f"{name}: the pose sequence has no frames")
    if seq.num_people == 0:
        raise ValueError(f"{name}: no person found in this pose input; run pose extraction on an "
                         f"image or video that shows the whole person")
    return seq.subject_keypoints.astype(np.float64)


def _single_frame(seq: PoseSequence, name: str, thr: float, warnings: list[str]) -> np.ndarray:
    kps = _subject(seq, name)
    if kps.shape[0] > 1:
        warnings.append(f"{name}: {kps.shape[0]} frames given, only frame 0 is used")
    frame = kps[0]
    if not (frame[:, 2] >= thr).any():
        raise ValueError(f"{name}: no person found (no keypoint reaches confidence {thr}); give a "
                         f"character image where the body is clearly visible")
    if (to_body20(frame)[1, 2]) < thr:
        raise ValueError(f"{name}: the character's shoulders are not visible (confidence < {thr}); "
                         f"retargeting needs at least the shoulders of the character")
    return frame


def canonical_mode(mode: str) -> str:
    """``mode`` with an old name (``MODE_ALIASES``: 'default' -> 'improved') replaced by the current one."""
    return MODE_ALIASES.get(mode, mode) if isinstance(mode, str) else mode


def _check_options(mode, out_width, out_height, reference, ratio_clamp, part_scale, threshold,
                   ref_tpose, drv_tpose) -> dict[str, float]:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES} (or the old name 'default' for 'improved'), "
                         f"got {mode!r}")
    if not isinstance(reference, PoseSequence):
        raise ValueError(f"reference: expected a PoseSequence, got {type(reference).__name__}")
    for name, v in (("out_width", out_width), ("out_height", out_height)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v <= 0:
            raise ValueError(f"{name} must be a positive integer (pixels of the output canvas), got {v!r}")
    ref_aspect = reference.width / reference.height
    out_aspect = out_width / out_height
    if abs(out_aspect / ref_aspect - 1.0) > ASPECT_TOLERANCE:
        raise ValueError(
            f"canvas mismatch: out_width x out_height = {out_width}x{out_height} does not have the aspect "
            f"of the reference canvas {reference.width}x{reference.height}; pass the size the reference "
            f"image is resized to for sampling")
    if not (0.0 < float(threshold) <= 1.0):
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
    lo, hi = (float(v) for v in ratio_clamp)
    if not (0.0 < lo <= 1.0 <= hi and math.isfinite(hi)):
        raise ValueError(f"ratio_clamp must be (low, high) with 0 < low <= 1 <= high, got {ratio_clamp!r}")
    scales = {"head": 1.0, "torso": 1.0, "arms": 1.0, "legs": 1.0}
    for k, v in (part_scale or {}).items():
        if k not in scales:
            raise ValueError(f"part_scale: unknown part {k!r}; use {sorted(scales)}")
        if not (math.isfinite(float(v)) and float(v) > 0):
            raise ValueError(f"part_scale[{k!r}] must be a positive number, got {v!r}")
        scales[k] = float(v)
    if (ref_tpose is None) != (drv_tpose is None):
        raise ValueError("ref_tpose and drv_tpose go together: give both T-pose images (the edited "
                         "reference and the edited driving frame) or neither")
    return scales


def _anchor_index(anchor_frame, mode: str, drv20: np.ndarray, thr: float) -> int:
    t = drv20.shape[0]
    if anchor_frame is not None:
        a = int(anchor_frame)
        if not -t <= a < t:
            raise ValueError(f"anchor_frame {anchor_frame} is outside the {t} driving frames")
        a %= t
        if drv20[a, 1, 2] < thr:
            raise ValueError(f"anchor_frame {a}: the driving subject's shoulders are not confident "
                             f"there; pick a frame where the person is clearly visible")
        return a
    if mode == "official":
        if drv20[0, 1, 2] < thr:
            raise ValueError("driving: official mode measures the bones on frame 0, but the subject's "
                             "shoulders are not confident there; use mode='improved' or pass anchor_frame")
        return 0
    a, _ = choose_anchor_frame(drv20, thr)
    if a < 0:
        raise ValueError(f"driving: the subject's shoulders never reach confidence {thr} in any frame; "
                         f"nothing to retarget")
    return a


# --------------------------------------------------------------------------------------------
# the API
# --------------------------------------------------------------------------------------------
def retarget(driving: PoseSequence, reference: PoseSequence, *, mode: str = "official",
             out_width: int, out_height: int, ref_tpose: PoseSequence | None = None,
             drv_tpose: PoseSequence | None = None, anchor_frame: int | None = None,
             ratio_clamp: tuple[float, float] = (0.5, 2.0), part_scale: dict[str, float] | None = None,
             keep_feet_on_ground: bool = True, threshold: float = 0.5) -> RetargetResult:
    """Retarget the driving subject's motion onto the reference character (Animation mode).

    driving: the tracked driving video; reference: the character image through the same
    extraction (frame 0 of its subject is used). ref_tpose/drv_tpose (both or neither): T-pose
    versions of the reference and of a driving frame; bone ratios then come from them (the
    paper's auxiliary route). anchor_frame: the driving frame to measure and place on (default:
    chosen automatically in 'improved' mode, 0 in 'official' mode). ratio_clamp and
    keep_feet_on_ground apply to 'improved' mode only; part_scale multiplies the ratios of the
    head / torso / arms / legs bones in both modes. ``threshold`` is the joint confidence of the
    'improved' mode; 'official' mode uses the official fixed scores (see ``_retarget_official``).
    Driving frames whose whole body lies at negative x or y take the previous frame's body
    (official, see ``keypoints.hold_invalid_bodies``) in both modes. ``mode='default'`` (the old
    name of 'improved') is accepted; the result then says 'improved'.
    """
    mode = canonical_mode(mode)
    scales = _check_options(mode, out_width, out_height, reference, ratio_clamp, part_scale,
                            threshold, ref_tpose, drv_tpose)
    thr = float(threshold)
    warnings: list[str] = []
    raw = _subject(driving, "driving")
    drv = hold_invalid_bodies(raw)
    held = int(invalid_body_frames(raw)[1:].sum())
    if held:
        warnings.append(f"driving: {held} frames have their whole body at negative x or y (a failed "
                        f"detection); they take the previous frame's body, as the official extraction does")
    if invalid_body_frames(raw)[0]:
        warnings.append("driving: frame 0 has its whole body at negative x or y (a failed detection) and "
                        "no previous frame to take a body from; it is kept as it is")
    ref = _single_frame(reference, "reference", thr, warnings)
    if mode == "official":
        out, ratios, g, a, kind, method = _retarget_official(
            drv, ref, driving, reference, out_width, out_height, anchor_frame, scales, thr, ref_tpose,
            drv_tpose, warnings)
    else:
        out, ratios, g, a, kind, method = _retarget_improved(
            drv, ref, driving, reference, out_width, out_height, anchor_frame, scales, thr, ref_tpose,
            drv_tpose, ratio_clamp, keep_feet_on_ground, warnings)

    note = f"retargeted ({mode}, anchor frame {a}, {kind})"
    poses = driving.only_subject()
    poses = poses.with_canvas(out_width, out_height, retargeted=True, notes=tuple(driving.notes) + (note,))
    poses = poses.with_subject_keypoints(out.astype(np.float32))
    return RetargetResult(poses=poses, ratios=ratios, anchor_frame=a, body_type=kind, scale=float(g),
                          warnings=warnings, relative_ratios=ratios / g, mode=mode,
                          scale_method=method)


def _fit(reference: PoseSequence, out_width: int, out_height: int) -> tuple[float, np.ndarray]:
    """Letterbox of the reference canvas onto the output canvas: (scale, shift), the pack's one
    keypoint letterbox (``resolution.letterbox_transform``: the official ``padding_resize`` placement,
    whole-pixel bars), as if the reference image had been letterboxed to the output size before its
    pose was extracted (official: process_pipepline.py resizes the reference with ``resize_by_area``,
    a ``padding_resize``). The identity when the reference pose is on the output canvas already."""
    scale, ox, oy = letterbox_transform(reference.width, reference.height, out_width, out_height)
    return scale, np.array([ox, oy])


def _tpose_lengths(ref_tpose, drv_tpose, thr: float, scale_thr: float, warnings: list[str]):
    tp_ref = to_body20(_single_frame(ref_tpose, "ref_tpose", thr, warnings)).astype(np.float64)
    tp_drv = to_body20(_single_frame(drv_tpose, "drv_tpose", thr, warnings)).astype(np.float64)
    unit, _ = global_scale(tp_drv, tp_ref, (drv_tpose.width, drv_tpose.height),
                           (ref_tpose.width, ref_tpose.height), scale_thr)
    return unit, bone_lengths(tp_drv, thr), bone_lengths(tp_ref, thr)


def _official_tpose_lengths(ref_tpose, drv_tpose, drv_a, dwh, ref_o, out_width, out_height, thr, warnings):
    """The official edited-pose route (official: retarget_pose.py, retarget_pose with
    use_edit_for_base): the edited reference on the output canvas, its own ``scale_min`` (strict 0.5
    scores), measured on its truncated canvas, every bone whatever its score; when that scale fell
    back to the canvas area, the official size correction of each pair. Returns (unit, driving
    T-pose lengths, reference T-pose lengths) for ``official_relative_ratios``."""
    tp_ref = _single_frame(ref_tpose, "ref_tpose", thr, warnings).copy()
    fit, shift = _fit(ref_tpose, out_width, out_height)
    tp_ref[:, :2] = tp_ref[:, :2] * fit + shift
    tp_ref = to_body20(tp_ref).astype(np.float64)
    tp_drv = to_body20(_single_frame(drv_tpose, "drv_tpose", thr, warnings)).astype(np.float64)
    twh = (drv_tpose.width, drv_tpose.height)
    s_edit, method = official_scale(tp_drv, tp_ref, twh, (out_width, out_height))
    kx, ky = official_canvas_factors(out_width, out_height, s_edit)
    measured = tp_ref * np.array([kx, ky, 1.0])
    unit = 1.0 / s_edit
    if method == "canvas_area":
        owh = (out_width, out_height)
        k_drv = official_edit_compensation(drv_a, tp_drv, dwh, twh)
        k_ref = official_edit_compensation(ref_o, tp_ref, owh, owh)
        for name, k in (("drv_tpose", k_drv), ("ref_tpose", k_ref)):
            if not (np.isfinite(k) and k > 0):
                raise ValueError(f"{name}: the head or the shoulders of this T-pose (or of the pose it edits) "
                                 f"have no width, so the official size correction cannot be measured; give a "
                                 f"T-pose where the face and both shoulders are visible")
        unit *= k_drv / k_ref
    return unit, bone_lengths(tp_drv, -np.inf), bone_lengths(measured, -np.inf)


def _body_type_warnings(ref_type: str, drv_type: str, a: int, warnings: list[str]) -> None:
    if ref_type != "full_body":
        missing = "ankles" if ref_type == "three_quarter" else "hips and ankles"
        warnings.append(f"reference: the character's {missing} are not visible, so this is a "
                        f"{ref_type.replace('_', ' ')} retarget anchored on the neck; missing leg "
                        f"bones take the ratios of their twin / the torso")
    if drv_type != "full_body" and ref_type == "full_body":
        warnings.append(f"driving frame {a}: the subject is not fully in frame ({drv_type}); "
                        f"anchoring on the neck")


def _retarget_official(drv, ref, driving, reference, out_width, out_height, anchor_frame, scales, thr,
                       ref_tpose, drv_tpose, warnings):
    """The official plain retargeting (official: wan/modules/animate/preprocess/retarget_pose.py,
    retarget_pose, write_to_poses and get_scaled_pose), reproduced to float precision.

    The official pipeline extracts the reference pose on the reference image resized to the
    sampling canvas and draws there, so the reference is first placed on the output canvas. Then:
    ``scale_min`` from nose-ankle (else nose-hip) heights with scores strictly above 0.5; the
    reference measured on a canvas of ``int(W * scale_min)`` x ``int(H * scale_min)`` (the truncation
    shifts the character by up to ~1/scale_min px); every joint retargeted whatever its score;
    ratios from driving frame 0 (or ``anchor_frame``), left/right max, eye/ear mean; feet clamped
    to half the calf; offsets from the anchor frame (lower ankle on the reference's higher
    ankle-toe midpoint and the hip midpoints for a full body, else the neck); hands scaled by the
    shoulder ratio, moved from score 0.4, swapped by the official right-root test and truncated to
    whole pixels (``retarget_official.place_hands_official``). Body joints keep their scores; face
    landmarks (not part of the official output) follow the nose. With T-poses the bone ratios
    come from them the official way (``_official_tpose_lengths``); the rest is unchanged.
    """
    fit, shift = _fit(reference, out_width, out_height)
    ref = ref.copy()
    ref[:, :2] = ref[:, :2] * fit + shift
    drv20, ref20 = to_body20(drv).astype(np.float64), to_body20(ref).astype(np.float64)
    a = _anchor_index(anchor_frame, "official", drv20, thr)
    dwh = (driving.width, driving.height)
    scale_min, method = official_scale(drv20[a], ref20, dwh, (out_width, out_height))
    g = 1.0 / scale_min
    kx, ky = official_canvas_factors(out_width, out_height, scale_min)
    ref_m = ref20.copy()  # the reference as the official code measures it (truncated canvas)
    ref_m[:, 0] *= kx
    ref_m[:, 1] *= ky

    if ref_tpose is not None:
        unit, src_len, dst_len = _official_tpose_lengths(ref_tpose, drv_tpose, drv20[a], dwh, ref20, out_width,
                                                         out_height, thr, warnings)
    else:
        unit, src_len, dst_len = g, bone_lengths(drv20[a], -np.inf), bone_lengths(ref_m, -np.inf)
    rel, w = official_relative_ratios(src_len, dst_len, unit)
    warnings += w
    rel = apply_part_scale(rel, scales)
    ratios = rel * g

    ref_type = official_body_type(ref20, out_height)
    drv_type = official_body_type(drv20[a], driving.height)
    kind = min_body_type(drv_type, ref_type)
    _body_type_warnings(ref_type, drv_type, a, warnings)
    every = np.ones(drv20.shape[:2], bool)
    chain = rebuild_chain(drv20[..., :2], every, ratios, g)
    res_a = chain.out[a]
    if kind == "full_body":
        ref_y = max((ref_m[10, 1] + ref_m[19, 1]) / 2, (ref_m[13, 1] + ref_m[18, 1]) / 2)
        off = np.array([ref_m[[8, 11], 0].mean() - res_a[[8, 11], 0].mean(), ref_y - res_a[[10, 13], 1].max()])
    else:
        off = ref_m[1, :2] - res_a[1]

    ok133 = drv[..., 2] >= thr
    ok133[:, :23] = True  # every body and foot point is moved
    ok133[:, 91:] = False  # hands: placed below
    k = max(ratios[0], ratios[1])
    xy, moved = assemble_133(drv, ok133, chain, (k, k), (ratios[13] + ratios[15]) / 2, snap_hand_root=True)
    out = drv.copy()
    out[..., :2] = np.where(moved[..., None], xy + off, drv[..., :2])
    hands, _, _ = place_hands_official(drv, drv20[:, [4, 7], :2], chain.out[:, [4, 7]] + off, k, dwh)
    out[:, 91:133] = hands
    # ratios and scale are reported in reference pixels per driving pixel
    return out, ratios / fit, g / fit, a, kind, method


def _retarget_improved(drv, ref, driving, reference, out_width, out_height, anchor_frame, scales, thr,
                      ref_tpose, drv_tpose, ratio_clamp, keep_feet_on_ground, warnings):
    """The pack's own retargeting ('improved' mode): see the module docstring."""
    drv = swap_crossed_hands(drv, drv[..., 2] >= thr, strict=True)
    drv20, ref20 = to_body20(drv).astype(np.float64), to_body20(ref).astype(np.float64)
    drv_ok, ref_ok = drv20[..., 2] >= thr, ref20[:, 2] >= thr
    a = _anchor_index(anchor_frame, "improved", drv20, thr)
    dwh, rwh = (driving.width, driving.height), (reference.width, reference.height)
    g, scale_method = global_scale(drv20[a], ref20, dwh, rwh, thr)

    # per-bone ratios
    if ref_tpose is not None:
        unit, src_len, dst_len = _tpose_lengths(ref_tpose, drv_tpose, thr, thr, warnings)
    else:
        unit, src_len, dst_len = g, bone_lengths(drv20[a], thr), bone_lengths(ref20, thr)
    rel, w = improved_relative_ratios(src_len, dst_len, unit, (float(ratio_clamp[0]), float(ratio_clamp[1])))
    warnings += w
    rel = apply_part_scale(rel, scales)
    ratios = rel * g

    # body type and anchoring
    ref_type = body_type(ref20, *rwh)
    drv_type = body_type(drv20[a], *dwh)
    kind = min_body_type(drv_type, ref_type)
    _body_type_warnings(ref_type, drv_type, a, warnings)
    chain = rebuild_chain(drv20[..., :2], drv_ok, ratios, g)
    if (~drv_ok[:, 1] & drv_ok.any(axis=1)).any():
        n = int((~drv_ok[:, 1] & drv_ok.any(axis=1)).sum())
        warnings.append(f"driving: {n} frames have no confident neck; their torso keeps the "
                        f"driver's proportions")

    offset, dy, kind = _placement(chain, ref20[:, :2], ref_ok, drv20[..., :2], drv_ok, a, g, kind,
                                  keep_feet_on_ground, warnings)

    # write back into 133 points, then to the output canvas
    hands = (ratios[3], ratios[5])
    face = (ratios[13] + ratios[15]) / 2
    ok133 = drv[..., 2] >= thr
    xy, moved = assemble_133(drv, ok133, chain, hands, face, snap_hand_root=False)
    xy = xy + offset + np.stack([np.zeros_like(dy), dy], axis=1)[:, None]
    fit, shift = _fit(reference, out_width, out_height)
    xy = xy * fit + shift
    out = drv.copy()
    out[..., :2] = np.where(moved[..., None], xy, drv[..., :2])
    return out, ratios, g, a, kind, scale_method


def _placement(chain, ref_xy, ref_ok, drv_xy, drv_ok, a: int, g: float, kind: str, keep_feet: bool,
               warnings: list[str]) -> tuple[np.ndarray, np.ndarray, str]:
    """Translation (reference px) from the anchor frame, the per-frame ground correction dy and
    the body type really used (a full body falls back to the neck when its feet are not confident)."""
    t = chain.out.shape[0]
    dy = np.zeros(t)
    res_a, ok_a = chain.out[a], chain.placed[a]
    if kind == "full_body":
        ref_y, res_y = float(lowest_foot_y(ref_xy, ref_ok)), float(lowest_foot_y(res_a, ok_a))
        off = np.array([hip_mid_x(ref_xy, ref_ok) - hip_mid_x(res_a, ok_a), ref_y - res_y])
        if np.isfinite(off).all():
            if keep_feet:
                dy = _ground_follow(chain, drv_xy, drv_ok, a, g, off[1])
            return off, dy, kind
        warnings.append(f"feet or hips below the threshold in the reference or driving frame {a}: "
                        f"anchoring on the neck instead")
        kind = "three_quarter"
    return ref_xy[1] - res_a[1], dy, kind


def _ground_follow(chain, drv_xy, drv_ok, a: int, g: float, off_y: float) -> np.ndarray:
    """Per-frame vertical shift so the result's lowest foot follows the driver's lowest foot."""
    drv_low = lowest_foot_y(drv_xy, drv_ok)
    res_low = lowest_foot_y(chain.out, chain.placed) + off_y
    target = res_low[a] + (drv_low - drv_low[a]) * g
    dy = target - res_low
    valid = np.isfinite(dy)
    if not valid.any():
        return np.zeros_like(dy)
    frames = np.arange(dy.shape[0])
    return np.interp(frames, frames[valid], dy[valid])
