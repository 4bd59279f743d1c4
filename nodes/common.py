"""Shared pieces of the node layer: custom socket types, input checks, wrapping inputs into frame sources
(preprocess.frames), progress."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch
from comfy_api.latest import io

from ..preprocess.frames import (ArrayFrames, FileFrames, FrameSource, is_source, to_float,  # noqa: F401
                                 to_uint8)  # to_uint8 / to_float: the node layer's one uint8 <-> float pair

PREFIX = "WAK_"
CATEGORY = "Wan-Animate Kit"
DEFAULT_FPS = 30.0  # the official output rate (config sample_fps = 30)

# One typed pose structure flows between nodes (preprocess.pose_types.PoseSequence).
Pose = io.Custom("WAK_POSE")
PoseModel = io.Custom("WAK_POSE_MODEL")
Sam2Model = io.Custom("WAK_SAM2_MODEL")
# Masks of a whole video kept compact (preprocess.frames: bit-packed, or made on demand), so a long
# high-resolution mask sequence never exists as a float MASK batch.
Masks = io.Custom("WAK_MASKS")


class InputError(ValueError):
    """Bad node input: the message names the input and says how to fix it."""

    def __init__(self, node: str, input_name: str, problem: str, fix: str = ""):
        text = f"{node}: input '{input_name}': {problem}"
        if fix:
            text += f" -> {fix}"
        super().__init__(text)
        self.input_name = input_name


def model_file(node: str, input_name: str, folder: str, name, folder_file: str | None = None) -> str:
    """The real path of the model ``name`` picked in ``input_name``, confined to the host's ``folder``
    model folders (models.model_paths); otherwise an InputError that reads the same whether or not
    a file outside those folders exists."""
    import folder_paths

    from ..models.model_paths import find_model_file, not_in_folder

    try:
        roots = folder_paths.get_folder_paths(folder)
    except KeyError:
        roots = []
    path = find_model_file(name, roots, folder_file=folder_file)
    if path is None:
        raise InputError(node, input_name, *not_in_folder(name, folder, roots))
    return path


def check_number(node: str, input_name: str, value, lo: float | None = None, hi: float | None = None,
                 fix: str = "") -> float:
    """``value`` as a float when it is a finite number within [lo, hi]; otherwise an InputError naming
    the input. The host lets NaN and infinity through its min/max check (every comparison with NaN
    is false), and nodes would then quietly treat them as 0 or 'off'."""
    import math

    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and ((lo is not None and value < lo) or (hi is not None and value > hi)):
        ok = False
    if not ok:
        span = (f" from {lo:g} to {hi:g}" if lo is not None and hi is not None
                else f" of at least {lo:g}" if lo is not None else f" of at most {hi:g}" if hi is not None else "")
        raise InputError(node, input_name, f"must be a finite number{span}, got {value!r}",
                         fix or "type a number in that range")
    return float(value)


# An IMAGE batch is float32 RGB: 12 bytes a pixel.
IMAGE_BYTES_PER_PIXEL = 12


def check_image_memory(node: str, input_name: str, frames: int, width: int, height: int, fix: str,
                       memory: tuple[int, int] | None = None) -> None:
    """Refuse, before allocating, an IMAGE batch of ``frames`` x ``height`` x ``width`` that cannot fit in
    this machine's RAM; log a warning when it is over 80 % of what is free now. ``memory`` = (total,
    available) bytes (default: psutil's reading)."""
    if memory is None:
        import psutil

        vm = psutil.virtual_memory()
        memory = (vm.total, vm.available)
    total, available = memory
    need = int(frames) * int(width) * int(height) * IMAGE_BYTES_PER_PIXEL
    gib = 2 ** 30
    what = f"{frames} frame(s) of {width}x{height} as an IMAGE need about {need / gib:.1f} GiB of RAM"
    if need > total:
        raise InputError(node, input_name, f"{what}, more than this machine has ({total / gib:.1f} GiB)", fix)
    if need > 0.8 * available:
        import logging

        logging.getLogger("wan_animate_kit").warning("%s: %s, and %.1f GiB is free now", node, what,
                                                     available / gib)


def source_of(value, name: str = "video", node: str = "Wan-Animate Kit", probe: bool = True) -> FrameSource:
    """An input value as the pack's frame source (preprocess.frames): an IMAGE batch or MASK as
    in-memory frames, a VIDEO made by this pack as its own source, a file-backed VIDEO decoded a chunk
    at a time (opened once here, so a file without a video track, a truncated one or random bytes is a
    clear error naming the input before any work), any other VIDEO from its in-memory frames."""
    if is_source(value):
        return value
    if isinstance(value, torch.Tensor):
        if value.ndim != 4 or value.shape[-1] not in (3, 4):
            raise InputError(node, name, f"expected an IMAGE batch [frames, H, W, 3], got {tuple(value.shape)}")
        return ArrayFrames(value, name=name)
    if not hasattr(value, "get_components"):
        raise InputError(node, name, f"expected IMAGE or VIDEO, got {type(value).__name__}")
    own = getattr(value, "source", None)  # nodes.lazy_video.LazyVideo
    if is_source(own):
        return own
    if _streams_from_a_file(value):
        src = FileFrames(value.get_stream_source, 0, 0, name=name,
                         error=lambda problem, fix: InputError(node, name, problem, fix))
        if probe:
            src.probe()
        w, h = value.get_dimensions()
        try:
            count = int(value.get_frame_count())
        except Exception:
            count = None
        src.set_geometry(int(w), int(h), video_fps(value), count)
        return src
    parts = value.get_components()  # e.g. VideoFromComponents: the frames are already in memory
    return ArrayFrames(parts.images, float(parts.frame_rate or 0), name=name)


def video_fps(video) -> float:
    """The frame rate of the host's VIDEO as a float."""
    try:
        return float(Fraction(video.get_frame_rate()))
    except Exception:
        return float(video.get_components().frame_rate)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def frames_output_input(what: str):
    """The ``frames_output`` switch of nodes that make a whole video (IMAGE batch and/or VIDEO)."""
    return io.Boolean.Input("frames_output", default=True,
                            tooltip=f"On: also return the {what} as an IMAGE batch (float, 12 bytes a pixel: a long "
                            "video needs a lot of RAM). Off: only the video output, whose frames are made when "
                            "they are read, so memory stays flat for any length; a node connected to the IMAGE "
                            "output is then stopped with a message.")


def output_switch(name: str, on: str, off: str, outputs: str):
    """An optional switch (default on, also for graphs saved before it existed) for whole-video IMAGE /
    MASK outputs: on, they are made (``on`` says what); off, ``off`` says what is left, memory stays
    flat and a node reading ``outputs`` stops with a message (``frames_blocked``)."""
    return io.Boolean.Input(name, default=True, optional=True,
                            tooltip=f"On: also return {on}. Off: {off}, so memory stays flat for any length; a "
                                    f"node connected to {outputs} is then stopped with a message.")


def frames_blocked(node: str, what: str = "IMAGE output is", switch: str = "frames_output",
                   instead: str = "its video output"):
    """What a whole-video IMAGE / MASK output carries when its switch is off: any node reading it stops
    with this message."""
    from comfy_execution.graph_utils import ExecutionBlocker

    return ExecutionBlocker(f"{node}: its {what} off ({switch} = false, to keep memory flat). "
                            f"Turn {switch} on, or use {instead}.")


def image_batch(source: FrameSource, node: str) -> torch.Tensor:
    """All frames of a source as an IMAGE batch (or a MASK batch for masks), with a progress bar."""
    w, h = source.size
    shape = (source.num_frames, h, w) if source.is_mask else (source.num_frames, h, w, 3)
    out = torch.empty(shape, dtype=torch.float32)
    progress = Progress(source.num_frames)
    pos = 0
    for part in source.iter_chunks(16):
        check_interrupt()
        out[pos:pos + len(part)] = to_float(part)
        pos += len(part)
        progress.set(pos)
    return out


def _streams_from_a_file(video) -> bool:
    """Whether the VIDEO's class has a stream source of its own (a file). The host's base class
    would instead encode in-memory frames to an H.264 buffer first: slow and lossy."""
    for cls in type(video).__mro__:
        if "get_stream_source" in cls.__dict__:
            return cls.__name__ != "VideoInput"
    return False


def pose_on_frames(node: str, pose, num_frames: int, width: int, height: int):
    """``pose`` checked against the video it was extracted from (same frame count, else an error
    naming 'pose') and moved onto its ``width`` x ``height`` frames with the pack's one keypoint
    rescale (``preprocess.resolution.scale_keypoints``, the official normalise-then-multiply)."""
    from dataclasses import replace

    from ..preprocess.resolution import scale_keypoints

    if pose.num_frames != num_frames:
        raise InputError(node, "pose", f"has {pose.num_frames} frames, the video has {num_frames}",
                         "use the pose extracted from this video")
    if (pose.width, pose.height) == (width, height):
        return pose
    kps = scale_keypoints(pose.keypoints, pose.width, pose.height, width, height)
    return replace(pose, keypoints=kps, width=width, height=height)


def one_source(node: str, images, video) -> FrameSource:
    """The frames of a node that takes either an IMAGE batch ('images') or a VIDEO ('video')."""
    if (images is None) == (video is None):
        raise InputError(node, "images" if images is None else "video",
                         "connect exactly one of 'images' (IMAGE) or 'video' (VIDEO)")
    src = source_of(images if images is not None else video, "images" if images is not None else "video", node)
    if src.num_frames == 0:
        raise InputError(node, src.name, "has no frames", "check the video file")
    return src


class Progress:
    """The host's progress bar; every update is also an interruption point."""

    def __init__(self, total: int, node_id: str | None = None):
        import comfy.utils

        self.total = max(int(total), 1)
        self.bar = comfy.utils.ProgressBar(self.total, node_id=node_id)
        self.done = 0

    def update(self, n: int = 1, preview=None) -> None:
        self.done = min(self.total, self.done + n)
        if preview is not None:
            self.bar.update_absolute(self.done, self.total, preview)
        else:
            self.bar.update_absolute(self.done, self.total)
        check_interrupt()

    def set(self, value: int) -> None:
        self.done = min(self.total, int(value))
        self.bar.update_absolute(self.done, self.total)
        check_interrupt()


def check_interrupt() -> None:
    import comfy.model_management

    comfy.model_management.throw_exception_if_processing_interrupted()


def preview_tuple(frame_uint8: np.ndarray, max_size: int = 512):
    """A ('JPEG', PIL image, max_size) preview for ProgressBar.update_absolute."""
    from PIL import Image

    return ("JPEG", Image.fromarray(frame_uint8), max_size)
