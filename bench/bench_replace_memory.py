"""Peak resident memory of the whole shipped Replacement workflow on a long 1280x720 video (issue #14).

    python bench/bench_replace_memory.py --frames 100,1000 [--pack PATH] [--size 64x32]
        [--segment-length N] [--motion-batch N] [--source VIDEO] [--threads N] [--max-rss MIB]
        [--official-motion-encoder] [--trace PREFIX] [--keep]

By default the host's face motion encoder is replaced by a stand-in and the server runs one thread,
so both runs fit in about 20 minutes on 2 cores (see "Time" below); ``--official-motion-encoder``
runs the real encoder (its cost does not depend on the video length, and 1000 frames take hours).

For each frame count it starts a fresh ComfyUI server (``main.py --cpu``, one process per count) with
the pack (this checkout, or the one ``--pack`` names: that folder is loaded as the custom node and its
own ``workflows/api/replace.json`` is run, so an older commit checked out with ``git worktree add``
can be compared on the same bench) and the tests' tiny models, writes a 1280x720, 30 fps driving
video of that many frames (with an audio track) into the server's input folder, queues the shipped
Replacement workflow and samples the server process's RSS 50 times a second. It prints, per run,
each node's peak RSS and wall time (the node the server reports executing), then the process's
peak (the kernel's high-water mark VmHWM, which also catches a spike between two samples), and last:

    peak RSS 100 frames: A MiB, 1000 frames: B MiB, ratio R

What is swapped in the shipped workflow (everything else runs as shipped, 1280x720 from end to end):
``tests/models_for_prompt.tiny_prompt`` (tiny DiT/VAE/LoRA/pose models and the tiny SAM2 at image
size 256, all on the CPU, a saved prompt embedding instead of the text encoder, no CLIP vision, one
sampler step, no segment cache), but the driving video's ``resize_area``, SAM2's ``chunk_size`` and
the sampler's ``segment_length`` are put back to the shipped values (``--segment-length`` overrides
the last), and the sampler's ``width``/``height`` are set to ``--size`` so the tiny DiT stays cheap.
The whole chain runs: pose extraction, SAM2 segmentation, mask shaping, environment video, face
crops, render pose, the sampler (VAE, DiT and the face motion encoder on every 512x512 face crop)
and Save Video.

The driving video is ``../shared/media/vtest.avi`` (real pedestrians, 768x576) beside the checkout,
resized to 1280x720 and looped; without that file a moving synthetic clip is generated. Clips are
cached in ``bench/out/`` (git-ignored). ``--motion-batch N`` sets the sampler input named
``MOTION_BATCH_INPUT`` (how many face crops go through the motion encoder at once) once the sampler
has it; default: the workflow as it is. ``--trace PREFIX`` writes every RSS sample to a CSV.

Time: the host's face motion encoder (full size even in the tiny model: its layers do not depend on
the DiT width) costs 2.5-5 s per face crop on 2 shared CPU cores, and every frame's crop goes through
it (a 77-frame segment: 3.5-6 min), so the official chain cannot do 1000 frames in 20 minutes on 2
cores. The default stand-in (NOT official; ``--official-motion-encoder`` turns it off) loads a bench-only custom node
that makes the host's ``Generator.get_motion`` return zero motion features of the real shape instead
of running the encoder: it removes that time and that encoder's own memory peak (which does not
depend on the video length), and measures everything else.

Measured 2026-11-30 on a 2-core CPU VM (24 GB RAM, no GPU; load average about 6 from other jobs, so
every time here is pessimistic and noisy), 64x32 sampler output, shipped segment_length 77, 1 step:
* Today's code before the issue #14 refactor (commit 282cacc), official chain (no stub, 2 threads):
  100 frames: peak 11597 MiB, in the sampler (759 s for its 2 segments: ~4.9 s per face crop
  through the motion encoder); before the sampler at most 2737 MiB (SAM2 1884, Mask Shaping 2436,
  Environment Video 2610, loading the DiT 2737). 1000 frames not run (about 90 min here).
* 282cacc, ``--stub-motion-encoder --threads 1``: 100 frames 7745 MiB (sampler; 2729 MiB before
  it); 1000 frames: killed by the kernel out of memory at 17.1 GB (24 GB machine shared with
  other jobs); rerun with the default --max-rss: ``peak RSS 100 frames: 7676 MiB, 1000 frames:
  >=14464 MiB, ratio ~1.88``, stopped as the sampler started. 1000 frames, per node: pose 3170 MiB,
  SAM2 7413 MiB (382 s), Mask Shaping 12450 MiB, Environment Video 14208 MiB.
* main at commit 0b91a4b (frames layer, compact masks, pose pipeline), ``--stub-motion-encoder
  --threads 1``: ``peak RSS 100 frames: 6569 MiB, 1000 frames: 6866 MiB, ratio 1.05``; 121 s and
  884 s (two runs at once on the 2 cores). 1000 frames, per node: pose 1320 MiB (59 s), SAM2
  1501 MiB (572 s), Mask Shaping 1383, Environment Video 1650, DiT load 1530, sampler 6866
  (237 s): the sampler's floor is ~4.4 GB with spikes to ~6.8 GB at every segment, flat over the
  14 segments, with a 64x32 output and the motion encoder stubbed, so that is the 3 GB target's
  next step, besides the motion encoder (+~5 GB per 8-face call).
* main at commit 13a920d (the sampler makes a segment's face pixels as one float copy): official
  chain (no stub), 20 frames (one 77-frame segment), ``--threads 1``: 7873 MiB in the sampler
  (219 s for the segment: 2.8 s per face crop), at most 1443 MiB before it; with the stub (two
  separate invocations, 79 s and 698 s): 100 frames 3735 MiB, 1000 frames 6687 MiB (ratio 1.79; per
  node at 1000 frames: pose 2217, SAM2 1843, Mask Shaping 1770, Environment Video 1995, sampler
  6674 MiB).
* main at commit 471f3f2 (the sampler resizes larger inputs a few frames at a time, reads each
  frame once in ascending order, a source going back no longer holds every earlier frame, windows
  are dropped after the job, freed memory is trimmed after each segment), the defaults (stand-in
  motion encoder, 1 thread), 06:41 UTC on the otherwise idle machine: ``peak RSS 100 frames:
  2796 MiB, 1000 frames: 3203 MiB, ratio 1.15``, 68 s and 506 s. A run of the previous commit
  (f0ef279, the suite running at the same time): 2928 / 3180 MiB, ratio 1.09. 1000 frames, per node:
  pose 1314 MiB (55 s), SAM2 1503 MiB (424 s), Mask Shaping 1364, Environment Video 1632, DiT load
  1494, sampler 3180 (203 s). Everything before the sampler is flat in the video length; the sampler
  holds one 77-frame segment's working set (face crops at 512x512 as float, the conditioning, the
  tiny DiT and VAE) on top, and its peak over 14 segments is 250-400 MiB above its peak over 2.
* main after issue #14's last steps (commits 47fe8b3 and the next): freed C-heap pages go back to
  the OS once per chunk of every long loop (``preprocess/heap.py``; pose extraction alone had
  grown to 3200 MiB at 1000 frames with ~2 GB of freed but resident pages, which every later node
  inherited), recipe chunks are bounded by bytes (9 frames at 720p), and the sampler computes each
  segment's face motion once from its uint8 crops, 8 frames at a time (``models/face_motion.py``),
  instead of holding 512x512 float face pixels in the conditioning (242 MB, copied twice by the
  host while it samples, plus the old motion memo's copies). The defaults, 08:16 UTC, with the test
  suite running at the same time (times pessimistic): ``peak RSS 100 frames: 1929 MiB, 1000
  frames: 1976 MiB, ratio 1.02``, 81 s and 788 s. 1000 frames, per node: pose 1153 MiB (47 s), SAM2
  1402 MiB (443 s), Mask Shaping 1296, Environment Video 1273, DiT load 1391, sampler 1976 (285 s).
* ``--threads 1`` matters on a shared box: with the host's 2 threads per process and a load of
  ~6, SAM2 went from 0.33 to 10 s per frame (OpenMP threads waiting for each other).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[1]
for p in (ROOT / "tests", ROOT / "scripts", ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from benchutil import ServerRss, fill_widget_defaults, meminfo_mib, status_mib  # noqa: E402

WIDTH, HEIGHT, FPS = 1280, 720, 30  # 30 fps: the official rate, so the resampling keeps every frame
DEFAULT_SOURCE = ROOT.parent / "shared" / "media" / "vtest.avi"  # ../shared/media beside the checkout
CLIP_DIR = ROOT / "bench" / "out"
MOTION_BATCH_INPUT = "motion_batch"  # the sampler input --motion-batch sets, once the sampler has one
PACK_DIRNAME = "wan_animate_kit"
STUB_DIRNAME = "wak_bench_motion_stub"
# --stub-motion-encoder only: a custom node folder, loaded by the bench's server next to the pack, that
# swaps the host's face motion encoder for a cheap one returning its output shape. NOT the official
# model: it removes the encoder's time (~2.5-5 s per face crop on 2 CPU cores) and its memory peak.
STUB_SOURCE = '''"""Bench only (bench/bench_replace_memory.py --stub-motion-encoder): the host's Wan-Animate face
motion encoder answers with zero motion features (real shape and dtype) instead of running its
512x512 image encoder."""
from comfy.ldm.wan import model_animate


def _cheap_motion(self, img):
    return self.dec.direction(img.new_zeros(img.shape[0], self.dec.direction.motion_dim))


model_animate.Generator.get_motion = _cheap_motion
NODE_CLASS_MAPPINGS = {}
'''


# --- driving video ------------------------------------------------------------------------------
def _source_frames(source: pathlib.Path | None):
    """Endless RGB uint8 frames of WIDTHxHEIGHT: ``source`` resized and looped, else a synthetic clip
    (a bright figure walking over a textured, slowly shifting background)."""
    import cv2
    import numpy as np

    if source is not None:
        import av

        while True:
            with av.open(str(source)) as container:
                for frame in container.decode(video=0):
                    img = frame.to_ndarray(format="rgb24")
                    yield cv2.resize(img, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)
    rng = np.random.default_rng(0)
    texture = cv2.resize(rng.integers(0, 255, (HEIGHT // 8, WIDTH // 8, 3), dtype=np.uint8), (WIDTH, HEIGHT))
    i = 0
    while True:
        img = np.roll(texture, i, axis=1)
        x = 200 + (i * 7) % (WIDTH - 400)
        cv2.ellipse(img, (x, 200), (40, 50), 0, 0, 360, (230, 200, 180), -1)
        cv2.rectangle(img, (x - 60, 250), (x + 60, 520), (40, 80, 200), -1)
        cv2.rectangle(img, (x - 50, 520), (x + 50, 700), (30, 30, 30), -1)
        yield img
        i += 1


def driving_clip(frames: int, source: pathlib.Path | None) -> pathlib.Path:
    """A WIDTHxHEIGHT, FPS H.264 mp4 of ``frames`` frames with a 16 kHz mono AAC tone as long as the
    video, written frame by frame (never the whole clip in memory) and cached in CLIP_DIR."""
    from media import write_mp4

    tag = source.stem if source is not None else "synthetic"
    path = CLIP_DIR / f"replace_{tag}_{WIDTH}x{HEIGHT}_{frames}f.mp4"
    if path.is_file():
        return path
    CLIP_DIR.mkdir(parents=True, exist_ok=True)
    part = path.with_suffix(".part.mp4")
    gen = _source_frames(source)
    write_mp4(part, (next(gen) for _ in range(frames)), FPS, audio_hz=330, amplitude=0.2,
              options={"preset": "veryfast", "crf": "23"})
    part.rename(path)
    return path


# --- the workflow -------------------------------------------------------------------------------
def bench_prompt(api: dict, server, tiny: dict, info: dict, width: int, height: int,
                 segment_length: int | None, motion_batch: int | None) -> dict:
    """The shipped API workflow made runnable with the tiny models (tiny_prompt), with the long-video
    settings put back (driving video size, SAM2 chunk, segment length) and a small sampler output."""
    from models_for_prompt import tiny_prompt

    prompt = tiny_prompt(api, server, tiny)
    for nid, node in prompt.items():
        shipped = api.get(nid, {}).get("inputs", {})
        ct, inp = node["class_type"], node["inputs"]
        for key in {"WAK_DrivingVideo": ("resize_area",), "WAK_CharacterSegmentation": ("chunk_size",),
                    "WAK_AnimateSampler": ("segment_length",)}.get(ct, ()):
            if key in shipped:
                inp[key] = shipped[key]
        if ct == "WAK_AnimateSampler":
            inp.update(width=width, height=height, steps=1)
            if segment_length:
                inp["segment_length"] = segment_length
            if motion_batch is not None:
                known = info[ct]["input"].get("required", {}) | info[ct]["input"].get("optional", {})
                if MOTION_BATCH_INPUT not in known:
                    raise SystemExit(f"--motion-batch: this pack's sampler has no input '{MOTION_BATCH_INPUT}' "
                                     "(run without --motion-batch, or set MOTION_BATCH_INPUT to its name)")
                inp[MOTION_BATCH_INPUT] = motion_batch
    return fill_widget_defaults(prompt, info)


def run_once(pack: pathlib.Path, frames: int, args, tiny: dict) -> tuple[float, str]:
    """One fresh server, one queued workflow on a ``frames``-frame clip; prints the per-node table
    and returns (the server's peak RSS in MiB, "" when the run finished, else why it did not: the
    bench stops a server that goes over ``--max-rss``, and the peak is then a lower bound)."""
    import websocket
    from host_harness import HostServer, host_dir

    clip_t = time.time()
    clip = driving_clip(frames, args.source)
    print(f"[{frames} frames] driving video {clip.name} ({time.time() - clip_t:.0f}s to prepare)", flush=True)
    base = pathlib.Path(tempfile.mkdtemp(prefix="wak-replace-mem-"))
    (base / "custom_nodes").mkdir(parents=True)
    (base / "custom_nodes" / PACK_DIRNAME).symlink_to(pack, target_is_directory=True)  # HostServer keeps it
    if args.stub_motion_encoder:
        (base / "custom_nodes" / STUB_DIRNAME).mkdir()
        (base / "custom_nodes" / STUB_DIRNAME / "__init__.py").write_text(STUB_SOURCE)
    (base / "input").mkdir()
    os.symlink(clip, base / "input" / "driving.mp4")
    server = HostServer(host_dir(), base, tiny["root"])
    server.start()
    pid = server.proc.pid
    meter = ServerRss(pid, args.max_rss, server.proc.kill)
    failed = ""  # why the run did not finish

    try:
        time.sleep(2)
        print(f"[{frames} frames] idle after start: {status_mib(pid):.0f} MiB", flush=True)
        info = server.get_json("/object_info")
        api = json.loads((pack / "workflows" / "api" / "replace.json").read_text())
        prompt = bench_prompt(api, server, tiny, info, args.width, args.height, args.segment_length,
                              args.motion_batch)
        titles = {k: f"{v['class_type']} ({v.get('_meta', {}).get('title', '')})" for k, v in prompt.items()}
        meter.start()
        client = uuid.uuid4().hex
        ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/ws?clientId={client}", timeout=3600)
        start = time.time()
        status, body = server.post_json("/prompt", {"prompt": prompt, "client_id": client})
        if status != 200:
            raise SystemExit(f"[{frames} frames] the server refused the prompt: {json.dumps(body)[:3000]}")
        while True:
            try:
                raw = ws.recv()
            except (websocket.WebSocketException, OSError):  # the server died (or the bench stopped it)
                server.proc.wait()
                failed = (f"stopped by the bench {meter.over} (--max-rss)" if meter.over else
                          f"the server exited with code {server.proc.returncode} (-9: killed, e.g. by the kernel "
                          "when out of memory)")
                break
            if not isinstance(raw, str):
                continue
            msg = json.loads(raw)
            data = msg.get("data", {})
            if data.get("prompt_id") not in (None, body["prompt_id"]):
                continue
            if msg["type"] in ("execution_error", "execution_interrupted"):
                print(server.log()[-3000:])
                raise SystemExit(f"[{frames} frames] {msg['type']} in {meter.node}: {json.dumps(data)[:3000]}")
            if msg["type"] == "executing":
                node = data.get("node")
                if node is None:
                    break
                meter.node = titles.get(node, str(node))
        wall = time.time() - start
        ws.close()
        hwm = 0.0
        if not failed:
            meter.node = "(idle after the run)"
            time.sleep(1.5)
            hwm = status_mib(pid, "VmHWM")
        meter.stop()
        print(f"[{frames} frames] peak RSS per node (MiB, seconds):")
        for node, (peak, seconds) in meter.per_node().items():
            print(f"  {peak:8.0f}  {seconds:7.1f}s  {node}", flush=True)
        top = meter.top()
        samples = meter.samples
        if failed:
            print(f"[{frames} frames] NOT FINISHED after {wall:.0f}s: {failed}; sampled peak {top[1]:.0f} MiB "
                  f"(a lower bound) during {top[2]}", flush=True)
        else:
            print(f"[{frames} frames] wall {wall:.0f}s; sampled peak {top[1]:.0f} MiB during {top[2]}; "
                  f"VmHWM {hwm:.0f} MiB; after: {samples[-1][1]:.0f} MiB", flush=True)
        if args.trace:
            trace = pathlib.Path(f"{args.trace}.{frames}f.csv")
            with open(trace, "w") as f:
                f.write("seconds,rss_mib,node\n")
                f.writelines(f"{t - samples[0][0]:.2f},{rss:.0f},\"{node}\"\n" for t, rss, node in samples)
            print(f"[{frames} frames] RSS trace: {trace}")
        outputs = sorted((base / "output").rglob("*.mp4"))
        print(f"[{frames} frames] saved: {', '.join(p.name for p in outputs) or 'nothing'}")
        return max(hwm, top[1]), failed
    finally:
        meter.stop()
        server.stop()
        if not args.keep:
            import shutil

            shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", default="100,1000", help="comma-separated frame counts, one server each")
    ap.add_argument("--pack", default=str(ROOT), help="checkout of the pack to load and take "
                                                      "workflows/api/replace.json from (default: this one)")
    ap.add_argument("--size", default="64x32", help="sampler output WIDTHxHEIGHT (multiples of 16)")
    ap.add_argument("--segment-length", type=int, default=None,
                    help="sampler segment_length (default: the shipped workflow's)")
    ap.add_argument("--motion-batch", type=int, default=None,
                    help=f"sampler input '{MOTION_BATCH_INPUT}' (default: leave the workflow as it is)")
    ap.add_argument("--source", default=str(DEFAULT_SOURCE),
                    help="video resized to 1280x720 and looped (missing: a synthetic clip is generated)")
    ap.add_argument("--official-motion-encoder", action="store_true",
                    help="run the host's real face motion encoder on every face crop (about 2.5-5 s a crop on 2 "
                         "cores and ~0.65 GB per crop of one 8-crop call, whatever the video length: 1000 frames "
                         "then take over an hour). Default: the stand-in, see the module docstring")
    ap.add_argument("--stub-motion-encoder", action="store_true",
                    help="the default (kept for older command lines): the motion encoder stand-in")
    ap.add_argument("--threads", type=int, default=1,
                    help="OMP/MKL threads of the server (default 1: several multi-threaded processes on few "
                         "cores slow each other down badly; 0 = the host's own choice)")
    ap.add_argument("--max-rss", type=float, default=None,
                    help="MiB: stop a server that goes over it, its peak is then a lower bound (default: 60%% of "
                         "the machine's memory, before the kernel kills something)")
    ap.add_argument("--trace", default=None, help="also write every RSS sample to TRACE.<frames>f.csv")
    ap.add_argument("--keep", action="store_true", help="keep the server's temp folder (log, output)")
    args = ap.parse_args(argv)
    args.stub_motion_encoder = not args.official_motion_encoder
    args.width, args.height = (int(v) for v in args.size.lower().split("x"))
    if args.max_rss is None:
        args.max_rss = 0.6 * meminfo_mib("MemTotal")
    if args.threads:  # the server inherits this process's environment
        for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[key] = str(args.threads)
    src = pathlib.Path(args.source)
    args.source = src if src.is_file() else None
    counts = [int(v) for v in args.frames.split(",") if v.strip()]
    pack = pathlib.Path(args.pack).resolve()
    if not (pack / "workflows" / "api" / "replace.json").is_file():
        raise SystemExit(f"--pack: {pack} has no workflows/api/replace.json")

    from bench_server_rss import tiny_models

    tiny = tiny_models()
    print(f"pack {pack}; source {args.source or 'synthetic'} at {WIDTH}x{HEIGHT}, {FPS} fps; sampler "
          f"{args.width}x{args.height}, segment_length {args.segment_length or 'as shipped'}, 1 step, "
          f"threads {args.threads or 'host default'}"
          + ("; MOTION ENCODER STUBBED (not official: its time and memory are not measured)"
             if args.stub_motion_encoder else ""), flush=True)
    runs = {n: run_once(pack, n, args, tiny) for n in counts}
    for n, (peak, why) in runs.items():
        if why:
            print(f"{n} frames did not finish ({why}): its peak below is a lower bound")
    (a, why_a), (b, why_b) = runs[counts[0]], runs[counts[-1]]
    ge_a, ge_b = (">=" if why_a else ""), (">=" if why_b else "")
    if len(counts) >= 2:
        print(f"peak RSS {counts[0]} frames: {ge_a}{a:.0f} MiB, {counts[-1]} frames: {ge_b}{b:.0f} MiB, "
              f"ratio {'~' if why_a or why_b else ''}{b / a:.2f}")
    else:
        print(f"peak RSS {counts[0]} frames: {ge_a}{a:.0f} MiB")


if __name__ == "__main__":
    main()
