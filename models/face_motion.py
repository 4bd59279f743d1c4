"""The face motion of a sampling run, computed once and handed to the DiT at every model call.

The Wan-Animate DiT turns the face crops into face motion at the start of every forward call
(official: wan/modules/animate/model_animate.py, ``WanAnimateModel.after_patch_embedding``; the same
in the host's comfy/ldm/wan/model_animate.py, ``AnimateWanModel.after_patch_embedding``): the
motion encoder (``get_motion``, a 512x512 image encoder) runs on the crops 8 frames at a time, then
the face encoder (three causal convolutions over time) makes one motion vector per latent frame.
Both depend only on the crops, which are the same at every step of a run.

:class:`FaceMotion` computes that once per run, 8 frames at a time, from the crops read when it is
needed (the whole face video never exists as 512x512 float pixels); :func:`with_face_motion` makes
a clone of the MODEL whose ``after_patch_embedding`` (an object patch) takes it instead of face
pixels in the conditioning. The arithmetic is the host's, on the same values in the same layout:
the crops brought to 512x512 in [-1, 1] (``animate_conditioning.face_pixels``), cast as the host
casts the ``face_pixel_values`` condition (``comfy.model_base.convert_tensor``), seen frame-major
as its ``rearrange`` sees them. The conditional and unconditional (face CFG: all-black faces, the
official ``face_pixel_values * 0 - 1``) motions are computed per pass, as the official pipeline runs
them (two separate forward calls).

What it saves per segment of 77 frames: the host holds the face condition three times while it
samples (the condition, its batch concatenation and the rearranged copy; 242 MB each in float32,
121 MB in bf16) and runs the motion encoder at every step; here the crops wait as uint8 (60 MB) and
8 frames at a time exist as float, once.

Used by the segment sampler (``animate_sampler``, one run per segment) and the context-window mode
(``context_windows``, one run per video, sliced per window). Host imports happen inside functions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

APE_TARGET = "diffusion_model.after_patch_embedding"
MOTION_CHUNK = 8  # frames per motion-encoder call, as the host's after_patch_embedding batches them
WRAPPER_KEY = "wan_animate_kit_face_motion"


class FaceMotion:
    """The face encoder's output for the face frames ``indices``, computed on first use and kept for
    the run.

    ``frames(indices)`` gives face crops [k, H, W, 3] 0..1 (e.g. a frame source's ``get_float``);
    they are brought to 512x512 in [-1, 1] like the segment conditioning and cast as the host casts
    the ``face_pixel_values`` condition, MOTION_CHUNK frames at a time, so the motion encoder sees
    exactly the chunks a forward call with those frames as its condition would feed it. The
    unconditional (face CFG) motion is that of all-black (-1) faces. Result per kind:
    [1, L, heads, dim], L = latent frames of ``len(indices)`` pixel frames.
    """

    def __init__(self, frames: Callable[[Sequence[int]], torch.Tensor] | None, indices: Sequence[int]):
        self.frames = frames
        self.indices = [int(i) for i in indices]
        self.cache: dict[str, torch.Tensor] = {}
        self.encoder_runs = 0

    @property
    def present(self) -> bool:
        return self.frames is not None

    def get(self, kind: str, diffusion_model, dtype, device) -> torch.Tensor:
        key = f"{kind}|{dtype}|{device}"
        if key not in self.cache:
            self.cache[key] = self._compute(kind, diffusion_model, dtype, device)
        return self.cache[key]

    def _compute(self, kind: str, dm, dtype, device) -> torch.Tensor:
        import comfy.model_base

        from .animate_conditioning import FACE_SIZE, face_pixels

        parts = []
        for lo in range(0, len(self.indices), MOTION_CHUNK):
            idx = self.indices[lo:lo + MOTION_CHUNK]
            if kind == "cond":
                px = face_pixels(self.frames(idx).float()).contiguous()  # [1, 3, k, 512, 512]
            else:
                px = torch.full((1, 3, len(idx), FACE_SIZE, FACE_SIZE), -1.0)
            # the host's layout: a contiguous condition tensor cast to the model, seen frame-major
            px = comfy.model_base.convert_tensor(px, dtype, device)
            parts.append(dm.motion_encoder.get_motion(px[0].movedim(1, 0)))
            del px
            self.encoder_runs += 1
        motion = torch.cat(parts).unsqueeze(0)  # [1, T, 512]
        return dm.face_encoder(motion)  # [1, L, heads, dim]

    def clear(self) -> None:
        self.cache.clear()


def motion_rows(motion: FaceMotion | None, dm, cond_or_uncond, batch: int, dtype, device) -> torch.Tensor | None:
    """[batch, L, heads, dim]: the motion of every row of a model call's batch, whose chunks are
    conditional (0) or unconditional (1) as the host's ``transformer_options['cond_or_uncond']``
    lists them (one equal share of the batch each); None without face frames."""
    if motion is None or not motion.present:
        return None
    kinds = list(cond_or_uncond) if cond_or_uncond else [0]
    per = max(1, batch // len(kinds))
    rows = []
    for k in kinds:
        m = motion.get("cond" if k == 0 else "uncond", dm, dtype, device)
        rows.extend([m] * per)
    return torch.cat(rows)


def model_dtype(base) -> torch.dtype:
    """The dtype the host runs the diffusion model in (``BaseModel._apply_model``)."""
    return base.manual_cast_dtype if base.manual_cast_dtype is not None else base.get_dtype()


def motion_after_patch_embedding(original, state):
    """``after_patch_embedding`` that takes ``state.current`` ([B, L', heads, dim], set for the
    current call) as the face motion; the pose part is the original's (or a strength patch's). The
    padding is the host's: a zero slot for the reference latent, zeros (or a cut) to the latent's
    length. With ``state.current`` None the original runs as it is."""
    def after_patch_embedding(x, pose_latents, face_pixel_values):
        motion = state.current
        if motion is None:
            return original(x, pose_latents, face_pixel_values)
        x, _ = original(x, pose_latents, None)
        pad = torch.zeros(motion.shape[0], 1, motion.shape[2], motion.shape[3]).type_as(motion)
        vec = torch.cat([pad, motion], dim=1)
        if vec.shape[1] < x.shape[2]:
            extra = torch.zeros(vec.shape[0], x.shape[2] - vec.shape[1], vec.shape[2], vec.shape[3]).type_as(vec)
            vec = torch.cat([vec, extra], dim=1)
        else:
            vec = vec[:, :x.shape[2]]
        return x, vec

    return after_patch_embedding


@dataclass
class MotionState:
    """The run's face motion (replaced for every segment) and the rows of the call being run."""
    motion: FaceMotion | None = None
    current: torch.Tensor | None = None


def _apply_with_motion(state: MotionState):
    def wrapper(executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kwargs):
        base = executor.class_obj
        state.current = motion_rows(state.motion, base.diffusion_model, transformer_options.get("cond_or_uncond"),
                                    x.shape[0], model_dtype(base), x.device)
        if state.current is not None:
            covered = state.current.shape[1]
            if x.ndim == 5 and covered != x.shape[2] - 1:
                state.current = None
                raise ValueError(f"the face motion covers {covered} latent frames but the model call has "
                                 f"{x.shape[2] - 1}: something between the "
                                 "sampler and the model cuts the latent in time (e.g. core's context windows on the "
                                 "MODEL). Remove it and use the sampler's mode 'context windows (seamless)' instead")
            kwargs.pop("face_pixel_values", None)
        try:
            return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)
        finally:
            state.current = None

    return wrapper


def with_face_motion(model, state: MotionState):
    """A clone of ``model`` that feeds the DiT ``state.motion`` at every model call (an APPLY_MODEL
    wrapper picks the rows for the call's cond / uncond chunks, an object patch of
    ``after_patch_embedding`` takes them). The user's MODEL is not changed; ``model`` as it is when
    it has no ``after_patch_embedding`` (not a Wan-Animate model)."""
    import comfy.patcher_extension

    try:
        original = model.get_model_object(APE_TARGET)
    except AttributeError:
        return model
    patched = model.clone()
    patched.add_object_patch(APE_TARGET, motion_after_patch_embedding(original, state))
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, WRAPPER_KEY, _apply_with_motion(state))
    return patched
