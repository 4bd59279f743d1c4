"""The official Replacement-mode resize of the driving frames: a pixel budget, letterboxed.

In Replacement mode the official preprocessing (official: wan/modules/animate/preprocess/
process_pipepline.py, ``ProcessPipeline.__call__``, replace branch) passes every resampled
driving frame through ``resize_by_area(frame, resolution_area[0] * resolution_area[1],
divisor=16)`` (official: wan/modules/animate/preprocess/utils.py) before it extracts poses, masks,
face crops and the background, and the generation then runs at the size of those frames
(official: wan/animate.py, ``height, width = cond_images[0].shape[:2]``). ``resolution_area`` is
``[1280, 720]`` by default. In Animation mode the frames keep their own size.

``resize_by_area`` does, per frame:

* the canvas: :func:`~.resolution.size_for_area` (its fallback arithmetic, the branch that always
  runs);
* the interpolation: INTER_AREA when the canvas holds fewer pixels than the source frame
  (``canvas_w * canvas_h < w * h``), INTER_LINEAR otherwise; the canvas, not the fitted picture
  inside it, decides;
* ``padding_resize`` with that interpolation: the frame scaled to fill the limiting side of the
  canvas (the other side ``int()``-truncated), centred with ``int((canvas - fitted) / 2)`` pixels
  of black before it (:func:`~.resolution.letterbox_geometry`), in a float64 zero canvas cast back
  with ``np.uint8``. cv2 resizes the uint8 frame directly, so the canvas only ever holds integers
  0..255 and the cast is exact: a uint8 canvas gives the same bytes.

:class:`AreaResize` is that recipe for one source size, applied to uint8 chunks.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .resolution import letterbox_geometry, size_for_area


@dataclass(frozen=True)
class AreaResize:
    """The official ``resize_by_area`` for frames of ``src_w`` x ``src_h``."""

    src_w: int
    src_h: int
    width: int  # the canvas handed on
    height: int
    fit_w: int  # the picture inside it
    fit_h: int
    left: int
    top: int
    interpolation: int  # cv2.INTER_AREA or cv2.INTER_LINEAR

    @classmethod
    def plan(cls, src_w: int, src_h: int, area: int, divisor: int = 16) -> "AreaResize":
        width, height = size_for_area(src_w, src_h, area=area, divisor=divisor)
        fit_w, fit_h, left, top = letterbox_geometry(src_w, src_h, width, height)
        fewer = width * height < int(src_w) * int(src_h)
        return cls(int(src_w), int(src_h), width, height, fit_w, fit_h, left, top,
                   cv2.INTER_AREA if fewer else cv2.INTER_LINEAR)

    @property
    def identity(self) -> bool:
        """The canvas is the source size: the frames come out unchanged (the fit is then the whole
        canvas, and cv2 copies a same-size resize)."""
        return (self.width, self.height) == (self.src_w, self.src_h)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """uint8 [k, src_h, src_w, 3] -> uint8 [k, height, width, 3]."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[1:3] != (self.src_h, self.src_w) or frames.dtype != np.uint8:
            raise ValueError(f"expected uint8 frames [k, {self.src_h}, {self.src_w}, C], got "
                             f"{frames.dtype} {frames.shape}")
        if self.identity:
            return frames
        out = np.zeros((len(frames), self.height, self.width, frames.shape[3]), np.uint8)
        window = out[:, self.top:self.top + self.fit_h, self.left:self.left + self.fit_w]
        for i, frame in enumerate(frames):
            fitted = cv2.resize(frame, (self.fit_w, self.fit_h), interpolation=self.interpolation)
            window[i] = fitted.reshape(window.shape[1:])  # cv2 drops a single channel axis
        return out
