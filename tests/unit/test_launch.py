"""scripts/launch.py: which interpreter it installs into (never the one that runs it, outside a
user's ComfyUI), the models folder it uses, and what it tells the user before downloading.

Nothing here downloads: the commands launch.py would run are captured, and the one real virtual
environment is created from the local interpreter (ensurepip, no network)."""
from __future__ import annotations

import importlib.metadata
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import comfy_host  # noqa: E402
import launch  # noqa: E402


def _freeze() -> list[str]:
    return sorted(f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions())


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    """A fresh cache folder, no COMFYUI_DIR/COMFYUI_MODELS_DIR, the pack not inside a ComfyUI."""
    monkeypatch.setenv("WAN_ANIMATE_KIT_CACHE", str(tmp_path / "cache"))
    for name in ("COMFYUI_DIR", "COMFYUI_MODELS_DIR", launch.CHOSEN_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(comfy_host, "enclosing_comfyui", lambda: None)
    return tmp_path / "cache"


def _fake_comfyui(path: pathlib.Path) -> pathlib.Path:
    (path / "comfy").mkdir(parents=True)
    (path / "main.py").write_text("")
    (path / "nodes.py").write_text("")
    return path


def test_outside_comfyui_it_chooses_its_own_virtual_environment(cache, tmp_path, monkeypatch):
    py, why, create = launch.choose_python(None)
    assert py == cache / ".venv" / "bin" / "python" and create and "virtual environment" in why
    assert pathlib.Path(sys.executable) != py
    # --python wins; a missing interpreter is a clear error
    assert launch.choose_python(sys.executable)[:3:2] == (pathlib.Path(sys.executable), False)
    with pytest.raises(SystemExit, match="--python /no/such/python"):
        launch.choose_python("/no/such/python")
    # inside the user's ComfyUI (COMFYUI_DIR or the ComfyUI around the pack): that environment, as any custom node
    monkeypatch.setenv("COMFYUI_DIR", str(_fake_comfyui(tmp_path / "ComfyUI")))
    assert launch.choose_python(None) == (pathlib.Path(sys.executable),
                                          "your ComfyUI's environment (the interpreter you ran this with)", False)


def test_first_run_creates_the_venv_and_reruns_itself_there(cache, monkeypatch, capsys):
    """main() creates <cache>/.venv and re-executes launch.py with the venv's python (the process
    is replaced, so nothing after that runs in the system interpreter); pip there installs into the
    venv, and the system interpreter's packages stay as they were."""
    before = _freeze()
    calls = []

    def fake_execve(path, argv, env):
        calls.append((path, argv, env))
        raise SystemExit(0)

    monkeypatch.setattr(os, "execve", fake_execve)
    real_pip_install = comfy_host.pip_install
    monkeypatch.setattr(comfy_host, "pip_install", lambda *a, **k: pytest.fail("pip ran in the system interpreter"))
    with pytest.raises(SystemExit):
        launch.main(["--port", "8190", "--cpu"])
    venv_py = cache / ".venv" / "bin" / "python"
    assert len(calls) == 1
    path, argv, env = calls[0]
    assert path == str(venv_py) and argv[0] == str(venv_py)
    assert argv[1] == str(ROOT / "scripts" / "launch.py") and argv[2:] == ["--port", "8190", "--cpu"]
    assert env[launch.CHOSEN_ENV] == str(venv_py)
    # the venv is real and isolated: its pip installs under the venv, not the system site-packages
    probe = subprocess.run([str(venv_py), "-c", "import sys, sysconfig; print(sys.prefix != sys.base_prefix); "
                            "print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True)
    isolated, purelib = probe.stdout.split()
    assert isolated == "True" and pathlib.Path(purelib).resolve().is_relative_to((cache / ".venv").resolve())
    pip = subprocess.run([str(venv_py), "-m", "pip", "--version"], capture_output=True, text=True, check=True)
    assert str((cache / ".venv").resolve()) in str(pathlib.Path(pip.stdout.split(" from ")[1].split()[0]).resolve())
    # a second run finds the venv and does not create it again
    calls.clear()
    with pytest.raises(SystemExit):
        launch.main([])
    assert calls[0][0] == str(venv_py)
    assert "to be created" not in capsys.readouterr().err.splitlines()[-1]
    # the re-run (inside the venv) installs with sys.executable, which is then the venv's python
    captured = []
    monkeypatch.setattr(comfy_host.subprocess, "run", lambda cmd, **kw: captured.append(cmd))
    monkeypatch.setattr(comfy_host.sys, "executable", str(venv_py))
    monkeypatch.setattr(comfy_host, "torch_present", lambda: False)
    real_pip_install(["torch==2.14.1"])
    assert captured[0][:4] == [str(venv_py), "-m", "pip", "install"]
    assert _freeze() == before


def test_dry_run_states_the_downloads_and_the_models_folder(cache, tmp_path, monkeypatch, capsys):
    before = _freeze()
    models = tmp_path / "my models"
    assert launch.main(["--dry-run", "--models-dir", str(models)]) == 0
    err = capsys.readouterr().err
    assert f"Python: {cache / '.venv' / 'bin' / 'python'}" in err and "to be created" in err
    total = sum(gb for _, gb in launch.DOWNLOADS_GB.values())
    assert f"downloads about {total:.1f} GB" in err and "CUDA" in err
    assert f"models folder: {models}" in err
    assert not (cache / ".venv").exists() and _freeze() == before
    monkeypatch.setenv("COMFYUI_MODELS_DIR", str(tmp_path / "env models"))
    assert launch.main(["--dry-run"]) == 0
    assert f"models folder: {tmp_path / 'env models'}" in capsys.readouterr().err


def test_planned_downloads_only_lists_what_the_interpreter_lacks(tmp_path):
    have = launch.planned_downloads(pathlib.Path(sys.executable), pinned_needed=False)
    assert launch.DOWNLOADS_GB["torch"] not in have  # the test interpreter has torch
    assert launch.DOWNLOADS_GB["pinned"] in launch.planned_downloads(pathlib.Path(sys.executable), True)
    bare = tmp_path / "bare"
    import venv

    venv.EnvBuilder(with_pip=False).create(str(bare))
    need = launch.planned_downloads(bare / "bin" / "python", pinned_needed=False)
    assert need == [launch.DOWNLOADS_GB["torch"], launch.DOWNLOADS_GB["host"], launch.DOWNLOADS_GB["pack"]]


def test_models_dir_goes_into_an_extra_model_paths_yaml_the_host_reads_first(cache, tmp_path):
    """--models-dir DIR: the host's own extra_model_paths.yaml loader puts DIR/<folder> first for every
    folder (new files go there), the pack's own folders included; the launch is recorded for cli.py."""
    pinned = pathlib.Path.home() / ".cache" / "wan_animate_kit" / comfy_host.PINNED_DIRNAME
    fake = _fake_comfyui(tmp_path / "host")
    models = tmp_path / "weights"
    main_args, used = launch.prepare_base(fake, str(models))
    assert used == models and main_args[0] == "--extra-model-paths-config"
    yaml_path = pathlib.Path(main_args[1])
    text = yaml_path.read_text()
    assert "is_default: true" in text and "custom_nodes:" in text
    # without --models-dir: the host's models folder, no models section
    args2, used2 = launch.prepare_base(fake, None)
    assert used2 == fake / "models" and "base_path" not in pathlib.Path(args2[1]).read_text()
    launch.record_launch(fake, models, 8188)
    from wan_animate_kit import cli

    assert cli._default_models_dir() == models
    # the host's own loader (ComfyUI's utils/extra_config.py) reads the file as intended
    host = pinned if (pinned / "main.py").is_file() else None
    if host is None:
        pytest.skip("the pinned host is not unpacked")
    yaml_path.write_text(launch.extra_paths_yaml(cache / "base", cache / "base" / "custom_nodes", models))
    code = ("import sys, json; sys.argv = ['main.py']; import folder_paths, utils.extra_config as x; "
            f"x.load_extra_path_config({str(yaml_path)!r}); "
            "print(json.dumps({k: folder_paths.get_folder_paths(k) for k in "
            "('vae', 'diffusion_models', 'text_encoders', 'detection', 'sam2', 'custom_nodes')}))")
    r = subprocess.run([sys.executable, "-c", code], cwd=host, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=str(host)))
    assert r.returncode == 0, r.stderr
    import json

    got = json.loads(r.stdout.strip().splitlines()[-1])
    for folder in ("vae", "diffusion_models", "text_encoders", "detection", "sam2"):
        assert got[folder][0] == str(models / folder), (folder, got[folder])
    assert str(cache / "base" / "custom_nodes") in got["custom_nodes"]
