"""The face motion memo: the host's motion encoder runs once per distinct face chunk, not once per
step, with bit-identical results.

One test runs the real 512x512 motion encoder (a few seconds a frame on the CPU). The sampler
tests swap only its arithmetic for a cheap deterministic stand-in (so a job costs seconds), and
keep everything around it real: the host's DiT forward, its chunking of the faces, the cond/uncond
batching and the object patch on a clone.
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


def _encoder(model):
    return model.model.diffusion_model.motion_encoder


def test_memo_reuses_the_real_encoders_output_exactly(rig):
    from wan_animate_kit.models.motion_memo import MotionMemo

    enc = _encoder(rig.model)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 512, 512, generator=g) * 2 - 1
    other = x.clone()
    other[0, 1, 100, 200] += 0.5  # one pixel differs
    memo = MotionMemo(enc.get_motion, max_entries=4)
    with torch.inference_mode():
        first = memo(x)
        again = memo(x.clone())  # another tensor, same values
        changed = memo(other)
        direct = enc.get_motion(x)
    assert (memo.misses, memo.hits) == (2, 1)
    assert again is first and torch.equal(first, direct)
    assert not torch.equal(changed, first)


def test_memo_keeps_at_most_max_entries():
    from wan_animate_kit.models.motion_memo import MotionMemo

    calls = []

    def fake(img):
        calls.append(1)
        return img.mean(dim=(1, 2, 3))

    memo = MotionMemo(fake, max_entries=2)
    a, b, c = (torch.full((2, 3, 4, 4), v) for v in (1.0, 2.0, 3.0))
    for t in (a, b, a, c, a, b):
        memo(t)
    # a, b miss; a hits; c misses and evicts b (a was used last); a hits; b misses again
    assert (memo.misses, memo.hits, len(calls)) == (4, 2, 4)
    assert sum(len(v) for v in memo.entries.values()) == 2
    memo.clear()
    assert not memo.entries


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

    enc = _encoder(rig.model)
    monkeypatch.setattr(enc, "get_motion", types.MethodType(get_motion, enc))
    return runs


def _settings(**kw):
    return animate_settings(W, H, **{"seed": 2, "steps": 3, **kw})


def _run(rig, s):
    from wan_animate_kit.models.animate_sampler import run_animate

    return run_animate(rig.model, rig.vae, rig.pos, rig.neg, rig.ref, rig.pose[:13], s, face=rig.face[:13],
                       clip_vision_output=rig.clip, step_callback=lambda steps: None)


@pytest.mark.parametrize("cfg", [1.0, 2.0])
def test_sampler_runs_the_encoder_once_per_distinct_chunk_with_identical_frames(rig, cheap_encoder, cfg):
    """2 segments x 3 steps: without the memo the encoder runs on every chunk of every forward;
    with it once per distinct chunk, and the frames are bit-identical. With face CFG the
    unconditional faces are all black in every segment, so later segments reuse those chunks."""
    import comfy.model_management

    plain = _run(rig, _settings(cfg=cfg, motion_memo=False))
    runs_plain = len(cheap_encoder)
    cheap_encoder.clear()
    memo = _run(rig, _settings(cfg=cfg))
    runs_memo = len(cheap_encoder)

    assert np.array_equal(memo.frames, plain.frames)
    segments, steps = plain.plan.num_segments, 3
    assert segments == 2
    assert plain.motion_encoded == 0 and plain.motion_reused == 0  # memo off: nothing recorded
    assert runs_memo == memo.motion_encoded
    assert memo.motion_encoded + memo.motion_reused == runs_plain  # every encoder call either ran or was reused
    chunks_per_face_video = math.ceil(9 / 8)
    # chunks of source frames; the ping-pong padding makes segment 2's last chunk (frame 8) equal
    # segment 1's, which the memo reuses too
    distinct = {tuple(seg.source[i:i + 8]) for seg in plain.plan.segments for i in range(0, 9, 8)}
    assert len(distinct) == 3
    if cfg == 1.0:
        assert runs_plain == segments * steps * chunks_per_face_video
        assert memo.motion_encoded == len(distinct)
    else:
        per_step = runs_plain // (segments * steps)  # cond and black uncond chunks, batched or apart
        assert per_step * segments * steps == runs_plain and per_step > chunks_per_face_video
        # each segment's first step runs them all, except that segment 2 reuses at least the two
        # chunks that are all black (or the same source frame 8 + black) from segment 1
        assert memo.motion_encoded <= segments * per_step - 2
    # the user's MODEL carries no patch, and loading it again restores the plain encoder method
    assert not any("motion_encoder" in k for k in rig.model.object_patches)
    comfy.model_management.load_models_gpu([rig.model])
    from wan_animate_kit.models.motion_memo import MotionMemo

    assert not isinstance(_encoder(rig.model).get_motion, MotionMemo)


def test_no_face_means_no_clone(rig, cheap_encoder, monkeypatch):
    """Without face crops the model is used as given (no clone, no patch)."""
    from wan_animate_kit.models import animate_sampler

    seen = []
    monkeypatch.setattr(animate_sampler, "with_motion_memo", lambda *a: seen.append(a) or (a[0], None))
    from wan_animate_kit.models.animate_sampler import run_animate

    out = run_animate(rig.model, rig.vae, rig.pos, rig.neg, rig.ref, rig.pose[:9], _settings(steps=1),
                      clip_vision_output=rig.clip, step_callback=lambda steps: None)
    assert out.frames.shape[0] == 9 and not seen and not cheap_encoder
