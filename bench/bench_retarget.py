"""Time pose retargeting per frame on one core.

    python bench/bench_retarget.py [--frames 1000] [--repeat 5]

The driving clip is a synthetic walking skeleton (133 COCO-WholeBody points, 1920x1080 canvas, a
second person beside the subject, jitter and about 5 % low-confidence points); the reference is the
same kind of body with other proportions on a 720x1280 canvas. Prints ms per frame for both modes.
Goal: <= 1 ms a frame.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def _import_pack():
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "scripts"))
    from pack_import import register_pack

    register_pack()
    from wan_animate_kit.preprocess import pose_types, retarget

    return pose_types, retarget


# COCO index -> (parent COCO index, offset from the parent at the standing pose, in body units)
_BODY = {
    0: (None, (0.0, -0.9)), 1: (0, (0.1, -0.1)), 2: (0, (-0.1, -0.1)), 3: (1, (0.15, 0.05)),
    4: (2, (-0.15, 0.05)), 5: (None, (0.5, 0.0)), 6: (None, (-0.5, 0.0)), 7: (5, (0.1, 0.8)),
    8: (6, (-0.1, 0.8)), 9: (7, (0.05, 0.7)), 10: (8, (-0.05, 0.7)), 11: (None, (0.3, 1.9)),
    12: (None, (-0.3, 1.9)), 13: (11, (0.0, 1.1)), 14: (12, (0.0, 1.1)), 15: (13, (0.0, 1.05)),
    16: (14, (0.0, 1.05)), 17: (15, (0.25, 0.15)), 18: (15, (0.15, 0.2)), 19: (15, (-0.05, 0.1)),
    20: (16, (-0.25, 0.15)), 21: (16, (-0.15, 0.2)), 22: (16, (0.05, 0.1)),
}


def skeleton_clip(frames: int, width: int, height: int, unit: float, rng: np.random.Generator,
                  legs: float = 1.0) -> np.ndarray:
    """[T, 133, 3] walking body: swinging limbs, drifting root, jitter, a few weak points."""
    t = np.arange(frames)[:, None]
    kp = np.zeros((frames, 133, 3))
    root = np.stack([width * 0.3 + 0.4 * width * t[:, 0] / max(frames, 1), np.full(frames, height * 0.15)], 1)
    swing = 0.35 * np.sin(t[:, 0] * 0.2)
    for i in range(23):
        parent, (dx, dy) = _BODY[i]
        scale = legs if i >= 11 else 1.0
        base = root if parent is None else kp[:, parent, :2]
        if i in (7, 9, 13, 15):
            dx = dx + swing * (1 if i in (7, 9) else -1) * 0.6
        if i in (8, 10, 14, 16):
            dx = dx - swing * (1 if i in (8, 10) else -1) * 0.6
        kp[:, i, :2] = base + np.stack([np.broadcast_to(dx, (frames,)), np.full(frames, dy)], 1) * unit * scale
    kp[:, 23:91, :2] = kp[:, [0], :2] + rng.uniform(-0.15, 0.15, (frames, 68, 2)) * unit
    kp[:, 91:112, :2] = kp[:, [9], :2] + rng.uniform(-0.2, 0.2, (frames, 21, 2)) * unit
    kp[:, 112:133, :2] = kp[:, [10], :2] + rng.uniform(-0.2, 0.2, (frames, 21, 2)) * unit
    kp[..., :2] += rng.normal(0, 0.01 * unit, (frames, 133, 2))
    kp[..., 2] = rng.uniform(0.6, 1.0, (frames, 133))
    kp[..., 2] = np.where(rng.random((frames, 133)) < 0.05, 0.2, kp[..., 2])
    return kp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    pose_types, rt = _import_pack()
    rng = np.random.default_rng(0)
    subject = skeleton_clip(args.frames, 1920, 1080, 180.0, rng)
    subject[..., 1] += np.sin(np.arange(args.frames) * 0.05)[:, None] * 20  # bobbing
    other = subject.copy()
    other[..., 0] += 300
    drv = pose_types.PoseSequence(np.stack([other, subject], 1).astype(np.float32), (1, 2), 1920, 1080,
                                  subject=1, fps=30.0)
    ref_kp = skeleton_clip(1, 720, 1280, 170.0, rng, legs=1.2)
    ref_kp[..., 2] = 0.95
    ref = pose_types.PoseSequence(ref_kp[:, None].astype(np.float32), (0,), 720, 1280)
    print(f"retarget {args.frames} frames (1920x1080 driver -> 720x1280 reference), best of {args.repeat}, "
          f"OMP/BLAS threads = {os.environ['OMP_NUM_THREADS']}")
    for mode in ("default", "official"):
        rt.retarget(drv, ref, mode=mode, out_width=720, out_height=1280)  # warm-up
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            res = rt.retarget(drv, ref, mode=mode, out_width=720, out_height=1280)
            best = min(best, time.perf_counter() - t0)
        print(f"  {mode:8s}: {best * 1e3:8.2f} ms total, {best * 1e3 / args.frames:.4f} ms/frame "
              f"(anchor frame {res.anchor_frame}, {res.body_type}, scale {res.scale:.3f}, "
              f"{len(res.warnings)} warnings)")
        for w in res.warnings:
            print(f"      warning: {w}")


if __name__ == "__main__":
    main()
