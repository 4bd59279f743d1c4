"""Bad inputs through the real host (in-process): every case is refused by the pack, before any
expensive work, with a message that names the input as the UI shows it and says how to fix it.

Table-driven: each row is (node class, its display name, the inputs, the input the error must
name, a phrase of the problem).
"""
from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest
import torch

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
            # the fix names the real folder the host loads from
            assert "refused" in text and f"put the file into {root}" in text, (kind, text)
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


# ------------------------------------------------------------------------------ bad files and values

def _media(folder: pathlib.Path) -> dict[str, pathlib.Path]:
    """Broken video files, as users upload them."""
    import av
    import numpy as np
    from media import ramp, write_mp4

    good = write_mp4(folder / "good.mp4", ramp(12, 64, 48), 10)
    data = good.read_bytes()
    files = {"truncated": data[:len(data) // 2], "random_bytes": os.urandom(4096), "empty": b"",
             "cut_tail": data[:-300]}
    out = {}
    for name, raw in files.items():
        out[name] = folder / f"{name}.mp4"
        out[name].write_bytes(raw)
    out["no_video_stream"] = folder / "sound_only.mp4"
    with av.open(str(out["no_video_stream"]), "w") as f:
        stream = f.add_stream("aac", rate=16000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for p in [*stream.encode(frame), *stream.encode(None)]:
            f.mux(p)
    return out


class _Untouchable:
    """Stands for an input that must not be used before the bad one is refused."""

    def __getattr__(self, name):
        raise AssertionError(f"used .{name} before the bad input was refused")


VIDEO_NODES = [
    ("video.VideoInfo", "Video Info", {}),
    ("pose.PoseExtract", "Pose Extraction",
     dict(pose_models=_Untouchable(), person="largest", smoothing=0.0, missing_frames="hold", chunk_frames=8)),
]


@pytest.mark.parametrize("kind", ["no_video_stream", "truncated", "cut_tail", "random_bytes", "empty"])
@pytest.mark.parametrize("row", VIDEO_NODES, ids=[r[0] for r in VIDEO_NODES])
def test_broken_video_files_are_clear_errors(host, tmp_path, kind, row):
    from comfy_api.latest import InputImpl
    from wan_animate_kit.nodes.common import InputError

    dotted, display, others = row
    path = _media(tmp_path)[kind]
    with pytest.raises(InputError) as err:
        _node(dotted).execute(**others, video=InputImpl.VideoFromFile(str(path)))
    text = str(err.value)
    assert text.startswith(f"{display}: input 'video':") and "->" in text, text
    assert ("no video stream" in text) == (kind == "no_video_stream"), text


def _pose(frames=2, width=64, height=48, value=10.0):
    from wan_animate_kit.preprocess.pose_types import PoseSequence

    kps = np.zeros((frames, 1, 133, 3), np.float32)
    kps[..., :2] = value
    kps[..., 2] = 1.0
    return PoseSequence(kps, (0,), width, height, fps=30.0)


def _nan_pose():
    pose = _pose()
    pose.keypoints[1, 0, 7, 0] = np.nan
    return pose


def _frame(people, w=64, h=48):
    return {"people": people, "canvas_width": w, "canvas_height": h}


def _person(x=10.0):
    return {"pose_keypoints_2d": [x, 10.0, 1.0] * 18}


NAN, INF = float("nan"), float("inf")


def _shape(**changes) -> dict:
    """Mask Shaping inputs at their official defaults, with ``changes``."""
    values = dict(kernel=7, iterations=3, block=True, block_rows=1, block_cols=1, head_growth=0.0, feather=0.0,
                  fill_empty=False, block_grid="official")
    values.update(changes)
    return values
RENDER = dict(letterbox=True, draw_hands=True, draw_head=True)
TO_POSE = dict(fps=0.0, person="largest")

# (node, display name, inputs (a callable for fresh objects), input named, phrase)
BAD_VALUES = [
    ("pose.PoseExtract", "Pose Extraction", lambda: dict(
        pose_models=_Untouchable(), images=torch.zeros(2, 48, 64, 3), person="largest", smoothing=NAN,
        missing_frames="hold", chunk_frames=8), "smoothing", "finite number"),
    ("pose.PoseExtract", "Pose Extraction", lambda: dict(
        pose_models=_Untouchable(), images=torch.zeros(2, 48, 64, 3), person="largest", smoothing=INF,
        missing_frames="hold", chunk_frames=8), "smoothing", "finite number"),
    ("pose.PoseFromKeypoint", "POSE_KEYPOINT to Pose", lambda: dict(pose_keypoint="{not json", **TO_POSE),
     "pose_keypoint", "not valid JSON"),
    ("pose.PoseFromKeypoint", "POSE_KEYPOINT to Pose", lambda: dict(pose_keypoint=[_frame(5)], **TO_POSE),
     "pose_keypoint", "'people' must be a list"),
    ("pose.PoseFromKeypoint", "POSE_KEYPOINT to Pose", lambda: dict(pose_keypoint=[_frame("abc")], **TO_POSE),
     "pose_keypoint", "'people' must be a list"),
    ("pose.PoseFromKeypoint", "POSE_KEYPOINT to Pose", lambda: dict(pose_keypoint=[_frame([3])], **TO_POSE),
     "pose_keypoint", "'people' must be a list"),
    ("pose.PoseFromKeypoint", "POSE_KEYPOINT to Pose",
     lambda: dict(pose_keypoint=[_frame([_person()]), _frame([_person(NAN)])], **TO_POSE),
     "pose_keypoint", "frame 1, person 0: pose_keypoints_2d holds NaN"),
    ("pose.PoseFromKeypoint", "POSE_KEYPOINT to Pose",
     lambda: dict(pose_keypoint=[_frame([{"pose_keypoints_2d": ["a", 1, 1] * 18}])], **TO_POSE),
     "pose_keypoint", "must hold numbers"),
    ("pose.PoseFromKeypoint", "POSE_KEYPOINT to Pose",
     lambda: dict(pose_keypoint=[_frame([_person()], 100000, 100000)], **TO_POSE), "pose_keypoint", "canvas_width"),
    ("pose.PoseFromKeypoint", "POSE_KEYPOINT to Pose",
     lambda: dict(pose_keypoint=[_frame([_person()], NAN, 48)], **TO_POSE), "pose_keypoint", "canvas_width"),
    ("pose.PoseFromKeypoint", "POSE_KEYPOINT to Pose",
     lambda: dict(pose_keypoint=[_frame([_person()])], fps=NAN, person="largest"), "fps", "finite number"),
    ("pose.RenderPose", "Render Pose", lambda: dict(pose=_nan_pose(), width=0, height=0, **RENDER),
     "pose", "NaN or infinite"),
    ("pose.RenderPose", "Render Pose", lambda: dict(pose=_pose(2, 100000, 100000), width=0, height=0, **RENDER),
     "pose", "larger than 8192"),
    ("pose.RenderPose", "Render Pose", lambda: dict(pose=_pose(4000), width=8192, height=8192, **RENDER),
     "frames_output", "more than this machine has"),
    ("segment.Sam2Loader", "SAM2 Loader", lambda: dict(checkpoint="ok.pt", device="cpu", dtype="fp32", image_size=7),
     "image_size", "multiple of 32"),
    ("segment.Sam2Loader", "SAM2 Loader", lambda: dict(checkpoint="ok.pt", device="cpu", dtype="fp32", image_size=16),
     "image_size", "multiple of 32"),
    ("segment.Sam2Loader", "SAM2 Loader", lambda: dict(checkpoint="ok.pt", device="cpu", dtype="fp32", image_size=48),
     "image_size", "multiple of 32"),
    ("segment.Sam2Loader", "SAM2 Loader", lambda: dict(checkpoint="ok.pt", device="tpu", dtype="fp32", image_size=0),
     "device", "not one of"),
    ("segment.CharacterSegmentation", "SAM2 Character Segmentation", lambda: dict(
        sam2_model=_Untouchable(), pose=_Untouchable(), images=torch.zeros(2, 48, 64, 3), chunk_size=400,
        keyframes=4, threshold=NAN, positive_points="", negative_points="", points_mode="add", points_frame=0,
        object_points=""), "threshold", "finite number"),
    ("pose.PoseModelLoader", "Pose Models", lambda: dict(detector="ok.onnx", pose_model="ok.onnx", device="gpu",
                                                         batch_size=0, bgr_like_official=False), "device", "not one of"),
    ("lora.RelightLoRA", "Wan-Animate Relighting LoRA", lambda: dict(model=_Untouchable(), lora_name="ok.safetensors",
                                                                     strength=NAN, allow_partial=False),
     "strength", "finite number"),
    ("mask.MaskShape", "Mask Shaping", lambda: dict(mask=torch.ones(2, 48, 64), **_shape(kernel=6)),
     "kernel", "odd whole number"),
    ("mask.MaskShape", "Mask Shaping", lambda: dict(mask=torch.ones(2, 48, 64), **_shape(feather=NAN)),
     "feather", "finite number"),
    ("mask.MaskShape", "Mask Shaping", lambda: dict(mask=torch.ones(2, 48, 64), **_shape(head_growth=NAN)),
     "head_growth", "finite number"),
    ("mask.MaskShape", "Mask Shaping", lambda: dict(mask=torch.ones(2, 48, 64), **_shape(head_growth=INF)),
     "head_growth", "finite number"),
]


@pytest.mark.parametrize("row", BAD_VALUES, ids=[f"{r[0]}.{r[3]}-{i}" for i, r in enumerate(BAD_VALUES)])
def test_bad_values_are_refused_naming_the_input(model_roots, row):
    from wan_animate_kit.nodes.common import InputError

    dotted, display, make, input_id, phrase = row
    roots, _, _ = model_roots
    for folder, name in (("sam2", "ok.pt"), ("detection", "ok.onnx"), ("loras", "ok.safetensors")):
        (roots[folder] / name).write_bytes(b"\x08\x07")
    with pytest.raises(InputError) as err:
        _node(dotted).execute(**make())
    text = str(err.value)
    assert text.startswith(f"{display}: input '{input_id}':"), text
    assert phrase in text, text


def test_render_pose_big_canvas_with_frames_output_off_allocates_nothing_up_front(host):
    """8192² without frames_output: refused neither, nor drawn until read (one chunk at a time)."""
    from wan_animate_kit.nodes.pose import DRAW_CHUNK_BYTES, RenderPose

    out = RenderPose.execute(pose=_pose(40), width=8192, height=8192, frames_output=False, **RENDER)
    video = out.result[1]
    assert video.get_dimensions() == (8192, 8192) and video.get_frame_count() == 40
    first = next(video.iter_chunks())
    frame_bytes = 8192 * 8192 * 3
    # one frame is over the chunk budget: drawn one at a time (and never all 40 at once)
    assert DRAW_CHUNK_BYTES < frame_bytes and first.shape == (1, 8192, 8192, 3)


def test_unreadable_lora_and_embedding_files(model_roots, tiny_models):
    import comfy.sd
    from wan_animate_kit.nodes.common import InputError
    from wan_animate_kit.nodes.embeds import LoadPromptEmbedding
    from wan_animate_kit.nodes.lora import RelightLoRA

    roots, _, _ = model_roots
    data = pathlib.Path(tiny_models["lora_peft_ckpt"]).read_bytes()
    (roots["loras"] / "truncated.ckpt").write_bytes(data[:len(data) // 2])
    (roots["loras"] / "random.ckpt").write_bytes(os.urandom(2048))
    (roots["loras"] / "random.safetensors").write_bytes(os.urandom(2048))
    model = comfy.sd.load_diffusion_model(str(tiny_models["dit"]))
    for name in ("truncated.ckpt", "random.ckpt", "random.safetensors"):
        with pytest.raises(InputError) as err:
            RelightLoRA.execute(model=model, lora_name=name, strength=1.0, allow_partial=False)
        text = str(err.value)
        assert text.startswith("Wan-Animate Relighting LoRA: input 'lora_name':") and "re-download" in text, text

    for name, raw in (("garbage.safetensors", os.urandom(1024)), ("empty.safetensors", b""),
                      ("huge_header.safetensors", (10 ** 12).to_bytes(8, "little") + b"{}")):
        (roots["prompt_embeds"] / name).write_bytes(raw)
        with pytest.raises(InputError) as err:
            LoadPromptEmbedding.execute(embedding=name)
        text = str(err.value)
        assert text.startswith("Load Prompt Embedding: input 'embedding':") and "not a readable" in text, text


def test_api_prompt_with_an_outside_path_is_refused_by_the_pack(server, tmp_path):
    """Through POST /prompt (the host does not check combo values against their list): an uploaded
    file, an absolute path and '..' are refused with one message, existing or not."""
    from host_harness import PromptError

    fake = tmp_path / "uploaded.onnx"
    fake.write_bytes(b"\x08\x07uploaded")
    uploaded = server.base / "input" / server.upload(fake)
    assert uploaded.is_file()
    detection = server.models / "detection"
    up = os.path.relpath(uploaded, detection)
    names = [str(uploaded), str(uploaded.with_name("never_uploaded.onnx")), up,
             up.replace("uploaded.onnx", "never_uploaded.onnx"), "/etc/passwd", "/etc/no_such_file"]
    seen = set()
    for name in names:
        prompt = {
            "1": {"class_type": "WAK_PoseModelLoader",
                  "inputs": {"detector": name, "pose_model": "tiny_vitpose_wholebody.onnx", "device": "cpu",
                             "batch_size": 0, "bgr_like_official": False}},
            "2": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": 1, "color": 0}},
            "3": {"class_type": "WAK_PoseExtract",
                  "inputs": {"pose_models": ["1", 0], "images": ["2", 0], "person": "largest", "smoothing": 0.0,
                             "missing_frames": "hold", "chunk_frames": 8}},
            "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 1]}},
        }
        with pytest.raises(PromptError) as err:
            server.run_prompt(prompt, timeout=300)
        body = err.value.body
        assert body.get("node_type") == "WAK_PoseModelLoader", body
        text = body["exception_message"]
        assert "Pose Models: input 'detector':" in text and "refused" in text, text
        seen.add(text.replace(name, "<name>"))
    assert len(seen) == 1, seen


@pytest.mark.parametrize("prefix", ["../../escape", "absolute"])
def test_save_prompt_embedding_prefix_stays_in_its_folder(model_roots, prefix, tmp_path):
    import folder_paths
    from wan_animate_kit.nodes.common import InputError
    from wan_animate_kit.nodes.embeds import SavePromptEmbedding

    outside = tmp_path / "outside_the_output_folder"
    outside.mkdir()
    if prefix == "absolute":
        prefix = str(outside / "escape")
    cond = [[torch.zeros(1, 2, 8), {}]]
    with pytest.raises(InputError) as err:
        SavePromptEmbedding.execute(conditioning=cond, filename_prefix=prefix)
    assert str(err.value).startswith("Save Prompt Embedding: input 'filename_prefix':"), err.value
    assert not list(pathlib.Path(folder_paths.get_output_directory()).parent.rglob("escape_*"))
    assert not list(outside.glob("escape*"))
