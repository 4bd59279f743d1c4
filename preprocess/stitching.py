"""Joining decoded segments into one long video, with the opt-in seam fixes.

Official stitching (wan/animate.py, WanAnimate.generate): segment 0 keeps all its frames, every later
segment drops the first ``guidance`` frames (they regenerate the previous segment's last frames,
which conditioned it), hard cut, result cut to the pose video's length.

Two opt-in fixes for the seams (colour drift and visible cuts are common complaints):

* colour correction: a new segment is matched, in Lab, to the previous segment's versions of the
  frames they share (the guidance frames), never to the reference image; in Replacement mode the
  cast is measured on the environment only. The corrected tail is
  also what conditions the next segment, so the cast does not build up from segment to segment.
* crossfade: the output frames where two segments overlap become a linear blend of the previous
  segment's frames and the new segment's regenerated ones (weights (k+1)/(g+1) for the new one).

Everything here is numpy on uint8 frames [T, H, W, 3]; nothing imports the host.
"""
from __future__ import annotations

import numpy as np

from .colour import crossfade as _crossfade
from .frames import to_uint8  # noqa: F401  (re-exported: the stitcher's frames are uint8)
from .colour import match_colour
from .segments import SegmentPlan


class Stitcher:
    """Collects segments into the output video as they finish (uint8, on the CPU).

    plan: the segment plan; the output has exactly ``plan.num_frames`` frames.
    crossfade: blend the overlapping frames instead of the official hard cut.
    colour_strength: 0 = off (official); otherwise 0..1 strength of the colour match of every new
        segment to the previous one's shared frames.
    out: optional preallocated uint8 array [num_frames, H, W, 3] (e.g. a memory map).
    keep_all: True keeps the whole video in ``frames``; False holds only the frames a later
        segment may still change (at most ``clip_len + guidance``) and ``frames`` is None: call
        :meth:`take_final` after every :meth:`add` and pass its frames on (e.g. to a video file),
        so the memory does not grow with the video's length.
    """

    def __init__(self, plan: SegmentPlan, height: int, width: int, crossfade: bool = False,
                 colour_strength: float = 0.0, out: np.ndarray | None = None, keep_all: bool = True):
        if not 0.0 <= colour_strength <= 1.0:
            raise ValueError(f"colour_strength must be within 0..1, got {colour_strength}")
        self.plan = plan
        self.crossfade = bool(crossfade)
        self.colour_strength = float(colour_strength)
        shape = (plan.num_frames, int(height), int(width), 3)
        self._buf: np.ndarray | None = None
        if not keep_all:
            if out is not None:
                raise ValueError("out is only used with keep_all=True")
            self._buf = np.zeros((plan.clip_len + plan.guidance,) + shape[1:], np.uint8)
        elif out is None:
            out = np.zeros(shape, np.uint8)
        elif out.shape != shape or out.dtype != np.uint8:
            raise ValueError(f"out must be uint8 {shape}, got {out.dtype} {out.shape}")
        self.frames = out
        self.frame_shape = shape[1:]
        self.tail: np.ndarray | None = None  # guidance frames for the next segment
        self.added = 0
        self.written = 0  # output frames placed so far
        self.released = 0  # output frames handed out by take_final()
        self._latest: np.ndarray | None = None

    def _view(self, lo: int, hi: int) -> np.ndarray:
        """Writable view of output frames [lo, hi)."""
        if self.frames is not None:
            return self.frames[lo:hi]
        if lo < self.released:
            raise ValueError(f"output frame {lo} was already taken by take_final()")
        if hi - self.released > len(self._buf):
            raise ValueError("call take_final() after every add() when keep_all=False")
        return self._buf[lo - self.released:hi - self.released]

    def add(self, index: int, raw: np.ndarray, region: np.ndarray | None = None) -> np.ndarray | None:
        """Place segment ``index``'s decoded frames (uint8 [clip_len, H, W, 3]; the last segment
        may stop at the video's end); return the (possibly colour-corrected) frames the next segment
        is conditioned on, uint8 [g, H, W, 3] (None after a shortened last segment).
        region: optional bool [clip_len, H, W], where to measure the colour cast (Replacement
        mode: the environment, which should keep its colours); the whole frame when None or
        when it is empty on the shared frames. Segments must come in order."""
        if index != self.added:
            raise ValueError(f"segments must be added in order: expected {self.added}, got {index}")
        seg = self.plan.segments[index]
        g = self.plan.guidance
        frames = to_uint8(raw)
        last = index == self.plan.num_segments - 1
        # the last segment may come shorter: only the frames up to the video's end are needed
        need = seg.keep_from + seg.count if last else self.plan.clip_len
        if frames.shape[1:] != self.frame_shape or not need <= len(frames) <= self.plan.clip_len:
            raise ValueError(f"segment {index} frames must be [{need}..{self.plan.clip_len}, "
                             f"{', '.join(map(str, self.frame_shape))}], got {frames.shape}")
        if index > 0 and self.colour_strength > 0:
            mask = None if region is None else np.asarray(region, bool)[:len(frames)]
            frames = to_uint8(match_colour(frames, self.tail, self.colour_strength, mask=mask, shared=slice(0, g)))
        self._view(seg.out_start, seg.out_stop)[...] = frames[seg.keep]
        if index > 0 and self.crossfade:
            lo, hi = seg.start, min(seg.start + g, self.plan.num_frames)
            if hi > lo:
                view = self._view(lo, hi)
                blended = _crossfade(view.astype(np.float32), frames[:hi - lo].astype(np.float32))
                view[...] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
        self.tail = frames[len(frames) - g:].copy() if len(frames) == self.plan.clip_len else None
        self.written = max(self.written, seg.out_stop)
        self._latest = self._view(self.written - 1, self.written)[0].copy()  # no crossfade reaches it
        self.added += 1
        return self.tail

    @property
    def done(self) -> bool:
        return self.added == self.plan.num_segments

    @property
    def final(self) -> int:
        """Output frames no later segment can change: all written ones, except the ones the next
        segment will crossfade."""
        if self.done or not self.crossfade:
            return self.written
        return min(self.written, self.plan.segments[self.added].start)

    @property
    def latest(self) -> np.ndarray | None:
        """The newest output frame placed (uint8 [H, W, 3]), None before the first segment."""
        return self._latest

    def take_final(self) -> np.ndarray:
        """The frames that became final since the last call, uint8 [k, H, W, 3] in output order
        (k may be 0). With keep_all=False they leave the stitcher's memory."""
        upto = self.final
        if self.frames is not None:
            out = self.frames[self.released:upto]
        else:
            k, rest = upto - self.released, self.written - upto
            out = self._buf[:k].copy()
            self._buf[:rest] = self._buf[k:k + rest].copy()
        self.released = upto
        return out


def seam_positions(plan: SegmentPlan) -> list[int]:
    """Output frame indices where a later segment's kept frames begin (the hard cuts)."""
    return [s.out_start for s in plan.segments[1:] if s.out_start < plan.num_frames]


def seam_jump(frames: np.ndarray, plan: SegmentPlan) -> tuple[float, float]:
    """(mean absolute frame-to-frame change at the seams, elsewhere), in uint8 levels.

    A seam that is much jumpier than the rest of the video is a visible cut.
    """
    f = np.asarray(frames, np.float32)
    if len(f) < 2:
        return 0.0, 0.0
    diffs = np.abs(np.diff(f, axis=0)).mean(axis=(1, 2, 3))  # diffs[i] = |f[i+1] - f[i]|
    seams = [p - 1 for p in seam_positions(plan) if p >= 1]
    mask = np.zeros(len(diffs), bool)
    mask[seams] = True
    at = float(diffs[mask].mean()) if mask.any() else 0.0
    rest = float(diffs[~mask].mean()) if (~mask).any() else 0.0
    return at, rest
