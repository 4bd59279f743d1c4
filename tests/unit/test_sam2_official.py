"""The SAM2 path against the official Wan2.2-Animate code, re-stated in tests/sam2_official.py.

Pinned: the model input tensor of every frame (official _load_img_v2_as_tensor + load_video_frames_v2),
the chunking and the call sequence of get_mask (fresh state per chunk, keyframe points on object 1,
forward propagation from frame 0, mask = logits > 0), the config and overrides of the official
builder for the official checkpoint, and float32 as the default precision. A recording stand-in
predictor keeps these fast; tests/unit/test_sam2_video.py runs the real (tiny) SAM2.
"""
from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from PIL import Image

from sam2_official import (OFFICIAL_OVERRIDES, RecordingPredictor, official_frame_tensor,  # noqa: E402
                           official_get_mask, official_metas)
from wan_animate_kit.models import sam2_video  # noqa: E402
from wan_animate_kit.models.sam2_video import (ChunkImages, _one_by_one, _take_resized, build_inference_state,  # noqa: E402
                                               normalisation_table, resize_for_model, segment_video)
from wan_animate_kit.preprocess.pose_types import PoseSequence  # noqa: E402
from wan_animate_kit.preprocess.sam_prompts import chunk_bounds, plan_prompts  # noqa: E402


class _Predictor:
    def __init__(self, image_size):
        self.image_size = image_size
        self.device = torch.device("cpu")


def _frames(n, h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------- frame preprocessing


@pytest.mark.parametrize("h,w,size", [(48, 80, 32), (12, 20, 64), (33, 17, 32), (64, 64, 64)])
def test_model_input_equals_the_official_frame_tensor(h, w, size):
    frames = _frames(3, h, w, seed=h * w)
    frames[0, 0, :, :] = np.arange(w)[:, None] * 255 // max(w - 1, 1)  # a ramp through the levels
    state = build_inference_state(_Predictor(size), frames)
    assert isinstance(state["images"], ChunkImages) and state["images"].data.dtype == torch.uint8
    for i in range(3):
        mine = state["images"][i]
        assert mine.dtype == torch.float32 and mine.shape == (3, size, size)
        assert torch.equal(mine, official_frame_tensor(frames[i], size)), i
    # the streaming path (ComfyUI IMAGE floats, read one frame at a time) gives the same tensors
    source = _one_by_one(torch.from_numpy(frames.astype(np.float32) / 255.0))
    data, hw = _take_resized(source, 3, size, 0)
    assert hw == (h, w) and torch.equal(data, state["images"].data)


def test_every_level_normalises_as_the_official_arithmetic():
    table = normalisation_table()
    levels = np.arange(256, dtype=np.uint8)
    for c, (mean, std) in enumerate(zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))):
        want = (torch.from_numpy(levels / 255.0).float() - torch.tensor(mean, dtype=torch.float32)) \
            / torch.tensor(std, dtype=torch.float32)
        assert torch.equal(table[c], want), c


def test_resize_is_pillows_default_bicubic_and_opencv_is_the_option():
    import cv2

    frame = _frames(1, 50, 70, seed=5)[0]
    official = np.array(Image.fromarray(frame).resize((32, 32)))  # Pillow's default filter (bicubic)
    assert np.array_equal(resize_for_model(frame[None], 32)[0].permute(1, 2, 0).numpy(), official)
    assert np.array_equal(np.array(Image.fromarray(frame).resize((32, 32), Image.Resampling.BICUBIC)), official)
    other = resize_for_model(frame[None], 32, "opencv")[0].permute(1, 2, 0).numpy()
    assert np.array_equal(other, cv2.resize(frame, (32, 32), interpolation=cv2.INTER_AREA))
    assert not np.array_equal(other, official)
    up = resize_for_model(frame[None], 96, "opencv")[0].permute(1, 2, 0).numpy()
    assert np.array_equal(up, cv2.resize(frame, (96, 96), interpolation=cv2.INTER_CUBIC))
    with pytest.raises(ValueError, match="official, opencv"):
        resize_for_model(frame[None], 32, "lanczos")
    with pytest.raises(ValueError, match="frame resize"):
        segment_video(RecordingPredictor(), _frames(2, 8, 8), plan_prompts(None, 2, user_positive=[[1, 1]],
                                                                            width=8, height=8), 2, resize="x")


def test_sam2s_own_jpeg_loader_gives_the_same_tensor(tmp_path):
    """sam2's JPEG-folder loader is the code the official in-memory loader was written from."""
    pytest.importorskip("sam2")
    from sam2.utils.misc import load_video_frames

    frames = _frames(2, 40, 56, seed=9)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(tmp_path / f"{i:05d}.jpg", quality=95)
    theirs, h, w = load_video_frames(str(tmp_path), 32, offload_video_to_cpu=True,
                                     compute_device=torch.device("cpu"))
    decoded = np.stack([np.array(Image.open(tmp_path / f"{i:05d}.jpg").convert("RGB")) for i in range(2)])
    ours = build_inference_state(_Predictor(32), decoded)
    assert (ours["video_height"], ours["video_width"]) == (h, w) == (40, 56)
    for i in range(2):
        assert torch.equal(ours["images"][i], theirs[i]), i


# ----------------------------------------------------------------------------- chunking and get_mask


def _official_chunks(n, th=400):
    steps = 1 if n < th else (n + th) // th
    out = []
    for i in range(steps):
        part = list(range(n))[i * th:(i + 1) * th]
        if part:
            out.append((part[0], part[-1] + 1))
    return out


@pytest.mark.parametrize("n", [1, 3, 4, 5, 399, 400, 401, 799, 800, 801, 1000, 1200, 1201])
def test_chunks_are_the_official_ones(n):
    assert chunk_bounds(n, 400) == _official_chunks(n)
    plans = plan_prompts(None, n, user_positive=[[1, 1]], width=8, height=8)  # default chunk size
    assert [(p.start, p.stop) for p in plans] == _official_chunks(n)


def _pose(n, w, h, seed):
    rng = np.random.default_rng(seed)
    kps = np.zeros((n, 1, 133, 3), np.float32)
    kps[..., 0] = rng.uniform(0, w, (n, 1, 133))
    kps[..., 1] = rng.uniform(0, h, (n, 1, 133))
    kps[..., 2] = rng.uniform(0.05, 1.0, (n, 1, 133))
    if n > 100:
        kps[100, 0, :23, :2] = -3.0  # a failed body on a keyframe: the previous frame's is prompted
    return kps


@pytest.mark.parametrize("n", [3, 5, 400, 401, 1000])
def test_default_segmentation_makes_the_official_get_mask_calls(n):
    w, h = 20, 12
    frames = _frames(n, h, w, seed=n)
    kps = _pose(n, w, h, seed=n)
    theirs = RecordingPredictor()
    official = official_get_mask(theirs, list(frames), official_metas(kps[:, 0], w, h))

    ours = RecordingPredictor()
    plans = plan_prompts(PoseSequence(kps, (0,), w, h), n)  # defaults: 400 frames, 4 keyframes, official rule
    masks = segment_video(ours, frames, plans, n)  # defaults: official resize

    calls = [c for c in theirs.log if c[0] != "reset"]
    assert ours.log == calls
    chunks = len(_official_chunks(n))
    assert sum(c[0] == "propagate" for c in calls) == chunks  # the official empty last slice is skipped
    assert [c[2] for c in calls if c[0] == "propagate"] == [b - a for a, b in _official_chunks(n)]
    assert len(ours.inputs) == len(theirs.inputs) == chunks
    for a, b in zip(ours.inputs, theirs.inputs):
        assert len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))
    assert masks.dtype == bool and masks.shape == (n, h, w) and len(official) == n
    assert np.array_equal(masks, np.stack(official).astype(bool))
    assert masks.any() and not masks.all()


def test_opencv_resize_option_changes_only_the_model_input():
    n, w, h = 5, 20, 12
    frames = _frames(n, h, w, seed=3)
    plans = plan_prompts(PoseSequence(_pose(n, w, h, 1), (0,), w, h), n)
    official, other = RecordingPredictor(), RecordingPredictor()
    segment_video(official, frames, plans, n)
    segment_video(other, frames, plans, n, resize="opencv")
    assert official.log == other.log
    assert not torch.equal(official.inputs[0][0], other.inputs[0][0])


# ----------------------------------------------------------------------------- loader


def test_official_config_and_overrides():
    pytest.importorskip("sam2")
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf
    from wan_animate_kit.models import sam2_loader

    assert list(sam2_loader.VIDEO_PREDICTOR_OVERRIDES) == OFFICIAL_OVERRIDES
    assert sam2_loader.OFFICIAL_CONFIG == "configs/sam2/sam2_hiera_l.yaml"
    assert sam2_loader.OFFICIAL_CHECKPOINT == "sam2_hiera_large.pt"
    ours = OmegaConf.to_container(sam2_loader.sam2_model_config("sam2_hiera_l"))
    previous = GlobalHydra.instance().hydra if GlobalHydra.instance().is_initialized() else None
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module("sam2", version_base="1.2"):
            cfg = compose(config_name="sam2_hiera_l.yaml", overrides=OFFICIAL_OVERRIDES)  # the official call
            OmegaConf.resolve(cfg)
    finally:
        GlobalHydra.instance().clear()
        if previous is not None:
            GlobalHydra.instance().initialize(previous)
    assert ours == OmegaConf.to_container(cfg)
    assert ours["model"]["image_size"] == 1024 and ours["model"]["fill_hole_area"] == 8


def test_the_official_checkpoint_layout_picks_the_official_config(monkeypatch):
    pytest.importorskip("sam2")
    from hydra.utils import instantiate
    from wan_animate_kit.models import sam2_loader

    cfg = sam2_loader.sam2_model_config(sam2_loader.OFFICIAL_CONFIG)
    linspace = torch.linspace  # Hiera reads its drop-path rates with .item(): keep those on the CPU
    monkeypatch.setattr(torch, "linspace", lambda *a, **k: linspace(*a, **{**k, "device": "cpu"}))
    with torch.device("meta"):  # the SAM 2 Hiera-L layout without allocating its weights
        model = instantiate(cfg.model, _recursive_=True)
    shapes = {k: v for k, v in model.state_dict().items()}
    assert sam2_loader.detect_sam2_config(shapes, "model.pt") == ("sam2", "l")
    assert sam2_loader.detect_sam2_config(None, sam2_loader.OFFICIAL_CHECKPOINT) == ("sam2", "l")
    assert sam2_loader.SAM2_CONFIGS[("sam2", "l")] == sam2_loader.OFFICIAL_CONFIG


def test_defaults_are_official_precision_and_resize():
    from wan_animate_kit.models import sam2_loader

    assert inspect.signature(sam2_loader.load_sam2).parameters["dtype"].default == "fp32"
    assert inspect.signature(sam2_loader.load_sam2).parameters["hole_filling"].default is True
    for fn in (sam2_video.iter_segment_frames, sam2_video.build_inference_state, resize_for_model):
        assert inspect.signature(fn).parameters["resize" if fn is not resize_for_model else "method"].default \
            == "official"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cpu_hole_filling_is_the_official_fill_hole_area_8(seed):
    """sam2's fill_holes_in_mask_scores (CUDA extension): background components (score <= 0,
    8-connected) of at most 8 pixels get the score 0.1; re-stated with scipy."""
    from scipy import ndimage
    from wan_animate_kit.models.sam2_loader import fill_holes_cpu

    rng = np.random.default_rng(seed)
    scores = rng.normal(0.6, 1.0, (2, 1, 40, 48)).astype(np.float32)  # foreground with holes of all sizes
    scores[0, 0, 5:9, 5:8] = -1.0  # a 12-pixel hole stays (unless it touches other background)
    scores[1, 0, :, :3] = -2.0  # a big background band
    want = scores.copy()
    for b in range(2):
        labels, _ = ndimage.label(scores[b, 0] <= 0, structure=np.ones((3, 3), int))
        sizes = np.bincount(labels.ravel())
        hole = (labels > 0) & (sizes[labels] <= 8)
        want[b, 0][hole] = np.float32(0.1)
    got = fill_holes_cpu(torch.from_numpy(scores), 8)
    assert got.dtype == torch.float32 and torch.equal(got, torch.from_numpy(want))
    assert not np.array_equal(want, scores)  # some holes were filled
