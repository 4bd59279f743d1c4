"""Detection + whole-body pose with the ONNX models (YOLO + ViTPose), crops batched across frames.

:class:`OnnxPoseBackend` is the :class:`models.pose_pipeline.PoseBackend` of the ONNX sessions:
per chunk of frames the detector runs on the chunk (batched when the model takes a dynamic batch),
then *all* person crops of the chunk go through ViTPose together, ``batch_size`` crops per run; the
peer packs run one crop per call, which leaves the accelerator mostly idle. Keypoints come back in
image pixels with the network's confidences. A frame without detections yields zero people: holding,
filling or tracking is decided later (``models.pose_pipeline``), never by a full-frame box here.
"""
from __future__ import annotations

from itertools import islice
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from ..preprocess.heatmap import CROP_H, CROP_W, NUM_KEYPOINTS
from .onnx_pose import PersonDetector, WholeBodyPose
from .pose_pipeline import FramePoses, detect_frames

__all__ = ["FramePoses", "OnnxPoseBackend", "detect_and_estimate", "estimate_chunk"]


def _chunks(frames: Iterable[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    it = iter(frames)
    while True:
        part = list(islice(it, size))
        if not part:
            return
        yield part


def estimate_chunk(frames: Sequence[np.ndarray], boxes: Sequence[np.ndarray], pose_model: WholeBodyPose,
                   batch_size: int = 16) -> list[np.ndarray]:
    """Keypoints [k_i, 133, 3] for the boxes of every frame, crops of all frames batched together."""
    items = [(fi, j) for fi, b in enumerate(boxes) for j in range(len(b))]
    out = [np.zeros((len(b), NUM_KEYPOINTS, 3), dtype=np.float32) for b in boxes]
    bs = max(1, int(batch_size))
    for start in range(0, len(items), bs):
        sel = items[start:start + bs]
        crops = np.empty((len(sel), 3, CROP_H, CROP_W), dtype=np.float32)
        rows = np.empty((len(sel), 5), dtype=np.float32)
        pos = 0
        while pos < len(sel):  # consecutive items of one frame are cropped in one call
            fi = sel[pos][0]
            end = pos
            while end < len(sel) and sel[end][0] == fi:
                end += 1
            idx = [j for _, j in sel[pos:end]]
            frame_boxes = np.asarray(boxes[fi], dtype=np.float32)[idx, :5]
            crops[pos:end] = pose_model.crops(frames[fi], frame_boxes)
            rows[pos:end] = frame_boxes
            pos = end
        kps = pose_model.decode(pose_model.heatmaps(crops, batch_size=bs), rows)
        for (fi, j), kp in zip(sel, kps):
            out[fi][j] = kp
    return out


class OnnxPoseBackend:
    """The :class:`models.pose_pipeline.PoseBackend` of a YOLOv10 detector and a ViTPose whole-body
    model (onnxruntime sessions, e.g. the ``OpenPoseModels`` of ``PoseModelFiles.open``).

    ``detect`` runs the detector on the frames (its own batch size); ``estimate`` crops every box of
    every frame and runs ViTPose on ``batch_size`` crops at a time (:func:`estimate_chunk`).
    """

    def __init__(self, detector: PersonDetector, pose_model: WholeBodyPose, batch_size: int = 16):
        self.detector = detector
        self.pose_model = pose_model
        self.batch_size = max(1, int(batch_size))

    @property
    def provider(self) -> str:
        """The onnxruntime provider the pose model really runs on."""
        return self.pose_model.providers[0]

    def detect(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(b, dtype=np.float32).reshape(-1, 5) for b in self.detector.run(list(frames))]

    def estimate(self, frames: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> list[np.ndarray]:
        return estimate_chunk(frames, boxes, self.pose_model, self.batch_size)


def detect_and_estimate(frames_iter: Iterable[np.ndarray], detector: PersonDetector, pose_model: WholeBodyPose,
                        batch_size: int = 16, progress: Callable[[int, int | None], None] | None = None,
                        should_stop: Callable[[], bool] | None = None, *, chunk_frames: int | None = None,
                        total: int | None = None) -> list[FramePoses]:
    """Detect every person in each RGB uint8 frame [H, W, 3] and estimate their 133 keypoints.

    Returns one ``FramePoses(boxes [k, 5], keypoints [k, 133, 3])`` per frame, in image pixels.
    Frames are read ``chunk_frames`` at a time (default max(batch_size, 8)), so memory stays bounded
    by one chunk of frames and crops. ``progress(done, total)`` is called after every chunk (total is
    ``len(frames_iter)`` when it has one, else the ``total`` given, else None). ``should_stop()`` is
    called before every chunk; the caller's callback is expected to raise to cancel, and if it just
    returns True the frames processed so far are returned.
    """
    backend = OnnxPoseBackend(detector, pose_model, batch_size)
    chunk = max(1, int(chunk_frames)) if chunk_frames else max(backend.batch_size, 8)
    if total is None and hasattr(frames_iter, "__len__"):
        total = len(frames_iter)  # type: ignore[arg-type]
    results: list[FramePoses] = []
    for part in _chunks(frames_iter, chunk):
        if should_stop is not None and should_stop():
            break
        results.extend(detect_frames(backend, part, len(results)))
        if progress is not None:
            progress(len(results), total)
    return results
