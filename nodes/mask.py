"""Replacement-mode mask nodes that need no network: shaping, environment video, overlay preview."""
from __future__ import annotations

import numpy as np
import torch
from comfy_api.latest import io, ui

from .common import (CATEGORY, DEFAULT_FPS, PREFIX, InputError, Masks, Pose, Progress, check_number, frames_blocked,
                     frames_output_input, image_batch, is_source, one_source, output_switch, to_float,
                     to_uint8)

HEAD = slice(0, 5)  # COCO nose, eyes, ears


def head_points_for(pose, num_frames: int, width: int, height: int) -> np.ndarray:
    """[T, 5, 3] head points of the pose subject in mask pixels (``resolution.scale_keypoints``)."""
    from ..preprocess.resolution import scale_keypoints

    kps = pose.subject_keypoints[:, HEAD]
    if len(kps) != num_frames:
        raise InputError("Mask Shaping", "pose", f"has {len(kps)} frames, the mask has {num_frames}",
                         "use the pose extracted from the same video")
    return scale_keypoints(kps, pose.width, pose.height, width, height)


def _mask_input(node: str, mask):
    """A MASK batch ([H, W] becomes one frame) or compact masks, checked."""
    if is_source(mask):
        if not mask.is_mask or mask.num_frames == 0:
            raise InputError(node, "mask", "is not a mask sequence with frames", "connect a MASK or compact masks")
        return mask
    if not isinstance(mask, torch.Tensor):
        raise InputError(node, "mask", f"expected a MASK, got {type(mask).__name__}", "connect a MASK")
    if mask.ndim == 2:
        mask = mask[None]
    if mask.ndim != 3 or mask.shape[0] == 0:
        raise InputError(node, "mask", f"expected [frames, H, W], got {tuple(mask.shape)}")
    return mask


def _mask_socket(tooltip: str):
    return io.MultiType.Input(io.Mask.Input("mask", tooltip=tooltip), types=[io.Mask, Masks])


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
                _mask_socket("Per-frame character mask (1 = character): a MASK, or the compact masks of SAM2 "
                             "Character Segmentation (memory flat in video length)."),
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
                output_switch("frames_output", "mask and soft_mask as float MASK batches (4 bytes a pixel: a "
                              "1000-frame 1280x720 MASK takes 3.7 GB)",
                              "only the compact 'masks' output (the same hard masks)", "mask or soft_mask"),
            ],
            outputs=[
                io.Mask.Output(display_name="mask", tooltip="Hard shaped mask for the sampler (needs frames_output "
                               "on)."),
                io.Mask.Output(display_name="soft_mask", tooltip="Feathered mask for a final composite (needs "
                               "frames_output on)."),
                io.String.Output(display_name="report"),
                Masks.Output(display_name="masks", tooltip="The hard shaped masks kept compact (bit-packed), for "
                             "Environment Video."),
            ],
        )

    @classmethod
    def execute(cls, mask, kernel, iterations, block, block_rows, block_cols, head_growth, feather, fill_empty,
                pose=None, block_grid="official", frames_output=True):
        from ..preprocess.mask_video import mask_length, mask_size, shape_masks
        from ..preprocess.masks import coverage_messages, feather as feather_mask

        node = "Mask Shaping"
        mask = _mask_input(node, mask)
        if block_grid not in ("official", "even"):
            raise InputError(node, "block_grid", f"is {block_grid!r}", "pick 'official' or 'even'")
        if isinstance(kernel, bool) or not isinstance(kernel, int) or kernel < 1 or kernel % 2 == 0:
            raise InputError(node, "kernel", f"must be an odd whole number of pixels of at least 1, got "
                             f"{kernel!r}", "use an odd size such as 7 (official)")
        head_growth = check_number(node, "head_growth", head_growth, 0.0, 4.0, "use 0 (off) up to 4")
        feather = check_number(node, "feather", feather, 0.0, 128.0, "use 0 (hard edge) up to 128 pixels")
        if head_growth > 0 and pose is None:
            raise InputError(node, "pose", "head_growth is on but no pose is connected",
                             "connect the pose of the same video, or set head_growth to 0")
        t, (w, h) = mask_length(mask), mask_size(mask)
        heads = head_points_for(pose, t, w, h) if head_growth > 0 else None
        progress = Progress(t)
        shaped, empty, coverage = shape_masks(mask, kernel=kernel, iterations=iterations, kh=block_rows,
                                              kw=block_cols, block=block, grid=block_grid, head_points=heads,
                                              head_radius_scale=max(head_growth, 1e-3), fill_empty=fill_empty,
                                              on_chunk=progress.set)
        notes = []
        if empty:
            notes.append(f"{len(empty)} empty frame(s) filled from neighbours: {empty[:10]}"
                         + (" ..." if len(empty) > 10 else ""))
        notes += coverage_messages(coverage)
        report = "\n".join(notes) or "ok"
        if frames_output:
            hard = image_batch(shaped, node)
            if feather > 0:
                soft = torch.empty_like(hard)
                for s in range(0, t, 16):
                    soft[s:s + 16] = torch.from_numpy(np.asarray(feather_mask(shaped.read(s, s + 16) >= 128,
                                                                              feather), np.float32))
            else:  # soft_mask is the hard mask itself (no second full-length copy held by the host)
                soft = hard
        else:
            hard = soft = frames_blocked(node, "mask and soft_mask outputs are", instead="its masks output")
        return io.NodeOutput(hard, soft, report, shaped, ui=ui.PreviewText(report))


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
                _mask_socket("Shaped character mask (from Character Mask Shaping: its compact masks keep memory "
                             "flat), one per frame or one for all; at the frames' size, or resized to it (nearest)."),
                io.Int.Input("width", default=0, min=0, max=8192, step=16, optional=True,
                             tooltip="Output width (from Wan-Animate Output Size); 0 = the frames' own."),
                io.Int.Input("height", default=0, min=0, max=8192, step=16, optional=True,
                             tooltip="Output height (from Wan-Animate Output Size); 0 = the frames' own."),
                frames_output_input("environment frames and overlay"),
                output_switch("mask_output", "the placed mask as a float MASK batch (4 bytes a pixel)",
                              "only the compact 'masks' output (the same masks)", "mask"),
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
                Masks.Output(display_name="masks", tooltip="The mask at the output size kept compact (bit-packed; "
                             "on = 0.5 and above). Connect it to the sampler's character_mask."),
            ],
        )

    @classmethod
    def execute(cls, mask, images=None, video=None, width=0, height=0, frames_output=True, mask_output=True):
        from ..preprocess.frames import PackedMasks, RecipeFrames, chunk_frames
        from ..preprocess.heap import release_freed_memory
        from ..preprocess.mask_video import mask_length, placed_masks
        from ..preprocess.masks import environment_frames, overlay
        from ..preprocess.resolution import padding_resize
        from .lazy_video import LazyVideo

        node = "Environment Video"
        src = one_source(node, images, video)
        mask = _mask_input(node, mask)
        t, (sw, sh) = src.num_frames, src.size
        w, h = int(width) or sw, int(height) or sh
        if w % 2 or h % 2:
            raise InputError(node, "width" if w % 2 else "height", f"{w}x{h} is not even", "use multiples of 16")
        if mask_length(mask) not in (1, t):
            raise InputError(node, "mask", f"has {mask_length(mask)} frames, the video {t}",
                             "use the mask of the same video (or one mask for all frames)")
        fps = src.fps or DEFAULT_FPS

        def masks_at(start: int, stop: int) -> np.ndarray:
            return placed_masks(mask, start, stop, sw, sh, w, h)

        packed = PackedMasks(w, h, fps, "mask")
        for s in range(0, t, 16):  # 16 float masks at 720p: 59 MB
            packed.append(masks_at(s, min(t, s + 16)))
        release_freed_memory()  # see preprocess.heap

        def frames_with_masks():
            pos = 0
            for chunk in src.iter_chunks(chunk_frames(sw, sh, 16)):
                if (w, h) != (sw, sh):
                    chunk = np.stack([padding_resize(f, w, h) for f in chunk])
                yield chunk, masks_at(pos, pos + len(chunk))
                pos += len(chunk)

        def env_chunks():
            for chunk, mm in frames_with_masks():  # frame by frame: a float chunk at 720p is 177 MB
                out = np.empty_like(chunk)
                for k in range(len(chunk)):
                    out[k] = np.rint(chunk[k] * (1.0 - mm[k][..., None]))
                yield out

        def overlay_chunks():
            for chunk, mm in frames_with_masks():
                yield overlay(chunk, mm)

        env_video = LazyVideo(RecipeFrames(env_chunks, t, w, h, fps, "environment_video"))
        over_video = LazyVideo(RecipeFrames(overlay_chunks, t, w, h, fps, "overlay_video"))
        m_t = None
        if mask_output or (frames_output and images is not None and (w, h) == (sw, sh)):
            m_t = torch.empty((t, h, w), dtype=torch.float32)
            for s in range(0, t, 64):
                m_t[s:s + 64] = torch.from_numpy(np.ascontiguousarray(masks_at(s, min(t, s + 64))))
        if not frames_output:
            env = over = frames_blocked(node)
        elif images is not None and (w, h) == (sw, sh):  # exact float arithmetic on the given frames
            env = environment_frames(images[..., :3], m_t)
            over = to_float(overlay(to_uint8(images), m_t.numpy()))
        else:
            env, over = image_batch(env_video.source, node), image_batch(over_video.source, node)
        out_mask = m_t if mask_output else frames_blocked(node, "mask output is", "mask_output", "its masks output")
        return io.NodeOutput(env, out_mask, over, env_video, over_video, packed)


NODES = [MaskShape, EnvironmentVideo]
