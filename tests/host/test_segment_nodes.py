"""SAM2 nodes in the real host (in-process): the tiny random SAM 2.1 (the machinery, not mask quality), and the
defaults against the official get_mask re-stated (tests/sam2_official.py) on a recording stand-in predictor."""
import numpy as np
import pytest
import torch

pytestmark = pytest.mark.host
pytest.importorskip("sam2")


@pytest.fixture(scope="module")
def sam2_model(tiny_models):
    import folder_paths
    from wan_animate_kit.nodes.folders import register_model_folders
    from wan_animate_kit.nodes.segment import Sam2Loader

    register_model_folders()
    folder_paths.add_model_folder_path("sam2", str(tiny_models["root"] / "sam2"))
    folder_paths.filename_list_cache.pop("sam2", None)
    assert "tiny_sam2.1_hiera_t.pt" in Sam2Loader.GET_SCHEMA().inputs[0].options
    args = node_defaults(Sam2Loader)  # dtype as a new node has it (fp32, official); a small input size
    args.update(checkpoint="tiny_sam2.1_hiera_t.pt", device="cpu", image_size=64)
    return Sam2Loader.execute(**args).result[0]


def standing_pose(t, w, h):
    from tiny_models import person_peaks
    from wan_animate_kit.preprocess.pose_types import PoseSequence

    peaks = person_peaks()
    kps = np.zeros((t, 1, 133, 3), np.float32)
    kps[:, 0, :, 0] = w * 0.3 + peaks[:, 0] / 48 * w * 0.4
    kps[:, 0, :, 1] = peaks[:, 1] / 64 * h
    kps[:, 0, :, 2] = 0.9
    return PoseSequence(kps, (0,), w, h, fps=10.0)


def segment(model, pose, images, **kw):
    from wan_animate_kit.nodes.segment import CharacterSegmentation

    args = dict(chunk_size=4, keyframes=2, threshold=0.5, positive_points="", negative_points="",
                points_mode="add", points_frame=0, object_points="")
    args.update(kw)
    mask, preview, report, masks = CharacterSegmentation.execute(sam2_model=model, pose=pose, images=images,
                                                                 **args).result
    # the compact output holds the same masks as the MASK batch
    assert masks.num_frames == mask.shape[0] and masks.size == (mask.shape[2], mask.shape[1])
    assert torch.equal(torch.from_numpy(masks.read(0, masks.num_frames)).float() / 255, mask)
    return mask, preview, report


def test_frames_output_off_keeps_only_the_compact_masks(sam2_model):
    from comfy_execution.graph_utils import ExecutionBlocker
    from wan_animate_kit.nodes.segment import CharacterSegmentation
    from wan_animate_kit.preprocess.frames import PackedMasks

    imgs = torch.rand(6, 48, 64, 3, generator=torch.Generator().manual_seed(3))
    pose = standing_pose(6, 64, 48)
    mask, _, report = segment(sam2_model, pose, imgs)
    args = dict(chunk_size=4, keyframes=2, threshold=0.5, positive_points="", negative_points="",
                points_mode="add", points_frame=0, object_points="", frames_output=False)
    off = CharacterSegmentation.execute(sam2_model=sam2_model, pose=pose, images=imgs, **args).result
    assert isinstance(off[0], ExecutionBlocker) and isinstance(off[1], ExecutionBlocker)
    assert "frames_output" in off[0].message and off[2] == report
    assert isinstance(off[3], PackedMasks) and off[3].nbytes < mask.numel() // 8 + 100 * 6
    assert torch.equal(torch.from_numpy(off[3].read(0, 6)).float() / 255, mask)


def test_segmentation_in_chunks_gives_one_mask_per_frame(sam2_model):
    imgs = torch.rand(6, 48, 64, 3, generator=torch.Generator().manual_seed(3))
    pose = standing_pose(6, 64, 48)
    mask, preview, report = segment(sam2_model, pose, imgs)
    assert tuple(mask.shape) == (6, 48, 64) and set(torch.unique(mask).tolist()) <= {0.0, 1.0}
    assert preview.shape == (6, 48, 64, 3) and "2 chunk(s)" in report
    again = segment(sam2_model, pose, imgs)[0]
    assert torch.equal(mask, again)  # deterministic


def test_segmentation_errors_name_the_input(sam2_model):
    imgs = torch.rand(3, 48, 64, 3)
    with pytest.raises(ValueError, match="pose"):
        segment(sam2_model, standing_pose(4, 64, 48), imgs)
    with pytest.raises(ValueError, match="positive_points"):
        segment(sam2_model, standing_pose(3, 64, 48), imgs, positive_points="[{x: oops")
    with pytest.raises(ValueError, match="images"):
        from wan_animate_kit.nodes.segment import CharacterSegmentation

        CharacterSegmentation.execute(sam2_model=sam2_model, pose=standing_pose(3, 64, 48), chunk_size=4,
                                      keyframes=2, threshold=0.5, positive_points="", negative_points="",
                                      points_mode="add", points_frame=0, object_points="")


def test_loader_names_a_missing_checkpoint(tiny_models):
    from wan_animate_kit.nodes.segment import Sam2Loader

    with pytest.raises(ValueError, match="checkpoint"):
        Sam2Loader.execute(checkpoint="nope.pt", device="cpu", dtype="fp32", image_size=256)


def node_defaults(node):
    """The schema's default of every input that has one (what a new node in the UI starts with)."""
    return {i.id: i.default for i in node.GET_SCHEMA().inputs if getattr(i, "default", None) is not None}


def test_node_defaults_are_official(host):
    from wan_animate_kit.nodes.segment import CharacterSegmentation, Sam2Loader

    loader = {i.id: i for i in Sam2Loader.GET_SCHEMA().inputs}
    assert loader["dtype"].default == "fp32" and loader["image_size"].default == 0
    assert "official" in loader["dtype"].tooltip
    seg = {i.id: i for i in CharacterSegmentation.GET_SCHEMA().inputs}
    assert seg["chunk_size"].default == 400 and seg["keyframes"].default == 4
    assert seg["prompt_rule"].default == "official" and list(seg["prompt_rule"].options) == ["official", "confident"]
    assert seg["frame_resize"].default == "official" and list(seg["frame_resize"].options) == ["official", "opencv"]
    for name in ("prompt_rule", "frame_resize", "threshold"):
        assert "official" in seg[name].tooltip, name
    assert seg["positive_points"].default == seg["negative_points"].default == seg["object_points"].default == ""
    # new inputs come last, so widget values of saved workflows keep their places
    assert [i.id for i in CharacterSegmentation.GET_SCHEMA().inputs][-3:] == ["prompt_rule", "frame_resize",
                                                                            "frames_output"]


@pytest.mark.parametrize("n", [5, 401])
def test_node_with_its_defaults_makes_the_official_get_mask_calls(host, n):
    """The node as a new one in the UI, on a stand-in predictor, against the official get_mask re-stated."""
    from sam2_official import RecordingPredictor, official_get_mask, official_metas
    from wan_animate_kit.nodes.segment import CharacterSegmentation
    from wan_animate_kit.preprocess.pose_types import PoseSequence

    w, h = 20, 12
    rng = np.random.default_rng(n)
    frames = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    kps = np.zeros((n, 1, 133, 3), np.float32)
    kps[..., 0], kps[..., 1] = rng.uniform(0, w, (n, 1, 133)), rng.uniform(0, h, (n, 1, 133))
    kps[..., 2] = rng.uniform(0.05, 1.0, (n, 1, 133))
    theirs = RecordingPredictor()
    official = official_get_mask(theirs, list(frames), official_metas(kps[:, 0], w, h))
    ours = RecordingPredictor()
    args = {k: v for k, v in node_defaults(CharacterSegmentation).items()}
    mask, preview, report, _ = CharacterSegmentation.execute(
        sam2_model=ours, pose=PoseSequence(kps, (0,), w, h, fps=30.0),
        images=torch.from_numpy(frames.astype(np.float32) / 255.0), **args).result
    assert ours.log == [c for c in theirs.log if c[0] != "reset"]
    assert all(torch.equal(a, b) for x, y in zip(ours.inputs, theirs.inputs) for a, b in zip(x, y))
    assert torch.equal(mask, torch.from_numpy(np.stack(official).astype(np.float32)))


def test_bad_option_names_the_input(host):
    from sam2_official import RecordingPredictor
    from wan_animate_kit.nodes.segment import CharacterSegmentation

    imgs = torch.rand(3, 48, 64, 3)
    for name in ("prompt_rule", "frame_resize"):
        args = dict(chunk_size=4, keyframes=2, threshold=0.5, positive_points="", negative_points="",
                    points_mode="add", points_frame=0, object_points="", **{name: "nope"})
        with pytest.raises(ValueError, match=f"'{name}'.*official is the default"):
            CharacterSegmentation.execute(sam2_model=RecordingPredictor(), pose=standing_pose(3, 64, 48),
                                          images=imgs, **args)


def test_tiny_sam2_runs_with_the_defaults_and_the_options(sam2_model):
    """The real tiny SAM2 through the nodes: loader defaults (fp32), official and pack options."""
    from wan_animate_kit.nodes.segment import CharacterSegmentation

    assert sam2_model.dtype == torch.float32 and sam2_model.image_size == 64
    imgs = torch.rand(5, 48, 64, 3, generator=torch.Generator().manual_seed(4))
    pose = standing_pose(5, 64, 48)
    defaults = node_defaults(CharacterSegmentation)
    official = CharacterSegmentation.execute(sam2_model=sam2_model, pose=pose, images=imgs, **defaults).result[0]
    assert tuple(official.shape) == (5, 48, 64) and set(torch.unique(official).tolist()) <= {0.0, 1.0}
    other = CharacterSegmentation.execute(sam2_model=sam2_model, pose=pose, images=imgs,
                                          **{**defaults, "prompt_rule": "confident", "frame_resize": "opencv"})
    assert tuple(other.result[0].shape) == (5, 48, 64) and "1 chunk(s)" in other.result[2]


# ------------------------------------------------------------- memory: on the host's device only while it runs


@pytest.fixture
def cuda_host(monkeypatch, sam2_model):
    """The host as if it ran on cuda:0: the host calls SAM2 makes are recorded; ``predictor.to`` records
    the device and moves for real only to the CPU (there is no GPU here)."""
    import comfy.model_management as mm

    events = []
    gpu = torch.device("cuda", 0)
    monkeypatch.setattr(mm, "get_torch_device", lambda: gpu)
    monkeypatch.setattr(mm, "unet_offload_device", lambda: torch.device("cpu"))
    monkeypatch.setattr(mm, "free_memory", lambda need, device, keep_loaded=[]: events.append(("free", need, device)))
    monkeypatch.setattr(mm, "soft_empty_cache", lambda force=False: events.append(("empty",)))
    return gpu, events


def _record_moves(monkeypatch, model, events):
    real = model.predictor.to

    def to(*args, **kwargs):
        device = torch.device(args[0] if args else kwargs["device"])
        events.append(("to", device))
        return real(device) if device.type == "cpu" else model.predictor

    monkeypatch.setattr(model.predictor, "to", to)


def _load(**kw):
    from wan_animate_kit.nodes.segment import Sam2Loader

    args = node_defaults(Sam2Loader)
    args.update(checkpoint="tiny_sam2.1_hiera_t.pt", image_size=64)
    args.update(kw)
    return Sam2Loader.execute(**args).result[0]


def test_sam2_waits_on_the_offload_device_and_runs_on_the_hosts_device(sam2_model, cuda_host, monkeypatch):
    gpu, events = cuda_host
    model = _load(device="auto")  # auto = the host's device
    assert model.device_choice == "auto" and model.home_device == torch.device("cpu")
    assert all(p.device.type == "cpu" for p in model.predictor.parameters())  # loaded to the offload device
    _record_moves(monkeypatch, model, events)
    imgs = torch.rand(3, 48, 64, 3, generator=torch.Generator().manual_seed(3))
    mask = segment(model, standing_pose(3, 64, 48), imgs)[0]
    assert tuple(mask.shape) == (3, 48, 64)
    kinds = [e[0] for e in events]
    assert kinds == ["free", "to", "to", "empty"], events
    assert events[0][2] == gpu and events[0][1] > sum(p.numel() * 4 for p in model.predictor.parameters())
    assert events[1] == ("to", gpu)  # on the host's device for the run only
    assert events[2] == ("to", torch.device("cpu"))  # and back on the offload device when the node returns
    assert model.device == torch.device("cpu")
    assert all(t.device.type == "cpu" for t in (*model.predictor.parameters(), *model.predictor.buffers()))


def test_sam2_goes_back_after_an_error_and_an_interrupt(sam2_model, cuda_host, monkeypatch):
    import comfy.model_management as mm

    gpu, events = cuda_host
    model = _load(device="auto")
    _record_moves(monkeypatch, model, events)
    imgs = torch.rand(3, 48, 64, 3, generator=torch.Generator().manual_seed(3))

    def broken(*args, **kwargs):
        raise RuntimeError("tracking failed")

    with monkeypatch.context() as m:
        m.setattr(model.predictor, "propagate_in_video", broken)
        with pytest.raises(RuntimeError, match="tracking failed"):
            segment(model, standing_pose(3, 64, 48), imgs)
    assert [e[0] for e in events] == ["free", "to", "to", "empty"] and events[2] == ("to", torch.device("cpu"))
    events.clear()
    mm.interrupt_current_processing(True)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            segment(model, standing_pose(3, 64, 48), imgs)
    finally:
        mm.interrupt_current_processing(False)
    assert [e[0] for e in events] == ["free", "to", "to", "empty"] and events[2] == ("to", torch.device("cpu"))
    assert all(p.device.type == "cpu" for p in model.predictor.parameters())


def test_sam2_device_choice_cpu_and_the_real_cpu_host(sam2_model, monkeypatch):
    import comfy.model_management as mm

    assert mm.get_torch_device().type == "cpu"  # this machine: the host runs on the CPU
    events = []
    model = _load(device="auto")
    _record_moves(monkeypatch, model, events)
    monkeypatch.setattr(mm, "free_memory", lambda need, device, keep_loaded=[]: events.append(("free", device)))
    segment(model, standing_pose(3, 64, 48), torch.rand(3, 48, 64, 3))
    assert [e for e in events if e[0] == "to"] == [("to", torch.device("cpu"))] * 2
    assert not any(e[0] == "free" for e in events)  # no GPU to make room on
    assert sam2_model.device_choice == "cpu" and sam2_model.home_device == torch.device("cpu")
