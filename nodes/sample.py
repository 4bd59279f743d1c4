"""Wan-Animate long-video sampler node: the whole video in segments, on the host's own model."""
from __future__ import annotations

import logging
import os
import uuid
from fractions import Fraction

import torch
from comfy_api.latest import io, ui

from .common import (CATEGORY, DEFAULT_FPS, PREFIX, InputError, Masks, Pose, Progress, check_number, source_of,
                     frames_blocked, preview_tuple, to_float)
from .prompt_schedule import PromptSchedule, check_schedule as _check_prompt_schedule
from ..models.context_windows import DEFAULT_OVERLAP, DEFAULT_WINDOW, MODES as WINDOW_MODES, MODE_WINDOWS

log = logging.getLogger("wan_animate_kit")

NODE = "Wan-Animate Sampler"
OFFICIAL_UNIPC = "official UniPC (bh2, order 2)"  # the official CLI solver (generate.py --sample_solver unipc)
OFFICIAL_DPMPP = "official DPM++ (2M midpoint)"  # WanAnimate.generate's own default
DEFAULT_SAMPLER = OFFICIAL_UNIPC
DEFAULT_SCHEDULER = "simple"  # used by host samplers only; the official solvers have their own schedule
DEFAULT_SHIFT = 5.0  # official sample_shift of Wan2.2-Animate
VAE_PRECISIONS = ["float32 (official)", "host"]
FULL_MASK = 0.995  # coverage above which a character mask "covers everything"


def _sampler_names() -> tuple[list[str], list[str]]:
    import comfy.samplers

    return [OFFICIAL_UNIPC, OFFICIAL_DPMPP] + list(comfy.samplers.KSampler.SAMPLERS), \
        list(comfy.samplers.KSampler.SCHEDULERS)


def _video_input(name: str, tooltip: str, optional: bool = False):
    return io.MultiType.Input(io.Image.Input(name, optional=optional, tooltip=tooltip), types=[io.Video],
                              optional=optional, tooltip=tooltip)


class AnimateSampler(io.ComfyNode):
    """Samples a whole Wan-Animate video: segments of ``segment_length`` frames, each conditioned on
    the last ``guidance_frames`` frames of the one before, stitched to exactly the pose video's
    length. Finished segments are cached on disk so an interrupted job resumes."""

    @classmethod
    def define_schema(cls):
        samplers, schedulers = _sampler_names()
        return io.Schema(
            node_id=PREFIX + "AnimateSampler",
            display_name="Wan-Animate Sampler (long video)",
            category=CATEGORY + "/sampling",
            description=(
                "Generates a Wan2.2-Animate video of any length with the host's own Wan-Animate model, VAE and "
                "samplers, in segments stitched like the official code (stride segment_length - guidance_frames, "
                "inputs ping-pong padded, exactly as many frames out as the pose video has). Animation mode: "
                "reference + pose (+ face). Replacement mode: also connect environment_video and character_mask. "
                "Finished segments are cached on disk: queue the same job again after an interruption and it "
                "resumes at the first unfinished segment. The face crops' motion vectors are computed once per "
                "segment, 8 frames at a time as the official pipeline does, instead of at every step from 512x512 "
                "float face pixels in the conditioning (same result, less time and memory). The pack's option mode 'context "
                "windows (seamless)' samples the whole video as one latent in overlapping windows instead (not the "
                "official pipeline; see its tooltip)."),
            inputs=[
                io.Model.Input("model", tooltip="The Wan2.2-Animate-14B diffusion model (Load Diffusion Model), "
                               "optionally with the Relighting LoRA. The sampler sets its own flow shift (the "
                               "shift input), so a ModelSamplingSD3 node before it is not needed (its shift is "
                               "replaced)."),
                io.Conditioning.Input("positive", tooltip="Encoded prompt (umT5). Official: '视频中的人在做动作' "
                                      "(the person in the video is doing actions)."),
                io.Conditioning.Input("negative", tooltip="Encoded negative prompt. Used only when cfg > 1 (face "
                                      "CFG); the official one is Wan's standard negative prompt."),
                io.Vae.Input("vae", tooltip="The Wan 2.1 VAE (wan_2.1_vae). The Wan 2.2 (48-channel) VAE does not fit "
                             "this model."),
                io.Image.Input("reference", tooltip="The character image. Fitted to the video size like the "
                               "official code: aspect kept, centred, black bars. Encoded once per job."),
                _video_input("pose_video", "Rendered skeleton video (IMAGE batch or VIDEO). Its frame count is "
                             "the output's, its size the default output size."),
                _video_input("face_video", "Face crops, one per pose frame (resized to 512x512). At least as "
                             "many frames as the pose video; extra frames are ignored.", optional=True),
                _video_input("environment_video", "Replacement mode: the source video with the character "
                             "blacked out. Needs character_mask; at least as many frames as the pose video.",
                             optional=True),
                io.MultiType.Input(io.Mask.Input("character_mask", optional=True, tooltip="Replacement mode: 1 where "
                                   "the character is replaced: a MASK (soft values kept) or the compact masks of "
                                   "Environment Video (memory flat in video length). One frame (repeated) or at "
                                   "least as many frames as the pose video. Needs environment_video."),
                                   types=[io.Mask, Masks]),
                io.ClipVisionOutput.Input("clip_vision_output", optional=True, tooltip="CLIP Vision Encode "
                                          "(clip_vision_h) of the reference; official: crop 'none'. Recommended."),
                Pose.Input("pose", optional=True, tooltip="Optional: the POSE the pose video was drawn from, only "
                           "to check that Replacement mode is not given retargeted poses."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Noise seed. One generator is seeded once; segments take successive noise, so "
                             "a job is deterministic as a whole. The noise is drawn on the CPU (the same on any "
                             "machine); the official code draws it with a CUDA generator, so the same seed gives "
                             "different noise there."),
                io.Int.Input("steps", default=20, min=1, max=10000, tooltip="Sampling steps per segment (official 20)."),
                io.Float.Input("cfg", default=1.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="1.0 = official (one pass per step). Above 1 enables face CFG: the second "
                               "pass uses the negative prompt with black (-1) face frames."),
                io.Combo.Input("sampler_name", options=samplers, default=DEFAULT_SAMPLER,
                               tooltip="official UniPC (default) = the official Wan2.2 solver (generate.py "
                               "--sample_solver unipc): UniPC bh2, order 2, UniC corrector, over the official "
                               "sigmas for steps and shift, starting from the noise itself, the DiT given the "
                               "official integer timesteps. official DPM++ = the official DPM-Solver++ 2M. The "
                               "other entries are the host's samplers with the scheduler below; they differ from "
                               "the official run (the host's uni_pc is bh1 / order 3 and drops the last sigma "
                               "before 0, the DiT gets float timesteps, the start is 0.999 * noise or so)."),
                io.Combo.Input("scheduler", options=schedulers,
                               default=DEFAULT_SCHEDULER if DEFAULT_SCHEDULER in schedulers else schedulers[0],
                               tooltip="Host scheduler, used only with a host sampler (the official solvers use the "
                               "official schedule). 'simple' is linear in t with the shift applied, but not the "
                               "official list (that starts at 0.999 for UniPC)."),
                io.Int.Input("segment_length", default=77, min=5, max=1025, step=4,
                             tooltip="Frames per segment, 4n+1 (official 77). Longer = fewer seams, more memory."),
                io.Int.Input("guidance_frames", default=1, min=1, max=5, step=4,
                             tooltip="Frames of the previous segment that condition the next: 1 or 5 (official). "
                             "Segments start every segment_length - guidance_frames frames."),
                io.Int.Input("width", default=0, min=0, max=16384, step=16,
                             tooltip="Output width, a multiple of 16; 0 = the pose video's."),
                io.Int.Input("height", default=0, min=0, max=16384, step=16,
                             tooltip="Output height, a multiple of 16; 0 = the pose video's."),
                io.Float.Input("fps", default=DEFAULT_FPS, min=1.0, max=240.0, step=0.001,
                               tooltip="Frame rate of the VIDEO output when the pose video is an IMAGE batch "
                               "(a VIDEO pose input keeps its own rate). Official output: 30."),
                io.Boolean.Input("crossfade", default=False, tooltip="Blend the regenerated guidance frames with "
                                 "the previous segment's instead of the official hard cut."),
                io.Boolean.Input("colour_correction", default=False, tooltip="Match each new segment's colours to "
                                 "the frames it shares with the previous segment (never to the reference), against "
                                 "colour drift over long videos."),
                io.Float.Input("colour_strength", default=1.0, min=0.0, max=1.0, step=0.05,
                               tooltip="Strength of the colour correction (0..1)."),
                io.Boolean.Input("cache", default=True, tooltip="Save finished segments to disk so a re-queued job "
                                 "resumes after an interruption or crash; removed when the job completes."),
                io.Boolean.Input("frames_output", default=True,
                                 tooltip="On: also return every frame as an IMAGE batch (for upscaling, "
                                 "interpolation, ...; float, 12 bytes a pixel). Off: only the video output, "
                                 "written to an H.264 file as segments finish, so memory stays flat for videos "
                                 "of any length; a node connected to frames is then stopped with a message. "
                                 "On, a job whose frames cannot fit in RAM stops before sampling."),
                io.Audio.Input("audio", optional=True, tooltip="Optional sound for the video output (e.g. the "
                               "driving video's, from Get Video Components or Video Info); cut to the video's "
                               "length."),
                io.Float.Input("shift", default=DEFAULT_SHIFT, min=0.01, max=100.0, step=0.01, optional=True,
                               tooltip="Flow sampling shift (official 5.0). Applied on the sampler's own copy of "
                               "the model, for every sampler; replaces the shift of any ModelSamplingSD3 before "
                               "this node (without one the host would use its Wan default, 8)."),
                io.Combo.Input("vae_precision", options=VAE_PRECISIONS, default=VAE_PRECISIONS[0], optional=True,
                               tooltip="float32 (official): the VAE encodes and decodes in float32 on inputs "
                               "rounded to bf16, as the official code runs its VAE; its weights and activations "
                               "take twice the memory of bf16 for the duration (weights about 0.5 GB instead of "
                               "0.25 GB; the largest cost is the decode's activations). host: the host's VAE "
                               "dtype (bf16 on most GPUs): less memory, slightly different pixels."),
                io.Sampler.Input("sampler", optional=True, tooltip="Optional SAMPLER that replaces sampler_name "
                                 "(e.g. Wan-Animate Official Sampler, or a core KSamplerSelect). The official one "
                                 "starts from the noise itself here."),
                io.Sigmas.Input("sigmas", optional=True, tooltip="Optional SIGMAS that replace the schedule of "
                                "steps / shift / scheduler (e.g. Wan-Animate Official Sigmas). Not modified."),
                io.Float.Input("pose_strength", default=1.0, min=0.0, max=10.0, step=0.05, optional=True,
                               tooltip="The pack's option; official = 1.0 (exactly the official model). Scales the "
                               "pose embedding the model adds to the video latents: below 1 the skeleton steers "
                               "the body less, 0 ignores the pose video entirely."),
                io.Float.Input("face_strength", default=1.0, min=0.0, max=10.0, step=0.05, optional=True,
                               tooltip="The pack's option; official = 1.0 (exactly the official model). Scales the "
                               "face adapter's contribution (its output, added after every fifth block; scaling the "
                               "face pixels or motion vectors instead would feed the adapter signals it was never "
                               "trained on): below 1 the face crops drive the expression less, 0 ignores them "
                               "entirely. In Replacement mode a low value may leave parts of the blacked-out "
                               "character region unpainted (a model quirk also reported for other tools)."),
                PromptSchedule.Input("prompt_schedule", optional=True, tooltip="The pack's option (officially one "
                                     "prompt for the whole video): a Wan-Animate Prompt Schedule. Each segment "
                                     "uses the prompt in force at its first new output frame; positive is used "
                                     "before the schedule's first start frame."),
                _video_input("continue_from", "The pack's option: continue a video made before (IMAGE or VIDEO, "
                             "same size as the output). Its last guidance_frames frames condition the first "
                             "segment exactly as a previous segment's tail would. The driving inputs (pose, face, "
                             "environment, mask) must start at those frames: overlap the earlier part by "
                             "guidance_frames frames (earlier part = frames 0-299, guidance 1: start the driving "
                             "video at frame 299). The output starts after them. With the same seed and an "
                             "earlier part ending on a segment boundary (guidance_frames + k x (segment_length - "
                             "guidance_frames) frames) the parts join to exactly the frames of one long run "
                             "(needs an IMAGE or lossless frames; crossfade is not applied at the join).",
                             optional=True),
                io.Int.Input("start_frame", default=0, min=0, max=10_000_000, optional=True,
                             tooltip="With continue_from: how many frames of the whole video exist before this "
                             "part's new frames (it places the noise draws and the prompt schedule). 0 = "
                             "continue_from's frame count (right when continue_from holds the whole video so far)."),
                io.Combo.Input("mode", options=list(WINDOW_MODES), default=WINDOW_MODES[0], optional=True,
                               tooltip="segments (official) = the official pipeline: segments of segment_length "
                               "frames, each decoded and its last guidance_frames frames VAE-encoded again to "
                               "condition the next (a lossy round trip at every seam, where long videos drift). "
                               "context windows (seamless) = the pack's option, NOT the official pipeline: the whole "
                               "video is one latent and at every step the model runs on overlapping windows of "
                               "window_length latent frames, each with the reference re-inserted at its start and "
                               "exactly its own pose, face motion and conditioning frames, the predictions "
                               "cross-faded over the overlaps: no decode/re-encode seam, no fixed cut. The model was "
                               "trained on segments (every window after the first starts mid-video, which it never "
                               "saw in training), and this mode's quality has not been measured on the real weights. "
                               "The whole-video latent and the padded input videos stay in RAM for the run (checked "
                               "before sampling); segment_length, guidance_frames, crossfade, colour correction and "
                               "cache do not apply, prompt_schedule and continue_from are refused."),
                io.Int.Input("window_length", default=DEFAULT_WINDOW, min=1, max=1024, optional=True,
                             tooltip="context windows only: latent frames per window (4 video frames each; 21 = 81 "
                             "frames, near the official 77-frame segments). Longer = fewer overlaps, more GPU "
                             "memory per model call."),
                io.Int.Input("window_overlap", default=DEFAULT_OVERLAP, min=0, max=1023, optional=True,
                             tooltip="context windows only: latent frames shared by neighbouring windows, "
                             "cross-faded linearly (4 = 16 video frames); from 0 to window_length - 1."),
            ],
            outputs=[
                io.Image.Output("frames", display_name="frames",
                                tooltip="All frames, exactly as many as the pose video (needs frames_output on)."),
                io.Video.Output("video", display_name="video",
                                tooltip="The same frames as a VIDEO at the driving fps, with the audio input's "
                                "sound. With frames_output off it is a file that Save Video copies as it is."),
            ],
        )

    @classmethod
    def execute(cls, model, positive, negative, vae, reference, pose_video, seed, steps, cfg, sampler_name,
                scheduler, segment_length, guidance_frames, width, height, fps, crossfade, colour_correction,
                colour_strength, cache, frames_output=True, face_video=None, environment_video=None,
                character_mask=None, clip_vision_output=None, pose=None, audio=None, shift=None,
                vae_precision=None, sampler=None, sigmas=None, pose_strength=None, face_strength=None,
                prompt_schedule=None, continue_from=None, start_frame=None, mode=None, window_length=None,
                window_overlap=None) -> io.NodeOutput:
        from comfy_api.latest import InputImpl, Types
        from ..models.animate_sampler import AnimateSettings, run_animate

        check_number(NODE, "cfg", cfg, 0.0, 100.0, "use 1.0 (official) or a CFG scale such as 5")
        pose_strength = 1.0 if pose_strength is None else pose_strength
        face_strength = 1.0 if face_strength is None else face_strength
        check_number(NODE, "pose_strength", pose_strength, 0.0, 10.0, "use 1.0 (official)")
        check_number(NODE, "face_strength", face_strength, 0.0, 10.0, "use 1.0 (official)")
        schedule = _check_prompt_schedule(NODE, "prompt_schedule", prompt_schedule)
        check_prompt_width(model, positive, "positive")
        check_prompt_width(model, negative, "negative")
        for entry_frame, cond in schedule:
            check_prompt_width(model, cond, "prompt_schedule", f" (the prompt at frame {entry_frame})")
        job = preflight(model, vae, reference, pose_video, face_video, environment_video, character_mask, pose,
                        segment_length, guidance_frames, width, height, colour_strength, steps, audio)
        shift = DEFAULT_SHIFT if shift is None else shift  # optional: graphs saved before it existed
        vae_precision = VAE_PRECISIONS[0] if vae_precision is None else vae_precision
        check_sampling_inputs(sampler_name, shift, vae_precision, sigmas)
        start_frame = continuation_inputs(job, continue_from, start_frame, segment_length, guidance_frames)
        out_frames = job["frames"] - (int(guidance_frames) if continue_from is not None else 0)
        job["warnings"] += output_memory_check(out_frames, job["width"], job["height"], frames_output)
        windowed = window_inputs(mode, window_length, window_overlap, schedule, continue_from)
        if windowed:
            job["warnings"] += windows_memory_check(job, environment_video is not None)
        else:
            job["warnings"] += working_memory_check(vae, segment_length, job["width"], job["height"])
        settings = AnimateSettings(seed=int(seed), steps=int(steps), cfg=float(cfg), sampler_name=sampler_name,
                                   scheduler=scheduler, clip_len=int(segment_length), guidance=int(guidance_frames),
                                   width=job["width"], height=job["height"], crossfade=bool(crossfade),
                                   colour_strength=float(colour_strength) if colour_correction else 0.0,
                                   cache=bool(cache), shift=float(shift), vae_precision=vae_precision,
                                   sampler=sampler, sigmas=sigmas, pose_strength=float(pose_strength),
                                   face_strength=float(face_strength), start_frame=start_frame)
        check_schedule(model, settings)
        bar: list[Progress] = []

        def on_segment(index, total, newest, from_cache):
            if not bar:
                bar.append(Progress(total))
            bar[0].update(1, preview_tuple(newest))

        rate = job["pose"].fps if not isinstance(pose_video, torch.Tensor) and job["pose"].fps > 0 else float(fps)
        writer = None
        if not frames_output:
            import folder_paths

            from ..preprocess.video_file import VideoFileWriter

            path = os.path.join(folder_paths.get_temp_directory(), "wan_animate_kit",
                                f"animate_{uuid.uuid4().hex[:12]}.mp4")
            writer = VideoFileWriter(path, rate, job["width"], job["height"], audio=audio)
        try:
            if windowed:
                from ..models.context_windows import run_windows

                def on_frames(done, total, newest):
                    if not bar:
                        bar.append(Progress(total))
                    bar[0].update(done - bar[0].done, preview_tuple(newest))

                result = run_windows(model, vae, positive, negative, reference, job["pose"], settings,
                                     window_length=windowed[0], window_overlap=windowed[1], face=job["face"],
                                     environment=job["environment"], mask=job["mask"],
                                     clip_vision_output=clip_vision_output, num_frames=job["frames"],
                                     on_frames=on_frames, sink=writer.write if writer else None,
                                     keep_frames=writer is None)
            else:
                result = run_animate(model, vae, positive, negative, reference, job["pose"], settings,
                                     face=job["face"], environment=job["environment"], mask=job["mask"],
                                     clip_vision_output=clip_vision_output, num_frames=job["frames"],
                                     prompt_schedule=schedule, continue_from=job["continue"],
                                     on_segment=on_segment, sink=writer.write if writer else None,
                                     keep_frames=writer is None)
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        if writer is not None:
            images, video = frames_blocked("Wan-Animate Sampler"), InputImpl.VideoFromFile(writer.close())
        else:
            images = to_float(result.frames)
            video = InputImpl.VideoFromComponents(
                Types.VideoComponents(images=images, frame_rate=Fraction(rate).limit_denominator(100000),
                                      audio=audio))
        del result
        text = job["warnings"]
        return io.NodeOutput(images, video, ui=ui.PreviewText("\n".join(text)) if text else None)


def output_bytes(frames: int, width: int, height: int) -> int:
    """RAM the frames output needs at the end of a job: the uint8 frames plus the float32 IMAGE."""
    return int(frames) * int(width) * int(height) * 3 * (1 + 4)


def output_memory_check(frames: int, width: int, height: int, frames_output: bool,
                        memory: tuple[int, int] | None = None) -> list[str]:
    """With frames_output on, the whole video ends up in RAM as an IMAGE. An error before any
    sampling when that cannot fit in this machine's RAM at all, a warning when it is over 80 % of
    what is free now. ``memory`` = (total, available) bytes (default: psutil's reading)."""
    if not frames_output:
        return []
    if memory is None:
        import psutil

        vm = psutil.virtual_memory()
        memory = (vm.total, vm.available)
    total, available = memory
    need = output_bytes(frames, width, height)
    gib = 2 ** 30
    what = f"{frames} frames of {width}x{height} as an IMAGE need about {need / gib:.1f} GiB of RAM"
    if need > total:
        raise InputError(NODE, "frames_output", f"is on: {what}, more than this machine has "
                         f"({total / gib:.1f} GiB)", "turn frames_output off: the video then streams to a file "
                         "(Save Video takes the video output) and RAM stays flat")
    if need > 0.8 * available:
        return [f"frames_output is on: {what}, and {available / gib:.1f} GiB is free now. Turn frames_output off "
                "to stream the video to a file instead."]
    return []


def check_sampling_inputs(sampler_name, shift, vae_precision, sigmas) -> None:
    """Cheap checks of the sampling inputs (before any work)."""
    import math

    samplers, _ = _sampler_names()
    if sampler_name not in samplers:
        raise InputError(NODE, "sampler_name", f"unknown sampler {sampler_name!r}", f"pick e.g. {DEFAULT_SAMPLER!r}")
    if not (isinstance(shift, (int, float)) and math.isfinite(shift) and shift > 0):
        raise InputError(NODE, "shift", f"must be a positive number, got {shift}", "use the official 5.0")
    if vae_precision not in VAE_PRECISIONS:
        raise InputError(NODE, "vae_precision", f"unknown choice {vae_precision!r}", f"pick one of {VAE_PRECISIONS}")
    if sigmas is not None:
        import torch

        if not torch.is_tensor(sigmas) or sigmas.ndim != 1:
            raise InputError(NODE, "sigmas", "must be a 1-D SIGMAS list", "connect e.g. Wan-Animate Official Sigmas")


def check_schedule(model, settings) -> None:
    """Refuse a schedule on which the chosen sampler would never call the model (0 steps, a first
    sigma of 0) or that the official solver cannot run, before any encoding or sampling."""
    from ..models.animate_sampler import sampling_schedule, schedule_problem, with_flow_model

    _, sigmas = sampling_schedule(with_flow_model(model, settings), settings)
    problem = schedule_problem(sigmas, settings)
    if problem is not None:
        name, what, fix = problem
        raise InputError(NODE, name, what, fix)


def check_prompt_width(model, cond, name: str, where: str = "") -> None:
    """Refuse, before any work, a CONDITIONING whose embeddings are not [batch, tokens, text dim]
    of this model (e.g. 768-wide CLIP-L embeddings instead of umT5's 4096)."""
    import torch

    dim = None
    try:
        dim = int(model.get_model_object("diffusion_model.text_embedding")[0].in_features)
    except Exception:  # not a Wan model: preflight names the model
        pass
    if not isinstance(cond, list) or not cond:
        raise InputError(NODE, name, f"is not a CONDITIONING{where}", "connect CLIP Text Encode (umt5_xxl) or "
                         "Load Prompt Embedding")
    for entry in cond:
        t = entry[0] if isinstance(entry, (list, tuple)) and entry else None
        if not torch.is_tensor(t) or t.ndim != 3:
            raise InputError(NODE, name, f"is not a CONDITIONING of text embeddings{where}",
                             "connect CLIP Text Encode (umt5_xxl) or Load Prompt Embedding")
        if dim is not None and int(t.shape[-1]) != dim:
            raise InputError(NODE, name, f"holds {int(t.shape[-1])}-wide text embeddings{where}, the model takes "
                             f"{dim}", "encode the prompt with Wan's umT5 text encoder (umt5_xxl, 4096 wide)")
        if not torch.isfinite(t).all():
            raise InputError(NODE, name, f"holds NaN or infinite values{where}", "encode the prompt again")


def continuation_inputs(job: dict, continue_from, start_frame, segment_length: int, guidance_frames: int) -> int:
    """Check continue_from / start_frame; put the continue_from source in ``job``; return the
    start frame (0 without continue_from)."""
    g = int(guidance_frames)
    job["continue"] = None
    if continue_from is None:
        if start_frame:
            raise InputError(NODE, "start_frame", f"is {start_frame} but continue_from is not connected",
                             "set it to 0, or connect the video to continue")
        return 0
    src = _source(continue_from, "continue_from")
    if src.num_frames < g:
        raise InputError(NODE, "continue_from", f"has {src.num_frames} frames, fewer than guidance_frames ({g})",
                         "connect the video made so far")
    if tuple(src.size) != (job["width"], job["height"]):
        raise InputError(NODE, "continue_from", f"is {src.size[0]}x{src.size[1]}, the output {job['width']}x"
                         f"{job['height']}", "continue a video of the output's size (or set width/height to it)")
    if job["frames"] <= g:
        raise InputError(NODE, "pose_video", f"has {job['frames']} frames: with continue_from its first "
                         f"{g} frame(s) are the ones continued, so nothing new would be made",
                         "connect the driving frames from the last frame(s) of the earlier part on")
    start = int(start_frame or 0) or src.num_frames
    if start < g:
        raise InputError(NODE, "start_frame", f"{start} is less than guidance_frames ({g})",
                         "give the frame count of the whole video so far")
    from ..models.animate_sampler import segments_before

    _, aligned = segments_before(start, segment_length, g)
    if not aligned:
        stride = int(segment_length) - g
        job["warnings"].append(
            f"start_frame {start} is not on a segment boundary (guidance_frames + k x {stride}): the earlier part's "
            "last segment was padded, so the joined parts differ from one long run near the join.")
    job["continue"] = src
    return start


def working_memory_check(vae, segment_length: int, width: int, height: int,
                         memory: tuple[int, int] | None = None) -> list[str]:
    """Refuse, before the reference is encoded, a size whose per-segment working memory cannot fit
    in this machine's RAM: the segment's float32 frame buffers (pose, conditioning image,
    environment, decoded frames: 4 x 12 bytes a pixel a frame) and, when the VAE runs on the CPU,
    the host's own estimate of the VAE's working memory for one segment. Warns above 80 % of what
    is free now."""
    if memory is None:
        import psutil

        vm = psutil.virtual_memory()
        memory = (vm.total, vm.available)
    total, available = memory
    frames, pixels = int(segment_length), int(width) * int(height)
    need = 4 * frames * pixels * 12
    device = getattr(vae, "device", None)
    if device is not None and getattr(device, "type", str(device)) == "cpu":
        import torch

        lat_t = (frames - 1) // 4 + 1
        try:
            enc = vae.memory_used_encode((1, 3, frames, int(height), int(width)), torch.float32)
            dec = vae.memory_used_decode((1, 16, lat_t, int(height) // 8, int(width) // 8), torch.float32)
            need += int(max(enc, dec))
        except Exception:
            pass
    gib = 2 ** 30
    what = (f"{width}x{height} with {frames}-frame segments needs about {need / gib:.1f} GiB of RAM while a "
            "segment is encoded, sampled and decoded")
    if need > total:
        raise InputError(NODE, "width", f"(and height) {what}, more than this machine has ({total / gib:.1f} GiB)",
                         "lower width and height (0 = the pose video's size) or segment_length")
    if need > 0.8 * available:
        return [f"{what}, and {available / gib:.1f} GiB is free now: the job may run out of memory."]
    return []


def _source(value, name: str):
    try:
        return source_of(value, name, NODE)
    except InputError:
        raise
    except ValueError as e:
        raise InputError(NODE, name, str(e), "connect an IMAGE batch or a VIDEO") from None


def preflight(model, vae, reference, pose_video, face_video, environment_video, character_mask, pose,
              segment_length, guidance_frames, width, height, colour_strength, steps, audio=None) -> dict:
    """Check every input before any sampling; raise InputError naming the input at fault.

    Rules: face/environment videos need at least the pose video's frame count (extra frames are
    ignored); a character mask has 1 frame (repeated) or at least as many; environment and mask
    come together; an all-empty mask is an error, a mask covering every pixel of every frame a
    warning; Replacement mode refuses retargeted poses (when the optional POSE is connected).
    Returns the resolved sources, size and warnings.
    """
    import comfy.model_base

    inner = getattr(model, "model", None)
    if not isinstance(inner, comfy.model_base.WAN22_Animate):
        what = type(inner).__name__ if inner is not None else type(model).__name__
        raise InputError(NODE, "model", f"is a {what} model, not Wan2.2-Animate (WAN22_Animate)",
                         "load Wan2.2-Animate-14B (e.g. wan2.2_animate_14B_bf16.safetensors) with Load Diffusion Model")
    if getattr(vae, "latent_channels", 16) != 16 or getattr(vae, "latent_dim", 3) != 3:
        raise InputError(NODE, "vae", f"has {getattr(vae, 'latent_channels', '?')} latent channels "
                         f"({getattr(vae, 'latent_dim', '?')}-D latents), not the Wan 2.1 video VAE's 16",
                         "load wan_2.1_vae.safetensors")
    if segment_length < 5 or (segment_length - 1) % 4:
        raise InputError(NODE, "segment_length", f"{segment_length} is not 4n+1 (>= 5)", "use e.g. 77, 81, 49")
    if guidance_frames not in (1, 5):
        raise InputError(NODE, "guidance_frames", f"{guidance_frames} is not 1 or 5", "the model was trained with 1 or 5")
    if guidance_frames >= segment_length:
        raise InputError(NODE, "guidance_frames", f"{guidance_frames} leaves no new frames in a "
                         f"{segment_length}-frame segment", "use a longer segment_length")
    if steps < 1:
        raise InputError(NODE, "steps", f"{steps} < 1")
    if not 0.0 <= colour_strength <= 1.0:
        raise InputError(NODE, "colour_strength", f"{colour_strength} is outside 0..1")
    if reference is None or reference.ndim != 4 or reference.shape[0] < 1:
        raise InputError(NODE, "reference", "needs an IMAGE with at least one image")
    if audio is not None:
        from ..preprocess.video_file import audio_array

        try:
            audio_array(audio)
        except ValueError as e:
            raise InputError(NODE, "audio", str(e), "connect the AUDIO of Load Audio or Get Video Components") from None

    src = _source(pose_video, "pose_video")
    n = src.num_frames
    if n < 1:
        raise InputError(NODE, "pose_video", "has no frames")
    pw, ph = src.size
    w, h = (int(width) or pw), (int(height) or ph)
    for name, v, given in (("width", w, width), ("height", h, height)):
        if v % 16 or v < 16:
            fix = "set a multiple of 16" if given else f"set {name} to a multiple of 16 (the pose video is {pw}x{ph})"
            raise InputError(NODE, name, f"{v} is not a multiple of 16", fix)

    face = env = mask = None
    if face_video is not None:
        face = _source(face_video, "face_video")
        if face.num_frames < n:
            raise InputError(NODE, "face_video", f"has {face.num_frames} frames, the pose video {n}",
                             "give one face crop per pose frame")
    if (environment_video is None) != (character_mask is None):
        missing = "character_mask" if character_mask is None else "environment_video"
        raise InputError(NODE, missing, "is missing: Replacement mode needs both environment_video and "
                         "character_mask", f"connect {missing}, or disconnect the other for Animation mode")
    warnings: list[str] = []
    if environment_video is not None:
        env = _source(environment_video, "environment_video")
        if env.num_frames < n:
            raise InputError(NODE, "environment_video", f"has {env.num_frames} frames, the pose video {n}",
                             "give one environment frame per pose frame")
        mask, any_on, min_cover = _mask_facts(character_mask, n)
        if not any_on:
            raise InputError(NODE, "character_mask", "is empty in every frame: nothing would be replaced",
                             "check the mask (1 = the character to replace)")
        if min_cover >= FULL_MASK:
            warnings.append("character_mask covers the whole frame in every frame: the environment video is "
                            "ignored (is the mask inverted? 1 = the character).")
        if pose is not None and getattr(pose, "retargeted", False):
            raise InputError(NODE, "pose", "is retargeted, but Replacement mode must follow the source video's "
                             "own skeleton (the official replacement never retargets)",
                             "draw the pose video from the un-retargeted POSE")
    for w_ in warnings:
        log.warning("Wan-Animate Kit: %s", w_)
    return {"pose": src, "face": face, "environment": env, "mask": mask, "frames": n, "width": w, "height": h,
            "warnings": warnings}


def _mask_facts(character_mask, n: int):
    """(the mask as a frame source, whether any used frame has an on pixel, the smallest share of on
    pixels (>= 0.5) among the used frames); an InputError for a mask of the wrong shape or length."""
    from ..preprocess.frames import as_source, is_source

    if not is_source(character_mask):
        m = character_mask
        if not isinstance(m, torch.Tensor) or m.ndim != 3:
            raise InputError(NODE, "character_mask", f"must be a MASK [frames, H, W], got "
                             f"{tuple(getattr(m, 'shape', ())) or type(m).__name__}")
        if m.shape[0] != 1 and m.shape[0] < n:
            raise InputError(NODE, "character_mask", f"has {m.shape[0]} frames, the pose video {n}",
                             "give one mask per pose frame, or a single mask for all")
        used = m[:n] if m.shape[0] > 1 else m
        any_on = float(used.max()) > 0.0
        cover = float((used >= 0.5).float().mean(dim=(1, 2)).min())
        return as_source(m, "character_mask", repeat_single=True), any_on, cover
    src = character_mask
    if not src.is_mask:
        raise InputError(NODE, "character_mask", "is a video, not masks", "connect the masks of Environment Video")
    if src.num_frames != 1 and src.num_frames < n:
        raise InputError(NODE, "character_mask", f"has {src.num_frames} frames, the pose video {n}",
                         "give one mask per pose frame, or a single mask for all")
    any_on, cover, pos = False, 1.0, 0
    used = n if src.num_frames > 1 else 1
    for part in src.iter_chunks(64):
        part = part[:max(0, used - pos)]
        pos += len(part)
        if len(part):
            on = part >= 128
            any_on = any_on or bool(part.any())
            cover = min(cover, float(on.reshape(len(on), -1).mean(axis=1).min()))
        if pos >= used:
            break
    return as_source(src, "character_mask", repeat_single=True, length=n), any_on, cover


def window_inputs(mode, window_length, window_overlap, schedule, continue_from) -> tuple[int, int] | None:
    """(window_length, window_overlap) when the context-window mode is chosen, checked; None for
    the official segments (also when ``mode`` is absent: graphs saved before it existed)."""
    mode = WINDOW_MODES[0] if mode is None else mode
    if mode not in WINDOW_MODES:
        raise InputError(NODE, "mode", f"unknown choice {mode!r}", f"pick one of {list(WINDOW_MODES)}")
    if mode != MODE_WINDOWS:
        return None
    length = DEFAULT_WINDOW if window_length is None else window_length
    overlap = DEFAULT_OVERLAP if window_overlap is None else window_overlap
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise InputError(NODE, "window_length", f"{length!r} is not a whole number of at least 1",
                         f"use {DEFAULT_WINDOW} (81 frames)")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < length:
        raise InputError(NODE, "window_overlap", f"{overlap!r} is not from 0 to window_length - 1 ({length - 1})",
                         f"use {DEFAULT_OVERLAP} with window_length {DEFAULT_WINDOW}, or less than window_length")
    if schedule:
        raise InputError(NODE, "prompt_schedule", "is connected, but the context windows sample the whole video "
                         "at once with one prompt", "disconnect it, or use mode 'segments (official)'")
    if continue_from is not None:
        raise InputError(NODE, "continue_from", "is connected, but the context windows cannot continue an earlier "
                         "part", "disconnect it, or use mode 'segments (official)'")
    return int(length), int(overlap)


def windows_memory_check(job: dict, replacement: bool, memory: tuple[int, int] | None = None) -> list[str]:
    """Refuse, before any encoding, a context-window job whose whole-video latent and pixel videos
    cannot fit in RAM (``models.context_windows.memory_check``); its warnings otherwise."""
    from ..models.context_windows import memory_check

    refusal, warnings = memory_check(job["frames"], job["width"], job["height"], replacement, memory)
    if refusal:
        raise InputError(NODE, "mode", refusal, "use mode 'segments (official)' (memory bounded by a segment), "
                         "or lower width and height")
    return warnings


NODES = [AnimateSampler]
