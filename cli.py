"""Wan-Animate Kit from the command line: run a shipped workflow on a ComfyUI server.

    python <pack>/cli.py animate --character ME.png --driving DANCE.mp4
    python <pack>/cli.py replace --character ME.png --driving CLIP.mp4 --server http://127.0.0.1:8188
    python <pack>/cli.py check [--server URL | --models-dir DIR] [--for replace]
    python <pack>/cli.py download [--models-dir DIR] [--for animate] [NAME ...]

``<pack>`` is this folder, whatever it is called, from any working directory. Where the pack is
importable as ``wan_animate_kit`` (its folder has that name and its parent is on ``sys.path``, e.g.
``cd ComfyUI/custom_nodes``), ``python -m wan_animate_kit.cli ...`` works too.

``animate`` / ``replace`` options: ``--server URL`` (default: start a local ComfyUI with
``python scripts/launch.py --port <free port>``, the README's first command, and stop it at the
end), ``--out FILE`` (default ``<driving stem>_<mode>.mp4`` in the current folder),
``--workflow PATH`` (an API-format workflow instead of the shipped ``workflows/api/<mode>.json``),
``--fast`` (the ``<mode>_fast`` workflow: distill LoRA, few steps), ``--prompt TEXT``,
``--seed N``, ``--fps N|source``, ``--timeout S``.

What it does: checks the input files; checks that the server has the workflow's nodes and model
files (``GET /object_info/{class}``, ``GET /models/{folder}``; missing files are named with their
folder and download URL from ``workflows/models.json``); uploads the two inputs
(``POST /upload/image``, which takes videos too); fills the workflow; queues it (``POST /prompt``);
shows progress from the websocket (node title, value/max: the sampler's segments and steps show as
its progress); downloads the "Save video" node's file (``/history`` then ``/view``) to ``--out``.

Workflow convention (API format, ``{"<id>": {"class_type", "inputs", "_meta": {"title"}}}``): the
CLI finds its nodes by ``_meta.title``:

* ``"Character image"``: a LoadImage; the CLI sets ``inputs.image`` to the uploaded file name.
* ``"Driving video"``: a LoadVideo; the CLI sets ``inputs.file`` to the uploaded file name.
* ``"Save video"``: a SaveVideo whose output file the CLI downloads (the shipped workflows give
  the sampler the source fps and audio; the CLI just downloads).
* optional ``"Positive prompt"``: a CLIPTextEncode; ``--prompt`` sets ``inputs.text``.
* optional ``"Seed"``: the WAK_AnimateSampler (or any node with a ``seed``/``noise_seed`` input);
  ``--seed`` sets it. Without such a title, ``--seed`` goes to the workflow's only
  WAK_AnimateSampler, else its only node with a seed input.
* ``--fps`` sets the ``fps`` input of every WAK_DrivingVideo node (found by class, "Wan-Animate
  Driving Video (official 30 fps)"), which resamples the driving video as the official
  preprocessing does: 30 is the official rate (the node's default, what the workflow keeps when
  ``--fps`` is left out), ``source`` keeps every frame at the video's own rate.

The first three must appear exactly once. Errors the user can fix (unreachable server, missing
models, a workflow the server refuses or that fails, missing input files) end with exit code 2 and
one readable message, never a traceback.

``check`` and the missing-model errors name the real absolute folder each file goes in: the one
the server reports (``GET /experiment/models``), or ``--models-dir``; without either, the ComfyUI
this pack sits in, ``COMFYUI_DIR``, ``COMFYUI_MODELS_DIR``, the folder ``scripts/launch.py`` last
used, or the pinned host's ``models`` folder. ``download`` resumes an interrupted download.

Only the standard library is imported at import time (``websocket-client``, used for live
progress, is imported lazily and is optional); neither ``comfy`` nor ``torch`` is ever imported.
Nothing touches the network except the ComfyUI server, unless you run ``download``.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import mimetypes
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent
API_DIR = ROOT / "workflows" / "api"
MODES = ("animate", "replace")
TITLE_CHARACTER = "Character image"
TITLE_DRIVING = "Driving video"
TITLE_SAVE = "Save video"
TITLE_PROMPT = "Positive prompt"
TITLE_SEED = "Seed"
RATE_NODE = "WAK_DrivingVideo"
MAX_FPS = 240.0
EXIT_USER_ERROR = 2
# how to call this client in messages: the form that works from anywhere
PROG = "python -m wan_animate_kit.cli" if __package__ else f"python {os.path.abspath(__file__)}"


class CliError(Exception):
    """An error the user can fix: printed as one message, exit code 2."""


def _manifest():
    """The pack's models/manifest.py (imported lazily; works when run as a plain script too)."""
    if __package__:
        from .models import manifest
        return manifest
    name = "wan_animate_kit_manifest"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "models" / "manifest.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- HTTP client ---------------------------------------------------------------------------------
class Client:
    """A minimal ComfyUI HTTP client on urllib (no third-party dependency)."""

    def __init__(self, url: str, timeout: float = 30.0):
        url = url.strip().rstrip("/")
        if "://" not in url:
            url = "http://" + url
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise CliError(f"--server '{url}' is not an http(s) URL such as http://127.0.0.1:8188")
        self.url = url
        self.timeout = timeout
        self.client_id = uuid.uuid4().hex

    def _open(self, route: str, data: bytes | None = None, headers: dict | None = None, timeout: float | None = None):
        req = urllib.request.Request(self.url + route, data=data, headers=headers or {})
        return urllib.request.urlopen(req, timeout=timeout or self.timeout)

    def get_json(self, route: str, timeout: float | None = None) -> Any:
        with self._open(route, timeout=timeout) as r:
            return json.loads(r.read() or b"null")

    def post_json(self, route: str, payload: dict) -> tuple[int, Any]:
        data = json.dumps(payload).encode()
        try:
            with self._open(route, data, {"Content-Type": "application/json"}) as r:
                body = r.read()
                return r.status, json.loads(body) if body else {}
        except urllib.error.HTTPError as e:
            body = e.read()
            try:
                return e.code, json.loads(body) if body else {}
            except json.JSONDecodeError:
                return e.code, {"error": {"message": body.decode(errors="replace")[:500]}}

    def reachable(self) -> str | None:
        """None when ``/system_stats`` answers, else the reason."""
        try:
            self.get_json("/system_stats", timeout=5)
            return None
        except urllib.error.HTTPError as e:
            return f"HTTP {e.code} from /system_stats: is this a ComfyUI server?"
        except (urllib.error.URLError, OSError, ValueError) as e:
            return str(getattr(e, "reason", e))

    def upload(self, path: pathlib.Path) -> str:
        """Upload a file into the server's input folder; returns the name LoadImage/LoadVideo take."""
        boundary = uuid.uuid4().hex
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\ninput\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{path.name}\"\r\n"
                f"Content-Type: {ctype}\r\n\r\n").encode()
        body = head + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        try:
            with self._open("/upload/image", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"},
                            timeout=max(self.timeout, 300)) as r:
                info = json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise CliError(f"The server at {self.url} refused the upload of {path} (HTTP {e.code}).") from e
        name = info["name"]
        return f"{info['subfolder']}/{name}" if info.get("subfolder") else name

    def download(self, item: dict, out: pathlib.Path) -> None:
        query = urllib.parse.urlencode({"filename": item["filename"], "subfolder": item.get("subfolder", ""),
                                        "type": item.get("type", "output")})
        out.parent.mkdir(parents=True, exist_ok=True)
        part = out.with_name(out.name + ".part")
        try:
            with self._open(f"/view?{query}", timeout=max(self.timeout, 300)) as r, open(part, "wb") as f:
                while block := r.read(1 << 20):
                    f.write(block)
            os.replace(part, out)
        finally:
            part.unlink(missing_ok=True)


# --- local host ----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalHost:
    """A ComfyUI started for one run with the README's first command; stopped (whole process group) at the end."""

    def __init__(self, command: list[str] | None = None, port: int | None = None, start_timeout: float = 900.0,
                 log_dir: str | os.PathLike | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = command or [sys.executable, str(ROOT / "scripts" / "launch.py"), "--port", str(self.port)]
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self.log_path = pathlib.Path(log_dir or tempfile.gettempdir()) / f"wan_animate_kit_host_{self.port}.log"

    def log_tail(self, chars: int = 2500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def __enter__(self) -> "LocalHost":
        _say(f"starting a local ComfyUI: {' '.join(self.command)} (log: {self.log_path})")
        log = open(self.log_path, "w")
        try:
            self.proc = subprocess.Popen(self.command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         env=dict(os.environ, PYTHONUNBUFFERED="1"))
        finally:
            log.close()
        self._trap_sigterm()
        client = Client(self.url)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise CliError(f"The local ComfyUI ({' '.join(self.command)}) exited with code {self.proc.returncode} "
                               f"before answering. End of its log ({self.log_path}):\n{tail}")
            if client.reachable() is None:
                _say(f"local ComfyUI is up at {self.url}")
                return self
            time.sleep(0.5)
        self.stop()
        raise CliError(f"The local ComfyUI did not answer on {self.url} within {self.start_timeout:.0f} s "
                       f"(first start installs ComfyUI and its requirements; try again or start it yourself with "
                       f"`python scripts/launch.py` and pass --server). Log: {self.log_path}")

    def __exit__(self, *exc) -> None:
        self.stop()

    def _trap_sigterm(self) -> None:
        """Turn SIGTERM into KeyboardInterrupt while the host runs, so it is stopped, not orphaned."""
        self._old_sigterm = None
        if threading.current_thread() is threading.main_thread():
            def on_term(signum, frame):
                raise KeyboardInterrupt
            self._old_sigterm = signal.signal(signal.SIGTERM, on_term)

    def stop(self) -> None:
        if getattr(self, "_old_sigterm", None) is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)  # launch.py and the main.py it started share this group
            except (ProcessLookupError, PermissionError, AttributeError):
                proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError, AttributeError):
                    proc.kill()
                proc.wait()
        else:  # the launcher is gone; its child may still run in the group
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError, AttributeError):
                pass


# --- workflow ------------------------------------------------------------------------------------
def load_workflow(path: pathlib.Path) -> dict:
    """Read an API-format workflow and check the convention's titled nodes."""
    if not path.is_file():
        raise CliError(f"Workflow file not found: {path}.")
    try:
        prompt = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CliError(f"Workflow {path} is not valid JSON: {e}.") from e
    if isinstance(prompt, dict) and "nodes" in prompt and "links" in prompt:
        raise CliError(f"Workflow {path} is a UI workflow; the CLI needs the API format (in ComfyUI: "
                       "Workflow > Export (API)), like the files in workflows/api/.")
    if isinstance(prompt, dict) and isinstance(prompt.get("prompt"), dict):
        prompt = prompt["prompt"]
    if not isinstance(prompt, dict) or not prompt or not all(
            isinstance(n, dict) and "class_type" in n for n in prompt.values()):
        raise CliError(f"Workflow {path} is not an API-format workflow "
                       '({"<id>": {"class_type": ..., "inputs": {...}, "_meta": {"title": ...}}}).')
    for title in (TITLE_CHARACTER, TITLE_DRIVING, TITLE_SAVE):
        find_titled(prompt, title, path)
    return prompt


def titles(prompt: dict) -> dict[str, str]:
    return {nid: (n.get("_meta") or {}).get("title") or n.get("class_type", "?") for nid, n in prompt.items()}


def find_titled(prompt: dict, title: str, path: pathlib.Path | str = "the workflow", required: bool = True) -> str | None:
    ids = [nid for nid, n in prompt.items() if (n.get("_meta") or {}).get("title") == title]
    if len(ids) > 1:
        raise CliError(f"{path} has {len(ids)} nodes titled \"{title}\" ({', '.join(ids)}); the CLI needs exactly one.")
    if not ids:
        if required:
            raise CliError(f"{path} has no node titled \"{title}\" (see `{PROG} --help` "
                           "for the title convention).")
        return None
    return ids[0]


def seed_node(prompt: dict, source: pathlib.Path | str = "the workflow") -> str:
    """The node ``--seed`` sets: the one titled "Seed", else the only WAK_AnimateSampler, else the only
    node with a ``seed``/``noise_seed`` input."""
    nid = find_titled(prompt, TITLE_SEED, source, required=False)
    if nid is not None:
        return nid
    for pick in (lambda n: n.get("class_type") == "WAK_AnimateSampler",
                 lambda n: any(k in (n.get("inputs") or {}) for k in ("seed", "noise_seed"))):
        ids = [i for i, n in prompt.items() if pick(n)]
        if len(ids) == 1:
            return ids[0]
        if len(ids) > 1:
            break
    raise CliError(f"--seed was given but {source} has no node titled \"{TITLE_SEED}\" (nor a single sampler "
                   "with a seed input).")


def fps_arg(value: str) -> float:
    """``--fps``: a frame rate, or ``source`` (also 0, or -1 as the official script spells it): the
    node's 0, every frame kept."""
    text = str(value).strip().lower()
    if text == "source":
        return 0.0
    try:
        fps = float(text)
    except ValueError:
        fps = float("nan")
    if fps in (0.0, -1.0):
        return 0.0
    if not 0 < fps <= MAX_FPS:
        raise argparse.ArgumentTypeError(f"--fps must be a frame rate above 0 and up to {MAX_FPS:g} (30 is "
                                         f"official) or 'source', got '{value}'")
    return fps


def fill_workflow(prompt: dict, character: str, driving: str, text: str | None = None, seed: int | None = None,
                  source: pathlib.Path | str = "the workflow", fps: float | None = None) -> dict:
    """A copy of ``prompt`` with the uploaded inputs, prompt text and seed set on the titled nodes,
    and ``fps`` (0 = source rate) on its WAK_DrivingVideo nodes."""
    prompt = json.loads(json.dumps(prompt))
    prompt[find_titled(prompt, TITLE_CHARACTER, source)].setdefault("inputs", {})["image"] = character
    prompt[find_titled(prompt, TITLE_DRIVING, source)].setdefault("inputs", {})["file"] = driving
    if text is not None:
        nid = find_titled(prompt, TITLE_PROMPT, source, required=False)
        if nid is None:
            raise CliError(f"--prompt was given but {source} has no node titled \"{TITLE_PROMPT}\".")
        prompt[nid].setdefault("inputs", {})["text"] = text
    if seed is not None:
        nid = seed_node(prompt, source)
        inputs = prompt[nid].setdefault("inputs", {})
        inputs["noise_seed" if "noise_seed" in inputs and "seed" not in inputs else "seed"] = seed
    if fps is not None:
        ids = [nid for nid, n in prompt.items() if n.get("class_type") == RATE_NODE]
        if not ids:
            raise CliError(f"--fps was given but {source} has no {RATE_NODE} node (\"Wan-Animate Driving Video "
                           "(official 30 fps)\") after its Load Video; add one, or leave out --fps.")
        for nid in ids:
            prompt[nid].setdefault("inputs", {})["fps"] = float(fps)
    return prompt


# --- messages ------------------------------------------------------------------------------------
def unreachable_message(url: str, reason: str) -> str:
    return (f"Cannot reach a ComfyUI server at {url} ({reason}). Start one with "
            f"`python {ROOT / 'scripts' / 'launch.py'}` (add --port N to pick the port) and pass --server {url}, or "
            "leave out --server and this command starts a local ComfyUI for the run.")


def missing_models_message(missing: list, where: str) -> str:
    """``where``: e.g. "The ComfyUI server at http://..." or "The models folder /x/models". Each file
    is named with the absolute folder it goes in when known (``Missing.location``)."""
    root = _manifest().models_root(missing)
    head = f"{where} lacks {len(missing)} needed model file(s)"
    head += f"; missing models: put them in {root}, each in the folder below:" if root else ":"
    lines = [head] + [f"  - {m.message()}" for m in missing]
    known = all(m.folder_path for m in missing)
    names = " ".join(dict.fromkeys(m.name.rsplit("/", 1)[-1] for m in missing if m.url))
    lines.append(("Put each file in the folder named above" if known else
                  "Put each file in that folder of the ComfyUI the server runs")
                 + " (then refresh the browser page or restart ComfyUI), or fetch them with "
                 f"`{PROG} download --models-dir {root or '<ComfyUI>/models'} {names or 'NAME...'}`.")
    return "\n".join(lines)


def _node_label(nid: str, prompt: dict, class_type: str | None = None) -> str:
    node = prompt.get(str(nid)) or {}
    title = (node.get("_meta") or {}).get("title")
    cls = class_type or node.get("class_type") or "?"
    return f"node \"{title}\" ({cls}, id {nid})" if title and title != cls else f"node {cls} (id {nid})"


def node_errors_message(body: Any, prompt: dict, folders: dict | None = None) -> str:
    """The host's validation answer (``{"error", "node_errors"}``) as readable lines; a model file
    the server lacks is named with its folder on that server (``folders``: ``{folder: [paths]}`` from
    its ``GET /experiment/models``) and download URL."""
    body = body if isinstance(body, dict) else {}
    manifest = _manifest()
    entries = manifest.load_manifest()
    error = body.get("error") or {}
    if isinstance(error, str):
        error = {"message": error}
    lines = []
    for nid, info in (body.get("node_errors") or {}).items():
        for err in info.get("errors", []):
            extra = err.get("extra_info") or {}
            name = extra.get("input_name")
            detail = err.get("details") or ""
            line = f"  - {_node_label(nid, prompt, info.get('class_type'))}"
            line += f", input \"{name}\": " if name else ": "
            line += err.get("message", "error") + (f" ({detail})" if detail else "")
            value = extra.get("received_value")
            if err.get("type") == "value_not_in_list" and isinstance(value, str):
                entry = manifest.find_entry(value.replace("\\", "/").rsplit("/", 1)[-1], entries)
                if entry is not None:
                    where = manifest.preferred_folder(entry.folder, (folders or {}).get(entry.folder) or [])
                    where = os.path.join(where, "") if where else f"ComfyUI/models/{entry.folder}/"
                    line += f". It is a model file: put it in {where} (download: {entry.url})"
            lines.append(line)
    head = "The ComfyUI server refused the workflow"
    if error.get("message"):
        head += f": {error['message']}"
        if not lines and error.get("details"):
            head += f" ({error['details']})"
    return head + (":\n" + "\n".join(lines) if lines else ".")


def execution_error_message(data: dict, prompt: dict) -> str:
    nid = str(data.get("node_id", "?"))
    msg = (data.get("exception_message") or "").strip()
    etype = data.get("exception_type") or "error"
    return (f"The workflow failed in {_node_label(nid, prompt, data.get('node_type'))}: "
            f"{etype.rsplit('.', 1)[-1]}: {msg}")


# --- running -------------------------------------------------------------------------------------
class Progress:
    """Prints node starts and value/max progress on stderr (one updating line on a terminal)."""

    def __init__(self, prompt: dict, stream=None):
        self.titles = titles(prompt)
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.last_print = 0.0
        self.open_line = False

    def _title(self, nid: Any) -> str:
        nid = str(nid)
        if nid in self.titles:
            return self.titles[nid]
        parent = nid.split(".", 1)[0]  # nodes a node expands into at run time: "<parent>.<call>.<...>"
        return self.titles.get(parent, nid)

    def _end_line(self) -> None:
        if self.open_line:
            self.stream.write("\n")
            self.open_line = False

    def node(self, nid: Any) -> None:
        self._end_line()
        self.stream.write(f"running: {self._title(nid)}\n")
        self.stream.flush()

    def progress(self, nid: Any, value: Any, maximum: Any) -> None:
        text = f"  {self._title(nid)}: {value}/{maximum}"
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r" + text.ljust(60))
            self.open_line = True
        elif value == maximum or now - self.last_print >= 2.0:
            self.stream.write(text + "\n")
            self.last_print = now
        self.stream.flush()

    def done(self) -> None:
        self._end_line()


def _cancel(client: Client, prompt_id: str) -> None:
    try:
        client.post_json("/queue", {"delete": [prompt_id]})
        queue = client.get_json("/queue", timeout=5)
        if any(len(item) > 1 and item[1] == prompt_id for item in queue.get("queue_running", [])):
            client.post_json("/interrupt", {})
    except (urllib.error.URLError, OSError, ValueError):
        pass


def _server_folders(client: Client) -> dict:
    """The server's model folders (``GET /experiment/models``), or {} when it does not say."""
    try:
        return _manifest().server_model_folders(client.url, timeout=10)
    except (ConnectionError, OSError, ValueError):
        return {}


def _history(client: Client, prompt_id: str) -> dict | None:
    try:
        return client.get_json(f"/history/{prompt_id}", timeout=10).get(prompt_id)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _history_error(entry: dict, prompt: dict) -> str | None:
    status = entry.get("status") or {}
    if status.get("status_str") != "error":
        return None
    for kind, data in status.get("messages", []):
        if kind == "execution_error":
            return execution_error_message(data, prompt)
        if kind == "execution_interrupted":
            return "The workflow was interrupted on the server."
    return "The workflow failed on the server (see its log)."


def run_prompt(client: Client, prompt: dict, timeout: float | None = None, show: Progress | None = None) -> dict:
    """Queue ``prompt``, follow it (websocket when available, else polling), return its history entry."""
    show = show or Progress(prompt)
    prompt_id = str(uuid.uuid4())
    ws = None
    try:
        import websocket  # websocket-client, optional: live progress

        ws_url = "ws" + client.url[4:] + f"/ws?clientId={client.client_id}"
        ws = websocket.create_connection(ws_url, timeout=10)
        ws.settimeout(1.0)
    except ImportError:
        _say("(install websocket-client for live progress; polling the server instead)")
    except Exception as e:  # noqa: BLE001  any websocket failure: fall back to polling
        _say(f"(no websocket progress: {e}; polling the server instead)")
        ws = None
    try:
        status, body = client.post_json("/prompt", {"prompt": prompt, "client_id": client.client_id,
                                                    "prompt_id": prompt_id})
        if status != 200:
            raise CliError(node_errors_message(body, prompt, _server_folders(client)))
        deadline = None if not timeout else time.monotonic() + timeout
        last_poll = time.monotonic()
        while True:
            if deadline is not None and time.monotonic() > deadline:
                _cancel(client, prompt_id)
                raise CliError(f"The workflow did not finish within --timeout {timeout:g} s; it was removed from the "
                               f"server's queue (prompt id {prompt_id}). Raise --timeout for long videos.")
            finished = False
            if ws is not None:
                try:
                    raw = ws.recv()
                except Exception as e:  # noqa: BLE001
                    if type(e).__name__ != "WebSocketTimeoutException":
                        _say(f"(websocket closed: {e}; polling the server instead)")
                        ws = None
                    raw = None
                if isinstance(raw, str):
                    msg = json.loads(raw)
                    data = msg.get("data") or {}
                    if data.get("prompt_id") == prompt_id:
                        kind = msg.get("type")
                        if kind == "executing":
                            if data.get("node") is None:
                                finished = True
                            else:
                                show.node(data.get("display_node") or data["node"])
                        elif kind == "progress":
                            show.progress(data.get("node"), data.get("value"), data.get("max"))
                        elif kind == "execution_error":
                            show.done()
                            raise CliError(execution_error_message(data, prompt))
                        elif kind == "execution_interrupted":
                            show.done()
                            raise CliError("The workflow was interrupted on the server.")
            else:
                time.sleep(1.0)
            # the host writes the history entry when the prompt is done, just before `executing: null`
            if finished or ws is None or time.monotonic() - last_poll >= 5.0:
                last_poll = time.monotonic()
                entry = _history(client, prompt_id)
                if entry is None and finished:
                    time.sleep(0.5)
                    entry = _history(client, prompt_id)
                if entry is not None:
                    show.done()
                    err = _history_error(entry, prompt)
                    if err:
                        raise CliError(err)
                    return entry
    except KeyboardInterrupt:
        _cancel(client, prompt_id)
        raise
    finally:
        if ws is not None:
            ws.close()


def output_items(entry: dict, save_id: str) -> list[dict]:
    """The files a SaveVideo node reported (the host lists them under 'images', newer ones 'videos')."""
    out = (entry.get("outputs") or {}).get(save_id) or {}
    items = []
    for key in ("videos", "images", "gifs", "video"):
        for item in out.get(key) or []:
            if isinstance(item, dict) and item.get("filename"):
                items.append(item)
    return items


def check_server_ready(client: Client, prompt: dict) -> None:
    """Nodes and model files: fail early with what to install or download."""
    classes = sorted({n["class_type"] for n in prompt.values()})
    absent = []
    for cls in classes:
        try:
            info = client.get_json(f"/object_info/{urllib.parse.quote(cls)}")
        except urllib.error.HTTPError:
            info = {}
        if not info or cls not in info:
            users = [t for nid, t in titles(prompt).items() if prompt[nid]["class_type"] == cls]
            absent.append(f"  - {cls} (used by: {', '.join(users)})")
    if absent:
        pack = any(c.startswith("WAK_") for c in classes)
        hint = (" Install Wan-Animate Kit in that ComfyUI (custom_nodes/wan_animate_kit, see README) and restart it."
                if pack else " Install the node pack that provides them and restart the server.")
        raise CliError(f"The ComfyUI server at {client.url} does not have these nodes:\n" + "\n".join(absent) + "\n" + hint)
    manifest = _manifest()
    try:
        missing = manifest.check_server(client.url, prompt)
    except manifest.ServerError as e:
        raise CliError(f"{e}.") from e
    if missing:
        raise CliError(missing_models_message(missing, f"The ComfyUI server at {client.url}"))


def default_out(driving: pathlib.Path, mode: str, suffix: str = ".mp4") -> pathlib.Path:
    return pathlib.Path.cwd() / f"{driving.stem}_{mode}{suffix}"


def _file_arg(value: str, what: str) -> pathlib.Path:
    path = pathlib.Path(value).expanduser()
    if not path.is_file():
        raise CliError(f"The {what} {path} does not exist (or is not a file).")
    return path


def cmd_run(args: argparse.Namespace) -> int:
    character = _file_arg(args.character, "character image (--character)")
    driving = _file_arg(args.driving, "driving video (--driving)")
    if args.workflow:
        wf_path = pathlib.Path(args.workflow).expanduser()
    else:
        wf_path = API_DIR / f"{args.mode}{'_fast' if args.fast else ''}.json"
        if not wf_path.is_file():
            raise CliError(f"The shipped workflow {wf_path} is missing from this install; pass --workflow PATH "
                           "(an API-format workflow following the title convention in --help).")
    prompt = load_workflow(wf_path)
    fill_workflow(prompt, "", "", args.prompt, args.seed, wf_path, args.fps)  # fails now on a missing node
    out = pathlib.Path(args.out).expanduser() if args.out else None

    def run_on(client: Client) -> int:
        reason = client.reachable()
        if reason is not None:
            raise CliError(unreachable_message(client.url, reason))
        check_server_ready(client, prompt)
        _say(f"uploading {character.name} and {driving.name} to {client.url}")
        filled = fill_workflow(prompt, client.upload(character), client.upload(driving), args.prompt, args.seed,
                               wf_path, args.fps)
        entry = run_prompt(client, filled, args.timeout)
        items = output_items(entry, find_titled(filled, TITLE_SAVE, wf_path))
        if not items:
            raise CliError(f"The workflow finished but its \"{TITLE_SAVE}\" node reported no file "
                           f"(outputs: {json.dumps(entry.get('outputs', {}))[:300]}).")
        target = out or default_out(driving, args.mode, pathlib.Path(items[0]["filename"]).suffix or ".mp4")
        client.download(items[0], target)
        print(target)
        _say(f"saved {target}")
        return 0

    if args.server:
        return run_on(Client(args.server))
    with LocalHost(start_timeout=args.start_timeout) as host:
        return run_on(Client(host.url))


LAUNCH_RECORD = "launch.json"  # written by scripts/launch.py in the cache folder: the models folder it used


def _cache_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("WAN_ANIMATE_KIT_CACHE") or pathlib.Path.home() / ".cache" / "wan_animate_kit")


def _default_models_dir() -> pathlib.Path | None:
    """The ComfyUI models folder: the ComfyUI this pack sits in, ``COMFYUI_DIR``, ``COMFYUI_MODELS_DIR``,
    the folder ``scripts/launch.py`` last used, or the pinned host's."""
    if ROOT.parent.name == "custom_nodes" and (ROOT.parent.parent / "main.py").is_file():
        return ROOT.parent.parent / "models"
    env = os.environ.get("COMFYUI_DIR")
    if env and (pathlib.Path(env).expanduser() / "main.py").is_file():
        return pathlib.Path(env).expanduser() / "models"
    env = os.environ.get("COMFYUI_MODELS_DIR")
    if env:
        return pathlib.Path(env).expanduser()
    try:
        used = json.loads((_cache_dir() / LAUNCH_RECORD).read_text(encoding="utf-8")).get("models_dir")
    except (OSError, ValueError, AttributeError):
        used = None
    if isinstance(used, str) and used:
        return pathlib.Path(used)
    pinned = _cache_dir() / "comfyui-0.3.75"
    if (pinned / "main.py").is_file():
        return pinned / "models"
    return None


def _models_dir_arg(value: str | None) -> pathlib.Path:
    if value:
        return pathlib.Path(value).expanduser().resolve()
    found = _default_models_dir()
    if found is None:
        raise CliError("No ComfyUI found to put the models in: pass --models-dir <ComfyUI>/models "
                       "(or set COMFYUI_DIR or COMFYUI_MODELS_DIR, or run `python scripts/launch.py` once).")
    return found.resolve()


def cmd_check(args: argparse.Namespace) -> int:
    manifest = _manifest()
    if args.server:
        client = Client(args.server)
        reason = client.reachable()
        if reason is not None:
            raise CliError(unreachable_message(client.url, reason))
        try:
            missing = manifest.check_server(client.url, args.workflow_name)
        except manifest.ServerError as e:
            raise CliError(f"{e}.") from e
        where = f"The ComfyUI server at {client.url}"
    else:
        models_dir = _models_dir_arg(args.models_dir)
        if not models_dir.is_dir():
            raise CliError(f"Models folder {models_dir} does not exist.")
        missing = manifest.check_local(models_dir, args.workflow_name)
        where = f"The models folder {models_dir}"
    if not missing:
        print(f"{where} has every model file {'for ' + args.workflow_name if args.workflow_name else 'in the manifest'}.")
        return 0
    raise CliError(missing_models_message(missing, where))


def cmd_download(args: argparse.Namespace) -> int:
    manifest = _manifest()
    entries = manifest.load_manifest()
    if args.names:
        chosen = []
        for name in args.names:
            entry = manifest.find_entry(name, entries)
            if entry is None:
                raise CliError(f"'{name}' is not in the model manifest; known files: "
                               + ", ".join(e.name for e in entries) + ".")
            chosen.append(entry)
    else:
        chosen = manifest.models_for(args.workflow_name, entries)
    models_dir = _models_dir_arg(args.models_dir)
    _say(f"downloading {len(chosen)} file(s) into {models_dir}")
    for entry in chosen:
        try:
            manifest.download(entry, models_dir, progress=_say)
        except manifest.DownloadError as e:
            raise CliError(f"{e}.") from e
    return 0


# --- entry point ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    for mode in MODES:
        p = sub.add_parser(mode, help=f"run the {mode} workflow")
        p.set_defaults(func=cmd_run, mode=mode)
        p.add_argument("--character", required=True, help="the character image (PNG/JPG)")
        p.add_argument("--driving", required=True, help="the driving video")
        p.add_argument("--server", help="ComfyUI URL, e.g. http://127.0.0.1:8188 (default: start a local one)")
        p.add_argument("--out", help="output file (default: <driving stem>_<mode>.mp4 in the current folder)")
        p.add_argument("--workflow", help="an API-format workflow to run instead of the shipped one")
        p.add_argument("--fast", action="store_true", help=f"use the shipped {mode}_fast workflow")
        p.add_argument("--prompt", help="positive prompt text (node titled 'Positive prompt')")
        p.add_argument("--seed", type=int, help="sampler seed (node titled 'Seed')")
        p.add_argument("--fps", type=fps_arg, default=None, metavar="N|source",
                       help="frame rate the driving video is resampled to, as the official preprocessing does "
                            "(WAK_DrivingVideo node): 30 is official and the shipped workflows' setting (the "
                            "default: the workflow's value is kept); 'source' keeps every frame at the video's "
                            "own rate")
        p.add_argument("--timeout", type=float, default=None, help="give up after S seconds (default: no limit)")
        p.add_argument("--start-timeout", type=float, default=900.0,
                       help="seconds to wait for a local ComfyUI to start (default 900; the first start installs it)")
    for name, func, text in (("check", cmd_check, "say which model files are missing"),
                             ("download", cmd_download, "download model files from the manifest (opt-in)")):
        p = sub.add_parser(name, help=text)
        p.set_defaults(func=func)
        p.add_argument("--models-dir", help="ComfyUI's models folder (default: the ComfyUI this pack is in, "
                                            "COMFYUI_DIR, COMFYUI_MODELS_DIR, the folder scripts/launch.py "
                                            "last used, or the pinned host's)")
        p.add_argument("--for", dest="workflow_name",
                       choices=("animate", "replace", "animate_fast", "replace_fast", "replace_two"),
                       help="only the files this shipped workflow uses")
        if name == "check":
            p.add_argument("--server", help="ask this ComfyUI server instead of looking at a folder")
        else:
            p.add_argument("names", nargs="*", metavar="NAME", help="file names from workflows/models.json")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 for errors the user can fix, 130 on Ctrl-C)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CliError as e:
        _say(f"error: {e}")
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except (urllib.error.URLError, ConnectionError, OSError) as e:
        _say(f"error: lost the connection to the ComfyUI server or could not read/write a file: {e}")
        return EXIT_USER_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
