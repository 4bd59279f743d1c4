"""The streaming video file writer behind the sampler's flat-memory VIDEO output."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from media import ramp
from wan_animate_kit.preprocess.video_file import VideoFileWriter, audio_array, frame_rate


def _read(path):
    import av

    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(vs)])
        rate = vs.average_rate
        codec = vs.codec_context.name
    audio = None
    with av.open(str(path)) as c:
        if c.streams.audio:
            a = c.streams.audio[0]
            chunks = [f.to_ndarray() for f in c.decode(a)]
            audio = (np.concatenate(chunks, axis=1), a.rate, a.channels)
    return frames, rate, codec, audio


def test_chunks_in_order_make_one_video_at_the_rate(tmp_path):
    video = ramp(23, 32, 16, start=10, step=10)
    w = VideoFileWriter(str(tmp_path / "sub" / "v.mp4"), 29.97, 32, 16)
    for lo, hi in ((0, 9), (9, 9), (9, 17), (17, 23)):  # an empty chunk is fine
        w.write(video[lo:hi])
    path = w.close()
    frames, rate, codec, audio = _read(path)
    assert codec == "h264" and audio is None
    assert rate == Fraction(30000, 1001) and len(frames) == 23 == w.frames
    assert np.abs(frames.astype(int) - video.astype(int)).max() <= 3  # crf 14: near-transparent


def test_audio_is_cut_to_the_video_length(tmp_path):
    import torch

    sr = 16000
    t = np.arange(sr * 3) / sr  # 3 s of stereo audio for a 1 s video
    wave = torch.from_numpy(np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 220 * t)]) * 0.3).float()
    w = VideoFileWriter(str(tmp_path / "a.mp4"), 12, 16, 16, audio={"waveform": wave[None], "sample_rate": sr})
    w.write(ramp(12, 16, 16))
    _, _, _, audio = _read(w.close())
    samples, rate, channels = audio
    assert rate == sr and channels == 2
    assert abs(samples.shape[1] - sr) <= 2048  # one second, within AAC's priming and frame padding


def test_bad_inputs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="even"):
        VideoFileWriter(str(tmp_path / "x.mp4"), 24, 15, 16)
    with pytest.raises(ValueError, match="positive"):
        frame_rate(0)
    with pytest.raises(ValueError, match="waveform"):
        audio_array({"sample_rate": 8000})
    with pytest.raises(ValueError, match="batch, channels, samples"):
        audio_array({"waveform": np.zeros(5, np.float32), "sample_rate": 8000})
    w = VideoFileWriter(str(tmp_path / "y.mp4"), 24, 16, 16)
    with pytest.raises(ValueError, match="uint8"):
        w.write(np.zeros((2, 16, 18, 3), np.uint8))
    w.abort()
    assert not (tmp_path / "y.mp4").exists()


@pytest.mark.parametrize("fps,rate", [(24, Fraction(24)), (12.5, Fraction(25, 2)), (29.97, Fraction(30000, 1001)),
                                      (float(Fraction(24000, 1001)), Fraction(24000, 1001)), (59.94, Fraction(60000, 1001)),
                                      (16, Fraction(16))])
def test_frame_rates(fps, rate):
    assert frame_rate(fps) == rate
