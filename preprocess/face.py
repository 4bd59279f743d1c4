"""Face boxes from the 68 face landmarks, and 512x512 face crops.

Two box rules:

* ``'official'`` (default; official: wan/modules/animate/preprocess/process_pipepline.py with
  utils.py ``get_face_bboxes``): per frame the min/max box of all 68 landmarks whatever their
  confidence, its area x 1.3 (same aspect), the extra width split evenly, the extra height 3/4
  upwards and 1/4 downwards, clipped to the image and truncated to integers; no smoothing. The
  crop is that integer region of the frame stretched to 512x512 by ``cv2.resize`` (bilinear), see
  :func:`crop_faces_official` -- pixel-equal to the official crop. Only where the official code
  would stop with an error (landmarks without width or height, or an empty region) the nearest
  frame's box is used instead, and the frame is reported.
* ``'square'`` (the pack's option): a square of side ``max(w, h) * scale`` centred on the landmarks
  and lifted by ``lift * h`` for the forehead, at least ``min_size`` pixels, smoothed over time
  (centre by a lag-free One-Euro filter, size by a Gaussian), allowed to extend past the image (the
  crop pads instead of shifting the face). Frames whose face is missing or unsure keep the last good
  box, moved along with the head keypoints when those are seen; they are reported as
  low-confidence. Unlike the official crop the face is never stretched and the box is sampled at
  sub-pixel precision.

:func:`crop_faces` cuts float boxes out at sub-pixel precision (``cv2.getRectSubPix`` + ``cv2.resize``,
equivalent to an affine warp of the box, 5x faster), padding where a box leaves the frame and
area-averaging first when a box shrinks 2x or more.
"""
from __future__ import annotations

import math
from typing import Iterable

import cv2
import numpy as np

from .pose_types import FACE, L_EAR, L_EYE, L_SHOULDER, NOSE, NUM_KEYPOINTS, R_EAR, R_EYE, R_SHOULDER
from .smoothing import smooth_keypoints

OFFICIAL_AREA_GAIN = 1.3
HEAD_POINTS = (NOSE, L_EYE, R_EYE, L_EAR, R_EAR)


def _check(kps: np.ndarray, width: int, height: int) -> np.ndarray:
    kps = np.asarray(kps, dtype=np.float32)
    if kps.ndim == 2:
        kps = kps[None]
    if kps.ndim != 3 or kps.shape[1:] != (NUM_KEYPOINTS, 3):
        raise ValueError(f"face_boxes expects keypoints [T, 133, 3], got {kps.shape}")
    if width <= 0 or height <= 0:
        raise ValueError(f"face_boxes needs a positive image size, got {width}x{height}")
    return kps


def official_face_boxes(face_landmarks: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The official integer face boxes of 68 landmarks per frame, as the crop really uses them.

    official: wan/modules/animate/preprocess/process_pipepline.py (``ProcessPipeline.__call__``) with
    wan/modules/animate/preprocess/utils.py, ``get_face_bboxes(kp2ds, scale, image_shape)`` (the
    three-argument one, defined last), called with scale 1.3 on the 68 face landmarks (keypoints
    23..90 of the 133; x, y only, every point whatever its confidence) of the *source* poses.

    face_landmarks: [T, 68, >=2] pixel coordinates (float32, as the pose model gives them). The
    official pipeline normalises them by the image size in float32 and multiplies back in float64;
    this round trip is repeated so the truncation below sees the very same numbers. Then the
    min/max box (w, h) grows to area ``1.3 w h`` with the same aspect (computed as the official
    formula does, ``sqrt(1.3 w h * w / h)``), the extra width split evenly, the extra height 3/4
    above and 1/4 below, clipped to the image, and truncated with ``int``. The official crop is
    ``frame[y1:y2, x1:x2]`` with these numbers, including Python's reading of a negative end
    (a face left of / above the image); the boxes returned here are the pixel ranges that slice
    really covers.

    Returns (boxes int64 [T, 4] (x1, y1, x2, y2), end exclusive, within the image; usable bool
    [T]). A frame is not usable where the official code has no crop: landmarks without width or
    height (NaN box, ``int`` fails) or an empty slice (``cv2.resize`` fails).
    """
    lm = np.asarray(face_landmarks)
    if lm.ndim != 3 or lm.shape[1] != 68 or lm.shape[2] < 2:
        raise ValueError(f"official_face_boxes expects landmarks [T, 68, >=2], got {lm.shape}")
    w, h = int(width), int(height)
    # official: pose2d_utils.load_pose_metas_from_kp2ds_seq divides in place (float32), then
    # get_face_bboxes multiplies by (w, h) -> float64
    xs = (lm[:, :, 0].astype(np.float32) / np.float32(w)).astype(np.float64) * w
    ys = (lm[:, :, 1].astype(np.float32) / np.float32(h)).astype(np.float64) * h
    left, right = xs.min(axis=1), xs.max(axis=1)
    top, bottom = ys.min(axis=1), ys.max(axis=1)
    bw, bh = right - left, bottom - top
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        grown = bw * bh * OFFICIAL_AREA_GAIN
        pad_x = (np.sqrt(grown * (bw / bh)) - bw) / 2
        pad_y = (np.sqrt(grown * (bh / bw)) - bh) / 4
        edges = np.stack([np.maximum(left - pad_x, 0.0), np.maximum(top - 3 * pad_y, 0.0),
                          np.minimum(right + pad_x, w), np.minimum(bottom + pad_y, h)], axis=1)
    finite = np.isfinite(edges).all(axis=1)
    ints = np.trunc(np.where(finite[:, None], edges, 0.0)).astype(np.int64)  # int() of each edge
    # the pixels frame[y1:y2, x1:x2] covers: starts are >= 0 (clipped) but may pass the end of
    # the image; a negative end counts from the far side
    size = np.array([w, h, w, h], np.int64)
    starts = np.minimum(ints[:, :2], size[:2])
    ends = np.where(ints[:, 2:] < 0, np.maximum(ints[:, 2:] + size[2:], 0), ints[:, 2:])
    boxes = np.concatenate([starts, ends], axis=1)
    usable = finite & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes, usable


def face_confidence(kps: np.ndarray, lm_threshold: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """(mean landmark confidence [T], fraction of usable landmarks [T]) of keypoints [T, 133, 3]."""
    face = np.asarray(kps, dtype=np.float32)[:, FACE]
    usable = (face[..., 2] >= lm_threshold) & np.any(face[..., :2] != 0, axis=-1)
    return face[..., 2].mean(axis=1), usable.mean(axis=1)


def _head_anchor(frame: np.ndarray, threshold: float) -> np.ndarray | None:
    """A point that moves with the head: the mean of the confident head points, else the shoulders."""
    head = frame[list(HEAD_POINTS)]
    ok = head[:, 2] >= threshold
    if ok.any():
        return head[ok, :2].mean(axis=0).astype(np.float64)
    sh = frame[[L_SHOULDER, R_SHOULDER]]
    if (sh[:, 2] >= threshold).all():
        return sh[:, :2].mean(axis=0).astype(np.float64)
    return None


def _gaussian_1d(values: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0 or len(values) < 2:
        return values.copy()
    radius = int(math.ceil(3 * sigma))
    x = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(values, radius, mode="reflect" if len(values) > radius else "edge")
    return np.convolve(padded, kernel, mode="valid")


def face_boxes(kps: np.ndarray, width: int, height: int, mode: str = "official", *, scale: float = 1.3,
               lift: float = 0.08, min_size: float = 64.0, conf_threshold: float = 0.35,
               lm_threshold: float = 0.3, min_landmarks: float = 0.5, smoothing: float = 0.6,
               size_sigma_s: float = 0.3, fps: float = 30.0) -> tuple[np.ndarray, list[int]]:
    """Face boxes [T, 4] float32 (x1, y1, x2, y2) of one person's keypoints [T, 133, 3], and the
    indices of frames whose face was missing or unsure (mean landmark confidence < ``conf_threshold``
    or fewer than ``min_landmarks`` of the 68 at ``lm_threshold``).

    mode 'official' gives the official integer boxes (:func:`official_face_boxes`; cut them with
    :func:`crop_faces_official`); the confidence report is informative only, plus the frames where
    the official code has no box, which take the nearest frame's box (the earlier one on a tie);
    a ValueError when no frame has one. mode 'square': see the module doc; ``smoothing`` 0..1 is
    the centre filter strength (0 = none), ``size_sigma_s`` the Gaussian sigma of the size in
    seconds; ``fps`` <= 0 means 30.
    """
    kps = _check(kps, width, height)
    if mode not in ("official", "square"):
        raise ValueError(f"face box mode must be 'official' or 'square', got {mode!r}")
    t_len = kps.shape[0]
    mean_conf, usable = face_confidence(kps, lm_threshold)
    good = (mean_conf >= conf_threshold) & (usable >= min_landmarks)
    low = [int(i) for i in np.flatnonzero(~good)]
    if mode == "official":
        boxes, usable = official_face_boxes(kps[:, FACE], width, height)
        if not usable.all():
            if not usable.any():
                raise ValueError("no frame has a usable face box: the face landmarks have no width or height, "
                                 "or lie outside the image, in every frame")
            ok = np.flatnonzero(usable)
            for t in np.flatnonzero(~usable):
                pos = np.searchsorted(ok, t)
                cands = [int(ok[j]) for j in (pos - 1, pos) if 0 <= j < len(ok)]
                boxes[t] = boxes[min(cands, key=lambda j: (abs(j - t), j))]
            low = sorted(set(low) | {int(t) for t in np.flatnonzero(~usable)})
        return boxes.astype(np.float32), low
    if scale <= 0 or min_size <= 0:
        raise ValueError("scale and min_size must be positive")
    fps = fps if fps and fps > 0 else 30.0

    # raw square boxes (cx, cy, side) on the good frames
    raw = np.zeros((t_len, 3), np.float64)
    for t in np.flatnonzero(good):
        face = kps[t, FACE]
        ok = (face[:, 2] >= lm_threshold) & np.any(face[:, :2] != 0, axis=1)
        pts = face[ok, :2].astype(np.float64)
        (x1, y1), (x2, y2) = pts.min(axis=0), pts.max(axis=0)
        side = max(max(x2 - x1, y2 - y1) * scale, min_size)
        raw[t] = ((x1 + x2) / 2, (y1 + y2) / 2 - lift * (y2 - y1), side)

    if not good.any():  # never a usable face: a box on the head points, else the image centre
        side = max(min(width, height) / 3.0, min_size)
        for t in range(t_len):
            anchor = _head_anchor(kps[t], lm_threshold)
            centre = anchor if anchor is not None else np.array([width / 2, height / 2])
            raw[t] = (centre[0], centre[1], side)
        return _to_xyxy(raw), low

    # bad frames: hold the nearest good box (the next one for leading frames), moved with the head
    good_idx = np.flatnonzero(good)
    anchors = [_head_anchor(kps[t], lm_threshold) for t in range(t_len)]
    for t in np.flatnonzero(~good):
        pos = np.searchsorted(good_idx, t)
        src = int(good_idx[pos - 1]) if pos > 0 else int(good_idx[0])
        raw[t] = raw[src]
        if anchors[t] is not None and anchors[src] is not None:
            raw[t, :2] += anchors[t] - anchors[src]

    if smoothing > 0 and t_len > 1:
        track = np.zeros((t_len, 1, 3), np.float32)
        track[:, 0, :2] = raw[:, :2]
        track[:, 0, 2] = 1.0
        sm = smooth_keypoints(track, fps=fps, strength=float(smoothing), scale=float(np.median(raw[:, 2])),
                              conf_threshold=0.5, bidirectional=True)
        raw[:, :2] = sm[:, 0, :2]
    raw[:, 2] = np.maximum(np.exp(_gaussian_1d(np.log(raw[:, 2]), size_sigma_s * fps)), min_size)
    return _to_xyxy(raw), low


def _to_xyxy(cxcys: np.ndarray) -> np.ndarray:
    cx, cy, half = cxcys[:, 0], cxcys[:, 1], cxcys[:, 2] / 2
    return np.stack([cx - half, cy - half, cx + half, cy + half], axis=1).astype(np.float32)


def _padded_region(frame: np.ndarray, x0: int, y0: int, x1: int, y1: int, border: int) -> np.ndarray:
    """frame[y0:y1, x0:x1] where parts outside the frame are filled by ``border`` (cv2 border mode)."""
    h, w = frame.shape[:2]
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if cx0 >= cx1 or cy0 >= cy1:  # entirely outside the frame
        if border == cv2.BORDER_CONSTANT:
            return np.zeros((y1 - y0, x1 - x0) + frame.shape[2:], frame.dtype)
        cx0, cx1 = min(max(x0, 0), w - 1), min(max(x0, 0), w - 1) + 1
        cy0, cy1 = min(max(y0, 0), h - 1), min(max(y0, 0), h - 1) + 1
    inner = frame[cy0:cy1, cx0:cx1]
    pads = (cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1)
    if not any(pads):
        return np.ascontiguousarray(inner)
    out = cv2.copyMakeBorder(np.ascontiguousarray(inner), max(pads[0], 0), max(pads[1], 0),
                             max(pads[2], 0), max(pads[3], 0), border, value=0)
    return out.reshape(out.shape[:2] + frame.shape[2:])


def _crop_one(frame: np.ndarray, box: np.ndarray, size: int, border: int) -> np.ndarray:
    """Sample ``box`` (edge coordinates: output pixel u covers box x1 + [u, u+1) * sx) at size x size.

    Fast path: cut an integer region (padded outside the frame), area-average it when shrinking by
    2x or more, shift it by the sub-pixel remainder (``cv2.getRectSubPix``) and scale it with
    ``cv2.resize`` -- about 5x faster than a ``cv2.warpAffine`` of the same output.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    sx, sy = (x2 - x1) / size, (y2 - y1) / size
    if not (sx > 0 and sy > 0) or not np.isfinite([x1, y1, x2, y2]).all():
        raise ValueError(f"face box {np.asarray(box).tolist()} is empty or not finite")
    margin = 3
    gx0, gy0 = int(math.floor(x1)) - margin, int(math.floor(y1)) - margin
    gx1, gy1 = int(math.ceil(x2)) + margin, int(math.ceil(y2)) + margin
    region = _padded_region(frame, gx0, gy0, gx1, gy1, border)
    bx, by = x1 - gx0, y1 - gy0  # box origin in region edge coordinates
    f = int(min(sx, sy))
    if f >= 2:  # shrinking a lot: area-average first so the crop does not alias
        rh, rw = region.shape[:2]
        nw, nh = max(rw // f, 1), max(rh // f, 1)
        region = cv2.resize(region, (nw, nh), interpolation=cv2.INTER_AREA)
        if region.ndim == 2 and frame.ndim == 3:
            region = region[:, :, None]
        kx, ky = nw / rw, nh / rh
        bx, by, sx, sy = bx * kx, by * ky, sx * kx, sy * ky
    channels = region.shape[2] if region.ndim == 3 else 1
    if channels in (1, 3) and min(sx, sy) >= 1.0:
        # shrinking: scale the integer-aligned region first (cv2.resize without dsize maps with exactly
        # 1 / fx), then shift the small result by the sub-pixel remainder
        ix, iy = int(math.floor(bx)), int(math.floor(by))
        nx, ny = int(math.ceil(size * sx)) + 2, int(math.ceil(size * sy)) + 2
        small = cv2.resize(region[iy:iy + ny, ix:ix + nx], None, fx=1.0 / sx, fy=1.0 / sy,
                           interpolation=cv2.INTER_LINEAR)
        out = cv2.getRectSubPix(small, (size, size), ((bx - ix) / sx + (size - 1) / 2.0,
                                                      (by - iy) / sy + (size - 1) / 2.0))
    elif channels in (1, 3):
        # enlarging: shift the small region by the sub-pixel remainder, then scale it
        nx, ny = int(math.ceil(size * sx)) + 2, int(math.ceil(size * sy)) + 2
        # patch pixel j (centre index) = region centre index bx + j, i.e. patch edge 0 = box edge x1
        patch = cv2.getRectSubPix(region, (nx, ny), (bx + (nx - 1) / 2.0, by + (ny - 1) / 2.0))
        # no dsize: cv2 then maps with exactly 1/fx (output u reads patch (u + 0.5) * sx - 0.5)
        out = cv2.resize(patch, None, fx=1.0 / sx, fy=1.0 / sy, interpolation=cv2.INTER_LINEAR)
        if out.shape[0] < size or out.shape[1] < size:  # cannot happen with the 2 px spare; be safe
            out = cv2.copyMakeBorder(out, 0, max(size - out.shape[0], 0), 0, max(size - out.shape[1], 0),
                                     cv2.BORDER_REPLICATE)
        out = out[:size, :size]
    else:  # cv2.getRectSubPix handles 1 or 3 channels only
        m = np.array([[sx, 0.0, bx + 0.5 * sx - 0.5], [0.0, sy, by + 0.5 * sy - 0.5]], np.float64)
        out = cv2.warpAffine(region, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_REPLICATE)
    if out.ndim == 2:
        out = out[:, :, None]
    return out


def crop_faces(frames: np.ndarray | Iterable[np.ndarray], boxes: np.ndarray, size: int = 512,
               border: str = "black", out: np.ndarray | None = None) -> np.ndarray:
    """Cut each box out of its frame and scale it to ``size`` x ``size``: [T, size, size, C].

    frames: [T, H, W, C] (uint8, or float in 0..1) or an iterable of [H, W, C] frames; the output
    keeps the input dtype. boxes: [T, 4] (x1, y1, x2, y2) in pixels; a box that is not square is
    stretched (the official look). Parts outside the image are ``border``: 'black' or 'edge'
    (replicated edge pixels). ``out``: an optional [T, size, size, C] array to write into (e.g. a
    numpy view of a preallocated tensor), which saves allocating and first-touching the output.
    """
    if border not in ("black", "edge"):
        raise ValueError(f"border must be 'black' or 'edge', got {border!r}")
    if size <= 0:
        raise ValueError(f"crop size must be positive, got {size}")
    boxes = np.asarray(boxes, dtype=np.float32)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be [T, 4] (x1, y1, x2, y2), got {boxes.shape}")
    mode = cv2.BORDER_CONSTANT if border == "black" else cv2.BORDER_REPLICATE
    if out is not None and (out.ndim != 4 or out.shape[:3] != (len(boxes), size, size)):
        raise ValueError(f"out must be [{len(boxes)}, {size}, {size}, C], got {out.shape}")
    count = 0
    for t, frame in enumerate(frames):
        if t >= len(boxes):
            raise ValueError(f"more frames than boxes ({len(boxes)})")
        frame = np.asarray(frame)
        if frame.ndim != 3:
            raise ValueError(f"each frame must be [H, W, C], got {frame.shape}")
        work = frame if frame.dtype in (np.uint8, np.float32) else frame.astype(np.float32)
        crop = _crop_one(np.ascontiguousarray(work), boxes[t], int(size), mode)
        if out is None:
            out = np.empty((len(boxes), size, size, frame.shape[2]), work.dtype)
        out[t] = crop
        count += 1
    if count != len(boxes):
        raise ValueError(f"{count} frames for {len(boxes)} boxes: give one box per frame")
    return out if out is not None else np.zeros((0, size, size, 3), np.uint8)


def crop_faces_official(frames: np.ndarray | Iterable[np.ndarray], boxes: np.ndarray, size: int = 512,
                        out: np.ndarray | None = None) -> np.ndarray:
    """The official face crop: ``cv2.resize(frame[y1:y2, x1:x2], (size, size))`` per frame.

    official: wan/modules/animate/preprocess/process_pipepline.py, ``ProcessPipeline.__call__`` (the
    integer region stretched to 512x512 with cv2's default bilinear interpolation). boxes: [T, 4]
    integer (x1, y1, x2, y2) regions inside the image, end exclusive, as ``face_boxes(mode='official')``
    gives them. frames and ``out`` as in :func:`crop_faces`; uint8 frames give the official pixels.
    """
    if size <= 0:
        raise ValueError(f"crop size must be positive, got {size}")
    boxes = np.asarray(boxes)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be [T, 4] (x1, y1, x2, y2), got {boxes.shape}")
    if not np.isfinite(boxes).all() or not np.array_equal(boxes, np.round(boxes)):
        raise ValueError("official face boxes must be whole pixels (from face_boxes(mode='official'))")
    ib = boxes.astype(np.int64)
    if out is not None and (out.ndim != 4 or out.shape[:3] != (len(ib), size, size)):
        raise ValueError(f"out must be [{len(ib)}, {size}, {size}, C], got {out.shape}")
    count = 0
    for t, frame in enumerate(frames):
        if t >= len(ib):
            raise ValueError(f"more frames than boxes ({len(ib)})")
        frame = np.asarray(frame)
        if frame.ndim != 3:
            raise ValueError(f"each frame must be [H, W, C], got {frame.shape}")
        x1, y1, x2, y2 = (int(v) for v in ib[t])
        fh, fw = frame.shape[:2]
        if not (0 <= x1 < x2 <= fw and 0 <= y1 < y2 <= fh):
            raise ValueError(f"face box {[x1, y1, x2, y2]} of frame {t} is empty or outside the {fw}x{fh} frame")
        work = frame if frame.dtype in (np.uint8, np.float32) else frame.astype(np.float32)
        crop = cv2.resize(work[y1:y2, x1:x2], (int(size), int(size)))
        if crop.ndim == 2:
            crop = crop[:, :, None]
        if out is None:
            out = np.empty((len(ib), size, size, frame.shape[2]), work.dtype)
        out[t] = crop
        count += 1
    if count != len(ib):
        raise ValueError(f"{count} frames for {len(ib)} boxes: give one box per frame")
    return out if out is not None else np.zeros((0, size, size, 3), np.uint8)
