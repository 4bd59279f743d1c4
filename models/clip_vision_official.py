"""CLIP-vision encoding of the character reference the way the official Wan2.2-Animate inference does it.

Official: wan/animate.py, WanAnimate.generate takes ``ref_pixel_values[0, :, 0]`` (the letterboxed
reference at the output size, ``uint8 / 127.5 - 1`` cast to bfloat16 with the rest of the batch) and
hands it to wan/modules/animate/clip.py, CLIPModel.visual, which

1. resizes it to 224 x 224 with ``F.interpolate(mode='bicubic', align_corners=False)`` (no antialias,
   aspect ratio not kept, still in bfloat16);
2. maps [-1, 1] to [0, 1] with ``mul_(0.5).add_(0.5)`` (bfloat16 arithmetic);
3. applies the last transform of its torchvision pipeline, ``Normalize(mean, std)`` with the CLIP
   mean/std (torchvision casts mean and std to the tensor's dtype, bfloat16, then subtracts and divides);
4. runs the ViT-H/14 with ``use_31_block=True`` (the output of the first 31 of its 32 residual blocks, no
   post norm) under fp16 autocast.

The host's ``ClipVisionModel.encode_image`` (comfy/clip_vision.py) preprocesses differently: a float32
bicubic resize *with* antialias, then quantisation of the resized image to 8-bit levels, then float32
normalisation. Its ``penultimate_hidden_states`` (``intermediate_output=-2`` of 32 layers = the output of
layer index 30, i.e. 31 blocks, no post norm) is what the official ``use_31_block`` returns, and it is
what the host's Wan models read as ``clip_fea``. So only the preprocessing is replaced here; the ViT is
the host's own, called the way ``encode_image`` calls it.

``official_pixel_values`` is pure torch (no host imports); ``encode_official`` drives the host.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

#: Official CLIP normalisation (wan/modules/animate/clip.py, _clip: the non-SigLIP mean and std).
OFFICIAL_MEAN = (0.48145466, 0.4578275, 0.40821073)
OFFICIAL_STD = (0.26862954, 0.26130258, 0.27577711)
#: Official ViT-H/14 input size (clip_xlm_roberta_vit_h_14: image_size=224).
OFFICIAL_SIZE = 224


def to_official_range(image: torch.Tensor) -> torch.Tensor:
    """IMAGE batch ``[B, H, W, C]`` in [0, 1] (C >= 3; extra channels such as alpha are dropped) ->
    ``[B, 3, H, W]`` bfloat16 in [-1, 1], as the official batch holds the reference.

    Official: wan/animate.py, WanAnimate.generate: ``refer_images / 127.5 - 1`` in float64, then
    ``batch[key].to(dtype=torch.bfloat16)``. The affine map is done in float64 here too, so an 8-bit
    level ``k / 255`` stored as float32 lands on the same bfloat16 value as ``k / 127.5 - 1``.
    """
    rgb = image[..., :3].movedim(-1, 1)
    if rgb.device.type == "mps":  # no float64 there: map on the CPU (the result is the same)
        return (rgb.cpu().to(torch.float64) * 2.0 - 1.0).to(torch.bfloat16).to(rgb.device)
    return (rgb.to(torch.float64) * 2.0 - 1.0).to(torch.bfloat16)


def resize_bicubic_bf16(x: torch.Tensor, size: int = OFFICIAL_SIZE) -> torch.Tensor:
    """Bicubic resize of a bfloat16 ``[B, C, H, W]`` batch to ``size x size`` (align_corners=False, no
    antialias, aspect ratio not kept), rounded once to bfloat16.

    Official: wan/modules/animate/clip.py, CLIPModel.visual (``F.interpolate`` on the bfloat16 tensor on
    the GPU). The CUDA kernel reads bfloat16, computes in float32 and rounds the result once; the CPU
    bfloat16 kernel rounds in between, so the float32 kernel is used here on every device (on CUDA the
    arithmetic is that of the official bfloat16 call: one rounding of a float32 result).
    """
    out = F.interpolate(x.to(torch.float32), size=(size, size), mode="bicubic", align_corners=False)
    return out.to(torch.bfloat16)


def official_pixel_values(image: torch.Tensor, size: int = OFFICIAL_SIZE,
                          mean=OFFICIAL_MEAN, std=OFFICIAL_STD, device=None) -> torch.Tensor:
    """The official ViT input for an IMAGE batch ``[B, H, W, C]`` in [0, 1]: ``[B, 3, size, size]``
    bfloat16, computed on ``device`` (default: the image's) after the range map.

    Official: wan/modules/animate/clip.py, CLIPModel.visual: bicubic resize (no antialias), then
    ``* 0.5 + 0.5`` and torchvision ``Normalize`` -- each step a bfloat16 operation (rounded after
    every op), with mean and std themselves rounded to bfloat16 as torchvision does.
    """
    x = to_official_range(image)
    if device is not None:
        x = x.to(device)
    x = resize_bicubic_bf16(x, size)
    x = x * 0.5            # bfloat16 ops: every result is rounded to bfloat16
    x = x + 0.5
    m = torch.tensor(mean, dtype=torch.bfloat16, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.bfloat16, device=x.device).view(1, -1, 1, 1)
    x = x - m
    return x / s


def official_mismatch(clip_vision) -> str | None:
    """Why the official preprocessing does not fit this host CLIP vision model (``None`` when it does):
    it is defined for clip_vision_h, a 224-px model with the CLIP mean/std."""
    size = getattr(clip_vision, "image_size", OFFICIAL_SIZE)
    mean = tuple(float(v) for v in getattr(clip_vision, "image_mean", OFFICIAL_MEAN))
    std = tuple(float(v) for v in getattr(clip_vision, "image_std", OFFICIAL_STD))
    if size != OFFICIAL_SIZE:
        return f"this CLIP vision model expects {size} px images, the official encoder 224 px"
    if mean != OFFICIAL_MEAN or std != OFFICIAL_STD:
        return f"this CLIP vision model normalises with mean {mean} / std {std}, not the CLIP mean/std"
    return None


def assemble_output(clip_vision, out):
    """The host's ``comfy.clip_vision.Output`` from the ViT's return tuple, with the fields
    ``ClipVisionModel.encode_image`` fills (host code: comfy/clip_vision.py)."""
    import comfy.clip_vision
    import comfy.model_management

    device = comfy.model_management.intermediate_device()
    outputs = comfy.clip_vision.Output()
    outputs["last_hidden_state"] = out[0].to(device)
    outputs["image_embeds"] = out[2].to(device)
    if getattr(clip_vision, "return_all_hidden_states", False):
        all_hs = out[1].to(device)
        outputs["penultimate_hidden_states"] = all_hs[:, -2]
        outputs["all_hidden_states"] = all_hs
    else:
        outputs["penultimate_hidden_states"] = out[1].to(device)
    outputs["mm_projected"] = out[3]
    return outputs


def encode_official(clip_vision, image: torch.Tensor):
    """Encode an IMAGE batch with the host CLIP vision model ``clip_vision`` (comfy.clip_vision
    .ClipVisionModel) after the official preprocessing. Same memory management, device, dtype and
    outputs as the host's ``encode_image``: the model is loaded with ``load_model_gpu``, the pixels go
    in as float32 (the bfloat16 values exactly), and the host model computes in its own way."""
    import comfy.model_management

    comfy.model_management.load_model_gpu(clip_vision.patcher)
    pixel_values = official_pixel_values(image, device=clip_vision.load_device).float()
    hidden = "all" if getattr(clip_vision, "return_all_hidden_states", False) else -2
    out = clip_vision.model(pixel_values=pixel_values, intermediate_output=hidden)
    return assemble_output(clip_vision, out)
