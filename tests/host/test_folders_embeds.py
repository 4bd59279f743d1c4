"""Model folder registration and prompt-embedding save/load, in the real host (in-process)."""
import pytest
import torch

pytestmark = pytest.mark.host


def test_detection_folder_keeps_other_packs_files(host, tmp_path, monkeypatch):
    import folder_paths
    from wan_animate_kit.nodes.folders import register_model_folders

    other = tmp_path / "other_pack_detection"
    other.mkdir()
    (other / "yolo.pt").write_bytes(b"x")
    (other / "vitpose.onnx").write_bytes(b"x")
    (other / "vitpose_data.bin").write_bytes(b"x")
    fnp = dict(folder_paths.folder_names_and_paths)
    monkeypatch.setattr(folder_paths, "folder_names_and_paths", fnp)
    # A newer host registers "detection" for .pt files only (its folder_paths.py).
    fnp["detection"] = ([str(other)], {".pt"})
    folder_paths.filename_list_cache.pop("detection", None)
    assert folder_paths.get_filename_list("detection") == ["yolo.pt"]
    register_model_folders()
    names = folder_paths.get_filename_list("detection")
    assert "yolo.pt" in names and "vitpose.onnx" in names
    assert "vitpose_data.bin" not in names
    assert fnp["sam2"][1] == {".pt", ".safetensors"}


def test_prompt_embedding_round_trip(host, tmp_path, monkeypatch):
    import folder_paths
    from wan_animate_kit.nodes.embeds import LoadPromptEmbedding, SavePromptEmbedding

    monkeypatch.setattr(folder_paths, "output_directory", str(tmp_path))
    cond = [[torch.randn(1, 7, 4096), {"pooled_output": torch.randn(1, 8), "strength": 0.5, "hook": object()}]]
    SavePromptEmbedding.execute(conditioning=cond, filename_prefix="neg")
    names = folder_paths.get_filename_list("prompt_embeds")
    saved = [n for n in names if n.startswith("neg_")]
    assert len(saved) == 1
    loaded = LoadPromptEmbedding.execute(embedding=saved[0]).result[0]
    assert torch.equal(loaded[0][0], cond[0][0])
    assert torch.equal(loaded[0][1]["pooled_output"], cond[0][1]["pooled_output"])
    assert loaded[0][1]["strength"] == 0.5 and "hook" not in loaded[0][1]


def test_load_prompt_embedding_rejects_foreign_file(host, tmp_path, monkeypatch):
    import folder_paths
    from safetensors.torch import save_file
    from wan_animate_kit.nodes.embeds import LoadPromptEmbedding

    monkeypatch.setattr(folder_paths, "output_directory", str(tmp_path))
    (tmp_path / "prompt_embeds").mkdir()
    save_file({"x": torch.zeros(2)}, str(tmp_path / "prompt_embeds" / "foreign.safetensors"))
    LoadPromptEmbedding.define_schema()  # registers the folder with the new output dir
    folder_paths.filename_list_cache.pop("prompt_embeds", None)
    with pytest.raises(ValueError, match="embedding"):
        LoadPromptEmbedding.execute(embedding="foreign.safetensors")


def test_tiny_models_load_in_the_host_and_give_finite_outputs(tiny_models):
    import comfy.sd
    import comfy.utils

    vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(tiny_models["vae"])))
    latent = vae.encode(torch.rand(5, 32, 32, 3))
    assert latent.shape == (1, 16, 2, 4, 4) and torch.isfinite(latent).all()
    frames = vae.decode(latent)
    assert torch.isfinite(frames).all() and frames.shape[-1] == 3
    model = comfy.sd.load_diffusion_model(str(tiny_models["dit_prefixed"]))
    assert type(model.model).__name__ == "WAN22_Animate"
