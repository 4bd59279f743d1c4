"""Model names picked in a dropdown -> files inside the host's model folders, and nothing else.

ComfyUI does not check a V3 combo value against its option list, so a prompt sent through the API
can carry any string: an absolute path, ``../`` segments, or the name of a link inside a model
folder that leads elsewhere. ``find_model_file`` only ever answers with a file whose real path
(links resolved) lies inside one of the folder's registered roots (themselves resolved, so a model
folder that is itself a link, or one added by extra_model_paths.yaml, keeps working).

Whatever the reason a name is refused (absolute, traversal, a link leading out, missing), the
caller gets the same answer (None) and shows the same message: an error never tells whether a file
outside the model folders exists.
"""
from __future__ import annotations

import os
import re
from typing import Iterable

_DRIVE = re.compile(r"^[A-Za-z]:")


def is_plain_name(name: object) -> bool:
    """A relative name without '..' segments, NUL bytes or a drive/root prefix."""
    if not isinstance(name, str) or not name.strip() or "\x00" in name:
        return False
    if name.startswith(("/", "\\", "~")) or _DRIVE.match(name) or os.path.isabs(name):
        return False
    return ".." not in re.split(r"[\\/]+", name)


def _inside(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives (Windows)
        return False


def find_model_file(name: object, roots: Iterable[str | os.PathLike], *,
                    folder_file: str | None = None) -> str | None:
    """The real path of the model file ``name`` inside one of ``roots``, or None.

    ``folder_file``: a name that is a folder stands for this file inside it (e.g. the official ONNX
    layout ``<model>/end2end.onnx``). Links are followed, but the final file must still be inside
    the (resolved) root it was found under.
    """
    if not is_plain_name(name):
        return None
    for root in roots:
        root_real = os.path.realpath(os.fspath(root))
        if not os.path.isdir(root_real):
            continue
        cand = os.path.realpath(os.path.join(root_real, name))
        if not _inside(cand, root_real):
            continue
        if folder_file and os.path.isdir(cand):
            cand = os.path.realpath(os.path.join(cand, folder_file))
            if not _inside(cand, root_real):
                continue
        if os.path.isfile(cand):
            return cand
    return None


def not_in_folder(name: object, folder: str, roots: Iterable[str | os.PathLike] = ()) -> tuple[str, str]:
    """(problem, fix) for a refused or missing model name: one text whatever the reason. ``roots``
    (the host's folders for ``folder``) lets the fix name the real place; it never depends on the
    refused name, so the text reveals nothing about files outside the folders."""
    shown = name if isinstance(name, str) and len(name) <= 200 else f"{str(name)[:200]}..."
    roots = [os.fspath(r) for r in roots]
    where = f"{roots[0]}" if roots else f"ComfyUI/models/{folder}"
    return (f"'{shown}' was not found as a model file in the '{folder}' model folder(s); only files inside "
            f"those folders can be loaded (absolute paths, '..' and links that lead outside them are refused)",
            f"put the file into {where} (or a folder listed for '{folder}' in extra_model_paths.yaml), "
            f"refresh the node list (press R) and pick it from the list")
