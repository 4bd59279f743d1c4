"""Wan-Animate Kit: Wan2.2-Animate character animation and replacement for ComfyUI.

Importing this package is cheap: node modules (and through them onnxruntime, sam2, cv2) load
only when the host asks for the node list. ``web/`` holds the frontend extension (the SAM2 Points
Editor), plain ES modules the host serves as they are.
"""
WEB_DIRECTORY = "./web"


async def comfy_entrypoint():
    from .nodes import extension

    return extension()
