"""The long-video Wan-Animate loop: segments sampled with the host's own model, VAE and samplers.

Per job (official: wan/animate.py, ``WanAnimate.generate``, and generate.py for the defaults):

* plan the segments (``preprocess.segments.plan_segments``): stride ``clip_len - guidance``,
  inputs ping-pong padded to a whole number of segments;
* encode the reference once;
* for each segment, in order: read only that segment's input frames (a VIDEO is decoded per
  segment; face crops are kept as read and their face motion is computed once, when the segment is
  sampled: ``models.face_motion``), build its conditioning (``models.animate_conditioning.build_segment``), draw its noise
  from the job's single ``torch.Generator`` (seeded once with ``seed``, so segment k gets the k-th
  draw: segment 0's noise equals ``comfy.sample.prepare_noise(latent, seed)``), sample (by
  default the official UniPC of ``models.flow_solvers`` over the official sigmas, starting from
  the noise itself, through ``comfy.sample.sample_custom``; a host sampler name goes through
  ``comfy.sample.sample`` with its scheduler), decode the video part (the reference slot is dropped), keep it as uint8
  on the CPU, stitch it (``preprocess.stitching.Stitcher``) and pass its last ``guidance`` frames
  on to the next segment;
* finished segments go to the on-disk :class:`~.segment_cache.SegmentCache`, so running the same
  job again after an interruption resumes at the first unfinished segment with bit-identical
  results. The noise of skipped segments is still drawn, so the generator stays in step.

The host imports happen inside functions (models/ never imports ``comfy`` at module level).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..preprocess.segments import SegmentPlan, latent_frames, plan_segments
from ..preprocess.frames import as_source, gather_float, held_float, to_uint8
from ..preprocess.heap import release_freed_memory
from ..preprocess.stitching import Stitcher
from . import animate_conditioning as ac
from .face_motion import FaceMotion, MotionState, with_face_motion
from .segment_cache import Hasher, SegmentCache, clip_vision_fingerprint, conditioning_fingerprint, \
    model_fingerprint, vae_fingerprint

log = logging.getLogger("wan_animate_kit")

CACHE_FORMAT = "wak-seg-4"
DEFAULT_SAMPLER = "official UniPC (bh2, order 2)"
OFFICIAL_SAMPLERS = {"official UniPC (bh2, order 2)": "unipc", "official DPM++ (2M midpoint)": "dpm++"}
DEFAULT_SHIFT = 5.0


# -- job -------------------------------------------------------------------------------------

def frames_at_size(source, indices: Sequence[int], width: int, height: int, chunk: int = 8) -> torch.Tensor:
    """Float frames ``indices`` of ``source`` at ``width`` x ``height``: resized the way the segment
    conditioning resizes them (``animate_conditioning.resize_frames``, core's area resize), a few
    frames at a time, so a video larger than the output never exists whole as float (a 77-frame
    1280x720 segment is 850 MB as float). The resize works frame by frame, so the result is the same
    as resizing the whole segment at once."""
    w, h = source.size
    if (w, h) == (int(width), int(height)):
        return source.get_float(indices)
    return gather_float(source, indices, lambda f: ac.resize_frames(f[..., :3], width, height), chunk)


def masks_at_size(source, indices: Sequence[int], width: int, height: int, chunk: int = 8) -> torch.Tensor:
    """Float masks ``indices`` of ``source`` at ``width`` x ``height``, brought there the way the
    conditioning brings a mask of another size to the video size (``animate_conditioning.latent_mask``:
    host resize, nearest-exact, centre crop) a few masks at a time; a mask already at the video or the
    latent size is returned as it is."""
    import comfy.utils

    size = source.size
    if size in ((int(width), int(height)), (int(width) // 8, int(height) // 8)):
        return source.get_float(indices)
    return gather_float(source, indices, lambda m: comfy.utils.common_upscale(
        m.float().unsqueeze(1), width, height, "nearest-exact", "center")[:, 0], chunk)


IN_KEY = {"key": True}  # a setting that changes a segment's pixels: part of the resume cache key
STITCHING_ONLY = {"key": False}  # changes only how finished segments are joined (or nothing): not in the key


@dataclass
class AnimateSettings:
    seed: int = field(default=0, metadata=IN_KEY)
    steps: int = field(default=20, metadata=IN_KEY)
    cfg: float = field(default=1.0, metadata=IN_KEY)
    # an OFFICIAL_SAMPLERS label or a host sampler name
    sampler_name: str = field(default=DEFAULT_SAMPLER, metadata=IN_KEY)
    scheduler: str = field(default="simple", metadata=IN_KEY)  # host samplers only
    clip_len: int = field(default=77, metadata=IN_KEY)
    guidance: int = field(default=1, metadata=IN_KEY)
    width: int = field(default=0, metadata=IN_KEY)
    height: int = field(default=0, metadata=IN_KEY)
    crossfade: bool = field(default=False, metadata=STITCHING_ONLY)
    colour_strength: float = field(default=0.0, metadata=STITCHING_ONLY)  # 0 = no colour correction
    cache: bool = field(default=True, metadata=STITCHING_ONLY)
    # face motion computed once per segment from the crops, per pass like the official (face_motion.py);
    # off: face pixels in the conditioning, the host's motion encoder at every model call
    motion_once: bool = field(default=True, metadata=IN_KEY)
    # flow shift of the sampler's own model_sampling (official 5.0)
    shift: float = field(default=DEFAULT_SHIFT, metadata=IN_KEY)
    vae_precision: str = field(default="float32 (official)", metadata=IN_KEY)
    sampler: Any = field(default=None, metadata=IN_KEY)  # optional host SAMPLER object, overrides sampler_name
    # optional SIGMAS tensor, overrides steps/shift/scheduler's schedule
    sigmas: Any = field(default=None, metadata=IN_KEY)
    # the pack's option (official 1.0): scales the pose embedding the DiT adds
    pose_strength: float = field(default=1.0, metadata=IN_KEY)
    # the pack's option (official 1.0): scales the face adapter's output
    face_strength: float = field(default=1.0, metadata=IN_KEY)
    # with continue_from: frames of the whole video made before this part
    start_frame: int = field(default=0, metadata=IN_KEY)

    @property
    def official_solver(self) -> str | None:
        """'unipc' / 'dpm++' when the official solver samples (by name or as a custom SAMPLER)."""
        if self.sampler is not None:
            return getattr(self.sampler, "wan_animate_kit_solver", None)
        return OFFICIAL_SAMPLERS.get(self.sampler_name)

    def sampler_identity(self) -> list:
        if self.sampler is None:
            return [self.sampler_name]
        fn = getattr(self.sampler, "sampler_function", None)
        return ["custom", type(self.sampler).__name__, getattr(self.sampler, "wan_animate_kit_solver", None),
                getattr(fn, "__module__", None), getattr(fn, "__qualname__", repr(fn)),
                repr(sorted(getattr(self.sampler, "extra_options", {}).items(), key=lambda kv: kv[0])),
                repr(sorted(getattr(self.sampler, "inpaint_options", {}).items(), key=lambda kv: kv[0]))]

    def key_fields(self) -> list:
        """Every setting that can change a segment's pixels, for the resume cache key: all fields but
        those marked STITCHING_ONLY (crossfade and colour correction only change the stitching, and
        colour correction reaches later segments through their guidance frames, which are hashed per
        segment; cache changes nothing). A field without a decision is an
        error, so a new option cannot silently resume from stale segments."""
        out = []
        for f in fields(self):
            if "key" not in f.metadata:
                raise TypeError(f"AnimateSettings.{f.name} has no cache-key decision: give it metadata=IN_KEY "
                                "or metadata=STITCHING_ONLY")
            if not f.metadata["key"]:
                continue
            value = getattr(self, f.name)
            if f.name == "sampler":
                value = self.sampler_identity()
            elif f.name == "sigmas":
                value = None if value is None else [float(v) for v in torch.as_tensor(value).flatten().tolist()]
            elif isinstance(value, float):
                value = float(value)
            out.append([f.name, value])
        return out


@dataclass
class AnimateResult:
    frames: np.ndarray | None  # uint8 [num_frames, H, W, 3]; None when the frames went to a sink only
    plan: SegmentPlan
    sampled: list[int] = field(default_factory=list)
    loaded: list[int] = field(default_factory=list)
    motion_encoded: int = 0  # motion-encoder calls of the once-per-segment face motion (chunks of 8 frames)


def environment_region(mask: torch.Tensor, width: int, height: int) -> np.ndarray:
    """bool [T, height, width]: where the character mask [T, H, W] is off (the environment),
    at the video size: brought there the way the conditioning brings a mask of another size to
    the video size (host resize, nearest-exact, centre crop) before its official nearest
    downsampling to latent size (``animate_conditioning.latent_mask``)."""
    import comfy.utils

    m = mask.float().unsqueeze(1)
    if m.shape[-2:] != (height, width):
        m = comfy.utils.common_upscale(m, width, height, "nearest-exact", "center")
    return (m[:, 0] < 0.5).cpu().numpy()


def job_key(model, vae, positive, negative, reference: torch.Tensor, settings: AnimateSettings,
            num_frames: int, clip_vision_output=None, modes: Sequence[str] = ()) -> str:
    """Hash of everything all segments of a job share."""
    return Hasher(CACHE_FORMAT, settings.key_fields(), int(num_frames), list(modes),
                  model_fingerprint(model), vae_fingerprint(vae),
                  conditioning_fingerprint(positive), conditioning_fingerprint(negative),
                  clip_vision_fingerprint(clip_vision_output), reference[:1, :, :, :3].float()).hexdigest()


def sampling_schedule(sampling_model, settings: AnimateSettings):
    """(sampler object or None, sigmas) of a job. ``None`` as sampler means the host path
    (``comfy.sample.sample`` with ``sampler_name`` / ``scheduler``; sigmas as the host's KSampler
    computes them). The caller's SIGMAS tensor is never modified (a copy is used)."""
    import comfy.samplers

    from .flow_solvers import official_ksampler, official_sigmas

    solver = settings.official_solver
    host_path = settings.sampler is None and settings.sigmas is None and solver is None
    if host_path:
        ks = comfy.samplers.KSampler(sampling_model, steps=int(settings.steps), device="cpu",
                                     sampler=settings.sampler_name, scheduler=settings.scheduler, denoise=1.0)
        return None, ks.sigmas.detach().cpu()
    if settings.sampler is not None:
        sampler = settings.sampler
    elif solver is not None:
        sampler = official_ksampler(solver)
    else:
        sampler = comfy.samplers.sampler_object(settings.sampler_name)
    if settings.sigmas is not None:
        sigmas = torch.as_tensor(settings.sigmas).detach().clone().cpu()
    elif solver is not None:
        sigmas = official_sigmas(int(settings.steps), float(settings.shift), solver)
    else:
        sigmas = comfy.samplers.calculate_sigmas(sampling_model.get_model_object("model_sampling"),
                                                 settings.scheduler, int(settings.steps)).cpu()
    return sampler, sigmas


def schedule_problem(sigmas: torch.Tensor, settings: AnimateSettings) -> tuple[str, str, str] | None:
    """(input name, problem, fix) when the schedule would never call the model or the official
    solver cannot run it; None when it is fine."""
    from .flow_solvers import _check_sigmas

    name = "sigmas" if settings.sigmas is not None else "steps"
    sig = torch.as_tensor(sigmas).flatten()
    if sig.numel() < 2:
        return name, f"gives {max(sig.numel() - 1, 0)} sampling steps: the model would never run", \
            "use at least 1 step (official 20)"
    if float(sig[0]) <= 0.0:
        return name, "starts at sigma 0: the sampler would return the empty latent without running the model", \
            "use a schedule that starts above 0 (e.g. Wan-Animate Official Sigmas)"
    solver = settings.official_solver
    if solver is not None:
        try:
            _check_sigmas(sig, solver)
        except ValueError as e:
            return name, str(e), "use Wan-Animate Official Sigmas with the same solver"
    return None


def segments_before(start_frame: int, clip_len: int, guidance: int) -> tuple[int, bool]:
    """(segments a job of ``start_frame`` frames samples, whether it ends on a segment boundary).

    A continuation draws its noise after that many draws, so its segments get the noise a single
    run over the whole video gives them. It equals that run bit for bit only when the earlier
    part ended on a boundary, ``start_frame = guidance + k * (clip_len - guidance)`` with k >= 1:
    otherwise the earlier part's last segment was ping-pong padded (its frames differ from the
    single run's) and the continuation's windows are shifted against the single run's."""
    start_frame, clip_len, guidance = int(start_frame), int(clip_len), int(guidance)
    if start_frame < 1:
        return 0, True
    stride = clip_len - guidance
    aligned = start_frame > guidance and (start_frame - guidance) % stride == 0
    return plan_segments(start_frame, clip_len, guidance).num_segments, aligned


def continuation_plan(num_frames: int, clip_len: int, guidance: int) -> SegmentPlan:
    """The plan of a continued part whose ``num_frames`` input frames start with the ``guidance``
    frames the previous part ended on: the segments of ``plan_segments`` (same windows, same
    ping-pong padding at the end), but the first one, like every later segment of one long run,
    regenerates the guidance frames and keeps only the frames after them. The output frames
    [guidance, num_frames) are the new ones."""
    import dataclasses

    if int(num_frames) <= int(guidance):
        raise ValueError(f"a continuation needs more than guidance_frames ({guidance}) input frames, got {num_frames}")
    plan = plan_segments(num_frames, clip_len, guidance)
    first = dataclasses.replace(plan.segments[0], keep_from=int(guidance), out_start=int(guidance))
    return dataclasses.replace(plan, segments=(first,) + plan.segments[1:])


def scheduled_prompt(schedule: Sequence, frame: int, default: list) -> list:
    """The CONDITIONING in force at output ``frame``: the schedule entry (start_frame, conditioning)
    with the largest start_frame <= frame; ``default`` (the positive prompt) before the first."""
    chosen = default
    best = -1
    for start, cond in schedule or ():
        if best < int(start) <= int(frame):
            best, chosen = int(start), cond
    return chosen


def with_flow_model(model, settings: AnimateSettings):
    """A clone of ``model`` sampling with the job's ``shift`` (any earlier ModelSamplingSD3 is
    replaced); with the official solver the start latent is the noise itself."""
    from .flow_solvers import with_flow_shift

    return with_flow_shift(model, float(settings.shift), official_start=settings.official_solver is not None)


def segment_noise(generator: torch.Generator, shape: Sequence[int]) -> torch.Tensor:
    """The next noise draw of the job's generator (CPU, float32, like ``comfy.sample.prepare_noise``)."""
    return torch.randn(list(shape), dtype=torch.float32, generator=generator, device="cpu")


def run_animate(model, vae, positive: list, negative: list, reference: torch.Tensor, pose, settings: AnimateSettings,
                *, face=None, environment=None, mask=None, clip_vision_output=None,
                num_frames: int | None = None, prompt_schedule: Sequence = (), continue_from=None,
                on_segment: Callable[[int, int, np.ndarray, bool], None] | None = None,
                step_callback: Callable[[int], Callable] | None = None,
                cache_root: str | None = None,
                sink: Callable[[np.ndarray], None] | None = None, keep_frames: bool = True) -> AnimateResult:
    """Generate the whole video. ``pose``/``face``/``environment``/``mask`` are frame sources
    (``preprocess.frames``) or tensors; ``num_frames`` defaults to the pose video's length.

    on_segment(index, total, newest_frame_uint8, from_cache) is called after each segment (the
    node updates its progress bar there; raising from it stops the job, finished segments stay
    cached). step_callback(steps) returns the per-step sampler callback (default: the host's
    latent preview + progress bar, which also checks for interruption).
    sink(frames_uint8) receives the output frames in order as soon as no later segment can change
    them (e.g. a video file writer); with keep_frames=False only the sink gets them and the
    memory held does not grow with the video's length (result.frames is None).

    prompt_schedule: optional ((start_frame, CONDITIONING), ...): each segment is sampled with the
    prompt in force at its first new output frame (``scheduled_prompt``; ``positive`` before the
    first entry). continue_from: optional IMAGE/VIDEO (a frame provider or tensor) of the video made
    so far: its last ``guidance`` frames condition the first segment as a previous segment's tail
    would, the inputs' first ``guidance`` frames are taken as those frames' inputs, and only the
    frames after them are output (``num_frames - guidance`` frames); ``settings.start_frame`` (frames
    made before this part) places the noise draws and the prompt schedule in the whole video.
    """
    with torch.inference_mode():  # as the host's executor runs nodes; also when called from scripts
        return _run(model, vae, positive, negative, reference, pose, settings, face, environment, mask,
                    clip_vision_output, num_frames, on_segment, step_callback, cache_root, sink, keep_frames,
                    tuple(prompt_schedule or ()), continue_from)


def _with_motion(model, settings: AnimateSettings, face):
    """(the model to sample with, the face-motion state or None): with face crops and
    ``motion_once``, a clone that takes each segment's face motion computed once
    (``face_motion.with_face_motion``) instead of face pixels in the conditioning; pose and face
    strength other than 1 patch the pose embedding and the face adapter's output on a clone (the
    face strength acts after the motion, which stays that of the crops)."""
    from .animate_strength import with_strengths

    model = with_strengths(model, settings.pose_strength, settings.face_strength)
    if face is None or not settings.motion_once:
        return model, None
    state = MotionState()
    patched = with_face_motion(model, state)
    return (patched, state) if patched is not model else (model, None)


def face_key(faces, count: int, chunk: int = 8) -> str:
    """Content hash of the ``count`` face frames a reader gives (``preprocess.frames.held_float``),
    made a few frames at a time, for the segment cache key."""
    h = Hasher("face frames", int(count))
    for s in range(0, int(count), chunk):
        h.update(faces(range(s, min(int(count), s + chunk))))
    return h.hexdigest()


def continuation_tail(continue_from, guidance: int, width: int, height: int) -> np.ndarray:
    """uint8 [guidance, height, width, 3]: the last ``guidance`` frames of ``continue_from``."""
    frames = as_source(continue_from, "continue_from")
    total = frames.num_frames
    if total < guidance:
        raise ValueError(f"continue_from has {total} frames, fewer than guidance_frames ({guidance})")
    tail = frames.get(list(range(total - guidance, total)))
    if tail.shape[1:3] != (height, width):
        raise ValueError(f"continue_from is {tail.shape[2]}x{tail.shape[1]}, the output {width}x{height}")
    return tail


def _run(model, vae, positive, negative, reference, pose, settings, face, environment, mask, clip_vision_output,
         num_frames, on_segment, step_callback, cache_root, sink, keep_frames, prompt_schedule=(),
         continue_from=None) -> AnimateResult:
    import comfy.model_management
    import comfy.sample
    import comfy.utils

    pose, face, environment = (as_source(x, name) if x is not None else None
                               for x, name in ((pose, "pose_video"), (face, "face_video"),
                                               (environment, "environment_video")))
    mask = as_source(mask, "character_mask", repeat_single=True) if mask is not None else None
    n = int(num_frames if num_frames is not None else pose.num_frames)
    width, height = int(settings.width), int(settings.height)
    g = int(settings.guidance)
    guidance_frames: np.ndarray | None = None
    skip_draws, frame_base = 0, 0
    if continue_from is not None:
        guidance_frames = continuation_tail(continue_from, g, width, height)
        plan = continuation_plan(n, settings.clip_len, g)
        start_frame = int(settings.start_frame)
        if start_frame < g:
            raise ValueError(f"start_frame ({start_frame}) must be at least guidance_frames ({g}) when continuing")
        skip_draws, _ = segments_before(start_frame, settings.clip_len, g)
        frame_base = start_frame - g  # whole-video frame of this part's input frame 0
    else:
        plan = plan_segments(n, settings.clip_len, settings.guidance)
    if prompt_schedule:
        prompt_keys = {id(c): conditioning_fingerprint(c) for _, c in prompt_schedule}
        prompt_keys[id(positive)] = conditioning_fingerprint(positive)
    lat_t = latent_frames(settings.clip_len)
    latent_shape = (1, ac.LATENT_CHANNELS, lat_t + 1, height // ac.SPATIAL, width // ac.SPATIAL)

    modes = ["face" if face is not None else "", "replace" if environment is not None else "animate"]
    cache = SegmentCache(job_key(model, vae, positive, negative, reference, settings, n, clip_vision_output, modes)
                         if settings.cache else "off", root=cache_root, enabled=settings.cache)
    cache.write_info({"frames": n, "segments": plan.num_segments, "width": width, "height": height,
                      "clip_len": settings.clip_len, "guidance": settings.guidance, "seed": settings.seed})
    if sink is None and not keep_frames:
        raise ValueError("keep_frames=False needs a sink for the frames")
    if continue_from is not None and sink is not None:
        sink = _dropping_first(sink, g)  # the guidance frames belong to the earlier part
    stitcher = Stitcher(plan, height, width, crossfade=settings.crossfade, colour_strength=settings.colour_strength,
                        keep_all=keep_frames)
    generator = torch.Generator(device="cpu").manual_seed(int(settings.seed))
    for _ in range(skip_draws):  # the earlier part's segments: keep the generator where one long run has it
        segment_noise(generator, latent_shape)
    if step_callback is None:
        import latent_preview

        def step_callback(steps):
            return latent_preview.prepare_callback(model, steps)

    result = AnimateResult(stitcher.frames, plan)
    sampling_model, motion = _with_motion(model, settings, face)
    sampling_model = with_flow_model(sampling_model, settings)
    sampler, sigmas = sampling_schedule(sampling_model, settings)
    problem = schedule_problem(sigmas, settings)
    if problem is not None:
        name, what, fix = problem
        raise ValueError(f"Wan-Animate Sampler: input '{name}': {what} -> {fix}")
    vae_mode = settings.vae_precision
    try:
        ref_latent = None
        for seg in plan.segments:
            comfy.model_management.throw_exception_if_processing_interrupted()
            noise = segment_noise(generator, latent_shape)  # always drawn: keeps the generator in step
            last = seg.index == plan.num_segments - 1
            # the decoder is causal, so the last segment only needs the latent frames its kept part uses
            needed = seg.keep_from + seg.count if last else settings.clip_len
            dec_lat = min(lat_t, (needed + 2) // 4 + 1)  # latent frames whose pixels cover `needed`
            dec_frames = min(settings.clip_len, 4 * dec_lat - 3)

            src = seg.source
            seg_pose = frames_at_size(pose, src, width, height)
            if motion is not None:  # the crops wait as read; their motion is computed once, when sampling
                faces = held_float(face, src)
                seg_face = ["face frames", face_key(faces, len(src))] if cache.enabled else None
            else:  # face pixels in the conditioning
                faces = None
                seg_face = ac.face_pixels_of(face, src) if face is not None else None
            seg_env = frames_at_size(environment, src, width, height) if environment is not None else None
            seg_mask = masks_at_size(mask, src, width, height) if mask is not None else None
            release_freed_memory()  # what reading the inputs at their own size freed (preprocess.heap)
            guid = torch.from_numpy(guidance_frames).float().div_(255.0) if guidance_frames is not None else None
            region = environment_region(seg_mask, width, height) if seg_mask is not None and settings.colour_strength \
                else None
            seg_positive = scheduled_prompt(prompt_schedule, frame_base + seg.out_start, positive)
            key_inputs = [seg_pose, seg_face, seg_env, seg_mask, guidance_frames, dec_frames]
            if prompt_schedule:
                key_inputs.append(prompt_keys[id(seg_positive)])
            key = cache.segment_key(seg.index, key_inputs) if cache.enabled else ""
            raw = cache.load(seg.index, key, (dec_frames, height, width, 3))
            from_cache = raw is not None
            if raw is None:
                with ac.vae_precision(vae, vae_mode):
                    if ref_latent is None:
                        ref_latent = ac.encode_reference(vae, reference, width, height)
                    cond = ac.build_segment(seg_positive, negative, vae, ref_latent, seg_pose, width, height,
                                            face=seg_face if faces is None else None, environment=seg_env,
                                            character_mask=seg_mask, guidance=guid,
                                            clip_vision_output=clip_vision_output)
                del seg_pose, seg_face, seg_env, seg_mask
                if motion is not None:
                    motion.motion = FaceMotion(faces, range(len(src)))
                latent = comfy.sample.fix_empty_latent_channels(sampling_model, cond.latent)
                if tuple(latent.shape) != latent_shape:
                    raise ValueError(f"latent shape {tuple(latent.shape)} differs from the planned {latent_shape}")
                seed = (int(settings.seed) + skip_draws + seg.index) % 2 ** 64
                if sampler is None:
                    samples = comfy.sample.sample(sampling_model, noise, settings.steps, settings.cfg,
                                                  settings.sampler_name, settings.scheduler, cond.positive,
                                                  cond.negative, latent, denoise=1.0,
                                                  callback=step_callback(settings.steps),
                                                  disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
                else:
                    samples = comfy.sample.sample_custom(sampling_model, noise, settings.cfg, sampler, sigmas.clone(),
                                                         cond.positive, cond.negative, latent,
                                                         callback=step_callback(len(sigmas) - 1),
                                                         disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
                del cond, latent
                if motion is not None:
                    result.motion_encoded += motion.motion.encoder_runs
                    motion.motion = faces = None  # the crops and the motion of this segment
                if not torch.isfinite(samples).all():
                    raise FloatingPointError(
                        f"segment {seg.index} sampled to NaN/inf values: the model overflowed (fp16 weights or "
                        "dtype, or a broken model file). Load the model with weight_dtype 'default' or bf16; "
                        "nothing was cached for this segment, finished segments stay cached.")
                with ac.vae_precision(vae, vae_mode):
                    decoded = vae.decode(samples[:, :, 1:1 + dec_lat])  # drop the reference slot
                raw = to_uint8(decoded.reshape(-1, *decoded.shape[-3:])[:dec_frames])
                del decoded, samples
                cache.save(seg.index, key, raw)
                result.sampled.append(seg.index)
            else:
                result.loaded.append(seg.index)
            if seg.index == 0 and continue_from is not None and settings.colour_strength > 0:
                # the stitcher corrects segments after the first; a continued part's first segment is one
                raw = _colour_matched(raw, guidance_frames, settings.colour_strength, region, g)
            guidance_frames = stitcher.add(seg.index, raw, region)
            del raw
            if sink is not None:
                sink(stitcher.take_final())
            release_freed_memory()
            if on_segment is not None:
                on_segment(seg.index, plan.num_segments, stitcher.latest, from_cache)
    finally:
        if motion is not None:
            motion.motion = motion.current = None  # the host may keep the clone loaded: drop the crops now
        for source in (pose, face, environment, mask):  # the host keeps the videos: drop their read windows
            release = getattr(source, "release", None)
            if release is not None:
                release()
    cache.finish()
    if continue_from is not None and result.frames is not None:
        result.frames = result.frames[g:]
    return result


def _dropping_first(sink: Callable[[np.ndarray], None], count: int) -> Callable[[np.ndarray], None]:
    """A sink that passes on everything after the first ``count`` frames it is given."""
    left = [int(count)]

    def take(frames: np.ndarray) -> None:
        if left[0] > 0:
            cut = min(left[0], len(frames))
            frames = frames[cut:]
            left[0] -= cut
        sink(frames)

    return take


def _colour_matched(raw: np.ndarray, tail: np.ndarray, strength: float, region, guidance: int) -> np.ndarray:
    """A segment's frames matched to the frames it shares with the previous part, exactly as the
    stitcher does for every segment after the first."""
    from ..preprocess.colour import match_colour

    frames = to_uint8(raw)
    mask = None if region is None else np.asarray(region, bool)[:len(frames)]
    return to_uint8(match_colour(frames, tail, strength, mask=mask, shared=slice(0, guidance)))
