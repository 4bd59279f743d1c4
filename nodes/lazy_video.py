"""The host's VIDEO over one of the pack's frame sources (preprocess.frames).

Skeleton frames are drawn from a few numbers per frame, face crops are cut from the driving video,
the environment video is the driving video with the character blacked out: none of them needs to
exist as a whole. :class:`LazyVideo` keeps the source (usually a recipe) and the pack's own nodes
read that source directly (``nodes.common.source_of``), so the sampler pulls exactly the frames of
the segment it is working on. The host's own nodes see an ordinary VIDEO: ``get_components`` builds
the whole float batch (as any in-memory VIDEO does) and ``save_to`` streams the frames into an
H.264 mp4 without holding them.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Iterator

import numpy as np
import torch
from comfy_api.latest import Input, Types

from ..preprocess.frames import FrameSource, to_float
from ..preprocess.video_file import VideoFileWriter, frame_rate


class LazyVideo(Input.Video):
    """The host's VIDEO interface over ``source`` (RGB frames), at ``fps`` (default: the source's)."""

    def __init__(self, source: FrameSource, fps: float | None = None, audio: dict | None = None):
        if source.is_mask:
            raise ValueError("a VIDEO needs RGB frames, not masks")
        if source.num_frames < 1:
            raise ValueError("a video needs at least one frame")
        self.source = source
        self.width, self.height = source.size
        self.num_frames = source.num_frames
        self.rate = frame_rate(fps or source.fps or 30.0)
        self.audio = audio

    def iter_chunks(self, chunk: int = 16) -> Iterator[np.ndarray]:
        return self.source.iter_chunks(chunk)

    # -- the host's VIDEO interface ------------------------------------------------------
    def get_components(self) -> Types.VideoComponents:
        images = torch.empty((self.num_frames, self.height, self.width, 3), dtype=torch.float32)
        pos = 0
        for part in self.source.iter_chunks(16):
            images[pos:pos + len(part)] = to_float(part)
            pos += len(part)
        return Types.VideoComponents(images=images, frame_rate=self.rate, audio=self.audio)

    def save_to(self, path, format=Types.VideoContainer.AUTO, codec=Types.VideoCodec.AUTO, metadata=None):
        if format not in (Types.VideoContainer.AUTO, Types.VideoContainer.MP4, "auto", "mp4"):
            raise ValueError("Only MP4 format is supported for this video")
        if codec not in (Types.VideoCodec.AUTO, Types.VideoCodec.H264, "auto", "h264"):
            raise ValueError("Only H264 codec is supported for this video")
        writer = VideoFileWriter(path, float(self.rate), self.width, self.height, audio=self.audio, metadata=metadata)
        try:
            for part in self.source.iter_chunks(16):
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


def recipe_video(chunks, num_frames: int, width: int, height: int, fps: float, audio: dict | None = None,
                 name: str = "video") -> LazyVideo:
    """A VIDEO whose RGB frames ``chunks()`` makes on demand (see preprocess.frames.RecipeFrames)."""
    from ..preprocess.frames import RecipeFrames

    return LazyVideo(RecipeFrames(chunks, num_frames, width, height, fps, name), fps, audio)
