"""Colour statistics, drift measurement and correction between long-video segments.

Each segment after the first is conditioned on the previous segment's last decoded frames, so a
small colour cast from every VAE decode / re-encode round trip builds up over a long video
(a common complaint about long videos). Matching every frame to the *reference image* (a peer pack's
``colormatch``) shifts the whole video towards the reference's colours. The fix here:
measure a new segment's cast on the frames it shares with the previous segment (the guidance
frames it regenerates) and undo it for the whole new segment, in Lab, with a strength knob.

Frames are float 0..1 RGB, [T, H, W, 3] or one [H, W, 3] frame (numpy). Lab comes from
``cv2.cvtColor`` on float32 (L 0..100, a/b about -128..127); a distance of 1 in Lab is about one
just-noticeable difference (Delta E 1976).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .masks import binary


CHUNK = 8  # frames converted at a time, so a 77-frame 720p segment never needs several GB


def _raw(frames: Any, name: str = "frames") -> np.ndarray:
    """The frames as a 4-D array [T, H, W, 3], not yet converted."""
    f = np.asarray(frames)
    if f.ndim == 3:
        f = f[None]
    if f.ndim != 4 or f.shape[-1] != 3:
        raise ValueError(f"{name} must be RGB [T, H, W, 3] or [H, W, 3], got shape {np.shape(frames)}")
    return f


def _as_float(f: np.ndarray) -> np.ndarray:
    if f.dtype == np.uint8:
        return f.astype(np.float32) / np.float32(255.0)
    return f.astype(np.float32, copy=False)


def _frames(frames: Any, name: str = "frames") -> np.ndarray:
    return _as_float(_raw(frames, name))


def _chunks(n: int):
    for i in range(0, n, CHUNK):
        yield slice(i, min(i + CHUNK, n))


def to_lab(frames: Any) -> np.ndarray:
    """float32 Lab of RGB frames (0..1 float or uint8), same leading shape."""
    f = _frames(frames)
    t, h, w, _ = f.shape
    lab = cv2.cvtColor(np.ascontiguousarray(np.clip(f, 0, 1)).reshape(t * h, w, 3), cv2.COLOR_RGB2Lab)
    return lab.reshape(t, h, w, 3)


def from_lab(lab: np.ndarray) -> np.ndarray:
    """float32 RGB 0..1 of Lab frames [T, H, W, 3]."""
    t, h, w, _ = lab.shape
    rgb = cv2.cvtColor(np.ascontiguousarray(lab, np.float32).reshape(t * h, w, 3), cv2.COLOR_Lab2RGB)
    return np.clip(rgb.reshape(t, h, w, 3), 0.0, 1.0)


def _region(mask: Any, shape: tuple[int, ...], name: str) -> np.ndarray | None:
    if mask is None:
        return None
    m = binary(np.asarray(mask))
    if m.ndim == 2:
        m = np.broadcast_to(m, shape)
    if m.shape != shape:
        raise ValueError(f"{name} must be [H, W] or [T, H, W] matching the frames {shape}, got {m.shape}")
    return m


def lab_stats(frames: Any, mask: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """(mean [3], std [3]) of L, a, b over all frames, within ``mask`` (on pixels) when given."""
    f = _raw(frames)
    m = _region(mask, f.shape[:3], "mask")
    count, total, squares = 0, np.zeros(3), np.zeros(3)
    for c in _chunks(len(f)):
        lab = to_lab(f[c])
        px = (lab.reshape(-1, 3) if m is None else lab[m[c]]).astype(np.float64)
        count += len(px)
        total += px.sum(axis=0)
        squares += (px * px).sum(axis=0)
    if count == 0:
        raise ValueError("the mask selects no pixel to measure colour on")
    mean = total / count
    return mean, np.sqrt(np.maximum(squares / count - mean * mean, 0.0))


@dataclass(frozen=True)
class LabTransfer:
    """Per-channel Lab mean/std transfer ``(x - mean_src) * gain + mean_ref``."""

    mean_src: np.ndarray
    mean_ref: np.ndarray
    gain: np.ndarray

    def apply(self, frames: Any, strength: float = 1.0) -> np.ndarray:
        """Corrected float32 RGB frames; ``strength`` 0 = unchanged, 1 = full transfer."""
        f = _raw(frames)
        out = np.empty(f.shape, np.float32)
        # lab + s * (full - lab) folded into one per-channel affine map
        gain = 1 + np.float32(strength) * (self.gain.astype(np.float32) - 1)
        shift = np.float32(strength) * (self.mean_ref - self.gain * self.mean_src).astype(np.float32)
        for c in _chunks(len(f)):
            out[c] = from_lab(to_lab(f[c]) * gain + shift)
        return out


def fit_colour_transfer(frames: Any, ref_frames: Any, mask: Any = None, ref_mask: Any = None,
                        max_gain: float = 2.0) -> LabTransfer:
    """Transfer taking ``frames``' Lab statistics to ``ref_frames``' (gains clamped to 1/max_gain..max_gain)."""
    ms, ss = lab_stats(frames, mask)
    mr, sr = lab_stats(ref_frames, ref_mask)
    gain = np.where(ss > 1e-3, sr / np.maximum(ss, 1e-3), 1.0)
    gain = np.clip(gain, 1.0 / max_gain, max_gain)
    return LabTransfer(ms, mr, gain)


@dataclass(frozen=True)
class RGBAffine:
    """Affine colour map ``[r, g, b, 1] @ matrix`` (matrix [4, 3]) fitted on corresponding pixels."""

    matrix: np.ndarray

    def apply(self, frames: Any, strength: float = 1.0) -> np.ndarray:
        f = _raw(frames)
        mat = (np.eye(3) + strength * (self.matrix[:3] - np.eye(3))).astype(np.float32)
        off = (strength * self.matrix[3]).astype(np.float32)
        out = np.empty(f.shape, np.float32)
        for c in _chunks(len(f)):
            np.clip(_as_float(f[c]) @ mat + off, 0.0, 1.0, out=out[c])
        return out


def fit_rgb_affine(frames: Any, ref_frames: Any, mask: Any = None, ridge: float = 1e-3,
                   max_pixels: int = 200_000) -> RGBAffine:
    """Least-squares affine RGB map taking ``frames`` onto the *same pixels* of ``ref_frames``.

    Needs pixel correspondence (the shared frames of two segments show the same picture); a
    small ridge pulls the map towards identity so a flat region cannot make it degenerate.
    """
    a, b = _frames(frames), _frames(ref_frames, "ref_frames")
    if a.shape != b.shape:
        raise ValueError(f"frames {a.shape} and ref_frames {b.shape} must match pixel for pixel")
    m = _region(mask, a.shape[:3], "mask")
    x, y = (a.reshape(-1, 3), b.reshape(-1, 3)) if m is None else (a[m], b[m])
    if len(x) == 0:
        raise ValueError("the mask selects no pixel to measure colour on")
    if len(x) > max_pixels:
        idx = np.random.default_rng(0).choice(len(x), max_pixels, replace=False)
        x, y = x[idx], y[idx]
    xh = np.concatenate([x, np.ones((len(x), 1), np.float32)], axis=1).astype(np.float64)
    eye = np.vstack([np.eye(3), np.zeros((1, 3))])
    lam = ridge * len(x)
    mat = np.linalg.solve(xh.T @ xh + lam * np.eye(4), xh.T @ y.astype(np.float64) + lam * eye)
    return RGBAffine(mat)


def match_colour(frames: Any, ref_frames: Any, strength: float = 1.0, mask: Any = None,
                 shared: Any = None, ref_mask: Any = None, method: str = "lab") -> np.ndarray:
    """Correct a new segment so its shared frames match the previous segment's versions of them.

    frames: the new segment [T, H, W, 3]. ref_frames: the previous segment's frames for the
        shared positions (its last ``guidance`` frames) [g, H, W, 3].
    shared: which frames of ``frames`` those are (slice or index list); default the first g.
    mask: optional region to measure on, [H, W] or [T, H, W] for ``frames`` (e.g. the
        environment in replacement mode); ``ref_mask`` defaults to its shared part.
    method: ``"lab"`` per-channel mean/std transfer in Lab (no pixel correspondence needed);
        ``"rgb_affine"`` a least-squares affine RGB map between the shared frames pixel for pixel
        (also removes per-channel gains, which Lab statistics only partly capture).
    The correction is fitted on the shared frames only and applied to the whole segment. Never
    pass the reference image here: that shifts the whole video to the reference's colours.
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"colour match strength must be within 0..1, got {strength}")
    if method not in ("lab", "rgb_affine"):
        raise ValueError(f"colour match method must be 'lab' or 'rgb_affine', got {method!r}")
    f = _frames(frames)
    ref = _frames(ref_frames, "ref_frames")
    if shared is None:
        shared = slice(0, len(ref))
    part = f[shared]
    if len(part) != len(ref):
        raise ValueError(f"{len(part)} shared frames of the new segment but {len(ref)} reference frames")
    if part.shape[1:] != ref.shape[1:]:
        raise ValueError(f"shared frames {part.shape[1:]} and reference frames {ref.shape[1:]} differ in size")
    if strength == 0:
        return f.copy()
    region = _region(mask, f.shape[:3], "mask")
    part_mask = None if region is None else region[shared]
    if method == "rgb_affine":
        use = part_mask if part_mask is not None and part_mask.any() else None
        return fit_rgb_affine(part, ref, use).apply(f, strength)
    if ref_mask is None:
        ref_mask = part_mask
    try:
        tr = fit_colour_transfer(part, ref, part_mask, ref_mask)
    except ValueError:  # empty region: fall back to the whole frame
        tr = fit_colour_transfer(part, ref)
    return tr.apply(f, strength)


def crossfade_weights(n: int) -> np.ndarray:
    """Weights of the *new* frames over ``n`` overlapping frames: (k+1)/(n+1), rising linearly."""
    if n < 0:
        raise ValueError(f"overlap length must be >= 0, got {n}")
    return (np.arange(1, n + 1, dtype=np.float32) / np.float32(n + 1))


def crossfade(prev_tail: Any, new_head: Any) -> Any:
    """Linear blend of the overlapping frames: ``prev * (1 - w) + new * w`` with ``crossfade_weights``.

    Works on numpy arrays and torch tensors [n, ...].
    """
    if tuple(prev_tail.shape) != tuple(new_head.shape):
        raise ValueError(f"overlap frames differ in shape: {tuple(prev_tail.shape)} vs {tuple(new_head.shape)}")
    n = prev_tail.shape[0]
    w = crossfade_weights(n).reshape((n,) + (1,) * (len(prev_tail.shape) - 1))
    if type(prev_tail).__module__.split(".")[0] == "torch":
        import torch

        w = torch.from_numpy(w).to(device=prev_tail.device, dtype=prev_tail.dtype)
    return prev_tail * (1 - w) + new_head * w


def colour_drift(frames: Any, source_frames: Any, region_mask: Any = None, per_pixel: bool = True) -> np.ndarray:
    """Per-frame Lab distance (Delta E 1976) between frames and their source frames, float64 [T].

    per_pixel=True: the mean over the region of each pixel's distance (counts detail changes too);
    False: the distance between the region's mean colours (a pure colour-cast measure).
    region_mask: where to measure (on pixels), e.g. the environment (``1 - character mask``);
    a frame whose region is empty gives NaN.
    """
    fa, fb = _raw(frames), _raw(source_frames, "source_frames")
    if fa.shape != fb.shape:
        raise ValueError(f"frames {fa.shape} and source frames {fb.shape} differ in shape")
    t = len(fa)
    m = _region(region_mask, fa.shape[:3], "region_mask")
    out = np.full(t, np.nan)
    for c in _chunks(t):
        a, b = to_lab(fa[c]), to_lab(fb[c])
        n = len(a)
        mf = (np.ones(a.shape[:3], bool) if m is None else m[c]).reshape(n, -1, 1).astype(np.float64)
        cnt = mf.sum(axis=1)[:, 0]
        with np.errstate(invalid="ignore", divide="ignore"):
            if per_pixel:
                d = np.sqrt(((a - b) ** 2).sum(-1)).reshape(n, -1, 1)
                val = (d * mf).sum(axis=1)[:, 0] / cnt
            else:
                ma = (a.reshape(n, -1, 3) * mf).sum(axis=1) / cnt[:, None]
                mb = (b.reshape(n, -1, 3) * mf).sum(axis=1) / cnt[:, None]
                val = np.sqrt(((ma - mb) ** 2).sum(-1))
        out[c] = np.where(cnt > 0, val, np.nan)
    return out
