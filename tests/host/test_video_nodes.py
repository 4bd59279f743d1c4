"""Video info node on a real file written by the test (with an audio track)."""

import numpy as np
import pytest

pytestmark = pytest.mark.host


def write_video(path, frames=12, fps=10, size=(64, 48), audio=True):
    import av

    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
        if audio:
            aus = out.add_stream("aac", rate=16000)
            aus.layout = "mono"
        for i in range(frames):
            img = np.full((size[1], size[0], 3), (i * 20) % 255, np.uint8)
            for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        if audio:
            t = np.arange(int(16000 * frames / fps)) / 16000
            samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate = 16000
            for p in aus.encode(frame):
                out.mux(p)
            for p in aus.encode(None):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    return path


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
