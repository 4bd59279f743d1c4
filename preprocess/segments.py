"""Long-video segment arithmetic of Wan2.2-Animate (official: wan/animate.py,
WanAnimate.get_valid_len, inputs_padding and the segment loop of generate).

A video of ``num_frames`` frames is generated in segments of ``clip_len`` frames (4n+1, 77 by
default). Each segment after the first is conditioned on the last ``guidance`` frames (1 or 5) of
the previous one, so segments start every ``stride = clip_len - guidance`` frames. The inputs
(pose, face, background, mask) are padded to ``target_len`` frames by ping-pong repetition. The
first segment keeps all its frames, every later one drops its first ``guidance`` frames (which
regenerate the conditioning frames), and the joined result is cut to exactly ``num_frames``.

Differences from the official code, on purpose:
* a 1-frame input works (the official ping-pong padding indexes out of range);
* a video no longer than ``guidance`` frames still gets one full segment (the official loop
  would generate nothing).

``pack_mask_4ch`` and ``build_i2v_mask`` work on numpy arrays and on torch tensors alike and
return the same kind they were given.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

GUIDANCE_CHOICES = (1, 5)


def _is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def latent_frames(num_frames: int) -> int:
    """Latent frames the Wan VAE makes of ``num_frames`` pixel frames: ``(T - 1) // 4 + 1``."""
    if int(num_frames) < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    return (int(num_frames) - 1) // 4 + 1


def pingpong_indices(n: int, target_len: int) -> np.ndarray:
    """Source frame index for each of ``target_len`` frames, mirroring without repeating the ends.

    ``0, 1, .., n-1, n-2, .., 1, 0, 1, ..`` (period ``2(n-1)``). A single frame is simply repeated.
    When ``target_len <= n`` this is ``0 .. target_len-1``.
    """
    n, target_len = int(n), int(target_len)
    if n < 1:
        raise ValueError(f"pingpong_indices needs at least one source frame, got n={n}")
    if target_len < 0:
        raise ValueError(f"target_len must be >= 0, got {target_len}")
    if n == 1:
        return np.zeros(target_len, dtype=np.int64)
    period = 2 * (n - 1)
    i = np.arange(target_len, dtype=np.int64) % period
    return np.where(i < n, i, period - i)


def check_clip(clip_len: int, guidance: int) -> None:
    """Raise ValueError unless ``clip_len`` is 4n+1 (>= 5) and ``guidance`` is 1 or 5."""
    if int(clip_len) != clip_len or clip_len < 5 or (clip_len - 1) % 4:
        raise ValueError(f"clip_len must be 4n+1 and at least 5 (e.g. 77 or 81), got {clip_len}")
    if guidance not in GUIDANCE_CHOICES:
        raise ValueError(f"guidance (refert_num) must be 1 or 5 as in the official model, got {guidance}")
    if guidance >= clip_len:
        raise ValueError(f"guidance ({guidance}) must be smaller than clip_len ({clip_len})")


@dataclass(frozen=True)
class Segment:
    """One generation window.

    start/stop: the window in padded frames ``[start, stop)`` (``stop - start == clip_len``).
    keep_from: first frame of the window that goes to the output (0 for the first segment,
        ``guidance`` for the others).
    out_start/out_stop: the output frames ``[out_start, out_stop)`` this segment provides, after
        the cut to ``num_frames``; they are the window frames ``keep_from .. keep_from + count``.
    source: [clip_len] index of the source frame behind every window frame (ping-pong padded).
    """

    index: int
    start: int
    stop: int
    keep_from: int
    out_start: int
    out_stop: int
    source: np.ndarray

    @property
    def count(self) -> int:
        """Number of output frames this segment contributes."""
        return self.out_stop - self.out_start

    @property
    def keep(self) -> slice:
        """Slice of the segment's own frames that go to the output."""
        return slice(self.keep_from, self.keep_from + self.count)


@dataclass(frozen=True)
class SegmentPlan:
    num_frames: int
    clip_len: int
    guidance: int
    stride: int
    target_len: int
    segments: tuple[Segment, ...]

    @property
    def num_segments(self) -> int:
        return len(self.segments)

    @property
    def starts(self) -> tuple[int, ...]:
        return tuple(s.start for s in self.segments)

    def padded_indices(self) -> np.ndarray:
        """[target_len] source frame index of every padded frame."""
        return pingpong_indices(self.num_frames, self.target_len)

    def assemble(self, outputs: Sequence[Any]) -> Any:
        """Join per-segment outputs (each [clip_len, ...], numpy or torch) into [num_frames, ...]."""
        if len(outputs) != self.num_segments:
            raise ValueError(f"expected {self.num_segments} segment outputs, got {len(outputs)}")
        parts = []
        for seg, out in zip(self.segments, outputs):
            if out.shape[0] != self.clip_len:
                raise ValueError(f"segment {seg.index} has {out.shape[0]} frames, expected {self.clip_len}")
            parts.append(out[seg.keep])
        if _is_torch(parts[0]):
            import torch

            return torch.cat(parts, dim=0)
        return np.concatenate(parts, axis=0)


def padded_length(num_frames: int, clip_len: int = 77, guidance: int = 1) -> int:
    """Official ``target_len`` (``guidance + k * stride`` covering ``num_frames``), at least ``clip_len``."""
    stride = clip_len - guidance
    extra = (stride - (num_frames - guidance) % stride) % stride
    return max(num_frames + extra, clip_len)


def plan_segments(num_frames: int, clip_len: int = 77, guidance: int = 1) -> SegmentPlan:
    """Plan the segments of a ``num_frames`` video (official §1.4 arithmetic, see module doc)."""
    if int(num_frames) != num_frames or num_frames < 1:
        raise ValueError(f"num_frames must be a positive integer, got {num_frames}")
    num_frames, clip_len, guidance = int(num_frames), int(clip_len), int(guidance)
    check_clip(clip_len, guidance)
    stride = clip_len - guidance
    target = padded_length(num_frames, clip_len, guidance)
    count = (target - guidance) // stride
    padded = pingpong_indices(num_frames, target)
    segments = []
    for i in range(count):
        start = i * stride
        keep_from = 0 if i == 0 else guidance
        out_start = start + keep_from
        out_stop = min(start + clip_len, num_frames)
        segments.append(Segment(i, start, start + clip_len, keep_from, out_start, out_stop,
                                padded[start:start + clip_len].copy()))
    return SegmentPlan(num_frames, clip_len, guidance, stride, target, tuple(segments))


def pack_mask_4ch(mask_pixels: Any) -> Any:
    """Fold a per-pixel-frame mask [T, h, w] (T = 4n+1) into the 4-channel layout [4, T_lat, h, w].

    Official ``get_i2v_mask`` packing: pixel frame 0 is repeated four times, the T+3 frames are
    reshaped to [T_lat, 4, h, w] and transposed. Latent frame 0 holds pixel frame 0 in all four
    channels; latent frame k >= 1 holds pixel frames 4k-3 .. 4k, one per channel.
    Numpy in, numpy out; torch in, torch out.
    """
    if mask_pixels.ndim != 3:
        raise ValueError(f"mask_pixels must be [T, h, w], got shape {tuple(mask_pixels.shape)}")
    t, h, w = mask_pixels.shape
    if (t - 1) % 4:
        raise ValueError(f"mask_pixels needs 4n+1 frames to fold into latent frames, got {t}")
    t_lat = latent_frames(t)
    if _is_torch(mask_pixels):
        import torch

        full = torch.cat([mask_pixels[:1].expand(4, h, w), mask_pixels[1:]], dim=0)
        return full.reshape(t_lat, 4, h, w).transpose(0, 1).contiguous()
    full = np.concatenate([np.repeat(mask_pixels[:1], 4, axis=0), mask_pixels[1:]], axis=0)
    return np.ascontiguousarray(full.reshape(t_lat, 4, h, w).transpose(1, 0, 2, 3))


def build_i2v_mask(num_frames: int, height: int, width: int, known_frames: int = 0,
                   keep: Any = None) -> Any:
    """The [4, T_lat, h, w] conditioning mask of one segment (1 = known/keep, 0 = generate).

    keep: optional [T, h, w] per-pixel-frame map (replacement mode: ``1 - character_mask`` at
        latent resolution, §1.10); zeros when None (animation mode). Its type (numpy/torch) and
        dtype decide the output's; numpy float32 otherwise.
    known_frames: the first pixel frames forced to 1 (the guidance frames, or 1 for the reference).
    """
    if keep is None:
        m = np.zeros((num_frames, height, width), np.float32)
    else:
        if tuple(keep.shape) != (num_frames, height, width):
            raise ValueError(f"keep must be [{num_frames}, {height}, {width}], got {tuple(keep.shape)}")
        m = keep.clone() if _is_torch(keep) else np.array(keep, copy=True)
    if not 0 <= known_frames <= num_frames:
        raise ValueError(f"known_frames must be within 0..{num_frames}, got {known_frames}")
    m[:known_frames] = 1
    return pack_mask_4ch(m)
