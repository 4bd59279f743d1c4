"""Deterministic tiny ONNX models that obey the contracts of the real pose-pipeline networks.

* ``make_detector``: a YOLOv10 end-to-end stand-in, input ``images`` [1|N, 3, 640, 640], output
  [1|N, 300, 6]; it returns rows fixed at build time (padded with zero-score rows), so tests know
  the boxes. The input takes part in the graph (``+ 0 * mean(input)``).
* ``make_vitpose``: a ViTPose-WholeBody stand-in, input [N, 3, 256, 192], output [N, 133, 64, 48]
  Gaussian heatmaps peaking at known sub-pixel positions; ``input_gain`` adds a small
  input-dependent term so that different crops give different keypoints.
* ``make_wrong_vitpose`` / ``make_wrong_detector``: plausible models with the wrong contract.
* ``make_vitpose_b``: a ViTPose-B-sized network with random weights (patch 16, dim 768, 12 layers,
  12 heads, deconvolution head) for benchmarks.

``OnnxCache(folder)`` builds each model once per folder (e.g. one from pytest's tmp_path_factory).
Exports use torch.onnx.export (the TorchScript exporter, falling back to the dynamo one), opset 17.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import warnings
from typing import Callable

import numpy as np
import torch
from torch import nn

OPSET = 17
DET_SIZE = 640
POSE_H, POSE_W = 256, 192
HM_H, HM_W = 64, 48
NUM_KP = 133


def _export(module: nn.Module, example: torch.Tensor, path: pathlib.Path, input_name: str,
            output_name: str, dynamic_batch: bool) -> pathlib.Path:
    """Export ``module`` to ``path`` atomically (write a temp file, then rename)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    module.eval()
    axes = {input_name: {0: "batch"}, output_name: {0: "batch"}} if dynamic_batch else None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, (example,), str(tmp), dynamo=False, opset_version=OPSET,
                              input_names=[input_name], output_names=[output_name], dynamic_axes=axes)
        except Exception:  # the TorchScript exporter may be gone in a later torch
            shapes = ({"x": {0: torch.export.Dim("batch", min=1, max=1024)}} if dynamic_batch else None)
            torch.onnx.export(module, (example,), str(tmp), dynamo=True, opset_version=max(OPSET, 18),
                              input_names=[input_name], output_names=[output_name],
                              dynamic_shapes=shapes, external_data=False)
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------------------- detector

def detector_rows(boxes: np.ndarray | None, num_rows: int = 300) -> np.ndarray:
    """Pad rows (x1, y1, x2, y2, score, class) in 640x640 input pixels to [num_rows, 6]."""
    if boxes is None:
        boxes = np.array([[100.0, 80.0, 220.0, 400.0, 0.9, 0.0],
                          [300.0, 120.0, 380.0, 420.0, 0.8, 0.0],
                          [400.0, 300.0, 600.0, 500.0, 0.7, 2.0]])  # a car, dropped by the parser
    rows = np.zeros((num_rows, 6), dtype=np.float32)
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 6)
    rows[: b.shape[0]] = b
    return rows


class _ConstantRows(nn.Module):
    def __init__(self, rows: np.ndarray):
        super().__init__()
        self.register_buffer("rows", torch.from_numpy(np.ascontiguousarray(rows[None])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        zero = x.mean() * 0.0
        return self.rows.expand(x.shape[0], -1, -1) + zero


def make_detector(path: str | os.PathLike, boxes: np.ndarray | None = None,
                  dynamic_batch: bool = False, num_rows: int = 300) -> pathlib.Path:
    """YOLOv10 end-to-end stand-in returning ``boxes`` (rows of 6, 640-pixel space) for every frame."""
    module = _ConstantRows(detector_rows(boxes, num_rows))
    return _export(module, torch.zeros(1, 3, DET_SIZE, DET_SIZE), pathlib.Path(path), "images",
                   "output0", dynamic_batch)


def make_wrong_detector(path: str | os.PathLike) -> pathlib.Path:
    """A YOLOv8-style raw-head detector: output [1, 84, 8400] instead of [1, 300, 6]."""
    module = _ConstantRows(np.zeros((84, 8400), dtype=np.float32))
    return _export(module, torch.zeros(1, 3, DET_SIZE, DET_SIZE), pathlib.Path(path), "images",
                   "output0", False)


# ------------------------------------------------------------------------------------------ ViTPose

def default_peaks(seed: int = 0, num: int = NUM_KP) -> np.ndarray:
    """Seeded sub-pixel peak positions (x, y) in heatmap cells, at least 3 cells from the border."""
    rng = np.random.default_rng(seed)
    xs = rng.uniform(3.0, HM_W - 4.0, num)
    ys = rng.uniform(3.0, HM_H - 4.0, num)
    return np.stack([xs, ys], axis=1)


def gaussian_heatmaps(peaks: np.ndarray, sigma: float = 2.0, amplitude: float | np.ndarray = 0.9,
                      size: tuple[int, int] = (HM_W, HM_H)) -> np.ndarray:
    """Float32 [K, h, w] Gaussians centred at ``peaks`` [K, 2] (x, y) in cell coordinates."""
    p = np.asarray(peaks, dtype=np.float64).reshape(-1, 2)
    xs = np.arange(size[0], dtype=np.float64)
    ys = np.arange(size[1], dtype=np.float64)
    gx = np.exp(-((xs[None, :] - p[:, :1]) ** 2) / (2 * sigma ** 2))
    gy = np.exp(-((ys[None, :] - p[:, 1:]) ** 2) / (2 * sigma ** 2))
    amp = np.broadcast_to(np.asarray(amplitude, dtype=np.float64), (p.shape[0],))
    return (amp[:, None, None] * gy[:, :, None] * gx[:, None, :]).astype(np.float32)


class _GaussianPose(nn.Module):
    def __init__(self, heatmaps: np.ndarray, input_gain: float):
        super().__init__()
        self.register_buffer("hm", torch.from_numpy(np.ascontiguousarray(heatmaps[None])))
        self.gain = float(input_gain)
        self.pool = nn.AvgPool2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # [N, 1, 64, 48]: a crop-dependent term (zero effect when gain is 0, but the input is used)
        local = self.pool(x).mean(dim=1, keepdim=True)
        return self.hm.expand(x.shape[0], -1, -1, -1) + local * self.gain


def make_vitpose(path: str | os.PathLike, peaks: np.ndarray | None = None, dynamic_batch: bool = True,
                 input_gain: float = 0.0, sigma: float = 2.0,
                 amplitude: float | np.ndarray = 0.9) -> pathlib.Path:
    """ViTPose-WholeBody stand-in: [N, 3, 256, 192] -> Gaussian heatmaps [N, 133, 64, 48]."""
    peaks = default_peaks() if peaks is None else np.asarray(peaks, dtype=np.float64)
    if peaks.shape != (NUM_KP, 2):
        raise ValueError(f"make_vitpose needs peaks [133, 2], got {peaks.shape}")
    module = _GaussianPose(gaussian_heatmaps(peaks, sigma, amplitude), input_gain)
    return _export(module, torch.zeros(1, 3, POSE_H, POSE_W), pathlib.Path(path), "input", "heatmaps",
                   dynamic_batch)


def make_wrong_vitpose(path: str | os.PathLike) -> pathlib.Path:
    """A COCO-17 body-only pose model: output [N, 17, 64, 48] instead of 133 maps."""
    module = _GaussianPose(gaussian_heatmaps(default_peaks(num=17)), 0.0)
    return _export(module, torch.zeros(1, 3, POSE_H, POSE_W), pathlib.Path(path), "input", "heatmaps", True)


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, mlp)
        self.fc2 = nn.Linear(mlp, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = torch.softmax((q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5, dim=-1)
        x = x + self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.norm2(x))))


class _ViTPoseLike(nn.Module):
    """ViTPose-B layout: 16x16 patches -> 16x12 tokens, 12 blocks, two x2 deconvolutions, 1x1 conv."""

    def __init__(self, dim: int = 768, depth: int = 12, heads: int = 12, deconv: int = 256):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 16, 16)
        self.pos = nn.Parameter(torch.randn(1, (POSE_H // 16) * (POSE_W // 16), dim) * 0.02)
        self.blocks = nn.Sequential(*[_Block(dim, heads, dim * 4) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Sequential(
            nn.ConvTranspose2d(dim, deconv, 4, 2, 1, bias=False), nn.BatchNorm2d(deconv), nn.ReLU(),
            nn.ConvTranspose2d(deconv, deconv, 4, 2, 1, bias=False), nn.BatchNorm2d(deconv), nn.ReLU(),
            nn.Conv2d(deconv, NUM_KP, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.patch(x)  # [N, C, 16, 12]
        c, h, w = f.shape[1], f.shape[2], f.shape[3]
        t = self.norm(self.blocks(f.flatten(2).transpose(1, 2) + self.pos))
        return self.head(t.transpose(1, 2).reshape(-1, c, h, w))


def make_vitpose_b(path: str | os.PathLike, seed: int = 0, dynamic_batch: bool = True,
                   depth: int = 12) -> pathlib.Path:
    """A ViTPose-B-sized random-weight network with the real ViTPose-WholeBody contract (~90M params)."""
    torch.manual_seed(seed)
    module = _ViTPoseLike(depth=depth)
    return _export(module, torch.zeros(1, 3, POSE_H, POSE_W), pathlib.Path(path), "input", "heatmaps",
                   dynamic_batch)


# -------------------------------------------------------------------------------------------- cache

class OnnxCache:
    """Build each tiny model once per folder; the file name encodes the builder and its arguments."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = pathlib.Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def get(self, builder: Callable[..., pathlib.Path], **kwargs) -> pathlib.Path:
        key = json.dumps({k: np.asarray(v).round(6).tolist() if isinstance(v, np.ndarray) else v
                          for k, v in sorted(kwargs.items())}, sort_keys=True)
        digest = hashlib.sha1(f"{builder.__name__}:{key}".encode()).hexdigest()[:12]
        path = self.folder / f"{builder.__name__}_{digest}.onnx"
        if not path.exists():
            builder(path, **kwargs)
        return path
