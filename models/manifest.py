"""The model manifest (workflows/models.json): what the shipped workflows need, where it goes, and
an opt-in downloader.

Pure standard library; nothing here touches the network unless :func:`check_server` (the ComfyUI
server the user named) or :func:`download` (asked for explicitly) is called.

* :func:`load_manifest` reads and validates the manifest.
* :func:`referenced_models` lists the model files an API prompt names (loader inputs and any input
  whose value is a manifest file name).
* :func:`check_local` / :func:`check_server` say what is missing, where it goes and where to get it.
* :func:`download` fetches a file: Hugging Face URLs through ``huggingface_hub.hf_hub_download``
  when that library is importable (resume, progress bar, ``HF_TOKEN`` / ``hf auth login`` for gated
  repositories, its shared cache; the file is then hard-linked, or copied, into the models folder),
  other URLs (or no ``huggingface_hub``) by plain HTTP into ``<name>.part``, resumed with an HTTP
  Range request after a dropped connection. Either way it checks size and sha256 when the manifest
  has them, then puts the file in place; files without a checksum in the manifest get the computed
  sha256 recorded in ``<models_dir>/.wan_animate_kit.lock.json`` and are reported as unverified.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import http.client
import importlib
import json
import os
import pathlib
import re
import shutil
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Union

ROOT = pathlib.Path(__file__).resolve().parents[1]
MANIFEST_PATH = ROOT / "workflows" / "models.json"
LOCK_NAME = ".wan_animate_kit.lock.json"
WORKFLOW_NAMES = ("animate", "replace", "animate_fast", "replace_fast", "replace_two")
MODEL_EXTENSIONS = (".safetensors", ".sft", ".onnx", ".pt", ".pth", ".ckpt", ".bin", ".gguf")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FOLDER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")

# (class_type, input name) -> ComfyUI models folder, for loaders whose files may not be in the manifest.
LOADER_INPUTS: dict[tuple[str, str], str] = {
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("VAELoader", "vae_name"): "vae",
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("DualCLIPLoader", "clip_name1"): "text_encoders",
    ("DualCLIPLoader", "clip_name2"): "text_encoders",
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
    ("LoraLoaderModelOnly", "lora_name"): "loras",
    ("LoraLoader", "lora_name"): "loras",
    ("CheckpointLoaderSimple", "ckpt_name"): "checkpoints",
    ("WAK_RelightLoRA", "lora_name"): "loras",
}

ModelsLocation = Union[str, os.PathLike, Mapping[str, Iterable[Union[str, os.PathLike]]],
                       Callable[[str, str], Any]]


class ManifestError(ValueError):
    """The manifest file is malformed."""


class DownloadError(RuntimeError):
    """A download failed. A dropped connection keeps ``<name>.part`` so the next call resumes it;
    any other failure leaves nothing behind."""


class ChecksumError(DownloadError):
    """A downloaded file does not match the manifest's size or sha256."""


class ServerError(ConnectionError):
    """The ComfyUI server could not be asked."""


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One model file: its name inside ``ComfyUI/models/<folder>/`` and where to get it."""

    name: str
    folder: str
    url: str | None
    size_bytes: int | None = None
    sha256: str | None = None
    verified: bool = False
    workflows: tuple[str, ...] = ()
    role: str = ""
    approx_size: str | None = None
    requires: tuple[str, ...] = ()  # companion files (same folder) the file cannot load without


    @property
    def relpath(self) -> str:
        return f"{self.folder}/{self.name}"


@dataclasses.dataclass(frozen=True)
class Missing:
    """A model file the workflow needs that is not where the host looks for it."""

    name: str
    folder: str
    url: str | None
    workflows: tuple[str, ...] = ()
    reason: str = "absent"  # "absent" | "folder_not_registered"
    size_hint: str | None = None
    folder_path: str | None = None  # the absolute folder the host reads this kind of model from, when known

    @property
    def location(self) -> str:
        """The absolute folder to put the file in when known (the server's or the models folder's),
        else the generic ``ComfyUI/models/<folder>/``."""
        if self.folder_path:
            return os.path.join(self.folder_path, "")
        return f"ComfyUI/models/{self.folder}/"

    def message(self) -> str:
        """One line: the file, the exact folder, and the download URL."""
        if self.reason == "folder_not_registered":
            where = (f"the server has no '{self.folder}' model folder (is Wan-Animate Kit installed in that "
                     f"ComfyUI?); the file goes in {self.location}")
        else:
            where = f"put it in {self.location}"
        if self.url:
            size = f", about {self.size_hint}" if self.size_hint else ""
            src = f"download: {self.url}{size}"
        else:
            src = "not in the pack's model manifest (workflows/models.json): get it where the workflow's author says"
        return f"{self.name}: {where} ({src})"


# --- manifest ------------------------------------------------------------------------------------
def _entry_from_dict(item: Any, index: int) -> ModelEntry:
    if not isinstance(item, dict):
        raise ManifestError(f"models[{index}] must be an object, got {type(item).__name__}")
    for key in ("name", "folder", "url"):
        if not isinstance(item.get(key), str) or not item[key]:
            raise ManifestError(f"models[{index}] needs a non-empty string '{key}'")
    name, folder, url = item["name"], item["folder"], item["url"]
    if "/" in name or "\\" in name or name in (".", ".."):
        raise ManifestError(f"models[{index}].name '{name}' must be a bare file name")
    if not _FOLDER.match(folder):
        raise ManifestError(f"models[{index}].folder '{folder}' must be a ComfyUI models folder name")
    if urllib.parse.urlparse(url).scheme not in ("http", "https"):
        raise ManifestError(f"models[{index}].url '{url}' must be an http(s) URL")
    sha = item.get("sha256")
    if sha is not None and (not isinstance(sha, str) or not _SHA256.match(sha)):
        raise ManifestError(f"models[{index}].sha256 must be null or 64 lowercase hex digits, got {sha!r}")
    size = item.get("size_bytes")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size <= 0):
        raise ManifestError(f"models[{index}].size_bytes must be null or a positive integer, got {size!r}")
    verified = item.get("verified", False)
    if not isinstance(verified, bool):
        raise ManifestError(f"models[{index}].verified must be true or false")
    if verified and sha is None:
        raise ManifestError(f"models[{index}] ({name}) is marked verified but has no sha256")
    workflows = item.get("workflows", [])
    if not isinstance(workflows, list) or not all(isinstance(w, str) for w in workflows):
        raise ManifestError(f"models[{index}].workflows must be a list of workflow names")
    requires = item.get("requires", [])
    if not isinstance(requires, list) or not all(isinstance(r, str) and r and "/" not in r for r in requires):
        raise ManifestError(f"models[{index}].requires must be a list of file names (same folder)")
    return ModelEntry(name=name, folder=folder, url=url, size_bytes=size, sha256=sha, verified=verified,
                      workflows=tuple(workflows), role=str(item.get("role", "")),
                      approx_size=item.get("approx_size"), requires=tuple(requires))


def load_manifest(path: str | os.PathLike | None = None) -> list[ModelEntry]:
    """Read and validate the manifest (default: the pack's ``workflows/models.json``)."""
    path = pathlib.Path(path) if path is not None else MANIFEST_PATH
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ManifestError(f"model manifest not found: {path}") from e
    except json.JSONDecodeError as e:
        raise ManifestError(f"model manifest {path} is not valid JSON: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise ManifestError(f"model manifest {path} must be an object with a 'models' list")
    entries = [_entry_from_dict(item, i) for i, item in enumerate(data["models"])]
    seen: set[str] = set()
    for e in entries:
        if e.relpath in seen:
            raise ManifestError(f"model manifest {path} lists {e.relpath} twice")
        seen.add(e.relpath)
    for e in entries:
        for name in e.requires:
            if f"{e.folder}/{name}" not in seen:
                raise ManifestError(f"model manifest {path}: {e.relpath} requires {name}, which it does not list "
                                    f"in folder '{e.folder}'")
    return entries


def find_entry(name: str, entries: list[ModelEntry] | None = None) -> ModelEntry | None:
    """The manifest entry for a file name (a ``folder/name`` path is accepted too)."""
    entries = load_manifest() if entries is None else entries
    for e in entries:
        if name in (e.name, e.relpath):
            return e
    return None


def _looks_like_model(value: Any) -> bool:
    return isinstance(value, str) and value.lower().endswith(MODEL_EXTENSIONS)


def referenced_models(prompt: Mapping[str, Any], entries: list[ModelEntry] | None = None) -> list[ModelEntry]:
    """Model files an API-format prompt names, in prompt order, without duplicates.

    An input counts when its value is a manifest file name (any node) or when it is a known loader
    input (``LOADER_INPUTS``); files of known loaders that the manifest lacks come back with
    ``url=None``.
    """
    entries = load_manifest() if entries is None else entries
    by_name = {e.name: e for e in entries}
    found: dict[str, ModelEntry] = {}
    for node in prompt.values():
        if not isinstance(node, Mapping):
            continue
        cls = node.get("class_type", "")
        for key, value in (node.get("inputs") or {}).items():
            if not isinstance(value, str):
                continue
            norm = value.replace("\\", "/")
            entry = None
            if _looks_like_model(norm):
                entry = by_name.get(norm) or by_name.get(norm.rsplit("/", 1)[-1])
            folder = LOADER_INPUTS.get((cls, key))
            if entry is not None and norm != entry.name:  # same file, in a subfolder of the models folder
                entry = dataclasses.replace(entry, name=norm)
            if entry is None and folder is not None and norm:
                entry = ModelEntry(name=norm, folder=folder, url=None)
            if entry is not None:
                found.setdefault(entry.relpath, entry)
                for companion in _companions(entry, by_name):
                    found.setdefault(companion.relpath, companion)
    return list(found.values())


def _companions(entry: ModelEntry, by_name: Mapping[str, ModelEntry]) -> list[ModelEntry]:
    """The files ``entry`` needs beside it (e.g. an ONNX model's external weights), placed in the same
    sub-folder as the entry itself."""
    out = []
    sub = entry.name.rsplit("/", 1)[0] + "/" if "/" in entry.name else ""
    for name in entry.requires:
        companion = by_name.get(name)
        if companion is not None:
            out.append(dataclasses.replace(companion, name=sub + name) if sub else companion)
    return out


def models_for(workflow: str | Mapping[str, Any] | None = None,
               entries: list[ModelEntry] | None = None) -> list[ModelEntry]:
    """Entries needed by ``workflow``: None = all, a shipped workflow name, or an API prompt dict."""
    entries = load_manifest() if entries is None else entries
    if workflow is None:
        return list(entries)
    if isinstance(workflow, str):
        if workflow not in WORKFLOW_NAMES:
            raise ValueError(f"unknown workflow '{workflow}': use one of {', '.join(WORKFLOW_NAMES)}")
        return [e for e in entries if workflow in e.workflows]
    if isinstance(workflow, Mapping):
        return referenced_models(workflow, entries)
    raise ValueError(f"workflow must be None, a workflow name or an API prompt dict, got {type(workflow).__name__}")


def _missing(entry: ModelEntry, reason: str = "absent", folder_path: str | os.PathLike | None = None) -> Missing:
    path = os.fspath(folder_path) if folder_path else None
    if path and "/" in entry.name:  # a file named inside a sub-folder goes in that sub-folder
        path = os.path.join(path, *entry.name.split("/")[:-1])
    return Missing(entry.name, entry.folder, entry.url, entry.workflows, reason, entry.approx_size, path)


def models_root(missing: Iterable[Missing]) -> str | None:
    """The one models folder all ``missing`` files go under (``<root>/<folder>/...``), or None when
    their folders do not share such a root (or are unknown)."""
    roots = set()
    for m in missing:
        if not m.folder_path:
            return None
        parts = pathlib.PurePath(m.folder_path).parts
        sub = ("",) + tuple(m.name.split("/")[:-1])
        depth = len(sub)  # the folder itself plus any sub-folder of the file
        if len(parts) <= depth or parts[-depth] != m.folder:
            return None
        roots.add(str(pathlib.PurePath(*parts[:-depth])))
    return roots.pop() if len(roots) == 1 else None


# --- checks --------------------------------------------------------------------------------------
def _local_lookup(models: ModelsLocation) -> Callable[[str, str], bool]:
    if callable(models):
        def found(folder: str, name: str) -> bool:
            try:
                path = models(folder, name)
            except (KeyError, ValueError, FileNotFoundError):
                return False
            return bool(path) and os.path.isfile(path)
        return found
    if isinstance(models, Mapping):
        def found(folder: str, name: str) -> bool:
            return any(os.path.isfile(os.path.join(d, name)) for d in models.get(folder, ()))
        return found
    if isinstance(models, (str, os.PathLike)):
        root = pathlib.Path(models)
        if not root.is_dir():
            raise ValueError(f"models folder {root} does not exist: pass ComfyUI's 'models' folder")
        return lambda folder, name: (root / folder / name).is_file()
    raise ValueError("models must be a models folder path, a {folder: [dirs]} mapping or a lookup(folder, name) "
                     f"callable such as folder_paths.get_full_path, got {type(models).__name__}")


def check_local(models: ModelsLocation, workflow: str | Mapping[str, Any] | None = None,
                entries: list[ModelEntry] | None = None) -> list[Missing]:
    """What ``workflow`` needs that is not on this machine.

    ``models``: ComfyUI's models folder (files at ``<models>/<folder>/<name>``), a mapping
    ``{folder: [dirs]}``, or a lookup callable ``(folder, name) -> path or None`` (e.g.
    ``folder_paths.get_full_path`` inside the host).
    """
    found = _local_lookup(models)

    def place(folder: str) -> str | None:
        if isinstance(models, (str, os.PathLike)):
            return os.path.join(os.path.abspath(models), folder)
        if isinstance(models, Mapping):
            dirs = list(models.get(folder, ()))
            return os.fspath(dirs[0]) if dirs else None
        return None

    return [_missing(e, folder_path=place(e.folder)) for e in models_for(workflow, entries)
            if not found(e.folder, e.name)]


def _get_json(url: str, timeout: float) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def server_model_folders(url: str, timeout: float = 10.0) -> dict[str, list[str]]:
    """``{folder: [absolute paths]}`` the ComfyUI server at ``url`` reads its models from (the host's
    ``GET /experiment/models``, in ComfyUI since 0.3; the first path of a folder is where new files go).
    Empty when the server does not offer that route (older or other hosts)."""
    try:
        data = _get_json(f"{url.rstrip('/')}/experiment/models", timeout)
    except urllib.error.HTTPError:
        return {}
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise ServerError(f"cannot ask the ComfyUI server at {url} for its model folders: {err}") from err
    folders: dict[str, list[str]] = {}
    for item in data if isinstance(data, list) else []:
        if isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("folders"), list):
            folders[item["name"]] = [str(p) for p in item["folders"] if isinstance(p, str) and p]
    return folders


def preferred_folder(folder: str, paths: Iterable[str]) -> str | None:
    """Of the folders a host lists for a kind of model, the one to name for a new file: the first one
    called like the kind (ComfyUI lists its legacy ``models/unet`` before ``models/diffusion_models``),
    else the first."""
    paths = [p for p in paths if p]
    for p in paths:
        if pathlib.PurePath(p.replace("\\", "/")).name == folder:
            return p
    return paths[0] if paths else None


def check_server(url: str, workflow: str | Mapping[str, Any] | None = None,
                 entries: list[ModelEntry] | None = None, timeout: float = 10.0) -> list[Missing]:
    """What ``workflow`` needs that the ComfyUI server at ``url`` does not list.

    Uses the host's ``GET /models/{folder}`` (the file names the loaders offer). A folder the server
    does not know (404) makes all its files missing with reason ``folder_not_registered``. Each
    missing file carries the absolute folder the server reads that kind of model from
    (:func:`server_model_folders`, :func:`preferred_folder`), when the server says.
    Raises :class:`ServerError` when the server cannot be reached.
    """
    base = url.rstrip("/")
    needed = models_for(workflow, entries)
    places: dict[str, list[str]] | None = None
    listings: dict[str, set[str] | None] = {}
    missing = []
    for e in needed:
        if e.folder not in listings:
            try:
                files = _get_json(f"{base}/models/{urllib.parse.quote(e.folder)}", timeout)
                listings[e.folder] = {str(f).replace("\\", "/") for f in files}
            except urllib.error.HTTPError as err:
                if err.code != 404:
                    raise ServerError(f"{base}/models/{e.folder} answered HTTP {err.code}") from err
                listings[e.folder] = None
            except (urllib.error.URLError, OSError, ValueError) as err:
                raise ServerError(f"cannot ask the ComfyUI server at {base} for its models: {err}") from err
        files = listings[e.folder]
        if files is not None and e.name in files:
            continue
        if places is None:
            places = server_model_folders(base, timeout)
        where = preferred_folder(e.folder, places.get(e.folder) or [])
        missing.append(_missing(e, "absent" if files is not None else "folder_not_registered", where))
    return missing


# --- download ------------------------------------------------------------------------------------
def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            h.update(block)
    return h.hexdigest()


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def read_lock(models_dir: str | os.PathLike) -> dict:
    """The lock file beside the models (``{"version": 1, "files": {folder/name: {...}}}``)."""
    path = pathlib.Path(models_dir) / LOCK_NAME
    if not path.is_file():
        return {"version": 1, "files": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}): fix or delete it") from e
    data.setdefault("files", {})
    return data


def _record_lock(models_dir: pathlib.Path, entry: ModelEntry, digest: str, size: int, verified: bool) -> pathlib.Path:
    data = read_lock(models_dir)
    data["version"] = 1
    data["files"][entry.relpath] = {
        "sha256": digest, "size_bytes": size, "url": entry.url, "verified": verified,
        "downloaded": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    path = models_dir / LOCK_NAME
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def _check_file(entry: ModelEntry, size: int, digest: str) -> None:
    if entry.size_bytes is not None and size != entry.size_bytes:
        raise ChecksumError(f"{entry.name}: got {size} bytes, the manifest says {entry.size_bytes}")
    if entry.sha256 is not None and digest != entry.sha256:
        raise ChecksumError(f"{entry.name}: sha256 {digest} does not match the manifest's {entry.sha256}")


HF_HOSTS = ("huggingface.co", "hf.co")
_RETRYABLE = (http.client.IncompleteRead, http.client.RemoteDisconnected, ConnectionError, socket.timeout,
              TimeoutError)


def hf_location(url: str) -> tuple[str, str, str, str | None] | None:
    """``(repo_id, revision, filename, repo_type)`` of a Hugging Face ``.../resolve/<rev>/<path>`` URL,
    else None. ``repo_type`` is None for models, ``"datasets"``/``"spaces"`` URLs give that type."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme != "https" or parsed.hostname not in HF_HOSTS:
        return None
    parts = [urllib.parse.unquote(x) for x in parsed.path.split("/") if x]
    repo_type = None
    if parts and parts[0] in ("datasets", "spaces"):
        repo_type, parts = parts[0][:-1], parts[1:]
    if len(parts) < 5 or parts[2] != "resolve":
        return None
    return f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]), repo_type


def _hf_download_function() -> Callable[..., Any] | None:
    """``huggingface_hub.hf_hub_download`` when the library is importable (every ComfyUI environment
    has it through ``transformers``), else None."""
    try:
        return importlib.import_module("huggingface_hub").hf_hub_download
    except (ImportError, AttributeError):
        return None


def _place(source: pathlib.Path, target: pathlib.Path) -> str:
    """Put ``source`` (a file in the Hugging Face cache) at ``target``: a hard link when both are on one
    file system (no second copy on disk), else a copy. Never a symbolic link: the pack's loaders only
    take files whose real path is inside the models folder."""
    tmp = target.with_name(target.name + ".part")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
        how = "hard-linked from the Hugging Face cache"
    except OSError:
        shutil.copyfile(source, tmp)
        how = "copied from the Hugging Face cache"
    os.replace(tmp, target)
    return how


def _download_hf(entry: ModelEntry, target: pathlib.Path, progress: Callable[[str], Any],
                 fetch: Callable[..., Any]) -> str:
    repo_id, revision, filename, repo_type = hf_location(entry.url)
    progress(f"{entry.name}: downloading {repo_id}/{filename} with huggingface_hub (resumes an interrupted "
             f"download; its cache: $HF_HOME or ~/.cache/huggingface; token: $HF_TOKEN or `hf auth login`)")
    try:
        cached = fetch(repo_id=repo_id, filename=filename, revision=revision, repo_type=repo_type)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # noqa: BLE001  huggingface_hub's errors vary between its versions
        name = type(e).__name__
        hint = (" (a gated or private repository: accept its licence on huggingface.co, then set HF_TOKEN or run "
                "`hf auth login`)" if any(k in name for k in ("Gated", "Authorization", "RepositoryNotFound"))
                else "")
        raise DownloadError(f"{entry.name}: huggingface_hub could not download {entry.url}: {name}: "
                            f"{str(e).strip().rstrip('.')}{hint}; "
                            "what arrived stays in its cache and the next run resumes it") from e
    return _place(pathlib.Path(cached), target)


def _download_http(entry: ModelEntry, part: pathlib.Path, progress: Callable[[str], Any], timeout: float,
                   chunk_size: int) -> tuple[int, str]:
    """Fetch ``entry.url`` into ``part``, continuing an existing ``part`` with an HTTP Range request.
    Returns (size, sha256) of the whole file. A dropped connection keeps ``part`` for the next call."""
    h = hashlib.sha256()
    have = part.stat().st_size if part.is_file() else 0
    if have:
        with open(part, "rb") as f:
            for block in iter(lambda: f.read(chunk_size), b""):
                h.update(block)
    headers = {"User-Agent": "wan-animate-kit-downloader"}
    if have:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(entry.url, headers=headers)
    try:
        r = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the range starts at or past the end: start again from the beginning
            part.unlink(missing_ok=True)
            return _download_http(entry, part, progress, timeout, chunk_size)
        raise
    with r:
        length = r.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if have and r.status == 206:
            progress(f"{entry.name}: resuming at {_human(have)} (kept in {part.name})")
            mode = "ab"
        else:
            if have:
                progress(f"{entry.name}: the server does not resume downloads: starting again")
                h = hashlib.sha256()
            have, mode = 0, "wb"
        expected = have + length if length is not None else None
        total = expected or entry.size_bytes
        if not have:
            progress(f"{entry.name}: downloading {entry.url}" + (f" ({_human(total)})" if total else ""))
        size = have
        started, last, at_start = time.monotonic(), time.monotonic(), have
        with open(part, mode) as out:
            try:
                while True:
                    block = r.read(chunk_size)
                    if not block:
                        break
                    out.write(block)
                    h.update(block)
                    size += len(block)
                    now = time.monotonic()
                    if now - last >= 2.0:
                        last = now
                        pct = f" ({100 * size / total:.0f}%)" if total else ""
                        rate = (size - at_start) / max(now - started, 1e-6)
                        progress(f"{entry.name}: {_human(size)}" + (f" of {_human(total)}" if total else "") + pct
                                 + f", {_human(rate)}/s")
            except _RETRYABLE as e:
                out.flush()
                raise DownloadError(f"{entry.name}: the connection dropped after {_human(size)} ({e or type(e).__name__}); "
                                    f"the {_human(size)} already fetched stay in {part}: run the command again to "
                                    "resume") from e
        if expected is not None and size != expected:
            raise DownloadError(f"{entry.name}: the connection closed after {size} of {expected} bytes; they stay in "
                                f"{part}: run the command again to resume")
    return size, h.hexdigest()


def download(entry: ModelEntry | str, models_dir: str | os.PathLike, progress: Callable[[str], Any] = print,
             *, overwrite: bool = False, timeout: float = 60.0, chunk_size: int = 1 << 20,
             entries: list[ModelEntry] | None = None, use_hf: bool | None = None) -> pathlib.Path:
    """Download one manifest file to ``<models_dir>/<folder>/<name>`` (opt-in; the only network use).

    Hugging Face URLs go through ``huggingface_hub.hf_hub_download`` when it is importable (``use_hf``
    None or True; False forces plain HTTP): its resume, progress bar, token (``HF_TOKEN``) and shared
    cache; the cached file is then hard-linked (or copied) into place. Other URLs stream to
    ``<name>.part``; a dropped connection keeps that file and the next call resumes it with an HTTP
    Range request (a server that ignores the range restarts it). Size and sha256 are checked against
    the manifest when it has them; a mismatching file is removed. Without a manifest checksum the
    computed sha256 is recorded in ``<models_dir>/.wan_animate_kit.lock.json`` and the file is
    reported as unverified. An existing file is kept (and checked when a checksum is known) unless
    ``overwrite``.
    """
    if isinstance(entry, str):
        found = find_entry(entry, entries)
        if found is None:
            names = ", ".join(e.name for e in (load_manifest() if entries is None else entries))
            raise ValueError(f"'{entry}' is not in the model manifest; known files: {names}")
        entry = found
    if not entry.url or urllib.parse.urlparse(entry.url).scheme not in ("http", "https"):
        raise ValueError(f"{entry.name} has no http(s) download URL in the manifest")
    models_dir = pathlib.Path(models_dir)
    target = models_dir / entry.folder / entry.name
    if target.exists() and not overwrite:
        if entry.sha256 is not None or entry.size_bytes is not None:
            _check_file(entry, target.stat().st_size, sha256_file(target) if entry.sha256 else "")
            progress(f"{entry.name}: already in {target.parent}, matches the manifest")
        else:
            progress(f"{entry.name}: already in {target.parent} (kept; the manifest has no checksum to compare)")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    fetch = _hf_download_function() if use_hf is not False and hf_location(entry.url) else None
    if use_hf and fetch is None and hf_location(entry.url):
        progress(f"{entry.name}: huggingface_hub is not installed: plain HTTP download instead")
    how = ""
    if fetch is not None:
        how = _download_hf(entry, target, progress, fetch)
        size, digest = target.stat().st_size, sha256_file(target, chunk_size)
        try:
            _check_file(entry, size, digest)
        except ChecksumError:
            target.unlink(missing_ok=True)
            raise
    else:
        try:
            size, digest = _download_http(entry, part, progress, timeout, chunk_size)
            _check_file(entry, size, digest)
        except urllib.error.URLError as e:
            part.unlink(missing_ok=True)
            raise DownloadError(f"{entry.name}: could not download {entry.url}: {e}") from e
        except DownloadError as e:
            if isinstance(e, ChecksumError):
                part.unlink(missing_ok=True)
            raise
        except KeyboardInterrupt:
            progress(f"{entry.name}: interrupted; {part} is kept: run the command again to resume")
            raise
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        os.replace(part, target)
    verified = entry.sha256 is not None
    lock = _record_lock(models_dir, entry, digest, size, verified)
    how = f", {how}" if how else ""
    if verified:
        progress(f"{entry.name}: saved to {target} ({_human(size)}, sha256 verified{how})")
    else:
        progress(f"{entry.name}: saved to {target} ({_human(size)}{how}), but it could not be verified: the "
                 f"manifest has no checksum for it. Its sha256 {digest} is recorded in {lock}.")
    return target
