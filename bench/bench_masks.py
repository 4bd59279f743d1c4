"""Time mask shaping (dilate 7x7 x3 -> block mask -> feather) per 720p frame on one core.

    python bench/bench_masks.py [--frames 60] [--width 1280 --height 720] [--grid 1] [--feather 8]

Masks are synthetic moving person-like blobs (head ellipse, torso, legs). Goal: <= 5 ms a frame.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time

import cv2
import numpy as np



def _import_masks():
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "scripts"))
    from pack_import import register_pack

    register_pack()
    from wan_animate_kit.preprocess import masks

    return masks


def person_masks(t: int, h: int, w: int) -> np.ndarray:
    out = np.zeros((t, h, w), np.uint8)
    for k in range(t):
        cx = int(w * (0.3 + 0.4 * k / max(t - 1, 1)))
        s = h / 720
        m = out[k]
        cv2.ellipse(m, (cx, int(160 * s)), (int(45 * s), int(60 * s)), 0, 0, 360, 1, -1)
        cv2.rectangle(m, (cx - int(90 * s), int(220 * s)), (cx + int(90 * s), int(450 * s)), 1, -1)
        cv2.line(m, (cx - int(40 * s), int(450 * s)), (cx - int(60 * s), int(690 * s)), 1, int(40 * s))
        cv2.line(m, (cx + int(40 * s), int(450 * s)), (cx + int(70 * s) + k % 20, int(690 * s)), 1, int(40 * s))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--grid", type=int, default=1, help="block grid kh = kw")
    ap.add_argument("--feather", type=float, default=8.0, help="feather radius in pixels")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    M = _import_masks()
    cv2.setNumThreads(1)
    masks = person_masks(args.frames, args.height, args.width)

    def timed(fn):
        best = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = fn()
            best = min(best, time.perf_counter() - t0)
        return out, best * 1000 / args.frames

    dil, t_dil = timed(lambda: M.dilate(masks, 7, 3))
    blk, t_blk = timed(lambda: M.block_mask(dil, args.grid, args.grid))
    _, t_fea = timed(lambda: M.feather(blk, args.feather))
    _, t_all = timed(lambda: M.feather(M.block_mask(M.dilate(masks, 7, 3), args.grid, args.grid), args.feather))
    env_frames = np.random.default_rng(0).random((args.frames, args.height, args.width, 3), dtype=np.float32)
    _, t_env = timed(lambda: M.environment_frames(env_frames, blk))
    print(f"{args.frames} frames {args.width}x{args.height}, one OpenCV thread, grid {args.grid}x{args.grid}, "
          f"feather {args.feather:g}px (best of {args.repeats})")
    print(f"  dilate 7x7 x3      {t_dil:6.2f} ms/frame")
    print(f"  block mask         {t_blk:6.2f} ms/frame")
    print(f"  feather            {t_fea:6.2f} ms/frame")
    print(f"  total shaping      {t_all:6.2f} ms/frame  (goal <= 5 ms: {'met' if t_all <= 5 else 'MISSED'})")
    print(f"  environment frames {t_env:6.2f} ms/frame  (float32 RGB, not part of the goal)")


if __name__ == "__main__":
    main()
