"""The Relighting LoRA node: patch Wan2.2-Animate's relight LoRA into a MODEL, whatever its key
layout, and say exactly what was patched."""
from __future__ import annotations

import math

from comfy_api.latest import io, ui

from .common import CATEGORY, PREFIX, InputError, model_file

NODE_ID = PREFIX + "RelightLoRA"
DISPLAY = "Wan-Animate Relighting LoRA"


class RelightLoRA(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        import folder_paths

        return io.Schema(
            node_id=NODE_ID,
            display_name=DISPLAY,
            category=CATEGORY + "/model",
            description="Apply the Wan2.2-Animate Relighting LoRA (replacement mode: matches the character's "
                        "lighting to the scene). Understands the official PEFT file (relighting_lora.ckpt or "
                        "adapter_model.safetensors) and the ComfyUI repacks; every LoRA key must find its layer, "
                        "so a wrong file is an error instead of silently doing nothing.",
            inputs=[
                io.Model.Input("model", tooltip="The Wan-Animate diffusion model (from Load Diffusion Model). "
                                                 "Any Wan 2.1-family model is accepted; other models are refused."),
                io.Combo.Input("lora_name", options=folder_paths.get_filename_list("loras"),
                               tooltip="The relight LoRA file in ComfyUI/models/loras/ (subfolders are fine): "
                                       "WanAnimate_relight_lora_fp16.safetensors, or the official "
                                       "relighting_lora.ckpt / relighting_lora/adapter_model.safetensors. "
                                       ".ckpt/.pt files are loaded safely (tensors only, no code)."),
                io.Float.Input("strength", default=1.0, min=-4.0, max=4.0, step=0.01,
                               tooltip="LoRA strength: 1.0 is the official setting, 0 leaves the model unchanged."),
                io.Boolean.Input("allow_partial", default=False,
                                 tooltip="Off: refuse a LoRA whose keys do not all fit the model (wrong model or "
                                         "wrong file). On: apply the layers that fit and list the rest in the report."),
            ],
            outputs=[
                io.Model.Output(display_name="MODEL", tooltip="A patched copy of the model (the input is unchanged)."),
                io.String.Output(display_name="report",
                                 tooltip="How many layers were matched, rank, scale, and anything skipped."),
            ],
        )

    @classmethod
    def execute(cls, model, lora_name: str, strength: float = 1.0, allow_partial: bool = False) -> io.NodeOutput:
        from ..models.relight_lora import check_wan_model, load_and_apply

        path = model_file(DISPLAY, "lora_name", "loras", lora_name)
        if not isinstance(strength, (int, float)) or not math.isfinite(strength):
            raise InputError(DISPLAY, "strength", f"must be a finite number, got {strength}",
                             "type a number such as 1.0 (the official strength)")
        try:
            check_wan_model(model)
        except ValueError as e:
            raise InputError(DISPLAY, "model", str(e).removeprefix("input 'model': ")) from e
        try:
            patched, report = load_and_apply(model, path, strength=strength, allow_partial=allow_partial)
        except ValueError as e:
            if str(e).startswith("input 'model'"):
                raise InputError(DISPLAY, "model", str(e).removeprefix("input 'model': ")) from e
            raise InputError(DISPLAY, "lora_name", f"'{lora_name}': {e}") from e
        text = f"{lora_name}: " + report.summary()
        return io.NodeOutput(patched, text, ui=ui.PreviewText(text))


NODES = [RelightLoRA]
