"""Top-down ViTPose geometry: person box -> 256x192 crop, and 64x48 heatmaps -> image keypoints.

Numbers from the official wan/modules/animate/preprocess/pose2d.py (ViTPose.preprocess and
pose2d_utils.py): the detector box is widened or heightened to the crop
aspect 3:4 (W:H = 192:256) around its centre and scaled by 1.25, then affine-warped to a 256x192
(H x W) crop normalised with the ImageNet mean/std. The network returns 133 heatmaps of 64x48,
decoded with argmax plus the DARK ("unbiased") refinement: the heatmap is blurred with an 11x11
Gaussian, its log is taken and one Newton step (first and second derivatives, a Taylor expansion)
moves the integer argmax to the sub-pixel maximum. The confidence is the raw heatmap maximum.

Pixel convention (the mmpose non-UDP one, which the official decoding uses): coordinates are
OpenCV's, pixel (i, j) has its centre at (i, j). The crop warp maps the box centre c to
(crop_w / 2, crop_h / 2) and scales the expanded box size s to the crop size; heatmap cell (u, v)
corresponds to crop pixel (u * stride, v * stride) with stride = crop_w / heatmap_w = 4. Decoding
inverts exactly these two maps, so a heatmap peak at (u, v) lands in the image at
``c + (stride * (u, v) - crop_size / 2) * s / crop_size``.
"""
from __future__ import annotations

import cv2
import numpy as np

CROP_W, CROP_H = 192, 256
HEATMAP_W, HEATMAP_H = 48, 64
NUM_KEYPOINTS = 133
BOX_PADDING = 1.25
DARK_KERNEL = 11
MIN_BOX_SIDE = 1.0  # pixels; a degenerate box is grown to this so the warp stays invertible

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255.0
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255.0


def _as_boxes(boxes: np.ndarray, name: str = "boxes") -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim == 1 and arr.shape[0] >= 4:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] < 4:
        raise ValueError(f"{name} must be [n, 4+] rows of (x1, y1, x2, y2, ...), got shape {tuple(arr.shape)}")
    if not np.isfinite(arr[:, :4]).all():
        raise ValueError(f"{name} contain NaN or infinite coordinates")
    return arr[:, :4]


def box_to_center_size(boxes: np.ndarray, padding: float = BOX_PADDING,
                       crop_size: tuple[int, int] = (CROP_W, CROP_H)) -> tuple[np.ndarray, np.ndarray]:
    """Expand xyxy boxes [n, 4+] to the crop aspect and scale them by ``padding``.

    crop_size is (width, height). Returns centres [n, 2] and sizes [n, 2] (width, height) in
    image pixels, float64. The shorter side (relative to the aspect) is lengthened, never cut.
    """
    b = _as_boxes(boxes)
    if padding <= 0:
        raise ValueError(f"box padding must be > 0, got {padding}")
    x1, y1 = np.minimum(b[:, 0], b[:, 2]), np.minimum(b[:, 1], b[:, 3])
    x2, y2 = np.maximum(b[:, 0], b[:, 2]), np.maximum(b[:, 1], b[:, 3])
    centers = np.stack([(x1 + x2) * 0.5, (y1 + y2) * 0.5], axis=1)
    w = np.maximum(x2 - x1, MIN_BOX_SIDE)
    h = np.maximum(y2 - y1, MIN_BOX_SIDE)
    aspect = crop_size[0] / float(crop_size[1])
    wide = w > aspect * h
    h = np.where(wide, w / aspect, h)
    w = np.where(wide, w, h * aspect)
    sizes = np.stack([w, h], axis=1) * padding
    return centers, sizes


def crop_affine(center: np.ndarray, size: np.ndarray,
                crop_size: tuple[int, int] = (CROP_W, CROP_H)) -> np.ndarray:
    """2x3 affine matrix taking image pixels to crop pixels for one expanded box."""
    cx, cy = float(center[0]), float(center[1])
    sx = crop_size[0] / float(size[0])
    sy = crop_size[1] / float(size[1])
    return np.array([[sx, 0.0, crop_size[0] * 0.5 - sx * cx],
                     [0.0, sy, crop_size[1] * 0.5 - sy * cy]], dtype=np.float64)


def inverse_crop_affine(center: np.ndarray, size: np.ndarray,
                        crop_size: tuple[int, int] = (CROP_W, CROP_H)) -> np.ndarray:
    """2x3 affine matrix taking crop pixels back to image pixels (inverse of :func:`crop_affine`)."""
    cx, cy = float(center[0]), float(center[1])
    ix = float(size[0]) / crop_size[0]
    iy = float(size[1]) / crop_size[1]
    return np.array([[ix, 0.0, cx - ix * crop_size[0] * 0.5],
                     [0.0, iy, cy - iy * crop_size[1] * 0.5]], dtype=np.float64)


def crop_batch(frame: np.ndarray, boxes: np.ndarray, *, padding: float = BOX_PADDING,
               bgr_like_official: bool = False,
               crop_size: tuple[int, int] = (CROP_W, CROP_H)) -> np.ndarray:
    """Cut the person crops of one RGB uint8 frame [H, W, 3] for the pose network.

    Returns float32 [n, 3, crop_h, crop_w], ImageNet-normalised. Parts of a crop outside the frame
    are black (before normalisation). ``bgr_like_official=True`` reproduces the official pipeline,
    which feeds BGR pixels normalised with the RGB statistics.
    """
    img = np.asarray(frame)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"crop_batch: frame must be uint8 [H, W, 3] RGB, got {img.dtype} {tuple(img.shape)}")
    centers, sizes = box_to_center_size(boxes, padding, crop_size)
    n = centers.shape[0]
    out = np.empty((n, 3, crop_size[1], crop_size[0]), dtype=np.float32)
    if n == 0:
        return out
    src = img[..., ::-1] if bgr_like_official else img
    src = np.ascontiguousarray(src)
    scale = (1.0 / IMAGENET_STD).astype(np.float32)
    for i in range(n):
        m = crop_affine(centers[i], sizes[i], crop_size)
        crop = cv2.warpAffine(src, m, crop_size, flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        out[i] = ((crop.astype(np.float32) - IMAGENET_MEAN) * scale).transpose(2, 0, 1)
    return out


def _gaussian_taps(kernel: int) -> np.ndarray:
    if kernel % 2 != 1 or kernel < 1:
        raise ValueError(f"DARK blur kernel must be an odd positive size, got {kernel}")
    return cv2.getGaussianKernel(kernel, 0)[:, 0].astype(np.float64)  # sigma 2.0 for size 11


def _blurred_log_window(hm: np.ndarray, n_idx: np.ndarray, k_idx: np.ndarray, px: np.ndarray,
                        py: np.ndarray, kernel: int) -> np.ndarray:
    """log of the Gaussian-blurred heatmaps on the 5x5 cells around (px, py), [m, 5, 5].

    Equivalent to blurring the whole map (zeros outside it) and reading 5x5 cells, but only the
    (kernel + 4)^2 cells that matter are touched. The official blur also rescales each map to keep
    its maximum: that only adds a constant to the log, which the derivatives ignore.
    """
    g = _gaussian_taps(kernel)
    reach = kernel // 2 + 2
    offs = np.arange(-reach, reach + 1)
    h, w = hm.shape[2], hm.shape[3]
    ys = py[:, None] + offs[None, :]
    xs = px[:, None] + offs[None, :]
    valid = ((ys >= 0) & (ys < h))[:, :, None] & ((xs >= 0) & (xs < w))[:, None, :]
    win = hm[n_idx[:, None, None], k_idx[:, None, None], np.clip(ys, 0, h - 1)[:, :, None],
             np.clip(xs, 0, w - 1)[:, None, :]].astype(np.float64)
    win = np.where(valid, win, 0.0)
    win = np.lib.stride_tricks.sliding_window_view(win, kernel, axis=2) @ g  # along x: [m, 2r+1, 5]
    win = np.lib.stride_tricks.sliding_window_view(win, kernel, axis=1) @ g  # along y: [m, 5, 5]
    return np.log(np.maximum(win, 1e-10))


def decode_heatmaps(heatmaps: np.ndarray, kernel: int = DARK_KERNEL,
                    unbiased: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel maxima of heatmaps [n, K, h, w].

    Returns coords float64 [n, K, 2] (x, y) in heatmap cells and scores float32 [n, K] (the raw
    heatmap maxima). With ``unbiased`` (DARK) the log of the kernel x kernel Gaussian-blurred map is
    expanded to second order at the integer argmax and one Newton step gives the sub-cell maximum;
    maxima closer than 2 cells to the border keep the integer argmax.
    """
    hm = np.asarray(heatmaps, dtype=np.float32)
    if hm.ndim != 4:
        raise ValueError(f"heatmaps must be [n, K, h, w], got shape {tuple(hm.shape)}")
    n, k, h, w = hm.shape
    flat = hm.reshape(n, k, h * w)
    idx = flat.argmax(axis=2)
    scores = np.take_along_axis(flat, idx[..., None], axis=2)[..., 0]
    px = (idx % w).astype(np.int64)
    py = (idx // w).astype(np.int64)
    coords = np.stack([px, py], axis=-1).astype(np.float64)
    if not unbiased or n * k == 0:
        return coords, scores
    inside = (px >= 2) & (px <= w - 3) & (py >= 2) & (py <= h - 3)
    ni, ki = np.nonzero(inside)
    if ni.size == 0:
        return coords, scores
    lw = _blurred_log_window(hm, ni, ki, px[ni, ki], py[ni, ki], kernel)  # centre at [2, 2]
    center = lw[:, 2, 2]
    dx = 0.5 * (lw[:, 2, 3] - lw[:, 2, 1])
    dy = 0.5 * (lw[:, 3, 2] - lw[:, 1, 2])
    dxx = 0.25 * (lw[:, 2, 4] - 2 * center + lw[:, 2, 0])
    dyy = 0.25 * (lw[:, 4, 2] - 2 * center + lw[:, 0, 2])
    dxy = 0.25 * (lw[:, 3, 3] - lw[:, 1, 3] - lw[:, 3, 1] + lw[:, 1, 1])
    det = dxx * dyy - dxy * dxy
    ok = np.abs(det) > 1e-12
    safe = np.where(ok, det, 1.0)
    # offset = -H^-1 g with H = [[dxx, dxy], [dxy, dyy]], g = (dx, dy)
    off_x = -(dyy * dx - dxy * dy) / safe
    off_y = -(dxx * dy - dxy * dx) / safe
    # a step longer than a cell means the local quadratic model is not trustworthy there
    ok &= (np.abs(off_x) <= 1.0) & (np.abs(off_y) <= 1.0)
    coords[ni[ok], ki[ok], 0] += off_x[ok]
    coords[ni[ok], ki[ok], 1] += off_y[ok]
    return coords, scores


def heatmap_to_image(coords: np.ndarray, centers: np.ndarray, sizes: np.ndarray,
                     heatmap_size: tuple[int, int] = (HEATMAP_W, HEATMAP_H),
                     crop_size: tuple[int, int] = (CROP_W, CROP_H)) -> np.ndarray:
    """Map heatmap coordinates [n, K, 2] of n crops back to image pixels (see the module docstring)."""
    c = np.asarray(coords, dtype=np.float64)
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 1, 2)
    sizes = np.asarray(sizes, dtype=np.float64).reshape(-1, 1, 2)
    stride = np.array([crop_size[0] / heatmap_size[0], crop_size[1] / heatmap_size[1]])
    crop_wh = np.array(crop_size, dtype=np.float64)
    crop_pts = c * stride
    return centers + (crop_pts - crop_wh * 0.5) * sizes / crop_wh


def keypoints_from_heatmaps(heatmaps: np.ndarray, boxes: np.ndarray, *, padding: float = BOX_PADDING,
                            kernel: int = DARK_KERNEL, unbiased: bool = True,
                            crop_size: tuple[int, int] = (CROP_W, CROP_H)) -> np.ndarray:
    """Decode heatmaps [n, K, h, w] of the crops of ``boxes`` [n, 4+] to keypoints in image pixels.

    Returns float32 [n, K, 3] (x, y, score); scores are clipped to 0..1.
    """
    hm = np.asarray(heatmaps)
    b = _as_boxes(boxes)
    if hm.ndim != 4 or hm.shape[0] != b.shape[0]:
        raise ValueError(f"keypoints_from_heatmaps: need one heatmap stack per box, got heatmaps "
                         f"{tuple(hm.shape)} for {b.shape[0]} boxes")
    centers, sizes = box_to_center_size(b, padding, crop_size)
    coords, scores = decode_heatmaps(hm, kernel, unbiased)
    xy = heatmap_to_image(coords, centers, sizes, (hm.shape[3], hm.shape[2]), crop_size)
    out = np.empty(hm.shape[:2] + (3,), dtype=np.float32)
    out[..., :2] = xy
    out[..., 2] = np.clip(scores, 0.0, 1.0)
    return out
