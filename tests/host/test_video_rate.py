"""Wan-Animate Driving Video (official 30 fps) in the real host, on clips the tests write.

Every source frame has its own grey level, so the frames that come out name the source frames
they were taken from; the expected source frames are computed here with the official formula
written out plainly (clip length int(n / src_fps * 30), frame i <- round(i / 30 * src_fps), clipped).
"""
from __future__ import annotations

import math
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from media import ramp, write_mp4

pytestmark = pytest.mark.host

W, H = 64, 48
STEP = 9  # grey levels 10, 19, 28, ...: distinct for up to 27 frames


def write_clip(path, n, fps, audio=True):
    """A lossless grey-ramp clip (frame k has level 10 + 9k mod 256) with a 440 Hz track."""
    return write_mp4(path, ramp(n, W, H, start=10, step=STEP), fps, audio_hz=440 if audio else None, crf=0)


def decode_all(path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def official_indices(n, src_fps, fps=30):
    count = int(n / src_fps * fps)
    return [min(max(round(i / fps * src_fps), 0), n - 1) for i in range(count)]


def level_index(frame: np.ndarray) -> int:
    """The source frame a decoded frame came from, by its grey level."""
    return int(round((float(frame.mean()) - 10) / STEP))


def run_all(video, fps=30.0, **inputs):
    """All six outputs: video, fps, frames, audio, width, height."""
    from wan_animate_kit.nodes.video_rate import DrivingVideo

    return DrivingVideo.execute(video=video, fps=fps, **inputs).result


def run(video, fps=30.0):
    """video, fps, frames, audio (resize_area left at its default, 0 = the source size)."""
    result = run_all(video, fps=fps)
    assert len(result) == 6 and tuple(result[4:]) == tuple(result[0].get_dimensions())
    return result[:4]


def read(video) -> np.ndarray:
    from wan_animate_kit.nodes.common import source_of

    parts = list(source_of(video, "video").iter_chunks(32))
    assert all(1 <= len(p) <= 32 for p in parts)
    return np.concatenate(parts)


@pytest.mark.parametrize("n,src_fps", [(19, 24), (25, 60), (27, 25), (23, Fraction(30000, 1001))])
def test_resampled_frames_are_the_official_source_frames(host, tmp_path, n, src_fps):
    from comfy_api.latest import InputImpl
    from wan_animate_kit.nodes.lazy_video import LazyVideo

    path = write_clip(tmp_path / "clip.mp4", n, src_fps)
    with av.open(str(path)) as c:
        assert c.streams.video[0].average_rate == src_fps
    video, fps, frames, audio = run(InputImpl.VideoFromFile(str(path)))
    want = official_indices(n, float(src_fps))
    assert isinstance(video, LazyVideo) and fps == 30.0 and frames == len(want)
    assert video.get_frame_count() == frames and video.get_frame_rate() == 30 and video.get_dimensions() == (W, H)
    got = read(video)
    assert [level_index(f) for f in got] == want  # the right source frames, in order
    assert np.array_equal(got, decode_all(path)[want])  # and exactly their decoded pixels
    # the same sound, cut at the end of the resampled clip (never stretched)
    full = InputImpl.VideoFromFile(str(path)).get_components().audio
    keep = math.ceil(16000 * frames / 30)
    assert audio["sample_rate"] == 16000 and audio["waveform"].shape[-1] == min(keep, full["waveform"].shape[-1])
    assert torch.equal(audio["waveform"], full["waveform"][..., :audio["waveform"].shape[-1]])
    assert video.audio is audio


def test_source_facts_are_read_like_decord(host, tmp_path):
    from comfy_api.latest import InputImpl, Types
    from wan_animate_kit.nodes.common import source_of
    from wan_animate_kit.nodes.video_rate import source_facts

    for n, fps in ((19, 24), (23, Fraction(30000, 1001))):
        video = InputImpl.VideoFromFile(str(write_clip(tmp_path / f"facts{n}.mp4", n, fps)))
        count, rate, end = source_facts(video, source_of(video))
        # packets of the video stream, the average rate as a double, end of the last frame in seconds
        assert count == n and rate == float(fps) and end == pytest.approx(n / float(fps), abs=1e-6)
    imgs = torch.zeros(5, H, W, 3)
    memory = InputImpl.VideoFromComponents(Types.VideoComponents(images=imgs, frame_rate=Fraction(25)))
    assert source_facts(memory, source_of(memory)) == (5, 25.0, None)


def test_24_and_60_fps_by_hand(host, tmp_path):
    from comfy_api.latest import InputImpl

    clip24 = InputImpl.VideoFromFile(str(write_clip(tmp_path / "a.mp4", 9, 24)))
    v, fps, frames, _ = run(clip24)
    assert frames == 11 and [level_index(f) for f in read(v)] == [0, 1, 2, 2, 3, 4, 5, 6, 6, 7, 8]
    clip60 = InputImpl.VideoFromFile(str(write_clip(tmp_path / "b.mp4", 9, 60)))
    v, fps, frames, _ = run(clip60)
    assert frames == 4 and [level_index(f) for f in read(v)] == [0, 2, 4, 6]


def test_nothing_is_decoded_until_a_node_reads_the_video(host, tmp_path, monkeypatch):
    from comfy_api.latest import InputImpl
    from wan_animate_kit.preprocess.frames import FileFrames

    calls = []
    real = FileFrames.iter_chunks
    monkeypatch.setattr(FileFrames, "iter_chunks", lambda self, *a: calls.append(1) or real(self, *a))
    video = run(InputImpl.VideoFromFile(str(write_clip(tmp_path / "c.mp4", 19, 24))))[0]
    assert calls == []
    assert len(read(video)) == 23 and calls


def test_source_rate_is_the_identity(host, tmp_path):
    from comfy_api.latest import InputImpl

    path = write_clip(tmp_path / "d.mp4", 19, 24)
    src = InputImpl.VideoFromFile(str(path))
    video, fps, frames, audio = run(src, fps=0.0)
    assert video is src and fps == 24.0 and frames == 19
    assert np.array_equal(read(video), decode_all(path))
    assert audio["waveform"].shape[-1] == min(math.ceil(16000 * 19 / 24),
                                              src.get_components().audio["waveform"].shape[-1])


def test_a_30_fps_clip_passes_through_unless_the_official_arithmetic_drops_a_frame(host, tmp_path):
    from comfy_api.latest import InputImpl
    from wan_animate_kit.nodes.lazy_video import LazyVideo

    src = InputImpl.VideoFromFile(str(write_clip(tmp_path / "e.mp4", 20, 30)))
    video, fps, frames, _ = run(src)
    assert video is src and (fps, frames) == (30.0, 20)
    # int(123 / 30.0 * 30) == 122 in float arithmetic: the official clip loses its last frame
    src = InputImpl.VideoFromFile(str(write_mp4(tmp_path / "f.mp4", ramp(123, 32, 32, step=2), 30, crf=0)))
    video, fps, frames, audio = run(src)
    assert isinstance(video, LazyVideo) and frames == 122 and audio is None
    assert np.array_equal(read(video), decode_all(tmp_path / "f.mp4")[:122])


def test_saved_output_plays_at_30_fps_with_the_sound(host, tmp_path):
    from comfy_api.latest import InputImpl

    video, fps, frames, _ = run(InputImpl.VideoFromFile(str(write_clip(tmp_path / "g.mp4", 25, 60))))
    out = tmp_path / "out.mp4"
    video.save_to(str(out))
    with av.open(str(out)) as c:
        assert c.streams.video[0].average_rate == 30 and len(c.streams.audio) == 1
        assert sum(1 for _ in c.decode(video=0)) == frames == 12
    comps = video.get_components()
    assert comps.frame_rate == 30 and tuple(comps.images.shape) == (12, H, W, 3) and comps.audio is not None


def test_an_in_memory_video_is_resampled_too(host):
    from comfy_api.latest import InputImpl, Types

    imgs = torch.from_numpy(ramp(19, W, H, start=10, step=STEP).astype(np.float32) / 255.0)
    src = InputImpl.VideoFromComponents(Types.VideoComponents(images=imgs, frame_rate=Fraction(24)))
    video, fps, frames, audio = run(src)
    assert frames == 23 and audio is None
    assert [level_index(f) for f in read(video)] == official_indices(19, 24.0)


def test_pack_nodes_read_the_resampled_video(host, tmp_path, tiny_models):
    import folder_paths
    from comfy_api.latest import InputImpl
    from wan_animate_kit.nodes.folders import register_model_folders
    from wan_animate_kit.nodes.mask import EnvironmentVideo
    from wan_animate_kit.nodes.pose import FaceCrops, PoseExtract, PoseModelLoader
    from wan_animate_kit.nodes.video import VideoInfo

    video, fps, frames, _ = run(InputImpl.VideoFromFile(str(write_clip(tmp_path / "h.mp4", 19, 24))))
    info = VideoInfo.execute(video=video).result
    assert (info[0], info[2], info[3], info[4]) == (30.0, 23, W, H)
    mask = torch.zeros(frames, H, W)
    mask[:, 10:20, 10:20] = 1.0
    env = EnvironmentVideo.execute(mask=mask, video=video, width=0, height=0).result[0]
    assert tuple(env.shape) == (23, H, W, 3) and env[:, 10:20, 10:20].max() == 0
    levels = (env[:, 0, 0, 0] * 255).round().numpy()
    assert [int(round((v - 10) / STEP)) for v in levels] == official_indices(19, 24.0)

    register_model_folders()
    folder_paths.add_model_folder_path("detection", str(tiny_models["root"] / "detection"))
    folder_paths.filename_list_cache.pop("detection", None)
    models = PoseModelLoader.execute(detector="tiny_yolov10.onnx", pose_model="tiny_vitpose_wholebody.onnx",
                                     device="cpu", batch_size=4, bgr_like_official=False).result[0]
    pose = PoseExtract.execute(pose_models=models, video=video, person="largest", smoothing=0.5,
                               missing_frames="hold", chunk_frames=8).result[0]
    assert pose.num_frames == 23 and pose.fps == 30.0
    faces = FaceCrops.execute(pose=pose, mode="official", size=64, video=video).result[0]
    assert tuple(faces.shape) == (23, 64, 64, 3)


def test_sam2_segmentation_reads_the_resampled_frames(host, tmp_path, monkeypatch):
    """The SAM2 node's frame path, with the model replaced by a recorder of the frames it is fed."""
    from types import SimpleNamespace

    from comfy_api.latest import InputImpl
    from wan_animate_kit.models import sam2_video
    from wan_animate_kit.nodes.segment import CharacterSegmentation
    from wan_animate_kit.preprocess.pose_types import PoseSequence

    fed = []

    def recorder(model, frames, prompts, n, **kw):
        for i, frame in enumerate(sam2_video._one_by_one(frames)):  # the real function's frame path
            fed.append(frame.copy())
            yield SimpleNamespace(index=i, mask=np.zeros(frame.shape[:2], bool), prompted=True)

    monkeypatch.setattr(sam2_video, "iter_segment_frames", recorder)
    path = write_clip(tmp_path / "l.mp4", 19, 24)
    video = run(InputImpl.VideoFromFile(str(path)))[0]
    kps = np.zeros((23, 1, 133, 3), np.float32)
    kps[..., 0], kps[..., 1], kps[..., 2] = W / 2, H / 2, 0.9
    kps[:, 0, :17, 0] += np.linspace(-8, 8, 17)
    kps[:, 0, :17, 1] += np.linspace(-6, 6, 17)
    pose = PoseSequence(kps, (0,), W, H, fps=30.0)
    mask = CharacterSegmentation.execute(sam2_model=None, pose=pose, video=video, chunk_size=8, keyframes=1,
                                         threshold=0.5, positive_points="", negative_points="", points_mode="add",
                                         points_frame=0, object_points="").result[0]
    assert tuple(mask.shape) == (23, H, W)
    assert np.array_equal(np.stack(fed), decode_all(path)[official_indices(19, 24.0)])


def test_the_samplers_frame_reader_takes_it_segment_by_segment(host, tmp_path):
    from comfy_api.latest import InputImpl
    from wan_animate_kit.nodes.common import source_of

    path = write_clip(tmp_path / "k.mp4", 19, 24)
    video = run(InputImpl.VideoFromFile(str(path)))[0]
    expected = decode_all(path)[official_indices(19, 24.0)]
    reader = source_of(video, "pose_video")
    assert reader.num_frames == 23
    for segment in (range(0, 9), range(5, 16), range(14, 23), range(0, 4)):  # overlaps, then a restart
        got = (reader.get_float(list(segment)).numpy() * 255).round().astype(np.uint8)
        assert np.array_equal(got, expected[list(segment)])


def test_bad_inputs_name_the_input(host, tmp_path):
    from comfy_api.latest import InputImpl
    from wan_animate_kit.nodes.common import InputError

    src = InputImpl.VideoFromFile(str(write_clip(tmp_path / "i.mp4", 3, 24)))
    for bad in (-1.0, float("nan"), 1000.0):
        with pytest.raises(InputError, match="'fps'"):
            run(src, fps=bad)
    with pytest.raises(InputError, match="'video'.*not a VIDEO"):
        run(torch.zeros(3, H, W, 3))
    short = InputImpl.VideoFromFile(str(write_mp4(tmp_path / "j.mp4", ramp(1, W, H), 60, crf=0)))
    with pytest.raises(InputError, match="'video'.*too short"):
        run(short)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(InputError, match="Wan-Animate Driving Video: input 'video'"):
        run(InputImpl.VideoFromFile(str(junk)))


# -- resize_area: the official Replacement-mode resize_by_area of every resampled frame ------------------------

def pattern_clip(path, n, fps, w, h):
    """A lossless clip with detail inside each frame (so the interpolation shows) that changes per frame."""
    y, x = np.mgrid[0:h, 0:w]
    frames = np.stack([np.stack([(7 * x + 3 * y + 11 * k) % 256, (5 * x * y + 13 * k) % 256,
                                 (x * x + 2 * y + 17 * k) % 256], axis=-1) for k in range(n)]).astype(np.uint8)
    return write_mp4(path, frames, fps, audio_hz=440, crf=0)


def official_replace_frames(path, n, src_fps, area, fps=30):
    """What the official replace branch hands to pose, SAM2, face crops and the background: the frames
    get_frame_indices picks, each through resize_by_area(frame, area, divisor=16) (re-stated in the unit tests)."""
    from test_frame_resize import official_resize_by_area

    picked = decode_all(path)[official_indices(n, float(src_fps), fps) if fps else list(range(n))]
    return np.stack([official_resize_by_area(f, area, 16) for f in picked])


@pytest.mark.parametrize("w,h,n,src_fps,area,size", [
    (64, 48, 19, 24, 48 * 32, (32, 32)),   # shrink (INTER_AREA), bars top and bottom, 24 -> 30 fps
    (50, 38, 9, 60, 96 * 80, (96, 64)),    # enlarge (INTER_LINEAR), not a multiple of 16, 60 -> 30 fps
    (64, 48, 7, 30, 96 * 80, (96, 64)),    # 30 fps: the frames are kept but must still be resized
])
def test_resize_area_gives_the_official_resize_by_area_frames(host, tmp_path, w, h, n, src_fps, area, size):
    from comfy_api.latest import InputImpl
    from wan_animate_kit.nodes.lazy_video import LazyVideo
    from wan_animate_kit.preprocess.resolution import size_for_area

    path = pattern_clip(tmp_path / "p.mp4", n, src_fps, w, h)
    video, fps, frames, audio, width, height = run_all(InputImpl.VideoFromFile(str(path)), resize_area=area)
    want = official_replace_frames(path, n, src_fps, area)
    assert size_for_area(w, h, area=area) == size == (width, height)
    assert isinstance(video, LazyVideo) and video.get_dimensions() == size and frames == len(want) == video.num_frames
    assert fps == 30.0 and audio is not None
    got = read(video)
    assert got.shape == want.shape and np.array_equal(got, want)
    # the resampling is unchanged by the resize: the same source frames as without it
    plain = read(run(InputImpl.VideoFromFile(str(path)))[0])
    assert np.array_equal(plain, decode_all(path)[official_indices(n, float(src_fps))])


def test_source_rate_with_a_resize_still_resizes(host, tmp_path):
    from comfy_api.latest import InputImpl
    from wan_animate_kit.nodes.lazy_video import LazyVideo

    path = pattern_clip(tmp_path / "q.mp4", 11, 24, 50, 38)
    src = InputImpl.VideoFromFile(str(path))
    video, fps, frames, audio, width, height = run_all(src, fps=0.0, resize_area=96 * 80)
    assert isinstance(video, LazyVideo) and (fps, frames, width, height) == (24.0, 11, 96, 64)
    assert video.get_frame_rate() == 24
    assert np.array_equal(read(video), official_replace_frames(path, 11, 24, 96 * 80, fps=0))
    # without resize_area the source is still handed on as it is
    assert run_all(src, fps=0.0)[0] is src


def test_a_resize_to_the_source_size_hands_the_source_on(host, tmp_path):
    from comfy_api.latest import InputImpl

    src = InputImpl.VideoFromFile(str(pattern_clip(tmp_path / "r.mp4", 5, 30, 64, 48)))
    video, fps, frames, _, width, height = run_all(src, resize_area=64 * 48)  # 64x48 is its own official size
    assert video is src and (frames, width, height) == (5, 64, 48)
    video, *_, width, height = run_all(src, fps=0.0, resize_area=64 * 48, divisor=16)
    assert video is src and (width, height) == (64, 48)


def test_resized_frames_are_made_only_when_read(host, tmp_path, monkeypatch):
    from comfy_api.latest import InputImpl
    from wan_animate_kit.preprocess import frame_resize

    calls = []
    real = frame_resize.AreaResize.__call__
    monkeypatch.setattr(frame_resize.AreaResize, "__call__", lambda self, f: calls.append(len(f)) or real(self, f))
    path = pattern_clip(tmp_path / "s.mp4", 40, 30, 64, 48)
    video = run_all(InputImpl.VideoFromFile(str(path)), resize_area=96 * 80)[0]
    assert calls == []
    parts = list(video.iter_chunks())
    assert [len(p) for p in parts] == calls == [32, 8]  # chunk by chunk, never the whole video
    assert sum(calls) == video.num_frames == 40
    # large source frames are decoded and resized in smaller chunks (at most CHUNK_BYTES of source frames)
    from wan_animate_kit.nodes import video_rate

    monkeypatch.setattr(video_rate, "CHUNK_BYTES", 64 * 48 * 3 * 6)
    calls.clear()
    video = run_all(InputImpl.VideoFromFile(str(path)), resize_area=96 * 80)[0]
    assert [len(p) for p in video.iter_chunks()] == calls == [6] * 6 + [4]


def test_an_in_memory_video_is_resized_too(host):
    from comfy_api.latest import InputImpl, Types
    from test_frame_resize import official_resize_by_area
    from wan_animate_kit.nodes.common import to_uint8

    rng = np.random.default_rng(5)
    imgs = torch.from_numpy(rng.random((6, 38, 50, 3), dtype=np.float32))
    src = InputImpl.VideoFromComponents(Types.VideoComponents(images=imgs, frame_rate=Fraction(30)))
    video, fps, frames, _, width, height = run_all(src, resize_area=48 * 32)
    assert (frames, width, height) == (6, 32, 32)
    want = np.stack([official_resize_by_area(f, 48 * 32) for f in to_uint8(imgs)])
    assert np.array_equal(read(video), want)


def test_output_size_returns_the_size_of_the_resized_video(host, tmp_path):
    from comfy_api.latest import InputImpl
    from wan_animate_kit.nodes.pose import OutputSize
    from wan_animate_kit.preprocess.resolution import size_for_area

    path = pattern_clip(tmp_path / "t.mp4", 4, 30, 40, 20)
    src = InputImpl.VideoFromFile(str(path))
    video, *_, width, height = run_all(src, resize_area=96 * 80)
    assert (width, height) == size_for_area(40, 20, area=96 * 80) == (112, 48)
    # the size rule applied to the already resized frame would move it: 112x48 -> 128x48
    assert size_for_area(112, 48, area=96 * 80) == (128, 48)
    assert tuple(OutputSize.execute(area=96 * 80, divisor=16, video=video).result) == (112, 48)
    # the source video with the same area gives the same size (the official rule on the source)
    assert tuple(OutputSize.execute(area=96 * 80, divisor=16, video=src).result) == (112, 48)
    # another area or divisor than the resize: the rule on the video's own size
    assert tuple(OutputSize.execute(area=64 * 32, divisor=16, video=video).result) == size_for_area(112, 48, 64 * 32)
    assert tuple(OutputSize.execute(area=96 * 80, divisor=8, video=video).result) == size_for_area(112, 48, 96 * 80, 8)
    # a common case where both agree: 4:3 at 1280x720 -> 1104x816
    assert size_for_area(1104, 816) == (1104, 816)


def test_pack_nodes_read_the_resized_video(host, tmp_path, tiny_models, monkeypatch):
    """Pose Extraction, Face Crops, SAM2 Segmentation and Environment Video all work on the resized frames."""
    from types import SimpleNamespace

    import folder_paths
    from comfy_api.latest import InputImpl
    from wan_animate_kit.models import sam2_video
    from wan_animate_kit.nodes.folders import register_model_folders
    from wan_animate_kit.nodes.mask import EnvironmentVideo
    from wan_animate_kit.nodes.pose import FaceCrops, OutputSize, PoseExtract, PoseModelLoader
    from wan_animate_kit.nodes.segment import CharacterSegmentation
    from wan_animate_kit.nodes.video import VideoInfo

    area, size = 96 * 80, (96, 64)
    path = pattern_clip(tmp_path / "u.mp4", 9, 24, 50, 38)
    video, fps, frames, _, width, height = run_all(InputImpl.VideoFromFile(str(path)), resize_area=area)
    want = official_replace_frames(path, 9, 24, area)
    assert (width, height) == size and frames == len(want) == 11
    info = VideoInfo.execute(video=video).result
    assert (info[0], info[2], info[3], info[4]) == (30.0, 11, 96, 64)
    assert tuple(OutputSize.execute(area=area, divisor=16, video=video).result) == size

    mask = torch.zeros(frames, height, width)
    mask[:, 10:20, 30:40] = 1.0
    env = EnvironmentVideo.execute(mask=mask, video=video, width=width, height=height).result[0]
    assert tuple(env.shape) == (11, 64, 96, 3) and env[:, 10:20, 30:40].max() == 0
    keep = (mask == 0).numpy()
    assert np.array_equal((env.numpy() * 255).round().astype(np.uint8)[keep], want[keep])

    register_model_folders()
    folder_paths.add_model_folder_path("detection", str(tiny_models["root"] / "detection"))
    folder_paths.filename_list_cache.pop("detection", None)
    models = PoseModelLoader.execute(detector="tiny_yolov10.onnx", pose_model="tiny_vitpose_wholebody.onnx",
                                     device="cpu", batch_size=4, bgr_like_official=False).result[0]
    pose = PoseExtract.execute(pose_models=models, video=video, person="largest", smoothing=0.0,
                               missing_frames="hold", chunk_frames=8).result[0]
    assert pose.num_frames == 11 and (pose.width, pose.height) == size
    faces = FaceCrops.execute(pose=pose, mode="official", size=64, video=video).result[0]
    assert tuple(faces.shape) == (11, 64, 64, 3)

    fed = []

    def recorder(model, frames_in, prompts, n, **kw):
        for i, frame in enumerate(sam2_video._one_by_one(frames_in)):  # the real function's frame path
            fed.append(frame.copy())
            yield SimpleNamespace(index=i, mask=np.zeros(frame.shape[:2], bool), prompted=True)

    monkeypatch.setattr(sam2_video, "iter_segment_frames", recorder)
    from wan_animate_kit.preprocess.pose_types import PoseSequence

    kps = np.zeros((11, 1, 133, 3), np.float32)
    kps[..., 0], kps[..., 1], kps[..., 2] = 48, 32, 0.9
    kps[:, 0, :17, 0] += np.linspace(-8, 8, 17)
    kps[:, 0, :17, 1] += np.linspace(-6, 6, 17)
    seg = CharacterSegmentation.execute(sam2_model=None, pose=PoseSequence(kps, (0,), 96, 64, fps=30.0), video=video,
                                        chunk_size=8, keyframes=1, threshold=0.5, positive_points="",
                                        negative_points="", points_mode="add", points_frame=0,
                                        object_points="").result[0]
    assert tuple(seg.shape) == (11, 64, 96)
    assert np.array_equal(np.stack(fed), want)


def test_bad_resize_inputs_name_the_input(host, tmp_path):
    from comfy_api.latest import InputImpl
    from wan_animate_kit.nodes.common import InputError

    src = InputImpl.VideoFromFile(str(write_clip(tmp_path / "v.mp4", 3, 24)))
    for bad in (-1, 1.5, float("nan"), 4096 * 4096 + 1, True):
        with pytest.raises(InputError, match="'resize_area'"):
            run_all(src, resize_area=bad)
    for bad in (0, 7, 65, float("inf")):
        with pytest.raises(InputError, match="'divisor'"):
            run_all(src, resize_area=96 * 80, divisor=bad)
    tall = InputImpl.VideoFromFile(str(write_mp4(tmp_path / "w.mp4", ramp(2, 16, 400), 30, crf=0)))
    with pytest.raises(InputError, match="'resize_area'.*over 8192"):
        run_all(tall, resize_area=4096 * 4096)
