"""Replacement-mode mask shaping (official: wan/modules/animate/preprocess/utils.py,
get_mask_body_img and get_aug_mask, called from process_pipepline.py).

Masks are [H, W] frames or [T, H, W] stacks of bool, uint8 or float values. A pixel is *on*
(belongs to the character) when it is True, non-zero for integer masks, or >= 0.5 for float
masks. Binary operations (dilate, block, head growth) return the input's dtype; a uint8 mask
keeps its scale (on = 255 if any value is above 1, else 1). Soft results (feather, composite)
are float32 in 0..1.

Official chain (official: wan/modules/animate/preprocess/process_pipepline.py, replacement branch,
with utils.py ``get_mask_body_img`` and ``get_aug_mask``): SAM2 mask (logits > 0, 0/1) ->
``cv2.dilate`` (7x7 ones, 3 iterations) -> block mask on the dilated mask's box (1x1 grid = the
rectangle from the first to the last on pixel, its last row and column excluded) ->
``bg = frame * (1 - mask)``. The official pipeline then stores the mask x 255 as an H.264 mp4 and
the generator reads it back as ``[..., 0] / 255`` (lossy, not binarised); the pack hands the exact
0/1 mask on instead. The pack adds
optional head growth for hair, empty-frame filling, a coverage check and a feathered composite
for the final picture (never for the model's conditioning).
"""
from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np


# ---------------------------------------------------------------------------------------- helpers

def _check_mask(mask: np.ndarray, name: str = "mask") -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim not in (2, 3):
        raise ValueError(f"{name} must be [H, W] or [T, H, W], got shape {mask.shape}")
    if mask.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be bool, integer or float, got {mask.dtype}")
    return mask


def binary(mask: np.ndarray) -> np.ndarray:
    """Bool array of the mask's on pixels (see module doc for the rule)."""
    mask = np.asarray(mask)
    if mask.dtype == bool:
        return mask
    if mask.dtype.kind == "f":
        return mask >= 0.5
    return mask > 0


def _on_value(mask: np.ndarray):
    if mask.dtype == bool:
        return True
    if mask.dtype == np.uint8:
        return 255 if mask.size and mask.max() > 1 else 1
    return 1


def to_float(mask: Any) -> np.ndarray:
    """Float32 0..1 copy of a mask (bool -> 0/1, uint8 0/255 -> 0/1, float clipped)."""
    mask = np.asarray(mask)
    if mask.dtype == bool:
        return mask.astype(np.float32)
    if mask.dtype == np.uint8:
        scale = 255.0 if mask.size and mask.max() > 1 else 1.0
        return mask.astype(np.float32) / scale
    return np.clip(mask.astype(np.float32), 0.0, 1.0)


def _per_frame(mask: np.ndarray, fn, dtype=None, shape=None) -> np.ndarray:
    """Apply ``fn(frame, out_frame)`` to every frame, writing into one preallocated (zeroed) array."""
    if mask.ndim == 2:
        out = np.zeros(shape or mask.shape, dtype or mask.dtype)
        fn(mask, out)
        return out
    out = np.zeros((len(mask),) + (shape or mask.shape[1:]), dtype or mask.dtype)
    for m, o in zip(mask, out):
        fn(m, o)
    return out


# ------------------------------------------------------------------------------------- operations

def dilate(mask: np.ndarray, kernel: int = 7, iterations: int = 3) -> np.ndarray:
    """Official dilation: ``cv2.dilate`` with a ``kernel`` x ``kernel`` ones kernel, ``iterations`` times.

    Grey-level (max filter) on float masks, so a soft mask stays soft. ``iterations=0`` returns a copy.
    """
    mask = _check_mask(mask)
    if int(kernel) < 1:
        raise ValueError(f"dilation kernel must be >= 1 pixel, got {kernel}")
    if int(iterations) < 0:
        raise ValueError(f"dilation iterations must be >= 0, got {iterations}")
    if iterations == 0 or kernel == 1:
        return mask.copy()
    k = np.ones((int(kernel), int(kernel)), np.uint8)
    if mask.dtype == bool:
        work = mask.view(np.uint8)
    elif mask.dtype in (np.uint8, np.uint16, np.float32):
        work = mask
    else:
        work = mask.astype(np.float32)
    out = _per_frame(work, lambda m, o: cv2.dilate(np.ascontiguousarray(m), k, dst=o, iterations=int(iterations)))
    return out.astype(mask.dtype, copy=False) if out.dtype != mask.dtype else out


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x1, y1, x2, y2) exclusive bounds of a frame's on pixels, None when it has none."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"bounding_box takes one [H, W] frame, got shape {mask.shape}")
    if mask.dtype == np.uint8:
        on = mask  # non-zero pixels, as ``binary`` defines them
    else:
        on = np.ascontiguousarray(binary(mask)).view(np.uint8)
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(on))
    if w == 0 or h == 0:
        return None
    return x, y, x + w, y + h


def _cell_edges(length: int, cells: int) -> np.ndarray:
    cells = max(1, min(int(cells), length))
    return (np.arange(cells + 1) * length) // cells


def _block_frame(mask: np.ndarray, out: np.ndarray, kh: int, kw: int, on) -> None:
    box = bounding_box(mask)
    if box is None:
        return
    x1, y1, x2, y2 = box
    if kh == 1 and kw == 1:
        out[y1:y2, x1:x2] = on
        return
    crop = binary(mask[y1:y2, x1:x2]).view(np.uint8)
    ye = _cell_edges(y2 - y1, kh)
    xe = _cell_edges(x2 - x1, kw)
    rows = np.maximum.reduceat(crop, ye[:-1], axis=0)
    cells = np.maximum.reduceat(rows, xe[:-1], axis=1).astype(bool)
    full = np.repeat(np.repeat(cells, np.diff(ye), axis=0), np.diff(xe), axis=1)
    out[y1:y2, x1:x2][full] = on


def _official_cells(first: int, last: int, cells: int) -> np.ndarray:
    """Cell starts along one axis of the official grid, relative to ``first``, plus the end.

    The official loop walks ``first, first + step, ...`` below ``last`` (the box's last on pixel,
    which is never reached) with ``step = int((last - first) / cells)``; each cell ends at the next
    start, the last one at ``last``. A zero step (a box narrower than the grid) would stop the
    official code; here it is one pixel.
    """
    span = last - first
    step = max(int(span / cells), 1)
    return np.append(np.arange(0, span, step), span)


def _official_block_frame(mask: np.ndarray, out: np.ndarray, kh: int, kw: int, on) -> None:
    nz = mask if mask.dtype == np.uint8 else np.ascontiguousarray(binary(mask)).view(np.uint8)
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(nz))
    if w == 0 or h == 0:
        return
    out[y:y + h, x:x + w] = mask[y:y + h, x:x + w]  # unfilled cells, last row and column keep the mask
    x2, y2 = x + w - 1, y + h - 1  # inclusive: the box's last on column / row
    ye, xe = _official_cells(y, y2, kh), _official_cells(x, x2, kw)
    if ye[-1] == 0 or xe[-1] == 0:  # one row or column: the official grid has no cell
        return
    crop = binary(mask[y:y2, x:x2]).view(np.uint8)
    if len(ye) == 2 and len(xe) == 2:  # one cell (the official 1x1 default)
        if crop.any():
            out[y:y2, x:x2] = on
        return
    cells = np.maximum.reduceat(np.maximum.reduceat(crop, ye[:-1], axis=0), xe[:-1], axis=1)
    for i, j in zip(*np.nonzero(cells)):  # slice writes: faster than a full-size boolean index
        out[y + ye[i]:y + ye[i + 1], x + xe[j]:x + xe[j + 1]] = on


BLOCK_GRIDS = ("official", "even")


def block_mask(mask: np.ndarray, kh: int = 1, kw: int = 1, grid: str = "official") -> np.ndarray:
    """Shape-agnostic block mask (Animate Anyone 2): the mask's bounding box cut into a grid of
    ``kh`` rows x ``kw`` columns of cells, each cell filled where any of its pixels is on.

    grid 'official' (official: wan/modules/animate/preprocess/utils.py, ``get_aug_mask``): the box
    runs from the first to the last on pixel, the cells are ``int((last - first) / n)`` pixels from
    the first (the last cell partial) and end *before* the last on row and column, which are never
    filled (they keep the mask's own pixels). With 1x1 that is the bounding rectangle less its last
    row and column. Only where the official code would stop (a box narrower than the grid: zero
    step) the step is 1 pixel.

    grid 'even' (the pack's variant): the whole bounding box including its last row and column, cut
    at integer edges ``floor(i * size / n)`` (cells of nearly equal size); 1x1 is the full bounding
    rectangle; a box smaller than the grid uses one cell per pixel along that axis.

    An empty frame stays empty (the official code stops there). Outside the box every pixel is off
    (float values below 0.5 there become 0).
    """
    mask = _check_mask(mask)
    if int(kh) < 1 or int(kw) < 1:
        raise ValueError(f"block grid must be at least 1x1, got {kh}x{kw}")
    if grid not in BLOCK_GRIDS:
        raise ValueError(f"block grid rule must be one of {BLOCK_GRIDS}, got {grid!r}")
    on = _on_value(mask)
    frame_fn = _official_block_frame if grid == "official" else _block_frame
    return _per_frame(mask, lambda m, o: frame_fn(m, o, int(kh), int(kw), on))


def head_ellipse(head_points: np.ndarray, threshold: float = 0.3, radius_scale: float = 1.0,
                 up_shift: float = 0.5) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """Ellipse ((cx, cy), (half_w, half_h)) around the confident head points, None if < 2 of them.

    The radius ``r`` is ``radius_scale`` x the largest distance between confident points (about
    the head width when both ears are seen). The ellipse is centred ``up_shift * r`` above the
    points' mean, with half axes (r, 1.3 r), so it reaches well above the head for hair.
    """
    pts = np.asarray(head_points, dtype=np.float32)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"head_points must be [k, 3] (x, y, confidence), got shape {pts.shape}")
    good = pts[(pts[:, 2] >= threshold) & np.isfinite(pts[:, :2]).all(axis=1)][:, :2]
    if len(good) < 2:
        return None
    d = np.sqrt(((good[:, None] - good[None]) ** 2).sum(-1)).max()
    r = float(d) * float(radius_scale)
    if r < 1.0:
        return None
    cx, cy = good.mean(axis=0)
    return (float(cx), float(cy) - up_shift * r), (r, 1.3 * r)


def grow_head(mask: np.ndarray, head_points: np.ndarray, threshold: float = 0.3,
              radius_scale: float = 1.0, up_shift: float = 0.5) -> np.ndarray:
    """Union of the mask with an ellipse around the head (see ``head_ellipse``), to cover hair.

    mask [H, W] with head_points [k, 3], or [T, H, W] with [T, k, 3]. Pass the COCO head points
    (nose, eyes, ears: indices 0-4). Frames with fewer than two confident points are unchanged.
    """
    mask = _check_mask(mask)
    pts = np.asarray(head_points, dtype=np.float32)
    if mask.ndim == 3 and (pts.ndim != 3 or len(pts) != len(mask)):
        raise ValueError(f"head_points must be [T={len(mask)}, k, 3] for a mask stack, got {pts.shape}")
    if mask.ndim == 2:
        pts = pts[None]
    on = _on_value(mask)  # one scale for the whole stack
    out = mask.copy()
    frames = out[None] if out.ndim == 2 else out
    for k in range(len(frames)):
        ell = head_ellipse(pts[k], threshold, radius_scale, up_shift)
        if ell is None:
            continue
        (cx, cy), (ax, ay) = ell
        frame = frames[k]
        work = frame.view(np.uint8) if frame.dtype == bool else frame  # views draw in place
        copied = work.dtype not in (np.uint8, np.uint16, np.int32, np.float32, np.float64)
        if copied:  # a dtype cv2 cannot draw on
            work = frame.astype(np.float32)
        f = 16  # cv2.ellipse takes fixed-point coordinates with shift=4 (1/16 pixel)
        cv2.ellipse(work, (int(round(cx * f)), int(round(cy * f))), (int(round(ax * f)), int(round(ay * f))),
                    0.0, 0.0, 360.0, float(on), thickness=-1, lineType=cv2.LINE_8, shift=4)
        if copied:
            frames[k] = work.astype(mask.dtype)
    return out


def feather(mask: np.ndarray, radius: float, inside: bool = False) -> np.ndarray:
    """Soft edge of about ``radius`` pixels (Gaussian, kernel support = radius) as float32 0..1.

    For the final composite only; the model's conditioning mask stays hard. With ``inside=True``
    the mask is first eroded by ``radius`` so the soft edge lies within the original mask and
    every pixel outside it stays exactly 0. Only the mask's bounding box plus a margin is
    filtered (the result elsewhere is exactly 0), which keeps this fast on large frames.
    """
    mask = _check_mask(mask)
    if radius < 0:
        raise ValueError(f"feather radius must be >= 0, got {radius}")
    r = int(round(radius))
    if r == 0:
        return to_float(mask)
    scale = np.float32(255.0 if mask.dtype == np.uint8 and mask.size and mask.max() > 1 else 1.0)
    k = 2 * r + 1
    sigma = max(r / 2.0, 0.5)
    erode = np.ones((k, k), np.uint8) if inside else None

    def one(m: np.ndarray, out: np.ndarray) -> None:
        nz = m if m.dtype == np.uint8 else np.ascontiguousarray(m != 0).view(np.uint8)
        x, y, w, h = cv2.boundingRect(np.ascontiguousarray(nz))
        if w == 0 or h == 0:
            return
        e = r + 1  # blur and erosion reach r pixels: outside this margin the result is exactly 0
        y1, y2 = max(0, y - e), min(m.shape[0], y + h + e)
        x1, x2 = max(0, x - e), min(m.shape[1], x + w + e)
        crop = m[y1:y2, x1:x2]
        if crop.dtype == bool:
            soft = crop.astype(np.float32)
        elif crop.dtype.kind == "f":
            soft = np.clip(crop.astype(np.float32), 0.0, 1.0)
        else:
            soft = crop.astype(np.float32) / scale
        if erode is not None:
            soft = cv2.erode(soft, erode, borderType=cv2.BORDER_REPLICATE)
        cv2.GaussianBlur(soft, (k, k), sigma, dst=out[y1:y2, x1:x2], borderType=cv2.BORDER_REPLICATE)

    return _per_frame(mask, one, dtype=np.float32)


def fill_empty_masks(masks: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Replace every empty frame by the nearest non-empty one (the earlier one on a tie).

    Returns (filled copy, indices of the frames that were empty). When every frame is empty the
    masks come back unchanged and every index is reported.
    """
    masks = _check_mask(masks, "masks")
    if masks.ndim != 3:
        raise ValueError(f"masks must be a [T, H, W] stack, got shape {masks.shape}")
    t = len(masks)
    has = binary(masks).reshape(t, -1).any(axis=1)
    empty = [int(i) for i in np.flatnonzero(~has)]
    out = masks.copy()
    if not empty or len(empty) == t:
        return out, empty
    full = np.flatnonzero(has)
    for i in empty:
        pos = np.searchsorted(full, i)
        cands = [full[j] for j in (pos - 1, pos) if 0 <= j < len(full)]
        src = min(cands, key=lambda j: (abs(j - i), j))
        out[i] = masks[src]
    return out, empty


def shape_mask_sequence(masks: np.ndarray, kernel: int = 7, iterations: int = 3, kh: int = 1, kw: int = 1,
                        block: bool = True, head_points: np.ndarray | None = None,
                        head_threshold: float = 0.3, head_radius_scale: float = 1.0,
                        grid: str = "official") -> np.ndarray:
    """Dilate -> optional head growth -> block mask (``grid`` rule, see ``block_mask``), frame by
    frame. Official defaults (official: wan/modules/animate/preprocess/process_pipepline.py, the
    replacement branch of ``ProcessPipeline.__call__``: ``get_mask_body_img`` then ``get_aug_mask``).

    Unlike the official code, ``iterations=0`` only skips the dilation (the official code then skips
    the block mask too); use ``block=False`` to skip the block mask. Empty frames stay empty (see
    ``fill_empty_masks``).
    """
    masks = _check_mask(masks, "masks")
    if block and grid not in BLOCK_GRIDS:
        raise ValueError(f"block grid rule must be one of {BLOCK_GRIDS}, got {grid!r}")
    out = dilate(masks, kernel, iterations)
    if head_points is not None:
        out = grow_head(out, head_points, head_threshold, head_radius_scale)
    if block:
        out = block_mask(out, kh, kw, grid)
    return out


def resize_masks(masks: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of [H, W] or [T, H, W] masks (official latent-size resize, §1.10)."""
    masks = _check_mask(masks, "masks")
    if height < 1 or width < 1:
        raise ValueError(f"target size must be positive, got {width}x{height}")
    work = masks.view(np.uint8) if masks.dtype == bool else masks
    if work.dtype == np.float64:
        work = work.astype(np.float32)
    def one(m: np.ndarray, o: np.ndarray) -> None:
        o[...] = cv2.resize(np.ascontiguousarray(m), (int(width), int(height)), interpolation=cv2.INTER_NEAREST)

    out = _per_frame(work, one, shape=(int(height), int(width)))
    return out.astype(masks.dtype, copy=False)


# ------------------------------------------------------------------------------------ using masks

def _is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def environment_frames(frames: Any, mask: Any) -> Any:
    """Official background video: ``frames * (1 - mask)``, the character region black.

    frames [T, H, W, 3] (or [H, W, 3]) float 0..1, numpy or torch; mask [T, H, W] (or [H, W]).
    Exactly zero where the mask is 1, unchanged where it is 0.
    """
    if _is_torch(frames):
        import torch

        m = mask if _is_torch(mask) else torch.from_numpy(to_float(mask))
        m = m.to(device=frames.device, dtype=frames.dtype)
        if m.shape != frames.shape[:-1]:
            raise ValueError(f"mask {tuple(m.shape)} does not match frames {tuple(frames.shape)}")
        return frames * (1 - m[..., None])
    frames = np.asarray(frames)
    m = to_float(mask)
    if m.shape != frames.shape[:-1]:
        raise ValueError(f"mask {m.shape} does not match frames {frames.shape}")
    keep = np.subtract(1, m, dtype=frames.dtype if frames.dtype.kind == "f" else np.float32)
    return frames * keep[..., None]


def overlay(frames: np.ndarray, mask: np.ndarray, colour: Sequence[float] = (255, 0, 0),
            alpha: float = 0.5) -> np.ndarray:
    """Preview: tint the mask region with ``colour`` (0..255 RGB) at ``alpha``.

    frames uint8 0..255 or float 0..1, [.., H, W, 3]; returns the same dtype and scale.
    """
    frames = np.asarray(frames)
    m = to_float(mask)
    if m.shape != frames.shape[:-1]:
        raise ValueError(f"mask {m.shape} does not match frames {frames.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"overlay alpha must be within 0..1, got {alpha}")
    scale = 1.0 if frames.dtype == np.uint8 else 1.0 / 255.0
    col = np.asarray(colour, np.float32) * scale
    a = (alpha * m)[..., None]
    out = frames.astype(np.float32) * (1 - a) + col * a
    if frames.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(frames.dtype if frames.dtype.kind == "f" else np.float32)


def composite(generated: Any, source: Any, soft_mask: Any) -> Any:
    """Final blend ``generated * m + source * (1 - m)`` with a (feathered) character mask m."""
    if _is_torch(generated):
        import torch

        m = soft_mask if _is_torch(soft_mask) else torch.from_numpy(to_float(soft_mask))
        m = m.to(device=generated.device, dtype=generated.dtype)[..., None]
        src = source if _is_torch(source) else torch.from_numpy(np.asarray(source))
        src = src.to(device=generated.device, dtype=generated.dtype)
        return generated * m + src * (1 - m)
    generated, source = np.asarray(generated), np.asarray(source)
    if generated.shape != source.shape:
        raise ValueError(f"generated {generated.shape} and source {source.shape} frames differ in shape")
    m = to_float(soft_mask)
    if m.shape != generated.shape[:-1]:
        raise ValueError(f"mask {m.shape} does not match frames {generated.shape}")
    m = m[..., None]
    return (generated.astype(np.float32) * m + source.astype(np.float32) * (1 - m)).astype(np.float32)


def mask_coverage(masks: np.ndarray) -> np.ndarray:
    """Fraction of on pixels per frame, float64 [T] (a single [H, W] frame gives [1])."""
    masks = _check_mask(masks, "masks")
    on = binary(masks)
    if on.ndim == 2:
        on = on[None]
    return on.reshape(len(on), -1).mean(axis=1) if len(on) else np.zeros(0)


def coverage_warnings(masks: np.ndarray, low: float = 1e-4, high: float = 0.98) -> list[str]:
    """Preflight messages for frames whose mask is (nearly) empty or covers (nearly) everything."""
    return coverage_messages(mask_coverage(masks), low, high)


def coverage_messages(cov: np.ndarray, low: float = 1e-4, high: float = 0.98) -> list[str]:
    """``coverage_warnings`` from the on-pixel share of each frame (``mask_coverage``)."""
    cov = np.asarray(cov, np.float64)
    msgs = []
    empty = np.flatnonzero(cov < low)
    full = np.flatnonzero(cov > high)
    if len(empty):
        msgs.append(f"{len(empty)} of {len(cov)} mask frames are empty or nearly so "
                    f"(first: {_frames_text(empty)}); the character may be lost there")
    if len(full):
        msgs.append(f"{len(full)} of {len(cov)} mask frames cover more than {high:.0%} of the picture "
                    f"(first: {_frames_text(full)}); almost nothing of the background is kept")
    return msgs


def _frames_text(idx: np.ndarray, n: int = 5) -> str:
    s = ", ".join(str(int(i)) for i in idx[:n])
    return s + (", ..." if len(idx) > n else "")


def letterbox_masks(masks: np.ndarray, width: int, height: int) -> np.ndarray:
    """[T, H, W] masks placed like ``resolution.padding_resize`` places their frames on a ``width`` x
    ``height`` canvas (aspect kept, centred), nearest-neighbour so hard masks stay hard; the bars are 0
    (not character)."""
    from .resolution import letterbox_geometry

    masks = _check_mask(masks, "masks")
    if masks.ndim == 2:
        masks = masks[None]
    t, h, w = masks.shape
    if (w, h) == (int(width), int(height)):
        return masks
    new_w, new_h, ox, oy = letterbox_geometry(w, h, int(width), int(height))
    out = np.zeros((t, int(height), int(width)), masks.dtype)
    out[:, oy:oy + new_h, ox:ox + new_w] = resize_masks(masks, new_h, new_w)
    return out

