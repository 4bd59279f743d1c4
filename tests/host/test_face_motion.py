"""Face motion computed once per segment (models/face_motion.py): the host's motion encoder and face
encoder run once per pass of a segment on its crops, 8 frames at a time, instead of at every model
call on face pixels in the conditioning, with the same frames.

One test runs the real 512x512 motion encoder (a few seconds a frame on the CPU). The sampler tests
swap only its arithmetic for a cheap deterministic stand-in (so a job costs seconds), and keep
everything around it real: the host's DiT forward, its face encoder, the cond/uncond batching and
the patches on a clone.
"""
from __future__ import annotations

import math
import types

import numpy as np
import pytest
import torch
from sampler_helpers import animate_settings

W = H = 32
pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def rig(tiny_models):
    import comfy.sd
    import comfy.utils

    g = torch.Generator().manual_seed(3)

    def img(n, h=H, w=W):
        return torch.randint(0, 256, (n, h, w, 3), generator=g).float() / 255

    return types.SimpleNamespace(
        model=comfy.sd.load_diffusion_model(str(tiny_models["dit"])),
        vae=comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(tiny_models["vae"]))),
        pose=img(13), ref=img(1), face=img(13, 24, 24),
        pos=[[torch.randn(1, 6, 4096, generator=g), {}]], neg=[[torch.randn(1, 5, 4096, generator=g), {}]],
        clip=types.SimpleNamespace(penultimate_hidden_states=torch.randn(1, 257, 1280, generator=g)))


def _dm(model):
    return model.model.diffusion_model


def test_face_motion_equals_the_hosts_with_the_real_encoder(rig):
    """FaceMotion on 3 crops through the real (full-size) motion encoder and the tiny face encoder
    gives exactly the motion the host's after_patch_embedding makes from those crops as a
    condition; other crops give another motion."""
    import comfy.model_management

    from wan_animate_kit.models.animate_conditioning import face_pixels
    from wan_animate_kit.models.face_motion import FaceMotion

    comfy.model_management.load_models_gpu([rig.model])
    dm = _dm(rig.model)
    face = rig.face[:3]
    with torch.inference_mode():
        ours = FaceMotion(lambda idx: face[list(idx)], range(3)).get("cond", dm, torch.float32, torch.device("cpu"))
        x = torch.zeros(1, 1, ours.shape[1] + 1, 1, 1)
        _, host = dm.after_patch_embedding(x, None, face_pixels(face).contiguous())
        other = FaceMotion(lambda idx: 1 - face[list(idx)], range(3)).get("cond", dm, torch.float32,
                                                                         torch.device("cpu"))
    assert host.shape[1] == ours.shape[1] + 1 and not host[:, 0].any()  # the reference slot's zero pad
    assert torch.equal(host[:, 1:], ours)
    assert not torch.equal(other, ours)


@pytest.fixture
def cheap_encoder(monkeypatch, rig):
    """The rig model's motion encoder with its arithmetic swapped for a cheap deterministic function
    of the pixels (on the instance, where the host's object patches act); records its chunks."""
    runs = []

    def get_motion(self, img):
        runs.append(img.shape[0])
        w = torch.linspace(-1, 1, 512, dtype=torch.float32)
        feat = img.float().mean(dim=(2, 3))  # [n, 3]
        return (feat.sum(1, keepdim=True) * w + feat[:, :1]).to(img.dtype)  # [n, 512]

    enc = _dm(rig.model).motion_encoder
    monkeypatch.setattr(enc, "get_motion", types.MethodType(get_motion, enc))
    return runs


def _settings(**kw):
    return animate_settings(W, H, **{"seed": 2, "steps": 3, **kw})


def _run(rig, s, face=None):
    from wan_animate_kit.models.animate_sampler import run_animate

    return run_animate(rig.model, rig.vae, rig.pos, rig.neg, rig.ref, rig.pose[:13], s,
                       face=rig.face[:13] if face is None else face, clip_vision_output=rig.clip,
                       step_callback=lambda steps: None)


@pytest.mark.parametrize("cfg", [1.0, 2.0])
def test_the_encoder_runs_once_per_pass_of_a_segment_with_identical_frames(rig, cheap_encoder, cfg):
    """2 segments x 3 steps: with face pixels in the conditioning the encoder runs on every chunk of
    every model call; computed once, on each chunk of each segment's pass (and, with face CFG, of
    its black pass) once, and the frames are bit-identical. Other faces give other frames."""
    import comfy.model_management

    plain = _run(rig, _settings(cfg=cfg, motion_once=False))
    runs_plain = len(cheap_encoder)
    cheap_encoder.clear()
    once = _run(rig, _settings(cfg=cfg))
    runs_once = list(cheap_encoder)

    assert np.array_equal(once.frames, plain.frames)
    segments, steps = plain.plan.num_segments, 3
    assert segments == 2 and plain.motion_encoded == 0
    passes = 2 if cfg > 1 else 1
    chunks = math.ceil(9 / 8)
    assert once.motion_encoded == len(runs_once) == segments * passes * chunks
    assert sorted(runs_once) == sorted([8, 1] * segments * passes)  # 8 frames at a time, per pass
    assert runs_plain >= segments * steps * chunks  # the host's path: every model call
    cheap_encoder.clear()
    other = _run(rig, _settings(cfg=cfg), face=1 - rig.face[:13])
    assert not np.array_equal(other.frames, once.frames)
    # the user's MODEL carries no patch, and loading it again restores the plain forward
    from wan_animate_kit.models.face_motion import APE_TARGET, WRAPPER_KEY

    assert APE_TARGET not in rig.model.object_patches
    assert all(WRAPPER_KEY not in per_type for per_type in rig.model.wrappers.values())
    comfy.model_management.load_models_gpu([rig.model])
    forward = _dm(rig.model).after_patch_embedding
    assert getattr(forward, "__func__", None) is type(_dm(rig.model)).after_patch_embedding


def test_no_face_means_no_clone(rig, cheap_encoder, monkeypatch):
    """Without face crops the model is used as given (no clone, no patch)."""
    from wan_animate_kit.models import animate_sampler

    seen = []
    monkeypatch.setattr(animate_sampler, "with_face_motion", lambda *a: seen.append(a) or a[0])
    from wan_animate_kit.models.animate_sampler import run_animate

    out = run_animate(rig.model, rig.vae, rig.pos, rig.neg, rig.ref, rig.pose[:9], _settings(steps=1),
                      clip_vision_output=rig.clip, step_callback=lambda steps: None)
    assert out.frames.shape[0] == 9 and not seen and not cheap_encoder


def test_a_model_call_cut_in_time_is_a_clear_error():
    """Something that cuts the latent in time between the sampler and the model (e.g. core's
    context windows on the MODEL) would misalign the segment's face motion: a clear error, not a
    silently shifted face."""
    from wan_animate_kit.models.face_motion import MotionState, _apply_with_motion

    class Motion:
        present = True

        def get(self, kind, dm, dtype, device):
            return torch.zeros(1, 5, 2, 4)  # 5 latent frames

    base = types.SimpleNamespace(diffusion_model=None, manual_cast_dtype=None, get_dtype=lambda: torch.float32)
    seen = []
    state = MotionState(motion=Motion())
    wrapper = _apply_with_motion(state)

    class Executor:  # the host's wrapper executor: the model base as class_obj, called with the arguments
        class_obj = base

        def __call__(self, x, *args, **kwargs):
            seen.append((tuple(state.current.shape), "face_pixel_values" in kwargs))
            return x

    def run(x):
        return wrapper(Executor(), x, torch.zeros(1), transformer_options={"cond_or_uncond": [0, 1]},
                       face_pixel_values=torch.zeros(1))

    run(torch.zeros(2, 16, 6, 2, 2))  # reference slot + 5: the whole segment
    assert seen == [((2, 5, 2, 4), False)] and state.current is None
    with pytest.raises(ValueError, match="covers 5 latent frames but the model call has 3"):
        run(torch.zeros(2, 16, 4, 2, 2))
    assert len(seen) == 1 and state.current is None
