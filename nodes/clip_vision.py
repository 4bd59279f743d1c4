"""CLIP Vision Encode of the character reference with the official Wan2.2-Animate preprocessing."""
from __future__ import annotations

import torch
from comfy_api.latest import io

from .common import CATEGORY, PREFIX, InputError

NODE = "Wan-Animate CLIP Vision Encode (official)"
OFFICIAL = "official (bicubic, no antialias)"
HOST = "host (antialias, 8-bit)"
PREPROCESS_CHOICES = [OFFICIAL, HOST]


def check_inputs(clip_vision, image, preprocess) -> None:
    """Raise an InputError naming the bad input before any model is loaded."""
    if preprocess not in PREPROCESS_CHOICES:
        raise InputError(NODE, "preprocess", f"unknown choice {preprocess!r}", f"pick one of {PREPROCESS_CHOICES}")
    if clip_vision is None or not all(hasattr(clip_vision, a) for a in ("encode_image", "model", "patcher")):
        raise InputError(NODE, "clip_vision", f"is not a CLIP vision model (got {type(clip_vision).__name__})",
                         "connect Load CLIP Vision with clip_vision_h.safetensors")
    if not isinstance(image, torch.Tensor) or image.ndim != 4:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise InputError(NODE, "image", f"must be an IMAGE batch [frames, height, width, channels], got {shape}",
                         "connect the reference image (e.g. from Load Image)")
    if image.shape[0] == 0 or image.shape[1] == 0 or image.shape[2] == 0:
        raise InputError(NODE, "image", f"is empty (shape {tuple(image.shape)})", "connect a non-empty image")
    if image.shape[3] < 3:
        raise InputError(NODE, "image", f"has {image.shape[3]} channel(s), RGB is needed",
                         "convert it to RGB (e.g. with a mask-to-image or colour node)")
    if not image.is_floating_point():
        raise InputError(NODE, "image", f"must hold float values in [0, 1], got {image.dtype}",
                         "connect an IMAGE output of a ComfyUI node")
    if preprocess == OFFICIAL:
        from ..models.clip_vision_official import official_mismatch

        why = official_mismatch(clip_vision)
        if why:
            raise InputError(NODE, "clip_vision", f"{why}; the official preprocessing is for clip_vision_h",
                             f"load clip_vision_h.safetensors, or set preprocess to '{HOST}'")


class ClipVisionEncodeOfficial(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "ClipVisionEncodeOfficial",
            display_name=NODE,
            category=CATEGORY + "/conditioning",
            description="CLIP Vision Encode of the character reference, preprocessed as the official "
                        "Wan2.2-Animate inference does (CLIPModel.visual): the reference in [-1, 1] rounded to "
                        "bfloat16, bicubic resize to 224 x 224 without antialias (aspect ratio not kept, like "
                        "core crop 'none'), then * 0.5 + 0.5 and the CLIP mean/std normalisation in bfloat16. "
                        "The ViT is the host's own, run as core CLIP Vision Encode runs it; its "
                        "penultimate_hidden_states (31 of the 32 blocks of clip_vision_h, no post norm) is the "
                        "official use_31_block feature the Wan-Animate model reads. One difference remains inside "
                        "the ViT: the official code runs it under fp16 autocast, the host runs the same fp16 "
                        "weights with float32 arithmetic (slightly more precise, not bit-identical). Connect "
                        "its output to the Wan-Animate Sampler's clip_vision_output.",
            inputs=[
                io.ClipVision.Input("clip_vision", tooltip="The CLIP vision model: clip_vision_h.safetensors "
                                                           "(Load CLIP Vision)."),
                io.Image.Input("image", tooltip="The character reference, already fitted (letterboxed) to the "
                                                "output size, as the official code encodes it. A batch is "
                                                "encoded image by image; an alpha channel is ignored."),
                io.Combo.Input("preprocess", options=PREPROCESS_CHOICES, default=OFFICIAL,
                               tooltip=f"{OFFICIAL}: the official preprocessing (default). {HOST}: exactly "
                                       "core CLIP Vision Encode with crop 'none'; it differs from the official "
                                       "one in three ways: the bicubic resize uses antialias (on a downscale, "
                                       "e.g. 1280x720 -> 224x224, it averages over a wider footprint, a softer "
                                       "image), the resized image is rounded to 8-bit levels, and the "
                                       "arithmetic is float32 instead of bfloat16."),
            ],
            outputs=[io.ClipVisionOutput.Output(display_name="CLIP_VISION_OUTPUT",
                                                tooltip="The host's CLIP vision output (last_hidden_state, "
                                                        "penultimate_hidden_states, image_embeds, mm_projected) "
                                                        "for the Wan-Animate Sampler or core WanAnimateToVideo.")],
        )

    @classmethod
    def execute(cls, clip_vision, image, preprocess=OFFICIAL) -> io.NodeOutput:
        check_inputs(clip_vision, image, preprocess)
        if preprocess == HOST:
            return io.NodeOutput(clip_vision.encode_image(image, crop=False))
        from ..models.clip_vision_official import encode_official

        return io.NodeOutput(encode_official(clip_vision, image))


NODES = [ClipVisionEncodeOfficial]
