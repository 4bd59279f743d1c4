"""User points on several frames for SAM2 Character Segmentation (the pack's own; no official counterpart).

The official preprocessing prompts SAM2 only with keypoints (official:
wan/modules/animate/preprocess/process_pipepline.py, ProcessPipeline.get_mask). The pack adds user
points (``sam_prompts.plan_prompts``), which sit on one frame, ``points_frame``. A point given as
``{"x": .., "y": .., "frame": i}`` (what SAM2 Points Editor outputs) names its own frame; points
without ``frame`` stay on ``points_frame``. :func:`group_by_frame` splits the point lists by frame;
the first frame goes through ``plan_prompts`` as before, and :func:`add_frame_points` puts the
points of each other frame into the chunk plan the way ``plan_prompts`` puts the first one: next to
that frame's keypoint prompts in mode 'add', and in mode 'replace' in place of the keypoint
prompts of the chunk holding the frame. Points all on ``points_frame`` give exactly the former plan.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from .sam_prompts import NEGATIVE, POSITIVE, ChunkPrompts, parse_points_json


def _frames_of(text: Any, what: str, default_frame: int, num_frames: int) -> list[int]:
    """The frame of each point of ``text`` (as ``parse_points_json`` reads them, in order)."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return []
    data = json.loads(text) if isinstance(text, str) else text
    if isinstance(data, dict):
        data = [data]
    elif isinstance(data, (list, tuple)) and len(data) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in data):
        data = [data]
    frames = []
    for i, item in enumerate(data):
        if isinstance(item, dict) and not item:
            continue
        f = item.get("frame", default_frame) if isinstance(item, dict) else default_frame
        if isinstance(f, bool) or not isinstance(f, (int, float)) or f != int(f) or not 0 <= f < num_frames:
            raise ValueError(f"{what} point {i} is on frame {f!r}; the video has frames 0..{num_frames - 1}")
        frames.append(int(f))
    return frames


def group_by_frame(positive: Any, negative: Any, default_frame: int,
                   num_frames: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """frame -> (positive [n, 2], negative [m, 2]) float32, frames in increasing order."""
    out: dict[int, tuple[list, list]] = {}
    for k, (text, what) in enumerate(((positive, "positive"), (negative, "negative"))):
        pts = parse_points_json(text)
        frames = _frames_of(text, what, default_frame, num_frames)
        for f, p in zip(frames, pts):
            out.setdefault(f, ([], []))[k].append(p)
    return {f: (np.asarray(a, np.float32).reshape(-1, 2), np.asarray(b, np.float32).reshape(-1, 2))
            for f, (a, b) in sorted(out.items())}


def add_frame_points(plans: list[ChunkPrompts], frame: int, positive: np.ndarray, negative: np.ndarray,
                     mode: str, replaced: set[int]) -> None:
    """Put the user points of video frame ``frame`` into ``plans`` (in place).

    ``replaced``: start frames of the chunks whose keypoint prompts user points already replaced
    (mode 'replace'); updated here."""
    chunk = next(c for c in plans if c.start <= frame < c.stop)
    if mode == "replace" and chunk.start not in replaced:
        chunk.frames = {}
        replaced.add(chunk.start)
    t = frame - chunk.start
    old_p, old_l = chunk.frames.get(t, (np.zeros((0, 2), np.float32), np.zeros(0, np.int32)))
    p = np.concatenate([old_p, positive, negative]).astype(np.float32)
    lab = np.concatenate([old_l, np.full(len(positive), POSITIVE, np.int32),
                          np.full(len(negative), NEGATIVE, np.int32)]).astype(np.int32)
    if len(p):
        chunk.frames[t] = (p, lab)
    chunk.frames = dict(sorted(chunk.frames.items()))
    chunk.from_previous = not chunk.has_prompts and chunk.start > 0
