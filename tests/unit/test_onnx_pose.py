"""ONNX pose models: listing, session/provider checks, contracts, and the detect+pose runner."""
from __future__ import annotations

import logging

import numpy as np
import pytest

import tiny_onnx as T
from wan_animate_kit.models.onnx_pose import (ModelContractError, PersonDetector, WholeBodyPose,
                                              list_pose_models, load_session, resolve_model_path)
from wan_animate_kit.models.pose_runner import detect_and_estimate
from wan_animate_kit.preprocess.detection import parse_detections

W, H = 480, 360  # a non-square frame, so the 640 -> image scaling differs per axis
DET_BOXES = np.array([[0.0, 40.0, 150.0, 600.0, 0.92, 0.0],     # touches the left border
                      [250.0, 100.0, 400.0, 560.0, 0.85, 0.0],
                      [520.0, 380.0, 660.0, 660.0, 0.60, 0.0],  # runs off the bottom-right corner
                      [255.0, 105.0, 398.0, 555.0, 0.50, 0.0],  # duplicate of the 2nd: NMS removes it
                      [300.0, 300.0, 420.0, 500.0, 0.90, 2.0]])  # not a person


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return T.OnnxCache(tmp_path_factory.mktemp("tiny_onnx"))


@pytest.fixture(scope="module")
def peaks():
    return T.default_peaks(seed=7)


def _frames(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(n)]


# ----------------------------------------------------------------------------------------- listing

def test_list_models_skips_companions_and_lists_official_folders(tmp_path):
    (tmp_path / "vitpose_h_wholebody_model.onnx").write_bytes(b"\x08\x07")
    (tmp_path / "vitpose_h_wholebody_data.bin").write_bytes(b"w")
    (tmp_path / "yolov10m.onnx").write_bytes(b"\x08\x07")
    (tmp_path / "model.onnx.data").write_bytes(b"w")
    (tmp_path / "weights_data.onnx").write_bytes(b"w")
    (tmp_path / "empty.onnx").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    official = tmp_path / "vitpose_h_official"
    official.mkdir()
    (official / "end2end.onnx").write_bytes(b"\x08\x07")
    (official / "end2end_data.bin").write_bytes(b"w")
    (official / "other.onnx").write_bytes(b"\x08\x07")  # inside an official folder: the folder stands for it
    nested = tmp_path / "more" / "deeper"
    nested.mkdir(parents=True)
    (nested / "vitpose-l-wholebody.onnx").write_bytes(b"\x08\x07")
    (nested / "vitpose-l-wholebody.bin").write_bytes(b"w")
    names = list_pose_models([tmp_path, tmp_path / "missing"])
    assert names == ["more/deeper/vitpose-l-wholebody.onnx", "vitpose_h_official",
                     "vitpose_h_wholebody_model.onnx", "yolov10m.onnx"]
    assert resolve_model_path("vitpose_h_official", [tmp_path]) == official / "end2end.onnx"
    with pytest.raises(ModelContractError, match="not found"):
        resolve_model_path("nope.onnx", [tmp_path])


# ------------------------------------------------------------------------------- session + errors

def test_bin_companion_picked_as_model_is_explained(cache, tmp_path):
    model = tmp_path / "vitpose_h_wholebody_model.onnx"
    model.write_bytes(cache.get(T.make_vitpose).read_bytes())
    companion = tmp_path / "vitpose_h_wholebody_data.bin"
    companion.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelContractError, match="external-data companion.*vitpose_h_wholebody_model.onnx"):
        load_session(companion, "cpu")
    with pytest.raises(ModelContractError, match="external-data companion"):
        WholeBodyPose.load(companion, "cpu")


def test_non_onnx_files_are_rejected_clearly(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 512, dtype=np.uint8).tobytes())
    with pytest.raises(ModelContractError, match="junk.onnx"):
        load_session(junk, "cpu")
    pt = tmp_path / "pose.onnx"
    pt.write_bytes(b"PK\x03\x04" + b"\x00" * 32)
    with pytest.raises(ModelContractError, match="zip archive"):
        load_session(pt, "cpu")


def test_folder_resolves_to_end2end(cache, tmp_path):
    folder = tmp_path / "official"
    folder.mkdir()
    (folder / "end2end.onnx").write_bytes(cache.get(T.make_vitpose).read_bytes())
    pose = WholeBodyPose.load(folder, "cpu")
    assert pose.name == "end2end.onnx" and pose.providers == ["CPUExecutionProvider"]


def test_wrong_shapes_are_rejected_with_the_contract(cache):
    with pytest.raises(ModelContractError, match=r"133.*COCO-17|COCO-17"):
        WholeBodyPose(load_session(cache.get(T.make_wrong_vitpose), "cpu"))
    with pytest.raises(ModelContractError, match=r"\[N, 300, 6\].*YOLOv8"):
        PersonDetector(load_session(cache.get(T.make_wrong_detector), "cpu"))
    with pytest.raises(ModelContractError, match="looks like a pose model"):
        PersonDetector(load_session(cache.get(T.make_vitpose), "cpu"))
    with pytest.raises(ModelContractError, match="looks like a detector"):
        WholeBodyPose(load_session(cache.get(T.make_detector), "cpu"))


def test_cuda_request_never_falls_back_silently(cache):
    path = cache.get(T.make_detector)
    try:
        session = load_session(path, "cuda")
    except RuntimeError as err:  # this machine: no usable CUDA provider
        text = str(err)
        assert "CUDA was requested" in text and "onnxruntime-gpu" in text and "cpu" in text
    else:  # a machine where CUDA really works
        assert session.get_providers()[0] == "CUDAExecutionProvider"


def test_auto_device_warns_when_it_runs_on_cpu(cache, caplog):
    with caplog.at_level(logging.WARNING):
        session = load_session(cache.get(T.make_detector), "auto")
    if session.get_providers()[0] == "CPUExecutionProvider":
        assert any("on the CPU instead" in r.getMessage() for r in caplog.records)
    with pytest.raises(ValueError, match="device must be one of"):
        load_session(cache.get(T.make_detector), "gpu")


def test_cpu_only_onnxruntime_is_named_as_the_cause(cache, monkeypatch, caplog):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(RuntimeError, match="CPU-only package.*pip install onnxruntime-gpu"):
        load_session(cache.get(T.make_detector), "cuda")
    with caplog.at_level(logging.WARNING):
        session = load_session(cache.get(T.make_detector), "auto")
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert any("CPU-only package" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------------------------ detection

def test_detector_returns_parsed_boxes_fixed_and_dynamic_batch(cache):
    fixed = PersonDetector.load(cache.get(T.make_detector, boxes=DET_BOXES), "cpu")
    dynamic = PersonDetector.load(cache.get(T.make_detector, boxes=DET_BOXES, dynamic_batch=True), "cpu",
                                  batch_size=3)
    assert not fixed.dynamic_batch and dynamic.dynamic_batch
    frames = _frames(5)
    expected = parse_detections(T.detector_rows(DET_BOXES), W, H)
    assert expected.shape[0] == 3
    for result in (fixed.run(frames), dynamic.run(frames)):
        assert len(result) == 5
        for boxes in result:
            np.testing.assert_allclose(boxes, expected, rtol=1e-6)
    np.testing.assert_allclose(expected[0, :4], [0, 40 * H / 640, 150 * W / 640, 600 * H / 640], rtol=1e-6)
    np.testing.assert_allclose(expected[2, :4], [520 * W / 640, 380 * H / 640, W, H], rtol=1e-6)  # clipped


# ------------------------------------------------------------- whole path: crop, decode, back-project

@pytest.mark.parametrize("dynamic", [True, False])
def test_synthetic_peaks_recovered_through_whole_path(cache, peaks, dynamic):
    detector = PersonDetector.load(cache.get(T.make_detector, boxes=DET_BOXES), "cpu")
    pose = WholeBodyPose.load(cache.get(T.make_vitpose, peaks=peaks, dynamic_batch=dynamic), "cpu")
    frames = _frames(3)
    out = detect_and_estimate(frames, detector, pose, batch_size=4)
    assert len(out) == 3
    heat = T.gaussian_heatmaps(peaks)
    for boxes, kps in out:
        assert boxes.shape == (3, 5) and kps.shape == (3, 133, 3)
        for box, kp in zip(boxes, kps):
            x1, y1, x2, y2 = box[:4].astype(np.float64)
            w, h = x2 - x1, y2 - y1
            w, h = (w, w / 0.75) if w > 0.75 * h else (h * 0.75, h)
            w, h = w * 1.25, h * 1.25
            # independent closed form: cell u of 48 spans w / 48 image pixels, cell 24 is the box centre
            ex = (x1 + x2) / 2 + (peaks[:, 0] - 24) * w / 48
            ey = (y1 + y2) / 2 + (peaks[:, 1] - 32) * h / 64
            assert np.abs(kp[:, 0] - ex).max() / (w / 48) < 0.1
            assert np.abs(kp[:, 1] - ey).max() / (h / 64) < 0.1
            np.testing.assert_allclose(kp[:, 2], heat.reshape(133, -1).max(axis=1), rtol=1e-5)


def test_frames_without_people_get_zero_people(cache):
    nobody = np.array([[10.0, 10.0, 200.0, 400.0, 0.01, 0.0]])  # below the 0.05 threshold
    detector = PersonDetector.load(cache.get(T.make_detector, boxes=nobody), "cpu")
    pose = WholeBodyPose.load(cache.get(T.make_vitpose), "cpu")
    out = detect_and_estimate(_frames(2), detector, pose)
    assert [o.boxes.shape for o in out] == [(0, 5), (0, 5)]
    assert [o.keypoints.shape for o in out] == [(0, 133, 3), (0, 133, 3)]


def test_batched_and_one_at_a_time_give_identical_keypoints(cache, peaks):
    detector = PersonDetector.load(cache.get(T.make_detector, boxes=DET_BOXES, dynamic_batch=True), "cpu")
    dyn = WholeBodyPose.load(cache.get(T.make_vitpose, peaks=peaks, input_gain=0.05), "cpu")
    fixed = WholeBodyPose.load(cache.get(T.make_vitpose, peaks=peaks, input_gain=0.05, dynamic_batch=False), "cpu")
    frames = _frames(7, seed=4)
    runs = [detect_and_estimate(frames, detector, dyn, batch_size=16),
            detect_and_estimate(frames, detector, dyn, batch_size=5, chunk_frames=3),
            detect_and_estimate(iter(frames), detector, dyn, batch_size=1, chunk_frames=1),
            detect_and_estimate(frames, detector, fixed, batch_size=16)]
    ref = np.stack([r.keypoints for r in runs[0]])
    for run in runs[1:]:
        np.testing.assert_allclose(np.stack([r.keypoints for r in run]), ref, rtol=0, atol=1e-4)
    # the test has teeth: every crop's content moves its keypoints differently
    single = np.stack([dyn.estimate(f, r.boxes) for f, r in zip(frames, runs[0])])
    np.testing.assert_allclose(single, ref, rtol=0, atol=1e-4)
    rel = ref[..., :2] - ref[:, :, :1, :2]
    assert np.abs(rel[0] - rel[1]).max() > 0.05


def test_progress_per_chunk_and_should_stop(cache):
    detector = PersonDetector.load(cache.get(T.make_detector, boxes=DET_BOXES), "cpu")
    pose = WholeBodyPose.load(cache.get(T.make_vitpose), "cpu")
    calls = []
    out = detect_and_estimate(_frames(5), detector, pose, batch_size=2, chunk_frames=2,
                              progress=lambda done, total: calls.append((done, total)))
    assert len(out) == 5 and calls == [(2, 5), (4, 5), (5, 5)]

    class Cancelled(Exception):
        pass

    asked = []

    def stop():
        asked.append(1)
        if len(asked) > 1:
            raise Cancelled

    with pytest.raises(Cancelled):
        detect_and_estimate(iter(_frames(5)), detector, pose, chunk_frames=2, should_stop=stop)
    assert len(asked) == 2
    with pytest.raises(ValueError, match="uint8"):
        detect_and_estimate([np.zeros((H, W, 3), np.float32)], detector, pose)


# ------------------------------------------------------------------ the contract read from the file

def _declared_io(path):
    """Independent reference: the graph's declared inputs (minus initializers) and outputs, read with
    the onnx package (names, dims: an int, the symbol, or None, element type names)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto

    model = onnx.load(str(path), load_external_data=False)
    names = {t.name for t in model.graph.initializer}
    types = {TensorProto.FLOAT: "tensor(float)", TensorProto.FLOAT16: "tensor(float16)",
             TensorProto.DOUBLE: "tensor(double)"}

    def show(v):
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param if d.HasField("dim_param") else None)
                for d in v.type.tensor_type.shape.dim]
        return v.name, dims, types[v.type.tensor_type.elem_type]

    return ([show(v) for v in model.graph.input if v.name not in names], [show(v) for v in model.graph.output])


def _shown(args):
    return [(a.name, list(a.shape), a.type) for a in args]


@pytest.mark.parametrize("builder,kwargs", [(T.make_detector, {}), (T.make_detector, {"dynamic_batch": True}),
                                            (T.make_vitpose, {}), (T.make_vitpose, {"dynamic_batch": False}),
                                            (T.make_wrong_vitpose, {}), (T.make_wrong_detector, {})])
def test_graph_io_read_from_the_file_equals_the_declared_graph(cache, builder, kwargs):
    from wan_animate_kit.models.onnx_pose import read_graph_io

    path = cache.get(builder, **kwargs)
    graph = read_graph_io(path)
    ins, outs = _declared_io(path)
    assert _shown(graph.get_inputs()) == ins and _shown(graph.get_outputs()) == outs
    session = load_session(path, "cpu")  # onnxruntime lists the same inputs (it may infer output sizes)
    assert [(a.name, a.shape, a.type) for a in session.get_inputs()] == ins
    assert [a.name for a in session.get_outputs()] == [o[0] for o in outs]


def test_initializers_listed_as_inputs_are_not_inputs_and_external_data_is_checked(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from wan_animate_kit.models.onnx_pose import check_model_file, read_graph_io

    weight = numpy_helper.from_array(np.full((1, 3, 640, 640), 0.5, np.float32), name="w")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["images", "w"], ["scaled"]),
         helper.make_node("ReduceMean", ["scaled"], ["m"], axes=[1, 2, 3], keepdims=1),
         helper.make_node("Expand", ["m", "shape"], ["out"])],
        "g",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 640, 640]),
         helper.make_tensor_value_info("w", TensorProto.FLOAT, [1, 3, 640, 640])],  # IR 3 style: listed
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 300, 6])],
        [weight, numpy_helper.from_array(np.array([1, 300, 6], np.int64), name="shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    path = tmp_path / "det.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, location="det_weights.bin",
                    size_threshold=1024)
    io = read_graph_io(path)
    assert [a.name for a in io.get_inputs()] == ["images"] and [a.name for a in io.get_outputs()] == ["out"]
    assert [loc for loc, _ in io.external] == ["det_weights.bin"]
    assert io.external[0][1] == 1 * 3 * 640 * 640 * 4  # offset 0 + length
    assert check_model_file(path, "detector") == path
    assert [a.name for a in load_session(path, "cpu").get_inputs()] == ["images"]  # onnxruntime agrees
    data = tmp_path / "det_weights.bin"
    data.write_bytes(data.read_bytes()[:1000])  # a partial download
    with pytest.raises(ModelContractError, match="det_weights.bin is shorter"):
        check_model_file(path, "detector")
    data.unlink()
    with pytest.raises(ModelContractError, match="needs its external-data file det_weights.bin"):
        check_model_file(path, "detector")


def test_check_model_file_refuses_wrong_and_broken_files(cache, tmp_path, monkeypatch):
    from wan_animate_kit.models import onnx_pose
    from wan_animate_kit.models.onnx_pose import check_model_file

    opened = []
    real = onnx_pose.load_session
    monkeypatch.setattr(onnx_pose, "load_session", lambda *a, **k: opened.append(a[0]) or real(*a, **k))
    fixed_det, fixed_pose = cache.get(T.make_detector), cache.get(T.make_vitpose, dynamic_batch=False)
    assert check_model_file(fixed_det, "detector") == fixed_det
    with pytest.raises(ModelContractError, match="looks like a detector"):
        check_model_file(fixed_det, "pose")
    with pytest.raises(ModelContractError, match="looks like a pose model"):
        check_model_file(fixed_pose, "detector")
    assert opened == []  # fixed sizes: decided from the file, no session
    # a symbolic size beyond the batch: onnxruntime infers it, so a session decides (once)
    with pytest.raises(ModelContractError, match="COCO-17"):
        check_model_file(cache.get(T.make_wrong_vitpose), "pose")
    assert len(opened) == 1
    truncated = tmp_path / "cut.onnx"
    truncated.write_bytes(fixed_pose.read_bytes()[:5000])
    with pytest.raises(ModelContractError, match="cut.onnx"):
        check_model_file(truncated, "pose")
    with pytest.raises(ValueError, match="kind"):
        check_model_file(fixed_det, "segmenter")


# -------------------------------------------------------------------- sessions only while running

def test_pose_model_files_open_sessions_for_a_run_and_drop_them(cache, monkeypatch):
    import gc
    import weakref

    from wan_animate_kit.models import onnx_pose
    from wan_animate_kit.models.onnx_pose import PoseModelFiles

    created = []
    real = onnx_pose._create_session

    def record(ort, path, providers, threads):
        session = real(ort, path, ["CPUExecutionProvider"], threads)  # this machine has no GPU
        created.append((path.name, providers, weakref.ref(session)))
        return session

    monkeypatch.setattr(onnx_pose, "_create_session", record)
    files = PoseModelFiles(cache.get(T.make_detector, boxes=DET_BOXES), cache.get(T.make_vitpose))
    files.validate()
    created.clear()  # validation of the dynamic tiny ViTPose may have used a session: not kept
    gc.collect()
    gpu_asks = []
    with files.open("cpu", before_gpu=gpu_asks.append) as run:
        assert files.loaded and run.provider == "CPUExecutionProvider"
        out = detect_and_estimate(_frames(2), run.detector, run.pose)
    assert len(out) == 2 and gpu_asks == []  # the CPU needs no room on a GPU
    assert [c[1] for c in created] == [["CPUExecutionProvider"]] * 2
    gc.collect()
    assert not files.loaded and run.detector is None and run.pose is None
    assert all(ref() is None for _, _, ref in created)  # the sessions are gone

    created.clear()
    with pytest.raises(ZeroDivisionError):
        with files.open("auto", device_id=1, before_gpu=gpu_asks.append):  # CUDA tried, the CPU here
            1 / 0
    gc.collect()
    assert gpu_asks and gpu_asks[0] > files.pose.stat().st_size  # asked before the GPU sessions
    assert created[0][1] == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    assert not files.loaded and all(ref() is None for _, _, ref in created)  # dropped after the error

    files.keep_loaded = True
    created.clear()
    with files.open("cpu") as first:
        kept = first.pose
    with files.open("cpu") as second:
        assert second.pose is kept  # reused, not created again
    assert len(created) == 2 and files.loaded
    with files.open("auto") as third:  # another device: the kept ones are replaced
        assert third.pose is not kept
    del kept
    files.release()
    gc.collect()
    assert not files.loaded and all(ref() is None for _, _, ref in created)
