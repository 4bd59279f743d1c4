"""Colour drift of a generated video against its source, per long-video segment.

    python bench/colour_drift.py GENERATED SOURCE [--mask MASK] [--clip-len 77] [--guidance 1]
    python bench/colour_drift.py --synthetic [--frames 300] [--guidance 5]

GENERATED / SOURCE / MASK: video files (anything OpenCV reads) or .npy arrays [T, H, W, 3]
(uint8 or float 0..1; a mask may be [T, H, W]). The mask marks the character (on = character);
drift is measured on the rest, the environment, which replacement mode should keep. The source
(and mask) are resized to the generated size and the shorter length is used.

``--synthetic`` simulates a replacement run whose every segment adds a small colour cast on top
of the colours of its guidance frames (the decode/re-encode round trip), and compares three
policies: no correction, ``match_colour`` of each new segment against the previous segment's
overlap frames, and matching every frame to a reference image (a peer pack's ``colormatch``).
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import cv2
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _pack():
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "scripts"))
    from pack_import import register_pack

    register_pack()
    from wan_animate_kit.preprocess import colour, segments

    return colour, segments


# ---------------------------------------------------------------------------------------- loading

def load_frames(path: str, size: tuple[int, int] | None = None, grey: bool = False) -> np.ndarray:
    """float32 frames [T, H, W, 3] in 0..1 (or [T, H, W] with grey=True), resized to size=(w, h)."""
    p = pathlib.Path(path)
    if p.suffix == ".npy":
        arr = np.load(p)
        if arr.dtype == np.uint8:
            arr = arr.astype(np.float32) / 255.0
        arr = arr.astype(np.float32)
        if grey and arr.ndim == 4:
            arr = arr.mean(-1)
    else:
        cap = cv2.VideoCapture(str(p))
        if not cap.isOpened():
            raise SystemExit(f"cannot open video {path}")
        frames = []
        while True:
            ok, f = cap.read()
            if not ok:
                break
            f = cv2.cvtColor(f, cv2.COLOR_BGR2GRAY if grey else cv2.COLOR_BGR2RGB)
            frames.append(f.astype(np.float32) / 255.0)
        cap.release()
        if not frames:
            raise SystemExit(f"no frame could be read from {path}")
        arr = np.stack(frames)
    if size is not None and arr.shape[2:0:-1] != size:
        interp = cv2.INTER_NEAREST if grey else cv2.INTER_AREA
        arr = np.stack([cv2.resize(f, size, interpolation=interp) for f in arr])
    return arr


def per_segment(drift: np.ndarray, plan) -> list[tuple[int, int, int, float]]:
    return [(s.index, s.out_start, s.out_stop, float(np.nanmean(drift[s.out_start:s.out_stop])))
            for s in plan.segments]


def measure(args) -> None:
    colour, segments = _pack()
    gen = load_frames(args.generated)
    size = (gen.shape[2], gen.shape[1])
    src = load_frames(args.source, size)
    n = min(len(gen), len(src))
    env = None
    if args.mask:
        mask = load_frames(args.mask, size, grey=True)
        n = min(n, len(mask))
        env = mask[:n] < 0.5
    drift = colour.colour_drift(gen[:n], src[:n], env)
    cast = colour.colour_drift(gen[:n], src[:n], env, per_pixel=False)
    plan = segments.plan_segments(n, args.clip_len, args.guidance)
    region = "environment" if env is not None else "whole frame"
    print(f"{n} frames, {plan.num_segments} segments (clip {args.clip_len}, guidance {args.guidance}), "
          f"region: {region}")
    print("segment  frames        mean dE (pixel)  mean-colour dE")
    for (i, a, b, d), (_, _, _, c) in zip(per_segment(drift, plan), per_segment(cast, plan)):
        print(f"{i:7d}  {a:5d}-{b - 1:<5d}  {d:15.2f}  {c:14.2f}")
    print(f"overall  {0:5d}-{n - 1:<5d}  {np.nanmean(drift):15.2f}  {np.nanmean(cast):14.2f}")


# -------------------------------------------------------------------------------------- synthetic

def synthetic_scene(t: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured, slowly panning background and a moving character box (mask)."""
    rng = np.random.default_rng(0)
    big = cv2.resize(rng.random((h // 8, w // 4, 3)).astype(np.float32), (w * 2, h), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:h, 0:w * 2].astype(np.float32)
    big = np.clip(0.55 * big + 0.25 * np.stack([xx / (2 * w), yy / h, 1 - xx / (2 * w)], -1) + 0.1, 0, 1)
    frames = np.stack([big[:, k * w // (2 * t): k * w // (2 * t) + w] for k in range(t)]).astype(np.float32)
    mask = np.zeros((t, h, w), bool)
    for k in range(t):
        cx = int(w * (0.25 + 0.5 * k / max(t - 1, 1)))
        mask[k, h // 5: h - 4, max(0, cx - w // 10): cx + w // 10] = True
    return frames, mask


def round_trip_cast(frames: np.ndarray, colour) -> np.ndarray:
    """One decode/re-encode round trip: slightly flatter, warmer, a bit brighter."""
    lab = colour.to_lab(frames)
    lab[..., 0] = (lab[..., 0] - 50) * 0.985 + 50 + 0.6
    lab[..., 1] += 0.8
    lab[..., 2] += 1.2
    return colour.from_lab(lab)


def simulate(policy: str, src: np.ndarray, mask: np.ndarray, ref_image: np.ndarray, plan, colour,
             strength: float = 1.0) -> np.ndarray:
    """Run the segment loop with a fake generator that continues its guidance frames' colours."""
    env = ~mask
    rng = np.random.default_rng(1)
    character = np.array([0.8, 0.3, 0.6], np.float32)
    g = plan.guidance
    outputs, prev = [], None
    for seg in plan.segments:
        s = src[seg.source]
        m = mask[seg.source]
        if prev is None:
            base = s  # first segment: conditioned on the source background
        else:
            # the model continues the colours of its guidance frames (the previous segment's tail)
            tr = colour.fit_colour_transfer(s[:g], prev[-g:], env[seg.source][:g], env[seg.source][:g])
            base = tr.apply(s)
        raw = round_trip_cast(base, colour)
        raw = np.where(m[..., None], character, raw)  # the new character
        raw = np.clip(raw + rng.normal(0, 0.004, raw.shape).astype(np.float32), 0, 1)
        if policy == "overlap" and prev is not None:
            raw = colour.match_colour(raw, prev[-g:], strength=strength, mask=env[seg.source])
        elif policy == "reference":
            raw = np.concatenate([colour.match_colour(f[None], ref_image[None], strength=strength) for f in raw])
        outputs.append(raw)
        prev = raw
    return plan.assemble(outputs)


def synthetic(args) -> None:
    colour, segments = _pack()
    n, h, w = args.frames, args.height, args.width
    src, mask = synthetic_scene(n, h, w)
    plan = segments.plan_segments(n, args.clip_len, args.guidance)
    # a reference character picture: warm skin and dark clothes on a plain light wall
    ref = np.full((h, w, 3), (0.85, 0.82, 0.78), np.float32)
    ref[h // 6:, w // 3: 2 * w // 3] = (0.25, 0.2, 0.3)
    ref[h // 10: h // 3, 2 * w // 5: 3 * w // 5] = (0.9, 0.7, 0.6)
    env = ~mask
    print(f"synthetic replacement run: {n} frames {w}x{h}, {plan.num_segments} segments "
          f"(clip {args.clip_len}, guidance {args.guidance}); every segment adds a round-trip cast "
          f"of about dE {colour.colour_drift(round_trip_cast(src[:4], colour), src[:4]).mean():.2f}")
    results = {}
    for policy in ("none", "overlap", "reference"):
        out = simulate(policy, src, mask, ref, plan, colour)
        results[policy] = (colour.colour_drift(out, src, env), colour.colour_drift(out, src, env, per_pixel=False))
    print("mean dE of the environment to the source, per segment (pixel mean / mean colour):")
    print("segment  frames      " + "".join(f"{p:>18s}" for p in results))
    for seg in plan.segments:
        a, b = seg.out_start, seg.out_stop
        cells = "".join(f"{d[a:b].mean():9.2f} /{c[a:b].mean():6.2f} " for d, c in results.values())
        print(f"{seg.index:7d}  {a:4d}-{b - 1:<5d} {cells}")
    cells = "".join(f"{d.mean():9.2f} /{c.mean():6.2f} " for d, c in results.values())
    print(f"overall  {0:4d}-{n - 1:<5d} {cells}")
    for p, (d, _) in results.items():
        first = d[plan.segments[0].out_start:plan.segments[0].out_stop].mean()
        last = d[plan.segments[-1].out_start:plan.segments[-1].out_stop].mean()
        print(f"  {p:9s} first segment {first:5.2f} -> last segment {last:5.2f} (growth {last - first:+.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("generated", nargs="?")
    ap.add_argument("source", nargs="?")
    ap.add_argument("--mask", help="character mask video or .npy (on = character)")
    ap.add_argument("--clip-len", type=int, default=77)
    ap.add_argument("--guidance", type=int, default=1)
    ap.add_argument("--synthetic", action="store_true", help="run the self-demo instead")
    ap.add_argument("--frames", type=int, default=300, help="synthetic: number of frames")
    ap.add_argument("--width", type=int, default=160)
    ap.add_argument("--height", type=int, default=96)
    args = ap.parse_args()
    if args.synthetic:
        synthetic(args)
    elif args.generated and args.source:
        measure(args)
    else:
        ap.error("give GENERATED and SOURCE, or --synthetic")


if __name__ == "__main__":
    main()
