"""Mask shaping and placement over a whole video, a chunk at a time, into compact masks.

The per-frame operations are those of :mod:`.masks` (official: wan/modules/animate/preprocess/
process_pipepline.py, the replacement branch, with utils.py ``get_mask_body_img`` and
``get_aug_mask``); here they run over a mask sequence given as a float MASK batch (on >= 0.5) or a
mask frame source (``preprocess.frames``, on >= 128 of 255), and the results go into
``frames.PackedMasks``, so no full-length float copy of a high-resolution mask video is made.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .frames import PackedMasks, is_source
from .heap import release_freed_memory
from .masks import letterbox_masks, mask_coverage, resize_masks, shape_mask_sequence


def mask_length(masks: Any) -> int:
    return masks.num_frames if is_source(masks) else int(masks.shape[0])


def mask_size(masks: Any) -> tuple[int, int]:
    """(width, height)"""
    return masks.size if is_source(masks) else (int(masks.shape[2]), int(masks.shape[1]))


def bool_masks(masks: Any, start: int, stop: int) -> np.ndarray:
    """bool [k, H, W]: frames [start, stop) of a MASK batch (on >= 0.5) or of a mask source."""
    if is_source(masks):
        return masks.get(range(start, stop)) >= 128
    part = masks[start:stop]
    part = part.detach().cpu().numpy() if hasattr(part, "detach") else np.asarray(part)
    return part >= 0.5


def float_masks(masks: Any, start: int, stop: int) -> np.ndarray:
    """float32 [k, H, W] in 0..1: frames [start, stop) (a MASK batch keeps its own values)."""
    if is_source(masks):
        return masks.get(range(start, stop)).astype(np.float32) / np.float32(255.0)
    part = masks[start:stop]
    part = part.detach().cpu().numpy() if hasattr(part, "detach") else np.asarray(part)
    return part.astype(np.float32)


def empty_frames(masks: Any, chunk: int = 64) -> list[int]:
    """Indices of the frames without any on pixel."""
    if isinstance(masks, PackedMasks):
        return masks.empty_frames()
    n, out = mask_length(masks), []
    for s in range(0, n, chunk):
        has = bool_masks(masks, s, min(n, s + chunk)).reshape(min(n, s + chunk) - s, -1).any(axis=1)
        out += [s + int(i) for i in np.flatnonzero(~has)]
    return out


def nearest_filled(empty: list[int], n: int) -> dict[int, int]:
    """For every empty frame, the nearest non-empty frame (the earlier one on a tie), as
    ``masks.fill_empty_masks`` picks it; nothing when every frame is empty."""
    empty_set = set(empty)
    full = np.array([i for i in range(n) if i not in empty_set], np.int64)
    if not len(full):
        return {}
    out = {}
    for i in empty:
        pos = int(np.searchsorted(full, i))
        cands = [int(full[j]) for j in (pos - 1, pos) if 0 <= j < len(full)]
        out[i] = min(cands, key=lambda j: (abs(j - i), j))
    return out


def shape_masks(masks: Any, *, kernel: int = 7, iterations: int = 3, block: bool = True, kh: int = 1, kw: int = 1,
                grid: str = "official", head_points: np.ndarray | None = None, head_radius_scale: float = 1.0,
                fill_empty: bool = True, chunk: int = 16,
                on_chunk: Callable[[int], None] | None = None) -> tuple[PackedMasks, list[int], np.ndarray]:
    """(shaped masks, indices of the frames that were empty, on-pixel share per shaped frame).

    The same result as ``masks.fill_empty_masks`` then ``masks.shape_mask_sequence`` on the whole stack
    (every step works frame by frame), computed ``chunk`` frames at a time."""
    n = mask_length(masks)
    w, h = mask_size(masks)
    out = PackedMasks(w, h, getattr(masks, "fps", 0.0), "mask")
    empty = empty_frames(masks) if fill_empty else []
    donor = nearest_filled(empty, n) if fill_empty else {}
    coverage = np.zeros(n, np.float64)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        part = bool_masks(masks, s, e)
        for i in range(s, e):
            if i in donor:
                part[i - s] = bool_masks(masks, donor[i], donor[i] + 1)[0]
        heads = head_points[s:e] if head_points is not None else None
        shaped = shape_mask_sequence(part, kernel=kernel, iterations=iterations, kh=kh, kw=kw, block=block,
                                     head_points=heads, head_radius_scale=head_radius_scale, grid=grid)
        out.append(shaped)
        coverage[s:e] = mask_coverage(shaped)
        del part, shaped
        release_freed_memory()  # see preprocess.heap
        if on_chunk is not None:
            on_chunk(e)
    return out, empty, coverage


def placed_masks(masks: Any, start: int, stop: int, frame_w: int, frame_h: int, width: int, height: int) -> np.ndarray:
    """float32 [k, height, width]: frames [start, stop) of ``masks`` (a single mask stands for every
    frame) brought to the ``frame_w`` x ``frame_h`` video (nearest) and letterboxed like its frames
    onto the ``width`` x ``height`` output (``masks.letterbox_masks``)."""
    single = mask_length(masks) == 1
    m = float_masks(masks, 0, 1) if single else float_masks(masks, start, stop)
    if m.shape[1:] != (frame_h, frame_w):
        m = resize_masks(m, frame_h, frame_w)
    m = letterbox_masks(m, width, height)
    if single and stop - start != 1:
        m = np.broadcast_to(m, (stop - start, height, width))
    return m
