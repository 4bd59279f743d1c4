"""Make a shipped API workflow runnable on the test server: tiny models, a saved prompt embedding in
place of the text encoder, no CLIP vision (the ViT-H encoder cannot be faked), short segments, one
step of the official UniPC (which calls the model once and returns its x0 prediction, so the model's
inputs reach the output), and media the test writes."""
from __future__ import annotations

import copy
import pathlib

import numpy as np

FRAMES, FPS, WIDTH, HEIGHT = 9, 30, 96, 64  # 30 fps: the official rate, so resampling keeps every frame


CHARACTERS = ("character.png", "character_b.png")  # two different character images


def write_inputs(input_dir: pathlib.Path) -> None:
    """character.png, character_b.png and driving.mp4 (9 frames, 30 fps, with an audio track) in the
    input folder."""
    from media import write_mp4
    from PIL import Image

    input_dir.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(CHARACTERS):
        png = input_dir / name
        if not png.exists():
            rng = np.random.default_rng(seed)
            Image.fromarray(rng.integers(0, 255, (80, 60, 3), dtype=np.uint8)).save(png)
    mp4 = input_dir / "driving.mp4"
    if mp4.exists():
        return
    img = np.zeros((FRAMES, HEIGHT, WIDTH, 3), np.uint8)
    for i in range(FRAMES):
        img[i, :, :, 0] = 40 + 10 * i
        img[i, 10:60, 20 + i:40 + i] = 220
    write_mp4(mp4, img, FPS, audio_hz=330, amplitude=0.2)


def _embedding(models: pathlib.Path) -> str:
    """A tiny saved prompt embedding (umT5 width 4096) in models/prompt_embeds."""
    import torch
    from safetensors.torch import save_file

    path = models / "prompt_embeds" / "tiny_prompt.safetensors"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        g = torch.Generator().manual_seed(5)
        save_file({"0.cross_attn": torch.randn(1, 6, 4096, generator=g)}, str(path),
                  metadata={"format": "wan_animate_kit.conditioning.v1", "entries": "1", "0.extra": "{}"})
    return path.name


def tiny_prompt(prompt: dict, server, tiny: dict, character: str = CHARACTERS[0]) -> dict:
    p = copy.deepcopy(prompt)
    write_inputs(server.base / "input")
    emb = _embedding(tiny["root"])
    for nid, node in list(p.items()):
        ct, inp = node["class_type"], node["inputs"]
        if ct == "LoadImage":  # replace_two's "Character B image" gets the other one
            second = "Character B" in node.get("_meta", {}).get("title", "")
            inp["image"] = next(c for c in CHARACTERS if c != character) if second else character
        elif ct == "UNETLoader":
            inp["unet_name"] = tiny["dit"].name
        elif ct == "VAELoader":
            inp["vae_name"] = tiny["vae"].name
        elif ct in ("LoraLoaderModelOnly", "WAK_RelightLoRA"):
            inp["lora_name"] = tiny["lora_comfy"].name
        elif ct == "WAK_PoseModelLoader":
            inp.update(detector=tiny["detector"].name, pose_model=tiny["vitpose"].name, device="cpu")
        elif ct == "WAK_Sam2Loader":
            inp.update(checkpoint=tiny["sam2"].name, device="cpu", dtype="fp32", image_size=256)
        elif ct == "WAK_OutputSize":
            inp["area"] = 64 * 64
        elif ct == "WAK_DrivingVideo" and inp.get("resize_area"):
            inp["resize_area"] = 64 * 64
        elif ct == "WAK_CharacterSegmentation":
            inp["chunk_size"] = 8
        elif ct == "CLIPTextEncode":
            p[nid] = {"class_type": "WAK_LoadPromptEmbedding", "inputs": {"embedding": emb}, "_meta": node["_meta"]}
        elif ct == "WAK_AnimateSampler":
            inp.update(steps=1, segment_length=9, cache=False)
            inp.pop("clip_vision_output", None)
    for nid in [k for k, v in p.items() if v["class_type"] in ("CLIPLoader", "CLIPVisionLoader", "CLIPVisionEncode",
                                                              "WAK_ClipVisionEncodeOfficial")]:
        del p[nid]
    return p
