"""The command-line client (cli.py) against a real ComfyUI server, plus its server-free paths.

The shipped workflows are not needed: the tests write a small API workflow of core nodes that
follows the CLI's title convention (LoadVideo "Driving video" -> GetVideoComponents -> ImageBatch
with LoadImage "Character image" -> CreateVideo (source fps and audio) -> SaveVideo "Save video").
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

import av
import cv2
import numpy as np
import pytest
from media import ramp, write_mp4

from wan_animate_kit import cli
from wan_animate_kit.models import manifest as mf

ROOT = pathlib.Path(__file__).resolve().parents[2]
FRAMES, FPS, W, H = 10, 8, 64, 48
CHAR_BGR = (0, 0, 255)  # pure red character image


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_video(path: pathlib.Path, frames: int = FRAMES, fps: int = FPS, audio: bool = True) -> pathlib.Path:
    """A short grey-ramp h264 mp4 (with a 440 Hz AAC track when ``audio``)."""
    return write_mp4(path, ramp(frames, W, H, start=40, step=15), fps, audio_hz=440 if audio else None)


def write_image(path: pathlib.Path) -> pathlib.Path:
    img = np.zeros((30, 40, 3), np.uint8)
    img[:] = CHAR_BGR
    assert cv2.imwrite(str(path), img)
    return path


def api_workflow(**changes) -> dict:
    wf = {
        "1": {"class_type": "LoadVideo", "inputs": {"file": "placeholder.mp4"}, "_meta": {"title": "Driving video"}},
        "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}, "_meta": {"title": "Video parts"}},
        "3": {"class_type": "LoadImage", "inputs": {"image": "placeholder.png"}, "_meta": {"title": "Character image"}},
        "4": {"class_type": "ImageBatch", "inputs": {"image1": ["2", 0], "image2": ["3", 0]},
              "_meta": {"title": "Frames + character"}},
        "5": {"class_type": "CreateVideo", "inputs": {"images": ["4", 0], "fps": ["2", 2], "audio": ["2", 1]},
              "_meta": {"title": "Make video"}},
        "6": {"class_type": "SaveVideo", "inputs": {"video": ["5", 0], "filename_prefix": "wak_cli_test/out",
                                                     "format": "mp4", "codec": "h264"},
              "_meta": {"title": "Save video"}},
    }
    for nid, node in changes.items():
        if node is None:
            wf.pop(nid, None)
        else:
            wf[nid] = node
    return wf


@pytest.fixture()
def media(tmp_path):
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps(api_workflow()))
    return {"video": write_video(tmp_path / "drive.mp4"), "image": write_image(tmp_path / "hero.png"), "wf": wf,
            "dir": tmp_path}


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# --- against the real host -----------------------------------------------------------------------
@pytest.mark.host
def test_animate_writes_video_with_source_fps_and_character(server, media, capsys, monkeypatch):
    monkeypatch.chdir(media["dir"])
    code, out, err = run_cli(capsys, "animate", "--character", media["image"], "--driving", media["video"],
                             "--server", server.url, "--workflow", media["wf"], "--timeout", "120")
    assert code == 0, err
    result = media["dir"] / "drive_animate.mp4"  # default: <driving stem>_<mode>.mp4 in the cwd
    assert out.strip() == str(result)
    assert "running: Make video" in err and "running: Save video" in err  # progress names nodes by title
    with av.open(str(result)) as c:
        v = c.streams.video[0]
        assert float(v.average_rate) == pytest.approx(FPS)
        assert (v.codec_context.width, v.codec_context.height) == (W, H)
        assert len(c.streams.audio) == 1  # the source audio went through CreateVideo
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == FRAMES + 1  # the driving frames plus the uploaded character image
    last, first = frames[-1].reshape(-1, 3).mean(0), frames[0].reshape(-1, 3).mean(0)
    assert last[0] > 180 and last[1] < 60 and last[2] < 60, last  # red: the character image
    assert abs(first[0] - first[1]) < 10, first  # grey: a driving frame


def rate_workflow(fps: float = 30.0) -> dict:
    """The test workflow with the driving video resampled by WAK_DrivingVideo (fps and audio from it)."""
    return api_workflow(**{
        "7": {"class_type": "WAK_DrivingVideo", "inputs": {"video": ["1", 0], "fps": fps},
              "_meta": {"title": "Driving rate"}},
        "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["7", 0]}, "_meta": {"title": "Video parts"}},
        "5": {"class_type": "CreateVideo", "inputs": {"images": ["4", 0], "fps": ["7", 1], "audio": ["7", 3]},
              "_meta": {"title": "Make video"}}})


@pytest.mark.host
@pytest.mark.parametrize("fps,frames,rate", [(None, int(FRAMES / FPS * 30), 30), ("source", FRAMES, FPS),
                                             ("24", int(FRAMES / FPS * 24), 24)])
def test_fps_resamples_the_driving_video(server, media, capsys, monkeypatch, fps, frames, rate):
    monkeypatch.chdir(media["dir"])
    wf = media["dir"] / "rate.json"
    wf.write_text(json.dumps(rate_workflow()))
    out = media["dir"] / "rate.mp4"
    argv = ["animate", "--character", media["image"], "--driving", media["video"], "--server", server.url,
            "--workflow", wf, "--timeout", "120", "--out", out] + (["--fps", fps] if fps else [])
    code, _, err = run_cli(capsys, *argv)
    assert code == 0, err
    with av.open(str(out)) as c:
        assert c.streams.video[0].average_rate == rate and len(c.streams.audio) == 1
        got = [f.to_ndarray(format="rgb24")[0, 0, 0] for f in c.decode(video=0)]
    assert len(got) == frames + 1  # the resampled driving frames plus the character image
    # the 8 fps ramp (40 + 15 k) at 30 fps: frame i shows source frame round(i / 30 * 8)
    want = [40 + 15 * min(round(i / rate * FPS), FRAMES - 1) for i in range(frames)]
    assert np.abs(np.array(got[:-1], float) - want).max() <= 6


def test_fps_option_parsing_and_filling():
    assert [cli.fps_arg(v) for v in ("30", "29.97", "source", "SOURCE", "0", "-1", "240")] == \
        [30.0, 29.97, 0.0, 0.0, 0.0, 0.0, 240.0]
    for bad in ("fast", "-2", "241", "nan", "inf"):
        with pytest.raises(argparse.ArgumentTypeError, match="--fps"):
            cli.fps_arg(bad)
    wf = rate_workflow(30.0)
    assert cli.fill_workflow(wf, "a.png", "b.mp4", fps=0.0)["7"]["inputs"]["fps"] == 0.0
    assert cli.fill_workflow(wf, "a.png", "b.mp4")["7"]["inputs"]["fps"] == 30.0  # left out: the workflow's
    assert wf["7"]["inputs"]["fps"] == 30.0
    with pytest.raises(cli.CliError, match="--fps was given but .* no WAK_DrivingVideo"):
        cli.fill_workflow(api_workflow(), "a.png", "b.mp4", fps=30.0)


def test_fps_errors_exit_2_before_any_server(media, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["animate", "--character", str(media["image"]), "--driving", str(media["video"]), "--fps", "x"])
    assert e.value.code == 2 and "--fps must be" in capsys.readouterr().err
    code, _, err = run_cli(capsys, "animate", "--character", media["image"], "--driving", media["video"],
                           "--server", "http://127.0.0.1:9", "--workflow", media["wf"], "--fps", "30")
    assert code == 2 and "no WAK_DrivingVideo" in err


@pytest.mark.host
def test_missing_model_names_folder_and_url(server, media, capsys, monkeypatch):
    monkeypatch.chdir(media["dir"])  # a wrongly finished run would write its video to the cwd
    wf = media["dir"] / "wf_vae.json"
    wf.write_text(json.dumps(api_workflow(**{"7": {"class_type": "VAELoader",
                                                   "inputs": {"vae_name": "wan_2.1_vae.safetensors"},
                                                   "_meta": {"title": "Load VAE"}}})))
    code, _, err = run_cli(capsys, "replace", "--character", media["image"], "--driving", media["video"],
                           "--server", server.url, "--workflow", wf)
    assert code == 2
    vae = mf.find_entry("wan_2.1_vae.safetensors")
    # the server's own absolute folder (its GET /experiment/models), not a generic ComfyUI/models
    folders = {f["name"]: f["folders"] for f in server.get_json("/experiment/models")}
    assert os.path.isabs(folders["vae"][0]) and os.path.isabs(folders["detection"][0])
    assert f"wan_2.1_vae.safetensors: put it in {os.path.join(mf.preferred_folder('vae', folders['vae']), '')}" in err
    assert vae.url in err
    assert "ComfyUI/models" not in err and "Traceback" not in err
    # the same through `check --server`: the detection models are missing too, named with their folder
    code, _, err = run_cli(capsys, "check", "--server", server.url, "--for", "animate")
    assert code == 2
    assert f"yolov10m.onnx: put it in {os.path.join(mf.preferred_folder('detection', folders['detection']), '')}" in err
    dit = os.path.join(mf.preferred_folder("diffusion_models", folders["diffusion_models"]), "")
    assert dit.endswith(f"{os.sep}diffusion_models{os.sep}") and f"put it in {dit}" in err  # not the legacy unet
    assert mf.find_entry("yolov10m.onnx").url in err and "ComfyUI/models" not in err


@pytest.mark.host
def test_refused_prompt_is_reported_by_node_title_and_input(server, media, capsys):
    bad = api_workflow(**{"5": {"class_type": "CreateVideo", "inputs": {"images": ["4", 0], "fps": 500.0},
                                "_meta": {"title": "Make video"}}})
    wf = media["dir"] / "wf_bad.json"
    wf.write_text(json.dumps(bad))
    code, _, err = run_cli(capsys, "animate", "--character", media["image"], "--driving", media["video"],
                           "--server", server.url, "--workflow", wf)
    assert code == 2
    assert 'node "Make video" (CreateVideo, id 5), input "fps"' in err
    assert "bigger than max" in err.lower() and "Traceback" not in err


@pytest.mark.host
def test_failing_node_is_reported_readably(server, media, capsys):
    broken = media["dir"] / "broken.mp4"
    broken.write_bytes(b"this is not a video" * 50)
    code, _, err = run_cli(capsys, "animate", "--character", media["image"], "--driving", broken,
                           "--server", server.url, "--workflow", media["wf"], "--timeout", "120")
    assert code == 2
    assert "The workflow failed in node" in err and "Traceback" not in err


@pytest.mark.host
def test_unknown_node_class_is_reported(server, media, capsys):
    wf = media["dir"] / "wf_unknown.json"
    wf.write_text(json.dumps(api_workflow(**{"7": {"class_type": "WAK_NoSuchNode", "inputs": {},
                                                   "_meta": {"title": "Mystery"}}})))
    code, _, err = run_cli(capsys, "animate", "--character", media["image"], "--driving", media["video"],
                           "--server", server.url, "--workflow", wf)
    assert code == 2
    assert "WAK_NoSuchNode (used by: Mystery)" in err and "Install Wan-Animate Kit" in err


# --- without a host ------------------------------------------------------------------------------
def test_unreachable_server(media, capsys):
    url = f"http://127.0.0.1:{_free_port()}"
    code, _, err = run_cli(capsys, "animate", "--character", media["image"], "--driving", media["video"],
                           "--server", url, "--workflow", media["wf"])
    assert code == 2
    assert f"Cannot reach a ComfyUI server at {url}" in err and "scripts/launch.py" in err
    assert "Traceback" not in err


def test_missing_inputs_and_bad_workflows(media, capsys):
    code, _, err = run_cli(capsys, "animate", "--character", media["dir"] / "nope.png", "--driving",
                           media["video"], "--server", "http://127.0.0.1:9", "--workflow", media["wf"])
    assert code == 2 and "nope.png does not exist" in err
    code, _, err = run_cli(capsys, "replace", "--character", media["image"], "--driving", media["dir"] / "x.mp4",
                           "--server", "http://127.0.0.1:9")
    assert code == 2 and "x.mp4 does not exist" in err
    ui = media["dir"] / "ui.json"
    ui.write_text(json.dumps({"nodes": [], "links": [], "version": 0.4}))
    code, _, err = run_cli(capsys, "animate", "--character", media["image"], "--driving", media["video"],
                           "--server", "http://127.0.0.1:9", "--workflow", ui)
    assert code == 2 and "UI workflow" in err and "API format" in err
    untitled = media["dir"] / "untitled.json"
    untitled.write_text(json.dumps(api_workflow(**{"6": None})))
    code, _, err = run_cli(capsys, "animate", "--character", media["image"], "--driving", media["video"],
                           "--server", "http://127.0.0.1:9", "--workflow", untitled)
    assert code == 2 and 'no node titled "Save video"' in err
    code, _, err = run_cli(capsys, "animate", "--character", media["image"], "--driving", media["video"],
                           "--server", "http://127.0.0.1:9", "--workflow", media["wf"], "--seed", "3")
    assert code == 2 and 'no node titled "Seed"' in err


def test_fill_workflow_sets_titled_inputs():
    wf = api_workflow(**{
        "8": {"class_type": "CLIPTextEncode", "inputs": {"text": "old", "clip": ["9", 0]},
              "_meta": {"title": "Positive prompt"}},
        "9": {"class_type": "WAK_AnimateSampler", "inputs": {"seed": 1, "steps": 4}, "_meta": {"title": "Seed"}}})
    filled = cli.fill_workflow(wf, "hero.png", "drive.mp4", "a robot dancing", 1234)
    assert filled["3"]["inputs"]["image"] == "hero.png" and filled["1"]["inputs"]["file"] == "drive.mp4"
    assert filled["8"]["inputs"]["text"] == "a robot dancing" and filled["9"]["inputs"]["seed"] == 1234
    assert wf["9"]["inputs"]["seed"] == 1 and wf["3"]["inputs"]["image"] == "placeholder.png"  # input untouched
    unchanged = cli.fill_workflow(wf, "a.png", "b.mp4")
    assert unchanged["8"]["inputs"]["text"] == "old" and unchanged["9"]["inputs"]["seed"] == 1
    # no "Seed" title: the only sampler gets it
    wf["9"]["_meta"]["title"] = "Wan-Animate sampler"
    assert cli.fill_workflow(wf, "a.png", "b.mp4", seed=77)["9"]["inputs"]["seed"] == 77
    wf["10"] = {"class_type": "KSampler", "inputs": {"seed": 5}}
    assert cli.fill_workflow(wf, "a.png", "b.mp4", seed=78)["9"]["inputs"]["seed"] == 78
    wf["11"] = {"class_type": "WAK_AnimateSampler", "inputs": {"seed": 5}}
    with pytest.raises(cli.CliError, match="no node titled \"Seed\""):
        cli.fill_workflow(wf, "a.png", "b.mp4", seed=79)
    two = api_workflow(**{"7": {"class_type": "LoadImage", "inputs": {}, "_meta": {"title": "Character image"}}})
    with pytest.raises(cli.CliError, match="2 nodes titled"):
        cli.fill_workflow(two, "a.png", "b.mp4")


def test_output_items_accepts_images_or_videos_key():
    item = {"filename": "out_00001_.mp4", "subfolder": "v", "type": "output"}
    assert cli.output_items({"outputs": {"6": {"images": [item], "animated": [True]}}}, "6") == [item]
    assert cli.output_items({"outputs": {"6": {"videos": [item]}}}, "6") == [item]
    assert cli.output_items({"outputs": {"5": {"images": [item]}}}, "6") == []


FAKE_HOST = textwrap.dedent("""
    import http.server, subprocess, sys
    port = int(sys.argv[sys.argv.index("--port") + 1])
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    open(sys.argv[1], "w").write(str(child.pid))
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.send_header("Content-Type", "application/json"); self.end_headers()
            self.wfile.write(b"{}")
        def log_message(self, *a): pass
    http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie still answers kill(0); treat it as gone
        return pathlib.Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_local_host_starts_and_stops_process_group(tmp_path):
    script = tmp_path / "fake_launch.py"
    script.write_text(FAKE_HOST)
    pidfile = tmp_path / "child.pid"
    port = _free_port()
    host = cli.LocalHost([sys.executable, str(script), str(pidfile), "--port", str(port)], port=port, start_timeout=30,
                         log_dir=tmp_path)
    with host:
        with urllib.request.urlopen(host.url + "/system_stats", timeout=5) as r:
            assert r.status == 200
        child = int(pidfile.read_text())
        assert _alive(child)
    assert host.proc.poll() is not None
    for _ in range(50):
        if not _alive(child):
            break
        time.sleep(0.1)
    assert not _alive(child), "the launcher's child (ComfyUI) was left running"


def test_local_host_that_exits_early_is_reported(tmp_path):
    script = tmp_path / "fail.py"
    script.write_text("import sys; print('ComfyUI could not start: no space left'); sys.exit(3)")
    host = cli.LocalHost([sys.executable, str(script)], start_timeout=30, log_dir=tmp_path)
    with pytest.raises(cli.CliError, match=r"(?s)exited with code 3.*no space left"):
        with host:
            pass


def test_module_entry_point_imports_no_comfy_or_torch(tmp_path):
    (tmp_path / "wan_animate_kit").symlink_to(ROOT, target_is_directory=True)
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    code = ("import sys, wan_animate_kit.cli as c; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'comfy', 'numpy', 'cv2', 'websocket')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-m", "wan_animate_kit.cli", "check", "--models-dir", str(tmp_path),
                        "--for", "animate"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"vitpose_h_wholebody_model.onnx: put it in {tmp_path / 'detection'}{os.sep}" in r.stderr
    assert "sam2_hiera_large.pt" not in r.stderr  # not used by the animate workflow


def test_script_runs_from_any_folder_whatever_the_pack_folder_is_called(tmp_path):
    """``python <pack>/cli.py`` from a folder outside the pack, the pack under another name and not
    importable as wan_animate_kit: no module error, the real absolute models folder in the message."""
    pack = tmp_path / "wan-animate-kit"  # what `git clone` of the repository URL makes
    pack.symlink_to(ROOT, target_is_directory=True)
    cwd, models = tmp_path / "elsewhere", tmp_path / "my models"
    cwd.mkdir()
    models.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "COMFYUI_DIR", "COMFYUI_MODELS_DIR")}
    for models_arg in (str(models), os.path.relpath(models, cwd)):  # absolute or relative to the cwd
        r = subprocess.run([sys.executable, str(pack / "cli.py"), "check", "--models-dir", models_arg,
                            "--for", "replace"], env=env, cwd=cwd, capture_output=True, text=True, timeout=60)
        assert r.returncode == 2, r.stdout + r.stderr
        assert "No module named" not in r.stderr and "Traceback" not in r.stderr
        assert f"missing models: put them in {models}," in r.stderr
        assert f"sam2_hiera_large.pt: put it in {models / 'sam2'}{os.sep}" in r.stderr
        assert f"python {pack / 'cli.py'} download --models-dir {models} " in r.stderr  # the form that works
    r = subprocess.run([sys.executable, str(pack / "cli.py"), "--help"], env=env, cwd=cwd, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and f"usage: python {pack / 'cli.py'}" in r.stdout


def test_refusal_of_a_missing_model_adds_folder_and_url():
    """The host's answer when a loader's file is not in its list (shape recorded from ComfyUI 0.3.75)."""
    body = {"error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                      "details": "", "extra_info": {}},
            "node_errors": {"1": {"class_type": "UNETLoader", "dependent_outputs": ["2"], "errors": [{
                "type": "value_not_in_list", "message": "Value not in list",
                "details": "unet_name: 'wan2.2_animate_14B_bf16.safetensors' not in ['tiny.safetensors']",
                "extra_info": {"input_name": "unet_name", "received_value": "wan2.2_animate_14B_bf16.safetensors"}}]}}}
    prompt = {"1": {"class_type": "UNETLoader", "inputs": {}, "_meta": {"title": "DiT"}}}
    msg = cli.node_errors_message(body, prompt)
    entry = mf.find_entry("wan2.2_animate_14B_bf16.safetensors")
    assert msg.startswith("The ComfyUI server refused the workflow: Prompt outputs failed validation")
    assert 'node "DiT" (UNETLoader, id 1), input "unet_name": Value not in list' in msg
    assert "ComfyUI/models/diffusion_models/" in msg and entry.url in msg  # the server did not say where
    # with the server's folders (its GET /experiment/models): the first one, where new files go
    msg = cli.node_errors_message(body, prompt, {"diffusion_models": ["/srv/models/unet", "/srv/models/diffusion_models"]})
    assert f"put it in {os.path.join('/srv/models/diffusion_models', '')} (download: {entry.url})" in msg
    assert "ComfyUI/models" not in msg


def test_progress_lines_name_nodes_by_title():
    import io

    stream = io.StringIO()
    show = cli.Progress({"7": {"class_type": "WAK_AnimateSampler", "_meta": {"title": "Sampler"}},
                         "8": {"class_type": "VAEDecode", "inputs": {}}}, stream=stream)
    show.node("7")
    show.progress("7", 1, 12)
    show.progress("7", 12, 12)
    show.progress("8", 3, 3)  # untitled: its class
    show.progress("7.0.0.2", 2, 2)  # a node the sampler expanded into at run time: the sampler's title
    show.progress("99", 1, 1)
    show.done()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "running: Sampler"
    assert lines[1:] == ["  Sampler: 1/12", "  Sampler: 12/12", "  VAEDecode: 3/3", "  Sampler: 2/2", "  99: 1/1"]


def test_check_and_download_commands_without_network(tmp_path, capsys):
    for e in mf.models_for("animate"):
        (tmp_path / e.folder).mkdir(exist_ok=True)
        (tmp_path / e.folder / e.name).write_bytes(b"x")
    code, out, _ = run_cli(capsys, "check", "--models-dir", tmp_path, "--for", "animate")
    assert code == 0 and "has every model file for animate" in out
    code, _, err = run_cli(capsys, "check", "--models-dir", tmp_path, "--for", "replace")
    assert code == 2 and f"sam2_hiera_large.pt: put it in {tmp_path / 'sam2'}{os.sep}" in err
    assert "yolov10m.onnx" not in err
    code, _, err = run_cli(capsys, "download", "--models-dir", tmp_path, "no_such.onnx")
    assert code == 2 and "'no_such.onnx' is not in the model manifest" in err
    # files already there are kept without touching the network (the manifest has no checksum to compare)
    code, _, err = run_cli(capsys, "download", "--models-dir", tmp_path, "yolov10m.onnx")
    assert code == 0 and "already in" in err and (tmp_path / "detection" / "yolov10m.onnx").read_bytes() == b"x"


def test_for_choices_are_the_manifest_workflows():
    """`check/download --for` offers exactly the shipped workflows the manifest knows."""
    from wan_animate_kit.models import manifest

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in ("check", "download"):
        action = next(a for a in sub.choices[name]._actions if a.dest == "workflow_name")
        assert tuple(action.choices) == manifest.WORKFLOW_NAMES
