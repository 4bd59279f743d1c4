"""A VIDEO whose frames are made on demand, a chunk at a time.

Skeleton frames are drawn from a few numbers per frame and face crops are cut from the driving
video, so neither needs to exist as a whole: :class:`ChunkVideo` keeps only the recipe and hands
out uint8 chunks (``iter_chunks``), which the pack's nodes read directly (``VideoSource``), so the
sampler pulls exactly the frames of the segment it is working on. The host's own nodes see an
ordinary VIDEO: ``get_components`` builds the whole float batch (as any in-memory VIDEO does) and
``save_to`` streams the frames into an H.264 mp4 without holding them.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Callable, Iterator

import numpy as np
import torch
from comfy_api.latest import Input, Types

from .video_file import VideoFileWriter, frame_rate


class ChunkVideo(Input.Video):
    """``chunks()`` starts a fresh pass over the video and yields uint8 [k, height, width, 3] chunks
    in order, ``num_frames`` frames in all, at ``fps``."""

    def __init__(self, chunks: Callable[[], Iterator[np.ndarray]], num_frames: int, width: int, height: int,
                 fps: float, audio: dict | None = None):
        if num_frames < 1:
            raise ValueError("a video needs at least one frame")
        self._chunks = chunks
        self.num_frames, self.width, self.height = int(num_frames), int(width), int(height)
        self.rate = frame_rate(fps)
        self.audio = audio

    def iter_chunks(self, chunk: int | None = None) -> Iterator[np.ndarray]:
        """The frames in order, in the recipe's own chunk sizes (``chunk`` is only a hint)."""
        made = 0
        for part in self._chunks():
            if part.ndim != 4 or part.shape[1:] != (self.height, self.width, 3) or part.dtype != np.uint8:
                raise RuntimeError(f"frames {made}.. came out {part.dtype} {part.shape}")  # a bug, not user input
            made += len(part)
            yield part
        if made != self.num_frames:
            raise RuntimeError(f"the video made {made} frames, {self.num_frames} expected")

    # -- the host's VIDEO interface ------------------------------------------------------
    def get_components(self) -> Types.VideoComponents:
        images = torch.empty((self.num_frames, self.height, self.width, 3), dtype=torch.float32)
        pos = 0
        for part in self.iter_chunks():
            images[pos:pos + len(part)] = torch.from_numpy(part).float().div_(255.0)
            pos += len(part)
        return Types.VideoComponents(images=images, frame_rate=self.rate, audio=self.audio)

    def save_to(self, path, format=Types.VideoContainer.AUTO, codec=Types.VideoCodec.AUTO, metadata=None):
        if format not in (Types.VideoContainer.AUTO, Types.VideoContainer.MP4, "auto", "mp4"):
            raise ValueError("Only MP4 format is supported for this video")
        if codec not in (Types.VideoCodec.AUTO, Types.VideoCodec.H264, "auto", "h264"):
            raise ValueError("Only H264 codec is supported for this video")
        writer = VideoFileWriter(path, float(self.rate), self.width, self.height, audio=self.audio, metadata=metadata)
        try:
            for part in self.iter_chunks():
                writer.write(part)
        except BaseException:
            writer.abort()
            raise
        writer.close()

    def get_dimensions(self) -> tuple[int, int]:
        return self.width, self.height

    def get_frame_count(self) -> int:
        return self.num_frames

    def get_frame_rate(self) -> Fraction:
        return self.rate

    def get_duration(self) -> float:
        return float(self.num_frames / self.rate)

    def get_container_format(self) -> str:
        return "mp4"
