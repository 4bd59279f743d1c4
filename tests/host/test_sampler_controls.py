"""The sampler controls of issue 17 (pose/face strength, a prompt per segment, continuing a video)
and the sampler's early refusals of issue 13 point 5, through the real host on the tiny models.

The face motion encoder's arithmetic is swapped for a cheap deterministic function of the pixels
(as in test_motion_memo.py): the real 512x512 encoder costs seconds a frame on the CPU, and what is
tested here is everything around it (the adapter, the patches, the memo, the sampler loop).
"""
from __future__ import annotations

import functools
import types

import numpy as np
import pytest
import torch
from sampler_helpers import animate_settings, sampler_rig

W = H = 32
pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def rig(tiny_models):
    return sampler_rig(tiny_models, 30, 21, W, variants=True)


@pytest.fixture
def cheap_encoder(monkeypatch, rig):
    """The motion encoder with a cheap deterministic stand-in for its arithmetic (on the instance,
    where the host's object patches act)."""

    def get_motion(self, img):
        w = torch.linspace(-1, 1, 512, dtype=torch.float32)
        feat = img.float().mean(dim=(2, 3))
        return (feat.sum(1, keepdim=True) * w + feat[:, :1] * 3).to(img.dtype)

    enc = rig.model.model.diffusion_model.motion_encoder
    monkeypatch.setattr(enc, "get_motion", types.MethodType(get_motion, enc))


@pytest.fixture
def spy(monkeypatch, host):
    """Records every comfy.sample.sample call (noise, prompts, seed) and passes it on."""
    import comfy.sample

    calls = []
    real = comfy.sample.sample

    def recording(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, **kw):
        calls.append(types.SimpleNamespace(noise=noise.clone(), positive=positive, seed=kw.get("seed")))
        return real(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, **kw)

    monkeypatch.setattr(comfy.sample, "sample", recording)
    return calls


def settings(**kw):
    return animate_settings(W, H, **{"steps": 1, "seed": 7, **kw})


def run(rig, n, s, pose=None, face=None, lo=0, replace=False, **kw):
    from wan_animate_kit.models.animate_sampler import run_animate

    pose = rig.pose if pose is None else pose
    return run_animate(rig.model, rig.vae, kw.pop("positive", rig.pos), rig.neg, rig.ref, pose[lo:n], s,
                       face=face[lo:n] if face is not None else None,
                       environment=rig.env[lo:n] if replace else None, mask=rig.mask[lo:n] if replace else None,
                       clip_vision_output=rig.clip, step_callback=lambda steps: None, **kw)


# -- pose and face strength ------------------------------------------------------------------

def test_strength_patches_scale_exactly_the_pose_embedding_and_the_adapter_output(rig):
    """At the model: with pose strength s the tokens become x + s * (Conv3d(pose) + bias) on latent
    frames 1..; with face strength s every fuser block returns s times its output. Re-stated here
    with torch's own conv3d and the unpatched block; the user's MODEL is left as it was."""
    import comfy.model_management
    import torch.nn.functional as F
    from wan_animate_kit.models.animate_strength import ScaledOutput, face_targets, with_strengths

    dm = rig.model.model.diffusion_model
    g = torch.Generator().manual_seed(0)
    dim = dm.dim
    dt = dm.pose_patch_embedding.weight.dtype
    x = torch.randn(1, dim, 4, 2, 2, generator=g).to(dt)
    p = torch.randn(1, 16, 3, 4, 4, generator=g).to(dt)
    blocks = len(dm.face_adapter.fuser_blocks)
    assert blocks >= 1 and len(face_targets(rig.model)) == blocks
    tokens = torch.randn(1, 4 * 3, dim, generator=g).to(dt)
    motion = torch.randn(1, 4, 4, dim, generator=g).to(dt)
    with torch.inference_mode():
        conv = dm.pose_patch_embedding
        plain_face = dm.face_adapter.fuser_blocks[0](tokens, motion)
        for s in (0.0, 0.5, 2.0):
            patched = with_strengths(rig.model, s, s)
            assert patched is not rig.model and not rig.model.object_patches
            comfy.model_management.load_models_gpu([patched])
            try:
                assert isinstance(dm.pose_patch_embedding.forward, ScaledOutput)
                got, _ = dm.after_patch_embedding(x.clone(), p, None)
                face = dm.face_adapter.fuser_blocks[0](tokens, motion)
            finally:
                comfy.model_management.load_models_gpu([rig.model])  # unpatches the clone
            emb = F.conv3d(p.float(), conv.weight.float(), conv.bias.float(), stride=(1, 2, 2)).to(dt)
            want = x.clone()
            want[:, :, 1:] += emb * s
            assert torch.equal(got, want)
            assert torch.equal(face, plain_face * s)
        assert not isinstance(dm.pose_patch_embedding.forward, ScaledOutput)
        assert torch.equal(dm.face_adapter.fuser_blocks[0](tokens, motion), plain_face)
    assert with_strengths(rig.model, 1.0, 1.0) is rig.model  # official: nothing patched


def test_strength_one_is_bit_identical_to_no_patch(rig, cheap_encoder, monkeypatch):
    """The scaling wrappers themselves, forced on at 1.0, give exactly the unpatched frames."""
    from wan_animate_kit.models import animate_strength

    plain = run(rig, 9, settings(steps=2), face=rig.face)
    monkeypatch.setattr(animate_strength, "with_strengths",
                        functools.partial(animate_strength.with_strengths, force=True))
    forced = run(rig, 9, settings(steps=2, pose_strength=1.0, face_strength=1.0), face=rig.face)
    assert np.array_equal(plain.frames, forced.frames)


def test_pose_strength_zero_removes_the_pose_videos_influence(rig):
    a0 = run(rig, 9, settings(pose_strength=0.0), pose=rig.pose)
    b0 = run(rig, 9, settings(pose_strength=0.0), pose=rig.pose_b)
    a1 = run(rig, 9, settings(), pose=rig.pose)
    b1 = run(rig, 9, settings(), pose=rig.pose_b)
    half = run(rig, 9, settings(pose_strength=0.5), pose=rig.pose)
    assert np.array_equal(a0.frames, b0.frames)
    assert not np.array_equal(a1.frames, b1.frames)  # the pose does reach the output at 1
    assert not np.array_equal(half.frames, a1.frames) and not np.array_equal(half.frames, a0.frames)


def test_face_strength_zero_removes_the_face_crops_influence(rig, cheap_encoder):
    a0 = run(rig, 9, settings(face_strength=0.0), face=rig.face)
    b0 = run(rig, 9, settings(face_strength=0.0), face=rig.face_b)
    a1 = run(rig, 9, settings(), face=rig.face)
    b1 = run(rig, 9, settings(), face=rig.face_b)
    assert np.array_equal(a0.frames, b0.frames)
    assert not np.array_equal(a1.frames, b1.frames)
    # face CFG (cfg > 1, black faces for the negative pass): still independent of the crops at 0
    c0 = run(rig, 9, settings(face_strength=0.0, cfg=2.0), face=rig.face)
    d0 = run(rig, 9, settings(face_strength=0.0, cfg=2.0), face=rig.face_b)
    assert np.array_equal(c0.frames, d0.frames)


@pytest.mark.parametrize("strength", [0.5, 0.0])
@pytest.mark.parametrize("replace", [False, True])
def test_low_face_strength_stays_finite_and_no_frame_goes_black(rig, cheap_encoder, monkeypatch, strength,
                                                                replace):
    import comfy.sample

    real = comfy.sample.sample
    latents = []

    def keep(*a, **kw):  # the sampled latents themselves, before the uint8 rounding
        out = real(*a, **kw)
        latents.append(out)
        return out

    monkeypatch.setattr(comfy.sample, "sample", keep)
    out = run(rig, 9, settings(face_strength=strength, steps=2), face=rig.face, replace=replace)
    assert latents and all(torch.isfinite(t).all() for t in latents)
    per_frame = out.frames.reshape(out.frames.shape[0], -1).astype(np.float32)
    assert (per_frame.mean(1) > 8).all() and (per_frame.std(1) > 1).all()


def test_strengths_are_in_the_cache_key():
    from wan_animate_kit.models.animate_sampler import AnimateSettings

    base = AnimateSettings().key_fields()
    assert AnimateSettings(pose_strength=0.5).key_fields() != base
    assert AnimateSettings(face_strength=0.5).key_fields() != base
    assert AnimateSettings(pose_strength=1.0, face_strength=1.0).key_fields() == base


# -- prompt schedule -------------------------------------------------------------------------

def test_scheduled_prompt_picks_the_prompt_in_force():
    from wan_animate_kit.models.animate_sampler import scheduled_prompt

    a, b, c, d = ["a"], ["b"], ["c"], ["d"]
    sched = ((0, a), (9, b), (20, c))
    # re-stated: the entry with the largest start <= frame, the default before the first
    for frame in range(30):
        starts = [s for s, _ in sched if s <= frame]
        want = dict(sched)[max(starts)] if starts else d
        assert scheduled_prompt(sched, frame, d) is want
    assert scheduled_prompt(((5, a),), 4, d) is d and scheduled_prompt((), 4, d) is d


def test_one_prompt_schedule_equals_the_plain_prompt(rig, spy):
    plain = run(rig, 17, settings(), positive=rig.pos)
    sched = run(rig, 17, settings(), positive=rig.pos_c, prompt_schedule=((0, rig.pos),))
    assert np.array_equal(plain.frames, sched.frames)
    assert all(torch.equal(c.positive[0][0], rig.pos[0][0]) for c in spy)


def test_two_prompts_give_different_segments(rig, spy):
    """17 frames = segments 0-8 and 9-16 (first new frame 9): the second prompt reaches segment 1
    when its start frame is at or before frame 9."""
    one = run(rig, 17, settings(), positive=rig.pos)
    for start, second in ((9, True), (5, True), (10, False)):
        spy.clear()
        two = run(rig, 17, settings(), positive=rig.pos, prompt_schedule=((0, rig.pos), (start, rig.pos_b)))
        used = [c.positive[0][0] for c in spy]
        assert torch.equal(used[0], rig.pos[0][0])
        assert torch.equal(used[1], rig.pos_b[0][0] if second else rig.pos[0][0])
        assert np.array_equal(two.frames[:9], one.frames[:9])
        assert np.array_equal(two.frames[9:], one.frames[9:]) != second


def test_prompt_schedule_is_in_the_segment_cache_key(rig, spy, tmp_path):
    """A re-queued job reuses a cached segment only when that segment's prompt is the same."""
    import comfy.model_management

    def stop_after_0(index, *_):
        if index == 0:
            comfy.model_management.interrupt_current_processing(True)

    s = settings(cache=True)
    for first in (rig.pos, rig.pos_c):  # segment 0 sampled both times: its prompt differs
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            run(rig, 17, s, prompt_schedule=((0, first), (9, rig.pos_b)), cache_root=str(tmp_path),
                on_segment=stop_after_0)
    assert len(spy) == 2
    # segment 0's prompt as in the first run, segment 1's another: segment 0 comes from the cache
    out = run(rig, 17, s, prompt_schedule=((0, rig.pos), (9, rig.pos_c)), cache_root=str(tmp_path))
    assert out.loaded == [0] and out.sampled == [1] and len(spy) == 3


# -- continue a video ------------------------------------------------------------------------

@pytest.mark.parametrize("replace,colour", [(False, 0.0), (True, 1.0)])
def test_continuing_equals_one_long_run_bit_for_bit(rig, spy, cheap_encoder, replace, colour):
    """22 frames in 9-frame segments (guidance 1): one run has segments at 0, 8, 16 (padded to 25
    by ping-pong: frames 21, 20, 19 repeat). Part 1 = frames 0-8 (1 segment, ends on a boundary);
    part 2 continues from part 1's frames with the driving inputs from frame 8 on (the guidance
    frame), padded the same way at the end. Same frames, same noise draws (part 2 starts at draw
    1), same per-segment prompt of a whole-video schedule."""
    sched = ((0, rig.pos), (12, rig.pos_b))  # whole run: segment first frames 0, 9, 17 -> a, a, b
    s = settings(colour_strength=colour, steps=2)
    whole = run(rig, 22, s, face=rig.face, replace=replace, prompt_schedule=sched)
    whole_calls = list(spy)
    spy.clear()
    part1 = run(rig, 9, s, face=rig.face, replace=replace, prompt_schedule=sched)
    s2 = settings(colour_strength=colour, steps=2, start_frame=9)
    part2 = run(rig, 22, s2, face=rig.face, replace=replace, prompt_schedule=sched, lo=8,
                continue_from=torch.from_numpy(part1.frames).float() / 255)
    calls = list(spy)
    assert part1.frames.shape[0] == 9 and part2.frames.shape[0] == 13
    assert whole.plan.target_len == 25 and part2.plan.target_len == 17
    assert np.array_equal(np.concatenate([part1.frames, part2.frames]), whole.frames)
    assert len(whole_calls) == len(calls) == 3
    for a, b in zip(whole_calls, calls):
        assert torch.equal(a.noise, b.noise) and a.seed == b.seed
        assert torch.equal(a.positive[0][0], b.positive[0][0])
    assert [torch.equal(c.positive[0][0], rig.pos_b[0][0]) for c in calls] == [False, False, True]


def test_continuation_helpers():
    from wan_animate_kit.models.animate_sampler import continuation_plan, segments_before
    from wan_animate_kit.preprocess.segments import plan_segments

    # re-stated: a part of F frames drew one noise per segment of its plan; it ends on a boundary
    # when F = g + k * (L - g), k >= 1
    for L, g in ((9, 1), (9, 5), (77, 1), (77, 5)):
        for f in range(1, 200):
            k, aligned = segments_before(f, L, g)
            assert k == plan_segments(f, L, g).num_segments
            assert aligned == (f > g and (f - g) % (L - g) == 0)
    plan = continuation_plan(14, 9, 1)
    assert plan.segments[0].keep_from == 1 and plan.segments[0].out_start == 1
    assert [s.start for s in plan.segments] == [0, 8] and plan.num_frames == 14
    with pytest.raises(ValueError, match="more than guidance"):
        continuation_plan(1, 9, 1)


def _node_args(rig, n, **kw):
    args = dict(model=rig.model, positive=rig.pos, negative=rig.neg, vae=rig.vae, reference=rig.ref,
                pose_video=rig.pose[:n], seed=3, steps=1, cfg=1.0, sampler_name="euler", scheduler="simple",
                segment_length=9, guidance_frames=1, width=0, height=0, fps=24.0, crossfade=False,
                colour_correction=False, colour_strength=1.0, cache=False)
    args.update(kw)
    return args


def test_node_continue_from_takes_its_frame_count_as_start_frame(rig):
    from wan_animate_kit.nodes.sample import AnimateSampler

    whole = AnimateSampler.execute(**_node_args(rig, 25)).result[0]
    part1 = AnimateSampler.execute(**_node_args(rig, 17)).result[0]
    part2 = AnimateSampler.execute(**_node_args(rig, 25, pose_video=rig.pose[16:25], continue_from=part1))
    assert part2.result[0].shape[0] == 8
    assert torch.equal(torch.cat([part1, part2.result[0]]), whole)
    # streamed to a file (frames_output off): the same new frames only, not the continued one
    streamed = AnimateSampler.execute(**_node_args(rig, 25, pose_video=rig.pose[16:25], continue_from=part1,
                                                   frames_output=False)).result[1].get_components().images
    assert streamed.shape == part2.result[0].shape
    luma = torch.tensor([0.299, 0.587, 0.114])
    err = float(((streamed - part2.result[0]) @ luma).abs().mean())
    assert err < float(((streamed - part2.result[0].roll(1, 0)) @ luma).abs().mean()) / 3
    # an earlier part that does not end on a segment boundary: a warning says so
    odd = AnimateSampler.execute(**_node_args(rig, 25, pose_video=rig.pose[12:25], continue_from=part1[:13]))
    assert odd.result[0].shape[0] == 12
    assert "not on a segment boundary" in odd.ui.value


# -- bad inputs, refused before any work -----------------------------------------------------

@pytest.fixture
def no_work(monkeypatch, host):
    """Fails the test if the reference encode or any sampling starts."""
    import comfy.sample
    from wan_animate_kit.models import animate_conditioning

    def forbidden(*a, **kw):
        raise AssertionError("work started before the input was refused")

    monkeypatch.setattr(animate_conditioning, "encode_reference", forbidden)
    monkeypatch.setattr(comfy.sample, "sample", forbidden)
    monkeypatch.setattr(comfy.sample, "sample_custom", forbidden)


@pytest.mark.parametrize("over,name,text", [
    (dict(positive="w768"), "positive", "768-wide"),
    (dict(negative="w768"), "negative", "768-wide"),
    (dict(positive="nan"), "positive", "NaN"),
    (dict(positive="empty"), "positive", "not a CONDITIONING"),
    (dict(cfg=float("nan")), "cfg", "finite"),
    (dict(cfg=float("inf")), "cfg", "finite"),
    (dict(pose_strength=float("nan")), "pose_strength", "finite"),
    (dict(face_strength=-1.0), "face_strength", "finite"),
    (dict(prompt_schedule="sched768"), "prompt_schedule", "768-wide"),
    (dict(prompt_schedule="bad"), "prompt_schedule", "not a prompt schedule"),
    (dict(width=4096, height=4096, frames_output=False), "width", "GiB"),
    (dict(start_frame=5), "start_frame", "continue_from"),
    (dict(continue_from="small"), "continue_from", "16x16"),
    (dict(continue_from="pose", pose_video="pose1"), "pose_video", "nothing new"),
    (dict(pose_video="text"), "pose_video", "IMAGE or VIDEO"),
    (dict(continue_from="text"), "continue_from", "IMAGE or VIDEO"),
])
def test_sampler_refuses_before_any_work(rig, no_work, monkeypatch, over, name, text):
    import psutil
    from wan_animate_kit.nodes.common import InputError
    from wan_animate_kit.nodes.sample import AnimateSampler

    gib = 2 ** 30
    monkeypatch.setattr(psutil, "virtual_memory", lambda: types.SimpleNamespace(total=64 * gib, available=32 * gib))
    values = {"w768": [[torch.randn(1, 6, 768), {}]], "nan": [[torch.full((1, 6, 4096), float("nan")), {}]],
              "empty": [], "sched768": ((0, rig.pos), (9, [[torch.randn(1, 6, 768), {}]])), "bad": [1, 2],
              "small": torch.rand(3, 16, 16, 3), "text": "a video", "pose": rig.pose[:3], "pose1": rig.pose[:1]}
    over = {k: values.get(v, v) if isinstance(v, str) else v for k, v in over.items()}
    with pytest.raises(InputError, match=text) as err:
        AnimateSampler.execute(**_node_args(rig, 9, **over))
    assert err.value.input_name == name
    assert "Wan-Animate Sampler" in str(err.value)


def test_working_memory_check_counts_the_cpu_vae():
    from wan_animate_kit.nodes import sample
    from wan_animate_kit.nodes.common import InputError

    gib = 2 ** 30
    gpu_vae = types.SimpleNamespace(device=torch.device("meta"))
    assert sample.working_memory_check(gpu_vae, 77, 1280, 720, (64 * gib, 60 * gib)) == []
    need = 4 * 77 * 1280 * 720 * 12  # re-stated: four float32 RGB segment buffers
    assert sample.working_memory_check(gpu_vae, 77, 1280, 720, (need + 1, need + 1))
    with pytest.raises(InputError, match="width"):
        sample.working_memory_check(gpu_vae, 77, 1280, 720, (need - 1, need - 1))
    cpu_vae = types.SimpleNamespace(device=torch.device("cpu"), memory_used_encode=lambda shape, dtype: 10 * gib,
                                    memory_used_decode=lambda shape, dtype: 20 * gib)
    with pytest.raises(InputError, match="width"):
        sample.working_memory_check(cpu_vae, 77, 1280, 720, (need + 19 * gib, need + 19 * gib))


def test_schema_has_the_new_inputs_with_official_defaults(host):
    from wan_animate_kit.nodes import prompt_schedule, sample

    by_id = {i.id: i for i in sample.AnimateSampler.define_schema().inputs}
    for name in ("pose_strength", "face_strength"):
        assert by_id[name].default == 1.0 and by_id[name].optional and "official = 1.0" in by_id[name].tooltip
    assert by_id["prompt_schedule"].optional and by_id["continue_from"].optional
    assert by_id["start_frame"].default == 0
    for cls in prompt_schedule.NODES:
        schema = cls.define_schema()
        schema.validate()
        assert all(i.tooltip for i in schema.inputs)


def test_prompt_schedule_nodes_build_the_schedule(host):
    from wan_animate_kit.nodes.common import InputError
    from wan_animate_kit.nodes.prompt_schedule import PromptScheduleNode, PromptScheduleText, parse_schedule_text

    a, b, c = [[torch.zeros(1, 2, 8), {}]], [[torch.ones(1, 2, 8), {}]], [[torch.full((1, 2, 8), 2.0), {}]]
    s1 = PromptScheduleNode.execute(b, 40).result[0]
    s2 = PromptScheduleNode.execute(a, 0, previous=s1).result[0]
    s3 = PromptScheduleNode.execute(c, 40, previous=s2).result[0]  # same frame: replaces b
    assert [f for f, _ in s2] == [0, 40] and s2[0][1] is a and s2[1][1] is b
    assert [f for f, _ in s3] == [0, 40] and s3[1][1] is c
    with pytest.raises(InputError) as err:
        PromptScheduleNode.execute(a, 0, previous=[1])
    assert err.value.input_name == "previous"

    assert parse_schedule_text("# intro\n0: walk\n\n 150 : wave, then bow \n") == [(0, "walk"), (150, "wave, then bow")]
    for bad, text in (("walk", "line 1"), ("0: a\n0: b", "two prompts"), ("5:", "empty"), ("# x", "no ")):
        with pytest.raises(ValueError, match=text):
            parse_schedule_text(bad)

    encoded = []
    clip = types.SimpleNamespace(tokenize=lambda text: text,
                                 encode_from_tokens_scheduled=lambda tokens: encoded.append(tokens) or [[tokens, {}]])
    out = PromptScheduleText.execute(clip, "0: walk\n20: wave", previous=((5, a),)).result[0]
    assert [(f, cond[0][0] if f != 5 else "a") for f, cond in out] == [(0, "walk"), (5, "a"), (20, "wave")]
    assert encoded == ["walk", "wave"]
    with pytest.raises(InputError) as err:
        PromptScheduleText.execute(clip, "walk")
    assert err.value.input_name == "prompts"
