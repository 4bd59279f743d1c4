"""Relighting LoRA: key mapping for every layout, weights patched by the host's own patcher, refusal
of LoRAs for other models, and the node, in the real host (in-process, CPU)."""
from __future__ import annotations

import json
import pickle

import pytest
import torch

pytestmark = pytest.mark.host

TARGETS = ("self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o",
           "cross_attn.q", "cross_attn.k", "cross_attn.v", "cross_attn.o",
           "cross_attn.k_img", "cross_attn.v_img", "ffn.0", "ffn.2")
LAYERS = 5


@pytest.fixture(scope="module")
def wan_model(tiny_models):
    """Shared by the tests: patches live on clones, and every patch_model() is undone."""
    import comfy.sd

    return comfy.sd.load_diffusion_model(str(tiny_models["dit"]))


def _peft():
    import tiny_models as factory

    return factory.tiny_lora_state_dicts()[0]


def _pairs(sd: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """PEFT dict -> {layer: (lora_B, lora_A)}."""
    return {k[:-len(".lora_A.weight")]: (sd[k.replace("lora_A", "lora_B")], sd[k])
            for k in sd if k.endswith(".lora_A.weight")}


def _relayout(sd: dict, layout: str) -> dict:
    """The same LoRA in another published key layout."""
    out = {}
    for layer, (b, a) in _pairs(sd).items():
        if layout == "peft_base_model":
            out[f"base_model.model.{layer}.lora_A.weight"] = a
            out[f"base_model.model.{layer}.lora_B.weight"] = b
        elif layout == "peft_default":
            out[f"{layer}.lora_A.default.weight"] = a
            out[f"{layer}.lora_B.default.weight"] = b
        elif layout == "updown_alpha":  # model.diffusion_model. + lora_down/lora_up + alpha
            out[f"model.diffusion_model.{layer}.lora_down.weight"] = a
            out[f"model.diffusion_model.{layer}.lora_up.weight"] = b
            out[f"model.diffusion_model.{layer}.alpha"] = torch.tensor(8.0)  # rank 4 -> scale 2
        elif layout == "kohya":
            name = layer.replace(".", "_")
            out[f"lora_unet_{name}.lora_down.weight"] = a
            out[f"lora_unet_{name}.lora_up.weight"] = b
        elif layout == "diffusers":
            names = {"self_attn.q": "attn1.to_q", "self_attn.k": "attn1.to_k", "self_attn.v": "attn1.to_v",
                     "self_attn.o": "attn1.to_out.0", "cross_attn.q": "attn2.to_q", "cross_attn.k": "attn2.to_k",
                     "cross_attn.v": "attn2.to_v", "cross_attn.o": "attn2.to_out.0",
                     "cross_attn.k_img": "attn2.add_k_proj", "cross_attn.v_img": "attn2.add_v_proj",
                     "ffn.0": "ffn.net.0.proj", "ffn.2": "ffn.net.2"}
            blk, idx, mod = layer.split(".", 2)
            out[f"transformer.{blk}.{idx}.{names[mod]}.lora_A.weight"] = a
            out[f"transformer.{blk}.{idx}.{names[mod]}.lora_B.weight"] = b
    return out


def _block_weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.model.diffusion_model.blocks.state_dict().items()}


def _patched_weights(patched) -> dict[str, torch.Tensor]:
    """Let the host apply the patches, read the block weights, then restore the shared model."""
    patched.patch_model()
    try:
        return _block_weights(patched)
    finally:
        patched.unpatch_model()


def _check_patched(original, after, pairs, factor):
    for layer, (b, a) in pairs.items():
        key = layer[len("blocks."):] + ".weight"
        want = original[key] + factor * (b.float() @ a.float())
        assert torch.allclose(after[key], want, rtol=1e-5, atol=1e-6), key
        assert not torch.equal(after[key], original[key]), key
    touched = {layer[len("blocks."):] + ".weight" for layer in pairs}
    for key in original:
        if key not in touched:
            assert torch.equal(after[key], original[key]), f"{key} changed but is not a LoRA target"


@pytest.mark.parametrize("name", ["lora_peft", "lora_peft_ckpt", "lora_comfy"])
def test_files_map_all_targets_and_patch_right_weights(wan_model, tiny_models, name):
    from wan_animate_kit.models.relight_lora import load_and_apply

    original = _block_weights(wan_model)
    patched, report = load_and_apply(wan_model, tiny_models[name], strength=0.75)
    assert report.expected == LAYERS * len(TARGETS) == 60
    assert len(report.matched) == 60 and not report.unmatched and not report.missing
    assert report.summary().startswith("matched 60/60 targets")
    assert patched is not wan_model and not wan_model.patches  # the input MODEL is untouched
    assert set(patched.patches) == {f"diffusion_model.blocks.{i}.{t}.weight" for i in range(LAYERS) for t in TARGETS}
    after = _patched_weights(patched)
    _check_patched(original, after, _pairs(_peft()), 0.75)
    assert all(torch.equal(v, original[k]) for k, v in _block_weights(wan_model).items())  # unpatched again


@pytest.mark.parametrize("layout,scale", [("peft_base_model", 1.0), ("peft_default", 1.0), ("updown_alpha", 2.0),
                                          ("kohya", 1.0), ("diffusers", 1.0)])
def test_other_layouts_map_all_targets(wan_model, layout, scale):
    from wan_animate_kit.models.relight_lora import apply_lora

    original = _block_weights(wan_model)
    patched, report = apply_lora(wan_model, _relayout(_peft(), layout), strength=-0.5)
    assert len(report.matched) == 60 and report.complete
    assert report.scales == [scale]
    _check_patched(original, _patched_weights(patched), _pairs(_peft()), -0.5 * scale)


def test_strength_zero_is_identity(wan_model, tiny_models):
    from wan_animate_kit.models.relight_lora import load_and_apply

    original = _block_weights(wan_model)
    patched, report = load_and_apply(wan_model, tiny_models["lora_comfy"], strength=0.0)
    assert len(report.matched) == 60
    after = _patched_weights(patched)
    assert after.keys() == original.keys()
    assert all(torch.equal(after[k], original[k]) for k in original)


def test_peft_adapter_config_sets_scale(wan_model, tmp_path):
    from safetensors.torch import save_file
    from wan_animate_kit.models.relight_lora import load_and_apply

    folder = tmp_path / "relighting_lora"
    folder.mkdir()
    save_file(_peft(), str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps({"r": 4, "lora_alpha": 2, "peft_type": "LORA"}))
    original = _block_weights(wan_model)
    patched, report = load_and_apply(wan_model, folder / "adapter_model.safetensors")
    assert report.scales == [0.5]
    _check_patched(original, _patched_weights(patched), _pairs(_peft()), 0.5)


def test_lora_for_more_blocks_refused_then_partial(wan_model):
    import tiny_models as factory
    from wan_animate_kit.models.relight_lora import apply_lora

    big = factory.tiny_lora_state_dicts(layers=40)[0]
    with pytest.raises(ValueError) as err:
        apply_lora(wan_model, big)
    msg = str(err.value)
    assert "840 LoRA keys have no target" in msg and "blocks.5.self_attn.q" in msg
    assert "40 blocks" in msg and "5 blocks" in msg and "allow_partial" in msg
    patched, report = apply_lora(wan_model, big, allow_partial=True)
    assert len(report.matched) == 60 and len(report.unmatched) == 840 and not report.missing
    assert "skipped 840 LoRA keys" in report.summary()
    assert all(int(k.split(".")[1]) >= LAYERS for k in report.unmatched)
    assert len(patched.patches) == 60


def test_lora_for_other_dim_refused_even_partial(wan_model):
    import tiny_models as factory
    from wan_animate_kit.models.relight_lora import apply_lora

    wide = factory.tiny_lora_state_dicts(layers=LAYERS, dim=256, ffn=512)[0]
    for partial in (False, True):
        with pytest.raises(ValueError, match="this LoRA is for a model with dim 256, the loaded model has dim 128"):
            apply_lora(wan_model, wide, allow_partial=partial)


def test_mixed_lora_partial_applies_only_what_fits(wan_model):
    import tiny_models as factory
    from wan_animate_kit.models.relight_lora import apply_lora

    sd = {k: v for k, v in _peft().items() if ".ffn." not in k}  # attention only
    wide = factory.tiny_lora_state_dicts(layers=1, dim=256, ffn=512)[0]
    sd["blocks.0.ffn.0.lora_A.weight"] = wide["blocks.0.ffn.0.lora_A.weight"]  # wrong shape
    sd["blocks.0.ffn.0.lora_B.weight"] = wide["blocks.0.ffn.0.lora_B.weight"]
    sd["blocks.1.face_adapter.linear.lora_A.weight"] = torch.zeros(4, 128)  # not a target
    sd["blocks.1.face_adapter.linear.lora_B.weight"] = torch.zeros(128, 4)
    with pytest.raises(ValueError) as err:
        apply_lora(wan_model, sd)
    msg = str(err.value)
    assert "shape mismatch" in msg and "10 of 60 model layers get no LoRA weights" in msg
    assert "face_adapter" in msg
    original = _block_weights(wan_model)
    patched, report = apply_lora(wan_model, sd, allow_partial=True)
    assert len(report.matched) == 50 and len(report.missing) == 10 and len(report.unmatched) == 4
    assert sorted(report.missing)[0] == "blocks.0.ffn.0"
    pairs = {k: v for k, v in _pairs(_peft()).items() if ".ffn." not in k}
    _check_patched(original, _patched_weights(patched), pairs, 1.0)


def test_incomplete_pair_and_foreign_keys_refused(wan_model):
    from wan_animate_kit.models.relight_lora import apply_lora

    sd = _peft()
    del sd["blocks.2.self_attn.k.lora_B.weight"]
    with pytest.raises(ValueError, match="incomplete pair"):
        apply_lora(wan_model, sd)
    sdxl = {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 320),
            "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": torch.zeros(320, 4)}
    with pytest.raises(ValueError, match="another model family"):
        apply_lora(wan_model, sdxl, allow_partial=True)


def test_non_wan_model_refused(host):
    import comfy.model_patcher
    from wan_animate_kit.models.relight_lora import apply_lora

    other = comfy.model_patcher.ModelPatcher(torch.nn.Linear(4, 4), load_device=torch.device("cpu"),
                                             offload_device=torch.device("cpu"))
    with pytest.raises(ValueError, match="for Wan models"):
        apply_lora(other, _peft())
    with pytest.raises(ValueError, match="expected a MODEL"):
        apply_lora(object(), _peft())


class _NotATensor:
    pass


def test_ckpt_loaded_safely(tmp_path, host):
    from wan_animate_kit.models.relight_lora import load_lora_file

    bad = tmp_path / "evil.ckpt"
    with open(bad, "wb") as f:
        torch.save({"state_dict": {"x": torch.zeros(1)}, "extra": _NotATensor()}, f, pickle_module=pickle)
    with pytest.raises(ValueError, match="loaded safely"):
        load_lora_file(bad)
    (tmp_path / "x.onnx").write_bytes(b"0")
    with pytest.raises(ValueError, match="unsupported extension"):
        load_lora_file(tmp_path / "x.onnx")


@pytest.fixture
def loras_folder(tiny_models, monkeypatch):
    import folder_paths

    fnp = dict(folder_paths.folder_names_and_paths)
    monkeypatch.setattr(folder_paths, "folder_names_and_paths", fnp)
    fnp["loras"] = ([str(tiny_models["root"] / "loras")], set(folder_paths.supported_pt_extensions))
    folder_paths.filename_list_cache.pop("loras", None)
    yield
    folder_paths.filename_list_cache.pop("loras", None)


def test_node_execute(wan_model, loras_folder):
    import comfy.model_patcher
    from wan_animate_kit.nodes.common import InputError
    from wan_animate_kit.nodes.lora import NODES, RelightLoRA

    assert RelightLoRA in NODES
    schema = RelightLoRA.define_schema()
    assert schema.node_id == "WAK_RelightLoRA"
    assert all(i.tooltip for i in schema.inputs)
    combo = next(i for i in schema.inputs if i.id == "lora_name")
    names = set(combo.options)
    peft_name = "tiny_relight_peft/adapter_model.safetensors"
    assert {peft_name, "tiny_relighting_lora.ckpt", "tiny_relight_comfy.safetensors"} <= names

    out = RelightLoRA.execute(model=wan_model, lora_name="tiny_relighting_lora.ckpt", strength=1.0,
                              allow_partial=False)
    patched, report = out.result
    assert isinstance(patched, comfy.model_patcher.ModelPatcher) and len(patched.patches) == 60
    assert "matched 60/60 targets" in report
    assert out.ui.as_dict()["text"] == (report,)

    with pytest.raises(InputError, match="lora_name"):
        RelightLoRA.execute(model=wan_model, lora_name="nope.safetensors", strength=1.0, allow_partial=False)
    other = comfy.model_patcher.ModelPatcher(torch.nn.Linear(4, 4), load_device=torch.device("cpu"),
                                             offload_device=torch.device("cpu"))
    with pytest.raises(InputError, match="input 'model'.*for Wan models"):
        RelightLoRA.execute(model=other, lora_name=peft_name, strength=1.0, allow_partial=False)
