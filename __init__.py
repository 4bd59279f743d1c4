"""Wan-Animate Kit: Wan2.2-Animate character animation and replacement for ComfyUI.

Importing this package is cheap: node modules (and through them onnxruntime, sam2, cv2) load
only when the host asks for the node list. The pack has no frontend extension (no ``web/`` folder),
so it declares no ``WEB_DIRECTORY``.
"""


async def comfy_entrypoint():
    from .nodes import extension

    return extension()
