"""Save and load prompt embeddings, so later runs skip the 11 GB text encoder."""
from __future__ import annotations

import json
import os

import torch
from comfy_api.latest import io, ui

from .common import CATEGORY, PREFIX, InputError, model_file

FOLDER = "prompt_embeds"


def _register_folder() -> None:
    import folder_paths

    paths = [os.path.join(folder_paths.models_dir, FOLDER), os.path.join(folder_paths.get_output_directory(), FOLDER)]
    entry = folder_paths.folder_names_and_paths.get(FOLDER)
    if entry is None:
        folder_paths.folder_names_and_paths[FOLDER] = (paths, {".safetensors"})
    else:
        for p in paths:
            if p not in entry[0]:
                entry[0].append(p)
        if entry[1]:
            entry[1].add(".safetensors")
    getattr(folder_paths, "filename_list_cache", {}).pop(FOLDER, None)


def conditioning_to_tensors(cond) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    tensors, meta = {}, {"format": "wan_animate_kit.conditioning.v1", "entries": str(len(cond))}
    for i, (t, extra) in enumerate(cond):
        tensors[f"{i}.cross_attn"] = t.detach().cpu().contiguous()
        plain = {}
        for k, v in extra.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{i}.{k}"] = v.detach().cpu().contiguous()
            else:
                try:
                    json.dumps(v)
                    plain[k] = v
                except TypeError:
                    pass  # host objects (hooks, control) are not part of a saved prompt
        meta[f"{i}.extra"] = json.dumps(plain)
    return tensors, meta


def tensors_to_conditioning(tensors: dict[str, torch.Tensor], meta: dict[str, str]):
    if meta.get("format") != "wan_animate_kit.conditioning.v1":
        raise ValueError("not a prompt embedding saved by Wan-Animate Kit (missing format tag)")
    cond = []
    for i in range(int(meta["entries"])):
        extra = json.loads(meta.get(f"{i}.extra", "{}"))
        for key, value in tensors.items():
            idx, _, name = key.partition(".")
            if idx == str(i) and name != "cross_attn":
                extra[name] = value
        cond.append([tensors[f"{i}.cross_attn"], extra])
    return cond


class SavePromptEmbedding(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "SavePromptEmbedding",
            display_name="Save Prompt Embedding",
            category=CATEGORY + "/io",
            description="Save an encoded prompt (CONDITIONING) to output/prompt_embeds so later runs can load it "
                        "instead of running the text encoder.",
            inputs=[
                io.Conditioning.Input("conditioning", tooltip="The encoded prompt, e.g. from CLIPTextEncode."),
                io.String.Input("filename_prefix", default="wan_animate_prompt",
                                tooltip="File name prefix inside output/prompt_embeds/."),
            ],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, conditioning, filename_prefix):
        import folder_paths
        from safetensors.torch import save_file

        if not conditioning:
            raise InputError("Save Prompt Embedding", "conditioning", "is empty", "connect an encoded prompt")
        out_dir = os.path.join(folder_paths.get_output_directory(), FOLDER)
        try:
            full, name, counter, sub, _ = folder_paths.get_save_image_path(filename_prefix, out_dir)
        except Exception as e:  # the host refuses prefixes that lead outside the folder
            raise InputError("Save Prompt Embedding", "filename_prefix", f"'{filename_prefix}' cannot be used ({e})",
                             f"use a plain name (subfolders inside output/{FOLDER} are fine)") from e
        os.makedirs(full, exist_ok=True)
        fname = f"{name}_{counter:05}_.safetensors"
        tensors, meta = conditioning_to_tensors(conditioning)
        save_file(tensors, os.path.join(full, fname), metadata=meta)
        _register_folder()
        rel = os.path.join(sub, fname) if sub else fname
        return io.NodeOutput(ui=ui.PreviewText(f"saved {FOLDER}/{rel}"))


class LoadPromptEmbedding(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        import folder_paths

        _register_folder()
        return io.Schema(
            node_id=PREFIX + "LoadPromptEmbedding",
            display_name="Load Prompt Embedding",
            category=CATEGORY + "/io",
            description="Load a prompt embedding saved by 'Save Prompt Embedding' (from models/prompt_embeds or "
                        "output/prompt_embeds): no text encoder needed.",
            inputs=[
                io.Combo.Input("embedding", options=folder_paths.get_filename_list(FOLDER),
                               tooltip="A .safetensors prompt embedding in models/prompt_embeds or "
                                       "output/prompt_embeds."),
            ],
            outputs=[io.Conditioning.Output(display_name="conditioning")],
        )

    @classmethod
    def execute(cls, embedding):
        from safetensors import safe_open

        node = "Load Prompt Embedding"
        _register_folder()
        path = model_file(node, "embedding", FOLDER, embedding)
        try:
            with safe_open(path, framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:  # safetensors' own error types: truncated, random bytes, bad header
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise InputError(node, "embedding", f"'{embedding}' is not a readable .safetensors file ({first})",
                             "save the prompt again with Save Prompt Embedding") from e
        try:
            cond = tensors_to_conditioning(tensors, meta)
        except (ValueError, KeyError) as e:
            raise InputError("Load Prompt Embedding", "embedding", f"{embedding}: {e}") from e
        return io.NodeOutput(cond)


NODES = [SavePromptEmbedding, LoadPromptEmbedding]
