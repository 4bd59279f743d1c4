"""Replacing two people in one clip (workflows/replace_two.json), node by node in the real host
(in-process) with the tiny models: pass A replaces person A; pass B picks person B from the same
tracking and replaces them on pass A's output VIDEO (a file written by the sampler).

The tiny detector returns two fixed, well separated boxes, so the tiny pose models track two people
with stable ids. SAM2 is a stand-in predictor whose mask is the box around the prompt points it was
given (the tiny random SAM2 gives masks unrelated to the prompts); the real tiny SAM2 is run once on
pass A's output to show the node takes that VIDEO.
"""
from __future__ import annotations

import types

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.host

T, W, H = 9, 96, 64
MARGIN = 12  # dilation (kernel 7, 3 iterations: 9 px) and rounding


@pytest.fixture(scope="module")
def rig(tiny_models):
    import comfy.sd
    import comfy.utils
    import folder_paths
    from wan_animate_kit.nodes.folders import register_model_folders
    from wan_animate_kit.nodes.pose import PoseModelLoader

    register_model_folders()
    folder_paths.add_model_folder_path("detection", str(tiny_models["root"] / "detection"))
    folder_paths.filename_list_cache.pop("detection", None)
    pose_models = PoseModelLoader.execute(detector="tiny_yolov10.onnx", pose_model="tiny_vitpose_wholebody.onnx",
                                          device="cpu", batch_size=4, bgr_like_official=True).result[0]
    g = torch.Generator().manual_seed(21)
    # the driving clip: a lit background with two bright figures where the tiny detector reports them
    frames = np.zeros((T, H, W, 3), np.uint8)
    for i in range(T):
        frames[i, ..., 2] = 60 + 8 * i
        frames[i, 8:58, 20:44] = (230, 120, 40)
        frames[i, 14:56, 58:74] = (40, 200, 90)
    return types.SimpleNamespace(
        pose_models=pose_models, frames=frames, images=torch.from_numpy(frames).float() / 255,
        model=comfy.sd.load_diffusion_model(str(tiny_models["dit"])),
        vae=comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(tiny_models["vae"]))),
        char_a=torch.rand(1, H, W, 3, generator=g), char_b=torch.rand(1, H, W, 3, generator=g),
        pos=[[torch.randn(1, 6, 4096, generator=g), {}]], neg=[[torch.randn(1, 5, 4096, generator=g), {}]])


class PromptBoxPredictor:
    """Stand-in SAM2 video predictor: every frame's mask is the box around the chunk's positive
    prompt points (+2 px), so a mask shows exactly whose keypoints prompted it."""

    def __new__(cls):
        from sam2_official import RecordingPredictor

        class _Box(RecordingPredictor):
            def propagate_in_video(self, inference_state, start_frame_idx=None, max_frame_num_to_track=None,
                                   reverse=False):
                state = inference_state
                chunk = len(self.inputs) - 1
                pts = [np.asarray(c[4], np.float32)[np.asarray(c[5]) == 1] for c in self.log
                       if c[0] == "add" and c[1] == chunk]
                pts = np.concatenate(pts)
                h, w = state["video_height"], state["video_width"]
                x1, y1 = pts.min(0) - 2
                x2, y2 = pts.max(0) + 2
                logits = torch.full((1, 1, h, w), -10.0)
                logits[..., max(int(y1), 0):int(y2) + 1, max(int(x1), 0):int(x2) + 1] = 10.0
                for t in range(state["num_frames"]):
                    self.inputs[chunk].append(state["images"][t].float())
                    yield t, list(state["obj_ids"]), logits.clone()

        return _Box(image_size=32)


def _segment(model, pose, **src):
    from wan_animate_kit.nodes.segment import CharacterSegmentation

    defaults = {i.id: i.default for i in CharacterSegmentation.GET_SCHEMA().inputs
                if getattr(i, "default", None) is not None}
    return CharacterSegmentation.execute(sam2_model=model, pose=pose, **{**defaults, **src}).result


def _shape(mask, pose):
    from wan_animate_kit.nodes.mask import MaskShape

    return MaskShape.execute(mask=mask, kernel=7, iterations=3, block=True, block_rows=1, block_cols=1,
                             head_growth=0.0, feather=0.0, fill_empty=True, pose=pose).result[0]


def _replace_pass(rig, pose, character, environment_source: dict):
    """One Replacement pass as the shipped graph wires it: skeleton and face crops of the pose's
    subject (faces from the original frames), SAM2 mask of the subject on ``environment_source``,
    environment video, the sampler streaming to a file. Returns (video, shaped mask, env frames)."""
    from wan_animate_kit.nodes.mask import EnvironmentVideo
    from wan_animate_kit.nodes.pose import FaceCrops, RenderPose
    from wan_animate_kit.nodes.sample import AnimateSampler

    skeleton = RenderPose.execute(pose=pose, width=W, height=H, letterbox=True, draw_hands=True, draw_head=True,
                                  frames_output=False).result[1]
    # faces of the subject, always from the original frames (pass A leaves person B as they were); not fed to
    # the sampler here: the tiny motion encoder on 512x512 crops would take most of this test's time
    faces = FaceCrops.execute(pose=pose, mode="official", size=64, images=rig.images).result[0]
    raw = _segment(PromptBoxPredictor(), pose, **environment_source)[0]
    shaped = _shape(raw, pose)
    env = EnvironmentVideo.execute(mask=shaped, width=W, height=H, frames_output=True, **environment_source).result
    out = AnimateSampler.execute(
        model=rig.model, positive=rig.pos, negative=rig.neg, vae=rig.vae, reference=character,
        pose_video=skeleton, environment_video=env[3], character_mask=env[1], pose=pose, seed=3,
        steps=1, cfg=1.0, sampler_name="euler", scheduler="simple", segment_length=9, guidance_frames=1,
        width=0, height=0, fps=30.0, crossfade=True, colour_correction=False, colour_strength=1.0, cache=False,
        frames_output=False).result[1]
    return types.SimpleNamespace(video=out, raw=raw.numpy() > 0.5, mask=env[1].numpy() > 0.5, env=env[0],
                                 skeleton=skeleton, faces=faces.numpy())


def _box(kps, grow=0):
    """x1, y1, x2, y2 of a person's confident keypoints over the whole clip (plain restatement)."""
    ok = kps[..., 2] >= 0.3
    xs, ys = kps[..., 0][ok], kps[..., 1][ok]
    return xs.min() - grow, ys.min() - grow, xs.max() + grow, ys.max() + grow


def _inside(mask, box):
    x1, y1, x2, y2 = box
    yy, xx = np.nonzero(mask.any(axis=0))
    return bool(len(xx)) and xx.min() >= np.floor(x1) and xx.max() <= np.ceil(x2) and \
        yy.min() >= np.floor(y1) and yy.max() <= np.ceil(y2)


def _touches(mask, box):
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    return bool(mask[:, max(y1, 0):y2 + 1, max(x1, 0):x2 + 1].any())


@pytest.fixture(scope="module")
def two_passes(rig):
    """Both passes as replace_two.json wires them: tracking, Pick Person, pass A, pass B on pass A's VIDEO."""
    from wan_animate_kit.nodes.pose import PoseExtract
    from wan_animate_kit.nodes.pose_pick import PosePickPerson

    pose_a, _, report = PoseExtract.execute(pose_models=rig.pose_models, images=rig.images, person="0",
                                            smoothing=0.0, missing_frames="hold", chunk_frames=32).result
    pose_b, pick_report = PosePickPerson.execute(pose=pose_a, person="1", missing_frames="hold").result
    a = _replace_pass(rig, pose_a, rig.char_a, dict(images=rig.images))
    b = _replace_pass(rig, pose_b, rig.char_b, dict(video=a.video))
    return types.SimpleNamespace(pose_a=pose_a, pose_b=pose_b, report=report, pick_report=pick_report, a=a, b=b)


def test_two_passes_replace_two_people_with_their_own_masks_and_ids(rig, two_passes):
    pose_a, pose_b, report, pick_report = (two_passes.pose_a, two_passes.pose_b, two_passes.report,
                                           two_passes.pick_report)
    assert pose_a.num_people == 2 and pose_a.track_ids == (0, 1) and pose_a.subject == 0, report
    assert pose_b.subject == 1 and pose_b.track_ids[pose_b.subject] == 1 and "person 1 of 2" in pick_report
    assert np.array_equal(pose_b.keypoints, pose_a.keypoints)  # same tracking, only the subject changed
    box_a, box_b = _box(pose_a.keypoints[:, 0]), _box(pose_a.keypoints[:, 1])
    assert box_a[2] + MARGIN < box_b[0]  # clearly separated people: a grown mask of one never reaches the other

    # pass A on the original frames
    a = two_passes.a
    comp_a = a.video.get_components()
    frames_a = (comp_a.images.numpy() * 255).round().astype(np.uint8)
    assert frames_a.shape == (T, H, W, 3) and (pose_a.width, pose_a.height) == (W, H)  # pass B's canvas
    assert _inside(a.raw, box_a) and not _touches(a.raw, box_b)
    assert _inside(a.mask, _box(pose_a.keypoints[:, 0], MARGIN)) and not _touches(a.mask, box_b)

    # pass B on pass A's output VIDEO, person B's pose from the same tracking
    b = two_passes.b
    assert _inside(b.raw, box_b) and not _touches(b.raw, box_a)
    assert _inside(b.mask, _box(pose_a.keypoints[:, 1], MARGIN)) and not _touches(b.mask, box_a)
    # pass B's environment is pass A's output with person B masked, not the original video
    env_b = (b.env.numpy() * 255).round().astype(np.uint8)
    out = ~b.mask
    assert np.array_equal(env_b[out], frames_a[out]) and (env_b[b.mask] == 0).all()
    assert np.abs(env_b[out].astype(int) - rig.frames[out].astype(int)).mean() > 10
    # person A's region in pass B's environment is pass A's replacement, untouched
    ax1, ay1, ax2, ay2 = (int(v) for v in box_a)
    assert np.array_equal(env_b[:, ay1:ay2, ax1:ax2], frames_a[:, ay1:ay2, ax1:ax2])
    # each pass's skeleton is drawn on its own person only
    for run, own, other in ((a, box_a, box_b), (b, box_b, box_a)):
        drawn = np.stack([c for c in run.skeleton.iter_chunks(16)]).reshape(T, H, W, 3).max(-1) > 0 \
            if hasattr(run.skeleton, "iter_chunks") else \
            run.skeleton.get_components().images.numpy().max(-1) > 0
        assert _inside(drawn, (own[0] - 6, own[1] - 6, own[2] + 6, own[3] + 6)) and not _touches(drawn, other)
    # each pass's face crops show its own person of the original clip (A orange, B green)
    for run, (big, small) in ((a, (0, 1)), (b, (1, 0))):
        colour = run.faces.reshape(-1, 3).mean(0)
        assert colour[big] > colour[small] + 0.2, colour
    comp_b = b.video.get_components()
    assert comp_b.images.shape == (T, H, W, 3) and comp_b.frame_rate == comp_a.frame_rate
    # the second character reaches pass B's output
    assert np.abs(comp_b.images.numpy() - comp_a.images.numpy()).mean() > 0.01


def test_retracked_output_is_matched_to_the_original_ids_by_position(rig):
    """Re-tracking pass A's output may number people differently; Pick Person's match_to finds
    person B again by position."""
    from dataclasses import replace

    from wan_animate_kit.nodes.pose import PoseExtract
    from wan_animate_kit.nodes.pose_pick import PosePickPerson

    pose = PoseExtract.execute(pose_models=rig.pose_models, images=rig.images, person="1", smoothing=0.0,
                               missing_frames="hold", chunk_frames=32).result[0]
    assert pose.subject == 1
    # the same scene tracked again (another look, same places), its columns in the other order
    rng = np.random.default_rng(0)
    again = PoseExtract.execute(pose_models=rig.pose_models, images=torch.from_numpy(
        rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8)).float() / 255, person="largest", smoothing=0.0,
        missing_frames="hold", chunk_frames=32).result[0]
    swapped = replace(again, keypoints=again.keypoints[:, ::-1].copy(), detected=again.detected[:, ::-1].copy(),
                      subject=0)
    picked, report = PosePickPerson.execute(pose=swapped, person="largest", missing_frames="hold",
                                            match_to=pose).result
    assert picked.subject == 0 and "matched by position" in report
    assert np.allclose(_box(picked.subject_keypoints), _box(pose.subject_keypoints), atol=2.0)


def test_real_tiny_sam2_segments_pass_a_output_video(two_passes, tiny_models):
    """SAM2 Character Segmentation, Mask Shaping and Environment Video take the sampler's VIDEO."""
    import folder_paths
    from wan_animate_kit.nodes.mask import EnvironmentVideo
    from wan_animate_kit.nodes.segment import Sam2Loader

    pytest.importorskip("sam2")
    folder_paths.add_model_folder_path("sam2", str(tiny_models["root"] / "sam2"))
    folder_paths.filename_list_cache.pop("sam2", None)
    sam = Sam2Loader.execute(checkpoint="tiny_sam2.1_hiera_t.pt", device="cpu", dtype="fp32",
                             image_size=64).result[0]
    video, pose_b = two_passes.a.video, two_passes.pose_b
    mask, preview, report, _ = _segment(sam, pose_b, video=video, chunk_size=8)
    assert tuple(mask.shape) == (T, H, W) and "2 chunk(s)" in report
    shaped = _shape(mask, pose_b)
    env = EnvironmentVideo.execute(mask=shaped, video=video, width=W, height=H, frames_output=True).result
    assert tuple(env[0].shape) == (T, H, W, 3) and tuple(env[1].shape) == (T, H, W)


def _two_people(t=6, gap_frames=(2, 3)):
    """Two tracked people; person 1 is not detected on ``gap_frames`` (zeros there, as tracking leaves them)."""
    from wan_animate_kit.preprocess.pose_types import PoseSequence

    kps = np.zeros((t, 2, 133, 3), np.float32)
    for p, x0 in enumerate((10.0, 60.0)):
        for i in range(t):
            kps[i, p, :, 0] = x0 + np.linspace(0, 20, 133) + i
            kps[i, p, :, 1] = np.linspace(5, 55, 133)
            kps[i, p, :, 2] = 0.9
    det = np.ones((t, 2), bool)
    for i in gap_frames:
        kps[i, 1] = 0.0
        det[i, 1] = False
    return PoseSequence(kps, (0, 1), 96, 64, subject=0, detected=det, fps=30.0)


def test_pick_person_fills_the_new_subject_like_pose_extraction(host):
    from wan_animate_kit.nodes.pose_pick import PosePickPerson

    seq = _two_people()
    held, report = PosePickPerson.execute(pose=seq, person="1", missing_frames="hold").result
    assert held.subject == 1 and "2 frame(s) without them: [2, 3]" in report
    for i in (2, 3):  # held from frame 1, the last frame person 1 was seen
        assert np.array_equal(held.keypoints[i, 1], seq.keypoints[1, 1])
    assert np.array_equal(held.keypoints[:, 0], seq.keypoints[:, 0])  # the other person is untouched
    assert np.array_equal(held.detected, seq.detected)  # held frames stay marked as not detected
    mid = PosePickPerson.execute(pose=seq, person="1", missing_frames="interpolate").result[0]
    for i, w in ((2, 1 / 3), (3, 2 / 3)):  # linear between frames 1 and 4
        expect = (1 - w) * seq.keypoints[1, 1, :, :2] + w * seq.keypoints[4, 1, :, :2]
        assert np.allclose(mid.keypoints[i, 1, :, :2], expect, atol=1e-4)
    by_point = PosePickPerson.execute(pose=seq, person="70,30", missing_frames="hold").result[0]
    assert by_point.subject == 1
    assert PosePickPerson.execute(pose=seq, person="0", missing_frames="raise").result[0].subject == 0


@pytest.mark.parametrize("kw, name, text", [
    (dict(person="2"), "person", "out of range"),
    (dict(person="someone"), "person", "'largest', an index"),
    (dict(person="1", missing_frames="raise"), "missing_frames", "no person found in 2 frame"),
    (dict(person="1", missing_frames="skip"), "missing_frames", "pick one of hold"),
])
def test_pick_person_bad_input_names_the_input(host, kw, name, text):
    from wan_animate_kit.nodes.pose_pick import PosePickPerson

    args = dict(pose=_two_people(), person="1", missing_frames="hold")
    args.update(kw)
    with pytest.raises(ValueError, match=f"input '{name}'.*{text}"):
        PosePickPerson.execute(**args)


def test_pick_person_refuses_empty_and_mismatched_poses(host):
    from dataclasses import replace

    from wan_animate_kit.nodes.pose_pick import PosePickPerson
    from wan_animate_kit.preprocess.pose_types import empty_sequence

    with pytest.raises(ValueError, match="input 'pose'.*no tracked person"):
        PosePickPerson.execute(pose=empty_sequence(4, 96, 64), person="0", missing_frames="hold")
    seq = _two_people()
    with pytest.raises(ValueError, match="input 'match_to'.*frames"):
        PosePickPerson.execute(pose=seq, person="0", missing_frames="hold", match_to=seq.frames(0, 3))
    solo = replace(seq.only_subject(), retargeted=True)
    with pytest.raises(ValueError, match="input 'pose'.*retargeted.*before Pose Retarget"):
        PosePickPerson.execute(pose=solo, person="1", missing_frames="hold")
