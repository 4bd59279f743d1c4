"""SAM2 Points Editor: user points for SAM2 Character Segmentation, placed on the video's frames.

The node holds the points in its ``points`` widget as JSON (so API prompts and saved workflows carry
them) and turns the subject's points into the ``positive_points`` / ``negative_points`` /
``points_frame`` inputs of SAM2 Character Segmentation. The frontend editor (``web/points_editor.js``)
reads the frames, the tracked people and their keypoint prompts through the routes of
``nodes/editor_routes.py`` from a session this node opens when it runs; without the editor the
widget is plain JSON text.

Widget format: a JSON list of ``{"frame": i, "x": px, "y": py, "label": 1|0, "person": id}``:
frame index in the video, x/y in source pixels, label 1 = positive (left click), 0 = negative
(right click), person = the tracked person's id (Pose Extraction's track id). Points of people
other than the POSE's subject are kept but not output (a second pass that picks another person
with Pose: Pick Person gets theirs).
"""
from __future__ import annotations

import json
import threading
import uuid
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from comfy_api.latest import io

from .common import CATEGORY, PREFIX, InputError, Pose, Sam2Model, one_source, pose_on_frames

NODE = "SAM2 Points Editor"
MAX_SESSIONS = 8  # editor sessions kept for the frontend (newest first out of the LRU)


@dataclass
class EditorPoint:
    frame: int
    x: float
    y: float
    label: int
    person: int


def parse_editor_points(text: Any, num_frames: int, width: int, height: int,
                        people: tuple[int, ...] | None = None) -> list[EditorPoint]:
    """The widget's points, checked against the video (``ValueError`` says which point and why).

    Empty text, ``[]`` and ``[{}]`` are no points. ``people``: the tracked ids a point may name
    (None = any)."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return []
    if isinstance(text, str):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"is not valid JSON ({e.msg} at character {e.pos})") from None
    else:
        data = text
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise ValueError(f"must be a JSON list of points, got {type(data).__name__}")
    out = []
    for i, item in enumerate(data):
        if isinstance(item, dict) and not item:
            continue
        if not isinstance(item, dict):
            raise ValueError(f'point {i} must be {{"frame", "x", "y", "label", "person"}}, got {item!r}')
        missing = [k for k in ("x", "y") if k not in item]
        if missing:
            raise ValueError(f"point {i} has no {' or '.join(missing)}")
        vals = {}
        for key, default in (("frame", 0), ("x", None), ("y", None), ("label", 1), ("person", -1)):
            v = item.get(key, default)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                raise ValueError(f"point {i} {key} must be a number, got {v!r}")
            vals[key] = v
        frame, label, person = int(vals["frame"]), int(vals["label"]), int(vals["person"])
        if frame != vals["frame"] or not 0 <= frame < num_frames:
            raise ValueError(f"point {i} is on frame {vals['frame']!r}, the video has frames 0..{num_frames - 1}")
        if label not in (0, 1):
            raise ValueError(f"point {i} label must be 1 (positive) or 0 (negative), got {vals['label']!r}")
        x, y = float(vals["x"]), float(vals["y"])
        if not (0 <= x < width and 0 <= y < height):
            raise ValueError(f"point {i} ({x:g}, {y:g}) lies outside the {width}x{height} video")
        if people is not None and person != -1 and person not in people:
            raise ValueError(f"point {i} belongs to person {person}, who is not tracked (ids {list(people)})")
        out.append(EditorPoint(frame, x, y, label, person))
    return out


def subject_points(points: list[EditorPoint], subject_id: int) -> tuple[list[EditorPoint], int]:
    """The points of the subject (person ``subject_id``, or -1 = whoever is the subject) and the
    first frame they are on (0 when there are none)."""
    mine = [p for p in points if p.person in (subject_id, -1)]
    return mine, min((p.frame for p in mine), default=0)


def _json_points(points: list[EditorPoint]) -> str:
    """Points for SAM2 Character Segmentation: x, y and the frame each is on."""
    return json.dumps([{"x": round(p.x, 3), "y": round(p.y, 3), "frame": p.frame} for p in points]) if points else ""


# ---------------------------------------------------------------------------------------- sessions
def _weak(value: Any):
    """A callable giving ``value`` back: a weak reference where the object allows one, so a session
    never keeps an IMAGE batch or SAM2's weights alive after the host's cache let them go."""
    if value is None:
        return lambda: None
    try:
        return weakref.ref(value)
    except TypeError:
        return lambda: value


class EditorSession:
    """What the editor's routes need after the node ran: the frames, the poses, SAM2 (optional).

    The IMAGE batch and the SAM2 model are held weakly (a file-backed VIDEO is cheap and held):
    once the host drops them, the routes answer that the node must run again."""

    def __init__(self, frames: Any, name: str, pose: Any, sam2_model: Any, width: int, height: int,
                 num_frames: int):
        self._frames = _weak(frames)
        self._name = name
        self._sam2 = _weak(sam2_model)
        self.has_sam2 = sam2_model is not None
        self.pose = pose  # PoseSequence scaled to the video's canvas
        self.width, self.height, self.num_frames = width, height, num_frames
        self.cache: tuple[int, np.ndarray] | None = None  # (first index, uint8 frames) of the last read

    @property
    def source(self):
        from .common import source_of

        frames = self._frames()
        if frames is None:
            raise LookupError("the frames are gone from the host's cache: run the SAM2 Points Editor node again")
        return source_of(frames, self._name, NODE, probe=False)

    @property
    def sam2_model(self):
        model = self._sam2()
        if model is None and self.has_sam2:
            raise LookupError("SAM2 was unloaded since the editor ran: run the SAM2 Points Editor node again")
        return model


_sessions: "OrderedDict[str, EditorSession]" = OrderedDict()
_lock = threading.Lock()


def open_session(session: EditorSession) -> str:
    token = uuid.uuid4().hex
    with _lock:
        _sessions[token] = session
        while len(_sessions) > MAX_SESSIONS:
            _sessions.popitem(last=False)
    return token


def get_session(token: Any) -> EditorSession | None:
    if not isinstance(token, str):
        return None
    with _lock:
        s = _sessions.get(token)
        if s is not None:
            _sessions.move_to_end(token)
        return s


def session_frame(s: EditorSession, index: int) -> np.ndarray:
    """uint8 frame ``index`` [H, W, 3] (a file-backed video is read 32 frames at a time)."""
    if s.cache is not None and s.cache[0] <= index < s.cache[0] + len(s.cache[1]):
        return s.cache[1][index - s.cache[0]]
    start = index - index % 32
    frames = s.source.read(start, min(start + 32, s.num_frames))
    s.cache = (start, frames)
    return frames[index - start]


class Sam2PointsEditor(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "Sam2PointsEditor",
            display_name="SAM2 Points Editor",
            category=CATEGORY + "/mask",
            is_output_node=True,  # runs alone (with only its inputs' nodes) to load the frames
            description="Click points on the video's frames for SAM2 Character Segmentation: run the graph (or this "
                        "node alone: it is an output node) once, then pick a frame with the slider, left-click positive and right-click "
                        "negative points on a tracked person (boxes, ids and the automatic keypoint prompts are "
                        "drawn), drag them, Shift+click or Delete to remove one, and 'preview mask' to see SAM2's "
                        "mask on that frame. The points are stored in the 'points' widget as JSON. Connect the "
                        "outputs to the segmentation node's inputs of the same names. Without points the "
                        "segmentation stays the official one.",
            inputs=[
                Pose.Input("pose", tooltip="Tracked poses of the video (Pose Extraction): the boxes, ids and "
                                           "keypoint prompts drawn; the subject's points are output."),
                io.Image.Input("images", optional=True, tooltip="The video frames. Connect this or video."),
                io.Video.Input("video", optional=True, tooltip="The video. Connect this or images."),
                Sam2Model.Input("sam2_model", optional=True,
                                tooltip="From SAM2 Loader: needed only for the editor's 'preview mask'."),
                io.String.Input("points", default="[]", multiline=True,
                                tooltip='The points as JSON: [{"frame": 0, "x": 120, "y": 80, "label": 1, '
                                        '"person": 1}, ...], x/y in source pixels, label 1 positive / 0 '
                                        "negative, person = the tracked id. The editor writes it; it can "
                                        "also be typed."),
            ],
            outputs=[
                io.String.Output(display_name="positive_points",
                                 tooltip="The subject's positive points for SAM2 Character Segmentation: JSON "
                                         "with x, y and the frame of each."),
                io.String.Output(display_name="negative_points",
                                 tooltip="The subject's negative points for SAM2 Character Segmentation: JSON "
                                         "with x, y and the frame of each."),
                io.Int.Output(display_name="points_frame",
                              tooltip="The first frame with a point of the subject (each point names its own)."),
            ],
        )

    @classmethod
    def execute(cls, pose, points, images=None, video=None, sam2_model=None):
        src = one_source(NODE, images, video)
        n, (w, h) = src.num_frames, src.size
        seq = pose_on_frames(NODE, pose, n, w, h)
        ids = tuple(int(t) for t in seq.track_ids)
        try:
            pts = parse_editor_points(points, n, w, h, ids)
        except ValueError as e:
            raise InputError(NODE, "points", str(e), "fix the point in the editor or the JSON text") from e
        subject = ids[seq.subject] if ids else -1
        mine, frame = subject_points(pts, subject)
        token = open_session(EditorSession(images if images is not None else video, src.name, seq, sam2_model,
                                           w, h, n))
        info = {"session": token, "frames": n, "width": w, "height": h, "people": list(ids), "subject": subject,
                "preview_mask": sam2_model is not None}
        pos = [p for p in mine if p.label == 1]
        neg = [p for p in mine if p.label == 0]
        return io.NodeOutput(_json_points(pos), _json_points(neg), frame, ui={"wak_points_editor": [info]})


NODES = [Sam2PointsEditor]

try:  # the editor's routes, where a server runs (not in the in-process tests without one)
    from . import editor_routes

    editor_routes.register()
except Exception as _e:  # pragma: no cover - a host without PromptServer
    import logging

    logging.getLogger("wan_animate_kit").debug("points editor routes not registered: %s", _e)
