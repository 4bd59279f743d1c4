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
