"""On-disk cache of finished segments, so an interrupted or crashed long job resumes where it stopped.

Every finished segment's decoded frames (uint8 [clip_len, H, W, 3]) are written to
``<cache root>/<job key>/seg<k>_<segment key>.npy`` (atomically: temp file, then rename). The job
key hashes everything a segment depends on that is the same for the whole job (settings, seed,
model and VAE identity with their patches, prompts, CLIP output, reference image); a segment key
adds the segment index and the bytes of the segment's own inputs (pose/face/environment/mask frames
and the guidance frames it is conditioned on). Running the same job again loads the finished
segments bit for bit and samples from the first missing one.

Cache root: ``$WAN_ANIMATE_KIT_CACHE_DIR`` if set, else the host's internal system-user folder
``<user dir>/__wan_animate_kit/segments`` (not served over HTTP and, unlike ``temp``, not wiped
when the host starts, so a crash does not lose it). A job's folder is removed when the job
finishes.

The root may be a folder shared with other programs, so the cache only ever deletes what it wrote:
every job folder carries a marker file (``MARKER`` with ``MARKER_TEXT``), and pruning skips any
entry without it (and any link). Marked folders untouched for a week are pruned, and the marked
folders together are kept under ``$WAN_ANIMATE_KIT_CACHE_MAX_GB`` (default 20 GB), oldest first;
the running job's own folder is never pruned.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from typing import Any, Iterable

import numpy as np

log = logging.getLogger("wan_animate_kit")

STALE_SECONDS = 7 * 24 * 3600
MAX_GB_ENV = "WAN_ANIMATE_KIT_CACHE_MAX_GB"
DEFAULT_MAX_GB = 20.0
MARKER = ".wan_animate_kit_segments"
MARKER_TEXT = "segment cache of the Wan-Animate Kit ComfyUI nodes; this folder may be deleted\n"


# -- hashing ----------------------------------------------------------------------------------

class Hasher:
    """Incremental content hash of tensors, arrays and plain values (blake2b, 128 bit)."""

    def __init__(self, *parts: Any):
        self._h = hashlib.blake2b(digest_size=16)
        for p in parts:
            self.update(p)

    def update(self, value: Any) -> "Hasher":
        h = self._h
        if value is None:
            h.update(b"N")
        elif hasattr(value, "detach") and hasattr(value, "dtype"):  # torch tensor
            import torch

            t = value.detach()
            h.update(f"T{tuple(t.shape)}{t.dtype}".encode())
            if t.numel():
                flat = t.cpu().contiguous().reshape(-1)
                try:
                    raw = flat.view(torch.uint8).numpy()
                except (RuntimeError, TypeError):
                    raw = flat.double().numpy()
                h.update(memoryview(raw))
        elif isinstance(value, np.ndarray):
            a = np.ascontiguousarray(value)
            h.update(f"A{a.shape}{a.dtype.str}".encode())
            h.update(memoryview(a).cast("B"))
        elif isinstance(value, (bytes, bytearray)):
            h.update(b"B")
            h.update(value)
        elif isinstance(value, dict):
            h.update(b"D")
            for k in sorted(value, key=str):
                self.update(str(k))
                self.update(value[k])
        elif isinstance(value, (list, tuple)):
            h.update(f"L{len(value)}".encode())
            for v in value:
                self.update(v)
        elif isinstance(value, (str, int, float, bool)):
            h.update(f"{type(value).__name__}:{value!r}".encode())
        else:  # objects: their type only (never their id, which changes between runs)
            h.update(f"O{type(value).__module__}.{type(value).__qualname__}".encode())
        return self

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def _sample(t, n: int = 16):
    """A few evenly spaced elements of a tensor (a cheap content fingerprint of big weights)."""
    import torch

    flat = t.detach().reshape(-1)
    if flat.numel() <= n:
        return flat.cpu()
    idx = torch.linspace(0, flat.numel() - 1, n, device=flat.device).long()
    return flat[idx].cpu()


def weights_fingerprint(module, per_tensor: int = 16, backup: dict | None = None, prefix: str = "") -> str:
    """Fingerprint of a torch module's weights: names, shapes and sampled values of every tensor.

    backup: a ModelPatcher's ``backup`` ({prefix + name: (original weight, ...)}); where a weight
    is currently patched in place (a LoRA merged by whichever clone loaded the model last), the
    original is used, so the fingerprint is that of the unpatched file.
    """
    h = Hasher()
    backup = backup or {}
    for name, t in module.state_dict().items():
        bk = backup.get(prefix + name)
        if bk is not None:
            t = bk[0]
        h.update(name)
        h.update(tuple(t.shape))
        try:
            h.update(_sample(t, per_tensor))
        except Exception:  # e.g. a meta tensor
            h.update(str(t.dtype))
    return h.hexdigest()


def _patches_fingerprint(patches: dict) -> str:
    h = Hasher()
    for key in sorted(patches):
        h.update(key)
        for entry in patches[key]:
            strength, patch = entry[0], entry[1]
            h.update(float(strength))
            h.update([float(x) for x in entry[2:3]])
            _update_patch(h, patch)
    return h.hexdigest()


def _update_patch(h: Hasher, patch: Any) -> None:
    if hasattr(patch, "detach"):
        h.update(tuple(patch.shape))
        h.update(_sample(patch, 64))
    elif isinstance(patch, (list, tuple)):
        h.update(f"L{len(patch)}")
        for p in patch:
            _update_patch(h, p)
    elif hasattr(patch, "weights"):  # comfy.weight_adapter objects (LoRA, LoHa, ...)
        h.update(type(patch).__name__)
        _update_patch(h, patch.weights)
    else:
        h.update(patch if isinstance(patch, (str, int, float, bool)) or patch is None else type(patch).__name__)


def model_fingerprint(model) -> str:
    """Identity of a host MODEL (ModelPatcher): base weights, weight patches (LoRAs with their
    strengths), object patches such as the sampling shift, and model options that are plain data."""
    h = Hasher(type(model.model).__name__)
    h.update(weights_fingerprint(model.model.diffusion_model, backup=getattr(model, "backup", None),
                                 prefix="diffusion_model."))
    h.update(_patches_fingerprint(getattr(model, "patches", {}) or {}))
    try:
        ms = model.get_model_object("model_sampling")
        h.update([getattr(ms, "shift", None), getattr(ms, "multiplier", None)])
        if hasattr(ms, "sigmas"):
            h.update(_sample(ms.sigmas, 32))
    except Exception:
        pass
    for name in sorted(getattr(model, "object_patches", {}) or {}):
        h.update(name)
    opts = getattr(model, "model_options", {}) or {}
    h.update(_plain(opts))
    return h.hexdigest()


def _plain(value: Any, depth: int = 0) -> Any:
    """The plain-data skeleton of nested options (callables reduced to their qualified names)."""
    if depth > 6:
        return "..."
    if isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "detach"):
        return ("tensor", tuple(value.shape))
    return getattr(value, "__qualname__", type(value).__qualname__)


def vae_fingerprint(vae) -> str:
    """Identity of a host VAE: its class and sampled weights."""
    h = Hasher(type(vae.first_stage_model).__name__)
    h.update(weights_fingerprint(vae.first_stage_model))
    h.update(str(getattr(vae, "vae_dtype", "")))
    return h.hexdigest()


def conditioning_fingerprint(cond) -> str:
    """Hash of a CONDITIONING list: every tensor and plain value (objects by type)."""
    h = Hasher()
    for entry in cond or []:
        h.update(entry[0])
        for k in sorted(entry[1]):
            v = entry[1][k]
            h.update(k)
            if hasattr(v, "penultimate_hidden_states"):
                h.update(clip_vision_fingerprint(v))
            else:
                h.update(_plain(v) if not hasattr(v, "detach") else v)
    return h.hexdigest()


def clip_vision_fingerprint(output) -> str:
    if output is None:
        return "none"
    return Hasher(getattr(output, "penultimate_hidden_states", None)).hexdigest()


# -- cache ------------------------------------------------------------------------------------

def default_root() -> str:
    env = os.environ.get("WAN_ANIMATE_KIT_CACHE_DIR")
    if env:
        return env
    import folder_paths

    getter = getattr(folder_paths, "get_system_user_directory", None)
    if getter is not None:
        base = getter("wan_animate_kit")
    else:  # hosts older than the system-user folders
        base = os.path.join(folder_paths.get_user_directory(), "__wan_animate_kit")
    return os.path.join(base, "segments")


def max_cache_bytes() -> int:
    """The size cap of the marked job folders from ``$WAN_ANIMATE_KIT_CACHE_MAX_GB`` (default 20 GB).
    A value that is not a number >= 0 is ignored with a warning."""
    text = os.environ.get(MAX_GB_ENV, "").strip()
    gb = DEFAULT_MAX_GB
    if text:
        try:
            gb = float(text)
            if not (gb >= 0 and gb != float("inf")):
                raise ValueError(text)
        except ValueError:
            log.warning("Wan-Animate Kit: %s=%r is not a number of GB >= 0; using %g", MAX_GB_ENV, text,
                        DEFAULT_MAX_GB)
            gb = DEFAULT_MAX_GB
    return int(gb * 1024 ** 3)


def is_cache_entry(path: str) -> bool:
    """True for a real folder (not a link) holding the pack's marker file with its text."""
    marker = os.path.join(path, MARKER)
    try:
        if os.path.islink(path) or not os.path.isdir(path) or os.path.islink(marker) or not os.path.isfile(marker):
            return False
        with open(marker, encoding="utf-8", errors="replace") as f:
            return f.read(len(MARKER_TEXT) + 1) == MARKER_TEXT
    except OSError:
        return False


def _folder_bytes(path: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


class SegmentCache:
    """Finished segments of one job on disk. ``enabled=False`` makes every call a no-op."""

    def __init__(self, job_key: str, root: str | None = None, enabled: bool = True, max_bytes: int | None = None):
        self.enabled = bool(enabled)
        self.job_key = job_key
        self.root = root if root is not None else (default_root() if enabled else "")
        self.dir = os.path.join(self.root, job_key) if enabled else ""
        self.max_bytes = max_cache_bytes() if max_bytes is None else int(max_bytes)
        self.loaded: list[int] = []
        self.saved: list[int] = []
        if self.enabled:
            try:
                os.makedirs(self.dir, exist_ok=True)
                if not is_cache_entry(self.dir):
                    with open(os.path.join(self.dir, MARKER), "w", encoding="utf-8") as f:
                        f.write(MARKER_TEXT)
                os.utime(self.dir)
            except OSError as e:  # a read-only or missing drive must not stop the job
                log.warning("Wan-Animate Kit: segment cache disabled, cannot use %s (%s)", self.dir, e)
                self.enabled = False
                return
            self.prune()

    def segment_key(self, index: int, inputs: Iterable[Any]) -> str:
        return Hasher(self.job_key, int(index), list(inputs)).hexdigest()

    def _path(self, index: int, key: str) -> str:
        return os.path.join(self.dir, f"seg{index:05d}_{key}.npy")

    def load(self, index: int, key: str, shape: tuple[int, ...]) -> np.ndarray | None:
        """The stored frames of segment ``index`` under ``key``, or None (absent or unreadable)."""
        if not self.enabled:
            return None
        path = self._path(index, key)
        if not os.path.exists(path):
            return None
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as e:  # truncated file of a crash during the write: resample
            log.warning("Wan-Animate Kit: ignoring unreadable cached segment %s (%s)", path, e)
            return None
        if arr.dtype != np.uint8 or tuple(arr.shape) != tuple(shape):
            log.warning("Wan-Animate Kit: ignoring cached segment %s of shape %s, expected %s", path, arr.shape, shape)
            return None
        self.loaded.append(index)
        return arr

    def save(self, index: int, key: str, frames: np.ndarray) -> None:
        if not self.enabled:
            return
        path = self._path(index, key)
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as f:
                np.save(f, np.ascontiguousarray(frames, np.uint8), allow_pickle=False)
            os.replace(tmp, path)  # atomic: a crash never leaves a half-written segment under its name
        except OSError as e:  # e.g. disk full: keep going without this segment on disk
            log.warning("Wan-Animate Kit: could not cache segment %d in %s (%s)", index, self.dir, e)
            try:
                os.remove(tmp)
            except OSError:
                pass
            return
        self.saved.append(index)
        self.prune()  # keep the size cap as the job grows (its own folder is never pruned)

    def write_info(self, info: dict) -> None:
        if self.enabled:
            try:
                with open(os.path.join(self.dir, "job.json"), "w") as f:
                    json.dump(info, f, indent=1, default=str)
            except OSError:
                pass

    def finish(self) -> None:
        """The job is complete: drop its segments."""
        if self.enabled and os.path.isdir(self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)

    def prune(self, max_age: float = STALE_SECONDS, max_bytes: int | None = None) -> list[str]:
        """Remove the pack's other job folders: those untouched for ``max_age`` seconds, then the
        oldest until all marked folders (this job's included) fit in ``max_bytes`` (default: the
        cache's cap). Entries without the marker, links and this job's folder are never touched.
        Returns the removed paths."""
        if not self.enabled:
            return []
        cap = self.max_bytes if max_bytes is None else int(max_bytes)
        now = time.time()
        try:
            entries = [e.path for e in os.scandir(self.root) if e.name != self.job_key]
        except OSError:
            return []
        ours = []
        for path in entries:
            if is_cache_entry(path):
                try:
                    ours.append((os.stat(path).st_mtime, path))
                except OSError:
                    pass
        ours.sort()  # oldest first
        removed = []
        kept = []
        for mtime, path in ours:
            if now - mtime > max_age:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
            else:
                kept.append((path, _folder_bytes(path)))
        total = _folder_bytes(self.dir) + sum(size for _, size in kept)
        for path, size in kept:
            if total <= cap:
                break
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
            total -= size
        if removed:
            log.info("Wan-Animate Kit: segment cache pruned %d old job folder(s) in %s", len(removed), self.root)
        return removed
