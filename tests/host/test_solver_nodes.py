"""The official solver nodes (SAMPLER / SIGMAS) and the official sampling path through the real host
(in-process, CPU, tiny Wan-Animate DiT): integer timesteps reach the DiT, the start latent is the
noise itself, core SamplerCustom works, the caller's SIGMAS are untouched."""
from __future__ import annotations

import types

import pytest
import torch
from sampler_helpers import animate_settings

pytestmark = pytest.mark.host

W = H = 32
UNIPC_LABEL = "official UniPC (bh2, order 2)"
DPMPP_LABEL = "official DPM++ (2M midpoint)"


@pytest.fixture(scope="module")
def rig(tiny_models):
    import comfy.sd
    import comfy.utils

    g = torch.Generator().manual_seed(3)

    def img(n):
        return torch.randint(0, 256, (n, H, W, 3), generator=g).float() / 255

    return types.SimpleNamespace(
        model=comfy.sd.load_diffusion_model(str(tiny_models["dit"])),
        vae=comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(tiny_models["vae"]))),
        pose=img(9), ref=img(1),
        pos=[[torch.randn(1, 6, 4096, generator=g), {}]], neg=[[torch.randn(1, 5, 4096, generator=g), {}]])


@pytest.fixture
def dit_timesteps(rig, monkeypatch):
    """Records the timestep tensor the DiT's forward_orig receives (after every wrapper)."""
    dm = rig.model.model.diffusion_model
    seen = []
    real = dm.forward_orig

    def recording(x, t, *a, **k):
        seen.append(t.detach().double().cpu().clone())
        return real(x, t, *a, **k)

    monkeypatch.setattr(dm, "forward_orig", recording)
    return seen


def test_nodes_give_official_sampler_and_sigmas(host):
    import comfy.samplers

    from wan_animate_kit.models import flow_solvers as fs
    from wan_animate_kit.nodes.solvers import NODES, OfficialSampler, OfficialSigmas

    assert {n.define_schema().node_id for n in NODES} == {"WAK_OfficialSampler", "WAK_OfficialSigmas"}
    schema = OfficialSigmas.define_schema()
    by_id = {i.id: i for i in schema.inputs}
    assert by_id["steps"].default == 20 and by_id["shift"].default == 5.0 and by_id["solver"].default == UNIPC_LABEL
    for label, solver in ((UNIPC_LABEL, fs.UNIPC), (DPMPP_LABEL, fs.DPMPP)):
        sig = OfficialSigmas.execute(20, 5.0, label).result[0]
        assert torch.equal(sig, fs.official_sigmas(20, 5.0, solver))
        ks = OfficialSampler.execute(label).result[0]
        assert isinstance(ks, comfy.samplers.KSAMPLER) and ks.wan_animate_kit_solver == solver
    from wan_animate_kit.nodes.common import InputError

    with pytest.raises(InputError, match="'shift'"):
        OfficialSigmas.execute(20, 0.0, UNIPC_LABEL)


def _conds(rig):
    from wan_animate_kit.models import animate_conditioning as ac

    ref = ac.encode_reference(rig.vae, rig.ref, W, H)
    return ac.build_segment(rig.pos, rig.neg, rig.vae, ref, rig.pose, W, H)


@pytest.mark.parametrize("label,steps,shift", [(UNIPC_LABEL, 4, 5.0), (DPMPP_LABEL, 6, 8.0)])
def test_core_sampler_custom_runs_official_solver_with_int_timesteps(rig, dit_timesteps, label, steps, shift):
    from comfy_extras.nodes_custom_sampler import SamplerCustom

    from wan_animate_kit.models import flow_solvers as fs
    from wan_animate_kit.nodes.solvers import OfficialSampler, OfficialSigmas, solver_key

    cond = _conds(rig)
    sigmas = OfficialSigmas.execute(steps, shift, label).result[0]
    before = sigmas.clone()
    sampler = OfficialSampler.execute(label).result[0]
    out = SamplerCustom.execute(rig.model, True, 7, 1.0, cond.positive, cond.negative, sampler, sigmas,
                                {"samples": cond.latent})
    samples = out.result[0]["samples"]
    assert torch.isfinite(samples).all() and samples.shape == cond.latent.shape
    assert torch.equal(sigmas, before)  # the caller's SIGMAS are not modified
    want = fs.official_timesteps(steps, shift, solver_key(label))
    assert [float(t[0]) for t in dit_timesteps] == [float(v) for v in want]


def test_host_sampler_keeps_float_timesteps(rig, dit_timesteps):
    """Control: without the official sampler the DiT gets the host's float sigma * 1000."""
    from comfy_extras.nodes_custom_sampler import SamplerCustom, KSamplerSelect

    from wan_animate_kit.models import flow_solvers as fs

    cond = _conds(rig)
    sigmas = fs.official_sigmas(4, 5.0)
    sampler = KSamplerSelect.execute("euler").result[0]
    SamplerCustom.execute(rig.model, True, 7, 1.0, cond.positive, cond.negative, sampler, sigmas,
                          {"samples": cond.latent})
    got = [float(t[0]) for t in dit_timesteps]
    assert got[0] != int(got[0]) and got[0] == pytest.approx(float(sigmas[0]) * 1000, abs=1e-3)


def test_animate_sampler_official_path(rig, dit_timesteps, monkeypatch):
    """Default settings: official UniPC, official sigmas for (steps, shift), int timesteps, and the
    solver starts from the segment's noise itself (no sigma scaling)."""
    from wan_animate_kit.models import animate_sampler as asm
    from wan_animate_kit.models import flow_solvers as fs

    starts = []
    real = fs.sample_official

    def spy(model, x, sigmas, **kw):
        starts.append((x.clone(), sigmas.clone()))
        return real(model, x, sigmas, **kw)

    monkeypatch.setattr(fs, "sample_official", spy)
    settings = animate_settings(W, H, steps=3, sampler_name=asm.DEFAULT_SAMPLER, shift=5.0)
    assert settings.official_solver == fs.UNIPC
    res = asm.run_animate(rig.model, rig.vae, rig.pos, rig.neg, rig.ref, rig.pose, settings,
                          step_callback=lambda steps: None)
    assert res.frames.shape == (9, H, W, 3)
    (x0, sig), = starts
    lat_shape = (1, 16, 4, H // 8, W // 8)
    noise = torch.randn(lat_shape, generator=torch.Generator().manual_seed(settings.seed))
    assert torch.equal(x0.cpu(), noise)  # official: latents = noise
    assert torch.equal(sig, fs.official_sigmas(3, 5.0, fs.UNIPC))
    assert [float(t[0]) for t in dit_timesteps] == [float(v) for v in fs.official_timesteps(3, 5.0, fs.UNIPC)]


def test_animate_sampler_custom_sigmas_and_sampler_inputs(rig, dit_timesteps):
    from comfy_extras.nodes_custom_sampler import KSamplerSelect

    from wan_animate_kit.models import animate_sampler as asm
    from wan_animate_kit.models import flow_solvers as fs

    sig = fs.official_sigmas(2, 5.0, fs.DPMPP)
    before = sig.clone()
    s = animate_settings(W, H, sampler=fs.official_ksampler(fs.DPMPP), sigmas=sig)
    asm.run_animate(rig.model, rig.vae, rig.pos, rig.neg, rig.ref, rig.pose, s, step_callback=lambda steps: None)
    assert torch.equal(sig, before)
    assert [float(t[0]) for t in dit_timesteps] == [1000.0, float(fs.official_timesteps(2, 5.0, fs.DPMPP)[1])]
    # a host sampler as SAMPLER input with our SIGMAS: float timesteps, caller's sigmas untouched
    dit_timesteps.clear()
    s2 = animate_settings(W, H, sampler=KSamplerSelect.execute("uni_pc").result[0], sigmas=sig)
    asm.run_animate(rig.model, rig.vae, rig.pos, rig.neg, rig.ref, rig.pose, s2, step_callback=lambda steps: None)
    assert torch.equal(sig, before) and len(dit_timesteps) >= 1


def test_cache_key_covers_sampling_settings():
    from wan_animate_kit.models import flow_solvers as fs
    from wan_animate_kit.models.animate_sampler import AnimateSettings

    base = AnimateSettings()
    assert base.sampler_name == "official UniPC (bh2, order 2)" and base.shift == 5.0
    assert base.vae_precision == "float32 (official)"
    variants = [AnimateSettings(shift=3.0), AnimateSettings(vae_precision="host"),
                AnimateSettings(sampler_name="official DPM++ (2M midpoint)"), AnimateSettings(sampler_name="euler"),
                AnimateSettings(sigmas=fs.official_sigmas(20, 5.0)),
                AnimateSettings(sampler=fs.official_ksampler(fs.UNIPC)),
                AnimateSettings(sampler=fs.official_ksampler(fs.DPMPP))]
    keys = [repr(base.key_fields())] + [repr(v.key_fields()) for v in variants]
    assert len(set(keys)) == len(keys)


def test_schedule_that_never_runs_the_model_is_refused(rig):
    from wan_animate_kit.models import animate_sampler as asm
    from wan_animate_kit.models import flow_solvers as fs
    from wan_animate_kit.nodes.common import InputError
    from wan_animate_kit.nodes.sample import check_schedule

    with pytest.raises(InputError, match="'sigmas'.*never run"):
        check_schedule(rig.model, animate_settings(W, H, sigmas=torch.tensor([0.5])))
    with pytest.raises(InputError, match="'sigmas'.*sigma 0"):
        check_schedule(rig.model, animate_settings(W, H, sampler_name="euler", sigmas=torch.tensor([0.0, 0.0])))
    with pytest.raises(InputError, match="'sigmas'.*below 1"):
        check_schedule(rig.model, animate_settings(W, H, sampler_name=asm.DEFAULT_SAMPLER,
                                                   sigmas=fs.official_sigmas(4, 5.0, fs.DPMPP)))
    check_schedule(rig.model, animate_settings(W, H, sampler_name=asm.DEFAULT_SAMPLER))  # fine


def test_flow_shift_clone_sets_shift_and_keeps_noise(rig):
    from wan_animate_kit.models.flow_solvers import with_flow_shift

    m = with_flow_shift(rig.model, 5.0, official_start=True)
    ms = m.get_model_object("model_sampling")
    assert ms.shift == 5.0 and rig.model.get_model_object("model_sampling") is not ms
    noise = torch.randn(1, 16, 2, 4, 4)
    assert torch.equal(ms.noise_scaling(torch.tensor(0.9998), noise, torch.zeros_like(noise)), noise)
    host = with_flow_shift(rig.model, 5.0, official_start=False).get_model_object("model_sampling")
    assert torch.allclose(host.noise_scaling(torch.tensor(0.5), noise, torch.zeros_like(noise)), 0.5 * noise)


@pytest.mark.parametrize("mode,want", [("float32 (official)", torch.float32), ("host", torch.bfloat16)])
def test_animate_sampler_vae_precision(rig, mode, want):
    """The sampler's own encodes and decodes run in float32 by default even when the host's VAE
    dtype is bf16 (forced here: the CPU host already uses float32), and the VAE is restored."""
    from wan_animate_kit.models import animate_sampler as asm

    fsm = rig.vae.first_stage_model
    old_dtype, old_param = rig.vae.vae_dtype, next(fsm.parameters()).dtype
    seen = []
    real_enc, real_dec = fsm.encode, fsm.decode

    def enc(x, *a, **k):
        seen.append(("encode", x.dtype, next(fsm.parameters()).dtype))
        return real_enc(x, *a, **k)

    def dec(z, *a, **k):
        seen.append(("decode", z.dtype, next(fsm.parameters()).dtype))
        return real_dec(z, *a, **k)

    fsm.encode, fsm.decode = enc, dec
    try:
        fsm.to(torch.bfloat16)
        rig.vae.vae_dtype = torch.bfloat16
        s = animate_settings(W, H, vae_precision=mode)
        asm.run_animate(rig.model, rig.vae, rig.pos, rig.neg, rig.ref, rig.pose, s, step_callback=lambda steps: None)
        assert rig.vae.vae_dtype == torch.bfloat16 and next(fsm.parameters()).dtype == torch.bfloat16
    finally:
        del fsm.encode, fsm.decode
        fsm.to(old_param)
        rig.vae.vae_dtype = old_dtype
    kinds = {k for k, _, _ in seen}
    assert kinds == {"encode", "decode"}
    assert all(d_in == want and d_w == want for _, d_in, d_w in seen), seen
