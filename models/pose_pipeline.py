"""Frames -> :class:`PoseSequence`: the pack's pose extraction, usable outside any node.

:func:`extract_pose` reads a frame source a chunk at a time and, per chunk, asks a
:class:`PoseBackend` for the people's boxes (``detect``) and their 133 COCO-WholeBody keypoints
(``estimate``); once every frame is seen it tracks the people across frames
(``preprocess.tracking.track_people``), picks the subject (``select_subject``), fills the frames
without the subject (``preprocess.smoothing.fill_missing_frames``) and optionally smooths
(``smooth_sequence``). A backend is any object with those two methods, so another pose model is
one new class; the ONNX YOLO + ViTPose pair is ``models.pose_runner.OnnxPoseBackend``.

The official pipeline (official: wan/modules/animate/preprocess/pose2d.py, ``Pose2d.__call__``)
detects and estimates frame by frame and keeps one person; this module keeps every person with a
stable id and chooses the subject with 'largest' by default (see ``select_subject``). Smoothing is
off by default, as the official never smooths.

The frames come from a ``preprocess.frames.FrameSource``; only ``num_frames``, ``size`` (width,
height), ``fps`` and ``iter_chunks(n)`` (uint8 [k, H, W, 3] RGB chunks) are used. No host imports:
bad settings raise :class:`PoseExtractionError`, a ValueError naming the setting, which a node turns
into its own input error.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple, Protocol, Sequence, runtime_checkable

import numpy as np

from ..preprocess.frames import FrameSource
from ..preprocess.heap import release_freed_memory
from ..preprocess.pose_types import NUM_KEYPOINTS, PoseSequence

MISSING_FRAMES = ("hold", "interpolate", "raise")
PREVIEW_SIDE = 384


class FramePoses(NamedTuple):
    """One frame's people: boxes float32 [k, 5] (x1, y1, x2, y2, score) and keypoints float32
    [k, 133, 3] (x, y, score) in image pixels; k may be 0."""

    boxes: np.ndarray
    keypoints: np.ndarray


@runtime_checkable
class PoseBackend(Protocol):
    """A person detector and whole-body pose estimator working on a chunk of frames at a time.

    ``frames`` are RGB uint8 [H, W, 3] arrays of one video (one chunk of it); both methods return
    one entry per frame, in order. Batching across the chunk is the backend's business.
    """

    def detect(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per frame, the people's boxes float32 [k, 5]: x1, y1, x2, y2 in pixels and a score."""
        ...

    def estimate(self, frames: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per frame, keypoints float32 [k, 133, 3] (x, y in pixels, confidence) of its ``k`` boxes."""
        ...


class PoseExtractionError(ValueError):
    """A setting or input :func:`extract_pose` cannot work with.

    ``input_name``: 'source' (the frames), 'person', 'smoothing', 'missing_frames' or 'chunk_frames';
    ``problem`` and ``fix`` say what is wrong and what to do.
    """

    def __init__(self, input_name: str, problem: str, fix: str = ""):
        super().__init__(f"{input_name}: {problem}" + (f" -> {fix}" if fix else ""))
        self.input_name = input_name
        self.problem = problem
        self.fix = fix


class PoseExtractionStopped(RuntimeError):
    """``should_stop`` returned True: the extraction was cancelled before its end."""


@dataclass
class PoseExtraction:
    """What :func:`extract_pose` returns.

    pose: every tracked person, the chosen one as the subject, missing frames filled, smoothed when
        asked. preview: uint8 [T, h, w, 3] frames with every detected skeleton, at most
        ``PREVIEW_SIDE`` a side, or None when not asked for. report: one line for the user.
        missing: the frames where the subject was not detected (filled).
    """

    pose: PoseSequence
    preview: np.ndarray | None
    report: str
    missing: list[int]


def _check_frame(frame: np.ndarray, index: int) -> np.ndarray:
    arr = np.asarray(frame)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"frame {index}: expected an RGB image [H, W, 3], got shape {tuple(arr.shape)}")
    if arr.dtype != np.uint8:
        raise ValueError(f"frame {index}: expected uint8 0..255 pixels, got {arr.dtype}; convert a ComfyUI "
                         f"IMAGE with (image * 255).round().clamp(0, 255).to(torch.uint8)")
    return arr


def _per_frame(what: str, backend: object, got: object, n: int) -> list:
    items = list(got) if got is not None else None
    if items is None or len(items) != n:
        count = "nothing" if items is None else f"{len(items)} entries"
        raise RuntimeError(f"pose backend {type(backend).__name__}.{what} returned {count} for {n} frame(s); "
                           "it must return one entry per frame")
    return items


def detect_frames(backend: PoseBackend, frames: Sequence[np.ndarray], first_index: int = 0) -> list[FramePoses]:
    """Boxes and keypoints of every person in each frame of one chunk, from ``backend``.

    Frames are checked (RGB uint8; ``first_index`` numbers them in messages) and so are the
    backend's answers (one per frame, boxes [k, 5], keypoints [k, 133, 3] for the same k).
    """
    frames = [_check_frame(f, first_index + i) for i, f in enumerate(frames)]
    boxes = [np.asarray(b, dtype=np.float32).reshape(-1, 5) if np.size(b) else np.zeros((0, 5), np.float32)
             for b in _per_frame("detect", backend, backend.detect(frames), len(frames))]
    kps = _per_frame("estimate", backend, backend.estimate(frames, boxes), len(frames))
    out = []
    for i, (b, k) in enumerate(zip(boxes, kps)):
        k = np.asarray(k, dtype=np.float32)
        if k.shape != (len(b), NUM_KEYPOINTS, 3):
            raise RuntimeError(f"pose backend {type(backend).__name__}.estimate gave frame {first_index + i} "
                               f"keypoints {tuple(k.shape)} for {len(b)} box(es); expected "
                               f"[{len(b)}, {NUM_KEYPOINTS}, 3]")
        out.append(FramePoses(b, k))
    return out


def preview_frames(frames: np.ndarray, people: Sequence[np.ndarray], max_side: int = PREVIEW_SIDE) -> np.ndarray:
    """Frames uint8 [t, H, W, 3] with every person's skeleton of ``people`` (per frame [k, 133, 3])
    drawn on them (the official drawing), shrunk with INTER_AREA to at most ``max_side`` a side."""
    import cv2

    from ..preprocess.render import draw_person
    from ..preprocess.frames import preview_size

    t, h, w = frames.shape[:3]
    s, nw, nh = preview_size(w, h, max_side)
    out = np.empty((t, nh, nw, 3), np.uint8)
    for i in range(t):
        canvas = frames[i].copy()
        for person in people[i]:
            draw_person(canvas, person, 0.5, True, True, None, None)
        out[i] = cv2.resize(canvas, (nw, nh), interpolation=cv2.INTER_AREA) if s < 1 else canvas
    return out


def check_person(person: object, width: int, height: int) -> str:
    """``person`` as the text :func:`preprocess.tracking.select_subject` reads, checked for its form
    ('largest', an index >= 0 or a point 'x,y') before any frame is processed."""
    from ..preprocess.tracking import select_subject

    text = str(person).strip()
    choice = text.lower()
    if choice in ("largest", ""):
        return text
    if choice.lstrip("-").isdigit():
        if int(choice) < 0:
            raise PoseExtractionError("person", f"index {int(choice)} is negative",
                                      "use 0 for the first person seen, 1 for the next ...")
        return text
    # a point: let select_subject parse it, on a stand-in with one person covering the whole canvas
    kps = np.zeros((1, 1, NUM_KEYPOINTS, 3), np.float32)
    kps[0, 0, :2] = ((0, 0, 1), (width, height, 1))
    try:
        select_subject(PoseSequence(kps, (0,), int(width), int(height)), text)
    except ValueError as e:
        raise PoseExtractionError("person", str(e)) from None
    return text


def check_settings(person: object, smoothing: float, missing_frames: str, chunk_frames: int,
                   width: int, height: int) -> str:
    """Every setting of :func:`extract_pose` checked (a :class:`PoseExtractionError` naming it);
    returns ``person`` as text."""
    import math

    if not isinstance(smoothing, (int, float)) or isinstance(smoothing, bool) or not math.isfinite(smoothing) \
            or not 0.0 <= smoothing <= 1.0:
        raise PoseExtractionError("smoothing", f"must be a finite number from 0 to 1, got {smoothing!r}",
                                  "use 0 (off, official) up to 1")
    if missing_frames not in MISSING_FRAMES:
        raise PoseExtractionError("missing_frames", f"must be one of {', '.join(MISSING_FRAMES)}, got "
                                  f"{missing_frames!r}", "pick one from the list")
    if not isinstance(chunk_frames, (int, np.integer)) or isinstance(chunk_frames, bool) or chunk_frames < 1:
        raise PoseExtractionError("chunk_frames", f"must be a whole number >= 1, got {chunk_frames!r}",
                                  "use 32 (or fewer frames for less memory)")
    return check_person(person, width, height)


def extract_pose(source: FrameSource, backend: PoseBackend, *, person: str = "largest", smoothing: float = 0.0,
                 missing_frames: str = "hold", chunk_frames: int = 32,
                 progress: Callable[[int, int], None] | None = None,
                 should_stop: Callable[[], bool | None] | None = None, preview: bool = False) -> PoseExtraction:
    """Every person of ``source`` tracked through its frames, the chosen one as the subject.

    ``chunk_frames`` frames are read and processed at a time (only that chunk and, with ``preview``,
    its small preview are held). ``person``: 'largest', an index in order of first appearance or a
    point 'x,y' (pixels or fractions). ``missing_frames``: 'hold', 'interpolate' or 'raise' for the
    frames without the subject. ``smoothing`` 0..1: the One-Euro strength (0 = off, official).
    ``should_stop()`` is called before each chunk (raise to cancel, or return True to stop with
    :class:`PoseExtractionStopped`); ``progress(done, total)`` after each.

    Raises :class:`PoseExtractionError` for a setting (checked before any frame is read) or when no
    person is found at all (input 'source').
    """
    from ..preprocess.smoothing import fill_missing_frames, smooth_sequence
    from ..preprocess.tracking import select_subject, track_people

    total = int(source.num_frames)
    width, height = (int(v) for v in source.size)
    if total < 1:
        raise PoseExtractionError("source", "has no frames", "check the video file")
    if width < 1 or height < 1:
        raise PoseExtractionError("source", f"has a {width}x{height} frame size", "check the video file")
    person = check_settings(person, smoothing, missing_frames, chunk_frames, width, height)
    fps = float(source.fps or 0.0)

    found: list[FramePoses] = []
    previews: list[np.ndarray] = []
    for chunk in source.iter_chunks(int(chunk_frames)):
        if should_stop is not None and should_stop():
            raise PoseExtractionStopped(f"pose extraction stopped after {len(found)} of {total} frame(s)")
        part = detect_frames(backend, chunk, len(found))
        found.extend(part)
        if preview:
            previews.append(preview_frames(np.asarray(chunk), [p.keypoints for p in part]))
        del chunk, part
        release_freed_memory()  # the chunk's frames and crops: see preprocess.heap
        if progress is not None:
            progress(len(found), total)

    seq = track_people([(p.boxes, p.keypoints) for p in found], width, height, fps=fps)
    if seq.num_people == 0:
        raise PoseExtractionError("source", f"no person was found in any of the {len(found)} frame(s)",
                                  "check the detector model and that a person is visible")
    try:
        seq = select_subject(seq, person)
    except ValueError as e:
        raise PoseExtractionError("person", str(e)) from e
    try:
        filled, missing = fill_missing_frames(seq.subject_keypoints, seq.subject_detected, missing_frames)
    except ValueError as e:
        raise PoseExtractionError("missing_frames", str(e)) from e
    seq = seq.with_subject_keypoints(filled)
    if smoothing > 0 and len(found) > 1:
        seq = smooth_sequence(seq, strength=smoothing)
    report = (f"{len(found)} frame(s) {width}x{height}, {seq.num_people} person(s) tracked (ids "
              f"{list(seq.track_ids)}), subject {seq.track_ids[seq.subject]}; "
              f"{len(missing)} frame(s) without the subject"
              + (f": {missing[:20]}" if missing else ""))
    frames = np.concatenate(previews) if preview and previews else None
    return PoseExtraction(seq, frames, report, missing)
