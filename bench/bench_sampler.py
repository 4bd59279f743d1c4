"""Wall time of the long-video sampler against core's hand-chained extend graph, same models and inputs.

    python bench/bench_sampler.py [--size 64] [--segment 33] [--guidance 5] [--segments 3] [--steps 2]
                                  [--repeats 3] [--replace] [--face] [--motion-per-step] [--drift] [--save DIR]
                                  [--mode windows [--window-length 5] [--window-overlap 2]]

Runs the real ComfyUI host in-process on the CPU with the tiny Wan-Animate DiT and a tiny Wan 2.1
VAE (the shared tiny VAE file's weights are re-drawn, as in the tests: it holds uninitialised
values). The video has exactly ``segments`` full segments, so both sides do the same denoising
work.

core: per chunk ``WanAnimateToVideo`` (continue_motion = all frames so far, video_frame_offset
chained, continue_motion_max_frames = guidance) -> ``common_ksampler`` (KSampler) ->
``TrimVideoLatent`` -> ``VAEDecode`` -> ``ImageFromBatch(trim_image, 4096)`` -> ``ImageBatch``
(ComfyUI comfy_extras/nodes_wan.py, WanAnimateToVideo extended with continue_motion), all
called in-process.
ours: ``models.animate_sampler.run_animate`` (cache off, and cache on as a second row).

``--face`` gives both sides 512x512 face crops: the DiT then runs its motion encoder on them, in
core's chain at every step, in ours once per segment (``models/face_motion.py``;
``--motion-per-step`` puts the face pixels in the conditioning instead, as core does, to show its share). Each frame costs the encoder seconds on a CPU, so
keep ``--segment`` short with it.

Runs alternate (core, ours, ours+cache) ``repeats`` times; medians are reported. ``--drift``
adds a colour-drift hook: per-segment Lab drift of each output against the environment video
(Replacement mode) or against the first output frame, using ``preprocess.colour.colour_drift``
(as ``bench/colour_drift.py`` does for real videos), and the seam jump (mean frame-to-frame change
at the seams vs elsewhere).

``--mode windows`` compares the segment mode (``run_animate``) with the context-window mode
(``models.context_windows.run_windows``) on the same video: wall time, peak RSS (each run in a fresh
process: ru_maxrss, and its rise over the process with the models loaded) and the seam jump at the
segment mode's cut positions for both outputs.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]


def setup_host(cpu: bool = True, install: bool = True):
    """Import the pack as ``wan_animate_kit`` and the real host in-process (on the CPU unless
    ``cpu=False``; the host is ``COMFYUI_DIR``, the enclosing ComfyUI or the pinned cache).
    ``install=False`` neither downloads the host nor pip-installs its requirements (offline)."""
    for p in (ROOT / "tests", ROOT / "scripts"):
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "scripts"))
    from pack_import import register_pack

    register_pack()
    import comfy_host
    from host_harness import host_dir, import_in_process

    import_in_process(host_dir() if install else comfy_host.find_host(download=False), cpu=cpu)
    # the host's nodes.py puts comfy/ first on sys.path (so ``utils`` would be comfy/utils.py);
    # load the host's ``utils`` package first, as its main.py does, so server-side modules import
    import utils.install_util  # noqa: F401


def tiny_models():
    """(model, vae) on the CPU: the tiny DiT and the tiny Wan 2.1 VAE."""
    import comfy.sd
    import comfy.utils
    import comfy_host
    import tiny_models as factory

    paths = factory.write_all(comfy_host.cache_dir() / "tiny-models")
    model = comfy.sd.load_diffusion_model(str(paths["dit"]))
    return model, comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(paths["vae"])))


def make_inputs(n: int, width: int, height: int | None = None, seed: int = 0, text_tokens: int = 8,
                face: bool = False):
    """Random pose/environment videos, a moving box mask, reference, prompts and CLIP output;
    ``face`` adds 512x512 face crops (else ``d.face`` is None)."""
    import types

    import torch

    height = height or width
    g = torch.Generator().manual_seed(seed)
    img = lambda k, h=height, w=width: torch.randint(0, 256, (k, h, w, 3), generator=g).float() / 255  # noqa: E731
    mask = torch.zeros(n, height, width)
    for t in range(n):
        c = width // 4 + (t % 8)
        mask[t, height // 6:height - height // 6, c:c + width // 3] = 1.0
    return types.SimpleNamespace(width=width, height=height, pose=img(n), env=img(n), mask=mask, ref=img(1),
                                 face=img(n, 512, 512) if face else None,
                                 pos=[[torch.randn(1, text_tokens, 4096, generator=g), {}]],
                                 neg=[[torch.randn(1, text_tokens, 4096, generator=g), {}]],
                                 clip=types.SimpleNamespace(penultimate_hidden_states=torch.randn(1, 257, 1280, generator=g)))


def run_core(model, vae, d, n, segment, guidance, steps, sampler, scheduler, seed, replace):
    """The host's own extend chain (WanAnimateToVideo with continue_motion), node by node."""
    import nodes
    from comfy_extras.nodes_images import ImageFromBatch
    from comfy_extras.nodes_wan import TrimVideoLatent, WanAnimateToVideo

    video, offset = None, 0
    while video is None or video.shape[0] < n:
        out = WanAnimateToVideo.execute(d.pos, d.neg, vae, d.width, d.height, segment, 1, guidance, offset,
                                        reference_image=d.ref, clip_vision_output=d.clip, pose_video=d.pose,
                                        face_video=d.face,
                                        continue_motion=video, background_video=d.env if replace else None,
                                        character_mask=d.mask if replace else None)
        pos, neg, latent, trim_latent, trim_image, offset = out.result
        latent = nodes.common_ksampler(model, seed, steps, 1.0, sampler, scheduler, pos, neg, latent)[0]
        latent = TrimVideoLatent.execute(latent, trim_latent).result[0]
        images = nodes.VAEDecode().decode(vae, latent)[0]
        images = ImageFromBatch().frombatch(images, trim_image, 4096)[0]
        video = images if video is None else nodes.ImageBatch().batch(video, images)[0]
    return video


def run_ours(model, vae, d, n, segment, guidance, steps, sampler, scheduler, seed, replace, cache,
             colour=0.0, cache_root=None, motion_once=True):
    from wan_animate_kit.models.animate_sampler import AnimateSettings, run_animate

    s = AnimateSettings(seed=seed, steps=steps, cfg=1.0, sampler_name=sampler, scheduler=scheduler, clip_len=segment,
                        guidance=guidance, width=d.width, height=d.height, cache=cache,
                        colour_strength=colour, motion_once=motion_once)
    return run_animate(model, vae, d.pos, d.neg, d.ref, d.pose[:n], s,
                       face=d.face[:n] if d.face is not None else None, environment=d.env[:n] if replace else None,
                       mask=d.mask[:n] if replace else None, clip_vision_output=d.clip, cache_root=cache_root).frames


def drift_report(name, frames, d, plan, replace):
    from wan_animate_kit.preprocess import colour
    from wan_animate_kit.preprocess.stitching import seam_jump

    f = np.asarray(frames)
    if f.dtype != np.uint8:
        f = (np.clip(f, 0, 1) * 255).round().astype(np.uint8)
    f = f[:plan.num_frames]
    if replace:
        src = (d.env[:len(f)].numpy() * 255).round().astype(np.uint8)
        region = d.mask[:len(f)].numpy() < 0.5
    else:
        src, region = np.repeat(f[:1], len(f), axis=0), None
    cast = colour.colour_drift(f, src, region, per_pixel=False)
    per = [float(np.nanmean(cast[s.out_start:s.out_stop])) for s in plan.segments]
    at, rest = seam_jump(f, plan)
    print(f"  {name:14s} mean-colour dE per segment {' '.join(f'{x:6.2f}' for x in per)}   "
          f"seam jump {at:6.2f} vs {rest:6.2f} elsewhere")


def run_windows(model, vae, d, n, steps, sampler, scheduler, seed, replace, length, overlap):
    """The context-window mode (``models.context_windows.run_windows``) on the same inputs."""
    from wan_animate_kit.models.animate_sampler import AnimateSettings
    from wan_animate_kit.models.context_windows import run_windows as run

    s = AnimateSettings(seed=seed, steps=steps, cfg=1.0, sampler_name=sampler, scheduler=scheduler,
                        width=d.width, height=d.height, cache=False)
    return run(model, vae, d.pos, d.neg, d.ref, d.pose[:n], s, window_length=length, window_overlap=overlap,
               face=d.face[:n] if d.face is not None else None, environment=d.env[:n] if replace else None,
               mask=d.mask[:n] if replace else None, clip_vision_output=d.clip,
               step_callback=lambda k: None).frames


def _windows_common(args):
    from wan_animate_kit.models.context_windows import padded_frames, window_plan
    from wan_animate_kit.preprocess.segments import plan_segments

    n = args.length or args.segment + (args.segments - 1) * (args.segment - args.guidance)
    plan = plan_segments(n, args.segment, args.guidance)
    lat = (padded_frames(n) - 1) // 4 + 1
    return n, plan, lat, window_plan(lat, args.window_length, args.window_overlap)


def bench_one(args) -> None:
    """One mode once in this (fresh) process: prints a JSON line with its wall time, this process's
    RSS before the run and its peak RSS (ru_maxrss), and the frames' seam jump."""
    import json
    import resource

    import comfy.utils
    import psutil

    from wan_animate_kit.preprocess.stitching import seam_jump

    comfy.utils.PROGRESS_BAR_ENABLED = False
    n, plan, _, _ = _windows_common(args)
    model, vae = tiny_models()
    d = make_inputs(n, args.size, face=args.face)
    common = (model, vae, d, n)
    before = psutil.Process().memory_info().rss
    t = time.perf_counter()
    if args.one == "segments":
        out = run_ours(*common, args.segment, args.guidance, args.steps, args.sampler, args.scheduler, 0,
                       args.replace, cache=False)
    else:
        out = run_windows(*common, args.steps, args.sampler, args.scheduler, 0, args.replace, args.window_length,
                          args.window_overlap)
    wall = time.perf_counter() - t
    at, rest = seam_jump(np.asarray(out), plan)
    print("RESULT " + json.dumps({"wall": wall, "rss_before": before, "peak": resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss * 1024, "frames": int(len(out)), "seam": [at, rest]}), flush=True)


def bench_windows(args) -> None:
    """Segment mode vs context-window mode on the same video: wall time, peak RSS (each run in a
    fresh process, so the peaks do not hide each other), seam jump at the segment mode's cuts."""
    import json
    import subprocess

    n, plan, lat, starts = _windows_common(args)
    print(f"{n} frames {args.size}x{args.size}, {args.steps} steps {args.sampler}/{args.scheduler}, "
          f"{'Replacement' if args.replace else 'Animation'}, torch threads {args.threads}; "
          f"segments: {plan.num_segments} of {args.segment} (guidance {args.guidance}); windows: {len(starts)} of "
          f"{args.window_length} latents (overlap {args.window_overlap}) over {lat} latents")
    results: dict[str, list] = {"segments": [], "windows": []}
    argv = [a for a in sys.argv[1:]]
    for r in range(args.repeats):
        for name in results:
            out = subprocess.run([sys.executable, __file__, *argv, "--one", name], capture_output=True, text=True)
            line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
            if out.returncode or not line:
                raise RuntimeError(f"{name} run failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
            results[name].append(json.loads(line[-1][7:]))
        print(f"  run {r + 1}: " + "  ".join(
            f"{k} {v[-1]['wall']:.2f}s, peak RSS {v[-1]['peak'] / 2 ** 20:.0f} MiB "
            f"(+{(v[-1]['peak'] - v[-1]['rss_before']) / 2 ** 20:.0f} over the loaded process)"
            for k, v in results.items()), flush=True)
    for name, rows in results.items():
        at, rest = rows[-1]["seam"]
        print(f"{name:9s}: median {statistics.median(r['wall'] for r in rows):.2f}s, peak RSS "
              f"{max(r['peak'] for r in rows) / 2 ** 20:.0f} MiB (+"
              f"{max(r['peak'] - r['rss_before'] for r in rows) / 2 ** 20:.0f} over the loaded process), "
              f"frames {rows[-1]['frames']}, seam jump at the segment cuts {at:.2f} vs {rest:.2f} elsewhere")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--segment", type=int, default=17)
    ap.add_argument("--guidance", type=int, default=5, choices=(1, 5))
    ap.add_argument("--segments", type=int, default=3)
    ap.add_argument("--length", type=int, default=0,
                    help="frames of the video (default: exactly --segments full segments); a length that does "
                         "not fill the last segment shows the shortened last decode")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sampler", default="euler")
    ap.add_argument("--scheduler", default="simple")
    ap.add_argument("--replace", action="store_true", help="Replacement mode (environment video + mask)")
    ap.add_argument("--face", action="store_true",
                    help="give both sides 512x512 face crops (the DiT's motion encoder then runs; slow on a CPU)")
    ap.add_argument("--motion-per-step", action="store_true",
                    help="ours with the face pixels in the conditioning (the motion encoder at every step)")
    ap.add_argument("--drift", action="store_true", help="print the colour-drift / seam hook")
    ap.add_argument("--save", default="", help="folder to save the outputs as .npy (for bench/colour_drift.py)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (1 keeps timings steadier on a shared machine)")
    ap.add_argument("--mode", choices=("core", "windows"), default="core",
                    help="core: ours against core's extend chain (default); windows: segment mode against the "
                         "context-window mode (time, peak RSS, seam jump)")
    ap.add_argument("--window-length", type=int, default=5, help="--mode windows: latent frames per window")
    ap.add_argument("--window-overlap", type=int, default=2, help="--mode windows: overlap in latent frames")
    ap.add_argument("--one", choices=("segments", "windows"), default="", help=argparse.SUPPRESS)
    args = ap.parse_args()

    setup_host()
    import torch

    torch.set_num_threads(args.threads)
    with torch.inference_mode():  # the host's executor runs every node under inference mode
        if args.one:
            bench_one(args)
        else:
            (bench_windows if args.mode == "windows" else bench)(args)


def bench(args) -> None:
    import comfy.utils
    import torch

    comfy.utils.PROGRESS_BAR_ENABLED = False
    from wan_animate_kit.preprocess.segments import plan_segments

    n = args.length or args.segment + (args.segments - 1) * (args.segment - args.guidance)
    plan = plan_segments(n, args.segment, args.guidance)
    model, vae = tiny_models()
    d = make_inputs(n, args.size, face=args.face)
    common = (model, vae, d, n, args.segment, args.guidance, args.steps, args.sampler, args.scheduler, 0,
              args.replace)
    print(f"{n} frames {args.size}x{args.size}, {plan.num_segments} segments of {args.segment} (guidance {args.guidance}), "
          f"{args.steps} steps {args.sampler}/{args.scheduler}, {'Replacement' if args.replace else 'Animation'}, "
          f"torch threads {torch.get_num_threads()}, face crops {'on' if args.face else 'off'}"
          + (", face motion at every step" if args.motion_per_step else ""))
    run_core(*common)  # warm-up (first-call allocations, lazy imports)
    names = ("core", "ours", "ours+cache")
    wall = {k: [] for k in names}
    cpu = {k: [] for k in names}
    outs = {}
    with tempfile.TemporaryDirectory() as tmp:
        once = not args.motion_per_step
        runs = {"core": lambda: run_core(*common), "ours": lambda: run_ours(*common, cache=False, motion_once=once),
                "ours+cache": lambda: run_ours(*common, cache=True, cache_root=tmp, motion_once=once)}
        for r in range(args.repeats):
            for name in names:
                t, c = time.perf_counter(), time.process_time()
                outs[name] = runs[name]()
                wall[name].append(time.perf_counter() - t)
                cpu[name].append(time.process_time() - c)
            print(f"  run {r + 1}: " + "  ".join(f"{k} {wall[k][-1]:.2f}s wall {cpu[k][-1]:.2f}s cpu" for k in names),
                  flush=True)
    print(f"frames out: core {outs['core'].shape[0]}, ours {outs['ours'].shape[0]} (asked {n})")
    for label, table in (("cpu time", cpu), ("wall time", wall)):
        best = {k: min(v) for k, v in table.items()}
        med = {k: statistics.median(v) for k, v in table.items()}
        print(f"{label}: best " + "  ".join(f"{k} {v:.2f}s" for k, v in best.items()) + "   median " +
              "  ".join(f"{k} {v:.2f}s" for k, v in med.items()))
        print(f"  ratio ours/core: best {best['ours'] / best['core']:.3f}, median {med['ours'] / med['core']:.3f}   "
              f"(with cache: {best['ours+cache'] / best['core']:.3f}, {med['ours+cache'] / med['core']:.3f}; "
              f"goal <= 0.90)")
    if args.drift:
        outs["ours+colour"] = run_ours(*common, cache=False, colour=1.0)
        print("colour-drift hook (" + ("environment vs environment video" if args.replace else "vs first frame") + "):")
        for name in ("core", "ours", "ours+colour"):
            drift_report(name, outs[name].numpy() if hasattr(outs[name], "numpy") else outs[name], d, plan, args.replace)
    if args.save:
        os.makedirs(args.save, exist_ok=True)
        for name, v in outs.items():
            arr = v.numpy() if hasattr(v, "numpy") else v
            np.save(os.path.join(args.save, f"{name}.npy"), arr)
        np.save(os.path.join(args.save, "environment.npy"), d.env.numpy())
        np.save(os.path.join(args.save, "mask.npy"), d.mask.numpy())


if __name__ == "__main__":
    main()
