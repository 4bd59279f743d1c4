"""Shared helpers for the sampler tests."""
from __future__ import annotations


def animate_settings(width: int, height: int, **kw):
    """AnimateSettings for quick CPU runs: euler/simple, 9-frame segments, guidance 1, cache off."""
    from wan_animate_kit.models.animate_sampler import AnimateSettings

    base = dict(seed=5, steps=1, cfg=1.0, sampler_name="euler", scheduler="simple", clip_len=9, guidance=1,
                width=width, height=height, cache=False)
    base.update(kw)
    return AnimateSettings(**base)


def sampler_rig(tiny_models, frames: int, seed: int, size: int = 32, variants: bool = False):
    """The tiny DiT and VAE loaded by the host, and random inputs for ``frames`` frames of
    ``size`` x ``size``: pose, face (24x24), environment and mask videos, a reference, prompt
    embeddings (positive 6 tokens, negative 5) and a CLIP-vision output. ``variants`` adds a second
    pose and face video (pose_b, face_b) and two more prompts (pos_b of 7 tokens, pos_c of 6)."""
    import types

    import comfy.sd
    import comfy.utils
    import torch

    g = torch.Generator().manual_seed(seed)

    def img(n, h=size, w=size):
        return torch.randint(0, 256, (n, h, w, 3), generator=g).float() / 255

    def prompt(tokens):
        return [[torch.randn(1, tokens, 4096, generator=g), {}]]

    mask = torch.zeros(frames, size, size)
    for t in range(frames):
        mask[t, 4 + t % 5:26, 6:22 + t % 4] = 1.0
    rig = types.SimpleNamespace(
        model=comfy.sd.load_diffusion_model(str(tiny_models["dit"])),
        vae=comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(tiny_models["vae"]))),
        pose=img(frames), face=img(frames, 24, 24), env=img(frames), mask=mask, ref=img(1))
    if variants:
        rig.pose_b, rig.face_b = img(frames), img(frames, 24, 24)
    rig.pos = prompt(6)
    if variants:
        rig.pos_b, rig.pos_c = prompt(7), prompt(6)
    rig.neg = prompt(5)
    rig.clip = types.SimpleNamespace(penultimate_hidden_states=torch.randn(1, 257, 1280, generator=g))
    return rig
