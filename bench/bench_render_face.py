"""Time skeleton rendering + face box + 512x512 face crop per 720p frame on one core.

    python bench/bench_render_face.py [--frames 120] [--width 1280 --height 720] [--face-px 160]

A synthetic walking person (body, feet, 68 face landmarks, both hands, a little keypoint noise) on
random-noise frames. Goal: <= 5 ms a frame for render + face crop.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time

import cv2
import numpy as np


def _import_pack():
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "scripts"))
    from pack_import import register_pack

    register_pack()
    from wan_animate_kit.preprocess import face, pose_types, render

    return face, pose_types, render


def walking_person(t_len: int, w: int, h: int, face_px: float, pt) -> np.ndarray:
    rng = np.random.default_rng(0)
    s = h / 720
    kps = np.zeros((t_len, 133, 3), np.float32)
    for t in range(t_len):
        cx, top = w * (0.3 + 0.4 * t / max(t_len - 1, 1)), 80 * s
        swing = 40 * s * np.sin(0.3 * t)
        k = kps[t]
        pts = {pt.NOSE: (0, 60), pt.L_EYE: (12, 50), pt.R_EYE: (-12, 50), pt.L_EAR: (25, 55),
               pt.R_EAR: (-25, 55), pt.L_SHOULDER: (70, 140), pt.R_SHOULDER: (-70, 140),
               pt.L_ELBOW: (90, 240), pt.R_ELBOW: (-90, 240), pt.L_WRIST: (95, 330), pt.R_WRIST: (-95, 330),
               pt.L_HIP: (45, 340), pt.R_HIP: (-45, 340), pt.L_KNEE: (50, 460), pt.R_KNEE: (-50, 460),
               pt.L_ANKLE: (50, 580), pt.R_ANKLE: (-50, 580)}
        for i, (dx, dy) in pts.items():
            k[i] = (cx + dx * s + (swing if i in (pt.L_WRIST, pt.R_KNEE) else 0), top + dy * s, 0.9)
        for i, (dx, dy) in zip(range(17, 23), [(60, 610), (70, 605), (40, 600), (-60, 610), (-70, 605), (-40, 600)]):
            k[i] = (cx + dx * s, top + dy * s, 0.8)
        ang = np.linspace(0, 2 * np.pi, 68, endpoint=False)
        k[pt.FACE, 0] = cx + face_px / 2 * np.cos(ang)
        k[pt.FACE, 1] = top + 60 * s + face_px / 2 * np.sin(ang)
        k[pt.FACE, 2] = 0.8
        for hand, wrist in ((pt.LEFT_HAND, pt.L_WRIST), (pt.RIGHT_HAND, pt.R_WRIST)):
            k[hand, 0] = k[wrist, 0] + np.linspace(0, 40 * s, 21)
            k[hand, 1] = k[wrist, 1] + np.tile([0, 8, 16, 24, 32, 40, 30], 3)[:21] * s
            k[hand, 2] = 0.7
        k[:, :2] += rng.normal(0, 1.0, (133, 2))
    return kps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--face-px", type=float, default=160.0, help="face landmark extent in pixels")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    face, pt, render = _import_pack()
    t_len, w, h = args.frames, args.width, args.height
    kps = walking_person(t_len, w, h, args.face_px, pt)
    frames = np.random.default_rng(1).integers(0, 256, (t_len, h, w, 3), dtype=np.uint8)

    border = cv2.BORDER_CONSTANT
    boxes, low = face.face_boxes(kps, w, h, mode="square", fps=30.0)
    official = face.face_boxes(kps, w, h, mode="official")[0]

    def per_frame(fn) -> float:
        """Median over ``repeats`` passes of the mean seconds per frame of fn(t)."""
        fn(0)
        runs = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for t in range(t_len):
                fn(t)
            runs.append((time.perf_counter() - t0) / t_len)
        return float(np.median(runs))

    t_render = per_frame(lambda t: render.render_pose_frame(kps[t], w, h))
    t_crop = per_frame(lambda t: face._crop_one(frames[t], boxes[t], 512, border))
    t_official = per_frame(lambda t: face.crop_faces_official(frames[t:t + 1], official[t:t + 1], 512))
    runs = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        face.face_boxes(kps, w, h, mode="square", fps=30.0)
        runs.append((time.perf_counter() - t0) / t_len)
    t_boxes = float(np.median(runs))
    batch = []
    for _ in range(3):  # the whole call, allocating [T, 512, 512, 3]; the first one pays warm-up costs
        t0 = time.perf_counter()
        crops = face.crop_faces(frames, boxes, size=512)
        batch.append((time.perf_counter() - t0) / t_len)

    total = t_render + t_boxes + t_crop
    print(f"{t_len} frames {w}x{h}, face {args.face_px:.0f} px (box {boxes[0, 2] - boxes[0, 0]:.0f} px), "
          f"cv2 threads {cv2.getNumThreads()}, median of {args.repeats} passes")
    print(f"render_pose_frame          {t_render * 1e3:7.3f} ms/frame")
    print(f"face_boxes (square)        {t_boxes * 1e3:7.3f} ms/frame")
    print(f"face crop 512 (square)     {t_crop * 1e3:7.3f} ms/frame")
    print(f"face crop 512 (official)   {t_official * 1e3:7.3f} ms/frame")
    print(f"crop_faces whole call      {batch[0] * 1e3:7.3f} ms/frame first, {min(batch[1:]) * 1e3:.3f} repeated (best) "
          f"({crops.nbytes / 2**20:.0f} MiB output; low-conf frames {len(low)})")
    print(f"total render + face        {total * 1e3:7.3f} ms/frame   goal <= 5 ms: "
          f"{'OK' if total <= 5e-3 else 'OVER'}")


if __name__ == "__main__":
    main()
