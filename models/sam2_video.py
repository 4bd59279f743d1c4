"""Chunked SAM 2 video segmentation of the character (replacement mode, reference §3.7).

Official scheme (official: wan/modules/animate/preprocess/process_pipepline.py,
ProcessPipeline.get_mask, with sam_utils.py load_video_frames_v2 / _load_img_v2_as_tensor and
video_predictor.py init_state_v2): the clip is cut into chunks of 400 frames (``chunk_bounds``
gives the same chunks as the official ``num_step`` loop, whose trailing empty slice is skipped),
every chunk gets a FRESH inference state built from its frames, object id 1 gets the positive
points of each keyframe (``add_new_points`` with its default ``clear_old_points``), the chunk is
propagated forward from its first frame, and the mask is ``logits > 0`` at the video resolution.
The frames are resized for the model with PIL bicubic (Pillow's default filter of
``Image.resize`` for RGB) to ``image_size`` x ``image_size``, divided by 255 in float64, cast to
float32 and normalised with the ImageNet mean and std in float32; this module does exactly that
(``resize_for_model`` with ``method='official'``, ``ChunkImages``), so the network sees the very
same input tensor. ``method='opencv'`` (area filter when shrinking, bicubic when enlarging) is the
pack's former resize, kept as an option: its frames differ from the official ones by a few grey
levels, so its masks can differ slightly.

Frames never touch the disk: each chunk's frames are held resized as ``uint8`` (the official
resize already yields ``uint8``, so nothing is lost) and normalised one frame at a time when the
predictor asks for it; the official code holds the whole chunk as float32 on the GPU. Inside a
chunk, tracking outputs that the memory attention can no longer reach are dropped as propagation
moves on (``prune_memory``), which leaves the masks unchanged. Both only save memory.

The pack's extras (none is used by the default prompts): an optional object id 2 is something to
PRESERVE from the source (e.g. a held prop): its mask is subtracted from the character mask. A
chunk without prompts but with ``from_previous`` is seeded with the previous chunk's last character
mask (``add_new_mask``), and object 2 is carried into later chunks the same way; a chunk with
nothing to start from comes back empty and is reported. A box can go with the points. When the
chunk's first prompted frame is not its frame 0 (never with the official prompts, which always
prompt frame 0), propagation runs forward from it and backward from it to cover the frames before.

Notes on sam2 1.1.0 (the installed version): the state layout is per object
(``output_dict_per_obj``, ``frames_tracked_per_obj``); the pre-1.1 layout (``output_dict``,
``consolidated_frame_inds``, ``tracking_has_started``, ``frames_already_tracked``) is filled too so
the legacy predictor class also works. ``clear_non_cond_mem_around_input=True`` crashes in 1.1.0
(it calls a method that does not exist), so it must stay at its default False. In fp32, a frame
tracked before its object's first prompt crashes on the bf16 memory bank; ``load_sam2`` installs a
cast (``install_memory_dtype_guard``), which changes nothing where sam2 itself runs. Without the
optional CUDA extension hole filling warns and is skipped; ``load_sam2`` replaces it with a CPU
version.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections import OrderedDict
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from ..preprocess.frames import as_source, is_source, to_uint8
from .sam2_loader import Sam2Model, install_memory_dtype_guard

log = logging.getLogger(__name__)

CHARACTER_ID = 1
OBJECT_ID = 2
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Frame resize for the model: the official PIL bicubic, or the pack's former OpenCV area/cubic.
FRAME_RESIZE = ("official", "opencv")

FramePrompt = tuple[np.ndarray, np.ndarray]  # points [n,2] pixel xy, labels [n] (1 pos, 0 neg)


class SegmentationInterrupted(RuntimeError):
    """Raised when ``should_stop()`` returns True during segmentation."""


@dataclasses.dataclass
class ChunkMasks:
    """Masks of one chunk, frames ``start:stop`` of the clip."""

    start: int
    stop: int
    masks: np.ndarray  # bool [n, H, W]: character minus preserved object
    prompted: bool  # False: no prompt in this chunk, masks are empty
    object_masks: np.ndarray | None = None  # bool [n, H, W] of object id 2, when it was given


# ----------------------------------------------------------------------------- frames


def _one_by_one(frames: Any) -> Iterator[np.ndarray]:
    """uint8 RGB frames [H, W, 3], one at a time, from a frame source (preprocess.frames), an array /
    tensor [T, H, W, 3] (uint8, or float in [0, 1]), or an iterable of frames [H, W, 3] / batches
    [n, H, W, 3]. Only the current chunk is held at video resolution."""
    if is_source(frames) or isinstance(frames, (np.ndarray, torch.Tensor)):
        if not is_source(frames) and (frames.ndim != 4 or frames.shape[-1] != 3):
            raise ValueError(f"frames must be [T, H, W, 3] RGB, got shape {tuple(frames.shape)}.")
        for chunk in as_source(frames).iter_chunks(16):
            yield from chunk
        return
    try:
        items = iter(frames)
    except TypeError as exc:
        raise ValueError("frames must be a frame source, an array/tensor [T, H, W, 3] or an iterable of frames "
                         f"[H, W, 3] / batches [n, H, W, 3], got {type(frames).__name__}.") from exc
    for item in items:
        arr = item if isinstance(item, torch.Tensor) else np.asarray(item)
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise ValueError(f"each frame must be [H, W, 3] (or a batch [n, H, W, 3]), got {tuple(arr.shape)}.")
        if not isinstance(arr, torch.Tensor) and arr.dtype != np.uint8 and not np.issubdtype(arr.dtype, np.floating):
            raise ValueError(f"frames must be uint8 or float in [0, 1], got dtype {arr.dtype}.")
        for frame in arr:
            yield to_uint8(frame)


def _take_resized(frames: Iterator[np.ndarray], n: int, image_size: int, first_index: int,
                  method: str = "official") -> tuple[torch.Tensor, tuple[int, int]]:
    """The next ``n`` frames of ``frames`` resized for the model, uint8 [n, 3, S, S], and their (H, W)."""
    out = torch.empty((n, 3, image_size, image_size), dtype=torch.uint8)
    size: tuple[int, int] | None = None
    for i in range(n):
        frame = next(frames, None)
        if frame is None:
            raise ValueError(f"frames ended after {first_index + i} frames but more were needed "
                             "(num_frames is larger than the clip).")
        if size is None:
            size = (int(frame.shape[0]), int(frame.shape[1]))
        elif frame.shape[:2] != size:
            raise ValueError(f"frame {first_index + i} is {frame.shape[1]}x{frame.shape[0]} but the clip "
                             f"is {size[1]}x{size[0]}; all frames must have one size.")
        out[i] = resize_for_model(frame[None], image_size, method)[0]
        del frame  # a view may keep its whole incoming chunk alive while the next one loads
    assert size is not None
    return out, size


def _check_resize(method: str) -> None:
    if method not in FRAME_RESIZE:
        raise ValueError(f"frame resize must be one of {', '.join(FRAME_RESIZE)}, got {method!r}.")


def resize_for_model(frames: np.ndarray, image_size: int, method: str = "official") -> torch.Tensor:
    """uint8 RGB [n, H, W, 3] -> uint8 [n, 3, S, S], the frames stretched to the square model size.

    ``method='official'``: PIL bicubic, the filter Pillow's ``Image.resize`` uses by default for RGB
    images (official: sam_utils.py, _load_img_v2_as_tensor). ``'opencv'``: the pack's former resize,
    ``cv2.INTER_AREA`` when both sides shrink, ``cv2.INTER_CUBIC`` otherwise.
    """
    _check_resize(method)
    frames = np.asarray(frames)
    n = frames.shape[0]
    out = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
    if method == "official":
        from PIL import Image

        for i in range(n):
            picture = Image.fromarray(np.ascontiguousarray(frames[i], dtype=np.uint8))
            out[i] = np.asarray(picture.resize((image_size, image_size), Image.Resampling.BICUBIC))
    else:
        import cv2

        h, w = frames.shape[1:3]
        interp = cv2.INTER_AREA if (h >= image_size and w >= image_size) else cv2.INTER_CUBIC
        for i in range(n):
            out[i] = cv2.resize(frames[i], (image_size, image_size), interpolation=interp)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def normalisation_table(mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """float32 [3, 256]: the model input value of each 8-bit level in each channel.

    The official arithmetic, level by level: ``level / 255`` in float64, cast to float32, minus the
    float32 mean, divided by the float32 std (official: sam_utils.py, load_video_frames_v2). Every
    step is element-wise, so looking the values up gives the official tensor bit for bit.
    """
    levels = torch.from_numpy(np.arange(256, dtype=np.float64) / 255.0).to(torch.float32)
    centre = torch.tensor(tuple(mean), dtype=torch.float32)[:, None]
    spread = torch.tensor(tuple(std), dtype=torch.float32)[:, None]
    return (levels[None, :] - centre) / spread


class ChunkImages:
    """The chunk's frames at model size, uint8 [n, 3, S, S]; indexing gives the normalised float frame.

    Stands in for the float tensor ``init_state`` builds: the predictor only calls ``len()`` and
    ``images[i]`` (then ``.to(device).float()``), and uint8 storage is a quarter of the size.
    ``images[i]`` equals the official float32 frame exactly (``normalisation_table``).
    """

    def __init__(self, data: torch.Tensor, compute_device: torch.device):
        self.data = data
        self.compute_device = compute_device
        self._table = normalisation_table().to(compute_device)

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __getitem__(self, index: int) -> torch.Tensor:
        levels = self.data[index].to(self.compute_device, non_blocking=True)
        channels, height, width = levels.shape
        values = torch.gather(self._table, 1, levels.reshape(channels, -1).long())
        return values.reshape(channels, height, width)


def build_inference_state(predictor: Any, frames: np.ndarray | torch.Tensor,
                          video_size: tuple[int, int] | None = None, offload_video: bool = True,
                          offload_state: bool = False, resize: str = "official") -> dict[str, Any]:
    """An inference state equivalent to the official ``init_state_v2`` (official:
    video_predictor.py), built from frames in memory.

    ``frames``: uint8 RGB [n, H, W, 3] at video resolution (resized with ``resize``), or (with
    ``video_size=(H, W)``) frames already resized by ``resize_for_model``, uint8 [n, 3, S, S].
    The official state holds the frames on the GPU (``offload_video=False``); the default here keeps
    them on the CPU, which changes nothing but memory.
    """
    device = predictor.device
    if video_size is None:
        frames = np.asarray(frames)
        video_size = (int(frames.shape[1]), int(frames.shape[2]))
        data = resize_for_model(frames, int(predictor.image_size), resize)
    else:
        data = torch.as_tensor(frames)
    if not offload_video:
        data = data.to(device)
    height, width = video_size
    state: dict[str, Any] = {
        "images": ChunkImages(data, device),
        "num_frames": int(data.shape[0]),
        "offload_video_to_cpu": offload_video,
        "offload_state_to_cpu": offload_state,
        "video_height": height,
        "video_width": width,
        "device": device,
        "storage_device": torch.device("cpu") if offload_state else device,
        "point_inputs_per_obj": {},
        "mask_inputs_per_obj": {},
        "cached_features": {},
        "constants": {},
        "obj_id_to_idx": OrderedDict(),
        "obj_idx_to_id": OrderedDict(),
        "obj_ids": [],
        "output_dict_per_obj": {},
        "temp_output_dict_per_obj": {},
        # sam2 >= 1.1 layout
        "frames_tracked_per_obj": {},
        # sam2 1.0 / legacy layout (ignored by 1.1)
        "output_dict": {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}},
        "consolidated_frame_inds": {"cond_frame_outputs": set(), "non_cond_frame_outputs": set()},
        "tracking_has_started": False,
        "frames_already_tracked": {},
    }
    return state


# ----------------------------------------------------------------------------- prompts


def _as_prompt(value: Any, what: str) -> FramePrompt:
    """(points, labels) tuple, or bare points (all positive) -> float32 [n,2], int32 [n]."""
    if isinstance(value, tuple) and len(value) == 2 and not np.isscalar(value[0]):
        points, labels = value
    else:
        points, labels = value, None
    pts = (np.asarray(points, dtype=np.float32).reshape(-1, 2) if np.size(points)
           else np.zeros((0, 2), np.float32))
    lab = (np.ones(len(pts), np.int32) if labels is None
           else np.asarray(labels, dtype=np.int32).reshape(-1))
    if lab.shape[0] != pts.shape[0]:
        raise ValueError(f"{what}: {pts.shape[0]} points but {lab.shape[0]} labels.")
    if not np.all(np.isfinite(pts)):
        raise ValueError(f"{what}: points contain NaN or inf.")
    return pts, lab


def _chunk_frames(spec: Any, n: int, what: str) -> dict[int, FramePrompt]:
    """Per-frame prompts keyed by frame index WITHIN the chunk (0..n-1), empty frames dropped.

    ``spec``: mapping frame -> (points, labels); or one (points, labels) pair / point array,
    meaning the chunk's frame 0.
    """
    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        spec = {0: spec}
    out: dict[int, FramePrompt] = {}
    for frame, value in spec.items():
        frame = int(frame)
        if not 0 <= frame < n:
            raise ValueError(f"{what}: prompt on chunk frame {frame}, but the chunk has frames 0..{n - 1} "
                             "(ChunkPrompts.frames is indexed within the chunk).")
        pts, lab = _as_prompt(value, f"{what} frame {frame}")
        if len(pts):
            out[frame] = (pts, lab)
    return dict(sorted(out.items()))


def _check_chunks(prompts: Sequence[Any], num_frames: int) -> None:
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}.")
    if not prompts:
        raise ValueError("prompts is empty: plan one ChunkPrompts per chunk "
                         "(preprocess.sam_prompts.plan_prompts).")
    expected = 0
    for i, chunk in enumerate(prompts):
        start, stop = int(chunk.start), int(chunk.stop)
        if start != expected or stop <= start:
            raise ValueError(f"prompts[{i}] covers [{start}, {stop}) but the chunks must be contiguous "
                             f"from frame 0; expected it to start at {expected}.")
        expected = stop
    if expected != num_frames:
        raise ValueError(f"prompts cover {expected} frames but num_frames is {num_frames}.")


def _object_spec(object_prompts: Any, index: int, chunk: Any, num_chunks: int) -> Any:
    if object_prompts is None:
        return getattr(chunk, "object_points", None)
    if isinstance(object_prompts, list):
        if len(object_prompts) != num_chunks:
            raise ValueError(f"object_prompts is a list of {len(object_prompts)} entries but there are "
                             f"{num_chunks} chunks; give one entry (or None) per chunk, or one spec "
                             "for the first chunk.")
        return object_prompts[index]
    return object_prompts if index == 0 else None  # one spec: the first chunk (then carried over)


@dataclasses.dataclass
class _ChunkPlan:
    char: dict[int, FramePrompt]
    box: np.ndarray | None
    box_frame: int
    obj: dict[int, FramePrompt]
    char_seed: np.ndarray | None = None  # bool [H, W] mask for chunk frame 0 (add_new_mask)
    obj_seed: np.ndarray | None = None

    @property
    def has_character(self) -> bool:
        return bool(self.char) or self.box is not None or self.char_seed is not None

    @property
    def has_object(self) -> bool:
        return bool(self.obj) or self.obj_seed is not None


# ----------------------------------------------------------------------------- propagation


def _memory_window(predictor: Any) -> int:
    """How many frames back tracking can still read a non-conditioning output (sam2_base)."""
    stride = max(1, int(getattr(predictor, "memory_temporal_stride_for_eval", 1)))
    ptrs = (int(getattr(predictor, "max_obj_ptrs_in_encoder", 16))
            if getattr(predictor, "use_obj_ptrs_in_encoder", True) else 0)
    return max(int(predictor.num_maskmem) * stride, ptrs - 1) + 1


def _non_cond_dicts(state: dict[str, Any]) -> list[dict[int, Any]]:
    dicts = [o["non_cond_frame_outputs"] for o in state["output_dict_per_obj"].values()]
    legacy = state.get("output_dict")
    if legacy is not None:
        dicts.append(legacy["non_cond_frame_outputs"])
    return dicts


def _prune(state: dict[str, Any], frame_idx: int, window: int, reverse: bool, keep: range | None) -> None:
    """Drop tracking outputs that the frames still to come can no longer attend to."""
    for outputs in _non_cond_dicts(state):
        for t in list(outputs):
            stale = t > frame_idx + window - 1 if reverse else t < frame_idx - window + 1
            if stale and (keep is None or t not in keep):
                del outputs[t]


def _autocast(model: Sam2Model | None, device: torch.device) -> contextlib.AbstractContextManager:
    """The model's compute dtype as autocast; float32 (official) and fp16 on the CPU (a model loaded
    for a GPU that runs on the CPU this time) run without it."""
    if model is None or model.dtype == torch.float32:
        return contextlib.nullcontext()
    if device.type == "cpu" and model.dtype == torch.float16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=model.dtype)


def _add_prompts(predictor: Any, state: dict[str, Any], plan: _ChunkPlan) -> int:
    """Add the chunk's prompts to a fresh state; return the first prompted chunk frame."""
    prompted: list[int] = []
    for frame, (pts, lab) in plan.char.items():
        box = plan.box if (plan.box is not None and frame == plan.box_frame) else None
        predictor.add_new_points_or_box(state, frame_idx=frame, obj_id=CHARACTER_ID, points=pts,
                                        labels=lab, clear_old_points=True, box=box)
        prompted.append(frame)
    if plan.box is not None and plan.box_frame not in plan.char:
        predictor.add_new_points_or_box(state, frame_idx=plan.box_frame, obj_id=CHARACTER_ID,
                                        box=plan.box, clear_old_points=True)
        prompted.append(plan.box_frame)
    if not prompted and plan.char_seed is not None:
        predictor.add_new_mask(state, frame_idx=0, obj_id=CHARACTER_ID, mask=torch.from_numpy(plan.char_seed))
        prompted.append(0)
    for frame, (pts, lab) in plan.obj.items():
        predictor.add_new_points_or_box(state, frame_idx=frame, obj_id=OBJECT_ID, points=pts,
                                        labels=lab, clear_old_points=True)
        prompted.append(frame)
    if not plan.obj and plan.obj_seed is not None:
        predictor.add_new_mask(state, frame_idx=0, obj_id=OBJECT_ID, mask=torch.from_numpy(plan.obj_seed))
        prompted.append(0)
    return min(prompted)


def _in_context(gen: Iterator[Any], context: Callable[[], contextlib.AbstractContextManager]) -> Iterator[Any]:
    """Run each step of ``gen`` inside ``context()`` without leaking it to the consumer between steps."""
    while True:
        with context():
            try:
                item = next(gen)
            except StopIteration:
                return
        yield item


def _pack(mask: np.ndarray | None) -> np.ndarray | None:
    return None if mask is None else np.packbits(mask, axis=-1)


def _unpack(packed: np.ndarray | None, width: int) -> np.ndarray | None:
    return None if packed is None else np.unpackbits(packed, axis=-1, count=width).astype(bool)


def _track_chunk(predictor: Any, state: dict[str, Any], plan: _ChunkPlan, first: int, prune_memory: bool,
                 on_frame: Callable[[], None]) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    """Track one prompted chunk; yield (chunk frame, character mask, object mask or None) in frame order.

    With the first prompt on frame 0 (the usual case) frames stream out as they are tracked;
    otherwise the forward pass is held bit-packed until the backward pass has covered the frames
    before the first prompt.
    """
    n, width = state["num_frames"], state["video_width"]
    window = _memory_window(predictor)
    # The backward pass from `first` reads the forward outputs just after it: keep those.
    keep = range(first, first + window + 1) if first > 0 else None

    def run(reverse: bool) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
        for frame_idx, obj_ids, logits in predictor.propagate_in_video(
                state, start_frame_idx=first, max_frame_num_to_track=n, reverse=reverse):
            if reverse and frame_idx == first:
                continue  # already produced by the forward pass
            fg = (logits[:, 0] > 0).cpu().numpy()
            ids = list(obj_ids)
            obj = fg[ids.index(OBJECT_ID)] if plan.has_object else None
            if prune_memory:
                _prune(state, frame_idx, window, reverse, keep)
            on_frame()
            yield int(frame_idx), fg[ids.index(CHARACTER_ID)], obj

    if first == 0:
        for expected, (t, char, obj) in enumerate(run(False)):
            if t != expected:
                raise RuntimeError(f"SAM2 propagation returned chunk frame {t}, expected {expected}.")
            yield t, char, obj
        return
    held = {t: (_pack(char), _pack(obj)) for t, char, obj in run(False)}
    early = {t: (char, obj) for t, char, obj in run(True)}
    if sorted([*held, *early]) != list(range(n)):
        raise RuntimeError(f"SAM2 propagation covered chunk frames {sorted([*held, *early])}, expected 0..{n - 1}.")
    for t in range(first):
        yield (t, *early.pop(t))
    for t in range(first, n):
        char, obj = held.pop(t)
        yield t, _unpack(char, width), _unpack(obj, width)  # type: ignore[misc]


@dataclasses.dataclass
class FrameMask:
    """The mask of one clip frame, as ``iter_segment_frames`` yields it."""

    index: int  # clip frame index
    mask: np.ndarray  # bool [H, W]: character minus preserved object
    object_mask: np.ndarray | None  # bool [H, W] of object id 2 when it was tracked in this chunk
    chunk: int  # index into prompts
    prompted: bool  # False: the chunk had nothing to start from, the mask is empty


def iter_segment_frames(model: Sam2Model | Any, frames: Any, prompts: Sequence[Any], num_frames: int,
                        progress: Callable[[int, int], None] | None = None,
                        should_stop: Callable[[], bool] | None = None,
                        object_prompts: Any = None, carry_object: bool = True,
                        offload_video: bool = True, offload_state: bool = False,
                        prune_memory: bool = True, resize: str = "official") -> Iterator[FrameMask]:
    """Segment the character, yielding one ``FrameMask`` per clip frame in order (streaming).

    Args:
        model: a ``Sam2Model`` from ``load_sam2`` (or a bare ``SAM2VideoPredictor``, run in fp32).
        frames: RGB frames, uint8 or float in [0, 1]: an array/tensor [T, H, W, 3] or an iterable of
            frames [H, W, 3] / batches [n, H, W, 3] (read lazily, one frame at a time).
        prompts: ``ChunkPrompts`` (preprocess.sam_prompts) covering ``[0, num_frames)`` in order.
            Indices are WITHIN the chunk: ``frames`` maps chunk frame -> (points [n,2] xy pixels,
            labels [n], 1 = positive, 0 = negative); ``box`` (xyxy pixels) sits on ``box_frame``;
            ``object_points`` maps chunk frame -> (points, labels) of object 2 (kept from the
            source); ``from_previous`` seeds a prompt-less chunk with the previous chunk's last mask.
        num_frames: frames to segment (the first ``num_frames`` of ``frames``).
        progress: called ``progress(done, num_frames)`` after every frame.
        should_stop: polled before every frame; True raises ``SegmentationInterrupted``.
        object_prompts: replaces ``chunk.object_points``: a list with one spec (or None) per chunk,
            or one spec for the first chunk. A spec is a mapping chunk frame -> (points, labels), a
            (points, labels) pair or a point array (positive points on chunk frame 0).
        carry_object: seed object 2 in a chunk without object prompts from the previous chunk's
            last object mask, so a preserved object stays preserved across chunks.
        offload_video: keep the chunk's resized frames on the CPU (moved per frame when used).
        offload_state: keep tracking memory on the CPU.
        prune_memory: drop tracking outputs older than the model's memory window (same masks).
        resize: how frames are resized for the model, 'official' (PIL bicubic) or 'opencv' (the
            pack's former area/cubic resize; see ``resize_for_model``).
    """
    _check_chunks(prompts, num_frames)
    _check_resize(resize)
    predictor = model.predictor if isinstance(model, Sam2Model) else model
    handle = model if isinstance(model, Sam2Model) else None
    install_memory_dtype_guard(predictor)
    device = torch.device(predictor.device)
    image_size = int(predictor.image_size)
    source = _one_by_one(frames)
    done = 0
    size: tuple[int, int] | None = None
    last_char: np.ndarray | None = None  # previous chunk's last character mask (before subtraction)
    last_obj: np.ndarray | None = None

    def check_stop() -> None:
        if should_stop is not None and should_stop():
            raise SegmentationInterrupted(f"SAM2 segmentation stopped after {done} of {num_frames} frames.")

    def on_frame() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, num_frames)
        if done < num_frames:
            check_stop()

    for index, chunk in enumerate(prompts):
        start, stop = int(chunk.start), int(chunk.stop)
        n = stop - start
        check_stop()
        what = f"prompts[{index}] (frames {start}-{stop - 1})"
        box = getattr(chunk, "box", None)
        plan = _ChunkPlan(
            char=_chunk_frames(getattr(chunk, "frames", None), n, what),
            box=None if box is None else np.asarray(box, dtype=np.float32).reshape(4),
            box_frame=int(getattr(chunk, "box_frame", 0) or 0),
            obj=_chunk_frames(_object_spec(object_prompts, index, chunk, len(prompts)), n,
                              f"object prompt {what}"))
        if plan.box is not None and not 0 <= plan.box_frame < n:
            raise ValueError(f"{what}: box_frame {plan.box_frame} is outside the chunk (0..{n - 1}).")
        if (not plan.char and plan.box is None and getattr(chunk, "from_previous", False)
                and last_char is not None and last_char.any()):
            plan.char_seed = last_char
        if carry_object and not plan.obj and last_obj is not None and last_obj.any():
            plan.obj_seed = last_obj

        data, chunk_size = _take_resized(source, n, image_size, done, resize)
        if size is not None and chunk_size != size:
            raise ValueError(f"frame size changed from {size} to {chunk_size} at frame {start}.")
        size = chunk_size
        if not plan.has_character:
            log.warning("SAM2: no character prompt in frames %d-%d; their masks are empty.", start, stop - 1)
            del data
            empty = np.zeros(size, dtype=bool)
            empty.flags.writeable = False
            last_char = last_obj = None
            for t in range(n):
                on_frame()
                yield FrameMask(start + t, empty, None, index, False)
            continue
        state = build_inference_state(predictor, data, video_size=size, offload_video=offload_video,
                                      offload_state=offload_state)
        del data
        with _autocast(handle, device):
            first = _add_prompts(predictor, state, plan)
        steps = _track_chunk(predictor, state, plan, first, prune_memory, on_frame)
        for t, char, obj in _in_context(steps, lambda: _autocast(handle, device)):
            if t == n - 1:
                last_char, last_obj = char.copy(), (None if obj is None else obj.copy())
            yield FrameMask(start + t, char & ~obj if obj is not None else char, obj, index, True)
        del state, steps


def iter_segment_video(model: Sam2Model | Any, frames: Any, prompts: Sequence[Any], num_frames: int,
                       **kwargs: Any) -> Iterator[ChunkMasks]:
    """Like ``iter_segment_frames`` but yields one ``ChunkMasks`` per chunk (masks stacked)."""
    masks: list[np.ndarray] = []
    objects: list[np.ndarray | None] = []
    for item in iter_segment_frames(model, frames, prompts, num_frames, **kwargs):
        masks.append(item.mask)
        objects.append(item.object_mask)
        chunk = prompts[item.chunk]
        if item.index == int(chunk.stop) - 1:
            obj = np.stack(objects) if all(o is not None for o in objects) else None
            yield ChunkMasks(int(chunk.start), int(chunk.stop), np.stack(masks), item.prompted, obj)
            masks, objects = [], []


def segment_video(model: Sam2Model | Any, frames: Any, prompts: Sequence[Any], num_frames: int,
                  progress: Callable[[int, int], None] | None = None,
                  should_stop: Callable[[], bool] | None = None, object_prompts: Any = None,
                  on_chunk: Callable[[ChunkMasks], None] | None = None,
                  **options: Any) -> np.ndarray:
    """Segment the character over the whole clip: bool masks [num_frames, H, W].

    Same arguments as ``iter_segment_frames`` (``options``: carry_object, offload_video,
    offload_state, prune_memory, resize). ``on_chunk`` receives a ``ChunkMasks`` (masks are a view into
    the result, no object masks) as each chunk completes, e.g. to report the chunks that had no
    prompt and came back empty (``prompted=False``).
    """
    out: np.ndarray | None = None
    empty: list[str] = []
    for item in iter_segment_frames(model, frames, prompts, num_frames, progress=progress,
                                    should_stop=should_stop, object_prompts=object_prompts, **options):
        if out is None:
            out = np.zeros((num_frames, *item.mask.shape), dtype=bool)
        out[item.index] = item.mask
        chunk = prompts[item.chunk]
        if item.index == int(chunk.stop) - 1:
            start, stop = int(chunk.start), int(chunk.stop)
            if not item.prompted:
                empty.append(f"{start}-{stop - 1}")
            if on_chunk is not None:
                on_chunk(ChunkMasks(start, stop, out[start:stop], item.prompted))
    if empty:
        log.warning("SAM2: chunks without prompts (empty masks): frames %s", ", ".join(empty))
    if out is None:  # unreachable: _check_chunks guarantees at least one chunk
        raise RuntimeError("no chunk was segmented")
    return out
