"""Model folders of the pack inside the host's models directory."""
from __future__ import annotations

import os

# name -> extensions the pack's loaders accept
PACK_FOLDERS = {
    "detection": {".onnx"},
    "sam2": {".pt", ".safetensors"},
}


def register_model_folders() -> None:
    """Register ``models/detection`` and ``models/sam2`` without hiding other packs' files.

    If the host (or another pack) already registered the name, our extensions are added to its set
    (never replacing it) and the cached listing is dropped; otherwise the folder is created with an
    explicit extension set. Newer hosts register ``detection`` for .pt files only, which would hide
    .onnx models (ComfyUI folder_paths.py registers its folders with fixed extension sets).
    """
    import folder_paths

    for name, exts in PACK_FOLDERS.items():
        default = os.path.join(folder_paths.models_dir, name)
        entry = folder_paths.folder_names_and_paths.get(name)
        if entry is None:
            folder_paths.folder_names_and_paths[name] = ([default], set(exts))
        else:
            paths, known = entry
            if default not in paths:
                paths.append(default)
            if known:  # an empty set means "no filter": keep it that way
                known.update(exts)
        getattr(folder_paths, "filename_list_cache", {}).pop(name, None)
