"""Replacement-mode mask nodes that need no network: shaping, environment video, overlay preview."""
from __future__ import annotations

import numpy as np
import torch
from comfy_api.latest import io, ui

from .common import (CATEGORY, DEFAULT_FPS, PREFIX, InputError, Pose, Progress, check_number, frames_blocked,
                     frames_of, frames_output_input, one_source, to_image, to_uint8)

HEAD = slice(0, 5)  # COCO nose, eyes, ears


def head_points_for(pose, num_frames: int, width: int, height: int) -> np.ndarray:
    """[T, 5, 3] head points of the pose subject in mask pixels (scaled from the pose canvas)."""
    kps = pose.subject_keypoints[:, HEAD].copy()
    if len(kps) != num_frames:
        raise InputError("Mask Shaping", "pose", f"has {len(kps)} frames, the mask has {num_frames}",
                         "use the pose extracted from the same video")
    kps[..., 0] *= width / pose.width
    kps[..., 1] *= height / pose.height
    return kps


class MaskShape(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "MaskShape",
            display_name="Character Mask Shaping",
            category=CATEGORY + "/mask",
            description="Grow the character mask the way Wan-Animate was trained (dilation, then the shape-agnostic "
                        "block mask of Animate Anyone 2), optionally grow it around the head for hair, and fill frames "
                        "whose mask is empty from their neighbours. The model gets the hard mask; soft_mask is for "
                        "a final feathered composite only.",
            inputs=[
                io.Mask.Input("mask", tooltip="Per-frame character mask (1 = character), e.g. from SAM2 Character "
                                              "Segmentation."),
                io.Int.Input("kernel", default=7, min=1, max=101, step=2,
                             tooltip="Dilation kernel size in pixels (official 7)."),
                io.Int.Input("iterations", default=3, min=0, max=50,
                             tooltip="Dilation iterations (official 3); 0 skips the dilation only (the official "
                                     "code then skips the block mask too: turn block off for that)."),
                io.Boolean.Input("block", default=True,
                                 tooltip="Turn the mask into blocks over its bounding box (official). Off keeps the "
                                         "dilated silhouette."),
                io.Int.Input("block_rows", default=1, min=1, max=64,
                             tooltip="Rows of the block grid over the mask's box (official h_len 1: one cell, the "
                                     "bounding rectangle); Animate Anyone 2 uses about h/10."),
                io.Int.Input("block_cols", default=1, min=1, max=64,
                             tooltip="Columns of the block grid over the mask's box (official w_len 1)."),
                io.Combo.Input("block_grid", options=["official", "even"], default="official", optional=True,
                               tooltip="How the box is cut into cells. official: as the official get_aug_mask - "
                                       "cells of int((last - first) / n) pixels from the first on pixel (the last "
                                       "cell partial), ending before the box's last on row and column, which are "
                                       "never filled (with 1x1: the rectangle less its last row and column). even: "
                                       "the pack's variant, differs from the official mask - the whole box including "
                                       "its last row and column, cut into n nearly equal cells (edges "
                                       "floor(i * size / n))."),
                io.Float.Input("head_growth", default=0.0, min=0.0, max=4.0, step=0.1,
                               tooltip="Extra growth around the head to cover hair, as a multiple of the head size; "
                                       "0 = off. Needs the pose input."),
                io.Float.Input("feather", default=8.0, min=0.0, max=128.0, step=1.0,
                               tooltip="Edge softness in pixels of the soft_mask output (for compositing the result "
                                       "back over the source; the sampler uses the hard mask). 0: soft_mask is the "
                                       "hard mask, which saves a full-length copy when soft_mask is not used."),
                io.Boolean.Input("fill_empty", default=True,
                                 tooltip="Frames where the mask is empty take the nearest non-empty frame's mask "
                                         "instead of leaving the character unmasked (the official preprocessing "
                                         "stops with an error on an empty mask)."),
                Pose.Input("pose", optional=True,
                           tooltip="Poses of the same video (the same tracked person), for the head growth."),
            ],
            outputs=[
                io.Mask.Output(display_name="mask", tooltip="Hard shaped mask for the sampler."),
                io.Mask.Output(display_name="soft_mask", tooltip="Feathered mask for a final composite."),
                io.String.Output(display_name="report"),
            ],
        )

    @classmethod
    def execute(cls, mask, kernel, iterations, block, block_rows, block_cols, head_growth, feather, fill_empty,
                pose=None, block_grid="official"):
        from ..preprocess.masks import coverage_warnings, feather as feather_mask, fill_empty_masks, shape_mask_sequence

        if mask.ndim == 2:
            mask = mask[None]
        if mask.ndim != 3 or mask.shape[0] == 0:
            raise InputError("Mask Shaping", "mask", f"expected [frames, H, W], got {tuple(mask.shape)}")
        if block_grid not in ("official", "even"):
            raise InputError("Mask Shaping", "block_grid", f"is {block_grid!r}", "pick 'official' or 'even'")
        if isinstance(kernel, bool) or not isinstance(kernel, int) or kernel < 1 or kernel % 2 == 0:
            raise InputError("Mask Shaping", "kernel", f"must be an odd whole number of pixels of at least 1, got "
                             f"{kernel!r}", "use an odd size such as 7 (official)")
        head_growth = check_number("Mask Shaping", "head_growth", head_growth, 0.0, 4.0, "use 0 (off) up to 4")
        feather = check_number("Mask Shaping", "feather", feather, 0.0, 128.0, "use 0 (hard edge) up to 128 pixels")
        if head_growth > 0 and pose is None:
            raise InputError("Mask Shaping", "pose", "head_growth is on but no pose is connected",
                             "connect the pose of the same video, or set head_growth to 0")
        m = (mask.cpu().numpy() >= 0.5)
        t, h, w = m.shape
        notes = []
        if fill_empty:
            m, empty = fill_empty_masks(m)
            if empty:
                notes.append(f"{len(empty)} empty frame(s) filled from neighbours: {empty[:10]}"
                             + (" ..." if len(empty) > 10 else ""))
        heads = head_points_for(pose, t, w, h) if head_growth > 0 else None
        progress = Progress(2)
        shaped = shape_mask_sequence(m, kernel=kernel, iterations=iterations, kh=block_rows, kw=block_cols,
                                     block=block, head_points=heads, head_radius_scale=max(head_growth, 1e-3),
                                     grid=block_grid)
        progress.update()
        hard = torch.from_numpy(shaped.astype(np.float32))
        # feather 0: soft_mask is the hard mask itself (no second full-length copy held by the host)
        soft = torch.from_numpy(np.asarray(feather_mask(shaped, feather), np.float32)) if feather > 0 else hard
        progress.update()
        notes += coverage_warnings(shaped)
        report = "\n".join(notes) or "ok"
        return io.NodeOutput(hard, soft, report, ui=ui.PreviewText(report))


class EnvironmentVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "EnvironmentVideo",
            display_name="Environment Video (Replacement)",
            category=CATEGORY + "/mask",
            description="The driving video with the character region set to black (official frame x (1 - mask)), the "
                        "matching MASK for the sampler, and a tinted overlay to check the mask before sampling. "
                        "With width/height the frames are letterboxed to the output size first (official "
                        "padding_resize) and the mask with them.",
            inputs=[
                io.Image.Input("images", optional=True, tooltip="Frames of the driving video. Connect this or video."),
                io.Video.Input("video", optional=True, tooltip="The driving video, read a chunk at a time. Connect "
                               "this or images."),
                io.Mask.Input("mask", tooltip="Shaped character mask (from Character Mask Shaping), one per frame "
                                              "or one for all; at the frames' size, or resized to it (nearest)."),
                io.Int.Input("width", default=0, min=0, max=8192, step=16, optional=True,
                             tooltip="Output width (from Wan-Animate Output Size); 0 = the frames' own."),
                io.Int.Input("height", default=0, min=0, max=8192, step=16, optional=True,
                             tooltip="Output height (from Wan-Animate Output Size); 0 = the frames' own."),
                frames_output_input("environment frames and overlay"),
            ],
            outputs=[
                io.Image.Output(display_name="environment", tooltip="Frames with the character region black "
                                "(needs frames_output on)."),
                io.Mask.Output(display_name="mask", tooltip="The mask at the output size."),
                io.Image.Output(display_name="overlay", tooltip="Mask tinted red over the frames (needs "
                                "frames_output on)."),
                io.Video.Output(display_name="environment_video", tooltip="The environment frames as a VIDEO made "
                                "on demand (no memory held). Connect it to the sampler's environment_video."),
                io.Video.Output(display_name="overlay_video", tooltip="The overlay as a VIDEO made on demand, to "
                                "save or preview."),
            ],
        )

    @classmethod
    def execute(cls, mask, images=None, video=None, width=0, height=0, frames_output=True):
        from ..preprocess.masks import environment_frames, letterbox_masks, overlay, resize_masks
        from ..preprocess.resolution import padding_resize
        from .lazy_video import ChunkVideo

        node = "Environment Video"
        src = one_source(node, images, video)
        if mask.ndim == 2:
            mask = mask[None]
        t, (sw, sh) = src.num_frames, src.size
        w, h = int(width) or sw, int(height) or sh
        if w % 2 or h % 2:
            raise InputError(node, "width" if w % 2 else "height", f"{w}x{h} is not even", "use multiples of 16")
        if mask.ndim != 3 or mask.shape[0] not in (1, t):
            raise InputError(node, "mask", f"has {mask.shape[0] if mask.ndim == 3 else '?'} frames, the video {t}",
                             "use the mask of the same video (or one mask for all frames)")
        m = mask.cpu().numpy().astype(np.float32)
        if m.shape[1:] != (sh, sw):
            m = resize_masks(m, sh, sw)
        m = letterbox_masks(m, w, h)
        if m.shape[0] == 1 and t > 1:
            m = np.broadcast_to(m, (t, h, w))
        m_t = torch.from_numpy(np.ascontiguousarray(m))
        fps = src.fps or DEFAULT_FPS

        def frames_with_masks():
            pos = 0
            for chunk in src.iter_chunks(16):
                if (w, h) != (sw, sh):
                    chunk = np.stack([padding_resize(f, w, h) for f in chunk])
                yield chunk, m[pos:pos + len(chunk)]
                pos += len(chunk)

        def env_chunks():
            for chunk, mm in frames_with_masks():
                yield np.rint(chunk * (1.0 - mm[..., None])).astype(np.uint8)

        def overlay_chunks():
            for chunk, mm in frames_with_masks():
                yield overlay(chunk, mm)

        env_video = ChunkVideo(env_chunks, t, w, h, fps)
        over_video = ChunkVideo(overlay_chunks, t, w, h, fps)
        if not frames_output:
            env = over = frames_blocked(node)
        elif images is not None and (w, h) == (sw, sh):  # exact float arithmetic on the given frames
            env = environment_frames(images[..., :3], m_t)
            over = to_image(overlay(to_uint8(images), m))
        else:
            env, over = frames_of(env_video, node), frames_of(over_video, node)
        return io.NodeOutput(env, m_t, over, env_video, over_video)


NODES = [MaskShape, EnvironmentVideo]
