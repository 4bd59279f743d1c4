"""Temporal stability of keypoint tracks: a confidence-aware One-Euro filter and gap filling.

The official pipeline has no smoothing at all (wan/modules/animate/preprocess/pose2d.py and
pose2d_utils.py use every frame's keypoints as they are); jittering and vanishing limbs are a
common complaint about it. Here (off by default, as official):

* :func:`smooth_keypoints` runs a One-Euro filter (Casiraghi et al. 2012) on every point of a
  [T, K, 3] track. Points below ``conf_threshold`` do not update the filter. A point that drops out
  is *held* at its last filtered position for up to ``max_gap`` frames with a decaying confidence
  (``last_conf * hold_decay ** frames_missing``), never snapped to (0, 0).
* :func:`smooth_sequence` does that for the people of a :class:`PoseSequence`.
* :func:`fill_missing_frames` fills frames where no person was found (hold or interpolate).

Coordinates are filtered in units of ``scale`` (the person's size, estimated from the data when not
given), so one set of parameters behaves the same at any resolution. ``strength`` (0..1) maps to
``min_cutoff`` and ``beta``; 0 turns the filter off (holding still applies).
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from .pose_types import PoseSequence

# strength 0 -> no smoothing; 1 -> heavy. Log-linear in between. Units: Hz and 1 / (scale units).
_MIN_CUTOFF_RANGE = (4.0, 0.1)
_BETA_RANGE = (40.0, 3.0)


def one_euro_params(strength: float) -> tuple[float, float]:
    """(min_cutoff Hz, beta) for a ``strength`` in 0..1 (0 = off: an infinite cutoff)."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in 0..1, got {strength}")
    if strength == 0.0:
        return math.inf, 0.0
    lo, hi = _MIN_CUTOFF_RANGE
    b0, b1 = _BETA_RANGE
    return float(lo * (hi / lo) ** strength), float(b0 * (b1 / b0) ** strength)


def _alpha(cutoff, dt):
    # alpha = 1 / (1 + tau / dt), tau = 1 / (2 pi fc); an infinite cutoff gives alpha = 1.
    with np.errstate(divide="ignore"):
        return 1.0 / (1.0 + 1.0 / (2.0 * np.pi * cutoff * dt))


def _good_mask(kps: np.ndarray, conf_threshold: float) -> np.ndarray:
    return (kps[..., 2] >= conf_threshold) & np.any(kps[..., :2] != 0, axis=-1)


def estimate_scale(kps: np.ndarray, conf_threshold: float = 0.3) -> float:
    """A person's size in pixels: the median over frames of the longer side of the confident points' box."""
    kps = np.asarray(kps, dtype=np.float32)
    sizes = []
    for frame in kps.reshape(-1, kps.shape[-2], 3):
        good = frame[:, 2] >= conf_threshold
        if good.sum() >= 2:
            pts = frame[good, :2]
            size = float((pts.max(axis=0) - pts.min(axis=0)).max())
            if size > 0:
                sizes.append(size)
    return float(np.median(sizes)) if sizes else 1.0


def _check_track(kps: np.ndarray) -> np.ndarray:
    kps = np.asarray(kps, dtype=np.float32)
    if kps.ndim != 3 or kps.shape[2] != 3:
        raise ValueError(f"keypoint track must be [T, K, 3] (x, y, confidence), got {kps.shape}")
    return kps


def _one_euro_pass(kps: np.ndarray, fps: float, min_cutoff: float, beta: float, d_cutoff: float,
                   conf_threshold: float, max_gap: int, hold_decay: float,
                   scale: float) -> tuple[np.ndarray, np.ndarray]:
    t_len, k = kps.shape[:2]
    out = kps.copy()
    held = np.zeros((t_len, k), bool)
    x_hat = np.zeros((k, 2), np.float64)
    dx_hat = np.zeros((k, 2), np.float64)
    last_t = np.full(k, -1, np.int64)
    last_conf = np.zeros(k, np.float64)
    good_all = _good_mask(kps, conf_threshold)
    for t in range(t_len):
        x = kps[t, :, :2].astype(np.float64)
        conf = kps[t, :, 2]
        good = good_all[t]
        # a point seen for the first time, or after a gap longer than max_gap, restarts its filter
        fresh = good & ((last_t < 0) | (t - last_t > max_gap + 1))
        upd = good & ~fresh
        x_hat[fresh] = x[fresh]
        dx_hat[fresh] = 0.0
        if upd.any():
            dt = ((t - last_t[upd]) / fps)[:, None]
            dx = (x[upd] - x_hat[upd]) / dt
            dx_hat[upd] += _alpha(d_cutoff, dt) * (dx - dx_hat[upd])
            speed = np.linalg.norm(dx_hat[upd], axis=1, keepdims=True) / scale
            x_hat[upd] += _alpha(min_cutoff + beta * speed, dt) * (x[upd] - x_hat[upd])
        last_t[good] = t
        last_conf[good] = conf[good]
        out[t, good, :2] = x_hat[good]
        lost = np.flatnonzero(~good & (last_t >= 0))
        if lost.size:
            gap = t - last_t[lost]
            within = gap <= max_gap
            # hold the last filtered position; inside max_gap with a decaying confidence, beyond it
            # with the (low) raw confidence -- never snapped to (0, 0)
            out[t, lost, :2] = x_hat[lost]
            hold = lost[within]
            out[t, hold, 2] = last_conf[hold] * hold_decay ** gap[within]
            held[t, hold] = True
            beyond = lost[~within]
            out[t, beyond, 2] = np.where(np.any(x[beyond] != 0, axis=1), conf[beyond], 0.0)
    return out, held


def smooth_keypoints(kps: np.ndarray, fps: float = 30.0, strength: float = 0.5, *,
                     min_cutoff: float | None = None, beta: float | None = None, d_cutoff: float = 1.0,
                     conf_threshold: float = 0.3, max_gap: int | None = None, hold_decay: float = 0.97,
                     scale: float | None = None, bidirectional: bool = False,
                     return_held: bool = False):
    """One-Euro filter a keypoint track [T, K, 3] (pixels, confidences); returns the same shape.

    fps: frame rate (0 or less -> 30). strength: 0..1 preset for ``min_cutoff``/``beta`` (explicit
    values win). d_cutoff: cutoff (Hz) of the speed estimate. conf_threshold: points below it do not
    update the filter. max_gap: frames a lost point is held (default about 0.5 s). hold_decay: held
    confidence = last confidence * hold_decay ** frames_missing. scale: person size in pixels that
    ``beta`` is relative to (default: estimated). bidirectional: average a forward and a backward
    pass (no lag, offline only). With ``return_held`` also returns a bool [T, K] of held points.
    """
    kps = _check_track(kps)
    fps = float(fps) if fps and fps > 0 else 30.0
    mc, b = one_euro_params(strength)
    mc = mc if min_cutoff is None else float(min_cutoff)
    b = b if beta is None else float(beta)
    if mc <= 0 or d_cutoff <= 0 or b < 0:
        raise ValueError("min_cutoff and d_cutoff must be > 0 and beta >= 0")
    if not 0.0 < hold_decay <= 1.0:
        raise ValueError(f"hold_decay must be in (0, 1], got {hold_decay}")
    gap = int(round(0.5 * fps)) if max_gap is None else int(max_gap)
    if gap < 0:
        raise ValueError(f"max_gap must be >= 0 frames, got {max_gap}")
    sc = float(scale) if scale else estimate_scale(kps, conf_threshold)
    args = (fps, mc, b, d_cutoff, conf_threshold, gap, hold_decay, sc)
    out, held = _one_euro_pass(kps, *args)
    if bidirectional and kps.shape[0] > 1:
        back, back_held = _one_euro_pass(kps[::-1].copy(), *args)
        back, back_held = back[::-1], back_held[::-1]
        good = _good_mask(kps, conf_threshold)
        merged = out.copy()
        merged[good, :2] = 0.5 * (out[good, :2] + back[good, :2])
        only_back = ~good & back_held & ~held
        merged[only_back] = back[only_back]
        two = ~good & held & back_held
        merged[two, :2] = 0.5 * (out[two, :2] + back[two, :2])
        merged[two, 2] = np.maximum(out[two, 2], back[two, 2])
        out, held = merged, held | back_held
    return (out, held) if return_held else out


def smooth_sequence(seq: PoseSequence, strength: float = 0.5, people: str = "all", **kwargs) -> PoseSequence:
    """A copy of ``seq`` with each person's track smoothed by :func:`smooth_keypoints`.

    people: 'all' or 'subject'. ``fps`` defaults to the sequence's (30 when unknown) and
    ``bidirectional`` to True (offline: no lag). ``detected`` is kept as it was: held points are not
    detections.
    """
    if people not in ("all", "subject"):
        raise ValueError(f"people must be 'all' or 'subject', got {people!r}")
    kwargs.setdefault("fps", seq.fps if seq.fps > 0 else 30.0)
    kwargs.setdefault("bidirectional", True)
    kwargs.pop("return_held", None)
    new = seq.keypoints.copy()
    cols = range(seq.num_people) if people == "all" else ([seq.subject] if seq.num_people else [])
    for p in cols:
        new[:, p] = smooth_keypoints(seq.keypoints[:, p], strength=strength, **kwargs)
    return replace(seq, keypoints=new, notes=seq.notes + (f"smoothed one-euro strength={strength:g}",))


def fill_missing_frames(seq_kps: np.ndarray, present_mask: np.ndarray,
                        mode: str = "hold") -> tuple[np.ndarray, list[int]]:
    """Fill frames where no person was found; returns (filled copy, indices of the empty frames).

    seq_kps: [T, ...] (for example [T, 133, 3]); present_mask: bool [T].
    mode 'hold': copy the nearest earlier present frame (the first present frame for leading gaps);
    'interpolate': linear between the present neighbours (hold at the ends; a point known on one
    side only is taken from that side); 'raise': ValueError naming the empty frames. With no present
    frame at all, 'hold'/'interpolate' return the input unchanged.
    """
    kps = np.asarray(seq_kps)
    present = np.asarray(present_mask, dtype=bool).reshape(-1)
    if kps.shape[0] != present.shape[0]:
        raise ValueError(f"present_mask has {present.shape[0]} entries for {kps.shape[0]} frames")
    if mode not in ("hold", "interpolate", "raise"):
        raise ValueError(f"mode must be 'hold', 'interpolate' or 'raise', got {mode!r}")
    missing = [int(i) for i in np.flatnonzero(~present)]
    if mode == "raise" and missing:
        shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
        raise ValueError(f"no person found in {len(missing)} frame(s): {shown}; pick mode 'hold' or "
                         "'interpolate' to fill them, or trim the video")
    out = kps.copy()
    have = np.flatnonzero(present)
    if not missing or have.size == 0:
        return out, missing
    for i in missing:
        after = int(np.searchsorted(have, i))
        prev = int(have[after - 1]) if after > 0 else None
        nxt = int(have[after]) if after < have.size else None
        if prev is None:
            out[i] = kps[nxt]
        elif nxt is None or mode == "hold":
            out[i] = kps[prev]
        else:
            w = (i - prev) / (nxt - prev)
            a, b = kps[prev].astype(np.float32), kps[nxt].astype(np.float32)
            mixed = (1 - w) * a + w * b
            if kps.shape[-1] == 3:
                a_ok, b_ok = a[..., 2:] > 0, b[..., 2:] > 0
                mixed = np.where(a_ok & ~b_ok, a, np.where(b_ok & ~a_ok, b, mixed))
            out[i] = mixed.astype(out.dtype)
    return out, missing
