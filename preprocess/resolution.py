"""Output resolution and letterbox placement, as the official preprocessing does them.

Official (wan/modules/animate/preprocess/utils.py): ``resize_by_area`` always ends in its fallback branch,
``new_h = sqrt(A / ar)``, ``new_w = A / new_h``, each floored to a multiple of 16, and the frames are
then fitted with ``padding_resize`` (aspect kept, centred, black bars) using the interpolation
``resize_by_area`` picks: INTER_AREA when shrinking, INTER_LINEAR otherwise. The official
``padding_resize`` called on its own (the reference image, in preprocessing and again in
``wan/animate.py`` at generation) always uses INTER_LINEAR: :func:`padding_resize` takes that as
``interpolation="linear"``.

Keypoints move between canvases with one convention, the official one, ``x' = x / W * W'``
(:func:`scale_keypoints`, the pack's one keypoint rescale); :func:`letterbox_keypoints` adds the
official keypoint letterbox on top (one scale, centred bars), so a skeleton can be drawn directly on
the output canvas instead of resizing a drawn image.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

DEFAULT_AREA = 1280 * 720


def size_for_area(width: int, height: int, area: int = DEFAULT_AREA, divisor: int = 16) -> tuple[int, int]:
    """(w, h) of about ``area`` pixels with the aspect of ``width`` x ``height``, multiples of ``divisor``.

    The size the official ``resize_by_area`` works out (official: wan/modules/animate/preprocess/utils.py,
    ``resize_by_area``). Its first attempt, ``calculate_new_size``, always fails (its ``check_valid`` is
    called with one argument too many, and with no candidate at all it raises "Can not find suitable
    size"), so the bare ``except`` branch is what runs, and it is reproduced here operation for
    operation in float64: ``aspect = width / height``, ``h = sqrt(area / aspect)``, ``w = area / h``,
    each floored with Python's float ``//`` and multiplied back, ``int((x // divisor) * divisor)``.
    No tolerance is added: where the float result lands just under a multiple (e.g. 49x25 gives
    w = 1343.99...), the official code floors it down (1328) and so does this.

    1920x1080 -> 1280x720, 1080x1920 -> 720x1280, 4:3 -> 1104x816, 1:1 -> 960x960, 2:3 -> 768x1168
    (for the default area of 1280*720). The one departure: a side the official floor makes 0 (an
    extreme aspect or a tiny area; the official code then fails inside ``padding_resize``) is
    ``divisor`` here.
    """
    width, height, area, divisor = int(width), int(height), int(area), int(divisor)
    if width <= 0 or height <= 0:
        raise ValueError(f"size_for_area needs a positive source size, got {width}x{height}")
    if area <= 0:
        raise ValueError(f"size_for_area needs a positive area, got {area}")
    if divisor <= 0:
        raise ValueError(f"size_for_area needs a positive divisor, got {divisor}")
    aspect = width / height
    tall = math.sqrt(area / aspect)
    wide = area / tall
    new_w = int((wide // divisor) * divisor)
    new_h = int((tall // divisor) * divisor)
    return max(new_w, divisor), max(new_h, divisor)


def letterbox_geometry(src_w: int, src_h: int, dst_w: int, dst_h: int) -> tuple[int, int, int, int]:
    """(new_w, new_h, offset_x, offset_y) of the official ``padding_resize`` fit.

    The side that limits the fit is filled exactly; the other is truncated to an integer and centred
    with ``int((dst - new) / 2)`` pixels of bar before it.
    """
    for name, v in (("src_w", src_w), ("src_h", src_h), ("dst_w", dst_w), ("dst_h", dst_h)):
        if v <= 0:
            raise ValueError(f"letterbox needs positive sizes, got {name}={v}")
    if src_h / src_w > dst_h / dst_w:
        new_h = int(dst_h)
        new_w = max(int(dst_h / src_h * src_w), 1)
        return new_w, new_h, int((dst_w - new_w) / 2), 0
    new_w = int(dst_w)
    new_h = max(int(dst_w / src_w * src_h), 1)
    return new_w, new_h, 0, int((dst_h - new_h) / 2)


def letterbox_transform(src_w: int, src_h: int, dst_w: int, dst_h: int) -> tuple[float, float, float]:
    """(scale, offset_x, offset_y) mapping source pixels into the letterboxed destination.

    ``scale`` is the uniform fit factor of the limiting side; offsets are the bar widths in pixels.
    """
    new_w, new_h, ox, oy = letterbox_geometry(src_w, src_h, dst_w, dst_h)
    limited_by_height = src_h / src_w > dst_h / dst_w
    scale = new_h / src_h if limited_by_height else new_w / src_w
    return float(scale), float(ox), float(oy)


INTERPOLATIONS = ("area_when_shrinking", "linear")


def padding_resize(image: np.ndarray, dst_w: int, dst_h: int, pad_value: float = 0,
                   interpolation: str = "area_when_shrinking") -> np.ndarray:
    """Fit ``image`` [H, W] or [H, W, C] (uint8 or float) into ``dst_w`` x ``dst_h``, centred, with bars.

    ``interpolation``: "area_when_shrinking" = INTER_AREA when shrinking, INTER_LINEAR when
    enlarging (the choice of the official ``resize_by_area``, used for video frames); "linear" =
    always INTER_LINEAR (official: wan/animate.py and preprocess/utils.py, ``padding_resize`` with
    its default interpolation, used for the reference image). For uint8 input with "linear" the
    result equals the official function's pixel for pixel (cv2 resizes uint8 directly; the
    official float canvas holds the same integers and its uint8 cast keeps them). The result keeps
    the input dtype and channel count.
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"padding_resize expects a non-empty [H, W] or [H, W, C] image, got {image.shape}")
    src_h, src_w = image.shape[:2]
    new_w, new_h, ox, oy = letterbox_geometry(src_w, src_h, dst_w, dst_h)
    if (new_w, new_h) == (src_w, src_h):
        resized = image
    else:
        shrink = new_w * new_h < src_w * src_h and interpolation == "area_when_shrinking"
        work = image.astype(np.float32) if image.dtype not in (np.uint8, np.uint16, np.float32) else image
        resized = cv2.resize(work, (new_w, new_h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        if resized.ndim == 2 and image.ndim == 3:  # cv2 drops a single channel axis
            resized = resized[:, :, None]
        resized = resized.astype(image.dtype, copy=False)
    out = np.full((int(dst_h), int(dst_w)) + image.shape[2:], pad_value, dtype=image.dtype)
    out[oy:oy + new_h, ox:ox + new_w] = resized
    return out


def _check_sizes(what: str, **sizes) -> None:
    for name, v in sizes.items():
        if v <= 0:
            raise ValueError(f"{what} needs positive sizes, got {name}={v}")


def _keypoint_array(kps) -> np.ndarray:
    kps = np.asarray(kps, dtype=np.float32)
    if kps.shape[-1:] != (3,):
        raise ValueError(f"keypoints must end in (x, y, confidence), got shape {kps.shape}")
    return kps


def _place(kps: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``kps`` with new x and y (float64, cast back to float32) where the point is known; a missing
    point (0, 0, 0) keeps its zeros so it stays recognisably missing. Confidences are unchanged."""
    out = kps.copy()
    known = np.any(kps != 0, axis=-1)
    out[..., 0] = np.where(known, x, kps[..., 0])
    out[..., 1] = np.where(known, y, kps[..., 1])
    return out


def scale_keypoints(kps, src_w: int, src_h: int, dst_w: int, dst_h: int) -> np.ndarray:
    """Keypoints [..., 3] in pixels of a ``src_w`` x ``src_h`` frame, moved to a ``dst_w`` x ``dst_h``
    canvas by a plain (not aspect-keeping) rescale: THE keypoint rescale of the pack.

    The official convention: a coordinate is normalised by its frame and multiplied by the other
    canvas, ``x' = x / src_w * dst_w`` (official: wan/modules/animate/preprocess/pose2d_utils.py,
    ``load_pose_metas_from_kp2ds_seq`` divides by the frame size and ``AAPoseMeta.from_humanapi_meta``
    multiplies by the canvas size; ``AAPoseMeta.resize`` scales by ``width / self.width``;
    process_pipepline.py ``get_mask`` and retarget_pose.py ``rescale_skeleton`` multiply normalised
    points by the frame size). It is also the exact geometry of a resized picture for these
    coordinates: the official drawing truncates (pixel ``i`` holds ``[i, i + 1)``), and cv2 maps the
    continuous position ``X`` to ``X * s``. Computed in float64, returned as float32; confidences are
    unchanged and missing points (0, 0, 0) stay missing.
    """
    _check_sizes("scale_keypoints", src_w=src_w, src_h=src_h, dst_w=dst_w, dst_h=dst_h)
    kps = _keypoint_array(kps)
    if (src_w, src_h) == (dst_w, dst_h):
        return kps.copy()
    x = kps[..., 0].astype(np.float64) / float(src_w) * float(dst_w)
    y = kps[..., 1].astype(np.float64) / float(src_h) * float(dst_h)
    return _place(kps, x, y)


def letterbox_keypoints(kps, src_w: int, src_h: int, dst_w: int, dst_h: int) -> np.ndarray:
    """Move keypoints [..., 3] (pixels of a ``src_w`` x ``src_h`` canvas) to the letterboxed canvas.

    The official keypoint letterbox (official: wan/modules/animate/preprocess/pose2d_utils.py,
    ``AAPoseMeta.padding_resize2``): one scale for both axes, that of the side that limits the fit
    (``dst_h / src_h`` or ``dst_w / src_w``), plus the bar ``int((dst - new) / 2)`` on the other side,
    ``x' = x * scale + bar``: the convention of :func:`scale_keypoints` with the placement of
    :func:`padding_resize`. Confidences are unchanged and missing points (0, 0, 0) stay missing.
    """
    scale, ox, oy = letterbox_transform(src_w, src_h, dst_w, dst_h)
    kps = _keypoint_array(kps)
    x = kps[..., 0].astype(np.float64) * scale + ox
    y = kps[..., 1].astype(np.float64) * scale + oy
    return _place(kps, x, y)


def stretch_keypoints(kps, src_w: int, src_h: int, dst_w: int, dst_h: int) -> np.ndarray:
    """Move keypoints [..., 3] to a ``dst_w`` x ``dst_h`` canvas by a plain (non aspect-keeping) resize:
    :func:`scale_keypoints` (kept under this name for the renderer's letterbox-off choice)."""
    return scale_keypoints(kps, src_w, src_h, dst_w, dst_h)
