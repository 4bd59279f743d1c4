"""models/host_memory.py outside the host and with a stand-in host: which device 'auto' means, where a
model waits, which onnxruntime device a pose run uses, and that the CPU never asks for room."""
from __future__ import annotations

import types

import pytest
import torch

from wan_animate_kit.models import host_memory


def _host(monkeypatch, device, offload="cpu", calls=None):
    calls = [] if calls is None else calls
    fake = types.SimpleNamespace(
        get_torch_device=lambda: torch.device(device),
        unet_offload_device=lambda: torch.device(offload),
        free_memory=lambda need, dev, keep_loaded=[]: calls.append(("free", need, dev)),
        soft_empty_cache=lambda force=False: calls.append(("empty",)))
    monkeypatch.setattr(host_memory, "_model_management", lambda: fake)
    return calls


def test_outside_the_host(monkeypatch):
    monkeypatch.setattr(host_memory, "_model_management", lambda: None)
    expected = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert host_memory.torch_device() == expected and host_memory.resolve_device("auto") == expected
    assert host_memory.offload_device() == torch.device("cpu")
    host_memory.free_memory(1 << 30, torch.device("cuda", 0))  # nothing to ask


def test_auto_follows_the_host_and_cpu_never_asks_for_room(monkeypatch):
    calls = _host(monkeypatch, "cpu")  # a host started with --cpu
    assert host_memory.resolve_device("auto") == torch.device("cpu")
    assert host_memory.onnx_device("auto") == ("cpu", None, None)  # the CPU provider even with onnxruntime-gpu
    host_memory.free_memory(123, torch.device("cpu"))
    assert calls == []
    calls = _host(monkeypatch, "cuda:1", offload="cpu")
    assert host_memory.resolve_device("auto") == torch.device("cuda", 1)
    assert host_memory.onnx_device("auto") == ("auto", 1, torch.device("cuda", 1))
    assert host_memory.onnx_device("cuda") == ("cuda", 1, torch.device("cuda", 1))
    assert host_memory.onnx_device("cpu") == ("cpu", None, None)
    assert host_memory.storage_device(torch.device("cuda", 1)) == torch.device("cpu")
    assert host_memory.storage_device(torch.device("cpu")) == torch.device("cpu")
    host_memory.free_memory(123, torch.device("cuda", 1))
    host_memory.empty_cache()
    assert calls == [("free", 123, torch.device("cuda", 1)), ("empty",)]
    _host(monkeypatch, "cuda:0", offload="cuda:0")  # --highvram: the host keeps models on the GPU
    assert host_memory.storage_device(torch.device("cuda", 0)) == torch.device("cuda", 0)
    assert host_memory.storage_device(torch.device("cpu")) == torch.device("cpu")
    _host(monkeypatch, "mps")  # a host on another accelerator: onnxruntime's CUDA provider does not apply
    assert host_memory.onnx_device("auto") == ("cpu", None, None)


def test_explicit_choices(monkeypatch):
    _host(monkeypatch, "cpu")
    assert host_memory.resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            host_memory.resolve_device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        host_memory.resolve_device("tpu")


def test_module_bytes_counts_shared_tensors_once():
    lin = torch.nn.Linear(4, 3)
    tied = torch.nn.Sequential(lin, lin)
    assert host_memory.module_bytes(lin) == (4 * 3 + 3) * 4 == host_memory.module_bytes(tied)
