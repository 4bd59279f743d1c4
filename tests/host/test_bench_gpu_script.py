"""bench/bench_sampler_gpu.py runs end to end on the CPU with a shrunk DiT (it waits for a GPU
session for its real numbers, so the suite keeps it from rotting): both sides produce every frame,
and its per-step timer sees one DiT forward per step and segment."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_gpu_bench_runs_shrunk_on_cpu(host, tmp_path):
    out = tmp_path / "gpu.json"
    env = dict(os.environ, COMFYUI_DIR=str(host))
    cmd = [sys.executable, str(ROOT / "bench" / "bench_sampler_gpu.py"), "--offline", "--device", "cpu",
           "--dim", "128", "--ffn", "256", "--layers", "5", "--vae-dim", "16", "--size", "64x48",
           "--segment", "9", "--segments", "2", "--steps", "2", "--text-tokens", "8", "--no-face", "--replace",
           "--json", str(out)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["frames"] == 9 + (9 - 5)
    assert [r["side"] for r in result["rows"]] == ["warm", "core", "ours"]
    for row in result["rows"]:
        assert row["frames"] == result["frames"], row
        assert row["dit_calls"] == 2 * 2, row  # 2 segments x 2 steps at cfg 1
        assert 0 < row["dit_total_s"] < row["wall_s"], row
    assert set(result["ratio"]) == {"wall_s", "dit_step_median_s", "rest_s"}
    assert "Replacement" in proc.stdout


def test_gpu_bench_rejects_bad_size(host, tmp_path):
    cmd = [sys.executable, str(ROOT / "bench" / "bench_sampler_gpu.py"), "--device", "cpu", "--size", "70x48"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "multiples of 16" in proc.stderr
