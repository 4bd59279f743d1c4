"""A video file written frame chunk by frame chunk, for VIDEO outputs that never sit whole in memory.

H.264 (libx264, yuv420p, the pixel format every player takes) in an .mp4, at a constant rate
factor well below x264's default 23, so the host's SaveVideo can copy the stream unchanged
(``VideoFromFile.save_to`` remuxes when container and codec already match) instead of decoding
and encoding it a second time. The optional AUDIO is cut to the video's duration and muxed as
AAC when the file is closed.
"""
from __future__ import annotations

import json
import math
import os
from fractions import Fraction
from typing import Any

import numpy as np

CRF = 14  # x264 constant rate factor: 0 lossless, 23 default; 14 is visually transparent


def frame_rate(fps: float) -> Fraction:
    """A rational rate for the container: 24 -> 24, 12.5 -> 25/2, 29.97 -> 30000/1001 (NTSC)."""
    fps = float(fps)
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    ntsc = Fraction(round(fps * 1.001) * 1000, 1001)  # an integer rate slowed by 1000/1001
    if ntsc.denominator != 1 and abs(float(ntsc) - fps) < 1e-3:
        return ntsc
    return Fraction(fps).limit_denominator(100000)


class VideoFileWriter:
    """``write(uint8 [k, H, W, 3])`` as often as needed, then ``close(audio)``.

    ``path`` is a file name or a writable binary stream (e.g. ``io.BytesIO``); ``metadata`` (the
    host's prompt and workflow, from SaveVideo) goes into the mp4's tags. width and height must be
    even (yuv420p); a failed job calls ``abort()``, which removes a partial file.
    """

    def __init__(self, path, fps: float, width: int, height: int, audio: dict | None = None,
                 crf: int = CRF, metadata: dict | None = None):
        import av

        if width % 2 or height % 2:
            raise ValueError(f"an H.264 video needs an even width and height, got {width}x{height}")
        self.path = path if not isinstance(path, (str, os.PathLike)) else str(path)
        self.rate = frame_rate(fps)
        self.size = (int(width), int(height))
        self.frames = 0
        options = {"movflags": "use_metadata_tags"}  # keeps custom tags (prompt, workflow) in an mp4
        if isinstance(self.path, str):
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            self._out = av.open(self.path, mode="w", options=options)
        else:
            self._out = av.open(self.path, mode="w", format="mp4", options=options)
        for key, value in (metadata or {}).items():
            self._out.metadata[key] = value if isinstance(value, str) else json.dumps(value)
        self._video = self._out.add_stream("libx264", rate=self.rate)
        self._video.width, self._video.height = self.size
        self._video.pix_fmt = "yuv420p"
        self._video.options = {"crf": str(int(crf))}
        self._audio = None
        self._wave: np.ndarray | None = None
        if audio is not None:
            wave, sr = audio_array(audio)
            if wave.shape[1]:
                self._audio = self._out.add_stream("aac", rate=sr)
                self._audio.layout = "mono" if wave.shape[0] == 1 else "stereo"
                self._wave, self._sr = wave, sr

    def write(self, frames: np.ndarray) -> None:
        import av

        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[1:] != (self.size[1], self.size[0], 3) or frames.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 [k, {self.size[1]}, {self.size[0]}, 3], "
                             f"got {frames.dtype} {frames.shape}")
        for img in frames:
            for packet in self._video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                self._out.mux(packet)
            self.frames += 1

    def close(self) -> str:
        """Flush the video, mux the audio (cut to the video's duration) and close the file."""
        import av

        for packet in self._video.encode(None):
            self._out.mux(packet)
        if self._audio is not None and self.frames:
            keep = math.ceil(self._sr * self.frames / self.rate)
            wave = np.ascontiguousarray(self._wave[:, :keep])
            frame = av.AudioFrame.from_ndarray(wave, format="fltp", layout=self._audio.layout.name)
            frame.sample_rate = self._sr
            frame.pts = 0
            for packet in self._audio.encode(frame):
                self._out.mux(packet)
            for packet in self._audio.encode(None):
                self._out.mux(packet)
        self._out.close()
        return self.path

    def abort(self) -> None:
        try:
            self._out.close()
        except Exception:
            pass
        if isinstance(self.path, str):
            try:
                os.remove(self.path)
            except OSError:
                pass


def audio_array(audio: Any) -> tuple[np.ndarray, int]:
    """The host's AUDIO ({"waveform": [B, C, S], "sample_rate"}) -> float32 [C<=2, S] of its first
    item (more than two channels keep the first two), and the sample rate."""
    try:
        wave, sr = audio["waveform"], int(audio["sample_rate"])
    except (TypeError, KeyError) as e:
        raise ValueError(f"audio must be the host's AUDIO (waveform + sample_rate): {e}") from None
    wave = wave.detach().float().cpu().numpy() if hasattr(wave, "detach") else np.asarray(wave, np.float32)
    if wave.ndim == 3:
        wave = wave[0]
    if wave.ndim != 2 or sr <= 0:
        raise ValueError(f"audio waveform must be [batch, channels, samples], got shape {wave.shape}")
    return np.ascontiguousarray(wave[:2], dtype=np.float32), sr
