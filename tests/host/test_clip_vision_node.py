"""Wan-Animate CLIP Vision Encode (official) through the real host, in-process on the CPU, with the host's
own ClipVisionModel built tiny from a config file (clip_vision_h's layout, tiny dims: the host's loader
picks its config from the key count of a 32-layer checkpoint, too big for a test)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.host

NODE_ID = "WAK_ClipVisionEncodeOfficial"
OFFICIAL = "official (bicubic, no antialias)"
HOST = "host (antialias, 8-bit)"


def tiny_config(**over) -> dict:
    cfg = {"hidden_act": "gelu", "hidden_size": 32, "image_size": 224, "intermediate_size": 64,
           "layer_norm_eps": 1e-05, "model_type": "clip_vision_model", "num_attention_heads": 2,
           "num_channels": 3, "num_hidden_layers": 3, "patch_size": 14, "projection_dim": 16}
    cfg.update(over)
    return cfg


def build(tmp_path, name="tiny.json", seed=0, **over):
    import comfy.clip_vision

    path = tmp_path / name
    path.write_text(json.dumps(tiny_config(**over)))
    cv = comfy.clip_vision.ClipVisionModel(str(path))
    g = torch.Generator().manual_seed(seed)
    def init(key, shape):
        w = torch.randn(shape, generator=g) * (0.02 if len(shape) > 1 else 0.1)
        is_norm_scale = ("layer_norm" in key or "layrnorm" in key or "layernorm" in key) and key.endswith("weight")
        return w + 1.0 if is_norm_scale else w

    sd = {k: init(k, v.shape) for k, v in cv.get_sd().items()}
    missing, _ = cv.load_sd(sd)
    assert not missing
    return cv


@pytest.fixture(scope="module")
def tiny_cv(host, tmp_path_factory):
    return build(tmp_path_factory.mktemp("clipv"))


def picture(h, w, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / w, yy / h, (xx + yy) / (w + h)], -1) * 200
    u8 = np.clip(base + 40 * ((xx // 2 + yy // 3) % 2)[..., None] + rng.normal(0, 12, (h, w, 3)), 0, 255)
    return torch.from_numpy(u8.astype(np.uint8).astype(np.float32) / 255.0)[None]


FIELDS = ("last_hidden_state", "penultimate_hidden_states", "image_embeds", "mm_projected")


def run_node(cv, image, preprocess):
    from wan_animate_kit.nodes.clip_vision import ClipVisionEncodeOfficial

    return ClipVisionEncodeOfficial.execute(cv, image, preprocess).result[0]


def test_registered(host):
    from wan_animate_kit.nodes import node_classes

    ids = [c.define_schema().node_id for c in node_classes()]
    assert NODE_ID in ids
    from wan_animate_kit.nodes.clip_vision import ClipVisionEncodeOfficial

    schema = ClipVisionEncodeOfficial.define_schema()
    combo = [i for i in schema.inputs if i.id == "preprocess"][0]
    assert combo.default == OFFICIAL and list(combo.options) == [OFFICIAL, HOST]


def test_host_choice_is_exactly_core_clip_vision_encode_crop_none(tiny_cv):
    import nodes as core

    image = picture(72, 128, seed=1)
    ours = run_node(tiny_cv, image, HOST)
    (theirs,) = core.CLIPVisionEncode().encode(tiny_cv, image, "none")
    assert set(vars(ours)) == set(vars(theirs))
    for f in FIELDS:
        a, b = getattr(ours, f), getattr(theirs, f)
        assert (a is None and b is None) or torch.equal(a, b), f


def test_official_choice_feeds_the_official_pixels_to_the_host_vit(tiny_cv):
    import comfy.clip_vision
    import nodes as core

    from wan_animate_kit.models.clip_vision_official import official_pixel_values

    image = picture(720, 1280, seed=2)
    ours = run_node(tiny_cv, image, OFFICIAL)
    assert isinstance(ours, comfy.clip_vision.Output)
    (host_out,) = core.CLIPVisionEncode().encode(tiny_cv, image, "none")
    assert set(vars(ours)) == set(vars(host_out))
    # the same fields, shapes and dtypes as the host fills
    for f in FIELDS[:3]:
        assert getattr(ours, f).shape == getattr(host_out, f).shape
        assert getattr(ours, f).dtype == getattr(host_out, f).dtype
    assert ours.mm_projected is None and host_out.mm_projected is None
    # the ViT is run on the official pixels (bf16 values, passed as float32) exactly as encode_image runs it
    px = official_pixel_values(image).float()
    last, penult, pooled, _ = tiny_cv.model(pixel_values=px, intermediate_output=-2)
    assert torch.equal(ours.penultimate_hidden_states, penult)
    assert torch.equal(ours.last_hidden_state, last)
    assert torch.equal(ours.image_embeds, pooled)
    # on a downscaled 1280x720 reference the host's antialiased 8-bit preprocessing gives another feature
    d = (ours.penultimate_hidden_states - host_out.penultimate_hidden_states).abs().mean()
    assert d > 1e-3 * host_out.penultimate_hidden_states.abs().mean()
    host_px = comfy.clip_vision.clip_preprocess(image, crop=False)
    assert (px - host_px).abs().mean() > 0.1


def test_penultimate_is_all_blocks_but_the_last_without_post_norm(tiny_cv):
    """The official use_31_block output (32-block ViT-H, transformer[:-1], no post norm) is the host's
    penultimate_hidden_states: recomputed here block by block."""
    from wan_animate_kit.models.clip_vision_official import official_pixel_values

    image = picture(96, 64, seed=3)
    out = run_node(tiny_cv, image, OFFICIAL)
    vm = tiny_cv.model.vision_model
    with torch.no_grad():
        x = vm.pre_layrnorm(vm.embeddings(official_pixel_values(image).float()))
        from comfy.ldm.modules.attention import optimized_attention_for_device

        attn = optimized_attention_for_device(x.device, mask=False, small_input=True)
        for layer in vm.encoder.layers[:-1]:
            x = layer(x, None, attn)
    assert torch.allclose(out.penultimate_hidden_states, x, atol=1e-6, rtol=0)


def test_clip_vision_h_has_32_blocks_so_penultimate_is_31(host):
    import os

    import comfy.clip_vision

    path = os.path.join(os.path.dirname(comfy.clip_vision.__file__), "clip_vision_config_h.json")
    cfg = json.load(open(path))
    assert cfg["num_hidden_layers"] == 32 and cfg["image_size"] == 224 and cfg["patch_size"] == 14
    assert cfg["hidden_size"] == 1280  # the Wan img_emb input width
    # the host's defaults for this config are the official CLIP mean/std
    from wan_animate_kit.models.clip_vision_official import official_mismatch

    class Like:
        image_size = cfg.get("image_size", 224)
        image_mean = cfg.get("image_mean", [0.48145466, 0.4578275, 0.40821073])
        image_std = cfg.get("image_std", [0.26862954, 0.26130258, 0.27577711])

    assert official_mismatch(Like()) is None


def test_batch_alpha_and_memory_management(tiny_cv, monkeypatch):
    import comfy.model_management

    loads = []
    real = comfy.model_management.load_model_gpu
    monkeypatch.setattr(comfy.model_management, "load_model_gpu", lambda p: (loads.append(p), real(p))[1])
    a, b = picture(64, 96, seed=4), picture(64, 96, seed=5)
    batch = torch.cat([a, b])
    out = run_node(tiny_cv, torch.cat([batch, torch.ones(2, 64, 96, 1)], -1), OFFICIAL)
    assert loads == [tiny_cv.patcher]
    one = run_node(tiny_cv, b, OFFICIAL)
    assert out.penultimate_hidden_states.shape[0] == 2
    assert torch.allclose(out.penultimate_hidden_states[1], one.penultimate_hidden_states[0], atol=1e-6)


@pytest.mark.parametrize("bad,name,needle", [
    (dict(preprocess="bilinear"), "preprocess", "unknown choice"),
    (dict(clip_vision=None), "clip_vision", "not a CLIP vision model"),
    (dict(image=torch.rand(8, 8, 3)), "image", "IMAGE batch"),
    (dict(image=torch.rand(1, 8, 8, 1)), "image", "channel"),
    (dict(image=torch.rand(0, 8, 8, 3)), "image", "empty"),
    (dict(image=torch.zeros(1, 8, 8, 3, dtype=torch.uint8)), "image", "float"),
])
def test_bad_inputs_are_named_before_loading(tiny_cv, monkeypatch, bad, name, needle):
    import comfy.model_management

    from wan_animate_kit.nodes.clip_vision import ClipVisionEncodeOfficial
    from wan_animate_kit.nodes.common import InputError

    monkeypatch.setattr(comfy.model_management, "load_model_gpu",
                        lambda p: pytest.fail("model loaded before the inputs were checked"))
    kw = dict(clip_vision=tiny_cv, image=picture(16, 16), preprocess=OFFICIAL) | bad
    with pytest.raises(InputError) as e:
        ClipVisionEncodeOfficial.execute(**kw)
    assert e.value.input_name == name and needle in str(e.value)
    assert "Wan-Animate CLIP Vision Encode (official)" in str(e.value)


def test_official_refuses_a_non_224_model_and_host_choice_still_works(host, tmp_path):
    from wan_animate_kit.nodes.clip_vision import ClipVisionEncodeOfficial
    from wan_animate_kit.nodes.common import InputError

    cv = build(tmp_path, "tiny336.json", image_size=336)
    with pytest.raises(InputError) as e:
        ClipVisionEncodeOfficial.execute(cv, picture(32, 32), OFFICIAL)
    assert e.value.input_name == "clip_vision" and "336 px" in str(e.value) and HOST in str(e.value)
    out = ClipVisionEncodeOfficial.execute(cv, picture(32, 32), HOST).result[0]
    assert out.penultimate_hidden_states.shape[1] == (336 // 14) ** 2 + 1
