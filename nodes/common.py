"""Shared pieces of the node layer: custom socket types, video sources, progress."""
from __future__ import annotations

from fractions import Fraction
from typing import Iterator

import numpy as np
import torch
from comfy_api.latest import io

PREFIX = "WAK_"
CATEGORY = "Wan-Animate Kit"
DEFAULT_FPS = 30.0  # the official output rate (config sample_fps = 30)

# One typed pose structure flows between nodes (preprocess.pose_types.PoseSequence).
Pose = io.Custom("WAK_POSE")
PoseModel = io.Custom("WAK_POSE_MODEL")
Sam2Model = io.Custom("WAK_SAM2_MODEL")


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


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """IMAGE [B,H,W,C] 0..1 -> uint8 numpy [B,H,W,3]."""
    arr = images[..., :3].clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
    return arr


def to_image(frames: np.ndarray) -> torch.Tensor:
    """uint8 [B,H,W,3] (or float 0..1) -> IMAGE float32 [B,H,W,3]."""
    t = torch.from_numpy(np.ascontiguousarray(frames))
    if t.dtype == torch.uint8:
        return t.float().div_(255.0)
    return t.float().clamp_(0, 1)


class VideoSource:
    """Frames of an IMAGE batch or of the host's VIDEO, read in chunks so a long file never sits
    whole in memory."""

    def __init__(self, value, name: str = "video", node: str = "Wan-Animate Kit"):
        self.name = name
        self.node = node
        self.images: torch.Tensor | None = None
        self.video = None
        self._fps: float = 0.0
        if isinstance(value, torch.Tensor):
            if value.ndim != 4 or value.shape[-1] not in (3, 4):
                raise InputError(node, name, f"expected an IMAGE batch [frames, H, W, 3], got {tuple(value.shape)}")
            self.images = value
        elif hasattr(value, "get_components"):
            self.video = value
            self._probe()
        else:
            raise InputError(node, name, f"expected IMAGE or VIDEO, got {type(value).__name__}")

    def _unreadable(self, problem: str) -> InputError:
        return InputError(self.node, self.name, problem, "check the file (an incomplete download or upload?), re-export "
                          "it as an .mp4 (H.264) or load another video")

    def _probe(self) -> None:
        """Open a file-backed VIDEO once and decode its first frame, so a file without a video track,
        a truncated one or random bytes is a clear error here, before any work (not a library error
        deep inside a node)."""
        if hasattr(self.video, "iter_chunks") or not _streams_from_a_file(self.video):
            return
        try:
            source = self.video.get_stream_source()
        except Exception:
            return
        import av

        try:
            if hasattr(source, "seek"):
                source.seek(0)
            with av.open(source, mode="r") as container:
                if not container.streams.video:
                    raise self._unreadable("the file has no video stream (only sound or data)")
                if next(iter(container.decode(container.streams.video[0])), None) is None:
                    raise self._unreadable("the file's video stream has no frame that can be decoded")
        except InputError:
            raise
        except Exception as e:  # av.error.* (InvalidDataError, ...), OSError
            raise self._unreadable(f"could not be read as a video ({_first_line(e)})") from e

    # -- metadata ------------------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        if self.images is not None:
            return int(self.images.shape[0])
        if not hasattr(self, "_count"):
            try:
                self._count = int(self.video.get_frame_count())
            except Exception:
                self._count = sum(len(c) for c in self.iter_chunks(64))
        return self._count

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)"""
        if self.images is not None:
            return int(self.images.shape[2]), int(self.images.shape[1])
        w, h = self.video.get_dimensions()
        return int(w), int(h)

    @property
    def fps(self) -> float:
        if self.video is not None and not self._fps:
            try:
                self._fps = float(Fraction(self.video.get_frame_rate()))
            except Exception:
                self._fps = float(self.video.get_components().frame_rate)
        return self._fps

    # -- frames --------------------------------------------------------------------------
    def iter_chunks(self, chunk: int = 32) -> Iterator[np.ndarray]:
        """Yield uint8 [n,H,W,3] chunks in order."""
        if self.images is not None:
            for s in range(0, self.images.shape[0], chunk):
                yield to_uint8(self.images[s:s + chunk])
            return
        if hasattr(self.video, "iter_chunks"):  # the pack's on-demand VIDEO (nodes.lazy_video)
            yield from self.video.iter_chunks(chunk)
            return
        source = None
        if _streams_from_a_file(self.video):
            try:
                source = self.video.get_stream_source()
            except Exception:
                source = None
        if source is None:  # e.g. VideoFromComponents: the frames are already in memory
            imgs = self.video.get_components().images
            for s in range(0, imgs.shape[0], chunk):
                yield to_uint8(imgs[s:s + chunk])
            return
        import av

        if hasattr(source, "seek"):
            source.seek(0)
        try:
            with av.open(source, mode="r") as container:
                if not container.streams.video:
                    raise self._unreadable("the file has no video stream (only sound or data)")
                stream = container.streams.video[0]
                buf = []
                for frame in container.decode(stream):
                    buf.append(frame.to_ndarray(format="rgb24"))
                    if len(buf) == chunk:
                        yield np.stack(buf)
                        buf = []
                if buf:
                    yield np.stack(buf)
        except InputError:
            raise
        except Exception as e:  # av.error.* (damaged data further into the file), OSError
            raise self._unreadable(f"could not be decoded to the end ({_first_line(e)})") from e

    def read(self, start: int, stop: int) -> np.ndarray:
        """uint8 frames [start, stop) (decodes from the start for a file-backed video)."""
        if self.images is not None:
            return to_uint8(self.images[start:stop])
        out, pos = [], 0
        for c in self.iter_chunks(32):
            n = len(c)
            if pos + n > start:
                out.append(c[max(0, start - pos):max(0, min(n, stop - pos))])
            pos += n
            if pos >= stop:
                break
        return np.concatenate(out) if out else np.zeros((0, *self.size[::-1], 3), np.uint8)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def frames_output_input(what: str):
    """The ``frames_output`` switch of nodes that make a whole video (IMAGE batch and/or VIDEO)."""
    return io.Boolean.Input("frames_output", default=True,
                            tooltip=f"On: also return the {what} as an IMAGE batch (float, 12 bytes a pixel: a long "
                            "video needs a lot of RAM). Off: only the video output, whose frames are made when "
                            "they are read, so memory stays flat for any length; a node connected to the IMAGE "
                            "output is then stopped with a message.")


def frames_blocked(node: str):
    """What the IMAGE output carries when frames_output is off: any node reading it stops with this message."""
    from comfy_execution.graph_utils import ExecutionBlocker

    return ExecutionBlocker(f"{node}: its IMAGE output is off (frames_output = false, to keep memory flat). "
                            "Turn frames_output on, or use its video output.")


def frames_of(video, node: str) -> torch.Tensor:
    """All frames of a pack VIDEO (nodes.lazy_video.ChunkVideo) as an IMAGE batch, with a progress bar."""
    out = torch.empty((video.num_frames, video.height, video.width, 3), dtype=torch.float32)
    progress = Progress(video.num_frames)
    pos = 0
    for part in video.iter_chunks():
        check_interrupt()
        out[pos:pos + len(part)] = torch.from_numpy(part).float().div_(255.0)
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
    naming 'pose') and moved onto its ``width`` x ``height`` frames by scaling x and y, the official
    normalise-then-multiply convention (process_pipepline.py get_mask: keypoints / size * wh)."""
    from dataclasses import replace

    if pose.num_frames != num_frames:
        raise InputError(node, "pose", f"has {pose.num_frames} frames, the video has {num_frames}",
                         "use the pose extracted from this video")
    if (pose.width, pose.height) == (width, height):
        return pose
    kps = pose.keypoints.copy()
    kps[..., 0] *= width / pose.width
    kps[..., 1] *= height / pose.height
    return replace(pose, keypoints=kps, width=width, height=height)


def one_source(node: str, images, video) -> VideoSource:
    """The frames of a node that takes either an IMAGE batch ('images') or a VIDEO ('video')."""
    if (images is None) == (video is None):
        raise InputError(node, "images" if images is None else "video",
                         "connect exactly one of 'images' (IMAGE) or 'video' (VIDEO)")
    src = VideoSource(images if images is not None else video, "images" if images is not None else "video", node)
    if src.num_frames == 0:
        raise InputError(node, src.name, "has no frames", "check the video file")
    return src


def preview_size(width: int, height: int, max_side: int = 384) -> tuple[float, int, int]:
    """(scale, width, height) of a preview no larger than ``max_side``."""
    s = min(1.0, max_side / max(width, height))
    return s, max(2, int(round(width * s))), max(2, int(round(height * s)))


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
