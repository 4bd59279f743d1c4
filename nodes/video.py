"""Video helpers that never decode the frames: fps, size, frame count and the audio track."""
from __future__ import annotations

import numpy as np
import torch
from comfy_api.latest import io

from .common import CATEGORY, PREFIX, InputError, _streams_from_a_file, source_of


def decode_audio(source) -> dict | None:
    """The first audio stream of a file or BytesIO as the host's AUDIO dict, or None."""
    import av

    if hasattr(source, "seek"):
        source.seek(0)
    with av.open(source, mode="r") as container:
        streams = [s for s in container.streams if s.type == "audio"]
        if not streams:
            return None
        stream = streams[0]
        chunks = [frame.to_ndarray() for packet in container.demux(stream) for frame in packet.decode()]
        if not chunks:
            return None
        data = np.concatenate([c if c.ndim == 2 else c[None] for c in chunks], axis=1)
        if data.dtype.kind == "i":
            data = data.astype(np.float32) / float(np.iinfo(data.dtype).max)
        return {"waveform": torch.from_numpy(data.astype(np.float32)).unsqueeze(0),
                "sample_rate": int(stream.sample_rate or 1)}


class VideoInfo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "VideoInfo",
            display_name="Video Info (fps, audio)",
            category=CATEGORY + "/video",
            description="Frame rate, size, frame count and audio of a VIDEO without decoding its frames (unlike "
                        "Get Video Components, which loads every frame into memory).",
            inputs=[io.Video.Input("video", tooltip="The driving video (Load Video).")],
            outputs=[
                io.Float.Output(display_name="fps"),
                io.Audio.Output(display_name="audio", tooltip="The audio track (nothing when the video "
                                                              "has none)."),
                io.Int.Output(display_name="frames"),
                io.Int.Output(display_name="width"),
                io.Int.Output(display_name="height"),
            ],
        )

    @classmethod
    def execute(cls, video):
        src = source_of(video, "video", "Video Info")  # a file without a readable video track stops here
        source = None
        if _streams_from_a_file(video):  # an in-memory VIDEO is not encoded to a file just to read its audio
            try:
                source = video.get_stream_source()
            except Exception:
                source = None
        try:
            audio = decode_audio(source) if source is not None else video.get_components().audio
        except Exception as e:  # a damaged sound track (the video track was checked above)
            raise InputError("Video Info", "video", f"its sound track could not be decoded ({str(e)[:200]})",
                             "re-export the file, or remove its sound") from e
        w, h = src.size
        if src.num_frames <= 0:
            raise InputError("Video Info", "video", "has no frames")
        return io.NodeOutput(src.fps, audio, src.num_frames, w, h)


NODES = [VideoInfo]
