"""The long-video sampler: stitching, resume, determinism, modes, preflight, face-CFG wiring.

Host tests run the real ComfyUI host in-process on the CPU with the tiny Wan-Animate DiT and a
tiny Wan 2.1 VAE, at 32x32, 9-frame segments and 1 step (the VAE dominates the cost here).
"""
from __future__ import annotations

import os
import pathlib
import types
from fractions import Fraction

import numpy as np
import pytest
import torch
from media import write_mp4
from sampler_helpers import animate_settings

W = H = 32


# -- pure stitching (no host) -----------------------------------------------------------------

def _seg_frames(k: int, n: int, value_base: int = 0) -> np.ndarray:
    """Segment k's frames: frame j has value 20 * k + j (+ base) everywhere."""
    v = (value_base + 20 * k + np.arange(n)).astype(np.uint8)
    return np.broadcast_to(v[:, None, None, None], (n, 4, 4, 3)).copy()


def test_stitcher_hard_cut_drops_guidance_frames_and_trims():
    from wan_animate_kit.preprocess.segments import plan_segments
    from wan_animate_kit.preprocess.stitching import Stitcher, seam_positions

    plan = plan_segments(20, 9, 1)  # starts 0, 8, 16; padded to 25
    st = Stitcher(plan, 4, 4)
    tails = [st.add(k, _seg_frames(k, 9)) for k in range(plan.num_segments)]
    out = st.frames[:, 0, 0, 0].astype(int).tolist()
    assert len(out) == 20 and st.done
    # segment 0 keeps 0..8, segment 1 its frames 1..8, segment 2 its frames 1..3
    assert out == list(range(9)) + [20 + j for j in range(1, 9)] + [40 + j for j in range(1, 4)]
    assert tails[0][:, 0, 0, 0].tolist() == [8] and tails[1][:, 0, 0, 0].tolist() == [28]
    assert seam_positions(plan) == [9, 17]


def test_stitcher_crossfade_blends_overlap():
    from wan_animate_kit.preprocess.segments import plan_segments
    from wan_animate_kit.preprocess.stitching import Stitcher

    plan = plan_segments(13, 9, 5)  # starts 0, 4
    st = Stitcher(plan, 4, 4, crossfade=True)
    st.add(0, np.full((9, 4, 4, 3), 60, np.uint8))
    st.add(1, np.full((9, 4, 4, 3), 120, np.uint8))
    got = st.frames[:, 0, 0, 0].astype(int).tolist()
    w = [(k + 1) / 6 for k in range(5)]  # new-frame weights over the 5 overlapping frames
    assert got[:4] == [60] * 4
    assert got[4:9] == [round(60 * (1 - x) + 120 * x) for x in w]
    assert got[9:] == [120] * 4


def test_stitcher_colour_correction_matches_shared_frames():
    from wan_animate_kit.preprocess.segments import plan_segments
    from wan_animate_kit.preprocess.stitching import Stitcher

    rng = np.random.default_rng(0)
    base = rng.integers(40, 200, size=(17, 8, 8, 3)).astype(np.float32)
    plan = plan_segments(17, 9, 1)
    seg0 = base[:9].astype(np.uint8)
    cast = np.array([25.0, -10.0, 5.0], np.float32)
    seg1 = np.clip(base[8:17] + cast, 0, 255).astype(np.uint8)  # same content, drifted colours
    plain = Stitcher(plan, 8, 8)
    plain.add(0, seg0)
    plain.add(1, seg1)
    fixed = Stitcher(plan, 8, 8, colour_strength=1.0)
    fixed.add(0, seg0)
    tail = fixed.add(1, seg1)
    err_plain = np.abs(plain.frames[9:].astype(float) - base[9:17]).mean()
    err_fixed = np.abs(fixed.frames[9:].astype(float) - base[9:17]).mean()
    assert err_plain > 8 and err_fixed < err_plain / 2
    assert np.array_equal(tail, fixed.frames[16:17])  # the corrected tail conditions the next segment
    assert np.array_equal(fixed.frames[:9], seg0)  # the first segment is never touched


def test_stitcher_colour_correction_measures_environment_only_when_given():
    from wan_animate_kit.preprocess.segments import plan_segments
    from wan_animate_kit.preprocess.stitching import Stitcher

    rng = np.random.default_rng(1)
    base = rng.integers(60, 180, size=(17, 16, 16, 3)).astype(np.float32)
    plan = plan_segments(17, 9, 1)
    seg1 = np.clip(base[8:17] + np.array([20.0, 0.0, -15.0], np.float32), 0, 255)
    seg1[:, 2:14, 4:12] = (250, 10, 10)  # the replaced character: new content, not a colour cast
    seg1 = seg1.astype(np.uint8)
    env = np.ones((9, 16, 16), bool)
    env[:, 2:14, 4:12] = False

    def env_error(region):
        st = Stitcher(plan, 16, 16, colour_strength=1.0)
        st.add(0, base[:9].astype(np.uint8))
        st.add(1, seg1, region)
        return np.abs(st.frames[9:].astype(float) - base[9:17])[:, env[0]].mean()

    assert env_error(env) < env_error(None) / 2


def test_stitcher_rejects_wrong_shapes_and_order():
    from wan_animate_kit.preprocess.segments import plan_segments
    from wan_animate_kit.preprocess.stitching import Stitcher

    plan = plan_segments(20, 9, 1)
    st = Stitcher(plan, 4, 4)
    with pytest.raises(ValueError, match="in order"):
        st.add(1, _seg_frames(1, 9))
    with pytest.raises(ValueError, match="frames must be"):
        st.add(0, _seg_frames(0, 5))
    st.add(0, _seg_frames(0, 9))
    st.add(1, _seg_frames(1, 9))
    assert st.add(2, _seg_frames(2, 4)) is None  # a shortened last segment is fine (needs 1 + 3 frames)
    assert st.frames.shape[0] == 20


# -- host fixtures ----------------------------------------------------------------------------

def finite_vae(path):
    """The tiny Wan 2.1 VAE through the host's own loader."""
    import comfy.sd
    import comfy.utils

    return comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(path)))


@pytest.fixture(scope="module")
def rig(tiny_models):
    import comfy.sd

    g = torch.Generator().manual_seed(11)

    def img(n, h=H, w=W):
        return torch.randint(0, 256, (n, h, w, 3), generator=g).float() / 255

    mask = torch.zeros(24, H, W)
    for t in range(24):
        mask[t, 6 + t % 5:26, 8:22 + t % 4] = 1.0
    return types.SimpleNamespace(
        model=comfy.sd.load_diffusion_model(str(tiny_models["dit"])), vae=finite_vae(tiny_models["vae"]),
        pose=img(24), env=img(24), mask=mask, ref=img(1), face=img(5, 40, 40),
        pos=[[torch.randn(1, 6, 4096, generator=g), {}]], neg=[[torch.randn(1, 5, 4096, generator=g), {}]],
        clip=types.SimpleNamespace(penultimate_hidden_states=torch.randn(1, 257, 1280, generator=g)))


@pytest.fixture
def spy(monkeypatch, host):
    """Records every comfy.sample.sample call (noise, conditioning, seed) and passes it on."""
    import comfy.sample

    calls = []
    real = comfy.sample.sample

    def recording(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, **kw):
        calls.append(types.SimpleNamespace(noise=noise.clone(), positive=positive, negative=negative,
                                           latent=latent_image, seed=kw.get("seed"), cfg=cfg))
        return real(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, **kw)

    monkeypatch.setattr(comfy.sample, "sample", recording)
    return calls


def settings(**kw):
    return animate_settings(W, H, **kw)


def run(rig, n, s, replace=False, **kw):
    from wan_animate_kit.models.animate_sampler import run_animate

    return run_animate(rig.model, rig.vae, rig.pos, rig.neg, rig.ref, rig.pose[:n], s,
                       environment=rig.env[:n] if replace else None, mask=rig.mask[:n] if replace else None,
                       clip_vision_output=rig.clip, step_callback=lambda steps: None, **kw)


# -- host tests -------------------------------------------------------------------------------

@pytest.mark.host
def test_partial_decode_is_exact(rig):
    """The last segment decodes only the latent frames it needs: the Wan VAE decoder is causal,
    so a prefix decodes to exactly the same frames."""
    lat = torch.randn(1, 16, 3, H // 8, W // 8, generator=torch.Generator().manual_seed(0))
    full = rig.vae.decode(lat)
    part = rig.vae.decode(lat[:, :, :2])
    assert torch.isfinite(full).all() and full.shape[1] == 9 and part.shape[1] == 5
    assert torch.equal(part, full[:, :5])


@pytest.mark.host
def test_resume_after_interrupt_is_bit_identical(rig, spy, tmp_path):
    import comfy.model_management
    import comfy.sample

    def interrupt_after_segment_1(index, total, newest, from_cache):
        if index == 1:  # what POST /interrupt does; the loop's next check raises
            comfy.model_management.interrupt_current_processing(True)

    s = settings(cache=True)
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        run(rig, 20, s, cache_root=str(tmp_path), on_segment=interrupt_after_segment_1)
    jobs = list(tmp_path.iterdir())
    assert len(jobs) == 1 and len(list(jobs[0].glob("seg*.npy"))) == 2
    assert len(spy) == 2

    seen = []
    resumed = run(rig, 20, s, cache_root=str(tmp_path), on_segment=lambda *a: seen.append((a[0], a[3])))
    assert resumed.loaded == [0, 1] and resumed.sampled == [2]
    assert len(spy) == 3  # only segment 2 was sampled again
    assert seen == [(0, True), (1, True), (2, False)]
    assert not any(tmp_path.iterdir())  # a finished job leaves no cache behind

    fresh = run(rig, 20, settings(cache=False))
    assert fresh.sampled == [0, 1, 2] and fresh.frames.shape == (20, H, W, 3)
    assert np.array_equal(resumed.frames, fresh.frames)
    assert fresh.frames.std() > 1  # real, varied frames (not a constant fill)

    # RNG: one generator seeded once; segment 0 gets exactly prepare_noise(latent, seed)
    noises = [c.noise for c in spy[3:]]
    assert torch.equal(noises[0], comfy.sample.prepare_noise(torch.zeros_like(noises[0]), s.seed))
    assert not torch.equal(noises[0], noises[1]) and not torch.equal(noises[1], noises[2])
    assert torch.equal(noises[2], spy[2].noise)  # the resumed run drew the same noise for segment 2


@pytest.mark.host
def test_same_seed_same_frames_other_seed_differs(rig):
    a = run(rig, 9, settings(seed=5))
    b = run(rig, 9, settings(seed=5))
    c = run(rig, 9, settings(seed=6))
    assert a.plan.num_segments == 1 and a.frames.shape[0] == 9
    assert np.array_equal(a.frames, b.frames)
    assert not np.array_equal(a.frames, c.frames)


@pytest.mark.host
@pytest.mark.parametrize("mode,g,n,segments,colour", [
    ("animate", 5, 13, 2, 0.0),  # 9 + 4: fills the last segment exactly
    ("replace", 1, 9, 1, 0.0),
    ("replace", 5, 11, 2, 1.0),  # padded to 13, trimmed back to 11; colour-corrected on the environment
])
def test_modes_frame_counts_and_guidance_wiring(rig, spy, monkeypatch, mode, g, n, segments, colour):
    from wan_animate_kit.models import animate_conditioning as ac
    from wan_animate_kit.models import animate_sampler

    guid = []
    real = ac.build_segment

    def capture(*a, **kw):
        guid.append(kw.get("guidance"))
        return real(*a, **kw)

    monkeypatch.setattr(animate_sampler.ac, "build_segment", capture)
    res = run(rig, n, settings(guidance=g, colour_strength=colour), replace=(mode == "replace"))
    assert res.frames.shape == (n, H, W, 3)
    assert res.plan.num_segments == segments == len(spy)
    assert guid[0] is None
    for k in range(1, segments):
        start = res.plan.segments[k].start
        # the guidance is the previous segment's (colour-corrected) last g frames, as in the output
        assert torch.equal(torch.round(guid[k] * 255).to(torch.uint8), torch.from_numpy(res.frames[start:start + g]))
        mask = spy[k].positive[0][1]["concat_mask"]
        assert torch.all(mask[:, :, : 1 + (1 if g == 1 else 2)] == 0)  # ref + guidance latents known
    if mode == "replace":
        c0 = spy[0].positive[0][1]["concat_mask"][:, :, 1:]
        assert 0 < float(c0.mean()) < 1  # the character region is generated, the environment kept


@pytest.mark.host
def test_face_cfg_uncond_gets_black_faces(rig, monkeypatch):
    """cfg > 1: the face motion of the negative pass is that of all -1 face frames, the positive
    pass's that of the crops, each pass encoded once; cfg 1: one pass. The model calls carry no face
    pixels (the motion comes computed once, face_motion.py), in the rows of the call's batch.

    The motion encoder's arithmetic is a cheap stand-in that records its inputs: the host's costs
    seconds per 512x512 crop on this CPU."""
    from wan_animate_kit.models.animate_conditioning import face_pixels
    from wan_animate_kit.nodes.sample import AnimateSampler

    enc_inputs, calls = [], []

    def get_motion(self, img):
        enc_inputs.append(img.clone())
        return img.float().mean(dim=(1, 2, 3))[:, None].expand(-1, 512).to(img.dtype) * 0.1

    enc = rig.model.model.diffusion_model.motion_encoder
    monkeypatch.setattr(enc, "get_motion", types.MethodType(get_motion, enc))

    def wrapper(apply_model, args):
        calls.append((list(args["cond_or_uncond"]), "face_pixel_values" in args["c"]))
        return apply_model(args["input"], args["timestep"], **args["c"])

    model = rig.model.clone()
    model.set_model_unet_function_wrapper(wrapper)
    common = dict(model=model, positive=rig.pos, negative=rig.neg, vae=rig.vae, reference=rig.ref,
                  pose_video=rig.pose[:5], seed=1, steps=1, sampler_name="euler", scheduler="simple",
                  segment_length=5, guidance_frames=1, width=0, height=0, fps=30.0, crossfade=False,
                  colour_correction=False, colour_strength=1.0, cache=False, face_video=rig.face,
                  clip_vision_output=rig.clip)
    out = AnimateSampler.execute(cfg=2.0, **common)
    assert out.result[0].shape == (5, H, W, 3)
    expected = face_pixels(rig.face)[0].movedim(1, 0)  # [5, 3, 512, 512]: the crops, frame-major
    assert len(enc_inputs) == 2  # one chunk of 5 frames per pass
    cond = [x for x in enc_inputs if not torch.all(x == -1)]
    assert len(cond) == 1 and torch.equal(cond[0], expected)
    assert any(torch.all(x == -1) and x.shape == expected.shape for x in enc_inputs)
    assert sorted(k for order, _ in calls for k in order) == [0, 1]  # one step: a cond and an uncond pass
    assert not any(has for _, has in calls)
    enc_inputs.clear()
    calls.clear()
    AnimateSampler.execute(cfg=1.0, **common)
    assert [o for o, _ in calls] == [[0]] and len(enc_inputs) == 1 and torch.equal(enc_inputs[0], expected)


@pytest.mark.host
def test_video_input_is_read_per_segment(rig, tmp_path, host):
    from comfy_api.latest import InputImpl
    from wan_animate_kit.nodes.common import source_of
    from wan_animate_kit.preprocess.frames import FileFrames

    frames = (rig.pose[:23].numpy() * 255).round().astype(np.uint8)
    path = tmp_path / "pose.mp4"
    write_mp4(path, frames, 24, crf=0)  # lossless: decoded frames compare exactly
    everything = np.concatenate(list(source_of(InputImpl.VideoFromFile(str(path)), "pose_video").iter_chunks(8)))
    reader = source_of(InputImpl.VideoFromFile(str(path)), "pose_video")
    assert isinstance(reader, FileFrames) and reader.num_frames == 23
    for idx in ([0, 1, 2, 3, 4, 5, 6, 7, 8], [8, 9, 10, 11, 12, 13, 14, 15, 16], [16, 17, 18, 19, 20, 21, 22, 21, 20],
                [2, 3]):  # forward, then mirrored padding at the end, then a restart
        got = reader.get_float(idx)
        assert torch.equal(got, torch.from_numpy(everything[idx]).float() / 255)
        assert len(reader._window) <= 9 + 16  # only a window of frames is held (one decoded chunk of 16 more)
    assert reader._base <= 2


@pytest.mark.host
def test_node_with_video_input_keeps_fps_and_count(rig, tmp_path):
    from comfy_api.latest import InputImpl
    from wan_animate_kit.nodes.sample import AnimateSampler

    frames = (rig.pose[:7].numpy() * 255).round().astype(np.uint8)
    path = tmp_path / "pose.mp4"
    write_mp4(path, frames, 24, crf=0)  # lossless: decoded frames compare exactly
    os.environ.pop("WAN_ANIMATE_KIT_CACHE_DIR", None)
    out = AnimateSampler.execute(model=rig.model, positive=rig.pos, negative=rig.neg, vae=rig.vae, reference=rig.ref,
                                 pose_video=InputImpl.VideoFromFile(str(path)), seed=0, steps=1, cfg=1.0,
                                 sampler_name="euler", scheduler="simple", segment_length=5, guidance_frames=1,
                                 width=0, height=0, fps=30.0, crossfade=True, colour_correction=True,
                                 colour_strength=0.5, cache=False)
    images, video = out.result
    assert images.shape == (7, H, W, 3) and images.dtype == torch.float32
    comp = video.get_components()
    assert comp.frame_rate == Fraction(24) and comp.images.shape[0] == 7


@pytest.mark.host
def test_on_demand_pose_and_face_videos_give_the_same_frames_as_image_batches(rig, monkeypatch):
    """The pack's on-demand VIDEO (RenderPose/FaceCrops video outputs) is read per segment and
    samples exactly like the same frames given as IMAGE batches."""
    from wan_animate_kit.nodes.common import source_of
    from wan_animate_kit.nodes.lazy_video import recipe_video

    pose_u8 = (rig.pose[:17].numpy() * 255).round().astype(np.uint8)
    face_u8 = np.repeat((rig.face.numpy() * 255).round().astype(np.uint8), 4, axis=0)[:17]
    passes = []

    def chunks_of(arr):
        def gen():
            passes.append(1)
            for s in range(0, len(arr), 5):
                yield arr[s:s + 5]
        return gen

    from wan_animate_kit.models.animate_sampler import run_animate

    faces_seen = []

    def get_motion(self, img):  # records the face pixels; a cheap stand-in (the real encoder is slow here)
        faces_seen.append(img.clone())
        return img.float().mean(dim=(1, 2, 3))[:, None].expand(-1, 512).to(img.dtype) * 0.1

    enc = rig.model.model.diffusion_model.motion_encoder
    monkeypatch.setattr(enc, "get_motion", types.MethodType(get_motion, enc))
    model = rig.model
    s = settings(clip_len=9, guidance=1)
    common = dict(clip_vision_output=rig.clip, step_callback=lambda steps: None)
    as_images = run_animate(model, rig.vae, rig.pos, rig.neg, rig.ref, torch.from_numpy(pose_u8).float() / 255, s,
                            face=torch.from_numpy(face_u8).float() / 255, **common)
    lazy_pose = source_of(recipe_video(chunks_of(pose_u8), 17, W, H, 24), "pose_video")
    lazy_face = source_of(recipe_video(chunks_of(face_u8), 17, 40, 40, 24), "face_video")
    as_videos = run_animate(model, rig.vae, rig.pos, rig.neg, rig.ref, lazy_pose, s, face=lazy_face, **common)
    assert np.array_equal(as_videos.frames, as_images.frames)
    half = len(faces_seen) // 2  # 2 segments of 9 frames: chunks of 8 and 1 frames each
    assert half == 4 and all(torch.equal(a, b) for a, b in zip(faces_seen[:half], faces_seen[half:]))
    assert len(passes) == 2  # one pass over each video for the whole job


@pytest.mark.host
@pytest.mark.parametrize("crossfade", [False, True])
def test_sink_gets_every_frame_once_in_order_and_memory_stays_bounded(rig, crossfade):
    """keep_frames=False: the frames only go to the sink, as soon as they are final, and equal the
    whole-video result bit for bit; the stitcher never holds more than clip_len + guidance frames."""
    s = settings(clip_len=9, guidance=5, crossfade=crossfade, colour_strength=0.5)
    whole = run(rig, 19, s)
    chunks = []
    streamed = run(rig, 19, s, sink=chunks.append, keep_frames=False)
    assert streamed.frames is None and len(chunks) == streamed.plan.num_segments
    assert np.array_equal(np.concatenate(chunks), whole.frames)
    both = []
    run(rig, 19, s, sink=both.append)  # keep_frames=True: the sink sees views of the same frames
    assert np.array_equal(np.concatenate(both), whole.frames)
    with pytest.raises(ValueError, match="needs a sink"):
        run(rig, 19, s, keep_frames=False)


def _node_args(rig, n, **kw):
    args = dict(model=rig.model, positive=rig.pos, negative=rig.neg, vae=rig.vae, reference=rig.ref,
                pose_video=rig.pose[:n], seed=3, steps=1, cfg=1.0, sampler_name="euler", scheduler="simple",
                segment_length=9, guidance_frames=1, width=0, height=0, fps=24.0, crossfade=True,
                colour_correction=False, colour_strength=1.0, cache=False)
    args.update(kw)
    return args


@pytest.mark.host
def test_frames_output_off_streams_the_video_to_a_file_with_audio(rig):
    import folder_paths
    from comfy_execution.graph_utils import ExecutionBlocker
    from wan_animate_kit.nodes.sample import AnimateSampler

    sr = 8000
    audio = {"waveform": torch.sin(torch.arange(sr * 2) / 5.0).reshape(1, 1, -1) * 0.2, "sample_rate": sr}
    on = AnimateSampler.execute(**_node_args(rig, 13, frames_output=True, audio=audio))
    images, video_on = on.result
    assert images.shape == (13, H, W, 3) and video_on.get_components().audio is audio
    off = AnimateSampler.execute(**_node_args(rig, 13, frames_output=False, audio=audio))
    blocked, video = off.result
    assert isinstance(blocked, ExecutionBlocker) and "frames_output" in blocked.message
    path = video.get_stream_source()
    assert isinstance(path, str) and path.startswith(folder_paths.get_temp_directory()) and path.endswith(".mp4")
    comp = video.get_components()
    assert comp.images.shape == images.shape and comp.frame_rate == Fraction(24)
    # the same frames through H.264 (yuv420p halves the chroma of this random-model noise, so compare luma),
    # much closer than to the neighbouring frames
    luma = torch.tensor([0.299, 0.587, 0.114])
    err = float(((comp.images - images) @ luma).abs().mean())
    shifted = float(((comp.images - images.roll(1, 0)) @ luma).abs().mean())
    print(f"luma error {err:.4f}, against the neighbouring frames {shifted:.4f}")
    assert err < 0.03 and err < shifted / 3
    assert comp.audio["sample_rate"] == sr
    assert abs(comp.audio["waveform"].shape[-1] - sr * 13 / 24) <= 1100  # cut to the video, AAC padding aside


@pytest.mark.host
def test_failed_job_leaves_no_partial_file_and_bad_audio_is_refused_first(rig, monkeypatch, tmp_path):
    import comfy.sample
    import folder_paths
    from wan_animate_kit.nodes.common import InputError
    from wan_animate_kit.nodes.sample import AnimateSampler

    # a temp folder of its own: other runs on the same host cache write their videos to the shared one
    monkeypatch.setattr(folder_paths, "temp_directory", str(tmp_path))
    folder = pathlib.Path(folder_paths.get_temp_directory()) / "wan_animate_kit"
    before = set(folder.glob("*.mp4")) if folder.exists() else set()
    with pytest.raises(InputError, match="audio"):
        AnimateSampler.execute(**_node_args(rig, 9, frames_output=False, audio={"sample_rate": 8000}))

    def boom(*a, **kw):
        raise RuntimeError("sampler exploded")

    monkeypatch.setattr(comfy.sample, "sample", boom)
    with pytest.raises(RuntimeError, match="exploded"):
        AnimateSampler.execute(**_node_args(rig, 9, frames_output=False))
    after = set(folder.glob("*.mp4")) if folder.exists() else set()
    assert after == before


# -- preflight --------------------------------------------------------------------------------

def _pre(rig, **over):
    from wan_animate_kit.nodes.sample import preflight

    args = dict(model=rig.model, vae=rig.vae, reference=rig.ref, pose_video=rig.pose[:9], face_video=None,
                environment_video=None, character_mask=None, pose=None, segment_length=9, guidance_frames=1,
                width=0, height=0, colour_strength=1.0, steps=1)
    args.update(over)
    return preflight(**args)


@pytest.mark.host
@pytest.mark.parametrize("over,name,text", [
    (dict(model="linear"), "model", "Linear"),
    (dict(vae=types.SimpleNamespace(latent_channels=48, latent_dim=3)), "vae", "48"),
    (dict(segment_length=10), "segment_length", "4n\\+1"),
    (dict(guidance_frames=3), "guidance_frames", "1 or 5"),
    (dict(guidance_frames=5, segment_length=5), "guidance_frames", "no new frames"),
    (dict(pose_video="pose40"), "width", "multiple of 16"),
    (dict(height=40), "height", "multiple of 16"),
    (dict(face_video="face4"), "face_video", "4 frames"),
    (dict(environment_video="env"), "character_mask", "missing"),
    (dict(character_mask="mask"), "environment_video", "missing"),
    (dict(environment_video="env", character_mask="mask3"), "character_mask", "3 frames"),
    (dict(environment_video="env", character_mask="empty"), "character_mask", "empty"),
    (dict(environment_video="env", character_mask="mask", pose="retargeted"), "pose", "retargeted"),
])
def test_preflight_names_the_bad_input(rig, over, name, text):
    from wan_animate_kit.nodes.common import InputError

    values = {"linear": types.SimpleNamespace(model=torch.nn.Linear(1, 1)), "pose40": torch.rand(9, 40, 40, 3),
              "face4": rig.face[:4], "env": rig.env[:9], "mask": rig.mask[:9], "mask3": rig.mask[:3],
              "empty": torch.zeros(9, H, W), "retargeted": types.SimpleNamespace(retargeted=True)}
    over = {k: values.get(v, v) if isinstance(v, str) else v for k, v in over.items()}
    with pytest.raises(InputError, match=text) as err:
        _pre(rig, **over)
    assert err.value.input_name == name


@pytest.mark.host
def test_preflight_accepts_single_mask_and_warns_on_full_mask(rig):
    ok = _pre(rig, environment_video=rig.env[:9], character_mask=rig.mask[:1], pose=types.SimpleNamespace(retargeted=False))
    assert ok["frames"] == 9 and (ok["width"], ok["height"]) == (W, H) and not ok["warnings"]
    full = _pre(rig, environment_video=rig.env[:9], character_mask=torch.ones(9, H, W))
    assert "covers the whole frame" in full["warnings"][0]
    sized = _pre(rig, width=64, height=48)
    assert (sized["width"], sized["height"]) == (64, 48)


@pytest.mark.host
def test_output_memory_check_errors_before_sampling_when_frames_cannot_fit(rig, monkeypatch):
    from wan_animate_kit.nodes import sample
    from wan_animate_kit.nodes.common import InputError

    gib = 2 ** 30
    need = sample.output_bytes(1000, 1280, 720)
    assert need == 1000 * 1280 * 720 * 15  # uint8 frames + float32 IMAGE
    assert sample.output_memory_check(1000, 1280, 720, False, (1, 1)) == []  # streamed to a file: no limit
    assert sample.output_memory_check(1000, 1280, 720, True, (64 * gib, 60 * gib)) == []
    warn = sample.output_memory_check(1000, 1280, 720, True, (64 * gib, 8 * gib))
    assert len(warn) == 1 and "12.9 GiB" in warn[0] and "frames_output off" in warn[0]
    with pytest.raises(InputError, match="more than this machine has") as err:
        sample.output_memory_check(1000, 1280, 720, True, (8 * gib, 8 * gib))
    assert err.value.input_name == "frames_output"

    # through the node: the error comes before any sampling
    import comfy.sample

    sampled = []
    real = comfy.sample.sample
    monkeypatch.setattr(comfy.sample, "sample", lambda *a, **k: (sampled.append(1), real(*a, **k))[1])
    import psutil

    small = sample.output_bytes(9, W, H) - 1  # a machine one byte too small for this job's IMAGE
    monkeypatch.setattr(psutil, "virtual_memory", lambda: types.SimpleNamespace(total=small, available=small))
    with pytest.raises(InputError, match="frames_output") as err:
        sample.AnimateSampler.execute(**_node_args(rig, 9))
    assert err.value.input_name == "frames_output" and not sampled
    # streamed: no RAM limit for the frames (the per-segment working memory has its own check, tested in
    # test_sampler_controls.py; this machine is too small for it, so it is left out here)
    monkeypatch.setattr(sample, "working_memory_check", lambda *a, **k: [])
    out = sample.AnimateSampler.execute(**_node_args(rig, 9, frames_output=False))
    assert sampled and out.result[1] is not None


@pytest.mark.host
def test_schema_has_tooltips_and_official_defaults(host):
    from wan_animate_kit.nodes import sample

    schema = sample.AnimateSampler.define_schema()
    schema.validate()
    assert schema.node_id == "WAK_AnimateSampler"
    assert schema.display_name == "Wan-Animate Sampler (long video)"
    assert sample.NODES == [sample.AnimateSampler]
    for inp in schema.inputs:
        assert inp.tooltip and len(inp.tooltip) > 10, inp.id
    by_id = {i.id: i for i in schema.inputs}
    assert by_id["steps"].default == 20 and by_id["cfg"].default == 1.0
    assert by_id["segment_length"].default == 77 and by_id["guidance_frames"].default == 1
    # official by default: the official UniPC (not the host's uni_pc), shift 5, float32 VAE
    assert by_id["sampler_name"].default == "official UniPC (bh2, order 2)"
    assert by_id["sampler_name"].options[:2] == ["official UniPC (bh2, order 2)", "official DPM++ (2M midpoint)"]
    assert "uni_pc" in by_id["sampler_name"].options and by_id["scheduler"].default == "simple"
    assert by_id["shift"].default == 5.0 and by_id["vae_precision"].default == "float32 (official)"
    assert by_id["sampler"].optional and by_id["sigmas"].optional
    assert by_id["fps"].default == 30.0
    assert {"IMAGE", "VIDEO"} <= set(by_id["pose_video"].get_io_type().split(","))
    info = sample.AnimateSampler.INPUT_TYPES()  # the V1 view the frontend reads
    assert "pose_video" in info["required"] and "face_video" in info["optional"]


@pytest.mark.host
def test_nan_from_the_model_is_a_clear_error_and_nothing_is_cached(rig, monkeypatch, tmp_path):
    import comfy.sample

    real = comfy.sample.sample

    def overflowing(*a, **kw):
        return real(*a, **kw) * float("nan")

    monkeypatch.setattr(comfy.sample, "sample", overflowing)
    with pytest.raises(FloatingPointError, match="segment 0"):
        run(rig, 9, settings(cache=True), cache_root=tmp_path)
    assert not list(tmp_path.rglob("seg*.npy"))


def test_cache_key_takes_every_setting_unless_marked_stitching_only(host):
    """The resume cache key is built from the settings themselves: every field is in it unless it
    is marked stitching-only, a field without a decision is an error, and changing any keyed field
    changes the key while the stitching-only ones do not."""
    import dataclasses

    from wan_animate_kit.models.animate_sampler import STITCHING_ONLY, AnimateSettings

    fields = dataclasses.fields(AnimateSettings)
    assert all("key" in f.metadata for f in fields), [f.name for f in fields if "key" not in f.metadata]
    stitching = {f.name for f in fields if f.metadata["key"] is False}
    assert stitching == {"crossfade", "colour_strength", "cache"}
    base = AnimateSettings()
    changed = dict(seed=1, steps=3, cfg=2.0, sampler_name="euler", scheduler="karras", clip_len=9, guidance=5,
                   width=32, height=48, shift=8.0, vae_precision="host", sampler=types.SimpleNamespace(),
                   sigmas=torch.tensor([1.0, 0.0]), pose_strength=0.5, face_strength=0.5, start_frame=9,
                   crossfade=True, colour_strength=0.5, cache=False, motion_once=False)
    assert set(changed) == {f.name for f in fields}  # a new field must be added here too
    for name, value in changed.items():
        same = repr(dataclasses.replace(base, **{name: value}).key_fields()) == repr(base.key_fields())
        assert same == (name in stitching), name

    @dataclasses.dataclass
    class Undecided(AnimateSettings):
        new_option: int = 0

    with pytest.raises(TypeError, match="new_option has no cache-key decision"):
        Undecided().key_fields()
    assert STITCHING_ONLY == {"key": False}


def _packed(mask):
    from wan_animate_kit.preprocess.frames import PackedMasks

    out = PackedMasks(mask.shape[-1], mask.shape[-2])
    out.append(mask)
    return out


@pytest.mark.host
def test_compact_masks_sample_exactly_like_the_mask_batch(rig):
    """Replacement with the compact masks of Environment Video: the same frames as the float MASK,
    and a different mask gives different frames (the mask reaches the output)."""
    s = settings(clip_len=9, guidance=1)
    as_batch = run(rig, 13, s, replace=True)
    from wan_animate_kit.models.animate_sampler import run_animate

    compact = run_animate(rig.model, rig.vae, rig.pos, rig.neg, rig.ref, rig.pose[:13], s, environment=rig.env[:13],
                          mask=_packed(rig.mask[:13]), clip_vision_output=rig.clip, step_callback=lambda steps: None)
    assert np.array_equal(compact.frames, as_batch.frames)
    other = torch.zeros_like(rig.mask[:13])
    other[:, 2:10, 2:12] = 1
    moved = run_animate(rig.model, rig.vae, rig.pos, rig.neg, rig.ref, rig.pose[:13], s, environment=rig.env[:13],
                        mask=_packed(other), clip_vision_output=rig.clip, step_callback=lambda steps: None)
    assert not np.array_equal(moved.frames, as_batch.frames)


@pytest.mark.host
def test_preflight_checks_compact_masks_like_mask_batches(rig):
    from wan_animate_kit.nodes.common import InputError

    ok = _pre(rig, environment_video=rig.env[:9], character_mask=_packed(rig.mask[:9]))
    assert ok["mask"].num_frames == 9 and not ok["warnings"]
    single = _pre(rig, environment_video=rig.env[:9], character_mask=_packed(rig.mask[:1]))
    assert single["mask"].num_frames == 9
    assert torch.equal(single["mask"].get_float([8]), rig.mask[:1])
    assert "covers the whole frame" in _pre(rig, environment_video=rig.env[:9],
                                            character_mask=_packed(torch.ones(9, H, W)))["warnings"][0]
    for bad, text in ((_packed(rig.mask[:3]), "3 frames"), (_packed(torch.zeros(9, H, W)), "empty")):
        with pytest.raises(InputError, match=text) as err:
            _pre(rig, environment_video=rig.env[:9], character_mask=bad)
        assert err.value.input_name == "character_mask"


@pytest.mark.host
def test_larger_input_videos_are_resized_a_few_frames_at_a_time_exactly(rig):
    """Pose and environment videos larger than the output are brought to the output size a few frames
    at a time (no full-resolution float segment): the frames equal those of inputs resized whole."""
    from wan_animate_kit.models import animate_conditioning as ac
    from wan_animate_kit.models.animate_sampler import frames_at_size, run_animate
    from wan_animate_kit.preprocess.frames import ArrayFrames

    g = torch.Generator().manual_seed(11)
    big_pose = torch.randint(0, 256, (13, 2 * H + 8, 2 * W, 3), generator=g).float() / 255  # other aspect: crop
    big_env = torch.randint(0, 256, (13, 2 * H + 8, 2 * W, 3), generator=g).float() / 255
    whole = ac.resize_frames(big_pose, W, H)
    assert torch.equal(frames_at_size(ArrayFrames(big_pose), range(13), W, H, chunk=3), whole)
    s = settings(clip_len=9, guidance=1)
    common = dict(clip_vision_output=rig.clip, step_callback=lambda steps: None, mask=rig.mask[:13])
    small = run_animate(rig.model, rig.vae, rig.pos, rig.neg, rig.ref, whole, s,
                        environment=ac.resize_frames(big_env, W, H), **common)
    large = run_animate(rig.model, rig.vae, rig.pos, rig.neg, rig.ref, big_pose, s, environment=big_env, **common)
    assert np.array_equal(large.frames, small.frames)
    # a mask larger than the output: brought to it a few masks at a time, as the conditioning would
    import comfy.utils
    from wan_animate_kit.models.animate_sampler import masks_at_size

    big_mask = torch.nn.functional.interpolate(rig.mask[:13, None], size=(2 * H + 8, 2 * W), mode="nearest")[:, 0]
    whole_mask = comfy.utils.common_upscale(big_mask[:, None], W, H, "nearest-exact", "center")[:, 0]
    assert torch.equal(masks_at_size(ArrayFrames(big_mask), range(13), W, H, chunk=3), whole_mask)
    s2 = settings(clip_len=9, guidance=1, colour_strength=0.5)
    common2 = dict(common, environment=big_env)
    del common2["mask"]
    a = run_animate(rig.model, rig.vae, rig.pos, rig.neg, rig.ref, big_pose, s2, mask=big_mask, **common2)
    b = run_animate(rig.model, rig.vae, rig.pos, rig.neg, rig.ref, big_pose, s2, mask=whole_mask, **common2)
    assert np.array_equal(a.frames, b.frames)


@pytest.mark.host
@pytest.mark.parametrize("side", [512, 200])
def test_face_pixels_made_a_few_frames_at_a_time_equal_the_whole_segment(host, side):
    from wan_animate_kit.models import animate_conditioning as ac
    from wan_animate_kit.preprocess.frames import ArrayFrames

    faces = torch.randint(0, 256, (11, side, side, 3), generator=torch.Generator().manual_seed(side)).float() / 255
    whole = ac.face_pixels(faces)
    parts = ac.face_pixels_of(ArrayFrames(faces), range(11), chunk=3)
    # the same values in the same memory layout (the convolutions downstream see identical inputs)
    assert parts.shape == whole.shape == (1, 3, 11, 512, 512) and parts.stride()[1:] == whole.stride()[1:]
    assert torch.equal(parts, whole)
    picked = ac.face_pixels_of(ArrayFrames(faces), [4, 5, 6, 5, 4], chunk=2)
    assert torch.equal(picked, ac.face_pixels(faces[[4, 5, 6, 5, 4]]))
