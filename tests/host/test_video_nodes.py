"""Video info node on a real file written by the test (with an audio track)."""

import pytest
from media import ramp, write_mp4

pytestmark = pytest.mark.host


def write_video(path, frames=12, fps=10, size=(64, 48), audio=True):
    return write_mp4(path, ramp(frames, *size), fps, audio_hz=440 if audio else None)


def test_video_info_reads_fps_size_frames_and_audio(host, tmp_path):
    from comfy_api.latest import InputImpl
    from wan_animate_kit.nodes.video import VideoInfo

    path = write_video(tmp_path / "clip.mp4")
    fps, audio, frames, w, h = VideoInfo.execute(video=InputImpl.VideoFromFile(str(path))).result
    assert fps == pytest.approx(10.0) and frames == 12 and (w, h) == (64, 48)
    assert audio["sample_rate"] == 16000 and audio["waveform"].shape[:2] == (1, 1)
    assert audio["waveform"].shape[2] > 16000  # about 1.2 s of sound
    silent = write_video(tmp_path / "silent.mp4", audio=False)
    assert VideoInfo.execute(video=InputImpl.VideoFromFile(str(silent))).result[1] is None


def test_video_info_never_encodes_an_in_memory_video(host, monkeypatch):
    """An in-memory VIDEO (Create Video, the pack's own videos) is read as it is: the host's
    get_stream_source would encode every frame to H.264 just to read the sound."""
    from fractions import Fraction

    import torch
    from comfy_api.latest import InputImpl, Types
    from wan_animate_kit.nodes.video import VideoInfo

    audio = {"waveform": torch.zeros(1, 1, 800), "sample_rate": 8000}
    video = InputImpl.VideoFromComponents(Types.VideoComponents(images=torch.rand(5, 32, 48, 3),
                                                                frame_rate=Fraction(25), audio=audio))
    base = next(c for c in type(video).__mro__ if c.__name__ == "VideoInput")  # the host's encoding fallback
    assert "get_stream_source" in base.__dict__
    encoded = []
    real = base.get_stream_source
    monkeypatch.setattr(base, "get_stream_source", lambda self, *a, **k: encoded.append(1) or real(self, *a, **k))
    fps, got, frames, w, h = VideoInfo.execute(video=video).result
    assert (fps, frames, w, h) == (25.0, 5, 48, 32) and got is audio
    assert encoded == []
