"""Context-window sampling of a whole Wan-Animate video (the pack's option, not the official pipeline).

The official pipeline (wan/animate.py, ``WanAnimate.generate``) samples the video in segments of 77
frames; each segment is decoded to pixels and its last frames are VAE-encoded again as the next
segment's guidance. That lossy round trip at every seam is where long videos drift in colour and
quality. This mode removes the seam instead of hiding it:

* the whole video is ONE latent, the reference slot followed by all ``L`` video latent frames;
* at every model call the DiT runs on overlapping windows of ``window_length`` video latent frames
  (``window_plan``), each window preceded by the reference slot (latent index 0 of the whole latent,
  with its ``c_concat`` frame: the reference latent and the all-known mask channels, as in the first
  official segment);
* each window gets exactly its own frames of ``c_concat`` (mask + conditioning latents) and of the
  pose latents: window latent i >= 1 is video latent ``start + i - 1`` and takes that pose latent;
* the face motion (motion encoder per frame, then the face encoder's causal convolutions over time;
  official: wan/modules/animate/model_animate.py, ``WanAnimateModel.after_patch_embedding``, and
  wan/modules/animate/face_blocks.py, ``FaceEncoder``; the same structure in the host's ``comfy/ldm/wan/model_animate.py``) is computed
  ONCE per sampling run for the whole face video (``FaceMotion``) and sliced per window: window
  latent i >= 1 takes face-encoder output ``start + i - 1`` (slot 0 gets the model's zero pad, as in
  a segment). Per-window encoding would differ:
  the face encoder's three causal convolutions (kernel 3; strides 1, 2, 2) give output j from pixel
  frames 4j-8 .. 4j, so a window's first latents need 8 frames of left context that a window-sized
  encode would replace by copies of its first frame (the host's replicate padding);
* the windows' denoised predictions are blended with weights that cross-fade linearly over each
  overlap and sum to 1 on every frame (``blend_weights``); the reference slot's prediction is the
  first window's.

With one window covering the whole video this is a plain sampling of the whole video as one
segment, bit for bit. The model was trained on segments whose first video latent is a first-frame
latent; windows after the first start mid-video, so this mode departs from the official pipeline,
and its quality has not been measured on the real weights.

Host imports happen inside functions.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from .face_motion import APE_TARGET, FaceMotion, model_dtype, motion_after_patch_embedding, motion_rows

log = logging.getLogger("wan_animate_kit")

MODE_SEGMENTS = "segments (official)"
MODE_WINDOWS = "context windows (seamless)"
MODES = (MODE_SEGMENTS, MODE_WINDOWS)
DEFAULT_WINDOW = 21  # latent frames = 81 pixel frames, near the official 77-frame segments
DEFAULT_OVERLAP = 4
WRAPPER_KEY = "wan_animate_kit_context_windows"


# -- plan and weights (pure) ---------------------------------------------------------------------

def check_window(window_length: int, window_overlap: int) -> None:
    """ValueError naming the input when the window settings cannot make a plan."""
    if int(window_length) < 1:
        raise ValueError(f"window_length must be at least 1 latent frame, got {window_length}")
    if not 0 <= int(window_overlap) < int(window_length):
        raise ValueError(f"window_overlap must be from 0 to window_length - 1 ({int(window_length) - 1}), "
                         f"got {window_overlap}")


def window_plan(latent_frames: int, window_length: int = DEFAULT_WINDOW,
                window_overlap: int = DEFAULT_OVERLAP) -> list[int]:
    """First video latent frame of every window over ``latent_frames`` video latents.

    Windows start every ``window_length - window_overlap`` latents; the last one is moved back to
    end on the last latent (so it may overlap its neighbour by more than ``window_overlap``). One
    window (start 0, shortened to the video) when the video fits in one."""
    check_window(window_length, window_overlap)
    total, size = int(latent_frames), int(window_length)
    if total < 1:
        raise ValueError(f"latent_frames must be at least 1, got {latent_frames}")
    if total <= size:
        return [0]
    stride = size - int(window_overlap)
    starts = list(range(0, total - size, stride))
    starts.append(total - size)
    return starts


def blend_weights(starts: Sequence[int], window_length: int, latent_frames: int) -> list[np.ndarray]:
    """float64 weights, one array per window (its own length), for the window's video latents.

    Linear cross-fade over every overlap: where a window overlaps ``k`` latents of the one before,
    its weights rise ``1/(k+1) .. k/(k+1)``; where it overlaps ``k`` latents of the next one they fall
    ``k/(k+1) .. 1/(k+1)``; 1 elsewhere. The weights are then divided by their sum on each frame, so
    they sum to 1 on every latent frame (also where three windows meet)."""
    total = int(latent_frames)
    lengths = [min(int(window_length), total - int(s)) for s in starts]
    raw = []
    for k, (s, n) in enumerate(zip(starts, lengths)):
        w = np.ones(n, np.float64)
        j = np.arange(n, dtype=np.float64)
        if k > 0:
            prev_end = int(starts[k - 1]) + lengths[k - 1]
            ov = max(0, prev_end - int(s))
            if ov:
                w = np.minimum(w, np.where(j < ov, (j + 1) / (ov + 1), 1.0))
        if k + 1 < len(starts):
            ov = max(0, int(s) + n - int(starts[k + 1]))
            if ov:
                pos = j - (n - ov)  # 0 .. ov-1 over the overlap
                w = np.minimum(w, np.where(pos >= 0, (ov - pos) / (ov + 1), 1.0))
        raw.append(w)
    total_w = np.zeros(total, np.float64)
    for s, w in zip(starts, raw):
        total_w[int(s):int(s) + len(w)] += w
    if (total_w <= 0).any():
        raise ValueError("the windows leave a latent frame uncovered")
    return [w / total_w[int(s):int(s) + len(w)] for s, w in zip(starts, raw)]


def padded_frames(num_frames: int) -> int:
    """Pixel frames of the whole-video latent: the smallest 4n+1 >= ``num_frames``."""
    n = int(num_frames)
    if n < 1:
        raise ValueError(f"num_frames must be at least 1, got {n}")
    return 4 * ((n - 1 + 3) // 4) + 1


# -- the windowed model ------------------------------------------------------------------------

@dataclass
class WindowState:
    """What the wrapper and the patched ``after_patch_embedding`` share during one job."""
    latent_frames: int  # L video latents of the whole-video latent
    starts: list[int]
    length: int
    weights: list[torch.Tensor]
    motion: FaceMotion | None = None
    current: torch.Tensor | None = None  # [B, W, heads, dim] motion of the window being run
    calls: int = 0  # model calls (each runs every window)
    trace: list | None = None  # tests: per window call (start, x window, c_concat window, kwargs, motion)


def _windowed_apply(state: WindowState):
    def wrapper(executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kwargs):
        import comfy.model_management

        if x.ndim != 5 or x.shape[2] != state.latent_frames + 1:
            return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)
        base = executor.class_obj
        dm = base.diffusion_model
        motion = motion_rows(state.motion, dm, transformer_options.get("cond_or_uncond"), x.shape[0], model_dtype(base),
                             x.device)
        pose = kwargs.get("pose_latents")
        kwargs.pop("face_pixel_values", None)  # the motion comes from state (once per run)
        out = torch.zeros_like(x, dtype=torch.float32)
        state.calls += 1
        for k, (start, weight) in enumerate(zip(state.starts, state.weights)):
            comfy.model_management.throw_exception_if_processing_interrupted()
            n = len(weight)
            idx = torch.cat([torch.zeros(1, dtype=torch.long), torch.arange(1 + start, 1 + start + n)])
            idx = idx.to(x.device)
            xw = x.index_select(2, idx)
            cw = c_concat.index_select(2, idx.to(c_concat.device)) if c_concat is not None else None
            kw = dict(kwargs)
            if pose is not None:
                kw["pose_latents"] = pose[:, :, start:start + n]
            state.current = motion[:, start:start + n] if motion is not None else None
            if state.trace is not None:
                state.trace.append({"call": state.calls, "window": k, "start": start, "x": xw, "x_full": x,
                                    "c_concat": cw,
                                    "pose_latents": kw.get("pose_latents"), "motion": state.current,
                                    "cond_or_uncond": list(transformer_options.get("cond_or_uncond", []))})
            try:
                y = executor(xw, t, cw, c_crossattn, control, transformer_options, **kw)
            finally:
                state.current = None
            w = weight.to(device=y.device, dtype=y.dtype).view(1, 1, n, 1, 1)
            if k == 0:
                out[:, :, :1] = y[:, :, :1]  # the reference slot: the first window's prediction
            out[:, :, 1 + start:1 + start + n] += y[:, :, 1:] * w
        return out

    return wrapper


def with_context_windows(model, state: WindowState):
    """A clone of ``model`` that runs every model call in the windows of ``state`` (an APPLY_MODEL
    wrapper) and feeds the DiT the window's slice of the once-computed face motion (an object patch
    of ``after_patch_embedding`` on the clone). The user's MODEL is not changed."""
    import comfy.patcher_extension

    try:
        original = model.get_model_object(APE_TARGET)
    except AttributeError:
        raise ValueError("context windows need a Wan-Animate model (no after_patch_embedding found)") from None
    patched = model.clone()
    patched.add_object_patch(APE_TARGET, motion_after_patch_embedding(original, state))
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, WRAPPER_KEY, _windowed_apply(state))
    return patched


# -- streaming decode --------------------------------------------------------------------------

def stream_decode(vae, latent: torch.Tensor, emit: Callable[[torch.Tensor], None]) -> None:
    """Decode a [1, 16, T, h, w] video latent and hand the frames [k, H, W, 3] (0..1, CPU float) to
    ``emit`` latent frame by latent frame, exactly as the host's ``VAE.decode`` computes them (the
    Wan VAE decodes one latent frame at a time through its causal cache). Falls back to one
    ``vae.decode`` when the VAE is not the host's Wan 2.1 VAE."""
    import comfy.model_management

    first = getattr(vae, "first_stage_model", None)
    decoder, conv2 = getattr(first, "decoder", None), getattr(first, "conv2", None)
    try:
        from comfy.ldm.wan.vae import WanVAE, count_conv3d
    except ImportError:  # pragma: no cover - other host versions
        WanVAE = None
    if WanVAE is None or not isinstance(first, WanVAE) or decoder is None or conv2 is None:
        decoded = vae.decode(latent)
        emit(decoded.reshape(-1, *decoded.shape[-3:]))
        return
    one = (1, latent.shape[1], 1, latent.shape[3], latent.shape[4])
    comfy.model_management.load_models_gpu([vae.patcher], memory_required=vae.memory_used_decode(one, vae.vae_dtype),
                                           force_full_load=getattr(vae, "disable_offload", False))
    with torch.inference_mode():
        z = latent.to(vae.vae_dtype).to(vae.device)
        h = conv2(z)
        cache = [None] * count_conv3d(decoder)
        for i in range(h.shape[2]):
            out = decoder(h[:, :, i:i + 1], feat_cache=cache, feat_idx=[0])
            px = vae.process_output(out.to(vae.output_device).float())
            emit(px.movedim(1, -1)[0])


# -- the job -----------------------------------------------------------------------------------

@dataclass
class WindowResult:
    frames: np.ndarray | None  # uint8 [num_frames, H, W, 3]; None when the frames went to a sink only
    starts: list[int]  # first video latent of every window
    latent_frames: int
    model_calls: int = 0
    motion_encoded: int = 0  # motion-encoder calls (chunks of MOTION_CHUNK frames), whole run
    trace: list | None = None


def latent_bytes(num_frames: int, width: int, height: int) -> int:
    """RAM the whole-video latent tensors hold for the whole run (float32): noise, the latent being
    sampled, the sampler's working copies (about 4 latents for the 2nd-order solvers), the 20-channel
    ``c_concat``, the pose latents and the denoised output: about 9 x 16 channels."""
    lat_t = (padded_frames(num_frames) - 1) // 4 + 2
    return 9 * 16 * lat_t * (int(height) // 8) * (int(width) // 8) * 4


def pixel_bytes(num_frames: int, width: int, height: int, replacement: bool) -> int:
    """RAM of the whole-video pixel buffers the conditioning encode holds (float32 frames: pose,
    the conditioning video, and in Replacement mode the environment video)."""
    return padded_frames(num_frames) * int(width) * int(height) * 3 * 4 * (3 if replacement else 2)


def memory_check(num_frames: int, width: int, height: int, replacement: bool,
                 memory: tuple[int, int] | None = None) -> tuple[str | None, list[str]]:
    """(refusal or None, warnings) for the RAM the whole-video tensors of this mode hold: the
    latent tensors for the whole run (``latent_bytes``) and the padded pixel videos while the
    conditioning is encoded (``pixel_bytes``). Refused above the machine's RAM, a warning above 80 %
    of what is free now. ``memory`` = (total, available) bytes (default: psutil's reading)."""
    if memory is None:
        import psutil

        vm = psutil.virtual_memory()
        memory = (vm.total, vm.available)
    total, available = memory
    lat, px = latent_bytes(num_frames, width, height), pixel_bytes(num_frames, width, height, replacement)
    need = lat + px
    gib = 2 ** 30
    what = (f"{num_frames} frames of {width}x{height} in context windows need about {need / gib:.1f} GiB of RAM "
            f"(the whole-video latent {lat / gib:.2f} GiB for the whole run, the pixel videos {px / gib:.1f} GiB "
            "while they are encoded)")
    if need > total:
        return f"{what}, more than this machine has ({total / gib:.1f} GiB)", []
    if need > 0.8 * available:
        return None, [f"{what}, and {available / gib:.1f} GiB is free now: the job may run out of memory."]
    return None, []


def run_windows(model, vae, positive: list, negative: list, reference: torch.Tensor, pose, settings,
                *, window_length: int = DEFAULT_WINDOW, window_overlap: int = DEFAULT_OVERLAP,
                face=None, environment=None, mask=None, clip_vision_output=None, num_frames: int | None = None,
                step_callback: Callable[[int], Callable] | None = None,
                on_frames: Callable[[int, int, np.ndarray], None] | None = None,
                sink: Callable[[np.ndarray], None] | None = None, keep_frames: bool = True,
                trace: bool = False) -> WindowResult:
    """Generate the whole video as one latent sampled in context windows (see the module docstring).

    ``settings`` is an ``animate_sampler.AnimateSettings`` (seed, steps, cfg, sampler, shift, size,
    strengths, vae precision; the segment options clip_len / guidance / crossfade / colour / cache
    do not apply). The noise is the first draw of the job's generator over the whole latent, so a
    video that fits one window gets the noise (and the frames) of a one-segment run. The inputs are
    ping-pong padded to 4n+1 frames like the official segments; exactly ``num_frames`` frames come
    out. ``sink(frames_uint8)`` receives them in order while the latent is decoded (after the last
    sampling step); with ``keep_frames=False`` only the sink gets them.
    """
    with torch.inference_mode():
        return _run_windows(model, vae, positive, negative, reference, pose, settings, int(window_length),
                            int(window_overlap), face, environment, mask, clip_vision_output, num_frames,
                            step_callback, on_frames, sink, keep_frames, trace)


def _run_windows(model, vae, positive, negative, reference, pose, settings, window_length, window_overlap, face,
                 environment, mask, clip_vision_output, num_frames, step_callback, on_frames, sink, keep_frames,
                 trace) -> WindowResult:
    import comfy.model_management
    import comfy.sample
    import comfy.utils

    from ..preprocess.segments import pingpong_indices
    from ..preprocess.frames import to_uint8
    from . import animate_conditioning as ac
    from ..preprocess.frames import as_source
    from .animate_sampler import (frames_at_size, masks_at_size, sampling_schedule, schedule_problem, segment_noise,
                                  with_flow_model)
    from .animate_strength import with_strengths

    check_window(window_length, window_overlap)
    if sink is None and not keep_frames:
        raise ValueError("keep_frames=False needs a sink for the frames")
    pose, face, environment = (as_source(x, name) if x is not None else None
                               for x, name in ((pose, "pose_video"), (face, "face_video"),
                                               (environment, "environment_video")))
    mask = as_source(mask, "character_mask", repeat_single=True) if mask is not None else None
    n = int(num_frames if num_frames is not None else pose.num_frames)
    width, height = int(settings.width), int(settings.height)
    total = padded_frames(n)
    lat_t = (total - 1) // 4 + 1
    src = pingpong_indices(n, total).tolist()
    starts = window_plan(lat_t, window_length, window_overlap)
    weights = [torch.from_numpy(w).float() for w in blend_weights(starts, window_length, lat_t)]
    state = WindowState(lat_t, starts, window_length, weights, trace=[] if trace else None)
    state.motion = FaceMotion(face.get_float if face is not None else None, src)
    latent_shape = (1, ac.LATENT_CHANNELS, lat_t + 1, height // ac.SPATIAL, width // ac.SPATIAL)

    sampling_model = with_strengths(model, settings.pose_strength, settings.face_strength)
    sampling_model = with_context_windows(sampling_model, state)
    sampling_model = with_flow_model(sampling_model, settings)
    sampler, sigmas = sampling_schedule(sampling_model, settings)
    problem = schedule_problem(sigmas, settings)
    if problem is not None:
        name, what, fix = problem
        raise ValueError(f"Wan-Animate Sampler: input '{name}': {what} -> {fix}")
    generator = torch.Generator(device="cpu").manual_seed(int(settings.seed))
    noise = segment_noise(generator, latent_shape)
    if step_callback is None:
        import latent_preview

        def step_callback(steps):
            return latent_preview.prepare_callback(model, steps)

    vae_mode = settings.vae_precision
    result = WindowResult(None, starts, lat_t)
    try:
        with ac.vae_precision(vae, vae_mode):
            ref_latent = ac.encode_reference(vae, reference, width, height)
            # at the output size, a few frames at a time (a larger source never exists whole as float)
            vid_pose = frames_at_size(pose, src, width, height)
            vid_env = frames_at_size(environment, src, width, height) if environment is not None else None
            vid_mask = masks_at_size(mask, src, width, height) if mask is not None else None
            cond = ac.build_segment(positive, negative, vae, ref_latent, vid_pose, width, height,
                                    environment=vid_env, character_mask=vid_mask,
                                    clip_vision_output=clip_vision_output)
            del vid_pose, vid_env, vid_mask
        latent = comfy.sample.fix_empty_latent_channels(sampling_model, cond.latent)
        if tuple(latent.shape) != latent_shape:
            raise ValueError(f"latent shape {tuple(latent.shape)} differs from the planned {latent_shape}")
        comfy.model_management.throw_exception_if_processing_interrupted()
        if sampler is None:
            samples = comfy.sample.sample(sampling_model, noise, settings.steps, settings.cfg, settings.sampler_name,
                                          settings.scheduler, cond.positive, cond.negative, latent, denoise=1.0,
                                          callback=step_callback(settings.steps),
                                          disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=int(settings.seed))
        else:
            samples = comfy.sample.sample_custom(sampling_model, noise, settings.cfg, sampler, sigmas.clone(),
                                                 cond.positive, cond.negative, latent,
                                                 callback=step_callback(len(sigmas) - 1),
                                                 disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED,
                                                 seed=int(settings.seed))
        del cond, latent, noise
        if not torch.isfinite(samples).all():
            raise FloatingPointError("the video sampled to NaN/inf values: the model overflowed (fp16 weights or "
                                     "dtype, or a broken model file). Load the model with weight_dtype 'default' "
                                     "or bf16.")
        result.model_calls = state.calls
        result.motion_encoded = state.motion.encoder_runs
        dec_lat = min(lat_t, (n + 2) // 4 + 1)  # the causal decoder: only the latents the output needs
        kept: list[np.ndarray] = []
        done = [0]

        def emit(px: torch.Tensor) -> None:
            frames = to_uint8(px[:max(0, n - done[0])])
            if not len(frames):
                return
            done[0] += len(frames)
            if keep_frames:
                kept.append(frames)
            if sink is not None:
                sink(frames)
            if on_frames is not None:
                on_frames(done[0], n, frames[-1])

        with ac.vae_precision(vae, vae_mode):
            stream_decode(vae, samples[:, :, 1:1 + dec_lat], emit)  # the reference slot is dropped
        del samples
        if done[0] != n:
            raise RuntimeError(f"the decode gave {done[0]} frames, expected {n}")
        result.frames = np.concatenate(kept) if keep_frames else None
    finally:
        result.trace = state.trace
        state.motion.clear()
    return result
