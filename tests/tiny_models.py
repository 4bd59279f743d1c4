"""Tiny models with the official key layout, shapes (shrunk) and dtypes, for CPU tests.

Everything is deterministic (fixed seeds) and written into a cache directory, so the pack's real
loading code is what runs on them. No real weights are ever needed.

* Wan-Animate DiT: the 1441 keys of ``data/wan_animate_14b_keys.json`` (the real 14B checkpoint),
  with the backbone shrunk (dim 5120 -> 128, ffn 13824 -> 256, 40 -> 5 layers, 8 -> 1 face-adapter
  block). The motion and face encoders keep their real, dim-independent sizes. bf16, saved with
  bare keys and with the ``model.diffusion_model.`` prefix.
* Wan 2.1 VAE: the host's own ``WanVAE`` class at a small ``dim`` (the host reads it from
  ``decoder.head.0.gamma``), bf16.
* Relighting LoRA: rank r on the 12 Linear layers of every block (§1.13), PEFT layout
  (``blocks.N.<mod>.lora_A.weight``) and ComfyUI layout (``diffusion_model.blocks.N.<mod>.lora_A``).
"""
from __future__ import annotations

import json
import pathlib

import torch

DATA = pathlib.Path(__file__).resolve().parent / "data"
FULL_DIM, FULL_FFN, FULL_LAYERS = 5120, 13824, 40
LORA_TARGETS = ("self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o",
                "cross_attn.q", "cross_attn.k", "cross_attn.v", "cross_attn.o",
                "cross_attn.k_img", "cross_attn.v_img", "ffn.0", "ffn.2")
VERSION = "v2"


def official_keys() -> list[tuple[str, list[int]]]:
    return [(k, list(s)) for k, s in json.loads((DATA / "wan_animate_14b_keys.json").read_text())]


def _shrink(shape: list[int], dim: int, ffn: int) -> list[int]:
    table = {FULL_DIM: dim, FULL_FFN: ffn, 2 * FULL_DIM: 2 * dim, 6 * FULL_DIM: 6 * dim}
    return [table.get(s, s) for s in shape]


def _keep(key: str, layers: int) -> bool:
    parts = key.split(".")
    if parts[0] == "blocks":
        return int(parts[1]) < layers
    if key.startswith("face_adapter.fuser_blocks."):
        return int(parts[2]) < max(1, layers // 5)
    return True


def _init(key: str, shape: list[int], gen: torch.Generator) -> torch.Tensor:
    if key.endswith(".kernel"):  # Blur buffers: the constant outer([1,3,3,1]) / 64 of the real file
        k = torch.tensor([1.0, 3.0, 3.0, 1.0])
        k = torch.outer(k, k)
        return k / k.sum()
    name = key.rsplit(".", 1)[-1]
    is_norm = any(n in key for n in ("norm", "img_emb.proj.0", "img_emb.proj.4"))
    if is_norm and name == "weight":
        return torch.ones(shape)
    if name == "bias" or (is_norm and name == "bias"):
        return torch.zeros(shape)
    if key.startswith("motion_encoder."):  # equalised-lr layers scale at run time: unit variance
        return torch.randn(shape, generator=gen, device=gen.device)
    return torch.randn(shape, generator=gen, device=gen.device) * 0.02


def tiny_dit_state_dict(dim: int = 128, ffn: int = 256, layers: int = 5, seed: int = 0,
                        device: str = "cpu") -> dict[str, torch.Tensor]:
    """The DiT's state dict (bf16, on the CPU). ``dim=5120, ffn=13824, layers=40`` is the full-size
    14B model (28 GB); ``device="cuda"`` draws the random values there (seconds instead of minutes;
    the values differ from a CPU draw)."""
    gen = torch.Generator(device=device).manual_seed(seed)
    sd = {}
    for key, shape in official_keys():
        if _keep(key, layers):
            sd[key] = _init(key, _shrink(shape, dim, ffn), gen).to(torch.bfloat16).cpu()
    return sd


def tiny_lora_state_dicts(layers: int = 5, dim: int = 128, ffn: int = 256, rank: int = 4, seed: int = 1,
                          ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(PEFT layout, ComfyUI layout) of the same random rank-``rank`` Relighting LoRA."""
    gen = torch.Generator().manual_seed(seed)
    peft, comfy = {}, {}
    for i in range(layers):
        for mod in LORA_TARGETS:
            out_f, in_f = (ffn, dim) if mod == "ffn.0" else (dim, ffn) if mod == "ffn.2" else (dim, dim)
            a = (torch.randn(rank, in_f, generator=gen) * 0.1).to(torch.bfloat16)
            b = (torch.randn(out_f, rank, generator=gen) * 0.1).to(torch.bfloat16)
            peft[f"blocks.{i}.{mod}.lora_A.weight"] = a
            peft[f"blocks.{i}.{mod}.lora_B.weight"] = b
            comfy[f"diffusion_model.blocks.{i}.{mod}.lora_A.weight"] = a.clone()
            comfy[f"diffusion_model.blocks.{i}.{mod}.lora_B.weight"] = b.clone()
    return peft, comfy


def tiny_vae_state_dict(dim: int = 16, seed: int = 2) -> dict[str, torch.Tensor]:
    """State dict of the host's Wan 2.1 VAE class at a small dim (needs the host importable).

    The host builds its layers without weight init (``disable_weight_init`` ops), so the module's
    own tensors are uninitialised memory: every weight is drawn here instead, deterministically
    (N(0, 1/fan_in), biases 0, RMS-norm gains 1), keeping the real keys and shapes.
    """
    import math

    import comfy.ldm.wan.vae as wan_vae

    model = wan_vae.WanVAE(dim=dim, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                           temperal_downsample=[False, True, True], dropout=0.0)
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for key, value in sorted(model.state_dict().items()):
        name = key.rsplit(".", 1)[-1]
        if name == "gamma":
            t = torch.ones(value.shape)
        elif name == "bias":
            t = torch.zeros(value.shape)
        else:
            t = torch.randn(value.shape, generator=gen) / math.sqrt(max(1, math.prod(value.shape[1:])))
        sd[key] = t.to(torch.bfloat16).contiguous()
    return sd


def write_all(folder: pathlib.Path) -> dict[str, pathlib.Path]:
    """Write every tiny model into ``folder`` (a ComfyUI-style models tree) once; return paths."""
    from safetensors.torch import save_file

    folder = pathlib.Path(folder)
    paths = {
        "dit": folder / "diffusion_models" / "tiny_wan_animate.safetensors",
        "dit_prefixed": folder / "diffusion_models" / "tiny_wan_animate_prefixed.safetensors",
        "vae": folder / "vae" / "tiny_wan21_vae.safetensors",
        "lora_peft": folder / "loras" / "tiny_relight_peft" / "adapter_model.safetensors",
        "lora_peft_ckpt": folder / "loras" / "tiny_relighting_lora.ckpt",
        "lora_comfy": folder / "loras" / "tiny_relight_comfy.safetensors",
    }
    stamp = folder / f".tiny-{VERSION}"
    if stamp.is_file() and all(p.is_file() for p in paths.values()):
        return paths
    for p in paths.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    dit = tiny_dit_state_dict()
    save_file(dit, str(paths["dit"]))
    save_file({f"model.diffusion_model.{k}": v for k, v in dit.items()}, str(paths["dit_prefixed"]))
    save_file(tiny_vae_state_dict(), str(paths["vae"]))
    peft, comfy = tiny_lora_state_dicts()
    save_file(peft, str(paths["lora_peft"]))
    torch.save({"state_dict": peft}, str(paths["lora_peft_ckpt"]))
    save_file(comfy, str(paths["lora_comfy"]))
    stamp.write_text(VERSION)
    return paths


# --- pose models (ONNX, real contracts) ----------------------------------------------------------
# A standing person in heatmap cells (48 x 64) for the 17 COCO body points, then feet, face, hands.
_BODY17 = [(24, 10), (25.5, 8.5), (22.5, 8.5), (27, 9.5), (21, 9.5), (30, 17), (18, 17), (32, 25), (16, 25),
           (33, 32), (15, 32), (28, 34), (20, 34), (28, 45), (20, 45), (28, 56), (20, 56)]


def person_peaks():
    """[133, 2] heatmap-cell positions of a person standing upright in the crop."""
    import numpy as np

    pts = np.zeros((133, 2))
    pts[:17] = _BODY17
    pts[17:23] = [(29, 58), (30.5, 58), (27.5, 57), (19, 58), (17.5, 58), (20.5, 57)]  # feet
    ang = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    pts[23:91] = np.stack([24 + 2.5 * np.cos(ang), 10.5 + 3.0 * np.sin(ang)], 1)  # face ring
    for base, wrist in ((91, (33, 32)), (112, (15, 32))):
        offs = np.stack([np.linspace(-1.5, 1.5, 21), np.linspace(0.5, 3.5, 21)], 1)
        pts[base:base + 21] = np.asarray(wrist) + offs
    return pts


def write_pose_models(folder: pathlib.Path) -> dict[str, pathlib.Path]:
    """Tiny YOLOv10-contract detector (two people, fixed boxes) and ViTPose-contract model."""
    import numpy as np
    from tiny_onnx import make_detector, make_vitpose

    det_dir = pathlib.Path(folder) / "detection"
    det_dir.mkdir(parents=True, exist_ok=True)
    paths = {"detector": det_dir / "tiny_yolov10.onnx", "vitpose": det_dir / "tiny_vitpose_wholebody.onnx"}
    if not paths["detector"].is_file():
        boxes = np.array([[120.0, 60.0, 300.0, 560.0, 0.9, 0.0], [380.0, 120.0, 500.0, 520.0, 0.8, 0.0]])
        make_detector(paths["detector"], boxes=boxes)
    if not paths["vitpose"].is_file():
        make_vitpose(paths["vitpose"], peaks=person_peaks())
    return paths


def write_sam2(folder: pathlib.Path) -> dict[str, pathlib.Path]:
    """The tiny random SAM 2.1 (hiera tiny layout) in ``folder/sam2`` (needs the sam2 package)."""
    import importlib.util
    import shutil

    if importlib.util.find_spec("sam2") is None:
        return {}
    from tiny_sam2 import tiny_sam2_files

    built = tiny_sam2_files(pathlib.Path(folder) / ".build")
    dst = pathlib.Path(folder) / "sam2" / "tiny_sam2.1_hiera_t.pt"
    if not dst.is_file():
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built["pt"], dst)
    return {"sam2": dst}
