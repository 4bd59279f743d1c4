"""Pose retargeting node (Animation mode): the character's proportions on the driver's motion."""
from __future__ import annotations

import numpy as np
from comfy_api.latest import io, ui

from .common import CATEGORY, PREFIX, InputError, Pose, to_float, to_uint8

NODE = "Pose Retarget"
# The retarget modes offered; the old name 'default' of 'improved' is still accepted (an API prompt or
# a saved workflow keeps it: the host does not check combo values against the list).
MODE_OPTIONS = ("official", "improved")


def _tinted(skeleton: np.ndarray, colour: tuple[int, int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    on = skeleton.max(axis=2) > 0
    if colour is None:
        return skeleton, on
    out = np.zeros_like(skeleton)
    out[on] = colour
    return out, on


def retarget_preview(image: np.ndarray, reference, driving_frame, result_frame, width: int, height: int) -> np.ndarray:
    """Character image with the reference skeleton (grey), the driving anchor frame (blue) and the
    retargeted result (official colours) drawn over it, all on the output canvas."""
    from ..preprocess.render import render_pose_frame
    from ..preprocess.resolution import padding_resize

    canvas = padding_resize(image, width, height).astype(np.float32) * 0.6
    for kps, colour in ((reference, (160, 160, 160)), (driving_frame, (60, 110, 255)), (result_frame, None)):
        if kps is None:
            continue
        sk, on = _tinted(render_pose_frame(kps, width, height), colour)
        canvas[on] = sk[on]
    return canvas.clip(0, 255).astype(np.uint8)


class PoseRetarget(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "PoseRetarget",
            display_name="Pose Retarget (Animation)",
            category=CATEGORY + "/pose",
            description="Rebuild the driving poses with the reference character's bone lengths, keeping every bone's "
                        "angle, placed where the character stands in its image. Animation mode only: Replacement keeps "
                        "the video's own proportions.",
            inputs=[
                Pose.Input("driving_pose", tooltip="Poses of the driving video (from Pose Extraction)."),
                Pose.Input("reference_pose", tooltip="Pose of the character image (Pose Extraction on the reference "
                                                     "image)."),
                io.Image.Input("reference_image", tooltip="The character image: sets the output canvas size when "
                                                          "width/height are 0, and is the preview's background."),
                io.Combo.Input("mode", options=list(MODE_OPTIONS), default="official",
                               tooltip="official: the Wan-Animate retargeting exactly (bone ratios and placement from "
                                       "driving frame 0, which must be a front-facing stretched pose). improved "
                                       "(called 'default' in older workflows, still accepted): the pack's own rules, "
                                       "which differ from official: the anchor frame is chosen "
                                       "automatically, ratios are clamped, feet follow the ground in every frame, the "
                                       "character is measured without the official canvas truncation (which shifts "
                                       "it by up to ~1.5 px), joints and hand points below 0.5 confidence are left "
                                       "where they are (official moves every joint and hand points from 0.4), and "
                                       "crossed hands hang from the wrist they are near (official keeps the other "
                                       "hand's offset, so they can land off the wrist)."),
                io.Int.Input("width", default=0, min=0, max=8192, step=16,
                             tooltip="Output canvas width in pixels; 0 = the reference image's width."),
                io.Int.Input("height", default=0, min=0, max=8192, step=16,
                             tooltip="Output canvas height in pixels; 0 = the reference image's height."),
                io.Int.Input("anchor_frame", default=-1, min=-1, max=1_000_000,
                             tooltip="Driving frame whose pose gives the bone ratios and the placement; -1 = frame 0 "
                                     "(official) or the most frontal, extended frame (improved mode). Another frame in "
                                     "official mode differs from official, which always uses frame 0."),
                io.Float.Input("ratio_min", default=0.5, min=0.05, max=1.0, step=0.05,
                               tooltip="Lowest allowed bone ratio relative to the driver's proportions (improved "
                                       "mode)."),
                io.Float.Input("ratio_max", default=2.0, min=1.0, max=10.0, step=0.05,
                               tooltip="Highest allowed bone ratio relative to the driver's proportions (improved "
                                       "mode)."),
                io.Float.Input("head_scale", default=1.0, min=0.2, max=5.0, step=0.05,
                               tooltip="Extra scale of the head bones, for stylised characters with big heads (1 = "
                                       "official; the part scales apply in both modes)."),
                io.Float.Input("torso_scale", default=1.0, min=0.2, max=5.0, step=0.05,
                               tooltip="Extra scale of the torso bones."),
                io.Float.Input("arms_scale", default=1.0, min=0.2, max=5.0, step=0.05,
                               tooltip="Extra scale of the arm bones."),
                io.Float.Input("legs_scale", default=1.0, min=0.2, max=5.0, step=0.05,
                               tooltip="Extra scale of the leg bones, e.g. below 1 for short-legged characters."),
                io.Boolean.Input("keep_feet_on_ground", default=True,
                                 tooltip="Make the character's lowest foot follow the driver's ground contact in every "
                                         "frame, so it neither floats nor sinks (improved mode)."),
                Pose.Input("reference_tpose", optional=True,
                           tooltip="Optional: pose of the character edited into a T-pose or A-pose (any image editor "
                                   "or editing model). When given with driving_tpose, bone lengths come from these."),
                Pose.Input("driving_tpose", optional=True,
                           tooltip="Optional: pose of the driving person edited into the same T-pose or A-pose."),
            ],
            outputs=[
                Pose.Output(display_name="pose", tooltip="Retargeted poses of the subject on the output canvas."),
                io.Image.Output(display_name="preview", tooltip="Reference (grey), driving anchor frame (blue) and "
                                                                "result (colours) over the character image."),
                io.String.Output(display_name="report"),
            ],
        )

    @classmethod
    def execute(cls, driving_pose, reference_pose, reference_image, mode, width, height, anchor_frame, ratio_min,
                ratio_max, head_scale, torso_scale, arms_scale, legs_scale, keep_feet_on_ground,
                reference_tpose=None, driving_tpose=None):
        from ..preprocess.retarget import canonical_mode, retarget

        mode = canonical_mode(mode)  # 'default' from workflows saved before the rename
        if mode not in MODE_OPTIONS:
            raise InputError(NODE, "mode", f"{mode!r} is not one of {', '.join(MODE_OPTIONS)}",
                             "pick one from the list ('default' in older workflows means 'improved')")
        if reference_image.ndim != 4 or reference_image.shape[0] < 1:
            raise InputError(NODE, "reference_image", "is empty", "connect the character image")
        img = to_uint8(reference_image[:1])[0]
        out_w = width or img.shape[1]
        out_h = height or img.shape[0]
        if (reference_tpose is None) != (driving_tpose is None):
            name = "driving_tpose" if driving_tpose is None else "reference_tpose"
            raise InputError(NODE, name, "only one of the two T-pose inputs is connected", "connect both or neither")
        if driving_pose.num_people == 0:
            raise InputError(NODE, "driving_pose", "has no tracked person", "check the driving video's pose extraction")
        if anchor_frame >= driving_pose.num_frames:
            raise InputError(NODE, "anchor_frame", f"{anchor_frame} is outside the {driving_pose.num_frames} driving "
                             "frames", f"use -1 (automatic) or a frame from 0 to {driving_pose.num_frames - 1}")
        if ratio_min > ratio_max:
            raise InputError(NODE, "ratio_min", f"{ratio_min} is above ratio_max {ratio_max}")
        try:
            result = retarget(
                driving_pose, reference_pose, mode=mode, out_width=out_w, out_height=out_h,
                ref_tpose=reference_tpose, drv_tpose=driving_tpose,
                anchor_frame=None if anchor_frame < 0 else anchor_frame, ratio_clamp=(ratio_min, ratio_max),
                part_scale={"head": head_scale, "torso": torso_scale, "arms": arms_scale, "legs": legs_scale},
                keep_feet_on_ground=keep_feet_on_ground)
        except ValueError as e:
            msg = str(e)
            names = (("ref_tpose", "reference_tpose"), ("drv_tpose", "driving_tpose"), ("reference", "reference_pose"),
                     ("anchor_frame", "anchor_frame"))
            name = next((ui_name for key, ui_name in names if msg.startswith(key)), None)
            if name is None:
                name = "reference_pose" if "reference" in msg else "driving_pose"
            raise InputError(NODE, name, msg) from e
        a = result.anchor_frame
        from ..preprocess.render import sequence_keypoints_for_canvas

        ref_kps = sequence_keypoints_for_canvas(reference_pose, out_w, out_h)[0, 0] if reference_pose.num_people else None
        # the anchor frame as the retarget measured it: a failed body is the held one (official hold)
        drv_kps = sequence_keypoints_for_canvas(driving_pose, out_w, out_h, hold_invalid=True)[a, 0]
        res_kps = result.poses.subject_keypoints[a]
        preview = retarget_preview(img, ref_kps, drv_kps, res_kps, out_w, out_h)
        lines = [f"mode {result.mode}, body {result.body_type}, anchor frame {a}, scale {result.scale:.3f}"]
        lines += [f"warning: {w}" for w in result.warnings]
        report = "\n".join(lines)
        return io.NodeOutput(result.poses, to_float(preview[None]), report, ui=ui.PreviewText(report))


NODES = [PoseRetarget]
