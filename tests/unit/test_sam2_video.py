"""SAM2 loader and chunked video segmentation, on a tiny random SAM 2.1 (tests/tiny_sam2.py).

The random model's masks are noise, so these tests check the machinery: config detection, strict
and weights-only loading, chunking with fresh states, the prompts each chunk receives, memory held
per chunk, object subtraction, seeding across chunks, determinism and frame sources.
"""
from __future__ import annotations

import dataclasses
import pathlib

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip("sam2")

from tiny_sam2 import build_tiny_state_dict, tiny_sam2_files  # noqa: E402
from wan_animate_kit.models import sam2_loader  # noqa: E402
from wan_animate_kit.models.sam2_loader import (detect_sam2_config, fill_holes_cpu, load_sam2,  # noqa: E402
                                                read_sam2_state_dict)
from wan_animate_kit.models.sam2_video import (ChunkImages, SegmentationInterrupted,  # noqa: E402
                                               build_inference_state, iter_segment_frames, iter_segment_video,
                                               segment_video)
from wan_animate_kit.preprocess.sam_prompts import ChunkPrompts  # noqa: E402

SMALL = ["++model.image_size=64", "++model.max_obj_ptrs_in_encoder=4"]  # fast; memory window 8 frames


def P(*xy: float, labels: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    pts = np.asarray(xy, np.float32).reshape(-1, 2)
    return pts, np.asarray(labels if labels is not None else [1] * len(pts), np.int32)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, pathlib.Path]:
    return tiny_sam2_files(tmp_path_factory.mktemp("sam2"))


@pytest.fixture(scope="module")
def model(files):
    return load_sam2(files["pt"], device="cpu", overrides=SMALL)


@pytest.fixture(scope="module")
def video() -> np.ndarray:
    """16 frames 64x64: a bright square drifting over a textured background."""
    rng = np.random.default_rng(7)
    base = rng.integers(0, 90, (64, 64, 3), dtype=np.uint8)
    frames = np.repeat(base[None], 16, axis=0)
    for t in range(16):
        frames[t, 20:44, 10 + t:34 + t] = (230, 200, 40)
    return frames


class Spy:
    """Wraps predictor methods on the instance and records what they receive."""

    def __init__(self, monkeypatch, predictor):
        self.adds: list[dict] = []
        self.masks_added: list[dict] = []
        self.props: list[dict] = []
        self.logits: dict[tuple[int, int, bool], torch.Tensor] = {}
        self.max_non_cond = 0
        self.chunk = -1
        add, add_mask, prop = (predictor.add_new_points_or_box, predictor.add_new_mask,
                               predictor.propagate_in_video)

        def spy_add(state, frame_idx, obj_id, points=None, labels=None, clear_old_points=True, box=None, **kw):
            if not state["obj_id_to_idx"]:
                self.chunk += 1
            self.adds.append(dict(chunk=self.chunk, frame=frame_idx, obj=obj_id, objs_before=len(state["obj_id_to_idx"]),
                                  points=None if points is None else np.array(points), clear=clear_old_points,
                                  box=None if box is None else np.array(box)))
            return add(state, frame_idx, obj_id, points=points, labels=labels, clear_old_points=clear_old_points,
                       box=box, **kw)

        def spy_add_mask(state, frame_idx, obj_id, mask):
            if not state["obj_id_to_idx"]:
                self.chunk += 1
            self.masks_added.append(dict(chunk=self.chunk, frame=frame_idx, obj=obj_id))
            return add_mask(state, frame_idx, obj_id, mask)

        def spy_prop(state, start_frame_idx=None, max_frame_num_to_track=None, reverse=False):
            images = state["images"]
            self.props.append(dict(chunk=self.chunk, images=len(images), data=tuple(images.data.shape),
                                   num_frames=state["num_frames"], hw=(state["video_height"], state["video_width"]),
                                   start=start_frame_idx, reverse=reverse))
            for t, ids, logits in prop(state, start_frame_idx=start_frame_idx,
                                       max_frame_num_to_track=max_frame_num_to_track, reverse=reverse):
                self.logits[(self.chunk, t, reverse)] = logits.clone()
                yield t, ids, logits
                self.max_non_cond = max(self.max_non_cond, *(len(o["non_cond_frame_outputs"])
                                                             for o in state["output_dict_per_obj"].values()))

        monkeypatch.setattr(predictor, "add_new_points_or_box", spy_add, raising=False)
        monkeypatch.setattr(predictor, "add_new_mask", spy_add_mask, raising=False)
        monkeypatch.setattr(predictor, "propagate_in_video", spy_prop, raising=False)


def fake_propagation(monkeypatch, predictor, autocast_seen=None):
    """Replace tracking by known logits: character = left half, object 2 = top half."""

    def fake(state, start_frame_idx=None, max_frame_num_to_track=None, reverse=False):
        if autocast_seen is not None:
            autocast_seen.append(torch.is_autocast_enabled("cpu"))
        ids, n = list(state["obj_ids"]), state["num_frames"]
        h, w = state["video_height"], state["video_width"]
        order = range(start_frame_idx, -1, -1) if reverse else range(start_frame_idx, n)
        for t in order:
            logits = torch.full((len(ids), 1, h, w), -5.0)
            logits[ids.index(1), :, :, : w // 2] = 5.0
            if 2 in ids:
                logits[ids.index(2), :, : h // 2, :] = 5.0
            yield t, ids, logits
            if autocast_seen is not None:
                autocast_seen.append(torch.is_autocast_enabled("cpu"))

    monkeypatch.setattr(predictor, "propagate_in_video", fake, raising=False)


# ----------------------------------------------------------------------------- loader


def test_pt_and_safetensors_load_and_pick_config_from_keys(files, model):
    assert (model.config, model.version, model.size) == ("configs/sam2.1/sam2.1_hiera_t.yaml", "sam2.1", "t")
    assert model.dtype == torch.float32  # official precision by default (no autocast)
    assert model.image_size == 64 and model.predictor.max_obj_ptrs_in_encoder == 4
    assert type(model.predictor).__name__ == "SAM2VideoPredictor"
    # the video-predictor settings build_sam2_video_predictor applies
    assert model.predictor.binarize_mask_from_pts_for_mem_enc is True
    assert model.predictor.sam_mask_decoder.dynamic_multimask_via_stability is True
    half = load_sam2(files["safetensors"], device="cpu", overrides=["++model.image_size=128"])
    assert half.config == model.config
    ref = build_tiny_state_dict()
    for key in ("image_encoder.trunk.patch_embed.proj.weight", "obj_ptr_tpos_proj.weight", "no_obj_embed_spatial"):
        assert torch.equal(model.predictor.state_dict()[key], ref[key])
        assert torch.equal(half.predictor.state_dict()[key], ref[key].half().float())


def test_detect_config_from_trunk_shapes_and_version_keys():
    for (embed, blocks), size in sam2_loader.TRUNK_SIZES.items():
        sd = {"image_encoder.trunk.patch_embed.proj.weight": torch.empty(embed, 3, 7, 7)}
        sd.update({f"image_encoder.trunk.blocks.{i}.norm1.weight": torch.empty(1) for i in range(blocks)})
        assert detect_sam2_config(sd) == ("sam2", size)
        assert detect_sam2_config({**sd, "obj_ptr_tpos_proj.weight": torch.empty(1)}) == ("sam2.1", size)
    assert detect_sam2_config({}, "sam2_hiera_large.pt") == ("sam2", "l")
    assert detect_sam2_config({}, "sam2.1_hiera_base_plus-fp16.safetensors") == ("sam2.1", "b+")
    assert detect_sam2_config(None, "/x/sam2.1_hiera_small.pt") == ("sam2.1", "s")
    with pytest.raises(ValueError, match="sam2.1_hiera_l"):
        detect_sam2_config({"foo": torch.empty(1)}, "model.pt")


def test_sam2_0_checkpoint_is_told_from_2_1(tmp_path):
    sd = {k: v for k, v in build_tiny_state_dict().items()
          if not k.startswith(("no_obj_embed_spatial", "obj_ptr_tpos_proj"))}
    path = tmp_path / "model.pt"  # name says nothing: the keys decide
    torch.save({"model": sd}, path)
    loaded = load_sam2(path, device="cpu", overrides=["++model.image_size=128"], hole_filling=False)
    assert (loaded.version, loaded.size) == ("sam2", "t") and loaded.hole_filling == "off"
    assert loaded.predictor.fill_hole_area == 0


def test_loading_is_weights_only(files, tmp_path, monkeypatch):
    seen = []
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    read_sam2_state_dict(files["pt"])
    assert seen == [True]
    monkeypatch.undo()

    class Payload:
        ran = False

        def __reduce__(self):
            return (_payload_ran, ())

    path = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": {"x": torch.zeros(1)}, "extra": Payload()}, path)
    with pytest.raises(ValueError, match="weights_only"):
        load_sam2(path, device="cpu")
    assert not PAYLOAD_RAN


PAYLOAD_RAN = []


def _payload_ran():
    PAYLOAD_RAN.append(True)
    return None


def test_wrong_files_give_clear_errors(files, tmp_path):
    from safetensors.torch import save_file

    text = tmp_path / "sam2.1_hiera_tiny.pt"
    text.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="weights_only"):
        load_sam2(text, device="cpu")
    wrong_ext = tmp_path / "sam2.1_hiera_tiny.txt"
    wrong_ext.write_text("x")
    with pytest.raises(ValueError, match="extension"):
        load_sam2(wrong_ext, device="cpu")
    with pytest.raises(FileNotFoundError):
        load_sam2(tmp_path / "missing.pt", device="cpu")
    other = tmp_path / "some_model.safetensors"
    save_file({"encoder.weight": torch.zeros(2, 2)}, str(other))
    with pytest.raises(ValueError, match="Cannot tell which SAM2 model.*sam2_hiera_b\\+"):
        load_sam2(other, device="cpu")
    with pytest.raises(ValueError, match=r"does not match config .*sam2.1_hiera_s.*missing keys.*shape mismatches \[image_encoder"):
        load_sam2(files["pt"], device="cpu", config="sam2.1_hiera_s", overrides=["++model.image_size=128"])
    with pytest.raises(ValueError, match="Unknown SAM2 config"):
        load_sam2(files["pt"], device="cpu", config="sam3_huge")
    with pytest.raises(ValueError, match="dtype"):
        load_sam2(files["pt"], device="cpu", dtype="int8")


def test_prefixed_safetensors_keys_are_stripped(tmp_path):
    from safetensors.torch import save_file

    sd = build_tiny_state_dict()
    path = tmp_path / "repack.safetensors"
    save_file({f"model.{k}": v.half() for k, v in sd.items()}, str(path))
    out = read_sam2_state_dict(path)
    assert set(out) == set(sd)
    assert detect_sam2_config(out) == ("sam2.1", "t")


def test_hole_filling_without_cuda_extension(model):
    scores = torch.full((1, 1, 12, 12), -3.0)
    scores[0, 0, 2:10, 2:10] = 4.0
    scores[0, 0, 4:6, 4:6] = -2.0  # 4-pixel hole inside the object
    scores[0, 0, 7, 7] = -1.0  # 1-pixel hole
    filled = fill_holes_cpu(scores, 8)
    assert torch.all(filled[0, 0, 4:6, 4:6] == 0.1) and filled[0, 0, 7, 7] == 0.1
    outside = torch.ones(12, 12, dtype=torch.bool)
    outside[2:10, 2:10] = False
    assert torch.equal(filled[0, 0][outside], scores[0, 0][outside])  # the 80-pixel background stays
    assert torch.equal(fill_holes_cpu(scores, 3)[0, 0, 4:6, 4:6], scores[0, 0, 4:6, 4:6])  # too big at 3
    if not sam2_loader.sam2_cuda_extension_available():
        assert model.hole_filling == "cpu" and model.predictor.fill_hole_area == 0


# ----------------------------------------------------------------------------- segmentation


def test_chunks_get_fresh_states_their_own_frames_and_prompts(model, video, monkeypatch):
    spy = Spy(monkeypatch, model.predictor)
    prompts = [ChunkPrompts(0, 5, {0: P(30, 30), 3: P(40, 30, 5, 5, labels=[1, 0])}),
               ChunkPrompts(5, 9, {1: P(33, 31)}),
               ChunkPrompts(9, 11)]
    parts, ticks = [], []
    masks = segment_video(model, video, prompts, 11, progress=lambda d, t: ticks.append((d, t)),
                          on_chunk=parts.append)
    assert masks.shape == (11, 64, 64) and masks.dtype == bool
    assert [(p.start, p.stop, p.prompted) for p in parts] == [(0, 5, True), (5, 9, True), (9, 11, False)]
    assert not masks[9:].any()
    assert ticks == [(i, 11) for i in range(1, 12)]
    # prompts: chunk-local frames, pixel coordinates as given, object 1, old points cleared
    assert [(a["chunk"], a["frame"], a["obj"], a["objs_before"], a["clear"]) for a in spy.adds] == [
        (0, 0, 1, 0, True), (0, 3, 1, 1, True), (1, 1, 1, 0, True)]
    np.testing.assert_array_equal(spy.adds[1]["points"], [[40, 30], [5, 5]])
    # each state holds only its chunk's frames; chunk 1 starts at its local frame 1 and fills frame 0 backwards
    assert [(p["chunk"], p["images"], p["data"], p["num_frames"], p["hw"], p["start"], p["reverse"])
            for p in spy.props] == [(0, 5, (5, 3, 64, 64), 5, (64, 64), 0, False),
                                    (1, 4, (4, 3, 64, 64), 4, (64, 64), 1, False),
                                    (1, 4, (4, 3, 64, 64), 4, (64, 64), 1, True)]
    assert (1, 0, True) in spy.logits and (1, 0, False) not in spy.logits
    for (chunk, t, reverse), logits in spy.logits.items():
        if not (reverse and t == 1):
            np.testing.assert_array_equal(masks[[0, 5][chunk] + t], logits[0, 0].numpy() > 0)


def _tracked(model, video, monkeypatch, prompts, n, prune):
    spy = Spy(monkeypatch, model.predictor)
    masks = segment_video(model, video, prompts, n, prune_memory=prune)
    monkeypatch.undo()
    return masks, spy.logits, spy.max_non_cond


@pytest.mark.parametrize("keyframes", [(0,), (2, 9)])
def test_memory_pruning_keeps_the_masks_and_bounds_the_state(model, video, monkeypatch, keyframes):
    prompts = [ChunkPrompts(0, 12, {k: P(30 + k, 32) for k in keyframes})]
    pruned = _tracked(model, video, monkeypatch, prompts, 12, True)
    full = _tracked(model, video, monkeypatch, prompts, 12, False)
    window = 8  # max(num_maskmem 7 * stride 1, 4 pointers - 1) + 1
    assert full[2] == 12 - len(keyframes)  # unpruned: every tracked non-prompt frame stays
    if keyframes == (0,):
        assert pruned[2] == window  # forward only: a sliding window
    else:  # the frames right after the first prompt are kept for the backward pass
        assert pruned[2] <= full[2]
    assert pruned[0].any()
    np.testing.assert_array_equal(full[0], pruned[0])  # pruning changes nothing
    assert full[1].keys() == pruned[1].keys()
    for key in full[1]:
        assert torch.equal(full[1][key], pruned[1][key]), key


def test_object_mask_is_subtracted(model, video, monkeypatch):
    fake_propagation(monkeypatch, model.predictor)
    left = np.zeros((64, 64), bool)
    left[:, :32] = True
    top = np.zeros((64, 64), bool)
    top[:32] = True
    prompts = [ChunkPrompts(0, 3, {0: P(10, 50)}, object_points={0: P(40, 10)})]
    parts = list(iter_segment_video(model, video, prompts, 3))
    assert np.array_equal(parts[0].masks, np.broadcast_to(left & ~top, (3, 64, 64)))
    assert np.array_equal(parts[0].object_masks, np.broadcast_to(top, (3, 64, 64)))
    plain = segment_video(model, video, [ChunkPrompts(0, 3, {0: P(10, 50)})], 3)
    assert np.array_equal(plain, np.broadcast_to(left, (3, 64, 64)))
    # object_prompts replaces chunk.object_points (a bare point array = positive points on frame 0)
    again = segment_video(model, video, [ChunkPrompts(0, 3, {0: P(10, 50)})], 3,
                          object_prompts=np.array([[40.0, 10.0]]))
    assert np.array_equal(again, parts[0].masks)


def test_object_subtraction_on_the_real_tracker(model, video):
    with_obj = list(iter_segment_video(model, video[:4], [ChunkPrompts(0, 4, {0: P(30, 32)},
                                                                       object_points={0: P(20, 30)})], 4))[0]
    alone = segment_video(model, video[:4], [ChunkPrompts(0, 4, {0: P(30, 32)})], 4)
    assert with_obj.object_masks.any() and alone.any()
    assert not (with_obj.masks & with_obj.object_masks).any()
    # objects are tracked independently, so the result is exactly character minus object
    np.testing.assert_array_equal(with_obj.masks, alone & ~with_obj.object_masks)


def test_seeding_from_previous_chunk(model, video, monkeypatch):
    fake_propagation(monkeypatch, model.predictor)
    spy_masks = []
    real = model.predictor.add_new_mask

    def spy(state, frame_idx, obj_id, mask):
        spy_masks.append((frame_idx, obj_id, mask.numpy().copy()))
        return real(state, frame_idx, obj_id, mask)

    monkeypatch.setattr(model.predictor, "add_new_mask", spy, raising=False)
    prompts = [ChunkPrompts(0, 3, {0: P(10, 50)}, object_points={0: P(40, 10)}),
               ChunkPrompts(3, 6, from_previous=True)]
    masks = segment_video(model, video, prompts, 6)
    assert [(f, o) for f, o, _ in spy_masks] == [(0, 1), (0, 2)]
    assert spy_masks[0][2][:, :32].all() and not spy_masks[0][2][:, 32:].any()  # character, before subtraction
    assert spy_masks[1][2][:32].all() and not spy_masks[1][2][32:].any()  # the carried object
    np.testing.assert_array_equal(masks[3:], masks[:3])
    spy_masks.clear()
    masks = segment_video(model, video, prompts, 6, carry_object=False)
    assert [(f, o) for f, o, _ in spy_masks] == [(0, 1)]
    assert masks[3:, 40:, :32].all()  # nothing subtracted in chunk 2
    spy_masks.clear()
    prompts[1].from_previous = False
    parts = []
    masks = segment_video(model, video, prompts, 6, on_chunk=parts.append)
    assert not spy_masks and not masks[3:].any() and not parts[1].prompted


def test_frame_sources_agree_and_runs_are_deterministic(model, video):
    clip = video[:4]
    prompts = [ChunkPrompts(0, 2, {0: P(30, 32)}), ChunkPrompts(2, 4, {0: P(34, 32)})]
    ref = segment_video(model, clip, prompts, 4)
    assert ref.any()
    assert np.array_equal(segment_video(model, clip.copy(), prompts, 4), ref)  # same input twice
    as_float = torch.from_numpy(clip.astype(np.float32) / 255.0)  # ComfyUI IMAGE
    assert np.array_equal(segment_video(model, as_float, prompts, 4), ref)
    assert np.array_equal(segment_video(model, iter(list(clip)), prompts, 4), ref)
    batches = (clip[i:i + 3] for i in range(0, 4, 3))  # batches straddle the chunk boundary
    assert np.array_equal(segment_video(model, batches, prompts, 4), ref)
    longer = np.concatenate([clip, clip])  # extra frames are left unread
    assert np.array_equal(segment_video(model, longer, prompts, 4), ref)


def test_should_stop_and_bad_input(model, video):
    ticks = []
    with pytest.raises(SegmentationInterrupted):
        segment_video(model, video, [ChunkPrompts(0, 6, {0: P(30, 32)})], 6,
                      progress=lambda d, t: ticks.append(d), should_stop=lambda: len(ticks) >= 2)
    assert ticks == [1, 2]
    with pytest.raises(ValueError, match="contiguous"):
        segment_video(model, video, [ChunkPrompts(0, 3, {0: P(1, 1)}), ChunkPrompts(4, 6)], 6)
    with pytest.raises(ValueError, match="cover 3 frames"):
        segment_video(model, video, [ChunkPrompts(0, 3, {0: P(1, 1)})], 6)
    with pytest.raises(ValueError, match="within the chunk"):
        segment_video(model, video, [ChunkPrompts(0, 3, {5: P(1, 1)})], 3)
    with pytest.raises(ValueError, match="frames ended"):
        segment_video(model, video[:2], [ChunkPrompts(0, 3, {0: P(1, 1)})], 3)
    with pytest.raises(ValueError, match=r"\[T, H, W, 3\]"):
        segment_video(model, video[..., 0], [ChunkPrompts(0, 3, {0: P(1, 1)})], 3)


def test_in_memory_state_matches_init_state(model, tmp_path):
    from PIL import Image

    yy, xx = np.mgrid[0:48, 0:80]
    frame = np.stack([xx * 3, yy * 5, (xx + yy) * 2], axis=-1).clip(0, 255).astype(np.uint8)
    frames = np.stack([frame, frame[::-1].copy()])
    for i, f in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"{i:05d}.jpg"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 100])
    official = model.predictor.init_state(str(tmp_path), offload_video_to_cpu=True)
    # decoded as sam2 decodes them (PIL), so both sides start from the same pixels
    decoded = np.stack([np.array(Image.open(tmp_path / f"{i:05d}.jpg").convert("RGB")) for i in range(2)])
    ours = build_inference_state(model.predictor, decoded)
    assert set(official) <= set(ours)
    for key in ("num_frames", "video_height", "video_width", "device", "storage_device"):
        assert ours[key] == official[key], key
    assert isinstance(ours["images"], ChunkImages) and ours["images"].data.dtype == torch.uint8
    for i in range(2):
        ref = official["images"][i]
        mine = ours["images"][i]
        assert mine.shape == ref.shape == (3, 64, 64)
        assert torch.equal(mine, ref)  # same PIL bicubic resize, same normalisation, bit for bit
    other = build_inference_state(model.predictor, decoded, resize="opencv")  # the pack's option
    assert 0 < (other["images"][0] - official["images"][0]).abs().mean() < 0.05


def test_frames_stream_in_order_without_leaking_autocast(model, video, monkeypatch):
    seen = []
    fake_propagation(monkeypatch, model.predictor, autocast_seen=seen)
    bf16 = dataclasses.replace(model, dtype=torch.bfloat16)
    ticks = []
    prompts = [ChunkPrompts(0, 4, {0: P(10, 50)}), ChunkPrompts(4, 8, {2: P(10, 50)})]
    stream = iter_segment_frames(bf16, video, prompts, 8, progress=lambda d, t: ticks.append(d))
    first = next(stream)
    assert first.index == 0 and ticks == [1]  # frame 0 comes out before frame 1 is tracked
    assert not torch.is_autocast_enabled("cpu")  # bf16 autocast stays inside the tracker
    rest = list(stream)
    assert [f.index for f in rest] == list(range(1, 8)) and ticks == list(range(1, 9))
    assert [f.chunk for f in [first, *rest]] == [0] * 4 + [1] * 4
    assert seen and all(seen)  # the tracker itself ran under autocast
    assert all(f.mask[:, :32].all() and not f.mask[:, 32:].any() for f in [first, *rest])


def test_legacy_predictor_layout_also_works(files, video):
    legacy = load_sam2(files["pt"], device="cpu",
                       overrides=[*SMALL, "++model._target_=sam2.sam2_video_predictor_legacy.SAM2VideoPredictor"])
    assert type(legacy.predictor).__module__ == "sam2.sam2_video_predictor_legacy"
    masks = segment_video(legacy, video[:5], [ChunkPrompts(0, 5, {1: P(30, 32)}, object_points={0: P(20, 30)})], 5)
    assert masks.shape == (5, 64, 64) and masks.dtype == bool


def test_box_prompts_go_with_their_frame(model, video, monkeypatch):
    spy = Spy(monkeypatch, model.predictor)
    fake_propagation(monkeypatch, model.predictor)
    prompts = [ChunkPrompts(0, 3, {0: P(30, 32)}, box=(10, 12, 50, 60), box_frame=0),
               ChunkPrompts(3, 6, box=(5, 6, 40, 41), box_frame=1)]
    masks = segment_video(model, video, prompts, 6)
    assert [(a["chunk"], a["frame"], a["points"] is None) for a in spy.adds] == [(0, 0, False), (1, 1, True)]
    np.testing.assert_array_equal(spy.adds[0]["box"], [10, 12, 50, 60])
    np.testing.assert_array_equal(spy.adds[1]["box"], [5, 6, 40, 41])
    assert masks[:, :, :32].all() and not masks[:, :, 32:].any()  # chunk 1 covered back to its frame 0
    with pytest.raises(ValueError, match="box_frame"):
        segment_video(model, video, [ChunkPrompts(0, 3, box=(1, 1, 9, 9), box_frame=3)], 3)


# ----------------------------------------------------------------------------- memory: run device only while running


class MoveLog:
    """Records the devices ``predictor.to`` is asked for; moves for real only to the CPU (no GPU here),
    so a 'cuda' run is a recorded stand-in while the weights stay where they are."""

    def __init__(self, monkeypatch, model, events):
        real = model.predictor.to

        def to(*args, **kwargs):
            device = torch.device(args[0] if args else kwargs["device"])
            events.append(("to", device))
            return real(device) if device.type == "cpu" else model.predictor

        monkeypatch.setattr(model.predictor, "to", to)


def test_sam2_session_moves_for_the_run_and_back_also_on_error(files, video, monkeypatch):
    from wan_animate_kit.models import host_memory

    model = load_sam2(files["pt"], device="cpu", overrides=SMALL, storage="cpu")
    assert model.home_device == torch.device("cpu") and model.fill_hole_area == 8  # the official override
    events: list = []
    monkeypatch.setattr(host_memory, "free_memory", lambda need, device: events.append(("free", need, device)))
    monkeypatch.setattr(host_memory, "empty_cache", lambda: events.append(("empty",)))
    monkeypatch.setattr(sam2_loader, "sam2_cuda_extension_available", lambda: True)
    MoveLog(monkeypatch, model, events)
    weights = sum(p.numel() * p.element_size() for p in model.predictor.parameters())
    gpu = torch.device("cuda", 0)
    with sam2_loader.sam2_session(model, gpu, video_size=(64, 64)) as run:
        assert run == gpu and model.device == gpu
        # on CUDA with sam2's extension: sam2's own hole filling at the official area, no CPU twin
        assert model.hole_filling == "cuda-ext" and model.predictor.fill_hole_area == 8
        assert "_run_single_frame_inference" not in vars(model.predictor)
    assert [e[0] for e in events] == ["free", "to", "to", "empty"]
    assert events[0][2] == gpu and events[0][1] > weights  # room asked for weights and activations first
    assert events[1] == ("to", gpu) and events[2] == ("to", torch.device("cpu"))
    assert model.device == torch.device("cpu") and model.hole_filling in ("cpu", "cuda-ext")
    if model.hole_filling == "cpu":
        assert model.predictor.fill_hole_area == 0 and "_run_single_frame_inference" in vars(model.predictor)

    events.clear()
    monkeypatch.setattr(sam2_loader, "sam2_cuda_extension_available", lambda: False)  # none is installed here

    def broken(*args, **kwargs):
        raise RuntimeError("tracking failed")

    monkeypatch.setattr(model.predictor, "propagate_in_video", broken)
    prompts = [ChunkPrompts(0, 4, {0: P(30, 30)})]
    with pytest.raises(RuntimeError, match="tracking failed"):
        with sam2_loader.sam2_session(model, gpu):
            segment_video(model, video, prompts, 4)
    assert [e[0] for e in events] == ["free", "to", "to", "empty"] and events[2] == ("to", torch.device("cpu"))
    assert all(p.device.type == "cpu" for p in model.predictor.parameters())


def test_a_cpu_run_keeps_the_cpu_hole_filling_and_needs_no_room(files, video, monkeypatch):
    from wan_animate_kit.models import host_memory

    model = load_sam2(files["pt"], device="cpu", overrides=SMALL)
    asked = []
    monkeypatch.setattr(host_memory, "_model_management", lambda: None)  # outside the host
    monkeypatch.setattr(host_memory, "free_memory", lambda need, device: asked.append(device))
    plain = segment_video(model, video, [ChunkPrompts(0, 3, {0: P(30, 30)})], 3)
    with sam2_loader.sam2_session(model) as run:  # device choice 'cpu'
        assert run == torch.device("cpu") and model.hole_filling in ("cpu", "off")
        inside = segment_video(model, video, [ChunkPrompts(0, 3, {0: P(30, 30)})], 3)
    np.testing.assert_array_equal(plain, inside)
    assert asked == [torch.device("cpu")]  # host_memory.free_memory itself ignores the CPU
    off = load_sam2(files["pt"], device="cpu", overrides=SMALL, hole_filling=False)
    sam2_loader.move_sam2(off, "cpu")
    assert off.hole_filling == "off" and off.predictor.fill_hole_area == 0


def test_fp16_on_the_cpu_runs_without_autocast(model):
    from wan_animate_kit.models.sam2_video import _autocast

    fp16 = dataclasses.replace(model, dtype=torch.float16)
    bf16 = dataclasses.replace(model, dtype=torch.bfloat16)
    with _autocast(fp16, torch.device("cpu")):
        assert not torch.is_autocast_enabled("cpu")
    with _autocast(bf16, torch.device("cpu")):
        assert torch.is_autocast_enabled("cpu")
    with _autocast(model, torch.device("cpu")):
        assert not torch.is_autocast_enabled("cpu")
