"""Peak RSS of the long-video sampler node for a long and a short video (flat memory check).

    python bench/bench_sampler_memory.py [--frames 100 1000] [--size 32] [--segment 77] [--guidance 1]
                                         [--input video|image] [--output frames|video] [--no-cache]

Each length runs in its own subprocess (so peaks do not mix): the real host in-process on the
CPU, the tiny Wan-Animate DiT and a tiny Wan 2.1 VAE, 1 step, no face video, Animation mode,
through ``AnimateSampler.execute`` (segment cache on unless --no-cache). With ``--input video``
the pose video is an H.264 file written frame by frame and given as the host's VIDEO, so the
sampler decodes it per segment. ``--output video`` sets the node's frames_output off: the frames
go to an H.264 file as segments finish and no IMAGE batch is built. The child reports its peak RSS (``ru_maxrss``) and the RSS after
loading the models; the parent prints the ratio of the peaks (goal: long/short <= 1.25).
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



def pose_frame(i: int, size: int):
    """A cheap synthetic 'skeleton' frame: a moving bright bar on black."""
    import numpy as np

    f = np.zeros((size, size, 3), np.uint8)
    x = (i * 3) % max(1, size - 4)
    f[size // 4: 3 * size // 4, x:x + 4] = (255, 128, 0)
    f[(i * 2) % size, :, 1] = 200
    return f


def child(args) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    import bench_sampler as bs

    bs.setup_host()
    import comfy.utils
    import numpy as np
    import torch

    comfy.utils.PROGRESS_BAR_ENABLED = False
    model, vae = bs.tiny_models()
    tmp = tempfile.mkdtemp(prefix="wak-mem-")
    if args.input == "video":
        import av
        from comfy_api.latest import InputImpl

        path = f"{tmp}/pose.mp4"
        with av.open(path, mode="w") as out:
            st = out.add_stream("libx264", rate=30)
            st.width = st.height = args.size
            st.pix_fmt = "yuv420p"
            for i in range(args.n):
                for pkt in st.encode(av.VideoFrame.from_ndarray(pose_frame(i, args.size), format="rgb24")):
                    out.mux(pkt)
            for pkt in st.encode():
                out.mux(pkt)
        pose = InputImpl.VideoFromFile(path)
    else:
        pose = torch.from_numpy(np.stack([pose_frame(i, args.size) for i in range(args.n)])).float() / 255
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(1, args.size, args.size, 3, generator=g)
    pos = [[torch.randn(1, 8, 4096, generator=g), {}]]
    neg = [[torch.randn(1, 8, 4096, generator=g), {}]]
    import os

    os.environ["WAN_ANIMATE_KIT_CACHE_DIR"] = f"{tmp}/cache"
    from wan_animate_kit.nodes.sample import AnimateSampler

    base = rss_mib()
    t = time.perf_counter()
    with torch.inference_mode():
        out = AnimateSampler.execute(model=model, positive=pos, negative=neg, vae=vae, reference=ref, pose_video=pose,
                                     seed=0, steps=1, cfg=1.0, sampler_name="euler", scheduler="simple",
                                     segment_length=args.segment, guidance_frames=args.guidance, width=0, height=0,
                                     fps=30.0, crossfade=False, colour_correction=False, colour_strength=1.0,
                                     cache=not args.no_cache, frames_output=args.output == "frames")
    wall = time.perf_counter() - t
    if args.output == "frames":
        frames = out.result[0].shape[0]
    else:
        import av

        with av.open(out.result[1].get_stream_source()) as c:
            frames = sum(1 for _ in c.decode(video=0))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"frames": args.n, "out_frames": frames, "baseline_mib": base, "peak_mib": peak, "wall_s": wall}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--segment", type=int, default=77)
    ap.add_argument("--guidance", type=int, default=1, choices=(1, 5))
    ap.add_argument("--input", choices=("video", "image"), default="video")
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--output", choices=("frames", "video"), default="frames",
                    help="frames: frames_output on (IMAGE batch); video: off (streamed H.264 file)")
    ap.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.n = args.child
        child(args)
        return
    results = []
    for n in args.frames:
        cmd = [sys.executable, __file__, "--child", str(n), "--size", str(args.size), "--segment", str(args.segment),
               "--guidance", str(args.guidance), "--input", args.input, "--output", args.output] + \
            (["--no-cache"] if args.no_cache else [])
        proc = subprocess.run(cmd, capture_output=True, text=True)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode or not line:
            print(proc.stdout[-2000:], proc.stderr[-4000:])
            raise SystemExit(f"child for {n} frames failed")
        r = json.loads(line[-1])
        results.append(r)
        print(f"{n:6d} frames ({args.input} in, {args.output} out, {args.size}x{args.size}, segment {args.segment}): out {r['out_frames']} "
              f"frames, peak RSS {r['peak_mib']:.0f} MiB (after model load {r['baseline_mib']:.0f} MiB), "
              f"{r['wall_s']:.1f} s", flush=True)
    if len(results) >= 2:
        lo, hi = results[0], results[-1]
        print(f"peak ratio {hi['frames']}/{lo['frames']} frames = {hi['peak_mib'] / lo['peak_mib']:.3f} (goal <= 1.25); "
              f"growth above the model baseline: {lo['peak_mib'] - lo['baseline_mib']:.0f} -> "
              f"{hi['peak_mib'] - hi['baseline_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
