"""Benchmark: frames/s of detect_and_estimate, crops batched across frames vs one crop per call.

Runs the pack's real pipeline (detector parsing, crops, ViTPose batches, DARK decoding, back-projection)
on the frames of a video with:
* a ViTPose-B-sized random-weight ONNX (patch 16, dim 768, 12 layers, 12 heads, deconv head; the
  real ViTPose-WholeBody contract), exported once and cached outside the repo;
* a tiny detector ONNX that returns 5 fixed person boxes per frame (vtest.avi shows several people).

Usage (from the repo root):
    python bench/bench_pose_extract.py --frames 100
    python bench/bench_pose_extract.py --frames 24 --vit-depth 2   # a cheaper network, same contract
Prints frames/s for each mode, the share of time spent inside the pose network, and the speedup.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import sys
import time

import cv2
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACK = "wan_animate_kit"


def _import_pack():
    if PACK not in sys.modules:
        spec = importlib.util.spec_from_file_location(PACK, ROOT / "__init__.py",
                                                      submodule_search_locations=[str(ROOT)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[PACK] = module
        spec.loader.exec_module(module)
    sys.path.insert(0, str(ROOT / "tests"))
    import tiny_onnx  # noqa: E402
    from wan_animate_kit.models import onnx_pose, pose_runner  # noqa: E402
    return tiny_onnx, onnx_pose, pose_runner


# people in vtest.avi as fractions of the frame (x1, y1, x2, y2); the detector returns them every frame
PEOPLE = [(0.325, 0.378, 0.372, 0.540), (0.648, 0.268, 0.694, 0.410), (0.830, 0.412, 0.897, 0.563),
          (0.130, 0.260, 0.185, 0.435), (0.730, 0.520, 0.810, 0.730)]


class TimedSession:
    """Delegates to an onnxruntime session and adds up the seconds spent in run()."""

    def __init__(self, session):
        self.session = session
        self.seconds = 0.0
        self.calls = 0

    def run(self, *args, **kwargs):
        t = time.perf_counter()
        try:
            return self.session.run(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t
            self.calls += 1

    def __getattr__(self, name):
        return getattr(self.session, name)


def read_frames(video: str, count: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(video)
    if not cap.isOpened():
        raise SystemExit(f"cannot open {video}")
    frames = []
    while len(frames) < count:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    if not frames:
        raise SystemExit(f"no frames decoded from {video}")
    return frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", default=str(ROOT.parent / "shared" / "media" / "vtest.avi"),
                    help="video to run on (default: ../shared/media/vtest.avi beside the checkout)")
    ap.add_argument("--frames", type=int, default=100, help="frames to process (default 100)")
    ap.add_argument("--batch", type=int, default=16, help="crops per ViTPose run in the batched mode")
    ap.add_argument("--vit-depth", type=int, default=12, help="transformer layers (12 = ViTPose-B)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0 = default)")
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/wan_animate_kit/bench"))
    args = ap.parse_args()

    tiny_onnx, onnx_pose, pose_runner = _import_pack()
    cache = pathlib.Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    vit_path = cache / f"vitpose_b_random_depth{args.vit_depth}.onnx"
    if not vit_path.exists():
        t = time.perf_counter()
        tiny_onnx.make_vitpose_b(vit_path, depth=args.vit_depth)
        print(f"exported {vit_path.name} ({vit_path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f} s")

    frames = read_frames(args.video, args.frames)
    h, w = frames[0].shape[:2]
    rows = np.array([[x1 * 640, y1 * 640, x2 * 640, y2 * 640, 0.9 - 0.05 * i, 0.0]
                     for i, (x1, y1, x2, y2) in enumerate(PEOPLE)])
    det_path = cache / "detector_vtest_5people.onnx"
    tiny_onnx.make_detector(det_path, boxes=rows, dynamic_batch=True)

    threads = args.threads or None
    det_session = TimedSession(onnx_pose.load_session(det_path, args.device, threads=threads))
    pose_session = TimedSession(onnx_pose.load_session(vit_path, args.device, threads=threads))
    detector = onnx_pose.PersonDetector(det_session, name=det_path.name)
    pose = onnx_pose.WholeBodyPose(pose_session, name=vit_path.name)
    print(f"video {pathlib.Path(args.video).name} {w}x{h}, {len(frames)} frames, {len(PEOPLE)} people/frame, "
          f"ViT depth {args.vit_depth}, providers {pose.providers}, cpu cores {os.cpu_count()}")

    # warm-up: first runs allocate and pick kernels
    pose_runner.detect_and_estimate(frames[:1], detector, pose, batch_size=args.batch)

    results = {}
    for label, bs in (("batched", args.batch), ("one crop at a time", 1)):
        pose_session.seconds = det_session.seconds = 0.0
        pose_session.calls = 0
        t = time.perf_counter()
        out = pose_runner.detect_and_estimate(frames, detector, pose, batch_size=bs)
        wall = time.perf_counter() - t
        crops = sum(o.keypoints.shape[0] for o in out)
        results[label] = (wall, out)
        print(f"{label:>20} (batch {bs:>2}): {len(frames) / wall:7.3f} frames/s, {crops / wall:7.2f} crops/s, "
              f"{wall:7.1f} s total, {pose_session.calls} pose runs, network {pose_session.seconds / wall:5.1%}, "
              f"detector {det_session.seconds:5.2f} s, rest (crop/decode/parse) "
              f"{wall - pose_session.seconds - det_session.seconds:5.2f} s")

    (t_b, out_b), (t_s, out_s) = results["batched"], results["one crop at a time"]
    diff = max(float(np.abs(a.keypoints - b.keypoints).max()) for a, b in zip(out_b, out_s))
    print(f"speedup batched vs one-at-a-time: {t_s / t_b:.2f}x; max keypoint difference {diff:.2e} px")


if __name__ == "__main__":
    main()
