"""Character segmentation of a whole video: a frame source and a POSE in, compact masks out.

Two steps, each usable without the node:

* :func:`plan_character_prompts`: the SAM2 prompts of every chunk, as the official replacement
  preprocessing plans them by default (official: wan/modules/animate/preprocess/process_pipepline.py,
  ``ProcessPipeline.__call__`` and ``get_mask``: chunks of 400 frames, keyframes, the subject's body
  points), with the pack's optional user points, points placed on other frames (SAM2 Points Editor)
  and object points;
* :func:`segment_character`: SAM2 over the frames, chunk by chunk (``models.sam2_video``), on the
  host's device only while it runs (``models.sam2_loader.sam2_session``). The masks are kept
  bit-packed (``preprocess.frames.PackedMasks``), so memory stays flat in video length; a small
  tinted preview is made only when asked for.

Bad input raises :class:`PromptInputError`, which names the node input at fault.
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Callable, Sequence

import numpy as np

from ..preprocess.frames import FrameSource, PackedMasks, map_chunks, preview_size
from ..preprocess.heap import release_freed_memory

TRIM_EVERY = 16  # frames between two hand-backs of freed memory (preprocess.heap)


class PromptInputError(ValueError):
    """A prompt input that cannot be used: ``input_name`` is the node input at fault."""

    def __init__(self, input_name: str, problem: str, fix: str = ""):
        super().__init__(problem)
        self.input_name, self.problem, self.fix = input_name, problem, fix


def plan_character_prompts(pose: Any, num_frames: int, width: int, height: int, *, chunk_size: int = 400,
                           keyframes: int = 4, threshold: float = 0.5, positive_points: str = "",
                           negative_points: str = "", points_mode: str = "add", points_frame: int = 0,
                           object_points: str = "", prompt_rule: str = "official") -> list:
    """The ``ChunkPrompts`` (preprocess.sam_prompts) of the whole video. ``pose`` is on the video's
    ``width`` x ``height`` canvas. Points given as JSON text join on ``points_frame``; a point with its
    own "frame" goes on that frame."""
    from ..preprocess.frame_points import add_frame_points, group_by_frame
    from ..preprocess.sam_prompts import parse_points_json, plan_prompts

    n, w, h = int(num_frames), int(width), int(height)
    for name, text in (("positive_points", positive_points), ("negative_points", negative_points),
                       ("object_points", object_points)):
        if text and text.strip():
            try:
                parse_points_json(text)
            except ValueError as e:
                raise PromptInputError(name, str(e)) from e
    user_frame = min(int(points_frame), n - 1)
    try:  # points that name their own "frame" (SAM2 Points Editor) join the plan frame by frame
        groups = group_by_frame(positive_points or None, negative_points or None, user_frame, n)
    except ValueError as e:
        raise PromptInputError("negative_points" if str(e).startswith("negative") else "positive_points",
                               str(e), "use frame numbers of this video") from e
    others = [f for f in groups if f != user_frame]
    if others and points_mode == "replace" and not any(len(pos) for pos, _ in groups.values()):
        raise PromptInputError("points_mode", "mode 'replace' needs at least one positive user point",
                               "add a positive point or use 'add'")
    common = dict(chunk_size=chunk_size, keyframes=keyframes, threshold=threshold,
                  object_points=object_points or None, user_frame=user_frame, width=w, height=h, rule=prompt_rule)
    try:
        if not others:  # every point on points_frame: the plan as always
            return plan_prompts(pose, n, user_positive=positive_points or None,
                                user_negative=negative_points or None, mode=points_mode, **common)
        pos, neg = groups.get(user_frame, (None, None))
        here = pos is not None and (len(pos) or len(neg))
        prompts = plan_prompts(pose, n, user_positive=pos if here else None, user_negative=neg if here else None,
                               mode=points_mode if here and len(pos) else "add", **common)
        home = next(c.start for c in prompts if c.start <= user_frame < c.stop)
        replaced = {home} if here and len(pos) and points_mode == "replace" else set()
        readd = bool(here) and home not in replaced  # points_frame's own, if its chunk gets replaced
        for f in others:
            for what, pts in (("positive", groups[f][0]), ("negative", groups[f][1])):
                bad = ~((pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h))
                if bad.any():
                    x, y = pts[np.flatnonzero(bad)[0]]
                    raise ValueError(f"{what} point ({x:g}, {y:g}) on frame {f} lies outside the {w}x{h} "
                                     f"canvas; place the points on an image of the video's size")
            add_frame_points(prompts, f, groups[f][0], groups[f][1], points_mode, replaced)
        if readd and home in replaced:
            add_frame_points(prompts, user_frame, pos, neg, "add", replaced)
        return prompts
    except PromptInputError:
        raise
    except ValueError as e:
        msg = str(e)
        name = next((n for key, n in (("negative", "negative_points"), ("object", "object_points"),
                                      ("positive", "positive_points"), ("replace", "points_mode"),
                                      ("user_frame", "points_frame")) if key in msg), "pose")
        raise PromptInputError(name, msg) from e


@dataclasses.dataclass
class Segmentation:
    masks: PackedMasks  # the character per frame, bit-packed (reads back as uint8 0 / 255)
    preview: np.ndarray | None  # uint8 [n, h, w, 3] mask tinted over the shrunk frames, when asked for
    unprompted: list[int]  # frames in chunks that had no prompt at all (their masks are empty)
    chunks: int

    @property
    def covered(self) -> int:
        return self.masks.num_frames - len(self.masks.empty_frames())

    def report(self) -> str:
        text = (f"{self.masks.num_frames} frame(s), {self.chunks} chunk(s); character found in {self.covered} "
                "frame(s)")
        if self.unprompted:
            text += f"; {len(self.unprompted)} frame(s) in chunks without any prompt (empty masks)"
        return text


def segment_character(model: Any, source: FrameSource, prompts: Sequence[Any], *, resize: str = "official",
                      preview: bool = False, progress: Callable[[int, int], None] | None = None,
                      should_stop: Callable[[], bool] | None = None) -> Segmentation:
    """SAM2 masks of the character over every frame of ``source`` (see module docstring). A loaded
    ``models.sam2_loader.Sam2Model`` is on its run device only inside this call (back on the offload
    device afterwards, also on an error or an interrupt); a bare predictor is run as it is."""
    import cv2

    from ..preprocess.masks import overlay
    from .sam2_loader import Sam2Model, sam2_session
    from .sam2_video import iter_segment_frames

    n = source.num_frames
    w, h = source.size
    masks = PackedMasks(w, h, source.fps, "mask")
    s, pw, ph = preview_size(w, h)
    shown = np.zeros((n, ph, pw, 3), np.uint8) if preview else None
    small: dict[int, np.ndarray] = {}  # shrunk frames waiting for their mask (preview only)
    unprompted: list[int] = []

    def keep_small(chunk: np.ndarray, first: int) -> np.ndarray:
        for k, f in enumerate(chunk):
            small[first + k] = cv2.resize(f, (pw, ph), interpolation=cv2.INTER_AREA) if s < 1 else f.copy()
        return chunk

    frames = map_chunks(source, keep_small) if preview else source
    session = sam2_session(model, video_size=(h, w)) if isinstance(model, Sam2Model) else contextlib.nullcontext()
    with session, contextlib.closing(iter_segment_frames(model, frames, prompts, n, progress=progress,
                                                         should_stop=should_stop, resize=resize)) as items:
        for item in items:
            if item.index != masks.num_frames:
                raise RuntimeError(f"SAM2 gave frame {item.index} after {masks.num_frames} frames")  # a bug
            masks.append(item.mask)
            if shown is not None:
                tiny = cv2.resize(item.mask.astype(np.uint8), (pw, ph), interpolation=cv2.INTER_NEAREST)
                shown[item.index] = overlay(small.pop(item.index), tiny)
            if not item.prompted:
                unprompted.append(item.index)
            if item.index % TRIM_EVERY == TRIM_EVERY - 1:
                release_freed_memory()  # freed frame-sized arrays: see preprocess.heap
    return Segmentation(masks, shown, unprompted, len(prompts))
