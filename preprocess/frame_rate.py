"""The driving video's frame rate as the official preprocessing sets it: index arithmetic only.

Before any pose, face or mask work, the official preprocessing (official:
wan/modules/animate/preprocess/process_pipepline.py, ``ProcessPipeline.__call__``) reads the
driving video with decord and keeps a subset (or repeats) of its frames so that the clip plays at
``fps`` (``--fps`` of preprocess_data.py, an int, default 30; ``-1`` = the video's own rate). The
results are written at that rate and the generated video at ``sample_fps`` = 30
(official: wan/configs/wan_animate_14B.py).

The rule, in float64 exactly as the official code evaluates it:

* ``frame_num`` = the number of video packets decord indexed (``len(VideoReader)``), and
  ``video_fps`` = the stream's average frame rate (``get_avg_fps``, num/den as a double);
* a sanity check on broken metadata: ``expected = int(end * video_fps + 0.5)`` where ``end`` is the
  end time (seconds, float32 as decord stores it) of the last frame in presentation order; when
  ``|frame_num - expected| / frame_num > 0.1``, ``frame_num = expected`` (:func:`official_frame_num`);
* ``target_num = int(frame_num / video_fps * fps)`` (:func:`official_target_count`; the float
  arithmetic can drop one frame even when ``fps == video_fps``: 123 frames at 30 fps give 122);
* output frame ``i`` shows source frame ``round(i / fps * video_fps)``, rounded half to even as
  ``np.round`` does, clipped to ``[0, frame_num - 1]`` (:func:`official_frame_indices`; official:
  wan/modules/animate/preprocess/utils.py, ``get_frame_indices``, with start frame 0).

:func:`pick_frames` then streams the chosen frames out of a chunked decode, so no whole video is
ever held in memory.
"""
from __future__ import annotations

import math
from typing import Iterable, Iterator

import numpy as np

OFFICIAL_FPS = 30  # preprocess_data.py --fps default, and the config's sample_fps
MISMATCH = 0.1  # the official tolerance between the packet count and the count the duration implies


def _check_rate(value: float, what: str) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be a positive frame rate, got {value}")
    return value


def official_frame_num(packet_count: int, video_fps: float, end_seconds: float | None = None) -> int:
    """The frame count the official preprocessing works with.

    ``packet_count`` is decord's ``len()`` (the video packets of the stream); ``end_seconds`` the end
    time of the last frame in presentation order (``get_frame_timestamp(-1)[-1]``), or None when it
    is unknown (an in-memory video: the count is then taken as it is). When the count the duration
    implies differs by more than 10 %, the official code trusts the duration instead.
    """
    count = int(packet_count)
    if count < 1:
        raise ValueError(f"the video has no frames (packet count {count})")
    if end_seconds is None:
        return count
    rate = _check_rate(video_fps, "video_fps")
    # decord hands the timestamps out as float32; numpy < 2 (the official requirement) then multiplies
    # the float32 scalar by the Python float in double precision
    end = float(np.float32(end_seconds))
    implied = int(end * rate + 0.5)
    if abs((count - implied) / count) > MISMATCH:
        return implied
    return count


def official_target_count(frame_num: int, video_fps: float, fps: float) -> int:
    """How many frames the clip has at ``fps``: ``int(frame_num / video_fps * fps)``, float64,
    evaluated left to right as the official code does. ``fps == -1`` means the source rate."""
    video_fps = _check_rate(video_fps, "video_fps")
    fps = video_fps if fps == -1 else _check_rate(fps, "fps")
    quotient = float(int(frame_num)) / video_fps
    return int(quotient * fps)


def official_frame_indices(frame_num: int, video_fps: float, count: int, fps: float) -> np.ndarray:
    """Source frame of each of the ``count`` output frames (int64, non-decreasing).

    Output time ``i / fps`` is converted to a source position ``* video_fps``, rounded half to
    even (``np.rint`` = ``np.round``) and clipped into the ``frame_num`` frames, so a list longer
    than the source allows ends on repeats of the last frame. ``fps == -1`` means the source rate.
    """
    video_fps = _check_rate(video_fps, "video_fps")
    fps = video_fps if fps == -1 else _check_rate(fps, "fps")
    if int(frame_num) < 1:
        raise ValueError(f"frame_num must be at least 1, got {frame_num}")
    count = max(int(count), 0)
    seconds = np.arange(count, dtype=np.int64) / fps  # true division in float64, element by element
    positions = np.rint(seconds * video_fps).astype(np.int64)
    return np.minimum(np.maximum(positions, 0), int(frame_num) - 1)


def official_resample(frame_num: int, video_fps: float, fps: float) -> np.ndarray:
    """The source indices of the official clip at ``fps`` (``-1``: the source rate, the official way)."""
    count = official_target_count(frame_num, video_fps, fps)
    return official_frame_indices(frame_num, video_fps, count, fps)


def pick_frames(chunks: Iterable[np.ndarray], indices, chunk: int = 32) -> Iterator[np.ndarray]:
    """Stream the frames ``indices`` (non-decreasing source positions, repeats allowed) out of
    ``chunks`` (uint8 [k, H, W, C] in order) as stacked chunks of up to ``chunk`` frames.

    Reading stops as soon as the last wanted frame has been seen. When the source ends before a
    wanted position (its metadata promised more frames than it decodes), the last decoded frame
    stands in for the rest: the count of frames handed out is always ``len(indices)``. Returns the
    number of such stand-ins as the generator's value (``StopIteration.value``).
    """
    wanted = np.asarray(indices, dtype=np.int64).reshape(-1)
    if wanted.size and (wanted[0] < 0 or np.any(np.diff(wanted) < 0)):
        raise ValueError("indices must be non-negative and non-decreasing")
    chunk = max(int(chunk), 1)
    out: list[np.ndarray] = []
    nxt = 0  # the next entry of ``wanted`` to serve
    start = 0  # source position of the first frame of the current chunk
    last = None
    iterator = iter(chunks)
    try:
        while nxt < wanted.size:
            try:
                part = next(iterator)
            except StopIteration:
                break
            stop = start + len(part)
            while nxt < wanted.size and wanted[nxt] < stop:
                out.append(part[wanted[nxt] - start])
                nxt += 1
                if len(out) == chunk:
                    yield np.stack(out)
                    out = []
            if len(part):
                last = part[-1]
            start = stop
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()  # e.g. a decoder generator: its file is closed now, not at garbage collection
    missing = int(wanted.size - nxt)
    if missing:
        if last is None:
            raise ValueError("the source video produced no frames")
        for _ in range(missing):
            out.append(last)
            if len(out) == chunk:
                yield np.stack(out)
                out = []
    if out:
        yield np.stack(out)
    return missing
