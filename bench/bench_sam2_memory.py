"""Peak RSS of chunked SAM2 segmentation for a short and a long clip (goal: long/short <= 1.25).

    python bench/bench_sam2_memory.py [--frames 100 800] [--chunk 400] [--image-size 256]
        [--decode-chunk 100] [--video ../shared/media/vtest.avi] [--collect] [--threads 2]

Uses the tiny random SAM 2.1 of tests/tiny_sam2.py at a 256^2 model size (masks are noise; the
memory behaviour is the real code path). Frames are decoded with OpenCV in batches of
``--decode-chunk`` and streamed into ``iter_segment_frames``; the video is looped when it is
shorter than the requested frame count (vtest.avi has 795 frames). Every chunk is prompted with
the same fixed point on its first frame, so every chunk really tracks. Each run is a fresh
subprocess; peak RSS is ``ru_maxrss`` of that process, and "after load" is the RSS once the model
is loaded and has segmented one warm-up frame. ``--collect`` keeps the full [T, H, W] bool result
(``segment_video``) instead of consuming the stream, to show what holding the output costs.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from benchutil import rss_mib  # noqa: E402
DEFAULT_VIDEO = str(ROOT.parent / "shared" / "media" / "vtest.avi")  # ../shared/media beside the checkout


def _import_pack():
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "scripts"))
    from pack_import import register_pack

    register_pack()



def _frames(video: str, total: int, batch: int):
    """RGB uint8 batches [n, H, W, 3], looping the file until ``total`` frames were produced."""
    import cv2
    import numpy as np

    cap = cv2.VideoCapture(video)
    if not cap.isOpened():
        raise SystemExit(f"cannot open {video}")
    width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    made = 0
    try:
        while made < total:
            out = np.empty((min(batch, total - made), height, width, 3), np.uint8)
            for i in range(out.shape[0]):
                ok, frame = cap.read()
                if not ok:
                    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    ok, frame = cap.read()
                    if not ok:
                        raise SystemExit(f"{video} has no frames")
                cv2.cvtColor(frame, cv2.COLOR_BGR2RGB, dst=out[i])
            made += out.shape[0]
            yield out
            del out
    finally:
        cap.release()


def child(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    _import_pack()
    from wan_animate_kit.models.sam2_loader import load_sam2
    from wan_animate_kit.models.sam2_video import iter_segment_frames, segment_video
    from wan_animate_kit.preprocess.sam_prompts import ChunkPrompts, chunk_bounds

    model = load_sam2(args.ckpt, device="cpu", overrides=[f"++model.image_size={args.image_size}"])
    import cv2

    cap = cv2.VideoCapture(args.video)
    width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    point = (np.array([[width * 0.5, height * 0.5]], np.float32), np.array([1], np.int32))
    warm = next(_frames(args.video, 1, 1))
    segment_video(model, warm, [ChunkPrompts(0, 1, {0: point})], 1)
    after_load = rss_mib()

    prompts = [ChunkPrompts(a, b, {0: point}) for a, b in chunk_bounds(args.child, args.chunk)]
    source = _frames(args.video, args.child, args.decode_chunk)
    t0 = time.perf_counter()
    if args.collect:
        masks = segment_video(model, source, prompts, args.child)
        coverage = float(masks.mean())
    else:
        total = 0
        for item in iter_segment_frames(model, source, prompts, args.child):
            total += int(item.mask.sum())
        coverage = total / (args.child * width * height)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"frames": args.child, "chunks": len(prompts), "peak_mib": peak,
                      "after_load_mib": after_load, "seconds": seconds, "coverage": coverage}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, nargs="+", default=[100, 800])
    ap.add_argument("--chunk", type=int, default=400, help="SAM2 chunk length (official 400)")
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--decode-chunk", type=int, default=100)
    ap.add_argument("--video", default=DEFAULT_VIDEO)
    ap.add_argument("--collect", action="store_true", help="keep the full result array (segment_video)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ckpt", help=argparse.SUPPRESS)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_sam2 import tiny_sam2_files

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = tiny_sam2_files(tmp)["pt"]
        results = []
        for n in args.frames:
            cmd = [sys.executable, __file__, "--child", str(n), "--ckpt", str(ckpt), "--chunk", str(args.chunk),
                   "--image-size", str(args.image_size), "--decode-chunk", str(args.decode_chunk),
                   "--video", args.video, "--threads", str(args.threads)] + (["--collect"] if args.collect else [])
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"run with {n} frames failed:\n{proc.stderr[-3000:]}")
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            results.append(res)
            print(f"{n:5d} frames, {res['chunks']} chunk(s) of <= {args.chunk}: peak RSS {res['peak_mib']:.0f} MiB "
                  f"(after load {res['after_load_mib']:.0f} MiB, +{res['peak_mib'] - res['after_load_mib']:.0f} MiB "
                  f"while segmenting), {res['seconds']:.1f} s ({1000 * res['seconds'] / n:.0f} ms/frame)", flush=True)
    if len(results) >= 2:
        ratio = results[-1]["peak_mib"] / results[0]["peak_mib"]
        grow = ((results[-1]["peak_mib"] - results[-1]["after_load_mib"])
                / max(results[0]["peak_mib"] - results[0]["after_load_mib"], 1e-6))
        print(f"peak RSS ratio {args.frames[-1]}/{args.frames[0]} frames: {ratio:.3f} (goal <= 1.25); "
              f"segmentation-only growth ratio {grow:.2f}")


if __name__ == "__main__":
    main()
