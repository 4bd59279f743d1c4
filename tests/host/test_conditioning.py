"""Per-segment conditioning against core's WanAnimateToVideo, in the real host (in-process, CPU)."""
from __future__ import annotations

import types

import pytest
import torch

pytestmark = pytest.mark.host

W = H = 32
T = 9


def finite_vae(path):
    """The tiny Wan 2.1 VAE through the host's own loader."""
    import comfy.sd
    import comfy.utils

    return comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(path)))


@pytest.fixture(scope="module")
def vae(tiny_models):
    return finite_vae(tiny_models["vae"])


@pytest.fixture(scope="module")
def dit(tiny_models):
    import comfy.sd

    return comfy.sd.load_diffusion_model(str(tiny_models["dit"]))


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(7)

    def img(n, h=H, w=W):  # 8-bit exact values, like decoded video
        return torch.randint(0, 256, (n, h, w, 3), generator=g).float() / 255

    mask = torch.zeros(40, 64, 64)
    for t in range(40):  # a moving box, so every frame's mask differs
        mask[t, 8 + t % 9:40 + t % 9, 10 + t % 7:30 + t % 7] = 1.0
    return types.SimpleNamespace(
        pose=img(40), face=img(40, 24, 20), env=img(40), mask=mask, ref=img(1), prev=img(12),
        pos=[[torch.randn(1, 6, 4096, generator=g), {}]], neg=[[torch.randn(1, 5, 4096, generator=g), {}]],
        clip=types.SimpleNamespace(penultimate_hidden_states=torch.randn(1, 257, 1280, generator=g)))


def core(vae, d, offset=0, continue_motion=None, g=5, replace=False, face=True):
    from comfy_extras.nodes_wan import WanAnimateToVideo

    out = WanAnimateToVideo.execute(d.pos, d.neg, vae, W, H, T, 1, g, offset, reference_image=d.ref,
                                    clip_vision_output=d.clip, face_video=d.face if face else None,
                                    pose_video=d.pose, continue_motion=continue_motion,
                                    background_video=d.env if replace else None,
                                    character_mask=d.mask if replace else None)
    return out[0], out[1], out[2]["samples"]


def ours(vae, d, start=0, guidance=None, replace=False, face=True):
    from wan_animate_kit.models import animate_conditioning as ac

    ref_latent = ac.encode_reference(vae, d.ref, W, H)
    sl = slice(start, start + T)
    return ac.build_segment(d.pos, d.neg, vae, ref_latent, d.pose[sl], W, H,
                            face=d.face[sl] if face else None,
                            environment=d.env[sl] if replace else None,
                            character_mask=d.mask[sl] if replace else None,
                            guidance=guidance, clip_vision_output=d.clip)


KEYS = ("concat_latent_image", "concat_mask", "pose_video_latent", "face_video_pixels")


def assert_same(a_conds, b_conds, skip=()):
    assert len(a_conds) == len(b_conds)
    for (ta, da), (tb, db) in zip(a_conds, b_conds):
        assert torch.equal(ta, tb)
        assert set(da) == set(db)
        assert da["clip_vision_output"] is db["clip_vision_output"]
        for k in KEYS:
            if k in da and k not in skip:
                assert da[k].shape == db[k].shape, k
                assert da[k].dtype == db[k].dtype, k
                assert torch.equal(da[k], db[k]), k


def test_first_segment_equals_core_animation(vae, data):
    cp, cn, clat = core(vae, data)
    seg = ours(vae, data)
    assert_same(seg.positive, cp)
    assert_same(seg.negative, cn)
    assert torch.isfinite(seg.positive[0][1]["concat_latent_image"]).all()
    assert seg.latent.shape == clat.shape == (1, 16, 1 + (T - 1) // 4 + 1, H // 8, W // 8)
    assert not seg.latent.any()
    # face CFG: the negative gets a black face, the positive the crops in [-1, 1]
    assert torch.all(seg.negative[0][1]["face_video_pixels"] == -1)
    fp = seg.positive[0][1]["face_video_pixels"]
    assert fp.shape == (1, 3, T, 512, 512) and fp.min() >= -1 and fp.max() <= 1 and fp.std() > 0.1


@pytest.mark.parametrize("g", [1, 5])
def test_continued_segment_equals_core_animation(vae, data, g):
    stride = T - g
    # core's extend chain: continue_motion = all frames so far, offset = previous node's output (T)
    cp, cn, _ = core(vae, data, offset=T, continue_motion=data.prev[:T], g=g)
    seg = ours(vae, data, start=stride, guidance=data.prev[T - g:T])
    assert_same(seg.positive, cp)
    assert_same(seg.negative, cn)
    # the guidance latent frames are known: 1 + ceil(g / 4) latent slots (reference included)
    known = 1 + (1 if g == 1 else 2)
    assert torch.all(seg.known[:, :, :known] == 1) and torch.all(seg.known[:, :, known:] == 0)


def expected_official_mask(char_lat: torch.Tensor, known_frames: int) -> torch.Tensor:
    """Official get_i2v_mask, written out index by index: latent 0 = pixel frame 0 in all four
    channels, latent k >= 1 channel c = pixel frame 4k - 3 + c; the reference slot all ones."""
    per = 1.0 - char_lat
    per[:known_frames] = 1.0
    lat_t = (T - 1) // 4 + 1
    m = torch.ones(1, 4, lat_t + 1, H // 8, W // 8)
    for c in range(4):
        m[0, c, 1] = per[0]
        for k in range(1, lat_t):
            m[0, c, 1 + k] = per[4 * k - 3 + c]
    return m


def _char_lat(mask):
    """Official: the mask at the video size, then F.interpolate(..., mode='nearest') to H/8 x W/8,
    i.e. latent pixel (i, j) = mask pixel (8i, 8j). (This data's mask is 64x64: it is first brought
    to the 32x32 video size like the environment frames.)"""
    import comfy.utils

    full = comfy.utils.common_upscale(mask.unsqueeze(1), W, H, "nearest-exact", "center")[:, 0]
    return full[:, ::8, ::8]


def test_latent_mask_samples_pixel_8i_8j_like_official():
    from wan_animate_kit.models import animate_conditioning as ac

    g = torch.Generator().manual_seed(2)
    m = torch.rand(3, 40, 56, generator=g)  # soft values, odd latent size 5 x 7
    got = ac.latent_mask(m, 7, 5)
    assert got.shape == (3, 5, 7)
    assert torch.equal(got, m[:, ::8, ::8])
    assert not torch.equal(got, m[:, 4::8, 4::8])  # the host's nearest-exact would sample (8i+4, 8j+4)
    assert torch.equal(ac.latent_mask(got, 7, 5), got)  # already at latent size


def test_vae_precision_float32_official_and_restored(vae):
    """Official: the VAE runs in float32 on bf16-rounded inputs. Forced host dtype bf16 here (the
    CPU host already uses float32); the block switches to float32 and restores everything."""
    from wan_animate_kit.models import animate_conditioning as ac

    fsm = vae.first_stage_model
    old_dtype, old_param = vae.vae_dtype, next(fsm.parameters()).dtype
    seen = []
    real_encode = fsm.encode

    def recording(x, *a, **k):
        seen.append((x.dtype, next(fsm.parameters()).dtype, x.detach().clone()))
        return real_encode(x.to(next(fsm.parameters()).dtype), *a, **k)

    fsm.encode = recording
    try:
        fsm.to(torch.bfloat16)
        vae.vae_dtype = torch.bfloat16
        img = torch.rand(1, H, W, 3, generator=torch.Generator().manual_seed(4))
        with ac.vae_precision(vae, ac.VAE_OFFICIAL):
            vae.encode(img)
        assert vae.vae_dtype == torch.bfloat16 and next(fsm.parameters()).dtype == torch.bfloat16
        assert "process_input" not in vae.__dict__ or vae.process_input(torch.ones(1)).item() == 1.0
        with ac.vae_precision(vae, ac.VAE_HOST):
            vae.encode(img)
        with pytest.raises(RuntimeError):
            with ac.vae_precision(vae, ac.VAE_OFFICIAL):
                raise RuntimeError("boom")
        assert vae.vae_dtype == torch.bfloat16 and next(fsm.parameters()).dtype == torch.bfloat16
    finally:
        del fsm.encode
        fsm.to(old_param)
        vae.vae_dtype = old_dtype
    (d_in, d_w, x_in), (h_in, h_w, _) = seen
    assert (d_in, d_w) == (torch.float32, torch.float32) and (h_in, h_w) == (torch.bfloat16, torch.bfloat16)
    pixels = (img * 2 - 1).movedim(-1, 1).unsqueeze(2) if x_in.ndim == 5 else None
    flat = x_in.flatten()
    assert torch.equal(flat, flat.to(torch.bfloat16).float())  # inputs rounded to bf16, as official
    if pixels is not None and pixels.shape == x_in.shape:
        assert torch.equal(x_in, pixels.to(torch.bfloat16).float())
    with pytest.raises(ValueError, match="vae_precision"):
        with ac.vae_precision(vae, "fp8"):
            pass


def test_reference_fit_equals_official_padding_resize_on_odd_sizes():
    """Official wan/animate.py padding_resize: INTER_LINEAR on the uint8 image into a float canvas of
    zeros, bar int((dst - new) / 2), new side int(dst_side / src_side * other), then np.uint8."""
    import cv2
    import numpy as np

    from wan_animate_kit.models import animate_conditioning as ac

    def official(img, height, width):
        oh, ow, ch = img.shape
        canvas = np.zeros((height, width, ch))
        if oh / ow > height / width:
            nw = int(height / oh * ow)
            r = cv2.resize(img, (nw, height), interpolation=cv2.INTER_LINEAR)
            pad = int((width - nw) / 2)
            canvas[:, pad:pad + nw, :] = r
        else:
            nh = int(width / ow * oh)
            r = cv2.resize(img, (width, nh), interpolation=cv2.INTER_LINEAR)
            pad = int((height - nh) / 2)
            canvas[pad:pad + nh, :, :] = r
        return np.uint8(canvas)

    rng = np.random.default_rng(5)
    for (sh, sw), (dh, dw) in [((37, 53), (48, 32)), ((101, 29), (32, 48)), ((15, 77), (64, 80)), ((90, 61), (48, 48))]:
        u8 = rng.integers(0, 256, (sh, sw, 3), dtype=np.uint8)
        ref = torch.from_numpy(u8).float().div(255).unsqueeze(0)
        got = ac.fit_reference(ref, dw, dh)
        want = official(u8, dh, dw)
        assert got.shape == (1, dh, dw, 3)
        assert np.array_equal((got[0] * 255).round().to(torch.uint8).numpy(), want), ((sh, sw), (dh, dw))


@pytest.mark.parametrize("g", [None, 1, 5])
def test_replacement_follows_official_mask(vae, data, g, dit):
    """Replacement: everything equals core except concat_mask, where the official packing (aligned
    with the VAE's temporal grouping, guidance latents fully known) is followed."""
    if g is None:
        cp, cn, _ = core(vae, data, replace=True, face=False)
        seg = ours(vae, data, replace=True, face=False)
        start, known = 0, 0
    else:
        cp, cn, _ = core(vae, data, offset=T, continue_motion=data.prev[:T], g=g, replace=True, face=False)
        start, known = T - g, g
        seg = ours(vae, data, start=start, guidance=data.prev[T - g:T], replace=True, face=False)
    assert_same(seg.positive, cp, skip=("concat_mask",))
    assert_same(seg.negative, cn, skip=("concat_mask",))
    official = expected_official_mask(_char_lat(data.mask[start:start + T]), known)
    ours_mask = seg.positive[0][1]["concat_mask"]
    assert torch.equal(seg.known, official)
    assert torch.equal(ours_mask, 1.0 - official)  # the host feeds 1 - concat_mask to the model
    assert not torch.equal(ours_mask, cp[0][1]["concat_mask"])  # core packs one pixel frame late

    # what the model really receives: the host's own concat_cond puts M in channels 0-3
    noise = torch.zeros(1, 16, official.shape[2], H // 8, W // 8)
    c = dit.model.concat_cond(noise=noise, device=torch.device("cpu"),
                                concat_latent_image=seg.positive[0][1]["concat_latent_image"],
                                concat_mask=ours_mask)
    assert torch.equal(c[:, :4], official)


def test_reference_is_letterboxed_like_official(vae, data):
    from wan_animate_kit.models import animate_conditioning as ac

    wide = torch.rand(1, 16, 48, 3) * 0.8 + 0.1  # 3:1 into 1:1 -> bars above and below
    fitted = ac.fit_reference(wide, W, H)
    assert fitted.shape == (1, H, W, 3)
    rows = fitted[0].amax(dim=(1, 2))
    assert torch.all(rows[:10] == 0) and torch.all(rows[-10:] == 0) and torch.all(rows[12:20] > 0.05)
    # same size passes through untouched, so the latent equals core's
    assert torch.equal(ac.fit_reference(data.ref, W, H), data.ref)
    from comfy_extras.nodes_wan import WanAnimateToVideo

    core_pos = WanAnimateToVideo.execute(data.pos, data.neg, vae, W, H, 5, 1, 5, 0, reference_image=wide)[0]
    ref_core = core_pos[0][1]["concat_latent_image"][:, :, :1]
    ref_ours = ac.encode_reference(vae, wide, W, H)
    assert torch.isfinite(ref_ours).all()
    assert not torch.allclose(ref_core, ref_ours)  # core centre-crops instead


def test_segment_inputs_checked(vae, data):
    from wan_animate_kit.models import animate_conditioning as ac

    ref_latent = ac.encode_reference(vae, data.ref, W, H)
    with pytest.raises(ValueError, match="4n\\+1"):
        ac.build_segment(data.pos, data.neg, vae, ref_latent, data.pose[:8], W, H)
    with pytest.raises(ValueError, match="both"):
        ac.build_segment(data.pos, data.neg, vae, ref_latent, data.pose[:T], W, H, environment=data.env[:T])
    with pytest.raises(ValueError, match="face video has 4 frames"):
        ac.build_segment(data.pos, data.neg, vae, ref_latent, data.pose[:T], W, H, face=data.face[:4])
