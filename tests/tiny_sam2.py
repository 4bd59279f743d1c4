"""A deterministic SAM 2.1 tiny model with random weights, for CPU tests of the SAM2 code.

Built through the installed ``sam2`` package from its own ``sam2.1_hiera_t`` config, so the key
layout, shapes and the 2.1-only keys are the real ones. The model image size is not part of the
weights (position embeddings are interpolated), so tests load these files with
``overrides=["++model.image_size=128"]`` (or 256) to keep CPU runs fast.

Written once per cache directory:

* ``sam2.1_hiera_tiny.pt``: ``{"model": state_dict}`` fp32, like the official release;
* ``sam2.1_hiera_tiny-fp16.safetensors``: flat fp16 state dict, like the Kijai repacks.
"""
from __future__ import annotations

import pathlib

import torch

SEED = 1234
VERSION = "v1"
CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
BUILD_OVERRIDES = ("++model.image_size=256",)
OBJ_SCORE_BIAS = "sam_mask_decoder.pred_obj_score_head.layers.2.bias"


def build_tiny_state_dict(seed: int = SEED) -> dict[str, torch.Tensor]:
    """State dict of a freshly initialised SAM 2.1 tiny video predictor (same seed -> same weights)."""
    from sam2.build_sam import build_sam2_video_predictor

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_sam2_video_predictor(CONFIG, None, device="cpu",
                                           hydra_overrides_extra=list(BUILD_OVERRIDES))
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    # Random weights would often score "no object" and give all-empty masks; make the
    # occlusion head always say "present" so the masks follow the (random) mask decoder.
    sd[OBJ_SCORE_BIAS] = torch.full_like(sd[OBJ_SCORE_BIAS], 10.0)
    return sd


def tiny_sam2_files(cache_dir: str | pathlib.Path) -> dict[str, pathlib.Path]:
    """Write (once) and return ``{"pt": path, "safetensors": path}`` under ``cache_dir``."""
    from safetensors.torch import save_file

    root = pathlib.Path(cache_dir) / f"tiny_sam2_{VERSION}"
    paths = {"pt": root / "sam2.1_hiera_tiny.pt",
             "safetensors": root / "sam2.1_hiera_tiny-fp16.safetensors"}
    if all(p.exists() for p in paths.values()):
        return paths
    root.mkdir(parents=True, exist_ok=True)
    sd = build_tiny_state_dict()
    tmp = paths["pt"].with_suffix(".tmp")
    torch.save({"model": sd}, tmp)
    tmp.replace(paths["pt"])
    tmp = paths["safetensors"].with_suffix(".tmp")
    save_file({k: v.half() if v.is_floating_point() else v for k, v in sd.items()}, str(tmp))
    tmp.replace(paths["safetensors"])
    return paths
