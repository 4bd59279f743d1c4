"""Per-segment Wan-Animate conditioning, built on the host's own VAE and conditioning helpers.

One segment of ``T`` pixel frames (4n+1) becomes ``1 + T_lat`` latent frames: the reference slot
and ``T_lat = (T - 1) // 4 + 1`` video frames (official: wan/animate.py, ``WanAnimate.generate``). The host's
``WAN22_Animate`` model reads, per conditioning entry:

* ``concat_latent_image`` [1, 16, 1 + T_lat, h, w]: the reference latent, then the VAE encoding
  of the segment's conditioning frames (grey, or the environment video in Replacement mode, with
  the previous segment's last ``guidance`` frames written over the first ones);
* ``concat_mask`` [1, 4, 1 + T_lat, h, w]: the host feeds ``1 - concat_mask`` to the model
  (``WAN21.concat_cond``), so we pass ``1 - M`` where ``M`` is the official mask (1 = known);
* ``pose_video_latent``: the VAE encoding of the segment's pose frames (both prompts);
* ``face_video_pixels`` [1, 3, T, 512, 512] in [-1, 1] (positive) and all -1 (negative: the
  "black face" of face CFG, used only when cfg > 1);
* ``clip_vision_output`` on both prompts.

This matches core's ``WanAnimateToVideo`` tensor for tensor in Animation mode, first and continued
segments. Where core and the official formulation differ, this follows the official one:

1. The 4-channel mask packing (Replacement mode). Officially latent frame 0 holds pixel frame 0
   in all four channels and latent frame k >= 1 holds pixel frames 4k-3..4k, the same grouping as
   the VAE's causal temporal compression (``get_i2v_mask``, §1.6). Core folds pixel frames
   4k..4k+3 into latent frame k, so its character mask is shifted by three pixel frames against
   the encoded environment (latent frame 0 gets frames 0-3). And for a continued segment core
   writes the character mask over pixel frames ``ref_images_num..`` after zeroing
   ``4 * ceil(g / 4)`` frames, which leaves part of the guidance latent frames marked "generate"
   (g = 1: channels 1-3 of latent frame 0; g = 5: channels 1-3 of latent frame 1). Officially
   the guidance latent frames are fully known. In Animation mode the two packings give the same
   tensor, since the mask is constant after the guidance frames.
2. The reference image is fitted to the video size like the official ``padding_resize`` in
   ``wan/animate.py`` (aspect kept, centred, black bars, INTER_LINEAR on the 8-bit image)
   instead of core's centre crop. A reference already at the video size passes through untouched
   in both, so the results are identical then.
3. The character mask reaches latent size with ``nearest`` (pixel (8i, 8j), official
   ``F.interpolate(1 - mask, size=(H // 8, W // 8), mode='nearest')`` in
   ``WanAnimate.generate``), not the host's ``nearest-exact`` (pixel (8i + 4, 8j + 4)).

The VAE runs in float32 on bf16-rounded inputs by default, as the official code does
(:func:`vae_precision`).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..preprocess.resolution import padding_resize
from ..preprocess.segments import latent_frames, pack_mask_4ch

FACE_SIZE = 512
LATENT_CHANNELS = 16
SPATIAL = 8  # Wan 2.1 VAE spatial compression


def resize_frames(frames: torch.Tensor, width: int, height: int, method: str = "area") -> torch.Tensor:
    """[T, H, W, C] -> [T, height, width, C] the way core's node resizes videos (centre crop)."""
    import comfy.utils

    if frames.shape[1] == height and frames.shape[2] == width:
        return frames
    return comfy.utils.common_upscale(frames.movedim(-1, 1), width, height, method, "center").movedim(1, -1)


def fit_reference(reference: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """The reference image [1, height, width, 3] float: the first image of ``reference`` fitted
    like the official ``padding_resize`` at generation (official: wan/animate.py,
    ``WanAnimate.padding_resize``, INTER_LINEAR on the 8-bit image, black bars, uint8 result);
    untouched when already that size (the official same-size INTER_LINEAR resize is the identity).

    The IMAGE is taken back to 8 bits (round(x * 255)), which is exact for images loaded from 8-bit
    files, so the fitted pixels equal the official ones."""
    if reference.ndim != 4 or reference.shape[-1] < 3:
        raise ValueError(f"reference must be an IMAGE [B, H, W, 3], got {tuple(reference.shape)}")
    ref = reference[:1, :, :, :3].float()
    if ref.shape[1] == height and ref.shape[2] == width:
        return ref
    arr = (ref[0].cpu().clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()
    fitted = padding_resize(np.ascontiguousarray(arr), width, height, 0, interpolation="linear")
    return torch.from_numpy(fitted).float().div_(255.0).unsqueeze(0)


VAE_OFFICIAL = "float32 (official)"
VAE_HOST = "host"
VAE_PRECISIONS = (VAE_OFFICIAL, VAE_HOST)


@contextmanager
def vae_precision(vae, mode: str = VAE_OFFICIAL):
    """Run the host VAE's encodes and decodes inside this block like the official code.

    ``VAE_OFFICIAL``: official ``Wan2_1_VAE`` runs in float32 (its default dtype) on pixel inputs
    that ``WanAnimate.generate`` has cast to bf16; so the VAE's weights and working dtype become
    float32 (``first_stage_model.to(float32)``, ``vae.vae_dtype``; the host sizes its memory
    estimate with that dtype) and its [-1, 1] input is rounded through bf16. Everything is
    restored on exit, also on error. ``VAE_HOST`` leaves the host's dtype (bf16 on most GPUs).
    """
    if mode not in VAE_PRECISIONS:
        raise ValueError(f"vae_precision must be one of {VAE_PRECISIONS}, got {mode!r}")
    if mode == VAE_HOST:
        yield vae
        return
    model = vae.first_stage_model
    old_dtype = vae.vae_dtype
    param = next(iter(model.parameters()), None)
    old_param_dtype = param.dtype if param is not None else None
    had_own_proc = "process_input" in vae.__dict__
    old_proc = vae.process_input

    def bf16_input(image):
        return old_proc(image).to(torch.bfloat16).to(torch.float32)

    try:
        if old_param_dtype is not None and old_param_dtype != torch.float32:
            model.to(torch.float32)
        vae.vae_dtype = torch.float32
        vae.process_input = bf16_input
        yield vae
    finally:
        vae.vae_dtype = old_dtype
        if had_own_proc:
            vae.process_input = old_proc
        else:
            vae.__dict__.pop("process_input", None)
        if old_param_dtype is not None and old_param_dtype != torch.float32:
            model.to(old_param_dtype)


def encode_reference(vae, reference: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """VAE latent of the fitted reference, [1, 16, 1, h, w]. Computed once per job."""
    return vae.encode(fit_reference(reference, width, height))


def face_pixels(face: torch.Tensor) -> torch.Tensor:
    """Face crops [T, H, W, 3] 0..1 -> [1, 3, T, 512, 512] in [-1, 1] (core's resize: area, centre)."""
    import comfy.utils

    f = comfy.utils.common_upscale(face[:, :, :, :3].movedim(-1, 1), FACE_SIZE, FACE_SIZE, "area", "center")
    return (f * 2.0 - 1.0).movedim(0, 1).unsqueeze(0)


def face_pixels_of(source, indices, chunk: int = 8) -> torch.Tensor:
    """``face_pixels`` of the face crops ``indices`` of a frame source, made a few frames at a time
    (every step works frame by frame, so the values are those of the whole segment at once) into one
    tensor laid out as ``face_pixels`` lays out its result: a 77-frame segment holds one float copy
    (242 MB) instead of four."""
    from ..preprocess.frames import gather_float

    # [T, 512, 512, 3] in memory: the channels-last layout the area resize gives face_pixels' result
    out = gather_float(source, indices, lambda f: face_pixels(f.float())[0].permute(1, 2, 3, 0).contiguous(), chunk)
    return out.permute(3, 0, 1, 2).unsqueeze(0)


def latent_mask(character_mask: torch.Tensor, lat_w: int, lat_h: int) -> torch.Tensor:
    """Character mask [T, H, W] -> [T, lat_h, lat_w] at latent resolution, soft values kept (the
    official mask is not binarised).

    Official (wan/animate.py, ``WanAnimate.generate``): the mask at the video size (H, W) is
    resized with ``F.interpolate(..., size=(H // 8, W // 8), mode='nearest')``, i.e. latent pixel
    (i, j) takes mask pixel (8i, 8j). A mask of another size is first brought to the video size
    like the other inputs (host resize, nearest-exact, centre crop)."""
    import torch.nn.functional as F

    m = character_mask.float().unsqueeze(1)
    full_h, full_w = lat_h * SPATIAL, lat_w * SPATIAL
    if m.shape[-2:] != (full_h, full_w) and m.shape[-2:] != (lat_h, lat_w):
        import comfy.utils

        m = comfy.utils.common_upscale(m, full_w, full_h, "nearest-exact", "center")
    if m.shape[-2:] != (lat_h, lat_w):
        m = F.interpolate(m, size=(lat_h, lat_w), mode="nearest")
    return m[:, 0]


def official_mask(num_frames: int, lat_h: int, lat_w: int, known_frames: int = 0,
                  character: torch.Tensor | None = None) -> torch.Tensor:
    """The official conditioning mask M [1, 4, 1 + T_lat, h, w] (1 = known, 0 = generate).

    Reference slot all ones; the video part is the per-pixel-frame map ``1 - character`` (or all
    zeros in Animation mode) with the first ``known_frames`` pixel frames forced to 1, packed four
    pixel frames per latent frame (``pack_mask_4ch``).
    """
    if character is None:
        per_frame = torch.zeros((num_frames, lat_h, lat_w), dtype=torch.float32)
    else:
        if tuple(character.shape) != (num_frames, lat_h, lat_w):
            raise ValueError(f"character mask must be [{num_frames}, {lat_h}, {lat_w}] at latent size, "
                             f"got {tuple(character.shape)}")
        per_frame = 1.0 - character.float()
    per_frame[:known_frames] = 1.0
    video = pack_mask_4ch(per_frame)
    ref = torch.ones((4, 1, lat_h, lat_w), dtype=video.dtype)
    return torch.cat([ref, video], dim=1).unsqueeze(0)


@dataclass
class SegmentConditioning:
    positive: list
    negative: list
    latent: torch.Tensor  # zeros [1, 16, 1 + T_lat, h, w]
    known: torch.Tensor  # the official mask M the model receives


def build_segment(positive: list, negative: list, vae, ref_latent: torch.Tensor, pose: torch.Tensor,
                  width: int, height: int, *, face: torch.Tensor | None = None,
                  environment: torch.Tensor | None = None, character_mask: torch.Tensor | None = None,
                  guidance: torch.Tensor | None = None, clip_vision_output: Any = None) -> SegmentConditioning:
    """Conditioning of one segment (official §1.5-§1.10).

    pose: [T, H, W, 3] 0..1, T = 4n+1 (resized to width x height like core when needed).
    face: [T, h, w, 3] 0..1 face crops or None. environment + character_mask ([T, H, W] 0..1,
    1 = character): Replacement mode. guidance: the previous segment's last frames [g, H, W, 3]
    0..1, None for the first segment. ref_latent: from :func:`encode_reference`.
    """
    import node_helpers

    length = int(pose.shape[0])
    if (length - 1) % 4:
        raise ValueError(f"a segment needs 4n+1 pose frames, got {length}")
    if (environment is None) != (character_mask is None):
        raise ValueError("Replacement mode needs both the environment video and the character mask")
    lat_t = latent_frames(length)
    lat_h, lat_w = height // SPATIAL, width // SPATIAL

    # conditioning frames: grey (0 in [-1, 1]) or the environment; guidance frames first
    image = torch.ones((length, height, width, 3)) * 0.5
    if environment is not None:
        env = resize_frames(environment[:, :, :, :3].float(), width, height)
        if env.shape[0] != length:
            raise ValueError(f"environment has {env.shape[0]} frames for a {length}-frame segment")
        image[:] = env
    known = 0
    if guidance is not None and guidance.shape[0] > 0:
        known = int(guidance.shape[0])
        image[:known] = resize_frames(guidance[:, :, :, :3].float(), width, height)

    character = None
    if character_mask is not None:
        if character_mask.shape[0] != length:
            raise ValueError(f"character mask has {character_mask.shape[0]} frames for a {length}-frame segment")
        character = latent_mask(character_mask, lat_w, lat_h)
    known_mask = official_mask(length, lat_h, lat_w, known, character)

    pose_latent = vae.encode(resize_frames(pose[:, :, :, :3].float(), width, height))
    concat = torch.cat((ref_latent.to(pose_latent.device), vae.encode(image)), dim=2)
    if concat.shape[2] != lat_t + 1:
        raise ValueError(f"VAE gave {concat.shape[2]} latent frames, expected {lat_t + 1}: is it the Wan 2.1 VAE?")
    concat_mask = (1.0 - known_mask).to(device=concat.device, dtype=concat.dtype)

    shared = {"pose_video_latent": pose_latent, "concat_latent_image": concat, "concat_mask": concat_mask}
    if clip_vision_output is not None:
        shared["clip_vision_output"] = clip_vision_output
    pos_values, neg_values = dict(shared), dict(shared)
    if face is not None:
        # face crops [T, H, W, 3] 0..1, or already the face pixels [1, 3, T, 512, 512] (face_pixels_of)
        fp = face if face.ndim == 5 else face_pixels(face.float())
        if fp.shape[2] != length:
            raise ValueError(f"face video has {fp.shape[2]} frames for a {length}-frame segment")
        pos_values["face_video_pixels"] = fp
        # face CFG: a black face; one value broadcast (no second full-size copy; the host copies it only
        # when it converts the condition to another dtype or device)
        neg_values["face_video_pixels"] = fp.new_full((1, 1, 1, 1, 1), -1.0).expand(fp.shape)
    pos = node_helpers.conditioning_set_values(positive, pos_values)
    neg = node_helpers.conditioning_set_values(negative, neg_values)
    import comfy.model_management

    latent = torch.zeros([1, LATENT_CHANNELS, lat_t + 1, lat_h, lat_w],
                         device=comfy.model_management.intermediate_device())
    return SegmentConditioning(pos, neg, latent, known_mask)
