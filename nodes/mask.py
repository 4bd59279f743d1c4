"""Replacement-mode mask nodes that need no network: shaping, environment video, overlay preview."""
from __future__ import annotations

import numpy as np
import torch
from comfy_api.latest import io, ui

from .common import CATEGORY, PREFIX, InputError, Pose, Progress, to_image, to_uint8

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
                             tooltip="Dilation iterations (official 3); 0 skips the dilation."),
                io.Boolean.Input("block", default=True,
                                 tooltip="Turn the mask into blocks over its bounding box (official). Off keeps the "
                                         "dilated silhouette."),
                io.Int.Input("block_rows", default=1, min=1, max=64,
                             tooltip="Rows of the block grid over the mask's box: 1x1 (official) is the whole "
                                     "bounding box; Animate Anyone 2 uses about h/10."),
                io.Int.Input("block_cols", default=1, min=1, max=64,
                             tooltip="Columns of the block grid over the mask's box (official 1)."),
                io.Float.Input("head_growth", default=0.0, min=0.0, max=4.0, step=0.1,
                               tooltip="Extra growth around the head to cover hair, as a multiple of the head size; "
                                       "0 = off. Needs the pose input."),
                io.Float.Input("feather", default=8.0, min=0.0, max=128.0, step=1.0,
                               tooltip="Edge softness in pixels of the soft_mask output (for compositing the result "
                                       "back over the source; the sampler uses the hard mask)."),
                io.Boolean.Input("fill_empty", default=True,
                                 tooltip="Frames where the mask is empty take the nearest non-empty frame's mask "
                                         "instead of leaving the character unmasked."),
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
                pose=None):
        from ..preprocess.masks import coverage_warnings, feather as feather_mask, fill_empty_masks, shape_mask_sequence

        if mask.ndim == 2:
            mask = mask[None]
        if mask.ndim != 3 or mask.shape[0] == 0:
            raise InputError("Mask Shaping", "mask", f"expected [frames, H, W], got {tuple(mask.shape)}")
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
                                     block=block, head_points=heads, head_radius_scale=max(head_growth, 1e-3))
        progress.update()
        soft = feather_mask(shaped, feather) if feather > 0 else shaped.astype(np.float32)
        progress.update()
        notes += coverage_warnings(shaped)
        report = "\n".join(notes) or "ok"
        return io.NodeOutput(torch.from_numpy(shaped.astype(np.float32)), torch.from_numpy(np.asarray(soft, np.float32)),
                             report, ui=ui.PreviewText(report))


class EnvironmentVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "EnvironmentVideo",
            display_name="Environment Video (Replacement)",
            category=CATEGORY + "/mask",
            description="The driving video with the character region set to black (official frame x (1 - mask)), the "
                        "matching MASK for the sampler, and a tinted overlay to check the mask before sampling.",
            inputs=[
                io.Image.Input("images", tooltip="Frames of the driving video, at the output resolution."),
                io.Mask.Input("mask", tooltip="Shaped character mask (from Character Mask Shaping); resized to the "
                                              "frames with nearest-neighbour if its size differs."),
            ],
            outputs=[
                io.Image.Output(display_name="environment", tooltip="Frames with the character region black."),
                io.Mask.Output(display_name="mask", tooltip="The mask at the frames' size."),
                io.Image.Output(display_name="overlay", tooltip="Mask tinted red over the frames."),
            ],
        )

    @classmethod
    def execute(cls, images, mask):
        from ..preprocess.masks import environment_frames, overlay, resize_masks

        if mask.ndim == 2:
            mask = mask[None]
        t, h, w = images.shape[0], images.shape[1], images.shape[2]
        if mask.shape[0] == 1 and t > 1:
            mask = mask.expand(t, -1, -1)
        if mask.shape[0] != t:
            raise InputError("Environment Video", "mask", f"has {mask.shape[0]} frames, images have {t}",
                             "use the mask of the same video")
        m = mask.cpu().numpy().astype(np.float32)
        if m.shape[1:] != (h, w):
            m = resize_masks(m, h, w)
        m_t = torch.from_numpy(m)
        env = environment_frames(images[..., :3], m_t)
        over = to_image(overlay(to_uint8(images), m))
        return io.NodeOutput(env, m_t, over)


NODES = [MaskShape, EnvironmentVideo]
