"""Media the tests write themselves (never ../shared/media)."""
from __future__ import annotations

import pathlib

import numpy as np


def write_mp4(path, frames, fps: int, audio_hz: float | None = None, crf: int | None = None,
              amplitude: float = 0.3, options: dict | None = None) -> pathlib.Path:
    """An H.264 mp4 of uint8 RGB ``frames`` (an array [T, H, W, 3] or any iterable of [H, W, 3]
    frames, encoded one at a time) at ``fps``; with ``audio_hz`` also a mono 16 kHz AAC sine track as
    long as the video. ``crf=0`` makes the video lossless; ``options`` go to libx264 as well."""
    import av

    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        opts = dict(options or {})
        if crf is not None:
            opts["crf"] = str(crf)
        aus = None
        if audio_hz:
            aus = out.add_stream("aac", rate=16000)
            aus.layout = "mono"
        count = 0
        for img in frames:
            img = np.asarray(img, dtype=np.uint8)
            if count == 0:
                vs.width, vs.height, vs.pix_fmt = img.shape[1], img.shape[0], "yuv420p"
                if opts:
                    vs.options = opts
            for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
            count += 1
        for p in vs.encode(None):
            out.mux(p)
        if aus is not None:
            samples = 16000 * count // fps
            for start in range(0, samples, 16000):  # a second of sound at a time
                t = np.arange(start, min(samples, start + 16000)) / 16000
                wave = (amplitude * np.sin(2 * np.pi * audio_hz * t)).astype(np.float32)[None]
                frame = av.AudioFrame.from_ndarray(wave, format="fltp", layout="mono")
                frame.sample_rate = 16000
                for p in aus.encode(frame):
                    out.mux(p)
            for p in aus.encode(None):
                out.mux(p)
    return pathlib.Path(path)


def ramp(frames: int, width: int, height: int, start: int = 0, step: int = 20) -> np.ndarray:
    """Flat grey frames whose level rises by ``step`` per frame."""
    levels = (start + step * np.arange(frames)) % 256
    return np.broadcast_to(levels[:, None, None, None], (frames, height, width, 3)).astype(np.uint8)
