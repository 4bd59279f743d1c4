"""Full-size Wan-Animate DiT (random bf16 weights) through the pack's sampler vs core's hand-chained
extend graph: DiT time per step, wall time and peak VRAM of each side.

    python bench/bench_sampler_gpu.py [--size 832x480] [--segment 77] [--segments 2] [--steps 2]
                                      [--guidance 5] [--replace] [--no-face] [--json FILE]
    # shrunk, to check the script on a CPU:
    python bench/bench_sampler_gpu.py --device cpu --dim 128 --ffn 256 --layers 2 --vae-dim 16 \\
        --size 64x64 --segment 9 --steps 1 --text-tokens 8

The DiT is built in memory with the official checkpoint's 1441 keys and full shapes (dim 5120,
ffn 13824, 40 blocks: 28 GB of bf16) and random weights (``tests/tiny_models.py``), then loaded by
the host's own loader; the VAE is the host's Wan 2.1 VAE at its real ``dim`` 96, random. Both sides
get the same inputs: random pose, face (512x512) and environment videos, a moving box mask,
512-token prompts and a CLIP-vision output. The video has exactly ``--segments`` full segments.

core: ``WanAnimateToVideo`` -> KSampler -> ``TrimVideoLatent`` -> ``VAEDecode`` ->
``ImageFromBatch`` -> ``ImageBatch`` per segment (``bench/bench_sampler.py``'s ``run_core``).
ours: ``models.animate_sampler.run_animate`` (segment cache off).

A warm-up run of core goes first (weights moved to the GPU, kernels chosen). Per side:
* DiT time per step: median wall time of the diffusion model's forward calls (one per step at
  cfg 1), synchronised on the device before and after;
* wall: the whole job; "rest" is wall minus all DiT forwards (VAE, conditioning, stitching);
* peak VRAM: ``torch.cuda.max_memory_allocated`` over the side's run (weights included, since the
  host keeps the model loaded), and the same for ``max_memory_reserved``.

For the GPU machine (no network there), ``bench/gpu_bundle.sh`` packs the host tree and the
wheels it needs into ``.gpu/``; see that script for the command to run.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size {text!r}: give WIDTHxHEIGHT, e.g. 832x480") from None
    if w % 16 or h % 16:
        raise argparse.ArgumentTypeError(f"--size {text!r}: width and height must be multiples of 16")
    return w, h


class DitTimer:
    """Wall time of each forward call of ``module``, synchronised on ``device``."""

    def __init__(self, module, device: str):
        import torch

        self.sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        self.times: list[float] = []
        self._t = 0.0
        self._hooks = [module.register_forward_pre_hook(self._pre), module.register_forward_hook(self._post)]

    def _pre(self, *_):
        self.sync()
        self._t = time.perf_counter()

    def _post(self, *_):
        self.sync()
        self.times.append(time.perf_counter() - self._t)

    def take(self) -> list[float]:
        out, self.times = self.times, []
        return out


def build_models(args):
    import comfy.sd
    import tiny_models
    import torch

    t = time.perf_counter()
    sd = tiny_models.tiny_dit_state_dict(args.dim, args.ffn, args.layers, device=args.init_device)
    params = sum(v.numel() for v in sd.values())
    model = comfy.sd.load_diffusion_model_state_dict(sd, model_options={})
    if model is None:
        raise RuntimeError("the host did not recognise the built state dict as a Wan-Animate model")
    del sd
    vae = comfy.sd.VAE(sd=tiny_models.tiny_vae_state_dict(dim=args.vae_dim))
    print(f"built DiT {params / 1e9:.2f} B params ({type(model.model).__name__}, weights "
          f"{model.model.get_dtype()}, compute {model.model.manual_cast_dtype or model.model.get_dtype()}), "
          f"VAE dim {args.vae_dim} ({vae.vae_dtype}) in {time.perf_counter() - t:.0f} s", flush=True)
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return model, vae


def measure(name: str, fn, timer: DitTimer, device: str) -> dict:
    import torch

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    timer.take()
    t = time.perf_counter()
    out = fn()
    if cuda:
        torch.cuda.synchronize()
    wall = time.perf_counter() - t
    steps = timer.take()
    row = {"side": name, "wall_s": wall, "dit_calls": len(steps), "dit_step_median_s": statistics.median(steps),
           "dit_total_s": sum(steps), "rest_s": wall - sum(steps), "frames": int(out.shape[0])}
    if cuda:
        row["peak_vram_gib"] = torch.cuda.max_memory_allocated() / 2 ** 30
        row["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / 2 ** 30
    vram = f", peak VRAM {row['peak_vram_gib']:.1f} GiB (reserved {row['peak_reserved_gib']:.1f})" if cuda else ""
    print(f"  {name:5s} wall {wall:7.2f} s, DiT {row['dit_step_median_s']:.3f} s/step x {len(steps)} "
          f"= {row['dit_total_s']:.2f} s, rest {row['rest_s']:.2f} s{vram}", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="", help="cuda or cpu (default: cuda when torch sees one)")
    ap.add_argument("--size", type=parse_size, default=(832, 480), help="WIDTHxHEIGHT, multiples of 16")
    ap.add_argument("--segment", type=int, default=77)
    ap.add_argument("--guidance", type=int, default=5, choices=(1, 5))
    ap.add_argument("--segments", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1, help="timed runs per side after the warm-up")
    ap.add_argument("--sampler", default="euler")
    ap.add_argument("--scheduler", default="simple")
    ap.add_argument("--replace", action="store_true", help="Replacement mode (environment video + mask)")
    ap.add_argument("--no-face", action="store_true", help="leave out the face crops")
    ap.add_argument("--text-tokens", type=int, default=512, help="prompt length (umt5 pads to 512)")
    ap.add_argument("--dim", type=int, default=5120)
    ap.add_argument("--ffn", type=int, default=13824)
    ap.add_argument("--layers", type=int, default=40)
    ap.add_argument("--vae-dim", type=int, default=96)
    ap.add_argument("--init-device", default="", help="where random weights are drawn (default: --device)")
    ap.add_argument("--json", default="", help="write the results here")
    ap.add_argument("--offline", action="store_true",
                    help="use COMFYUI_DIR as it is: no host download, no pip (the GPU machine)")
    args = ap.parse_args()
    if (args.segment - 1) % 4:
        ap.error(f"--segment {args.segment}: must be 4n+1 (77, 33, 9, ...)")

    import torch

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.init_device = args.init_device or args.device
    import bench_sampler as bs

    bs.setup_host(cpu=not args.device.startswith("cuda"), install=not args.offline)
    import comfy.model_management
    import comfy.utils

    comfy.utils.PROGRESS_BAR_ENABLED = False
    print(f"device: {comfy.model_management.get_torch_device()} "
          f"({torch.cuda.get_device_name() if args.device.startswith('cuda') else 'cpu'}), torch {torch.__version__}")
    width, height = args.size
    n = args.segment + (args.segments - 1) * (args.segment - args.guidance)
    with torch.inference_mode():
        model, vae = build_models(args)
        d = bs.make_inputs(n, width, height, text_tokens=args.text_tokens, face=not args.no_face)
        timer = DitTimer(model.model.diffusion_model, args.device)
        common = (model, vae, d, n, args.segment, args.guidance, args.steps, args.sampler, args.scheduler, 0,
                  args.replace)
        tokens = (args.segment - 1) // 4 + 2
        tokens *= (height // 16) * (width // 16)
        print(f"{n} frames {width}x{height}, {args.segments} segments of {args.segment} (guidance {args.guidance}), "
              f"{tokens} video tokens per pass, {args.steps} steps {args.sampler}/{args.scheduler}, "
              f"{'Replacement' if args.replace else 'Animation'}, face {'off' if args.no_face else 'on'}", flush=True)
        rows = [measure("warm", lambda: bs.run_core(*common), timer, args.device)]
        for _ in range(args.repeats):
            rows.append(measure("core", lambda: bs.run_core(*common), timer, args.device))
            rows.append(measure("ours", lambda: bs.run_ours(*common, cache=False), timer, args.device))
    core = [r for r in rows if r["side"] == "core"]
    ours = [r for r in rows if r["side"] == "ours"]
    summary = {k: statistics.median(r[k] for r in ours) / statistics.median(r[k] for r in core)
               for k in ("wall_s", "dit_step_median_s", "rest_s")}
    print("ratio ours/core (medians): " + ", ".join(f"{k} {v:.3f}" for k, v in summary.items()))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({"args": {k: v for k, v in vars(args).items()},
                                                       "frames": n, "rows": rows, "ratio": summary}, indent=1))


if __name__ == "__main__":
    main()
