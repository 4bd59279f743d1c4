"""The shipped workflows: API twins, the real frontend, and end-to-end runs on the real server."""
import json
import os
import pathlib
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.host

ROOT = pathlib.Path(__file__).resolve().parents[2]
WF = ROOT / "workflows"
NAMES = ["animate", "animate_fast", "replace", "replace_fast", "replace_two"]
sys.path.insert(0, str(ROOT / "scripts"))


@pytest.fixture(scope="module")
def object_info(server):
    return server.get_json("/object_info")


@pytest.mark.parametrize("name", NAMES)
def test_api_twin_equals_the_converted_ui_graph(name, object_info):
    from ui_to_api import convert

    ui = json.loads((WF / f"{name}.json").read_text())
    api = json.loads((WF / "api" / f"{name}.json").read_text())
    assert convert(ui, object_info) == api


@pytest.mark.parametrize("name", NAMES)
def test_workflows_use_only_core_and_pack_nodes(name, object_info):
    ui = json.loads((WF / f"{name}.json").read_text())
    for node in ui["nodes"]:
        t = node["type"]
        if t in ("MarkdownNote", "Note"):
            continue
        assert t in object_info, t
        module = object_info[t]["python_module"]
        assert module in ("nodes",) or module.startswith("comfy_extras") or module.startswith("comfy_api") \
            or "wan_animate_kit" in module, f"{t} comes from {module}"
    loaders = [n for n in ui["nodes"] if n["type"] in ("UNETLoader", "VAELoader", "CLIPLoader", "CLIPVisionLoader",
                                                      "LoraLoaderModelOnly", "WAK_RelightLoRA",
                                                      "WAK_PoseModelLoader", "WAK_Sam2Loader")]
    for node in loaders:
        models = node["properties"].get("models")
        assert models and all(m["name"] and m["directory"] for m in models), node["type"]


# --- the real frontend ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser(server):
    from frontend_driver import Browser, chromium_path

    binary = chromium_path()
    if binary is None:
        pytest.skip("Chromium is not installed (scripts/test.sh installs it with apt)")
    b = Browser(binary)
    try:
        b.open(server.url)
        b.quiet_frontend()  # no "Introducing Nodes 2.0" banner, no source badges over group titles
        yield b
    finally:
        b.close()


@pytest.fixture
def placeholders(server):
    """Empty model files a test creates (see _placeholder_models), removed afterwards so other tests
    on the same server still see those models as missing."""
    made: list[pathlib.Path] = []
    yield made
    for p in made:
        p.unlink(missing_ok=True)


def _placeholder_models(server, prompt, made: list):
    """Empty files with the real model names, and real input media, so the host validates the prompt."""
    from models_for_prompt import write_inputs

    write_inputs(server.base / "input")
    for node in prompt.values():
        for key, value in node["inputs"].items():
            if isinstance(value, str) and value.endswith((".safetensors", ".onnx", ".pt", ".ckpt")):
                folder = {"unet_name": "diffusion_models", "vae_name": "vae", "clip_name": "text_encoders",
                          "lora_name": "loras", "detector": "detection", "pose_model": "detection",
                          "checkpoint": "sam2"}.get(key)
                if node["class_type"] == "CLIPVisionLoader":
                    folder = "clip_vision"
                if folder:
                    p = server.placeholders / folder / value
                    p.parent.mkdir(parents=True, exist_ok=True)
                    if not p.exists():
                        p.write_bytes(b"")
                        made.append(p)


@pytest.mark.parametrize("name", NAMES)
def test_ui_workflow_loads_in_the_frontend_and_queues(name, server, browser, object_info, tmp_path, placeholders):
    """Each shipped UI workflow loads in the real frontend, converts to its API twin and queues.
    Screenshots (README docs/images: ``WAK_SCREENSHOTS=docs/images bash scripts/test.sh -k
    test_ui_workflow_loads``): 100 % zoom, a workflow tab named after the workflow, no banner or
    toast, the whole window as ``<name>.png`` and each group alone as ``<name>-<k>.png``."""
    import struct

    from frontend_driver import load_workflow, take_screenshots

    ui = json.loads((WF / f"{name}.json").read_text())
    api = json.loads((WF / "api" / f"{name}.json").read_text())
    _placeholder_models(server, api, placeholders)
    browser.evaluate("window.app.refreshComboInNodes ? window.app.refreshComboInNodes() : null; true")
    result = load_workflow(browser, ui, name)
    assert result["missing"] == [] and result["bad"] == []
    assert result["count"] == len(ui["nodes"])
    fe = result["prompt"]
    for node in fe.values():  # frontend-only widgets (e.g. LoadVideo's 'video-preview') are not host inputs
        spec = object_info[node["class_type"]]["input"]
        known = set(spec.get("required", {})) | set(spec.get("optional", {}))
        node["inputs"] = {k: v for k, v in node["inputs"].items() if k in known}
    diff = {k: (api.get(k), fe.get(k)) for k in set(api) | set(fe) if api.get(k) != fe.get(k)}
    assert not diff, diff  # the frontend's own conversion equals the shipped API twin
    shots = pathlib.Path(os.environ.get("WAK_SCREENSHOTS", tmp_path))
    for old in shots.glob(f"{name}-*.png"):  # group images of an older layout
        if old.stem[len(name) + 1:].isdigit():
            old.unlink()
    paths = take_screenshots(browser, shots, name)
    groups = browser.evaluate("(window.app.graph._groups || []).map(g => Array.from(g._bounding, Math.round))")
    assert len(paths) == 1 + len(groups) >= 2
    state = browser.evaluate("""(() => ({scale: window.app.canvas.ds.scale,
        tab: window.app.extensionManager.workflow.activeWorkflow.filename,
        tabs: window.app.extensionManager.workflow.openWorkflows.length,
        toasts: document.querySelectorAll('.p-toast-message').length,
        banner: document.body.innerText.includes('Introducing Nodes 2.0')}))()""")
    assert state == {"scale": 1, "tab": name, "tabs": 1, "toasts": 0, "banner": False}, state

    def png_size(path):
        with open(path, "rb") as f:
            head = f.read(24)
        assert head[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000, path
        return struct.unpack(">II", head[16:24])

    full_w, full_h = png_size(paths[0])
    assert full_w >= max(g[0] + g[2] for g in groups) and full_h >= max(g[1] + g[3] for g in groups)  # all at 100 %
    for path, (_, _, gw, gh) in zip(paths[1:], groups):  # each group at 100 %: at least its size plus the margin
        w, h = png_size(path)
        assert gw + 14 <= w < full_w and gh + 14 <= h < full_h, (path, w, h, gw, gh)
    status, body = server.post_json("/prompt", {"prompt": result["prompt"], "client_id": "frontend-test"})
    try:
        assert status == 200 and not body.get("node_errors"), body
    finally:
        server.post_json("/queue", {"clear": True})
        server.post_json("/interrupt", {})


# --- end to end on the server with the tiny models ---------------------------------------------------
def _run_and_decode(server, prompt) -> tuple[np.ndarray, float, bool]:
    import av

    history = server.run_prompt(prompt, timeout=1200)
    save_id = next(k for k, v in prompt.items() if v["_meta"]["title"] == "Save video")
    out = history["outputs"][save_id]
    files = out.get("images") or out.get("videos") or []
    assert files, out
    f = files[0]
    path = server.base / "output" / f.get("subfolder", "") / f["filename"]
    assert path.is_file() and path.stat().st_size > 0
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(stream)])
        return frames, float(stream.average_rate), any(s.type == "audio" for s in c.streams)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_api_workflow_runs_end_to_end(name, server, tiny_models):
    """The shipped API workflow runs on the real server with the tiny models, gives exactly the
    driving video's frame count with sound, and its inputs reach the output: another character
    image gives other frames (a sampler that bypassed the model would return the same decoded
    noise for both, since the noise comes from the same seed)."""
    from models_for_prompt import CHARACTERS, FPS, FRAMES, tiny_prompt

    api = json.loads((WF / "api" / f"{name}.json").read_text())
    runs = []
    # replace_two chains two Replacement passes (twice the time); its own tests (test_replace_two.py)
    # show that pass A's output reaches pass B, and the sampler is the one checked here for the others
    for character in CHARACTERS[:1] if name == "replace_two" else CHARACTERS:
        frames, fps, audio = _run_and_decode(server, tiny_prompt(api, server, tiny_models, character))
        assert len(frames) == FRAMES
        assert np.std(frames.astype(np.float32)) > 1.0  # real (random-model) pixels, not a flat fill
        assert fps == pytest.approx(FPS, rel=1e-3)
        assert audio
        runs.append(frames.astype(np.float32))
    if len(runs) == 2:  # the character image reaches the output through the model
        per_frame = np.abs(runs[0] - runs[1]).mean(axis=(1, 2, 3))
        # a bypassed model gives the same decoded noise twice: exactly 0 on every frame
        assert per_frame.mean() > 0.5 and (per_frame > 0.01).mean() >= 0.75, per_frame


@pytest.mark.slow
def test_frames_output_off_stops_a_node_on_the_frames_output_with_a_message(server, tiny_models):
    """The shipped graphs stream the video to a file (frames_output off); a node wired to the
    sampler's frames output then stops with a message saying what to switch, also when the
    sampler's result comes from the host's cache."""
    from host_harness import PromptError
    from models_for_prompt import tiny_prompt

    prompt = tiny_prompt(json.loads((WF / "api" / "animate.json").read_text()), server, tiny_models)
    sampler = next(k for k, v in prompt.items() if v["class_type"] == "WAK_AnimateSampler")
    assert prompt[sampler]["inputs"]["frames_output"] is False
    prompt["900"] = {"class_type": "PreviewImage", "inputs": {"images": [sampler, 0]}, "_meta": {"title": "Preview"}}
    with pytest.raises(PromptError) as err:
        server.run_prompt(prompt, timeout=1200)
    body = err.value.body
    assert body["node_id"] == "900" and body["exception_type"] == "ExecutionBlocked"
    assert "frames_output" in body["exception_message"] and "Turn frames_output on" in body["exception_message"]
