"""GPU memory before, during and after a SAM2 segmentation run (CUDA only).

    python bench/bench_sam2_vram.py                        # the tiny random SAM 2.1, 1280x720, 60 frames
    python bench/bench_sam2_vram.py --ckpt /path/sam2_hiera_large.pt --frames 120 --chunk 400
    python bench/bench_sam2_vram.py --video ../shared/media/vtest.avi --frames 200

The model is loaded the way the SAM2 Loader node loads it (weights on the CPU, the offload device)
and segmentation runs inside ``models.sam2_loader.sam2_session``, the same block the SAM2 Character
Segmentation node uses: weights moved to the GPU for the run, back to the CPU afterwards and the
CUDA cache emptied. The goal (issue 14): the GPU memory after the run is back at the level before it.

Printed: torch's allocated and reserved memory and the driver's used memory (``cudaMemGetInfo``,
which also sees other processes) before the run, at the peak while segmenting, and after it; the last
line reads ``VRAM before: A MiB, peak: B MiB, after: C MiB (allocated); back to the pre-segmentation
level: yes|no``. On a machine without CUDA it says so and exits with status 0. It needs the sam2
package (and its hydra-core, omegaconf, iopath) where it runs: bench/gpu_bundle.sh does not pack them.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
MIB = 2 ** 20


def _import_pack() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    from pack_import import register_pack

    register_pack()


def _synthetic(total: int, width: int, height: int, batch: int = 16):
    """RGB uint8 batches: a textured background with a bright block walking across it."""
    import numpy as np

    rng = np.random.default_rng(0)
    base = rng.integers(0, 90, (height, width, 3), dtype=np.uint8)
    bw, bh = max(8, width // 6), max(8, height // 2)
    for start in range(0, total, batch):
        n = min(batch, total - start)
        out = np.repeat(base[None], n, axis=0)
        for i in range(n):
            x = (start + i) * 4 % max(1, width - bw)
            out[i, height // 4:height // 4 + bh, x:x + bw] = (230, 200, 40)
        yield out


def _video(path: str, total: int, batch: int = 16):
    """RGB uint8 batches from a file, looped when it is shorter than ``total``."""
    import cv2
    import numpy as np

    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise SystemExit(f"cannot open {path}")
    made = 0
    try:
        while made < total:
            frames = []
            while len(frames) < min(batch, total - made):
                ok, frame = cap.read()
                if not ok:
                    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    ok, frame = cap.read()
                    if not ok:
                        raise SystemExit(f"{path} has no frames")
                frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            made += len(frames)
            yield np.stack(frames)
    finally:
        cap.release()


def _video_size(path: str) -> tuple[int, int]:
    import cv2

    cap = cv2.VideoCapture(path)
    size = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    return size


def _levels(torch) -> dict[str, float]:
    torch.cuda.synchronize()
    free, total = torch.cuda.mem_get_info()
    return {"allocated": torch.cuda.memory_allocated() / MIB, "reserved": torch.cuda.memory_reserved() / MIB,
            "driver_used": (total - free) / MIB}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", help="a SAM 2 / 2.1 checkpoint (.pt or .safetensors); default: the tiny random "
                                   "SAM 2.1 of tests/tiny_sam2.py")
    ap.add_argument("--image-size", type=int, default=0,
                    help="model input size; 0 = the checkpoint's own (1024; the tiny model runs at 256 then)")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--chunk", type=int, default=400, help="SAM2 chunk length (official 400)")
    ap.add_argument("--size", default="1280x720", help="synthetic frame size WxH (ignored with --video)")
    ap.add_argument("--video", help="a video file to segment instead of synthetic frames")
    ap.add_argument("--tolerance-mib", type=float, default=1.0,
                    help="how far above the level before the run 'after' may be and still count as back")
    args = ap.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("bench_sam2_vram: no CUDA GPU visible to torch; this bench measures GPU memory and needs one. "
              "Nothing was measured.")
        return 0

    try:
        import sam2  # noqa: F401
    except ImportError:
        print("bench_sam2_vram: the sam2 package is not installed (SAM2_BUILD_CUDA=0 pip install "
              "--no-build-isolation sam2==1.1.0, with hydra-core, omegaconf and iopath); nothing was measured.")
        return 2
    _import_pack()
    import numpy as np

    from wan_animate_kit.models.sam2_loader import load_sam2, sam2_session
    from wan_animate_kit.models.sam2_video import iter_segment_frames
    from wan_animate_kit.preprocess.sam_prompts import ChunkPrompts, chunk_bounds

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.ckpt
        image_size = args.image_size
        if ckpt is None:
            sys.path.insert(0, str(ROOT / "tests"))
            from tiny_sam2 import tiny_sam2_files

            ckpt = str(tiny_sam2_files(tmp)["pt"])
            image_size = image_size or 256
        overrides = [f"++model.image_size={image_size}"] if image_size else []
        model = load_sam2(ckpt, device="cuda", dtype=args.dtype, overrides=overrides, storage="cpu")
    on_gpu = [n for n, p in model.predictor.named_parameters() if p.device.type != "cpu"]
    assert not on_gpu, f"weights on the GPU after loading: {on_gpu[:3]}"

    if args.video:
        width, height = _video_size(args.video)
        source = _video(args.video, args.frames)
    else:
        width, height = (int(v) for v in args.size.lower().split("x"))
        source = _synthetic(args.frames, width, height)
    point = (np.array([[width * 0.5, height * 0.5]], np.float32), np.array([1], np.int32))
    prompts = [ChunkPrompts(a, b, {0: point}) for a, b in chunk_bounds(args.frames, args.chunk)]

    torch.cuda.init()
    torch.cuda.empty_cache()
    before = _levels(torch)
    torch.cuda.reset_peak_memory_stats()
    during: dict[str, float] = {}

    def sample(done: int, total: int) -> None:
        if done == 1 or done % 10 == 0 or done == total:
            now = _levels(torch)
            for key, value in now.items():
                during[key] = max(during.get(key, 0.0), value)

    t0 = time.perf_counter()
    covered = 0
    with sam2_session(model, "cuda", video_size=(height, width)) as device:
        for item in iter_segment_frames(model, source, prompts, args.frames, progress=sample):
            covered += int(item.mask.any())
    seconds = time.perf_counter() - t0
    peak_allocated = torch.cuda.max_memory_allocated() / MIB
    after = _levels(torch)
    left = [n for n, p in model.predictor.named_parameters() if p.device.type != "cpu"]

    print(f"SAM2 {pathlib.Path(ckpt).name} ({model.config}, input {model.image_size}, {args.dtype}) on {device}: "
          f"{args.frames} frames {width}x{height}, {len(prompts)} chunk(s), {seconds:.1f} s, "
          f"mask found in {covered} frame(s)")
    print(f"{'':12s}{'allocated':>12s}{'reserved':>12s}{'driver used':>14s}   (MiB)")
    for name, level in (("before", before), ("during", during), ("after", after)):
        print(f"{name:12s}{level.get('allocated', 0):12.1f}{level.get('reserved', 0):12.1f}"
              f"{level.get('driver_used', 0):14.1f}")
    print(f"peak allocated while segmenting: {peak_allocated:.1f} MiB; weights left on the GPU: {len(left)}")
    back = after["allocated"] <= before["allocated"] + args.tolerance_mib and not left
    print(f"VRAM before: {before['allocated']:.1f} MiB, peak: {peak_allocated:.1f} MiB, after: "
          f"{after['allocated']:.1f} MiB (allocated); back to the pre-segmentation level: {'yes' if back else 'no'}")
    return 0 if back else 1


if __name__ == "__main__":
    sys.exit(main())
