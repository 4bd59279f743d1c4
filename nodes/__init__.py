"""The pack's ComfyUI surface: one module per node family, each exporting ``NODES`` (V3
``io.ComfyNode`` classes) and optionally ``REQUIRES`` (import names of optional dependencies).

A family whose optional dependency is missing is skipped with a log line saying what to install;
the rest of the pack and the host keep working.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging

FAMILIES = ("video", "video_rate", "pose", "retarget", "mask", "segment", "sample", "solvers", "lora", "embeds", "clip_vision", "pose_pick", "prompt_schedule", "points_editor")
INSTALL_HINT = {
    "onnxruntime": "pip install onnxruntime-gpu (GPU) or onnxruntime (CPU only)",
    "sam2": "SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2==1.1.0",
    "cv2": "pip install opencv-python-headless",
}
log = logging.getLogger("wan_animate_kit")


def missing_requirements(requires) -> list[str]:
    return [name for name in requires if importlib.util.find_spec(name) is None]


def node_classes() -> list:
    from .folders import register_model_folders

    register_model_folders()
    classes = []
    for family in FAMILIES:
        try:
            module = importlib.import_module(f".{family}", __name__)
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith(__name__):
                continue  # family not written yet in this version
            log.warning("Wan-Animate Kit: %s nodes disabled: %s (%s)", family, e,
                        INSTALL_HINT.get(e.name or "", "install the missing package"))
            continue
        missing = missing_requirements(getattr(module, "REQUIRES", ()))
        if missing:
            hints = "; ".join(INSTALL_HINT.get(m, f"pip install {m}") for m in missing)
            log.warning("Wan-Animate Kit: %s nodes disabled, missing %s: %s", family, ", ".join(missing), hints)
            continue
        classes.extend(module.NODES)
    return classes


def extension():
    from comfy_api.latest import ComfyExtension

    classes = node_classes()

    class WanAnimateKitExtension(ComfyExtension):
        async def get_node_list(self):
            return classes

    return WanAnimateKitExtension()
