"""Drive a real ComfyUI host from the tests: in-process (import its modules) or as a server.

The host is found by scripts/comfy_host.py: ``COMFYUI_DIR``, the ComfyUI the pack sits in, else
the pinned 0.3.75 tree downloaded into the cache.
"""
from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import comfy_host  # noqa: E402

PACK_DIRNAME = "wan_animate_kit"


def host_dir() -> pathlib.Path:
    host = comfy_host.find_host()
    comfy_host.ensure_host_requirements(host)
    return host


def import_in_process(host: pathlib.Path, cpu: bool = True) -> None:
    """Make the host's modules importable in this process, on the CPU (``cpu=False``: the host
    picks its device as it would when started without ``--cpu``)."""
    if "comfy.options" in sys.modules:
        return
    if str(host) not in sys.path:
        sys.path.insert(0, str(host))
    saved = sys.argv
    sys.argv = [saved[0]] + (["--cpu"] if cpu else [])
    try:
        import comfy.options

        comfy.options.enable_args_parsing()
        import comfy.cli_args  # noqa: F401  parses --cpu now
        import comfy.model_management  # noqa: F401
        import folder_paths  # noqa: F401
    finally:
        sys.argv = saved


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HostServer:
    """A ComfyUI server process with this pack loaded through an extra-model-paths YAML."""

    def __init__(self, host: pathlib.Path, base: pathlib.Path, models: pathlib.Path, extra_yaml: str = ""):
        self.host, self.base, self.models = host, base, models
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log_path = base / "host.log"
        nodes_dir = base / "custom_nodes"
        nodes_dir.mkdir(parents=True, exist_ok=True)
        link = nodes_dir / PACK_DIRNAME
        if not link.exists():
            link.symlink_to(ROOT, target_is_directory=True)
        for sub in ("input", "output", "temp", "user"):
            (base / sub).mkdir(exist_ok=True)
        # The frontend's first-run dialogs would cover screenshots.
        settings = base / "user" / "default" / "comfy.settings.json"
        settings.parent.mkdir(parents=True, exist_ok=True)
        if not settings.exists():
            settings.write_text(json.dumps({"Comfy.TutorialCompleted": True,
                                            "Comfy.Workflow.ShowMissingModelsWarning": False,
                                            "Comfy.Minimap.Visible": False}))
        # Empty files named like the real models let the host validate the shipped workflows.
        self.placeholders = base / "placeholder_models"
        self.yaml = base / "extra_model_paths.yaml"
        self.yaml.write_text(
            "wan_animate_kit_tests:\n"
            f"  base_path: {models}\n"
            f"  custom_nodes: {nodes_dir}\n"
            "  diffusion_models: diffusion_models\n"
            "  vae: vae\n"
            "  loras: loras\n"
            "  detection: detection\n"
            "  sam2: sam2\n"
            "  clip_vision: clip_vision\n"
            "  text_encoders: text_encoders\n"
            "  prompt_embeds: prompt_embeds\n"
            "wan_animate_kit_placeholders:\n"
            f"  base_path: {self.placeholders}\n"
            "  diffusion_models: diffusion_models\n  vae: vae\n  loras: loras\n  detection: detection\n"
            "  sam2: sam2\n  clip_vision: clip_vision\n  text_encoders: text_encoders\n" + extra_yaml)

    def start(self, timeout: float = 240.0) -> "HostServer":
        cmd = [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
               "--disable-api-nodes", "--disable-auto-launch", "--extra-model-paths-config", str(self.yaml),
               "--input-directory", str(self.base / "input"), "--output-directory", str(self.base / "output"),
               "--temp-directory", str(self.base / "temp"), "--user-directory", str(self.base / "user"),
               "--database-url", "sqlite:///:memory:"]
        self._log = open(self.log_path, "w")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(cmd, cwd=self.host, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited early ({self.proc.returncode}):\n{self.log()[-4000:]}")
            try:
                self.get_json("/system_stats", timeout=2)
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"ComfyUI did not answer within {timeout}s:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # --- HTTP -----------------------------------------------------------------------------
    def get_json(self, route: str, timeout: float = 30):
        with urllib.request.urlopen(self.url + route, timeout=timeout) as r:
            return json.loads(r.read())

    def get_bytes(self, route: str, timeout: float = 60) -> bytes:
        with urllib.request.urlopen(self.url + route, timeout=timeout) as r:
            return r.read()

    def post_json(self, route: str, payload: dict, timeout: float = 60):
        req = urllib.request.Request(self.url + route, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def upload(self, path: pathlib.Path, kind: str = "input") -> str:
        import requests

        with open(path, "rb") as f:
            r = requests.post(self.url + "/upload/image", files={"image": (path.name, f)},
                              data={"type": kind, "overwrite": "true"}, timeout=60)
        r.raise_for_status()
        return r.json()["name"]

    def run_prompt(self, prompt: dict, timeout: float = 900) -> dict:
        """Queue an API-format prompt, follow it on the websocket, return its history entry."""
        import websocket

        client_id = uuid.uuid4().hex
        ws = websocket.create_connection(f"ws://127.0.0.1:{self.port}/ws?clientId={client_id}", timeout=timeout)
        try:
            status, body = self.post_json("/prompt", {"prompt": prompt, "client_id": client_id})
            if status != 200:
                raise PromptError(body)
            prompt_id = body["prompt_id"]
            self.messages = []
            while True:
                raw = ws.recv()
                if not isinstance(raw, str):
                    continue
                msg = json.loads(raw)
                self.messages.append(msg)
                data = msg.get("data", {})
                if data.get("prompt_id") not in (None, prompt_id):
                    continue
                if msg["type"] == "execution_error":
                    raise PromptError(data)
                if msg["type"] == "execution_interrupted":
                    raise PromptError({"interrupted": data})
                if msg["type"] == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
                    break
        finally:
            ws.close()
        return self.get_json(f"/history/{prompt_id}")[prompt_id]


class PromptError(RuntimeError):
    def __init__(self, body):
        super().__init__(json.dumps(body, indent=1)[:6000])
        self.body = body
