"""SAM2 prompts from the tracked subject's keypoints, plus user points (reference §3.7).

Official scheme (official: wan/modules/animate/preprocess/process_pipepline.py,
ProcessPipeline.get_mask): chunks of 400 frames, each with a fresh SAM2 state. A chunk of ``n``
frames has keyframes ``0, s, 2s, ...`` below ``n`` with ``s = n // 4`` (``s = n`` when ``n <= 4``),
so a chunk whose length is not a multiple of 4 gets up to 7 of them (7 frames: every frame).
Each keyframe gets 8 positive points of the 20-point body: nose, neck (shoulder midpoint), R/L
shoulder, R/L hip, R/L ankle, in that order. The body is the one the official extraction keeps,
a failed body (every point at negative x or y) replaced by the previous frame's (official:
pose2d_utils.py, load_pose_metas_from_kp2ds_seq; ``keypoints.hold_invalid_bodies``). Every
point is used whatever its score and even off the canvas, its pixel position truncated toward
zero as the official ``astype(np.int32)`` of the normalised point times the canvas size.

``rule='official'`` (the default) follows that; the only difference is a keyframe where the
subject has no keypoint at all (not found and not filled in: every score 0), which gets no
prompt (the official detector always falls back to a whole-frame box, so it always has a pose).
``rule='confident'`` is the pack's own rule, which differs from the official: exactly
``keyframes`` keyframes per chunk (``keyframe_offsets``), a point used only when its confidence
is >= ``threshold``, it lies inside the canvas and the subject was really detected in that frame
(no body hold), and a keyframe without any such point moved to the nearest frame of its chunk
that has some (frame 0 of a chunk included); pixel positions are not truncated.

User points (KJNodes ``PointsEditor`` strings, or arrays) belong to one frame of the video,
``user_frame`` (the editor shows frame 0). ``mode='add'`` puts them next to the keypoint points
of that frame; ``mode='replace'`` drops the keypoint prompts of the chunk that holds that frame.
Other chunks keep their keypoint prompts, since the user's points describe one frame only.
A chunk left without any prompt gets ``from_previous=True``: seed it from the previous chunk's
last mask (SAM2 ``add_new_mask``) rather than leave it empty.

Accepted point strings (``parse_points_json``): ``[{"x": 10, "y": 20}, ...]``, ``[[10, 20], ...]``,
a single ``{"x":..,"y":..}`` or ``[x, y]``, and the editor's store ``{"positive": [...],
"negative": [...]}`` (``parse_points_store``). Empty input (``""``, ``[]``, ``[{}]``) means no point.
Boxes (``parse_boxes_json``): ``[x1, y1, x2, y2]``, ``[[x1, y1, x2, y2], ...]`` (``fmt='xywh'``
reads ``[x, y, w, h]``), ``{"x1","y1","x2","y2"}`` or ``{"x","y","width","height"}`` dicts, or
lists of those. All coordinates are canvas pixels of the pose sequence.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .keypoints import hold_invalid_bodies
from .pose_types import (L_ANKLE, L_HIP, L_SHOULDER, NOSE, R_ANKLE, R_HIP, R_SHOULDER, PoseSequence)

POSITIVE, NEGATIVE = 1, 0
# Official prompt order: nose, neck, R shoulder, L shoulder, R hip, L hip, R ankle, L ankle.
# The neck is the shoulder midpoint and is marked by -1 here.
_NECK = -1
PROMPT_POINTS = (NOSE, _NECK, R_SHOULDER, L_SHOULDER, R_HIP, L_HIP, R_ANKLE, L_ANKLE)
# The COCO-WholeBody pairs whose mean is each of those points as a joint of the official 20-point
# body (joints 0, 1, 2, 5, 8, 11, 10, 13 there).
_PROMPT_PAIRS = ((NOSE, NOSE), (R_SHOULDER, L_SHOULDER), (R_SHOULDER, R_SHOULDER), (L_SHOULDER, L_SHOULDER),
                 (R_HIP, R_HIP), (L_HIP, L_HIP), (R_ANKLE, R_ANKLE), (L_ANKLE, L_ANKLE))
PROMPT_RULES = ("official", "confident")

Prompt = tuple[np.ndarray, np.ndarray]  # points [n, 2] float32, labels [n] int32


@dataclass
class ChunkPrompts:
    """SAM2 prompts of one chunk ``[start, stop)`` of the video (one fresh predictor state).

    frames: frame index *within the chunk* -> (points [n, 2] float32 xy, labels [n] int32, 1 =
        positive, 0 = negative) for the subject (object id 1).
    box: optional (x1, y1, x2, y2) subject box on chunk frame ``box_frame``.
    object_points: frame within chunk -> (points, labels) of a second object to preserve
        (object id 2), e.g. something the character holds that should stay from the source.
    from_previous: no prompt of its own; seed it from the previous chunk's last mask.
    """

    start: int
    stop: int
    frames: dict[int, Prompt] = field(default_factory=dict)
    box: tuple[float, float, float, float] | None = None
    box_frame: int = 0
    object_points: dict[int, Prompt] = field(default_factory=dict)
    from_previous: bool = False

    @property
    def num_frames(self) -> int:
        return self.stop - self.start

    @property
    def has_prompts(self) -> bool:
        return bool(self.frames) or self.box is not None


# ------------------------------------------------------------------------------------ JSON input

def _load_json(text: Any, what: str) -> Any:
    if text is None:
        return None
    if not isinstance(text, str):
        return text
    text = text.strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        snippet = text if len(text) <= 60 else text[:57] + "..."
        raise ValueError(f"{what} is not valid JSON ({e.msg} at character {e.pos}): {snippet!r}. "
                         f'Expected e.g. [{{"x": 256, "y": 256}}]') from None


def _number(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{what} must be a number, got {v!r}")
    if not np.isfinite(v):
        raise ValueError(f"{what} must be finite, got {v!r}")
    return float(v)


def _point(item: Any, i: int) -> list[float] | None:
    if isinstance(item, dict):
        if not item:
            return None  # the editor's empty placeholder "[{}]"
        if "x" not in item or "y" not in item:
            raise ValueError(f"point {i} needs keys 'x' and 'y', got keys {sorted(item)}")
        return [_number(item["x"], f"point {i} x"), _number(item["y"], f"point {i} y")]
    if isinstance(item, (list, tuple)) and len(item) == 2:
        return [_number(item[0], f"point {i} x"), _number(item[1], f"point {i} y")]
    raise ValueError(f'point {i} must be {{"x": .., "y": ..}} or [x, y], got {item!r}')


def parse_points_json(text: Any) -> np.ndarray:
    """Points [n, 2] float32 from a PointsEditor JSON string (see module doc) or a list/array."""
    if isinstance(text, np.ndarray):
        arr = text.astype(np.float32).reshape(-1, 2) if text.size else np.zeros((0, 2), np.float32)
        if not np.isfinite(arr).all():
            raise ValueError("points must be finite numbers")
        return arr
    data = _load_json(text, "points")
    if data is None:
        return np.zeros((0, 2), np.float32)
    if isinstance(data, dict):
        if "positive" in data or "negative" in data:
            raise ValueError("this is a points store with positive and negative lists; "
                             "use parse_points_store for it")
        data = [data]
    elif isinstance(data, (list, tuple)) and len(data) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in data):
        data = [data]
    if not isinstance(data, (list, tuple)):
        raise ValueError(f"points must be a JSON list, got {type(data).__name__}")
    pts = [p for i, item in enumerate(data) if (p := _point(item, i)) is not None]
    return np.asarray(pts, np.float32).reshape(-1, 2)


def parse_points_store(text: Any) -> tuple[np.ndarray, np.ndarray]:
    """(positive [n, 2], negative [m, 2]) from the editor's ``{"positive": [..], "negative": [..]}``."""
    data = _load_json(text, "points store")
    if data is None:
        return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
    if not isinstance(data, dict):
        raise ValueError('points store must be a JSON object {"positive": [...], "negative": [...]}')
    return parse_points_json(data.get("positive") or []), parse_points_json(data.get("negative") or [])


def _box(item: Any, fmt: str, i: int) -> list[float] | None:
    if isinstance(item, dict):
        if not item:
            return None
        if all(k in item for k in ("x1", "y1", "x2", "y2")):
            v = [item["x1"], item["y1"], item["x2"], item["y2"]]
            kind = "xyxy"
        elif all(k in item for k in ("x", "y", "width", "height")):
            v = [item["x"], item["y"], item["width"], item["height"]]
            kind = "xywh"
        else:
            raise ValueError(f"box {i} needs keys x1,y1,x2,y2 or x,y,width,height, got {sorted(item)}")
    elif isinstance(item, (list, tuple)) and len(item) == 4:
        v, kind = list(item), fmt
    else:
        raise ValueError(f"box {i} must be [x1, y1, x2, y2] or a dict, got {item!r}")
    x1, y1, a, b = (_number(c, f"box {i} coordinate") for c in v)
    x2, y2 = (x1 + a, y1 + b) if kind == "xywh" else (a, b)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"box {i} is empty or inverted: ({x1}, {y1}, {x2}, {y2}) as x1, y1, x2, y2")
    return [x1, y1, x2, y2]


def parse_boxes_json(text: Any, fmt: str = "xyxy") -> np.ndarray:
    """Boxes [n, 4] float32 as (x1, y1, x2, y2) from a JSON string or list (see module doc)."""
    if fmt not in ("xyxy", "xywh"):
        raise ValueError(f"box format must be 'xyxy' or 'xywh', got {fmt!r}")
    data = _load_json(text, "boxes")
    if isinstance(data, np.ndarray):
        data = data.tolist()
    if data is None:
        return np.zeros((0, 4), np.float32)
    if isinstance(data, dict) or (isinstance(data, (list, tuple)) and len(data) == 4 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in data)):
        data = [data]
    if not isinstance(data, (list, tuple)):
        raise ValueError(f"boxes must be a JSON list, got {type(data).__name__}")
    boxes = [b for i, item in enumerate(data) if (b := _box(item, fmt, i)) is not None]
    return np.asarray(boxes, np.float32).reshape(-1, 4)


# ---------------------------------------------------------------------------- keypoint prompts

def keypoint_prompt(kps133: np.ndarray, width: int, height: int, threshold: float = 0.5) -> np.ndarray:
    """Positive points [n, 2] of one frame: the official 8 body points that are confident and in frame.

    kps133: [133, 3] one person's keypoints. The neck is the shoulder midpoint and needs both
    shoulders confident.
    """
    kp = np.asarray(kps133, np.float32)
    pts = []
    for idx in PROMPT_POINTS:
        if idx == _NECK:
            a, b = kp[L_SHOULDER], kp[R_SHOULDER]
            if min(a[2], b[2]) < threshold:
                continue
            p = (a[:2] + b[:2]) * 0.5
        else:
            if kp[idx, 2] < threshold:
                continue
            p = kp[idx, :2]
        if np.isfinite(p).all() and 0 <= p[0] < width and 0 <= p[1] < height:
            pts.append(p)
    return np.asarray(pts, np.float32).reshape(-1, 2)


def official_keypoint_prompt(kps133: np.ndarray, width: int, height: int) -> np.ndarray:
    """The official 8 positive points [8, 2] (float32 holding whole pixels) of one frame.

    kps133: [133, 3] one person's keypoints (already through the body hold for a sequence).
    Follows the official arithmetic in float32: coordinates divided by the canvas size, the pair
    mean of the 20-point body, times the size, truncated toward zero; scores and position are not
    looked at. Points that are not finite (never from the extraction) are left out.
    """
    kp = np.asarray(kps133, np.float32)
    size = np.array([width, height], np.float32)
    a = kp[[i for i, _ in _PROMPT_PAIRS], :2] / size
    b = kp[[j for _, j in _PROMPT_PAIRS], :2] / size
    mean = (a + b) / np.float32(2)
    with np.errstate(invalid="ignore", over="ignore"):
        px = np.trunc(mean.astype(np.float64) * np.array([width, height], np.float64))
    px = px[np.isfinite(px).all(axis=1)]
    return px.astype(np.float32).reshape(-1, 2)


def official_keyframe_offsets(length: int, keyframes: int = 4) -> list[int]:
    """Official keyframes of a chunk: 0, s, 2s, ... below ``length`` with s = length // keyframes, or
    [0] when length <= keyframes. With the official 4 a chunk gets 4 to 7 keyframes."""
    if length < 1:
        raise ValueError(f"chunk length must be >= 1, got {length}")
    if keyframes < 1:
        raise ValueError(f"keyframes must be >= 1, got {keyframes}")
    if length <= keyframes:
        return [0]
    return list(range(0, length, length // keyframes))


def keyframe_offsets(length: int, keyframes: int = 4) -> list[int]:
    """Exactly ``keyframes`` keyframes 0, s, .., (keyframes - 1) s with s = length // keyframes; [0] if length
    <= keyframes (the 'confident' rule; the official ones are :func:`official_keyframe_offsets`)."""
    if length < 1:
        raise ValueError(f"chunk length must be >= 1, got {length}")
    if keyframes < 1:
        raise ValueError(f"keyframes must be >= 1, got {keyframes}")
    if length <= keyframes:
        return [0]
    step = length // keyframes
    return [i * step for i in range(keyframes)]


def chunk_bounds(num_frames: int, chunk_size: int = 400) -> list[tuple[int, int]]:
    """[(start, stop)] chunks of ``chunk_size`` frames covering the video (the last may be shorter)."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return [(s, min(s + chunk_size, num_frames)) for s in range(0, num_frames, chunk_size)]


def _user_points(value: Any, what: str, width: int, height: int) -> np.ndarray:
    pts = parse_points_json(value) if value is not None else np.zeros((0, 2), np.float32)
    bad = ~((pts[:, 0] >= 0) & (pts[:, 0] < width) & (pts[:, 1] >= 0) & (pts[:, 1] < height))
    if bad.any():
        x, y = pts[np.flatnonzero(bad)[0]]
        raise ValueError(f"{what} point ({x:g}, {y:g}) lies outside the {width}x{height} canvas; "
                         f"place the points on an image of the video's size")
    return pts


def plan_prompts(seq: PoseSequence | None, num_frames: int, chunk_size: int = 400, keyframes: int = 4,
                 threshold: float = 0.5, user_positive: Any = None, user_negative: Any = None,
                 mode: str = "add", object_points: Any = None, user_box: Any = None,
                 user_frame: int = 0, width: int | None = None, height: int | None = None,
                 rule: str = "official") -> list[ChunkPrompts]:
    """SAM2 prompts for every chunk of a ``num_frames`` video (see module doc for the rules).

    seq: the tracked poses (its subject is prompted); None for user points only. Frames beyond
        ``seq.num_frames`` have no keypoints. width/height default to the sequence's canvas.
    rule: 'official' (default) or 'confident' (the pack's own, see the module doc); ``threshold``
        applies to 'confident' only.
    user_positive / user_negative / object_points: point JSON strings or [n, 2] arrays.
    user_box: a box JSON string / list (first box used) on ``user_frame``.
    """
    if mode not in ("add", "replace"):
        raise ValueError(f"mode must be 'add' or 'replace', got {mode!r}")
    if rule not in PROMPT_RULES:
        raise ValueError(f"rule must be one of {', '.join(PROMPT_RULES)}, got {rule!r}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be within 0..1, got {threshold}")
    width = width if width is not None else (seq.width if seq is not None else None)
    height = height if height is not None else (seq.height if seq is not None else None)
    if width is None or height is None:
        raise ValueError("without a pose sequence, pass the canvas width and height")
    if not 0 <= user_frame < num_frames:
        raise ValueError(f"user_frame must be within 0..{num_frames - 1}, got {user_frame}")
    pos = _user_points(user_positive, "positive", width, height)
    neg = _user_points(user_negative, "negative", width, height)
    obj = _user_points(object_points, "object", width, height)
    boxes = parse_boxes_json(user_box) if user_box is not None else np.zeros((0, 4), np.float32)
    has_user = len(pos) > 0 or len(neg) > 0 or len(boxes) > 0
    if mode == "replace" and not (len(pos) or len(boxes)):
        raise ValueError("mode 'replace' needs at least one positive user point or a box")

    kps = None
    if seq is not None and seq.num_people > 0:
        kps = seq.subject_keypoints
        det = seq.subject_detected
        if rule == "official":
            kps = hold_invalid_bodies(kps)  # over the whole video, before the chunks (official order)

    def frame_points(t: int) -> np.ndarray:
        if rule == "official":
            if kps is None or t >= len(kps) or not (kps[t, :, 2] > 0).any():
                return np.zeros((0, 2), np.float32)
            return official_keypoint_prompt(kps[t], width, height)
        if kps is None or t >= len(kps) or not det[t]:
            return np.zeros((0, 2), np.float32)
        return keypoint_prompt(kps[t], width, height, threshold)

    plans = []
    for start, stop in chunk_bounds(num_frames, chunk_size):
        chunk = ChunkPrompts(start, stop)
        user_here = has_user and start <= user_frame < stop
        if not (user_here and mode == "replace") and rule == "official":
            for k in official_keyframe_offsets(stop - start, keyframes):
                p = frame_points(start + k)
                if len(p):
                    chunk.frames[k] = (p, np.full(len(p), POSITIVE, np.int32))
        elif not (user_here and mode == "replace"):
            cache = {t: frame_points(start + t) for t in range(stop - start)}
            usable = [t for t in range(stop - start) if len(cache[t])]
            for k in keyframe_offsets(stop - start, keyframes):
                free = [t for t in usable if t not in chunk.frames]
                if not free:
                    break
                t = min(free, key=lambda u: (abs(u - k), u))
                p = cache[t]
                chunk.frames[t] = (p, np.full(len(p), POSITIVE, np.int32))
        if user_here:
            t = user_frame - start
            old_p, old_l = chunk.frames.get(t, (np.zeros((0, 2), np.float32), np.zeros(0, np.int32)))
            p = np.concatenate([old_p, pos, neg]).astype(np.float32)
            lab = np.concatenate([old_l, np.full(len(pos), POSITIVE, np.int32), np.full(len(neg), NEGATIVE, np.int32)])
            if len(p):
                chunk.frames[t] = (p, lab.astype(np.int32))
            if len(boxes):
                chunk.box = tuple(float(v) for v in boxes[0])
                chunk.box_frame = t
            if len(obj):
                chunk.object_points[t] = (obj, np.full(len(obj), POSITIVE, np.int32))
        chunk.frames = dict(sorted(chunk.frames.items()))
        chunk.from_previous = not chunk.has_prompts and start > 0
        plans.append(chunk)
    return plans
