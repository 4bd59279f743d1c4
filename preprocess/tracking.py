"""Multi-person tracking with stable ids, and choice of the subject.

The official pipeline keeps only the largest person box per frame and has no identity across
frames (official: wan/modules/animate/preprocess/pose2d.py, Yolo.process_results). Here every detected person is
tracked:

* per frame, detections are boxes (x1, y1, x2, y2, score) with their 133 keypoints;
* tracks are predicted one frame ahead at constant velocity, then matched to detections with a
  cost mixing box IoU and the keypoint distance normalised by the person's size (Hungarian
  assignment via scipy when available, greedy otherwise), with a gate on the cost;
* an unmatched track survives ``max_age`` frames (occlusion, a missed detection), an unmatched
  detection opens a new track, tracks shorter than ``min_hits`` detections are dropped as noise.

:func:`select_subject` picks the person to animate: 'largest', an index ('0', '1', ... in order of
first appearance) or a pixel 'x,y' clicked on the first frame where anyone is seen.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable

import numpy as np

from .pose_types import NUM_KEYPOINTS, PoseSequence

try:  # scipy gives the optimal assignment; the greedy fallback is fine for a handful of people
    from scipy.optimize import linear_sum_assignment as _hungarian
except ImportError:  # pragma: no cover - scipy is a soft dependency
    _hungarian = None

_BIG = 1e6


@dataclass
class FrameDetections:
    """The people found in one frame: boxes [n, 5] (x1, y1, x2, y2, score), keypoints [n, 133, 3]."""

    boxes: np.ndarray
    keypoints: np.ndarray

    def __post_init__(self):
        kps = np.asarray(self.keypoints if self.keypoints is not None else [], dtype=np.float32)
        if kps.size == 0:
            kps = kps.reshape(0, NUM_KEYPOINTS, 3)
        elif kps.ndim == 2:
            kps = kps[None]
        if kps.ndim != 3 or kps.shape[1:] != (NUM_KEYPOINTS, 3):
            raise ValueError(f"detection keypoints must be [n, 133, 3], got {kps.shape}")
        if self.boxes is None:
            boxes = np.concatenate([keypoint_boxes(kps), _mean_conf(kps)[:, None]], axis=1)
        else:
            boxes = np.asarray(self.boxes, dtype=np.float32)
            if boxes.size == 0:
                boxes = boxes.reshape(0, 5)
            elif boxes.ndim == 1:
                boxes = boxes[None]
            if boxes.ndim == 2 and boxes.shape[1] == 4:
                boxes = np.concatenate([boxes, np.ones((len(boxes), 1), np.float32)], axis=1)
            if boxes.ndim != 2 or boxes.shape[1] != 5:
                raise ValueError(f"detection boxes must be [n, 4] or [n, 5] (x1, y1, x2, y2, score), "
                                 f"got {boxes.shape}")
        if len(boxes) != len(kps):
            raise ValueError(f"{len(boxes)} boxes but {len(kps)} keypoint sets in one frame")
        self.boxes, self.keypoints = boxes.astype(np.float32), kps


def _mean_conf(kps: np.ndarray) -> np.ndarray:
    return kps[..., :23, 2].mean(axis=-1) if kps.size else np.zeros(len(kps), np.float32)


def keypoint_boxes(kps: np.ndarray, threshold: float = 0.3) -> np.ndarray:
    """[..., 4] boxes (x1, y1, x2, y2) of the keypoints at or above ``threshold``; zeros where none."""
    kps = np.asarray(kps, dtype=np.float32)
    good = kps[..., 2] >= threshold
    big = np.float32(1e9)
    x = np.where(good, kps[..., 0], big)
    y = np.where(good, kps[..., 1], big)
    x1, y1 = x.min(axis=-1), y.min(axis=-1)
    x = np.where(good, kps[..., 0], -big)
    y = np.where(good, kps[..., 1], -big)
    x2, y2 = x.max(axis=-1), y.max(axis=-1)
    boxes = np.stack([x1, y1, x2, y2], axis=-1)
    return np.where(good.any(axis=-1)[..., None], boxes, 0.0).astype(np.float32)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix [len(a), len(b)] of xyxy boxes."""
    a = np.asarray(a, np.float64)[:, None, :4]
    b = np.asarray(b, np.float64)[None, :, :4]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]).clip(0) * (a[..., 3] - a[..., 1]).clip(0)
    area_b = (b[..., 2] - b[..., 0]).clip(0) * (b[..., 3] - b[..., 1]).clip(0)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def _as_detections(frame: Any) -> FrameDetections:
    if frame is None:
        return FrameDetections(np.zeros((0, 5), np.float32), np.zeros((0, NUM_KEYPOINTS, 3), np.float32))
    if isinstance(frame, FrameDetections):
        return frame
    if isinstance(frame, dict):
        return FrameDetections(frame.get("boxes"), frame.get("keypoints", np.zeros((0, NUM_KEYPOINTS, 3))))
    if isinstance(frame, (tuple, list)) and len(frame) == 2:  # (boxes, keypoints), unless 2 people
        first, second = frame
        kps = np.asarray(second if second is not None else [], dtype=np.float32)
        boxes_like = first is None or np.shape(first)[-1:] in ((4,), (5,), (0,))
        if boxes_like and (kps.size == 0 or kps.shape[-2:] == (NUM_KEYPOINTS, 3)):
            return FrameDetections(first, kps)
    arr = np.asarray(frame, dtype=np.float32)
    if arr.size == 0 or arr.shape[-2:] == (NUM_KEYPOINTS, 3):
        return FrameDetections(None, arr)
    raise ValueError("each frame must be None, a FrameDetections, a (boxes, keypoints) pair, a dict with "
                     "'boxes' and 'keypoints', or a keypoint array [n, 133, 3]")


@dataclass
class _Track:
    tid: int
    box: np.ndarray
    kps: np.ndarray
    last_frame: int
    hits: int = 1
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))
    frames: dict = field(default_factory=dict)  # frame -> detection index

    def predicted(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        shift = self.velocity * (t - self.last_frame)
        box = self.box.copy()
        box[[0, 2]] += shift[0]
        box[[1, 3]] += shift[1]
        kps = self.kps.copy()
        kps[:, :2] += shift.astype(np.float32)
        return box, kps


def _centre(box: np.ndarray) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], np.float64)


def _kp_cost(pred: np.ndarray, det: np.ndarray, scale: float, threshold: float) -> float | None:
    common = (pred[:, 2] >= threshold) & (det[:, 2] >= threshold)
    if common.sum() < 3:
        return None
    d = np.linalg.norm(pred[common, :2] - det[common, :2], axis=1).mean()
    return float(min(d / max(scale, 1.0), 1.0))


def _assign(cost: np.ndarray, max_cost: float) -> list[tuple[int, int]]:
    if cost.size == 0:
        return []
    if _hungarian is not None:
        rows, cols = _hungarian(cost)
        pairs = list(zip(rows.tolist(), cols.tolist()))
    else:
        pairs, used_r, used_c = [], set(), set()
        for flat in np.argsort(cost, axis=None):
            r, c = np.unravel_index(flat, cost.shape)
            if r not in used_r and c not in used_c:
                pairs.append((int(r), int(c)))
                used_r.add(r)
                used_c.add(c)
    return [(r, c) for r, c in pairs if cost[r, c] <= max_cost]


def track_people(frames: Iterable[Any], width: int, height: int, fps: float = 0.0, *,
                 max_age: int | None = None, iou_weight: float = 0.5, max_cost: float = 0.75,
                 min_hits: int = 3, kp_threshold: float = 0.3, min_score: float = 0.0,
                 return_boxes: bool = False):
    """Track the people of a video; returns a :class:`PoseSequence` [T, P, 133, 3].

    frames: per frame None, a :class:`FrameDetections`, a (boxes, keypoints) pair, a dict with
    'boxes' and 'keypoints', or a keypoint array [n, 133, 3] (boxes then come from the keypoints).
    max_age: frames a lost track survives (default 1 s). iou_weight: weight of (1 - IoU) against the
    normalised keypoint distance in the cost. max_cost: gate above which nothing is matched.
    min_hits: tracks with fewer detections are dropped (capped at the clip length). Columns are
    ordered by first appearance, ids renumbered 0..P-1, absent frames zeros with ``detected`` False,
    subject the largest person. With ``return_boxes`` also returns detector boxes [T, P, 4].
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"track_people needs a positive canvas, got {width}x{height}")
    if not 0.0 <= iou_weight <= 1.0:
        raise ValueError(f"iou_weight must be in 0..1, got {iou_weight}")
    dets = [_as_detections(f) for f in frames]
    t_len = len(dets)
    age_limit = int(max_age) if max_age is not None else int(round(fps)) if fps > 0 else 30
    tracks: list[_Track] = []
    finished: list[_Track] = []
    next_id = 0
    for t, det in enumerate(dets):
        keep = det.boxes[:, 4] >= min_score
        idx = np.flatnonzero(keep)
        boxes, kps = det.boxes[idx], det.keypoints[idx]
        preds = [tr.predicted(t) for tr in tracks]
        cost = np.full((len(tracks), len(idx)), _BIG)
        if tracks and len(idx):
            iou = box_iou(np.stack([p[0] for p in preds]), boxes)
            for i, (pbox, pkps) in enumerate(preds):
                scale = float(np.hypot(pbox[2] - pbox[0], pbox[3] - pbox[1]))
                for j in range(len(idx)):
                    kc = _kp_cost(pkps, kps[j], scale, kp_threshold)
                    if kc is None:  # too few common points: the box centre distance stands in
                        kc = min(np.linalg.norm(_centre(pbox) - _centre(boxes[j])) / max(scale, 1.0), 1.0)
                    cost[i, j] = iou_weight * (1.0 - iou[i, j]) + (1.0 - iou_weight) * kc
        matched_t, matched_d = set(), set()
        for i, j in _assign(cost, max_cost):
            tr = tracks[i]
            step = t - tr.last_frame
            new_v = (_centre(boxes[j]) - _centre(tr.box)) / step
            tr.velocity = new_v if tr.hits == 1 else 0.5 * tr.velocity + 0.5 * new_v
            tr.box, tr.kps, tr.last_frame = boxes[j, :4].astype(np.float64), kps[j].copy(), t
            tr.hits += 1
            tr.frames[t] = int(idx[j])
            matched_t.add(i)
            matched_d.add(j)
        alive = []
        for i, tr in enumerate(tracks):
            (alive if i in matched_t or t - tr.last_frame <= age_limit else finished).append(tr)
        tracks = alive
        for j in range(len(idx)):
            if j not in matched_d:
                tr = _Track(next_id, boxes[j, :4].astype(np.float64), kps[j].copy(), t)
                tr.frames[t] = int(idx[j])
                tracks.append(tr)
                next_id += 1
    finished.extend(tracks)
    need = min(max(int(min_hits), 1), max(t_len, 1))
    kept = sorted((tr for tr in finished if len(tr.frames) >= need), key=lambda tr: tr.tid)
    out = np.zeros((t_len, len(kept), NUM_KEYPOINTS, 3), np.float32)
    box_out = np.zeros((t_len, len(kept), 4), np.float32)
    detected = np.zeros((t_len, len(kept)), bool)
    for p, tr in enumerate(kept):
        for t, j in tr.frames.items():
            out[t, p] = dets[t].keypoints[j]
            box_out[t, p] = dets[t].boxes[j, :4]
            detected[t, p] = True
    seq = PoseSequence(out, tuple(range(len(kept))), int(width), int(height), detected=detected,
                       fps=float(fps))
    if len(kept):
        seq = replace(seq, subject=_largest(box_out))
    return (seq, box_out) if return_boxes else seq


def _largest(boxes: np.ndarray) -> int:
    area = (boxes[..., 2] - boxes[..., 0]).clip(0) * (boxes[..., 3] - boxes[..., 1]).clip(0)
    return int(np.argmax(area.mean(axis=0)))


def person_boxes(seq: PoseSequence, threshold: float = 0.3) -> np.ndarray:
    """[T, P, 4] boxes of every person from their keypoints (zeros where absent)."""
    boxes = keypoint_boxes(seq.keypoints, threshold)
    return np.where(seq.detected[..., None], boxes, 0.0).astype(np.float32)


def _parse_point(text: str, seq: PoseSequence) -> tuple[float, float] | None:
    parts = [p.strip() for p in text.replace(";", ",").split(",")]
    if len(parts) != 2:
        return None
    try:
        x, y = float(parts[0]), float(parts[1])
    except ValueError:
        return None
    if "." in text and 0.0 <= x <= 1.0 and 0.0 <= y <= 1.0:  # fractions of the canvas
        x, y = x * seq.width, y * seq.height
    return x, y


def select_subject(seq: PoseSequence, person: str | int = "largest") -> PoseSequence:
    """A copy of ``seq`` whose ``subject`` is the chosen person.

    person: 'largest' (largest mean box area over the whole clip, absent frames counting as 0, so
    the main, most present person wins), an index '0', '1', ... (columns in order of first
    appearance), or a point 'x,y' in canvas pixels (or fractions like '0.5,0.4'): in the first frame
    where anyone is seen, the person whose box holds the point (the smallest such box), else the
    one whose box is nearest.
    """
    if seq.num_people == 0:
        raise ValueError("no person was tracked in this video, so there is no subject to select")
    choice = str(person).strip().lower()
    if choice in ("largest", ""):
        return replace(seq, subject=_largest(person_boxes(seq)))
    if choice.lstrip("-").isdigit():
        i = int(choice)
        if not 0 <= i < seq.num_people:
            raise ValueError(f"person index {i} is out of range: {seq.num_people} people were tracked "
                             f"(use 0..{seq.num_people - 1})")
        return replace(seq, subject=i)
    point = _parse_point(choice, seq)
    if point is None:
        raise ValueError(f"person must be 'largest', an index like '0', or a point 'x,y'; got {person!r}")
    boxes = person_boxes(seq)
    present = seq.detected.any(axis=1)
    if not present.any():
        raise ValueError("no frame has a detected person to pick with a point")
    t = int(np.argmax(present))
    cands = np.flatnonzero(seq.detected[t])
    b = boxes[t, cands].astype(np.float64)
    px, py = point
    dx = np.maximum(np.maximum(b[:, 0] - px, px - b[:, 2]), 0)
    dy = np.maximum(np.maximum(b[:, 1] - py, py - b[:, 3]), 0)
    dist = np.hypot(dx, dy)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    order = np.lexsort((area, dist))  # nearest box first, then the smallest (front-most) one
    return replace(seq, subject=int(cands[order[0]]))


def detections_from_sequence(seq: PoseSequence) -> list[FrameDetections]:
    """Per-frame detections (keypoint boxes) of a sequence, e.g. to re-track imported poses."""
    boxes = person_boxes(seq)
    out = []
    for t in range(seq.num_frames):
        cols = np.flatnonzero(seq.detected[t])
        out.append(FrameDetections(np.concatenate([boxes[t, cols], np.ones((len(cols), 1), np.float32)], 1),
                                   seq.keypoints[t, cols]))
    return out

