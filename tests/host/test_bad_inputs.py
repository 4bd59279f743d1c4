"""Bad inputs through the real host (in-process): every case is refused by the pack, before any
expensive work, with a message that names the input as the UI shows it and says how to fix it.

Table-driven: each row is (node class, its display name, the inputs, the input the error must
name, a phrase of the problem).
"""
from __future__ import annotations

import os
import pathlib

import pytest

pytestmark = pytest.mark.host


# ------------------------------------------------------------------------- model path confinement

# (folder name, node, display name, input id, file name inside the folder, other inputs)
LOADERS = [
    ("detection", "pose.PoseModelLoader", "Pose Models", "detector", "ok.onnx",
     dict(pose_model="ok.onnx", device="cpu", batch_size=0, bgr_like_official=False)),
    ("detection", "pose.PoseModelLoader", "Pose Models", "pose_model", "ok.onnx",
     dict(detector="ok.onnx", device="cpu", batch_size=0, bgr_like_official=False)),
    ("sam2", "segment.Sam2Loader", "SAM2 Loader", "checkpoint", "ok.pt",
     dict(device="cpu", dtype="fp32", image_size=0)),
    ("loras", "lora.RelightLoRA", "Wan-Animate Relighting LoRA", "lora_name", "ok.safetensors",
     dict(model=None, strength=1.0, allow_partial=False)),
    ("prompt_embeds", "embeds.LoadPromptEmbedding", "Load Prompt Embedding", "embedding", "ok.safetensors", {}),
]


def _node(dotted: str):
    import importlib

    module, cls = dotted.split(".")
    return getattr(importlib.import_module(f"wan_animate_kit.nodes.{module}"), cls)


@pytest.fixture
def model_roots(host, tmp_path, monkeypatch):
    """Every loader's folder points at one fresh root under tmp_path/models/<folder>; a file
    'secret.*' lies outside them, and one was 'uploaded' into the host's input folder."""
    import folder_paths

    fnp = dict(folder_paths.folder_names_and_paths)
    monkeypatch.setattr(folder_paths, "folder_names_and_paths", fnp)
    roots = {}
    for folder in {row[0] for row in LOADERS}:
        root = tmp_path / "models" / folder
        root.mkdir(parents=True)
        fnp[folder] = ([str(root)], set())
        folder_paths.filename_list_cache.pop(folder, None)
        roots[folder] = root
    outside = tmp_path / "outside"
    outside.mkdir()
    inputs = tmp_path / "input"
    inputs.mkdir()
    monkeypatch.setattr(folder_paths, "input_directory", str(inputs))
    monkeypatch.setattr(folder_paths, "output_directory", str(tmp_path / "output"))
    yield roots, outside, inputs
    for folder in roots:
        folder_paths.filename_list_cache.pop(folder, None)


def _names(root: pathlib.Path, outside: pathlib.Path, inputs: pathlib.Path, ext: str):
    """(existing, missing) pairs of names that point outside the model folder, by kind."""
    secret, missing = outside / f"secret{ext}", outside / f"missing{ext}"
    secret.write_bytes(b"\x08\x07not a model")
    uploaded = inputs / f"uploaded{ext}"  # what /upload/image writes
    uploaded.write_bytes(b"\x08\x07uploaded")
    (root / f"link_in{ext}").symlink_to(secret)
    (root / f"dangling{ext}").symlink_to(missing)
    (root / "linked_dir").symlink_to(outside, target_is_directory=True)
    up = os.path.relpath(outside, root)
    return {
        "absolute": (str(secret), str(missing)),
        "dotdot": (f"{up}/secret{ext}", f"{up}/missing{ext}"),
        "dotdot_backslash": (f"..\\..\\outside\\secret{ext}", f"..\\..\\outside\\missing{ext}"),
        "symlink": (f"link_in{ext}", f"dangling{ext}"),
        "symlinked_dir": (f"linked_dir/secret{ext}", f"linked_dir/missing{ext}"),
        "uploaded": (str(uploaded), str(inputs / f"never_uploaded{ext}")),
        "uploaded_dotdot": (f"{os.path.relpath(inputs, root)}/uploaded{ext}",
                            f"{os.path.relpath(inputs, root)}/never_uploaded{ext}"),
    }


@pytest.mark.parametrize("row", LOADERS, ids=[f"{r[1]}.{r[3]}" for r in LOADERS])
def test_model_inputs_are_confined_to_the_model_folders(model_roots, row):
    from wan_animate_kit.nodes.common import InputError

    folder, dotted, display, input_id, ok_name, others = row
    roots, outside, inputs = model_roots
    root = roots[folder]
    (root / ok_name).write_bytes(b"\x08\x07")
    node = _node(dotted)
    ext = pathlib.Path(ok_name).suffix
    for kind, (present, absent) in _names(root, outside, inputs, ext).items():
        messages = []
        for name in (present, absent):
            with pytest.raises(InputError) as err:
                node.execute(**{**others, input_id: name})
            text = str(err.value)
            assert text.startswith(f"{display}: input '{input_id}':"), (kind, text)
            assert "refused" in text and f"ComfyUI/models/{folder}" in text, (kind, text)
            assert err.value.input_name == input_id
            messages.append(text.replace(name, "<name>"))
        # The same words whether or not the outside file exists: nothing about it leaks.
        assert messages[0] == messages[1], (kind, messages)


def test_confinement_keeps_model_folders_that_are_links(tmp_path):
    """A model folder that is itself a link (or lives behind one), and links that stay inside it,
    keep working; a file found anywhere is returned with its real path."""
    from wan_animate_kit.models.model_paths import find_model_file, is_plain_name

    real = tmp_path / "disk" / "loras"
    (real / "sub").mkdir(parents=True)
    (real / "sub" / "a.safetensors").write_bytes(b"x")
    (real / "alias.safetensors").symlink_to(real / "sub" / "a.safetensors")
    linked_root = tmp_path / "models_loras"
    linked_root.symlink_to(real, target_is_directory=True)
    want = str((real / "sub" / "a.safetensors").resolve())
    assert find_model_file("sub/a.safetensors", [linked_root]) == want
    assert find_model_file("alias.safetensors", [linked_root]) == want
    assert find_model_file("./sub/a.safetensors", [tmp_path / "none", linked_root]) == want
    # The official ONNX layout: a folder stands for its end2end.onnx.
    (real / "vit").mkdir()
    (real / "vit" / "end2end.onnx").write_bytes(b"x")
    assert find_model_file("vit", [real], folder_file="end2end.onnx") == str((real / "vit" / "end2end.onnx").resolve())
    assert find_model_file("vit", [real]) is None
    for bad in ["", " ", "/etc/passwd", "~/x", "C:\\x", "C:x", "a/../sub/a.safetensors", "..", "a\x00b", None, 3]:
        assert not is_plain_name(bad), bad
        assert find_model_file(bad, [real]) is None
