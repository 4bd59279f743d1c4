"""Install everything and start ComfyUI with Wan-Animate Kit and its workflows loaded.

    python scripts/launch.py [--port 8188] [--listen 127.0.0.1] [--cpu] [--no-start]

Uses your ComfyUI when it finds one (``COMFYUI_DIR``, or the ComfyUI whose ``custom_nodes`` holds
this pack), else the pinned ComfyUI 0.3.75 (see scripts/comfy_host.py), on the CPU when there is no
GPU. Installs torch 2.14.1 / torchvision 0.29.1 only when no torch is present.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import comfy_host  # noqa: E402

ROOT = comfy_host.ROOT
PACK_DIRNAME = "wan_animate_kit"


def prepare_base(host: pathlib.Path) -> tuple[list[str], pathlib.Path]:
    """Extra arguments for main.py and the models folder the user fills."""
    if comfy_host.enclosing_comfyui() == host:
        return [], host / "models"  # the pack is already in this ComfyUI's custom_nodes
    base = comfy_host.cache_dir() / "base"
    nodes_dir = base / "custom_nodes"
    nodes_dir.mkdir(parents=True, exist_ok=True)
    link = nodes_dir / PACK_DIRNAME
    if link.is_symlink() and link.resolve() != ROOT:
        link.unlink()
    if not link.exists():
        link.symlink_to(ROOT, target_is_directory=True)
    models = host / "models"
    yaml = base / "extra_model_paths.yaml"
    yaml.write_text(f"wan_animate_kit:\n  custom_nodes: {nodes_dir}\n")
    return ["--extra-model-paths-config", str(yaml)], models


def install_workflows(user_dir: pathlib.Path) -> None:
    """Copy the shipped UI workflows where the frontend's workflow browser lists them."""
    target = user_dir / "default" / "workflows" / "wan_animate_kit"
    target.mkdir(parents=True, exist_ok=True)
    (target / "models.json").unlink(missing_ok=True)  # left by older versions: not a workflow
    for wf in (ROOT / "workflows").glob("*.json"):
        if wf.name != "models.json":  # the model manifest is not a workflow
            shutil.copy2(wf, target / wf.name)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=8188)
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--cpu", action="store_true", help="force the CPU even when a GPU is present")
    ap.add_argument("--no-start", action="store_true", help="install and prepare only")
    args, extra = ap.parse_known_args(argv)

    comfy_host.ensure_torch()
    host = comfy_host.find_host()
    comfy_host.ensure_host_requirements(host)
    comfy_host.ensure_pack_requirements()
    main_args, models = prepare_base(host)
    install_workflows(host / "user")
    for sub in ("diffusion_models", "loras", "vae", "text_encoders", "clip_vision", "detection", "sam2"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    comfy_host.log(f"ComfyUI: {host}")
    comfy_host.log(f"put the models in {models}/<folder> (see README, workflows/models.json)")

    import torch

    cmd = [sys.executable, "main.py", "--listen", args.listen, "--port", str(args.port), *main_args, *extra]
    if args.cpu or not torch.cuda.is_available():
        cmd.append("--cpu")
        comfy_host.log("no CUDA GPU found: running on the CPU (very slow for sampling; fine for trying the graphs)")
    if args.no_start:
        comfy_host.log("prepared; start with: " + " ".join(cmd) + f"   (in {host})")
        return 0
    comfy_host.log(f"starting ComfyUI on http://{args.listen}:{args.port}")
    return subprocess.call(cmd, cwd=host, env=dict(os.environ, PYTHONUNBUFFERED="1"))


if __name__ == "__main__":
    raise SystemExit(main())
