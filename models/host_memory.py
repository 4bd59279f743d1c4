"""The host's device choice and memory management, for models the host does not manage itself.

SAM2 and the ONNX pose sessions are not ``ModelPatcher`` models, so the host would neither offload
them nor count them when it makes room for the diffusion model. They follow the pattern of the
host's own upscale-model node instead (ComfyUI: comfy_extras/nodes_upscale_model.py,
ImageUpscaleWithModel.execute): ask ``comfy.model_management.free_memory`` for room on the host's
torch device, run there, then go back to the offload device and empty the cache.

Everything here degrades to plain torch outside the host (benches, unit tests): the torch device is
CUDA when available, the offload device the CPU, and freeing memory does nothing. ``comfy`` is
imported inside the functions only.
"""
from __future__ import annotations

import gc
import logging
from typing import Any

import torch

log = logging.getLogger(__name__)

#: Device choices of the loader nodes: 'auto' follows the host.
DEVICE_CHOICES = ("auto", "cuda", "cpu")


def _model_management() -> Any | None:
    try:
        import comfy.model_management as mm
    except Exception:  # outside the host
        return None
    return mm


def torch_device() -> torch.device:
    """The host's compute device (``get_torch_device``: the CPU under ``--cpu``); outside the host
    CUDA when available, else the CPU."""
    mm = _model_management()
    if mm is not None:
        return torch.device(mm.get_torch_device())
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def offload_device() -> torch.device:
    """Where the host keeps models between runs (``unet_offload_device``: the CPU, or the GPU with
    ``--highvram`` / ``--gpu-only``); outside the host the CPU."""
    mm = _model_management()
    if mm is not None:
        return torch.device(mm.unet_offload_device())
    return torch.device("cpu")


def resolve_device(choice: str | torch.device) -> torch.device:
    """A loader's device choice as a torch device: 'auto' = the host's device, 'cpu', or 'cuda'
    (the host's CUDA device when the host runs on one, else the current CUDA device).

    Raises ValueError for 'cuda' when torch sees no CUDA GPU, and for unknown names.
    """
    text = str(choice).strip().lower()
    if text == "auto":
        return torch_device()
    if text == "cpu":
        return torch.device("cpu")
    try:
        dev = torch.device(text)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {choice!r}; choose one of {', '.join(DEVICE_CHOICES)}") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {choice!r} was chosen but torch sees no CUDA GPU")
        if dev.index is None:
            host = torch_device()
            return host if host.type == "cuda" else torch.device("cuda", torch.cuda.current_device())
    return dev


def storage_device(run_device: torch.device) -> torch.device:
    """Where a model that runs on ``run_device`` waits between runs: the host's offload device, or
    the CPU when it runs on the CPU (never a GPU for a model that runs on the CPU)."""
    if run_device.type == "cpu":
        return torch.device("cpu")
    off = offload_device()
    return off if off.type in ("cpu", run_device.type) else torch.device("cpu")


def free_memory(bytes_needed: int, device: torch.device) -> None:
    """Ask the host to unload what it must so ``bytes_needed`` fit on ``device`` (a GPU); nothing on
    the CPU or outside the host."""
    if device.type == "cpu":
        return
    mm = _model_management()
    if mm is None:
        return
    mm.free_memory(int(bytes_needed), device)


def empty_cache() -> None:
    """Collect garbage and give cached accelerator memory back (the host's ``soft_empty_cache``)."""
    gc.collect()
    mm = _model_management()
    if mm is not None:
        mm.soft_empty_cache()
    elif torch.cuda.is_available():
        torch.cuda.empty_cache()


def module_bytes(module: torch.nn.Module) -> int:
    """Bytes of a module's parameters and buffers."""
    seen: set[int] = set()
    total = 0
    for tensor in (*module.parameters(), *module.buffers()):
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        total += tensor.nelement() * tensor.element_size()
    return total


def onnx_device(choice: str) -> tuple[str, int | None, torch.device | None]:
    """A pose loader's device choice for onnxruntime: (device for ``onnx_pose.load_session``, CUDA
    device id or None, the torch device to free memory on or None for the CPU).

    'auto' follows the host: a CUDA host device -> 'auto' on that GPU (onnxruntime-gpu's CUDA
    provider, the CPU with a warning when it cannot start); anything else, ``--cpu`` included ->
    'cpu' (the CPU provider even when onnxruntime-gpu is installed). 'cuda' -> the host's CUDA
    device (or the current one); 'cpu' -> 'cpu'.
    """
    text = str(choice).strip().lower()
    if text == "cpu":
        return "cpu", None, None
    host = torch_device()
    if text == "auto" and host.type != "cuda":
        return "cpu", None, None
    if host.type == "cuda":
        gpu = host if host.index is not None else torch.device("cuda", 0)
    elif torch.cuda.is_available():
        gpu = torch.device("cuda", torch.cuda.current_device())
    else:
        gpu = torch.device("cuda", 0)
    return text, gpu.index, gpu
