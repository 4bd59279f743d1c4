"""Pose and face strength: the pack's own controls over how much the two driving signals steer the
Wan-Animate DiT (official behaviour = 1.0, where nothing is patched).

Where the signals enter the host's model (``comfy/ldm/wan/model_animate.py``, ``AnimateWanModel``;
the same structure as the official ``wan/modules/animate/model_animate.py``):

* pose: ``after_patch_embedding`` runs the pose latents through ``pose_patch_embedding`` (a
  Conv3d with bias) and adds the result to the patch-embedded video tokens (latent frames 1..).
  ``pose_strength`` multiplies that Conv3d's output, bias included, so the tokens become
  ``x + s * pose_embedding(pose)``; at 0 the pose video has no influence at all.
* face: every fifth DiT block is followed by ``x = x + fuser_blocks[i // 5](x, motion_vec)``, the
  face adapter's cross-attention from the video tokens to the face motion vectors.
  ``face_strength`` multiplies each fuser block's output, ``x + s * adapter(x, motion)``; at 0 the
  face crops have no influence.

Black blocks at low face strength in other tools. What the reports show (the wrapper pack's issue
"Some black Blocks show in Result Video", and core's feature request for face_strength): the black
pixels appear around the character in Replacement mode once the wrapper's face_strength goes below
about 0.8 (its body/pose strength does not trigger them), and core users see the same flicker around
the character without any strength setting; the wrapper's maintainer called it a quirk of the model
(with too little face guidance the mask "stops working"). In Replacement mode the character's region
of the environment video is black and marked "generate" in the mask; where the model does not paint
over it, the black shows through. So the blocks are the model leaving the masked black hole
unpainted, not a numerical failure of the strength itself. Two ways a strength can make that worse,
and why neither applies here:

* scaling the face *inputs* (the face pixels or the motion vectors) instead of the adapter's
  contribution: the motion vectors pass a LayerNorm (``pre_norm_motion``) before the adapter's keys
  and values, so a scaled vector is normalised back (and a zero one becomes the bias-only signal),
  and dimmed face pixels are read as another face. The adapter then injects features the model never
  saw in training instead of less of the trained ones. Here the *output* is scaled: a residual
  added to tokens that stay on the model's path; s = 1 is bit-identical to the unpatched model, s = 0
  is exactly the model without the face adapter, values between interpolate the residual.
* overflow in half precision: the scale is one multiplication of the adapter's output in the model's
  own dtype, with no division or normalisation after it, and the sampler refuses a segment that
  samples to NaN/inf (nothing is cached for it).

The tests run face strength 0.5 and 0 in Animation and Replacement mode on the tiny model and check
that the sampled latents are finite and that no frame is black. Whether the real 14B model leaves
parts of a black environment hole unpainted at low face strength is its own behaviour and can still
happen; the official value 1.0 is the default.

The patches are object patches on a clone of the MODEL (the user's MODEL and the weights are not
touched); the face motion computed once per segment (``face_motion.py``) is the motion encoder's
and face encoder's output *before* the adapter, so face strength applies after it as it does on the
host's path.
"""
from __future__ import annotations

import math

POSE_TARGET = "diffusion_model.pose_patch_embedding.forward"
FUSER_BLOCKS = "diffusion_model.face_adapter.fuser_blocks"


class ScaledOutput:
    """Callable stand-in for a module's ``forward`` that multiplies its output by ``strength``."""

    def __init__(self, forward, strength: float):
        self.forward = forward
        self.strength = float(strength)

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs) * self.strength


def check_strength(name: str, value) -> float:
    """``value`` as a float in 0..10 (finite); ValueError naming ``name`` otherwise."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and 0.0 <= value <= 10.0
    if not ok:
        raise ValueError(f"{name} must be a finite number from 0 to 10, got {value!r}")
    return float(value)


def face_targets(model) -> list[str]:
    """Object-patch names of the ``forward`` of every face-adapter fuser block of a host MODEL."""
    try:
        blocks = model.get_model_object(FUSER_BLOCKS)
    except AttributeError:
        return []
    return [f"{FUSER_BLOCKS}.{i}.forward" for i in range(len(blocks))]


def with_strengths(model, pose_strength: float = 1.0, face_strength: float = 1.0, force: bool = False):
    """A clone of ``model`` whose pose embedding and face-adapter outputs are scaled; the model
    itself when both strengths are 1 (official: nothing patched) unless ``force``."""
    pose_strength = check_strength("pose_strength", pose_strength)
    face_strength = check_strength("face_strength", face_strength)
    if pose_strength == 1.0 and face_strength == 1.0 and not force:
        return model
    patched = model.clone()
    if pose_strength != 1.0 or force:
        try:
            forward = model.get_model_object(POSE_TARGET)
        except AttributeError:
            raise ValueError("pose_strength needs a Wan-Animate model (no pose_patch_embedding found)") from None
        patched.add_object_patch(POSE_TARGET, ScaledOutput(forward, pose_strength))
    if face_strength != 1.0 or force:
        targets = face_targets(model)
        if not targets:
            raise ValueError("face_strength needs a Wan-Animate model (no face adapter found)")
        for name in targets:
            patched.add_object_patch(name, ScaledOutput(model.get_model_object(name), face_strength))
    return patched
