"""Context-window mode (issue 18) on the real host with the tiny models: what every window of every
model call receives, equality with a plain one-segment run, determinism, the seam metric.

The motion encoder's arithmetic is swapped for a cheap deterministic function of the pixels (as in
test_sampler_controls.py): the real 512x512 encoder costs seconds a frame on the CPU; the face
encoder (whose causal convolutions make per-window encoding differ) stays the real one.
"""
from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from sampler_helpers import animate_settings, sampler_rig

W = H = 32
pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def rig(tiny_models):
    return sampler_rig(tiny_models, 40, 31, W)


@pytest.fixture
def cheap_encoder(monkeypatch, rig):
    def get_motion(self, img):
        w = torch.linspace(-1, 1, 512, dtype=torch.float32)
        feat = img.float().mean(dim=(2, 3))
        return (feat.sum(1, keepdim=True) * w + feat[:, :1] * 3).to(img.dtype)

    enc = rig.model.model.diffusion_model.motion_encoder
    monkeypatch.setattr(enc, "get_motion", types.MethodType(get_motion, enc))


def settings(**kw):
    return animate_settings(W, H, **{"steps": 1, "seed": 3, **kw})


def windows(rig, n, s, length, overlap, face=True, replace=False, **kw):
    from wan_animate_kit.models.context_windows import run_windows

    return run_windows(rig.model, rig.vae, rig.pos, rig.neg, rig.ref, rig.pose[:n], s, window_length=length,
                       window_overlap=overlap, face=rig.face[:n] if face else None,
                       environment=rig.env[:n] if replace else None, mask=rig.mask[:n] if replace else None,
                       clip_vision_output=rig.clip, step_callback=lambda steps: None, **kw)


def segments(rig, n, s, face=True, replace=False):
    from wan_animate_kit.models.animate_sampler import run_animate

    return run_animate(rig.model, rig.vae, rig.pos, rig.neg, rig.ref, rig.pose[:n], s,
                       face=rig.face[:n] if face else None, environment=rig.env[:n] if replace else None,
                       mask=rig.mask[:n] if replace else None, clip_vision_output=rig.clip,
                       step_callback=lambda steps: None)


def _mirror(n, total):
    """Ping-pong source indices re-stated: 0..n-1, then back down without repeating the ends."""
    out, i, d = [], 0, 1
    for _ in range(total):
        out.append(i)
        if n > 1:
            if not 0 <= i + d < n:
                d = -d
            i += d
    return out


def _expected_inputs(rig, n, replace):
    """The whole-video tensors the model should see, built independently of the pack's code: the
    host VAE on the padded videos (official float32 VAE on bf16-rounded inputs), the latents
    scaled as the host's concat_cond / extra_conds scale them, and the host DiT's own
    after_patch_embedding on the whole face video for the motion (pad slot first)."""
    import comfy.utils
    from wan_animate_kit.models import animate_conditioning as ac

    total = 4 * ((n - 1 + 3) // 4) + 1
    idx = _mirror(n, total)
    base = rig.model.model
    with ac.vae_precision(rig.vae):
        pose_lat = base.process_latent_in(rig.vae.encode(rig.pose[idx]))
        video = rig.env[idx] if replace else torch.full((total, H, W, 3), 0.5)
        cond_lat = base.process_latent_in(rig.vae.encode(video))
        ref_lat = base.process_latent_in(rig.vae.encode(rig.ref))
    lat_t = pose_lat.shape[2]
    # official mask M (1 = known): reference slot 1; video: 1 - character at latent pixel (8i, 8j),
    # latent 0 = pixel frame 0 in all channels, latent k >= 1 = pixel frames 4k-3 .. 4k
    per_frame = torch.zeros(total, H // 8, W // 8)
    if replace:
        per_frame = 1.0 - rig.mask[idx][:, ::8, ::8]
    known = torch.zeros(4, lat_t, H // 8, W // 8)
    for k in range(lat_t):
        for c in range(4):
            known[c, k] = per_frame[0] if k == 0 else per_frame[4 * k - 3 + c]
    dm = base.diffusion_model
    dt = base.get_dtype() if base.manual_cast_dtype is None else base.manual_cast_dtype
    face = comfy.utils.common_upscale(rig.face[idx].movedim(-1, 1), 512, 512, "area", "center") * 2 - 1
    face = face.movedim(0, 1).unsqueeze(0).contiguous().to(dt)  # as the host's batched condition holds it
    x0 = torch.zeros(1, dm.dim, lat_t + 1, 1, 1, dtype=dt)
    with torch.inference_mode():
        motion = {0: type(dm).after_patch_embedding(dm, x0.clone(), None, face)[1],
                  1: type(dm).after_patch_embedding(dm, x0.clone(), None, torch.full_like(face, -1.0))[1]}
    return types.SimpleNamespace(pose=pose_lat, cond=cond_lat, ref=ref_lat, known=known, motion=motion,
                                 lat_t=lat_t, total=total)


@pytest.mark.parametrize("replace", [False, True])
def test_every_window_gets_reference_its_poses_motion_and_concat(rig, cheap_encoder, monkeypatch, replace):
    from comfy.ldm.wan.model_animate import FaceBlock

    adapter = []  # the motion_vec every face-adapter block of the DiT's forward receives
    real = FaceBlock.forward

    def recording(self, x, motion_vec, *a, **kw):
        adapter.append(motion_vec.detach().clone())
        return real(self, x, motion_vec, *a, **kw)

    monkeypatch.setattr(FaceBlock, "forward", recording)
    blocks = len(rig.model.model.diffusion_model.face_adapter.fuser_blocks)
    n, length, overlap = 11, 2, 1  # 13 padded frames, 4 video latents, windows at 0, 1, 2
    exp = _expected_inputs(rig, n, replace)
    res = windows(rig, n, settings(steps=2, cfg=2.0), length, overlap, replace=replace, trace=True)
    assert len(adapter) == blocks * len(res.trace)
    assert res.starts == [0, 1, 2] and res.latent_frames == exp.lat_t == 4
    assert res.frames.shape == (n, H, W, 3)
    calls = {t["call"] for t in res.trace}
    assert len(calls) >= 2  # every step's model call (both prompts, face CFG)
    for call in calls:
        assert [t["start"] for t in res.trace if t["call"] == call] == [0, 1, 2]
    atol = 1e-5
    for i, t in enumerate(res.trace):
        t["adapter_motion"] = adapter[i * blocks]
        s, x, full = t["start"], t["x"], t["x_full"]
        assert x.shape[2] == 1 + length
        assert torch.equal(x[:, :, :1], full[:, :, :1])  # the whole latent's reference slot
        assert torch.equal(x[:, :, 1:], full[:, :, 1 + s:1 + s + length])
        c = t["c_concat"]
        for row, _ in enumerate(t["cond_or_uncond"]):
            assert torch.allclose(c[row, 4:, 0], exp.ref[0, :, 0], atol=atol)  # reference latent at slot 0
            assert torch.equal(c[row, :4, 0], torch.ones_like(c[row, :4, 0]))  # reference: all known
            assert torch.allclose(c[row, 4:, 1:], exp.cond[0, :, s:s + length], atol=atol)
            assert torch.allclose(c[row, :4, 1:], exp.known[:, s:s + length], atol=atol)
            assert torch.allclose(t["pose_latents"][row], exp.pose[0, :, s:s + length], atol=atol)
        for row, kind in enumerate(t["cond_or_uncond"]):
            assert torch.equal(t["motion"][row], exp.motion[kind][0, 1 + s:1 + s + length])
        # what the DiT's face adapter received: a zero pad slot, then the window's motion
        vec = t["adapter_motion"]
        assert vec is not None and vec.shape[1] == 1 + length
        assert torch.equal(vec[:, 0], torch.zeros_like(vec[:, 0]))
        for row, kind in enumerate(t["cond_or_uncond"]):
            assert torch.equal(vec[row, 1:], exp.motion[kind][0, 1 + s:1 + s + length])
    # the motion encoder ran once per run per kind over the whole face video, not per window or step
    assert res.motion_encoded == 2 * -(-exp.total // 8)


def test_one_window_equals_a_plain_one_segment_run(rig, cheap_encoder):
    """One window covering the video = sampling the whole video as one segment, bit for bit (same
    noise draw, same conditioning, the face motion of the whole video, the same decode)."""
    n = 9
    a = windows(rig, n, settings(steps=2, cfg=2.0), 21, 4).frames
    b = segments(rig, n, settings(steps=2, cfg=2.0, clip_len=9)).frames
    assert a.shape == b.shape == (n, H, W, 3)
    assert np.array_equal(a, b)


def test_one_window_equals_plain_run_in_replacement_with_official_solver(rig, cheap_encoder):
    n = 7  # padded to 9 frames: the plain run's segment is 9 frames long
    s = dict(sampler_name="official UniPC (bh2, order 2)", steps=2)
    a = windows(rig, n, settings(**s), 3, 2, replace=True).frames
    b = segments(rig, n, settings(clip_len=9, **s), replace=True).frames
    assert np.array_equal(a, b)


def test_windows_are_deterministic_finite_and_stream(rig, cheap_encoder):
    n = 11
    s = settings(steps=2)
    a = windows(rig, n, s, 2, 1)
    got = []
    b = windows(rig, n, s, 2, 1, sink=got.append, keep_frames=False)
    assert b.frames is None and a.frames.shape == (n, H, W, 3)
    assert np.array_equal(np.concatenate(got), a.frames)
    assert len(got) > 2  # frames arrive as the latent is decoded, not in one piece
    assert a.frames.std() > 1.0
    c = windows(rig, n, settings(steps=2, seed=4), 2, 1)
    assert not np.array_equal(a.frames, c.frames)


def test_windows_change_the_result_and_have_no_seam(rig, cheap_encoder):
    """Seam metric (preprocess.stitching.seam_jump): the mean frame-to-frame change at the segment
    mode's cuts vs elsewhere for both modes on the same inputs, and for the windows at their own
    boundaries (the first pixel frame of every window's first latent, 4s - 3). The tiny model's
    weights are random, so its frames change a lot everywhere: this pins that the windows add no
    jump of their own, not the visual gain on real weights."""
    from wan_animate_kit.preprocess.segments import plan_segments
    from wan_animate_kit.preprocess.stitching import seam_jump

    n = 25
    seg = segments(rig, n, settings(steps=2, clip_len=9)).frames
    res = windows(rig, n, settings(steps=2), 3, 1)
    win = res.frames
    plan = plan_segments(n, 9, 1)
    s_at, s_rest = seam_jump(seg, plan)
    w_at, w_rest = seam_jump(win, plan)
    diffs = np.abs(np.diff(win.astype(np.float32), axis=0)).mean(axis=(1, 2, 3))
    edges = [4 * s - 3 - 1 for s in res.starts[1:]]  # diffs[i] = |f[i+1] - f[i]|
    at_edges = float(diffs[edges].mean())
    rest = float(np.delete(diffs, edges).mean())
    print(f"segments: seam {s_at:.2f} vs {s_rest:.2f}; windows at the segment cuts {w_at:.2f} vs {w_rest:.2f}, "
          f"at the window starts {at_edges:.2f} vs {rest:.2f}")
    assert np.isfinite([s_at, s_rest, w_at, w_rest]).all()
    assert w_at <= 1.25 * w_rest and at_edges <= 1.25 * rest
    assert not np.array_equal(seg, win)


def test_user_model_untouched_and_bad_window_refused(rig, cheap_encoder):
    from wan_animate_kit.models.context_windows import APE_TARGET, WRAPPER_KEY

    before = dict(rig.model.object_patches)
    windows(rig, 9, settings(), 3, 1)
    assert rig.model.object_patches == before and APE_TARGET not in rig.model.object_patches
    assert WRAPPER_KEY not in str(rig.model.wrappers)
    with pytest.raises(ValueError, match="window_overlap"):
        windows(rig, 9, settings(), 3, 3)


def test_node_mode_input_defaults_tooltip_refusals_and_run(rig, cheap_encoder):
    """The sampler node: mode (official segments by default), window_length 21, window_overlap 4;
    the tooltip says it is not the official pipeline; bad window inputs, prompt_schedule and
    continue_from are refused naming the input; a run equals run_windows on the same inputs."""
    from wan_animate_kit.models.context_windows import MODE_WINDOWS
    from wan_animate_kit.nodes.common import InputError
    from wan_animate_kit.nodes.sample import AnimateSampler, windows_memory_check

    inputs = {i.id: i for i in AnimateSampler.GET_SCHEMA().inputs}
    assert inputs["mode"].default == "segments (official)" and MODE_WINDOWS in inputs["mode"].options
    assert inputs["window_length"].default == 21 and inputs["window_overlap"].default == 4
    tip = inputs["mode"].tooltip
    assert "NOT the official pipeline" in tip and "trained on segments" in tip
    assert "not been measured on the real weights" in tip and "seam" in tip
    n = 9
    args = dict(model=rig.model, positive=rig.pos, negative=rig.neg, vae=rig.vae, reference=rig.ref,
                pose_video=rig.pose[:n], face_video=rig.face[:n], clip_vision_output=rig.clip, seed=3, steps=1,
                cfg=1.0, sampler_name="euler", scheduler="simple", segment_length=9, guidance_frames=1, width=0,
                height=0, fps=24.0, crossfade=False, colour_correction=False, colour_strength=1.0, cache=False,
                mode=MODE_WINDOWS, window_length=2, window_overlap=1)
    for bad, name in ((dict(window_overlap=2), "window_overlap"), (dict(window_length=0), "window_length"),
                      (dict(continue_from=rig.pose[:3]), "continue_from"), (dict(mode="tiles"), "mode")):
        with pytest.raises(InputError, match=name):
            AnimateSampler.execute(**{**args, **bad})
    with pytest.raises(InputError, match="mode"):
        windows_memory_check({"frames": 9, "width": 32, "height": 32}, False, memory=(1000, 1000))
    images = AnimateSampler.execute(**args).result[0]
    direct = windows(rig, n, settings(steps=1, seed=3), 2, 1).frames
    assert images.shape == (n, H, W, 3)
    assert np.array_equal((images * 255).round().to(torch.uint8).numpy(), direct)


@pytest.mark.host
def test_larger_inputs_are_brought_to_the_output_size_a_few_frames_at_a_time_exactly(rig):
    """Pose, environment and mask videos larger than the output give exactly the frames of the same
    inputs resized whole (the conditioning's own resizes), without a whole-video float copy at
    their size."""
    import comfy.utils
    from wan_animate_kit.models import animate_conditioning as ac
    from wan_animate_kit.models.context_windows import run_windows

    n = 13
    g = torch.Generator().manual_seed(12)
    big_pose = torch.randint(0, 256, (n, 2 * H + 8, 2 * W, 3), generator=g).float() / 255
    big_env = torch.randint(0, 256, (n, 2 * H + 8, 2 * W, 3), generator=g).float() / 255
    big_mask = torch.nn.functional.interpolate(rig.mask[:n, None], size=(2 * H + 8, 2 * W), mode="nearest")[:, 0]
    small_mask = comfy.utils.common_upscale(big_mask[:, None], W, H, "nearest-exact", "center")[:, 0]
    common = dict(window_length=2, window_overlap=1, clip_vision_output=rig.clip, step_callback=lambda steps: None)
    large = run_windows(rig.model, rig.vae, rig.pos, rig.neg, rig.ref, big_pose, settings(), environment=big_env,
                        mask=big_mask, **common)
    small = run_windows(rig.model, rig.vae, rig.pos, rig.neg, rig.ref, ac.resize_frames(big_pose, W, H), settings(),
                        environment=ac.resize_frames(big_env, W, H), mask=small_mask, **common)
    assert large.frames.shape == (n, H, W, 3)
    assert np.array_equal(large.frames, small.frames)
