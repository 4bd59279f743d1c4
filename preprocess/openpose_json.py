"""PoseSequence <-> POSE_KEYPOINT (the OpenPose JSON of comfyui_controlnet_aux).

POSE_KEYPOINT is a list with one dict per frame::

    {"people": [{"pose_keypoints_2d": [...], "face_keypoints_2d": [...] | None,
                 "hand_left_keypoints_2d": [...] | None, "hand_right_keypoints_2d": [...] | None}],
     "canvas_width": W, "canvas_height": H}

Each part is a flat list of x, y, c triples in canvas pixels: body in OpenPose COCO-18 order (nose,
neck, r-shoulder, r-elbow, r-wrist, l-shoulder, l-elbow, l-wrist, r-hip, r-knee, r-ankle, l-hip,
l-knee, l-ankle, r-eye, l-eye, r-ear, l-ear; the neck is the shoulder midpoint), face 70 points
(the 68 landmarks, then the right and left eye), 21 points per hand.

Export keeps the real confidences (controlnet_aux writes only 0/1). It also writes two extra keys
per person, which other tools ignore: ``person_id`` (the track id, so people keep their column on
import) and ``foot_keypoints_2d`` (6 points in COCO-WholeBody order: left big toe, left small toe,
left heel, right big toe, right small toe, right heel). Without them, feet come back missing
(confidence 0). ``extras=False`` writes the plain format.

Import accepts flat or nested (``[[x, y, c], ...]``) triples, ``None`` for a missing part, BODY-25
bodies as well as COCO-18, and coordinates normalised to 0..1 (when every coordinate in the data
is <= 1 they are multiplied by the canvas size).
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from .pose_types import FACE, FEET, LEFT_HAND, NUM_KEYPOINTS, RIGHT_HAND, PoseSequence

# COCO-WholeBody index of each COCO-18 point (-1 = the neck, computed from the shoulders)
COCO18_FROM_WHOLEBODY = [0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3]
# COCO-WholeBody index of each BODY-25 point (-1 = neck / mid-hip, derived points dropped on import)
BODY25_TO_WHOLEBODY = [0, -1, 6, 8, 10, 5, 7, 9, -1, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3,
                       17, 18, 19, 20, 21, 22]
R_EYE_WB, L_EYE_WB = 2, 1
KEYS = ("pose_keypoints_2d", "face_keypoints_2d", "hand_left_keypoints_2d", "hand_right_keypoints_2d")


def _flat(points: np.ndarray) -> list[float]:
    pts = np.asarray(points, dtype=np.float32).copy()
    pts[pts[:, 2] <= 0] = 0.0  # a missing point is written as 0, 0, 0
    return [float(v) for v in pts.reshape(-1)]


def _part_or_none(points: np.ndarray) -> list[float] | None:
    return _flat(points) if (np.asarray(points)[:, 2] > 0).any() else None


def person_to_openpose(kps133: np.ndarray, extras: bool = True, person_id: int | None = None) -> dict:
    """One person's [133, 3] keypoints as an OpenPose person dict (see the module doc)."""
    k = np.asarray(kps133, dtype=np.float32)
    if k.shape != (NUM_KEYPOINTS, 3):
        raise ValueError(f"expected one person's keypoints [133, 3], got {k.shape}")
    body = np.zeros((18, 3), np.float32)
    for i, src in enumerate(COCO18_FROM_WHOLEBODY):
        if src >= 0:
            body[i] = k[src]
    ls, rs = k[5], k[6]
    if ls[2] > 0 and rs[2] > 0:
        body[1] = ((ls[0] + rs[0]) / 2, (ls[1] + rs[1]) / 2, (ls[2] + rs[2]) / 2)
    face = np.concatenate([k[FACE], k[[R_EYE_WB, L_EYE_WB]]], axis=0)
    person = {
        "pose_keypoints_2d": _flat(body),
        "face_keypoints_2d": _part_or_none(face) if (k[FACE, 2] > 0).any() else None,
        "hand_left_keypoints_2d": _part_or_none(k[LEFT_HAND]),
        "hand_right_keypoints_2d": _part_or_none(k[RIGHT_HAND]),
    }
    if extras:
        person["foot_keypoints_2d"] = _part_or_none(k[FEET])
        if person_id is not None:
            person["person_id"] = int(person_id)
    return person


def to_pose_keypoint(seq: PoseSequence, people: str = "all", extras: bool = True) -> list[dict]:
    """POSE_KEYPOINT frames of a sequence. people: 'all' or 'subject'. A person with no known point
    in a frame is left out of that frame. ``extras`` adds ``person_id`` and ``foot_keypoints_2d``."""
    if people not in ("all", "subject"):
        raise ValueError(f"people must be 'all' or 'subject', got {people!r}")
    cols = list(range(seq.num_people)) if people == "all" else ([seq.subject] if seq.num_people else [])
    frames = []
    for t in range(seq.num_frames):
        persons = [person_to_openpose(seq.keypoints[t, p], extras, seq.track_ids[p])
                   for p in cols if (seq.keypoints[t, p, :, 2] > 0).any()]
        frames.append({"people": persons, "canvas_width": int(seq.width), "canvas_height": int(seq.height)})
    return frames


def _points(value: Any, name: str) -> np.ndarray | None:
    """A part as [n, 3] (x, y, c) from a flat or nested list; None when missing."""
    if value is None:
        return None
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{name} must hold numbers (x, y, c triples); {e}") from e
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    if arr.size == 0:
        return None
    if arr.ndim == 2 and arr.shape[1] in (2, 3):
        if arr.shape[1] == 2:
            arr = np.concatenate([arr, np.ones((len(arr), 1))], axis=1)
        return arr
    if arr.ndim == 1 and arr.size % 3 == 0:
        return arr.reshape(-1, 3)
    raise ValueError(f"{name} must be a flat list of x, y, c triples or a list of [x, y, c]; got shape {arr.shape}")


# The largest canvas side accepted on import: a bigger one would only ever reach the allocator.
MAX_CANVAS = 16384


def _load(data: Any) -> list[dict]:
    """The frames of POSE_KEYPOINT, checked for structure and values (a clear error for each frame
    that is not a dict with a list of person dicts, and for any NaN/infinite or non-numeric value)."""
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except ValueError as e:  # json.JSONDecodeError, UnicodeDecodeError
            raise ValueError(f"POSE_KEYPOINT is not valid JSON ({e})") from e
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, (list, tuple)) or not all(isinstance(f, dict) for f in data):
        raise ValueError("POSE_KEYPOINT must be a list of frame dicts with a 'people' list (or one such dict)")
    for t, frame in enumerate(data):
        people = frame.get("people")
        if people is not None and (not isinstance(people, (list, tuple))
                                   or not all(isinstance(p, dict) for p in people)):
            raise ValueError(f"frame {t}: 'people' must be a list of person dicts, got {type(people).__name__}")
        for key in ("canvas_width", "canvas_height"):
            if frame.get(key) is not None:
                _canvas_side(frame[key], f"frame {t}: {key}")
        for i, person in enumerate(people or []):
            for key in KEYS + ("foot_keypoints_2d",):
                try:
                    _points(person.get(key), key)
                except ValueError as e:
                    raise ValueError(f"frame {t}, person {i}: {e}") from e
    return list(data)


def _canvas_side(value: Any, name: str) -> int:
    """A canvas side as a whole number of pixels from 1 to MAX_CANVAS."""
    try:
        side = float(value)
    except (TypeError, ValueError):
        side = float("nan")
    if isinstance(value, bool) or not np.isfinite(side) or side < 1 or side > MAX_CANVAS:
        raise ValueError(f"{name} must be a number of pixels from 1 to {MAX_CANVAS}, got {value!r}")
    return int(side)


def _is_normalised(frames: list[dict]) -> bool:
    top = 0.0
    seen = False
    for frame in frames:
        for person in frame.get("people") or []:
            for key in KEYS + ("foot_keypoints_2d",):
                pts = _points(person.get(key), key)
                if pts is None:
                    continue
                known = pts[pts[:, 2] > 0, :2]
                if known.size:
                    seen = True
                    top = max(top, float(known.max()))
    return seen and top <= 1.0


def person_from_openpose(person: dict, sx: float = 1.0, sy: float = 1.0) -> np.ndarray:
    """One OpenPose person dict as [133, 3] keypoints (coordinates multiplied by ``sx``, ``sy``)."""
    k = np.zeros((NUM_KEYPOINTS, 3), np.float32)

    def put(dst, pts):
        pts = pts.copy()
        bad = (pts[:, 2] <= 0) | (pts[:, 0] < 0) | (pts[:, 1] < 0)
        pts[:, 0] *= sx
        pts[:, 1] *= sy
        pts[bad] = 0.0
        k[dst] = pts

    body = _points(person.get("pose_keypoints_2d"), "pose_keypoints_2d")
    if body is not None:
        if len(body) == 18:
            table = COCO18_FROM_WHOLEBODY
        elif len(body) == 25:
            table = BODY25_TO_WHOLEBODY
        else:
            raise ValueError(f"pose_keypoints_2d has {len(body)} points; expected 18 (COCO) or 25 (BODY-25)")
        idx = [(dst, src) for src, dst in enumerate(table) if dst >= 0]
        put([d for d, _ in idx], body[[s for _, s in idx]])
    face = _points(person.get("face_keypoints_2d"), "face_keypoints_2d")
    if face is not None:
        if len(face) < 68:
            raise ValueError(f"face_keypoints_2d has {len(face)} points; expected 68 or 70")
        put(list(range(FACE.start, FACE.stop)), face[:68])
    for key, part in (("hand_left_keypoints_2d", LEFT_HAND), ("hand_right_keypoints_2d", RIGHT_HAND),
                      ("foot_keypoints_2d", FEET)):
        pts = _points(person.get(key), key)
        if pts is None:
            continue
        n = part.stop - part.start
        if len(pts) != n:
            raise ValueError(f"{key} has {len(pts)} points; expected {n}")
        put(list(range(part.start, part.stop)), pts)
    return k


def from_pose_keypoint(data: Any, width: int | None = None, height: int | None = None,
                       fps: float = 0.0) -> PoseSequence:
    """A :class:`PoseSequence` from POSE_KEYPOINT (a list of frame dicts, one dict, or a JSON string).

    The canvas is the first frame's ``canvas_width``/``canvas_height`` (or ``width``/``height`` when
    the data has none); frames on another canvas are rescaled to it. People are put in columns by
    their ``person_id`` when every person has one, else by their position in the frame's list.
    """
    frames = _load(data)
    if not frames:
        raise ValueError("POSE_KEYPOINT has no frames")
    cw = frames[0].get("canvas_width") or width
    ch = frames[0].get("canvas_height") or height
    if not cw or not ch:
        raise ValueError("POSE_KEYPOINT has no canvas_width/canvas_height: pass width and height")
    cw, ch = _canvas_side(cw, "canvas_width"), _canvas_side(ch, "canvas_height")
    normalised = _is_normalised(frames)
    all_people = [p for f in frames for p in (f.get("people") or [])]
    use_ids = bool(all_people) and all("person_id" in p for p in all_people)
    columns: dict[Any, int] = {}
    if use_ids:
        for p in all_people:
            columns.setdefault(p["person_id"], len(columns))
        n_people = len(columns)
    else:
        n_people = max((len(f.get("people") or []) for f in frames), default=0)
    kps = np.zeros((len(frames), n_people, NUM_KEYPOINTS, 3), np.float32)
    for t, frame in enumerate(frames):
        fw = _canvas_side(frame.get("canvas_width") or cw, "canvas_width")
        fh = _canvas_side(frame.get("canvas_height") or ch, "canvas_height")
        sx, sy = (cw, ch) if normalised else (cw / fw, ch / fh)
        for i, person in enumerate(frame.get("people") or []):
            col = columns[person["person_id"]] if use_ids else i
            try:
                kps[t, col] = person_from_openpose(person, sx, sy)
            except ValueError as e:
                raise ValueError(f"frame {t}, person {i}: {e}") from e
    ids = tuple(int(i) if isinstance(i, (int, np.integer)) else n for n, i in enumerate(columns)) \
        if use_ids else tuple(range(n_people))
    if len(set(ids)) != len(ids):
        ids = tuple(range(n_people))
    return PoseSequence(kps, ids, cw, ch, fps=float(fps))
