"""The pack's one frames layer: every video, IMAGE batch and mask sequence is read through a frame source.

A frame source (:class:`FrameSource`) is a sequence of frames of one size that hands them out as
uint8, a chunk at a time, so a long video never has to sit whole in memory:

* ``num_frames``, ``size`` (width, height), ``fps`` (0.0 when unknown), ``is_mask``;
* ``iter_chunks(n)``: the frames in order, uint8 [k, H, W, 3] (RGB) or [k, H, W] (masks, 255 = on);
* ``get(indices)``: the frames at ``indices`` as uint8; ``get_float(indices)``: the same as float32
  torch in 0..1 (an in-memory float batch gives its own values back, unrounded).

Implementations:

* :class:`ArrayFrames`: an in-memory array (the host's IMAGE [N, H, W, C] / MASK [N, H, W] float
  tensors, or uint8 numpy), converted a chunk at a time;
* :class:`RecipeFrames`: frames made on demand by a recipe (a callable that starts a new pass and
  yields chunks), e.g. skeletons drawn from keypoints, face crops cut from a video, masks shaped
  from another mask source;
* :class:`FileFrames`: a video file (or an in-memory file) decoded with PyAV;
* :class:`PackedMasks`: masks kept bit-packed and zlib-compressed frame by frame (a 1280x720 mask
  of a person takes a few kB instead of 3.7 MB as a float MASK).

Random access (``get``) on a recipe or a file keeps a forward window: requests are expected to move
forward (segment after segment), and asking for an earlier frame starts a new pass.

No host imports here: the node layer wraps the host's IMAGE / VIDEO / MASK values into sources
(``nodes.common.source_of``) and presents a source as the host's VIDEO (``nodes.lazy_video``).
"""
from __future__ import annotations

import logging
import zlib
from typing import Any, Callable, Iterator, Protocol, Sequence, runtime_checkable

import numpy as np
import torch

log = logging.getLogger("wan_animate_kit")


# ----------------------------------------------------------------------------- conversions

def to_uint8(frames: Any) -> np.ndarray:
    """Float frames in 0..1 (torch or numpy) -> uint8 numpy, rounded half to even and clamped; uint8
    passes through unchanged. IMAGE batches with an alpha channel keep only RGB."""
    if isinstance(frames, torch.Tensor):
        if frames.ndim == 4 and frames.shape[-1] == 4:
            frames = frames[..., :3]
        if frames.dtype == torch.uint8:
            return frames.cpu().numpy()
        return frames.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
    arr = np.asarray(frames)
    if arr.ndim == 4 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    if arr.dtype == np.uint8:
        return arr
    if not np.issubdtype(arr.dtype, np.floating) and arr.dtype != np.bool_:
        raise ValueError(f"frames must be uint8 or float in 0..1, got {arr.dtype}")
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * np.uint8(255)
    return np.clip(np.rint(arr.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)


def to_float(frames: Any) -> torch.Tensor:
    """uint8 frames -> float32 torch in 0..1 (value / 255); float frames pass through as float32."""
    t = frames if isinstance(frames, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(frames))
    if t.dtype == torch.uint8:
        return t.float().div_(255.0)
    if t.dtype == torch.bool:
        return t.float()
    return t.float()


# ----------------------------------------------------------------------------- protocol

@runtime_checkable
class FrameSource(Protocol):
    name: str

    @property
    def num_frames(self) -> int: ...

    @property
    def size(self) -> tuple[int, int]: ...

    @property
    def fps(self) -> float: ...

    @property
    def is_mask(self) -> bool: ...

    def iter_chunks(self, chunk: int = 32) -> Iterator[np.ndarray]: ...

    def get(self, indices: Sequence[int]) -> np.ndarray: ...

    def get_float(self, indices: Sequence[int]) -> torch.Tensor: ...


def is_source(value: Any) -> bool:
    return isinstance(value, FrameSource)


class _Frames:
    """What every source shares: ``size`` and ``fps`` (from ``_w``, ``_h``, ``_fps``), ``read`` /
    ``get_float`` on top of ``get``, and shape checks."""

    name = "frames"
    is_mask = False
    _w = _h = 0
    _fps = 0.0

    @property
    def size(self) -> tuple[int, int]:
        return self._w, self._h

    @property
    def fps(self) -> float:
        return self._fps

    def frame_shape(self) -> tuple[int, ...]:
        w, h = self.size
        return (h, w) if self.is_mask else (h, w, 3)

    def get_float(self, indices: Sequence[int]) -> torch.Tensor:
        return to_float(self.get(indices))

    def read(self, start: int, stop: int) -> np.ndarray:
        """uint8 frames [start, stop)."""
        stop = min(int(stop), self.num_frames)
        if stop <= start:
            return np.zeros((0, *self.frame_shape()), np.uint8)
        return self.get(range(int(start), stop))

    def empty(self) -> np.ndarray:
        return np.zeros((0, *self.frame_shape()), np.uint8)

    def __len__(self) -> int:
        return self.num_frames


def _indices(indices: Sequence[int]) -> np.ndarray:
    idx = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices, np.int64).reshape(-1)
    return idx


# ----------------------------------------------------------------------------- in memory

class ArrayFrames(_Frames):
    """Frames of an in-memory array: IMAGE [N, H, W, C] / MASK [N, H, W] float tensors in 0..1, or
    uint8 / float numpy. With ``repeat_single`` a one-frame array stands for ``length`` frames (a
    single mask for the whole video)."""

    def __init__(self, array: Any, fps: float = 0.0, name: str = "frames", repeat_single: bool = False,
                 length: int | None = None):
        if isinstance(array, np.ndarray):
            array = torch.from_numpy(array) if array.dtype != np.bool_ else torch.from_numpy(array.astype(np.uint8) * 255)
        if not isinstance(array, torch.Tensor):
            raise ValueError(f"{name}: expected an array of frames, got {type(array).__name__}")
        if array.ndim == 4 and array.shape[-1] in (3, 4):
            self.is_mask = False
        elif array.ndim == 3:
            self.is_mask = True
        else:
            raise ValueError(f"{name}: expected frames [N, H, W, 3] or masks [N, H, W], got {tuple(array.shape)}")
        self.array = array
        self.name = name
        self._fps = float(fps or 0.0)
        self.repeat = bool(repeat_single) and int(array.shape[0]) == 1
        # a repeated single frame answers any index; it reports ``length`` frames (1 when not given)
        self._length = int(length) if (self.repeat and length) else int(array.shape[0])

    @property
    def num_frames(self) -> int:
        return self._length

    @property
    def size(self) -> tuple[int, int]:
        return int(self.array.shape[2]), int(self.array.shape[1])

    def _pick(self, idx: np.ndarray) -> torch.Tensor:
        if self.repeat:
            idx = np.zeros_like(idx)
        elif len(idx) and (idx.min() < 0 or idx.max() >= self.num_frames):
            raise IndexError(f"{self.name}: frame {int(idx.max())} asked for, it has {self.num_frames}")
        if len(idx) and np.all(np.diff(idx) == 1):
            out = self.array[int(idx[0]):int(idx[-1]) + 1]
        else:
            out = self.array[torch.as_tensor(idx)]
        return out[..., :3] if not self.is_mask else out

    def get(self, indices: Sequence[int]) -> np.ndarray:
        return to_uint8(self._pick(_indices(indices)))

    def get_float(self, indices: Sequence[int]) -> torch.Tensor:
        return to_float(self._pick(_indices(indices)))

    def iter_chunks(self, chunk: int = 32) -> Iterator[np.ndarray]:
        chunk = max(1, int(chunk))
        for s in range(0, self.num_frames, chunk):
            yield self.get(range(s, min(s + chunk, self.num_frames)))


class PackedMasks(_Frames):
    """Masks kept bit-packed and zlib-compressed, one entry per frame; they read back as uint8 0 / 255.

    Build with :meth:`append` (bool, uint8 0 / 255 (or 0 / 1) or float [k, H, W]; on = value >= half)
    or :meth:`from_source`."""

    is_mask = True

    def __init__(self, width: int, height: int, fps: float = 0.0, name: str = "mask"):
        self._w, self._h = int(width), int(height)
        self._fps = float(fps or 0.0)
        self.name = name
        self._frames: list[bytes] = []
        self._empty: list[bool] = []

    @classmethod
    def from_source(cls, source: FrameSource, chunk: int = 32, name: str | None = None) -> "PackedMasks":
        w, h = source.size
        out = cls(w, h, source.fps, name or source.name)
        for part in source.iter_chunks(chunk):
            out.append(part)
        return out

    def append(self, masks: Any) -> None:
        m = masks.detach().cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
        if m.ndim == 2:
            m = m[None]
        if m.shape[1:] != (self._h, self._w):
            raise ValueError(f"{self.name}: masks of {m.shape[2]}x{m.shape[1]} added to {self._w}x{self._h}")
        if m.dtype == np.bool_:
            on = m
        elif m.dtype == np.uint8:  # 0 / 255 masks (on >= 128); a 0 / 1 mask is taken as it is
            on = m >= 128 if m.size and m.max() > 1 else m > 0
        else:
            on = m >= 0.5
        for frame in on:
            self._frames.append(zlib.compress(np.packbits(frame, axis=None).tobytes(), 1))
            self._empty.append(not frame.any())

    @property
    def num_frames(self) -> int:
        return len(self._frames)

    @property
    def nbytes(self) -> int:
        return sum(len(b) for b in self._frames)

    def empty_frames(self) -> list[int]:
        """Indices of frames whose mask is all off."""
        return [i for i, e in enumerate(self._empty) if e]

    def bool_frame(self, i: int) -> np.ndarray:
        bits = np.frombuffer(zlib.decompress(self._frames[i]), np.uint8)
        return np.unpackbits(bits, count=self._w * self._h).reshape(self._h, self._w).astype(bool)

    def get(self, indices: Sequence[int]) -> np.ndarray:
        idx = _indices(indices)
        out = np.empty((len(idx), self._h, self._w), np.uint8)
        for k, i in enumerate(idx):
            out[k] = self.bool_frame(int(i))
            out[k] *= 255
        return out

    def iter_chunks(self, chunk: int = 32) -> Iterator[np.ndarray]:
        chunk = max(1, int(chunk))
        for s in range(0, self.num_frames, chunk):
            yield self.get(range(s, min(s + chunk, self.num_frames)))


# ----------------------------------------------------------------------------- streams

class _Stream(_Frames):
    """A source read in one forward pass (``_new_pass``); ``get`` keeps a sliding window of frames."""

    _window: list[np.ndarray]

    def _new_pass(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def _restart(self) -> None:
        self._it = iter(self._new_pass())
        self._window = []
        self._base = 0  # frame index of self._window[0]
        self._ended = False

    def get(self, indices: Sequence[int]) -> np.ndarray:
        idx = _indices(indices)
        if not len(idx):
            return self.empty()
        lo, hi = int(idx.min()), int(idx.max()) + 1
        if not hasattr(self, "_it") or lo < self._base:
            self._restart()
        while True:  # frames before ``lo`` are dropped as the pass goes, so only the window is held
            drop = min(lo - self._base, len(self._window))
            if drop > 0:
                del self._window[:drop]
                self._base += drop
            if self._base + len(self._window) >= hi or self._ended:
                break
            try:
                self._window.extend(list(next(self._it)))
            except StopIteration:
                self._ended = True
        have = self._base + len(self._window)
        if have < hi:
            if not self._window:
                raise ValueError(f"video '{self.name}' has no frame {lo} (it decodes to {have} frames)")
            log.warning("Wan-Animate Kit: video '%s' decodes to %d frames but reports %d; repeating its last frame",
                        self.name, have, self.num_frames)
            idx = np.minimum(idx, have - 1)
        return np.stack([self._window[i - self._base] for i in idx])

    def release(self) -> None:
        """Drop the window and the open pass (a later ``get`` starts a new one)."""
        for attr in ("_it", "_window"):
            if hasattr(self, attr):
                delattr(self, attr)


class RecipeFrames(_Stream):
    """Frames made on demand: ``chunks()`` starts a fresh pass and yields uint8 chunks in order,
    ``num_frames`` frames of ``width`` x ``height`` in all (masks: [k, H, W] with ``is_mask``)."""

    def __init__(self, chunks: Callable[[], Iterator[np.ndarray]], num_frames: int, width: int, height: int,
                 fps: float = 0.0, name: str = "frames", is_mask: bool = False):
        if int(num_frames) < 1:
            raise ValueError("a video needs at least one frame")
        self._chunks = chunks
        self._n, self._w, self._h = int(num_frames), int(width), int(height)
        self._fps = float(fps or 0.0)
        self.name = name
        self.is_mask = bool(is_mask)

    @property
    def num_frames(self) -> int:
        return self._n

    def _new_pass(self) -> Iterator[np.ndarray]:
        return self.iter_chunks()

    def iter_chunks(self, chunk: int | None = None) -> Iterator[np.ndarray]:
        """The frames in order, in the recipe's own chunk sizes (``chunk`` is only a hint)."""
        made = 0
        shape = self.frame_shape()
        for part in self._chunks():
            if part.ndim != len(shape) + 1 or part.shape[1:] != shape or part.dtype != np.uint8:
                raise RuntimeError(f"{self.name}: frames {made}.. came out {part.dtype} {part.shape}")  # a bug
            made += len(part)
            yield part
        if made != self._n:
            raise RuntimeError(f"{self.name}: the recipe made {made} frames, {self._n} expected")


class FileFrames(_Stream):
    """A video file decoded with PyAV, RGB24. ``opener()`` returns what ``av.open`` takes (a path or a
    binary file object, rewound here). ``error(problem, fix)`` builds the exception raised for a file
    that cannot be read (the node layer makes it name its input); ``num_frames`` is counted by
    decoding when not given."""

    def __init__(self, opener: Callable[[], Any], width: int, height: int, fps: float = 0.0,
                 num_frames: int | None = None, name: str = "video",
                 error: Callable[[str, str], Exception] | None = None):
        self._opener = opener
        self._w, self._h = int(width), int(height)
        self._fps = float(fps or 0.0)
        self._count = int(num_frames) if num_frames else None
        self.name = name
        self._error = error or (lambda problem, fix: ValueError(f"{name}: {problem} -> {fix}"))

    def set_geometry(self, width: int, height: int, fps: float = 0.0, num_frames: int | None = None) -> None:
        """Size, rate and frame count read from the container by the caller (after :meth:`probe`)."""
        self._w, self._h, self._fps = int(width), int(height), float(fps or 0.0)
        self._count = int(num_frames) if num_frames else None

    FIX = "check the file (an incomplete download or upload?), re-export it as an .mp4 (H.264) or load another video"

    def unreadable(self, problem: str) -> Exception:
        return self._error(problem, self.FIX)

    def _open(self):
        import av

        source = self._opener()
        if hasattr(source, "seek"):
            source.seek(0)
        return av.open(source, mode="r")

    def probe(self) -> None:
        """Decode the first frame, so a file without a video track, a truncated one or random bytes is
        a clear error before any work."""
        try:
            with self._open() as container:
                if not container.streams.video:
                    raise _Unreadable("the file has no video stream (only sound or data)")
                if next(iter(container.decode(container.streams.video[0])), None) is None:
                    raise _Unreadable("the file's video stream has no frame that can be decoded")
        except _Unreadable as e:
            raise self.unreadable(str(e)) from None
        except Exception as e:  # av.error.* (InvalidDataError, ...), OSError
            raise self.unreadable(f"could not be read as a video ({_first_line(e)})") from e

    @property
    def num_frames(self) -> int:
        if self._count is None:
            self._count = sum(len(c) for c in self.iter_chunks(64))
        return self._count

    def _new_pass(self) -> Iterator[np.ndarray]:
        return self.iter_chunks(chunk_frames(self._w, self._h, 16))

    def iter_chunks(self, chunk: int = 32) -> Iterator[np.ndarray]:
        chunk = max(1, int(chunk))
        try:
            with self._open() as container:
                if not container.streams.video:
                    raise _Unreadable("the file has no video stream (only sound or data)")
                buf, k = None, 0  # frames go straight into the chunk (no list of frames plus its stacked copy)
                for frame in container.decode(container.streams.video[0]):
                    rgb = frame.to_ndarray(format="rgb24")
                    if buf is None:
                        buf = np.empty((chunk, *rgb.shape), np.uint8)
                    buf[k] = rgb
                    k += 1
                    if k == chunk:
                        yield buf
                        buf, k = None, 0
                if k:
                    yield buf[:k]
        except _Unreadable as e:
            raise self.unreadable(str(e)) from None
        except Exception as e:  # av.error.* (damaged data further into the file), OSError
            raise self.unreadable(f"could not be decoded to the end ({_first_line(e)})") from e


class _Unreadable(Exception):
    pass


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


# ----------------------------------------------------------------------------- helpers

def as_source(value: Any, name: str = "frames", repeat_single: bool = False, length: int | None = None,
              fps: float = 0.0) -> FrameSource:
    """``value`` as a frame source: a source passes through; an IMAGE / MASK tensor or a numpy array
    becomes :class:`ArrayFrames`."""
    if is_source(value):
        if repeat_single and value.num_frames == 1 and length and length > 1:
            return ArrayFrames(value.get([0]), value.fps, value.name, repeat_single=True, length=length)
        return value
    return ArrayFrames(value, fps, name, repeat_single=repeat_single, length=length)


def map_chunks(source: FrameSource, fn: Callable[[np.ndarray, int], np.ndarray], width: int | None = None,
               height: int | None = None, is_mask: bool | None = None, name: str | None = None,
               chunk: int = 16) -> RecipeFrames:
    """A recipe that applies ``fn(chunk, first_index)`` to every chunk of ``source``."""
    w, h = source.size

    def chunks():
        pos = 0
        for part in source.iter_chunks(chunk):
            yield fn(part, pos)
            pos += len(part)

    return RecipeFrames(chunks, source.num_frames, width or w, height or h, source.fps, name or source.name,
                        source.is_mask if is_mask is None else is_mask)


#: Bytes of uint8 frames one chunk of a pass may hold (see :func:`chunk_frames`).
CHUNK_BYTES = 24 * 2 ** 20


def chunk_frames(width: int, height: int, most: int = 32, channels: int = 3, budget: int = CHUNK_BYTES) -> int:
    """Frames per chunk of a pass over ``width`` x ``height`` frames: at most ``most``, and only as many
    as fit in ``budget`` bytes (at least one): 9 frames of 1280x720 RGB, 32 face crops of 512x512. Every
    chunk of a recipe stays alive while the chunks above and below it in the pipeline are made, so its
    size, not the video's length, sets what a pass holds."""
    per_frame = max(1, int(width) * int(height) * int(channels))
    return max(1, min(int(most), int(budget) // per_frame))


def preview_size(width: int, height: int, max_side: int = 384) -> tuple[float, int, int]:
    """(scale, width, height) of a preview no larger than ``max_side``."""
    s = min(1.0, max_side / max(width, height))
    return s, max(2, int(round(width * s))), max(2, int(round(height * s)))


def held_float(source: FrameSource, indices: Sequence[int], chunk: int = 8) -> Callable[[Sequence[int]], torch.Tensor]:
    """A reader of the frames ``indices`` by position: ``reader(positions)`` gives
    ``source.get_float([indices[p] for p in positions])``, for work that reads them in an order of
    its own (a segment's mirrored padding) or more than once. An in-memory source is read on demand.
    A source read forward (a recipe, a file) is read now, each distinct frame once in ascending order
    ``chunk`` frames at a time, so its pass never restarts, and its uint8 frames are kept: a quarter
    of their float size, and ``to_float`` of them is exactly what its ``get_float`` gives."""
    idx = np.asarray(list(indices), np.int64).reshape(-1)
    if not isinstance(source, _Stream):
        return lambda positions: source.get_float(idx[np.asarray(list(positions), np.int64)])
    uniq, inverse = np.unique(idx, return_inverse=True)
    data = np.empty((len(uniq), *source.frame_shape()), np.uint8)
    step = max(1, int(chunk))
    for s in range(0, len(uniq), step):
        data[s:s + step] = source.get(uniq[s:s + step])
    return lambda positions: to_float(data[inverse[np.asarray(list(positions), np.int64)]])


def gather_float(source: FrameSource, indices: Sequence[int], fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 chunk: int = 8) -> torch.Tensor:
    """``fn(source.get_float(...))`` for the frames ``indices`` (repeats and any order allowed), in the
    order of ``indices``. Every distinct frame is read once, in ascending order and ``chunk`` frames at
    a time, so a forward source never restarts (mirrored padding included) and only ``chunk`` frames
    exist as float before ``fn`` (e.g. a resize) makes them small. ``fn`` must work frame by frame."""
    idx = np.asarray(list(indices), np.int64).reshape(-1)
    uniq, inverse = np.unique(idx, return_inverse=True)
    out = None
    for s in range(0, len(uniq), max(1, int(chunk))):
        part = source.get_float(uniq[s:s + chunk])
        if fn is not None:
            part = fn(part)
        if out is None:
            out = part.new_empty((len(idx),) + tuple(part.shape[1:]))
        pos = np.flatnonzero((inverse >= s) & (inverse < s + len(part)))
        out[torch.from_numpy(pos)] = part[torch.from_numpy(inverse[pos] - s)]
    if out is None:
        raise ValueError("no frames asked for")
    return out
