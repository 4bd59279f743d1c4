"""Person detection: input preparation and output parsing for a YOLOv10 end-to-end ONNX detector.

The official preprocessing (wan/modules/animate/preprocess/pose2d.py, Yolo.preprocess) feeds the detector a *plain* resize of the
RGB frame to 640x640 (no letterbox), scaled to 0..1, NCHW float32. The end-to-end output is
[B, 300, 6] rows of (x1, y1, x2, y2, score, class) in 640x640 input pixels. We keep rows with
score >= 0.05 and class 0 (person), run NMS at IoU 0.5 and scale the boxes back to image pixels.

Unlike the official code this module keeps *every* person; choosing the subject, tracking and
filling frames without detections are decided later, by other modules.
"""
from __future__ import annotations

import cv2
import numpy as np

DETECTOR_SIZE = 640
DEFAULT_CONF = 0.05
DEFAULT_IOU = 0.5
PERSON_CLASS = 0


def preprocess_for_detector(frames, size: int = DETECTOR_SIZE) -> np.ndarray:
    """Resize RGB uint8 frames to the detector input.

    frames: uint8 [N, H, W, 3], one frame [H, W, 3], or a sequence of [H, W, 3] frames (sizes may
    differ). Returns float32 [N, 3, size, size] in 0..1: a plain (aspect-distorting) resize, as in
    the official pipeline.
    """
    if isinstance(frames, (list, tuple)):
        seq = [np.asarray(f) for f in frames]
    else:
        arr = np.asarray(frames)
        seq = [arr] if arr.ndim == 3 else list(arr) if arr.ndim == 4 else [arr]
    out = np.empty((len(seq), 3, size, size), dtype=np.float32)
    for i, frame in enumerate(seq):
        if frame.ndim != 3 or frame.shape[-1] != 3:
            raise ValueError(f"preprocess_for_detector: frames must be uint8 [N, H, W, 3] RGB, got a frame "
                             f"of shape {tuple(frame.shape)}")
        if frame.dtype != np.uint8:
            raise ValueError(f"preprocess_for_detector: frames must be uint8 0..255, got {frame.dtype}; convert "
                             f"a ComfyUI IMAGE with (image * 255).round().astype(np.uint8)")
        resized = cv2.resize(frame, (size, size), interpolation=cv2.INTER_LINEAR)
        out[i] = resized.transpose(2, 0, 1)
    out *= np.float32(1.0 / 255.0)
    return out


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box [4] against boxes [k, 4]."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = max(float(box[2] - box[0]), 0.0) * max(float(box[3] - box[1]), 0.0)
    area_b = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = DEFAULT_IOU) -> np.ndarray:
    """Greedy non-maximum suppression. Returns kept indices, best score first.

    A box is suppressed when its IoU with an already kept, higher-scoring box is > iou_threshold.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        if order.size == 1:
            break
        rest = order[1:]
        order = rest[box_iou(boxes[best], boxes[rest]) <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def parse_detections(output: np.ndarray, image_width: int, image_height: int,
                     conf_threshold: float = DEFAULT_CONF, iou_threshold: float = DEFAULT_IOU,
                     person_class: int = PERSON_CLASS, input_size: int = DETECTOR_SIZE) -> np.ndarray:
    """Parse one frame's end-to-end YOLOv10 output into person boxes in image pixels.

    output: [300, 6] or [1, 300, 6] rows (x1, y1, x2, y2, score, class) in input_size pixels.
    Returns float32 [k, 5] (x1, y1, x2, y2, score), clipped to the image, best score first.
    Boxes that are empty after clipping are dropped.
    """
    rows = np.asarray(output, dtype=np.float32)
    if rows.ndim == 3 and rows.shape[0] == 1:
        rows = rows[0]
    if rows.ndim != 2 or rows.shape[1] != 6:
        raise ValueError(f"parse_detections: expected the YOLOv10 end-to-end output [300, 6] "
                         f"(x1, y1, x2, y2, score, class), got {tuple(np.shape(output))}")
    if image_width <= 0 or image_height <= 0:
        raise ValueError(f"parse_detections: image size must be positive, got {image_width}x{image_height}")
    finite = np.isfinite(rows).all(axis=1)
    keep = finite & (rows[:, 4] >= conf_threshold) & (np.rint(rows[:, 5]) == person_class)
    rows = rows[keep]
    if rows.shape[0] == 0:
        return np.zeros((0, 5), dtype=np.float32)
    sx = image_width / float(input_size)
    sy = image_height / float(input_size)
    boxes = rows[:, :4].astype(np.float64) * np.array([sx, sy, sx, sy])
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0.0, float(image_width))
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0.0, float(image_height))
    # swap corners that come out reversed rather than dropping them
    boxes[:, [0, 2]] = np.sort(boxes[:, [0, 2]], axis=1)
    boxes[:, [1, 3]] = np.sort(boxes[:, [1, 3]], axis=1)
    nonempty = (boxes[:, 2] - boxes[:, 0] > 0) & (boxes[:, 3] - boxes[:, 1] > 0)
    boxes, scores = boxes[nonempty], rows[nonempty, 4].astype(np.float64)
    if boxes.shape[0] == 0:
        return np.zeros((0, 5), dtype=np.float32)
    kept = nms(boxes, scores, iou_threshold)
    return np.concatenate([boxes[kept], scores[kept, None]], axis=1).astype(np.float32)
