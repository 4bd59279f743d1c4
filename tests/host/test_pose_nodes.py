"""Pose nodes e2e in the real host (in-process): video -> extraction -> rendering -> face crops."""
import numpy as np
import pytest
import torch

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def pose_models(tiny_models):
    import folder_paths
    from wan_animate_kit.nodes.folders import register_model_folders
    from wan_animate_kit.nodes.pose import PoseModelLoader

    register_model_folders()
    folder_paths.add_model_folder_path("detection", str(tiny_models["root"] / "detection"))
    folder_paths.filename_list_cache.pop("detection", None)
    return PoseModelLoader.execute(detector="tiny_yolov10.onnx", pose_model="tiny_vitpose_wholebody.onnx",
                                   device="cpu", batch_size=4, bgr_like_official=False).result[0]


def frames(t=6, h=120, w=160):
    g = torch.Generator().manual_seed(0)
    return torch.rand(t, h, w, 3, generator=g)


def extract(pose_models, **kw):
    from wan_animate_kit.nodes.pose import PoseExtract

    args = dict(person="largest", smoothing=0.5, missing_frames="hold", chunk_frames=4)
    args.update(kw)
    return PoseExtract.execute(pose_models=pose_models, **args).result


def test_loader_lists_onnx_only_and_excludes_companions(tiny_models, pose_models):
    from wan_animate_kit.nodes.pose import PoseModelLoader

    (tiny_models["root"] / "detection" / "vitpose_h_data.bin").write_bytes(b"\0" * 16)
    import folder_paths

    folder_paths.filename_list_cache.pop("detection", None)
    options = PoseModelLoader.GET_SCHEMA().inputs[0].options
    assert "tiny_yolov10.onnx" in options and "tiny_vitpose_wholebody.onnx" in options
    assert not any(o.endswith(".bin") for o in options)


def test_video_to_pose_render_and_face_crops(pose_models):
    from wan_animate_kit.nodes.pose import FaceCrops, RenderPose

    imgs = frames()
    pose, preview, report = extract(pose_models, images=imgs)
    assert pose.num_frames == 6 and pose.num_people == 2 and (pose.width, pose.height) == (160, 120)
    # the larger detector box (first) is the subject; its nose sits inside its box
    box_w = (300 - 120) * 160 / 640
    nose = pose.subject_keypoints[0, 0]
    assert 120 * 160 / 640 <= nose[0] <= 300 * 160 / 640 and nose[2] > 0.5
    assert preview.shape[0] == 6 and "2 person(s)" in report
    video = RenderPose.execute(pose=pose, width=0, height=0, letterbox=True, draw_hands=True,
                               draw_head=True).result[0]
    assert tuple(video.shape) == (6, 120, 160, 3)
    assert video.max() > 0.5 and (video.sum(-1) == 0).float().mean() > 0.5  # skeleton on black
    wide = RenderPose.execute(pose=pose, width=320, height=120, letterbox=True, draw_hands=True,
                              draw_head=True).result[0]
    assert tuple(wide.shape) == (6, 120, 320, 3) and wide[:, :, :80].max() == 0  # letterbox bars stay black
    faces, face_report, _ = FaceCrops.execute(pose=pose, mode="square", size=512, images=imgs).result
    assert tuple(faces.shape) == (6, 512, 512, 3)
    official = FaceCrops.execute(pose=pose, mode="official", size=512, images=imgs).result[0]
    assert tuple(official.shape) == (6, 512, 512, 3)
    assert box_w > 0
    # official (the default): the reference crop of the uint8 frames, pixel for pixel
    assert FaceCrops.GET_SCHEMA().inputs[3].default == "official"
    u8 = (imgs.numpy() * 255).round().astype(np.uint8)
    for t in range(6):
        want = official_face_crop(u8[t], pose.subject_keypoints[t])
        assert np.array_equal((official[t].numpy() * 255).round().astype(np.uint8), want), t
    # no frame with a usable face box: a clear error naming the pose input
    from dataclasses import replace
    flat = pose.keypoints.copy()
    flat[:, :, 23:91, 1] = 50.0  # every face a flat line: no height
    with pytest.raises(ValueError, match="'pose'.*usable official face box"):
        FaceCrops.execute(pose=replace(pose, keypoints=flat), mode="official", size=512, images=imgs)


def official_face_crop(frame: np.ndarray, kps133: np.ndarray) -> np.ndarray:
    """The official crop re-stated (process_pipepline.py + utils.get_face_bboxes with scale 1.3)."""
    import cv2

    h, w = frame.shape[:2]
    k = np.array(kps133, np.float32)
    k[:, 0] /= w
    k[:, 1] /= h
    pts = k[22:91, :2][1:] * (w, h)
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    fw, fh = x1 - x0, y1 - y0
    big = fw * fh * 1.3
    dw, dh = (np.sqrt(big * (fw / fh)) - fw) / 2, (np.sqrt(big * (fh / fw)) - fh) / 4
    left, right = int(max(x0 - dw, 0)), int(min(x1 + dw, w))
    top, bottom = int(max(y0 - 3 * dh, 0)), int(min(y1 + dh, h))
    return cv2.resize(frame[top:bottom, left:right], (512, 512))


def test_video_outputs_are_made_on_demand_and_equal_the_frames(pose_models, monkeypatch, tmp_path):
    import av
    from comfy_execution.graph_utils import ExecutionBlocker
    from wan_animate_kit.nodes import pose as pose_nodes
    from wan_animate_kit.nodes.common import source_of
    from wan_animate_kit.preprocess import render

    imgs = frames()
    pose = extract(pose_models, images=imgs)[0]
    drawn = []
    real = render.render_pose_frame
    monkeypatch.setattr(render, "render_pose_frame", lambda *a, **k: drawn.append(1) or real(*a, **k))
    args = dict(pose=pose, width=0, height=0, letterbox=True, draw_hands=True, draw_head=True)
    image, video = pose_nodes.RenderPose.execute(**args).result
    assert len(drawn) == 6  # the IMAGE output drew every frame once
    blocked, lazy = pose_nodes.RenderPose.execute(**args, frames_output=False).result
    assert isinstance(blocked, ExecutionBlocker) and "frames_output" in blocked.message
    assert len(drawn) == 6  # frames_output off: nothing drawn yet
    assert lazy.get_frame_count() == 6 and lazy.get_dimensions() == (160, 120)
    assert float(lazy.get_frame_rate()) == (pose.fps or 30.0)
    assert torch.equal(lazy.get_components().images, image) and torch.equal(video.get_components().images, image)
    src = source_of(lazy, "pose_video")
    chunks = list(src.iter_chunks(4))
    assert src.num_frames == 6 and src.size == (160, 120)
    assert np.array_equal(np.concatenate(chunks), (image.numpy() * 255).round().astype(np.uint8))

    faces, report, face_video = pose_nodes.FaceCrops.execute(pose=pose, mode="square", size=128, images=imgs).result
    off = pose_nodes.FaceCrops.execute(pose=pose, mode="square", size=128, images=imgs, frames_output=False).result
    assert isinstance(off[0], ExecutionBlocker) and off[1] == report
    assert torch.equal(off[2].get_components().images, faces) and off[2].get_dimensions() == (128, 128)

    # the host's SaveVideo path: streamed into an mp4 with the prompt in its tags
    out = tmp_path / "pose.mp4"
    lazy.save_to(str(out), metadata={"prompt": {"1": {"class_type": "WAK_RenderPose"}}})
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 6
        assert "WAK_RenderPose" in c.metadata.get("prompt", "")
    with pytest.raises(ValueError, match="MP4"):
        lazy.save_to(str(tmp_path / "x.webm"), format="webm")


def test_frames_output_off_makes_no_preview_and_the_same_pose(pose_models, monkeypatch):
    from comfy_execution.graph_utils import ExecutionBlocker
    from wan_animate_kit.models import pose_pipeline
    from wan_animate_kit.nodes.pose import PoseExtract

    switch = next(i for i in PoseExtract.GET_SCHEMA().inputs if i.id == "frames_output")
    assert switch.default is True and switch.optional  # old prompts keep their preview
    imgs = frames()
    pose, preview, report = extract(pose_models, images=imgs)
    assert tuple(preview.shape) == (6, 120, 160, 3)
    monkeypatch.setattr(pose_pipeline, "preview_frames", lambda *a, **k: pytest.fail("a preview was drawn"))
    pose_off, blocked, report_off = extract(pose_models, images=imgs, frames_output=False)
    assert isinstance(blocked, ExecutionBlocker) and "frames_output" in blocked.message
    np.testing.assert_array_equal(pose_off.keypoints, pose.keypoints)
    np.testing.assert_array_equal(pose_off.detected, pose.detected)
    assert (pose_off.track_ids, pose_off.subject, pose_off.notes, report_off) == \
        (pose.track_ids, pose.subject, pose.notes, report)


def test_the_node_is_the_pipeline_over_the_onnx_backend(pose_models):
    """Pose Extraction = models.pose_pipeline.extract_pose with the ONNX backend, called without any
    node or host helper, on the same uint8 frames."""
    from wan_animate_kit.models.pose_pipeline import extract_pose
    from wan_animate_kit.models.pose_runner import OnnxPoseBackend

    imgs = frames(t=7)
    settings = dict(person="1", smoothing=0.3, missing_frames="interpolate", chunk_frames=3)
    pose, preview, report = extract(pose_models, images=imgs, **settings)
    u8 = (imgs.numpy() * 255).round().astype(np.uint8)

    class Frames:
        num_frames, size, fps = 7, (160, 120), 0.0

        def iter_chunks(self, n):
            return (u8[s:s + n] for s in range(0, 7, n))

    with pose_models.files.open("cpu", batch_size=4) as run:
        out = extract_pose(Frames(), OnnxPoseBackend(run.detector, run.pose, 4), preview=True, **settings)
    np.testing.assert_array_equal(out.pose.keypoints, pose.keypoints)
    np.testing.assert_array_equal(out.pose.detected, pose.detected)
    assert (out.pose.track_ids, out.pose.subject, out.pose.notes, out.report) == \
        (pose.track_ids, pose.subject, pose.notes, report)
    assert np.array_equal(out.preview, (preview.numpy() * 255).round().astype(np.uint8))


def test_face_crops_move_a_pose_of_another_canvas_onto_the_frames(pose_models):
    """A pose on a 2x canvas is brought back with x / W * w (resolution.scale_keypoints): the same crops."""
    from dataclasses import replace

    from wan_animate_kit.nodes.pose import FaceCrops

    imgs = frames(t=3)
    pose = extract(pose_models, images=imgs, smoothing=0.0)[0]
    big = pose.keypoints.copy()
    big[..., :2] *= 2
    doubled = replace(pose, keypoints=big, width=320, height=240)
    for mode in ("official", "square"):
        want = FaceCrops.execute(pose=pose, mode=mode, size=128, images=imgs).result[0]
        got = FaceCrops.execute(pose=doubled, mode=mode, size=128, images=imgs).result[0]
        assert torch.equal(got, want), mode


def test_person_choice_by_index_and_point(pose_models):
    imgs = frames(t=3)
    by_index = extract(pose_models, images=imgs, person="1")[0]
    assert by_index.subject == 1
    x = (380 + 500) / 2 * 160 / 640
    by_point = extract(pose_models, images=imgs, person=f"{x},60")[0]
    assert by_point.subject == by_index.subject


def test_bad_inputs_name_the_input(pose_models, tiny_models):
    from wan_animate_kit.nodes.pose import FaceCrops, PoseModelLoader

    with pytest.raises(ValueError, match="images"):
        extract(pose_models)
    with pytest.raises(ValueError, match="images"):
        extract(pose_models, images=torch.zeros(0, 8, 8, 3))
    with pytest.raises(ValueError, match="person"):
        extract(pose_models, images=frames(t=2), person="7")
    pose = extract(pose_models, images=frames(t=4))[0]
    with pytest.raises(ValueError, match="images"):
        FaceCrops.execute(pose=pose, mode="square", size=512, images=frames(t=3))
    with pytest.raises(ValueError, match="device|CUDA|cuda"):
        PoseModelLoader.execute(detector="tiny_yolov10.onnx", pose_model="tiny_vitpose_wholebody.onnx",
                                device="cuda", batch_size=4, bgr_like_official=False)
    with pytest.raises(ValueError, match="pose_model"):
        PoseModelLoader.execute(detector="tiny_yolov10.onnx", pose_model="tiny_yolov10.onnx",
                                device="cpu", batch_size=4, bgr_like_official=False)


def test_keypoint_round_trip_through_nodes(pose_models):
    from wan_animate_kit.nodes.pose import PoseFromKeypoint, PoseToKeypoint

    pose = extract(pose_models, images=frames(t=3), smoothing=0.0)[0]
    kp = PoseToKeypoint.execute(pose=pose, people="all").result[0]
    assert len(kp) == 3 and len(kp[0]["people"]) == 2
    back = PoseFromKeypoint.execute(pose_keypoint=kp, fps=10.0, person="largest").result[0]
    np.testing.assert_allclose(back.keypoints[..., :17, :], pose.keypoints[..., :17, :], atol=1e-3)


def test_no_person_anywhere_is_a_clear_error(tiny_models, tmp_path):
    import folder_paths
    from tiny_onnx import make_detector
    from wan_animate_kit.nodes.pose import PoseExtract, PoseModelLoader

    empty = tiny_models["root"] / "detection" / "tiny_yolov10_nobody.onnx"
    if not empty.exists():
        make_detector(empty, boxes=np.zeros((0, 6), np.float32))
    folder_paths.filename_list_cache.pop("detection", None)
    models = PoseModelLoader.execute(detector=empty.name, pose_model="tiny_vitpose_wholebody.onnx", device="cpu",
                                     batch_size=4, bgr_like_official=False).result[0]
    with pytest.raises(ValueError, match="no person was found in any of the 3 frame"):
        PoseExtract.execute(pose_models=models, person="largest", smoothing=0.5, missing_frames="hold",
                            chunk_frames=2, images=frames(t=3))


def test_auto_batch_size_picks_the_cpu_batch(tiny_models, monkeypatch):
    from wan_animate_kit.models import pose_runner
    from wan_animate_kit.nodes.pose import AUTO_BATCH_CPU, AUTO_BATCH_CUDA, PoseModelLoader

    models = PoseModelLoader.execute(detector="tiny_yolov10.onnx", pose_model="tiny_vitpose_wholebody.onnx",
                                     device="cpu", batch_size=0, bgr_like_official=False).result[0]
    assert models.batch_size == 0  # decided when the sessions exist, from the provider really used
    assert models.batch_for("CPUExecutionProvider") == AUTO_BATCH_CPU
    assert models.batch_for("CUDAExecutionProvider") == AUTO_BATCH_CUDA
    seen = []
    real = pose_runner.estimate_chunk
    monkeypatch.setattr(pose_runner, "estimate_chunk",
                        lambda *a: seen.append((a[3], a[2].batch_size)) or real(*a))
    extract(models, images=frames(t=2))
    assert seen and set(seen) == {(AUTO_BATCH_CPU, AUTO_BATCH_CPU)}


@pytest.fixture
def session_log(monkeypatch):
    """Every onnxruntime session the pack creates: (file name, providers asked for, weak reference)."""
    import weakref

    from wan_animate_kit.models import onnx_pose

    created = []
    real = onnx_pose._create_session

    def record(ort, path, providers, threads):
        session = real(ort, path, ["CPUExecutionProvider"], threads)  # this machine runs them on the CPU
        created.append((path.name, providers, weakref.ref(session)))
        return session

    monkeypatch.setattr(onnx_pose, "_create_session", record)
    return created


def _loader(**kw):
    from wan_animate_kit.nodes.pose import PoseModelLoader

    args = dict(detector="tiny_yolov10.onnx", pose_model="tiny_vitpose_wholebody.onnx", device="auto", batch_size=4,
                bgr_like_official=False)
    args.update(kw)
    return PoseModelLoader.execute(**args).result[0]


def test_sessions_exist_only_while_pose_extraction_runs_on_the_hosts_device(pose_models, session_log,
                                                                           monkeypatch):
    import gc

    import comfy.model_management as mm

    models = _loader()  # device auto
    assert not models.files.loaded
    assert all(ref() is None for _, _, ref in session_log)  # the loader keeps no session
    session_log.clear()
    extract(models, images=frames(t=2))
    gc.collect()
    assert not models.files.loaded and all(ref() is None for _, _, ref in session_log)
    # the host runs on the CPU here: 'auto' = the CPU provider, even though onnxruntime-gpu is installed
    assert [p for _, p, _ in session_log] == [["CPUExecutionProvider"]] * 2

    # a host on cuda:0: the CUDA provider on that device, after the host was asked for room there
    events = []
    monkeypatch.setattr(mm, "get_torch_device", lambda: torch.device("cuda", 0))
    monkeypatch.setattr(mm, "free_memory", lambda need, device, keep_loaded=[]: events.append(("free", need, device)))
    monkeypatch.setattr(mm, "soft_empty_cache", lambda force=False: events.append(("empty",)))
    session_log.clear()
    extract(models, images=frames(t=2))
    gc.collect()
    assert [p for _, p, _ in session_log] == [[("CUDAExecutionProvider", {"device_id": 0}),
                                               "CPUExecutionProvider"]] * 2
    assert events[0][0] == "free" and events[0][2] == torch.device("cuda", 0) and events[0][1] > 0
    assert events[-1] == ("empty",)
    assert not models.files.loaded and all(ref() is None for _, _, ref in session_log)
    # device cpu on the loader: the CPU whatever the host runs on, and no VRAM request
    on_cpu = _loader(device="cpu")
    events.clear()
    session_log.clear()
    extract(on_cpu, images=frames(t=2))
    assert [p for _, p, _ in session_log] == [["CPUExecutionProvider"]] * 2 and events == []


def test_sessions_are_dropped_after_an_error_and_kept_with_keep_loaded(session_log, monkeypatch):
    import gc

    from wan_animate_kit.models import pose_runner

    models = _loader(device="cpu")
    session_log.clear()

    def fail(*a, **k):
        raise RuntimeError("boom")

    with monkeypatch.context() as m:
        m.setattr(pose_runner.OnnxPoseBackend, "detect", fail)
        with pytest.raises(RuntimeError, match="boom"):
            extract(models, images=frames(t=2))
    gc.collect()
    assert len(session_log) == 2 and not models.files.loaded
    assert all(ref() is None for _, _, ref in session_log)

    kept = _loader(device="cpu", keep_loaded=True)
    session_log.clear()
    first = extract(kept, images=frames(t=2))[0]
    again = extract(kept, images=frames(t=2))[0]
    assert len(session_log) == 2 and kept.files.loaded  # created once, kept for the next run
    np.testing.assert_array_equal(first.keypoints, again.keypoints)
    kept.files.release()
    gc.collect()
    assert all(ref() is None for _, _, ref in session_log)


def test_loader_checks_files_without_keeping_a_session(tiny_models, tmp_path, session_log):
    import folder_paths

    models = _loader(device="cpu")
    # the fixed-size tiny detector is checked from the file alone; no session outlives the loader
    assert "tiny_yolov10.onnx" not in [name for name, _, _ in session_log]
    assert all(ref() is None for _, _, ref in session_log) and not models.files.loaded
    broken = tiny_models["root"] / "detection" / "tiny_broken_download.onnx"
    broken.write_bytes((tiny_models["root"] / "detection" / "tiny_yolov10.onnx").read_bytes()[:3000])
    folder_paths.filename_list_cache.pop("detection", None)
    try:
        with pytest.raises(ValueError, match="pose_model.*tiny_broken_download.onnx"):
            _loader(pose_model="tiny_broken_download.onnx", device="cpu")
        with pytest.raises(ValueError, match="detector.*not a YOLOv10"):
            _loader(detector="tiny_vitpose_wholebody.onnx", device="cpu")
    finally:
        broken.unlink()
        folder_paths.filename_list_cache.pop("detection", None)


def _official_padding_resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Re-statement of the official generation-time fit (wan/animate.py, WanAnimate.padding_resize)."""
    import cv2

    oh, ow, c = img.shape
    canvas = np.zeros((height, width, c))
    if oh / ow > height / width:
        nw = int(height / oh * ow)
        pad = int((width - nw) / 2)
        canvas[:, pad:pad + nw] = cv2.resize(img, (nw, height), interpolation=cv2.INTER_LINEAR)
    else:
        nh = int(width / ow * oh)
        pad = int((height - nh) / 2)
        canvas[pad:pad + nh] = cv2.resize(img, (width, nh), interpolation=cv2.INTER_LINEAR)
    return np.uint8(canvas)


@pytest.mark.parametrize("src", [(97, 61), (300, 517), (64, 64), (1080, 1920)])
def test_letterbox_resize_default_is_the_official_reference_fit(host, src):
    """Letterbox Resize by default equals the official fit of the character image pixel for pixel
    (and what the sampler does to a reference of another size); 'area when shrinking' differs."""
    import torch
    from wan_animate_kit.models.animate_conditioning import fit_reference
    from wan_animate_kit.nodes.pose import LETTERBOX_AREA, PaddingResize

    rng = np.random.default_rng(sum(src))
    img = rng.integers(0, 256, src + (3,), dtype=np.uint8)
    image = torch.from_numpy(img).float().div(255.0)[None]
    w, h = 96, 64
    out = PaddingResize.execute(image, w, h).result[0]
    assert out.shape == (1, h, w, 3)
    got = (out[0].numpy() * 255.0).round().astype(np.uint8)
    assert np.array_equal(got, _official_padding_resize(img, h, w))
    assert torch.equal(out, fit_reference(image, w, h))
    area = PaddingResize.execute(image, w, h, LETTERBOX_AREA).result[0]
    if src[0] * src[1] > w * h and src != (64, 64):
        assert not torch.equal(area, out)
