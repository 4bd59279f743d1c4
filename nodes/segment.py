"""SAM2 nodes (Replacement mode): checkpoint loader and character segmentation over a whole video."""
from __future__ import annotations

from comfy_api.latest import io, ui

from ..models.sam2_video import FRAME_RESIZE
from ..preprocess.sam_prompts import PROMPT_RULES
from .common import (CATEGORY, PREFIX, InputError, Masks, Pose, Progress, Sam2Model, check_interrupt, check_number,
                     frames_blocked, image_batch, model_file, one_source, output_switch, pose_on_frames, to_float)

REQUIRES = ("sam2", "cv2")
CAT = CATEGORY + "/mask"
# SAM2's Hiera trunk downsamples by 32 and its FPN/mask decoder need whole feature maps at strides
# 4 to 32: any other image_size fails deep inside sam2 with a tensor-size error.
SAM2_SIZE_STEP, SAM2_MIN_SIZE, SAM2_MAX_SIZE = 32, 32, 2048


def sam2_image_size_problem(image_size) -> str:
    """Why ``image_size`` cannot be a SAM2 input size ('' when it can; 0 = the checkpoint's own)."""
    if image_size == 0:
        return ""
    if not isinstance(image_size, int) or isinstance(image_size, bool):
        return f"{image_size!r} is not a whole number"
    if image_size < SAM2_MIN_SIZE or image_size > SAM2_MAX_SIZE or image_size % SAM2_SIZE_STEP:
        return f"{image_size} is not a size SAM2 can run at"
    return ""


class Sam2Loader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        import folder_paths

        return io.Schema(
            node_id=PREFIX + "Sam2Loader",
            display_name="SAM2 Loader",
            category=CAT,
            description="Load a SAM 2 / 2.1 checkpoint (.pt or .safetensors) from models/sam2 with its matching "
                        "config from the installed sam2 package (size and version read from the checkpoint). "
                        "Official: sam2_hiera_large.pt (SAM 2 Hiera-L, config sam2_hiera_l) in fp32 at 1024, "
                        "with the official video-predictor settings (hole filling up to 8 pixels included). The model "
                        "waits in ComfyUI's offload memory and takes GPU memory only while a segmentation runs.",
            inputs=[
                io.Combo.Input("checkpoint", options=folder_paths.get_filename_list("sam2"),
                               tooltip="A SAM 2 / 2.1 checkpoint in models/sam2 (tiny, small, base+ or large). "
                                       ".pt files are loaded with weights_only=True."),
                io.Combo.Input("device", options=["auto", "cuda", "cpu"], default="auto",
                               tooltip="Where SAM2 runs; auto = the device ComfyUI runs on (the CPU under "
                                       "--cpu). The model waits in ComfyUI's offload memory (normally RAM) and "
                                       "is on this device only while SAM2 Character Segmentation runs."),
                io.Combo.Input("dtype", options=["fp32", "bf16", "fp16"], default="fp32",
                               tooltip="Compute precision. fp32 is the official one (the official preprocessing "
                                       "runs SAM2 without autocast). bf16 / fp16 run under autocast: faster and "
                                       "lighter on a GPU, but the masks can differ from the official ones. On the "
                                       "CPU fp16 falls back to fp32."),
                io.Int.Input("image_size", default=0, min=0, max=SAM2_MAX_SIZE, step=SAM2_SIZE_STEP,
                             tooltip="Model input size; 0 = the checkpoint's own (1024, official). Otherwise a "
                                     "multiple of 32 (SAM2's network stride): smaller is faster and coarser."),
            ],
            outputs=[Sam2Model.Output(display_name="sam2_model")],
        )

    @classmethod
    def execute(cls, checkpoint, device, dtype, image_size):
        import torch

        from ..models.host_memory import resolve_device, storage_device
        from ..models.sam2_loader import DTYPES, load_sam2

        node = "SAM2 Loader"
        if device not in ("auto", "cuda", "cpu"):
            raise InputError(node, "device", f"'{device}' is not one of auto, cuda, cpu", "pick one from the list")
        if device == "cuda" and not torch.cuda.is_available():
            raise InputError(node, "device", "'cuda' was chosen but torch sees no CUDA GPU",
                             "choose 'auto' or 'cpu', or install a CUDA build of torch")
        if dtype not in DTYPES:
            raise InputError(node, "dtype", f"'{dtype}' is not one of {', '.join(DTYPES)}", "pick one from the list")
        problem = sam2_image_size_problem(image_size)
        if problem:
            raise InputError(node, "image_size", problem,
                             f"use 0 (the checkpoint's own, 1024) or a multiple of {SAM2_SIZE_STEP} from "
                             f"{SAM2_MIN_SIZE} to {SAM2_MAX_SIZE}")
        path = model_file(node, "checkpoint", "sam2", checkpoint)
        overrides = [f"++model.image_size={image_size}"] if image_size else []
        run = resolve_device(device)
        try:  # kept on the host's offload device; Character Segmentation moves it for its run
            model = load_sam2(path, device=device, dtype=dtype, overrides=overrides, storage=storage_device(run))
        except (ValueError, RuntimeError, KeyError) as e:
            raise InputError(node, "checkpoint", str(e)) from e
        return io.NodeOutput(model)


class CharacterSegmentation(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "CharacterSegmentation",
            display_name="SAM2 Character Segmentation",
            category=CAT,
            description="Mask the tracked person in every frame with SAM2, as the official replacement preprocessing "
                        "does by default: chunks of 400 frames, each with a fresh SAM2 state, prompted on its keyframes "
                        "with 8 body points of the subject (nose, neck, shoulders, hips, ankles), frames resized with "
                        "PIL bicubic, mask = logits > 0. Memory stays flat in video length. Optional user points add to "
                        "or replace the prompts, and points on an object the person holds keep that object from the "
                        "source video (both the pack's own, off by default).",
            inputs=[
                Sam2Model.Input("sam2_model", tooltip="From SAM2 Loader."),
                Pose.Input("pose", tooltip="Tracked poses of the same video (Pose Extraction): the subject is "
                                           "segmented."),
                io.Image.Input("images", optional=True, tooltip="The video frames. Connect this or video."),
                io.Video.Input("video", optional=True, tooltip="The video (decoded chunk by chunk). Connect this or "
                                                               "images."),
                io.Int.Input("chunk_size", default=400, min=8, max=4096,
                             tooltip="Frames per SAM2 chunk (official 400); each chunk gets a fresh SAM2 state and "
                                     "its own prompts."),
                io.Int.Input("keyframes", default=4, min=1, max=32,
                             tooltip="Official 4: with prompt_rule official a chunk of n frames is prompted on "
                                     "frames 0, n//4, 2*(n//4), ... below n (4 to 7 of them; frame 0 only when n <= "
                                     "4). With prompt_rule confident exactly this many, evenly spaced."),
                io.Float.Input("threshold", default=0.5, min=0.0, max=1.0, step=0.05,
                               tooltip="prompt_rule confident only: keypoints at least this confident (and inside "
                                       "the frame) become prompts. The official rule uses every prompt point "
                                       "whatever its score."),
                io.String.Input("positive_points", default="", multiline=False,
                                tooltip='Optional extra positive points as JSON, e.g. [{"x":256,"y":256}] '
                                        "(the KJNodes Points Editor format), on frame 'points_frame'; a point "
                                        'with its own "frame" (SAM2 Points Editor) goes on that frame.'),
                io.String.Input("negative_points", default="",
                                tooltip='Optional negative points as JSON [{"x":..,"y":..}].'),
                io.Combo.Input("points_mode", options=["add", "replace"], default="add",
                               tooltip="add: user points join the keypoint prompts. replace: only user points in "
                                       "their chunk."),
                io.Int.Input("points_frame", default=0, min=0, max=1_000_000,
                             tooltip="Frame the user points were placed on."),
                io.String.Input("object_points", default="",
                                tooltip="Optional points on an object the person interacts with (guitar, ball): "
                                        "it is segmented too and removed from the mask, so it stays from the "
                                        "source video."),
                io.Combo.Input("prompt_rule", options=list(PROMPT_RULES), default="official", optional=True,
                               tooltip="official: the 8 body points of the subject on the official keyframes, "
                                       "whatever their score or place (a frame whose body failed takes the previous "
                                       "frame's), as the official get_mask. confident (the pack's own, differs from "
                                       "the official): only keypoints >= threshold inside the frame of a frame where "
                                       "the subject was detected, on exactly 'keyframes' keyframes moved to frames "
                                       "that have such points."),
                io.Combo.Input("frame_resize", options=list(FRAME_RESIZE), default="official", optional=True,
                               tooltip="How frames are resized to SAM2's square input. official: PIL bicubic, as "
                                       "the official preprocessing (bit-exact input tensor). opencv: the pack's "
                                       "former OpenCV area/bicubic resize, a little faster; its input differs by a "
                                       "few grey levels, so masks can differ slightly from the official ones."),
                output_switch("frames_output", "the masks as a float MASK batch and the tinted preview (a "
                              "1000-frame 1280x720 MASK takes 3.7 GB)",
                              "only the compact 'masks' output (the same masks)", "mask or preview"),
            ],
            outputs=[
                io.Mask.Output(display_name="mask", tooltip="Character mask per frame (1 = character), as a "
                               "float MASK batch (4 bytes a pixel: needs frames_output on)."),
                io.Image.Output(display_name="preview", tooltip="Mask tinted over the frames, shrunk (needs "
                                "frames_output on)."),
                io.String.Output(display_name="report"),
                Masks.Output(display_name="masks", tooltip="The same masks kept compact (bit-packed: a few kB "
                             "a frame), for Character Mask Shaping: memory stays flat for any video length."),
            ],
        )

    @classmethod
    def execute(cls, sam2_model, pose, chunk_size, keyframes, threshold, positive_points, negative_points,
                points_mode, points_frame, object_points, images=None, video=None, prompt_rule="official",
                frame_resize="official", frames_output=True):
        from ..models.segment_pipeline import PromptInputError, plan_character_prompts, segment_character

        node = "SAM2 Character Segmentation"
        threshold = check_number(node, "threshold", threshold, 0.0, 1.0, "use the default 0.5")
        if prompt_rule not in PROMPT_RULES:
            raise InputError(node, "prompt_rule", f"'{prompt_rule}' is not one of {', '.join(PROMPT_RULES)}",
                             "pick one from the list (official is the default)")
        if frame_resize not in FRAME_RESIZE:
            raise InputError(node, "frame_resize", f"'{frame_resize}' is not one of {', '.join(FRAME_RESIZE)}",
                             "pick one from the list (official is the default)")
        src = one_source(node, images, video)
        n = src.num_frames
        w, h = src.size
        seq = pose_on_frames(node, pose, n, w, h)
        try:
            prompts = plan_character_prompts(
                seq, n, w, h, chunk_size=chunk_size, keyframes=keyframes, threshold=threshold,
                positive_points=positive_points, negative_points=negative_points, points_mode=points_mode,
                points_frame=points_frame, object_points=object_points, prompt_rule=prompt_rule)
        except PromptInputError as e:
            raise InputError(node, e.input_name, e.problem, e.fix) from e
        progress = Progress(n)
        result = segment_character(sam2_model, src, prompts, resize=frame_resize, preview=bool(frames_output),
                                   progress=lambda done, total: progress.set(done),
                                   should_stop=lambda: check_interrupt() or False)
        report = result.report()
        if frames_output:
            mask, preview = image_batch(result.masks, node), to_float(result.preview)
        else:
            mask = preview = frames_blocked(node, "mask and preview outputs are", instead="its masks output")
        return io.NodeOutput(mask, preview, report, result.masks, ui=ui.PreviewText(report))


NODES = [Sam2Loader, CharacterSegmentation]
