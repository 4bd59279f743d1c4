"""Pose nodes: model loader, extraction with tracking and smoothing, skeleton rendering, face crops,
output size, letterbox resize and POSE_KEYPOINT interop."""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import numpy as np
import torch
from comfy_api.latest import io, ui

from .common import (CATEGORY, DEFAULT_FPS, PREFIX, InputError, Pose, PoseModel, Progress, check_image_memory,
                     check_interrupt, check_number, frames_blocked, frames_output_input, image_batch, model_file,
                     one_source, output_switch, to_float)
from ..preprocess.frames import CHUNK_BYTES, chunk_frames

REQUIRES = ("onnxruntime", "cv2")
PoseKeypoint = io.Custom("POSE_KEYPOINT")
log = logging.getLogger("wan_animate_kit")
CAT = CATEGORY + "/pose"
# Render Pose: the largest canvas side, and the bytes of uint8 frames drawn at a time (at most 16 frames).
MAX_RENDER_SIDE = 8192
DRAW_CHUNK_BYTES = CHUNK_BYTES
# ViTPose crops per call when batch_size is 0. bench/bench_pose_extract.py on a 2-core CPU with a
# ViT-B-sized model: batch 4 ran 1.11x faster than one crop per call, batch 16 0.85x.
AUTO_BATCH_CPU, AUTO_BATCH_CUDA = 4, 16


@dataclass
class PoseModels:
    """What Pose Models hands to Pose Extraction: the checked model files and settings, no session.

    ``files`` (models.onnx_pose.PoseModelFiles) opens the ONNX sessions for one extraction run on the
    device ``device`` implies and drops them after it (unless ``keep_loaded``).
    """

    files: object  # models.onnx_pose.PoseModelFiles
    device: str  # 'auto' (the host's device), 'cuda' or 'cpu'
    batch_size: int  # ViTPose crops per call; 0 = auto (AUTO_BATCH_CUDA on CUDA, AUTO_BATCH_CPU on the CPU)
    names: tuple[str, str]

    def batch_for(self, provider: str) -> int:
        """The crops per call on ``provider`` (the auto choice when batch_size is 0)."""
        if self.batch_size:
            return self.batch_size
        return AUTO_BATCH_CUDA if provider == "CUDAExecutionProvider" else AUTO_BATCH_CPU


def _detection_models() -> list[str]:
    import folder_paths

    from ..models.onnx_pose import list_pose_models

    return list_pose_models(folder_paths.get_folder_paths("detection"))


class PoseModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        names = _detection_models()
        det_default = next((n for n in names if "yolo" in n.lower()), names[0] if names else None)
        # the official ViTPose-H first (Wan2.2 preprocess_data.py: pose2d/vitpose_h_wholebody.onnx)
        pose_default = next((n for n in names if "vitpose_h" in n.lower() or "vitpose-h" in n.lower()),
                            next((n for n in names if "vitpose" in n.lower() or "end2end" in n.lower()),
                                 names[0] if names else None))
        return io.Schema(
            node_id=PREFIX + "PoseModelLoader",
            display_name="Pose Models (YOLO + ViTPose)",
            category=CAT,
            description="Load the person detector (YOLOv10 end-to-end ONNX, e.g. yolov10m.onnx) and the ViTPose "
                        "whole-body ONNX from models/detection. External-data .bin/.data companions are not listed: "
                        "pick the .onnx (or the folder holding end2end.onnx).",
            inputs=[
                io.Combo.Input("detector", options=names, default=det_default,
                               tooltip="Person detector ONNX in models/detection (YOLOv10 contract: input 1x3x640x640, "
                                       "output [1,300,6])."),
                io.Combo.Input("pose_model", options=names, default=pose_default,
                               tooltip="ViTPose whole-body ONNX in models/detection (input Nx3x256x192, output "
                                       "Nx133x64x48), or a folder holding end2end.onnx."),
                io.Combo.Input("device", options=["auto", "cuda", "cpu"], default="auto",
                               tooltip="auto: the device ComfyUI runs on: its GPU when onnxruntime-gpu really runs "
                                       "there, else the CPU (logged); the CPU under --cpu. cuda: fail with the "
                                       "reason instead of silently falling back. The sessions are created when "
                                       "Pose Extraction runs and released after it."),
                io.Int.Input("batch_size", default=0, min=0, max=256,
                             tooltip="Person crops per ViTPose call (crops of many frames go together). 0 = auto: "
                                     "16 on CUDA, 4 on the CPU (measured fastest there; large CPU batches are "
                                     "slower)."),
                io.Boolean.Input("bgr_like_official", default=True,
                                 tooltip="On (official): feed ViTPose BGR pixels with RGB statistics, as the official "
                                         "preprocessing does (Wan2.2 preprocess/pose2d.py), so the keypoints match "
                                         "its. Off: correct RGB order (differs from the official keypoints)."),
                io.Boolean.Input("keep_loaded", default=False, optional=True,
                                 tooltip="Off: the ONNX sessions exist only while Pose Extraction runs, so their "
                                         "GPU memory is free for the sampler. On: they stay loaded after the first "
                                         "run (faster repeated extractions, memory held). Same keypoints either "
                                         "way."),
            ],
            outputs=[PoseModel.Output(display_name="pose_models")],
        )

    @classmethod
    def execute(cls, detector, pose_model, device, batch_size, bgr_like_official, keep_loaded=False):
        from ..models.onnx_pose import DEVICES, OFFICIAL_MODEL_FILE, ModelContractError, PoseModelFiles

        node = "Pose Models"
        if device not in DEVICES:
            raise InputError(node, "device", f"'{device}' is not one of {', '.join(DEVICES)}", "pick one from the list")
        # Names are confined to the model folders before anything is opened (never a path outside them).
        det_path = model_file(node, "detector", "detection", detector, folder_file=OFFICIAL_MODEL_FILE)
        pose_path = model_file(node, "pose_model", "detection", pose_model, folder_file=OFFICIAL_MODEL_FILE)
        if device == "cuda":  # fail here, not in the middle of a run, when CUDA cannot work at all
            _check_cuda_provider(node)
        files = PoseModelFiles(det_path, pose_path, bgr_like_official=bool(bgr_like_official),
                               keep_loaded=bool(keep_loaded), detector_name=str(detector), pose_name=str(pose_model))
        # The contracts are checked from the files (no session: the ViTPose-H graph is 2.5 GB);
        # Pose Extraction opens the sessions for its run.
        for attr, input_name in (("detector", "detector"), ("pose", "pose_model")):
            try:
                setattr(files, attr, _check_file(files, attr))
            except RuntimeError as e:  # onnxruntime missing
                raise InputError(node, "device", str(e)) from e
            except (ModelContractError, ValueError, FileNotFoundError) as e:
                raise InputError(node, input_name, str(e)) from e
        log.info("Wan-Animate Kit pose models: %s + %s checked; sessions on %s while Pose Extraction runs%s",
                 detector, pose_model, device, " (kept loaded)" if keep_loaded else "")
        return io.NodeOutput(PoseModels(files, device, batch_size, (detector, pose_model)))


def _check_file(files, attr: str):
    from ..models.onnx_pose import check_model_file

    path = getattr(files, attr)
    return check_model_file(path, "detector" if attr == "detector" else "pose",
                            files.detector_name if attr == "detector" else files.pose_name)


def _check_cuda_provider(node: str) -> None:
    """device 'cuda' needs onnxruntime with a CUDA provider and a GPU torch can see."""
    import torch as _torch

    from ..models.onnx_pose import INSTALL_GPU_HINT, _import_onnxruntime

    try:
        ort = _import_onnxruntime()
    except RuntimeError as e:
        raise InputError(node, "device", str(e)) from e
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise InputError(node, "device", f"'cuda' was chosen but the installed onnxruntime ({ort.__version__}) has "
                                         "no CUDAExecutionProvider (the CPU-only package)",
                         f"{INSTALL_GPU_HINT}, or choose 'auto' or 'cpu'")
    if not _torch.cuda.is_available():
        raise InputError(node, "device", "'cuda' was chosen but no CUDA GPU is visible",
                         "choose 'auto' or 'cpu'")


class PoseExtract(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "PoseExtract",
            display_name="Pose Extraction (ViTPose, tracked)",
            category=CAT,
            description="Detect every person, estimate 133 whole-body keypoints with ViTPose (crops of many frames in "
                        "batches), track people across frames with stable ids, smooth the keypoints, and pick the "
                        "person to animate or replace. Works on a character image too (one frame).",
            inputs=[
                PoseModel.Input("pose_models", tooltip="From Pose Models (YOLO + ViTPose)."),
                io.Image.Input("images", optional=True,
                               tooltip="Frames as an IMAGE batch (or the character image). Connect this or video."),
                io.Video.Input("video", optional=True,
                               tooltip="The driving video as the host's VIDEO, decoded in chunks so a long video "
                                       "never sits whole in memory. Connect this or images."),
                io.String.Input("person", default="largest",
                                tooltip="Who to animate/replace: 'largest' (official), an index '0', '1' ... in order "
                                        "of first appearance, or a point 'x,y' in pixels (or '0.5,0.4' as fractions): "
                                        "the person at or nearest that point."),
                io.Float.Input("smoothing", default=0.0, min=0.0, max=1.0, step=0.05,
                               tooltip="Temporal smoothing strength of the keypoints (confidence-aware One-Euro). "
                                       "0 = off, as the official preprocessing (which never smooths). Above 0 "
                                       "(e.g. 0.5) steadies jittery keypoints: the pack's option, not official. "
                                       "Dropped points are held from their last good value for a short gap."),
                io.Combo.Input("missing_frames", options=["hold", "interpolate", "raise"], default="hold",
                               tooltip="Frames where the chosen person is not found: hold the last pose, interpolate "
                                       "between neighbours, or stop with an error listing them."),
                io.Int.Input("chunk_frames", default=32, min=1, max=1024,
                             tooltip="Frames decoded and processed at a time (memory vs speed)."),
                output_switch("frames_output", "the preview, every frame with the detected skeletons drawn, "
                              "shrunk to 384 pixels a side, as an IMAGE batch (kept in memory while the video is "
                              "processed)", "no preview is made (the poses are the same)", "the preview output"),
            ],
            outputs=[
                Pose.Output(display_name="pose", tooltip="Tracked poses (every person; the chosen one is the subject)."),
                io.Image.Output(display_name="preview", tooltip="Frames with the detected skeletons, shrunk (needs "
                                                                "frames_output on)."),
                io.String.Output(display_name="report"),
            ],
        )

    @classmethod
    def execute(cls, pose_models, person, smoothing, missing_frames, chunk_frames, images=None, video=None,
                frames_output=True):
        from ..models import host_memory
        from ..models.onnx_pose import ModelContractError
        from ..models.pose_pipeline import PoseExtractionError, check_settings, extract_pose
        from ..models.pose_runner import OnnxPoseBackend

        node = "Pose Extraction"
        smoothing = check_number(node, "smoothing", smoothing, 0.0, 1.0, "use 0 (off, official) up to 1")
        src = one_source(node, images, video)

        def input_error(e: PoseExtractionError) -> InputError:
            return InputError(node, src.name if e.input_name == "source" else e.input_name, e.problem, e.fix)

        try:  # every setting, before the models are opened
            check_settings(person, smoothing, missing_frames, chunk_frames, *src.size)
        except PoseExtractionError as e:
            raise input_error(e) from None
        progress = Progress(src.num_frames)
        # The ONNX sessions exist for this run only, on the device the loader's choice implies ('auto':
        # the host's device, the CPU under --cpu), after the host freed VRAM for them; they are dropped
        # when it ends, also on an error or an interrupt (unless the loader's keep_loaded is on).
        device, device_id, gpu = host_memory.onnx_device(pose_models.device)
        try:
            with contextlib.ExitStack() as stack:
                try:
                    run = stack.enter_context(pose_models.files.open(
                        device, device_id=device_id, batch_size=pose_models.batch_size or AUTO_BATCH_CPU,
                        before_gpu=lambda nbytes: host_memory.free_memory(nbytes, gpu)))
                except RuntimeError as e:  # the CUDA provider did not start with device 'cuda'
                    raise InputError(node, "pose_models", f"{e} (set device on Pose Models)") from e
                except ModelContractError as e:
                    raise InputError(node, "pose_models", str(e)) from e
                batch_size = pose_models.batch_for(run.provider)
                run.pose.batch_size = batch_size
                log.info("Wan-Animate Kit pose extraction on %s, batch %d", run.provider, batch_size)
                try:
                    result = extract_pose(src, OnnxPoseBackend(run.detector, run.pose, batch_size), person=person,
                                          smoothing=smoothing, missing_frames=missing_frames,
                                          chunk_frames=chunk_frames,
                                          progress=lambda done, _total: progress.set(done),
                                          should_stop=check_interrupt, preview=bool(frames_output))
                except PoseExtractionError as e:
                    raise input_error(e) from e
        finally:  # the sessions are gone: hand their cached VRAM back, also after an error
            if gpu is not None:
                host_memory.empty_cache()
        log.info("Wan-Animate Kit pose extraction: %s", result.report)
        preview = to_float(result.preview) if frames_output else frames_blocked(node)
        return io.NodeOutput(result.pose, preview, result.report, ui=ui.PreviewText(result.report))


class RenderPose(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "RenderPose",
            display_name="Render Pose (official skeleton)",
            category=CAT,
            description="Draw the subject's skeleton exactly as the official Wan-Animate pipeline does (20-point body, "
                        "ellipse limbs at 60 %, hands as rainbow lines, head points, no face landmarks, black canvas): "
                        "the pose video the model was trained on. As in the official pipeline, a frame whose body "
                        "detection failed (every body point at negative x or y) shows the previous frame's body; "
                        "retargeted poses are drawn as they are (the retarget already did that).",
            inputs=[
                Pose.Input("pose", tooltip="Poses (from Pose Extraction or Pose Retarget)."),
                io.Int.Input("width", default=0, min=0, max=8192, step=16,
                             tooltip="Canvas width; 0 = the pose's own canvas."),
                io.Int.Input("height", default=0, min=0, max=8192, step=16,
                             tooltip="Canvas height; 0 = the pose's own canvas."),
                io.Boolean.Input("letterbox", default=True,
                                 tooltip="Place the poses on another canvas size as the official padding resize does "
                                         "(aspect kept, centred); off stretches them."),
                io.Boolean.Input("draw_hands", default=True, tooltip="Draw the hands (official: on)."),
                io.Boolean.Input("draw_head", default=True, tooltip="Draw nose, eyes and ears (official: on)."),
                frames_output_input("skeleton frames"),
            ],
            outputs=[io.Image.Output(display_name="pose_video",
                                     tooltip="The skeleton frames as an IMAGE batch (needs frames_output on)."),
                     io.Video.Output(display_name="video",
                                     tooltip="The same skeleton video, drawn on demand when read (no memory held), "
                                             "at the pose's fps. Connect it to the sampler's pose_video.")],
        )

    @classmethod
    def execute(cls, pose, width, height, letterbox, draw_hands, draw_head, frames_output=True):
        from ..preprocess.render import iter_pose_chunks, keypoints_problem
        from .lazy_video import recipe_video

        node = "Render Pose"
        if pose.num_people == 0:
            raise InputError(node, "pose", "has no tracked person")
        for name, value in (("width", width), ("height", height)):
            if not isinstance(value, int) or not 0 <= value <= MAX_RENDER_SIDE:
                raise InputError(node, name, f"must be 0 (the pose's canvas) or up to {MAX_RENDER_SIDE} pixels, "
                                 f"got {value!r}", "use the sampler's output size")
        w, h = width or pose.width, height or pose.height
        if max(w, h) > MAX_RENDER_SIDE:  # a pose canvas from POSE_KEYPOINT or other code
            raise InputError(node, "pose", f"has a {pose.width}x{pose.height} canvas, larger than "
                             f"{MAX_RENDER_SIDE} pixels a side", "set width and height to the output size")
        problem = keypoints_problem(pose.subject_keypoints)
        if problem:
            raise InputError(node, "pose", problem, "extract or import the poses again")
        # Before anything is drawn: one frame must fit in RAM, and with frames_output the whole batch.
        check_image_memory(node, "width" if width else "pose", 1, w, h, "choose a smaller width and height")
        if frames_output:
            check_image_memory(node, "frames_output", pose.num_frames, w, h,
                               "turn frames_output off and use the video output (drawn on demand, flat memory)")
        frames_per_chunk = chunk_frames(w, h, 16, budget=DRAW_CHUNK_BYTES)

        def draw(chunk: int = frames_per_chunk):
            # the official body hold, carried from chunk to chunk (extracted poses; see preprocess.render)
            yield from iter_pose_chunks(pose, chunk, w, h, letterbox, draw_hands=draw_hands, draw_head=draw_head)

        video = recipe_video(draw, pose.num_frames, w, h, pose.fps or DEFAULT_FPS, name="pose_video")
        return io.NodeOutput(image_batch(video.source, node) if frames_output else frames_blocked(node), video)


class FaceCrops(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "FaceCrops",
            display_name="Face Crops (512²)",
            category=CAT,
            description="Cut the subject's face out of every frame for the face adapter. 'official' (default) is the "
                        "Wan-Animate crop, pixel for pixel: the box of the 68 face landmarks grown to 1.3x its area "
                        "(mostly upwards), clipped to the image, cut at whole pixels and stretched to 512x512, no "
                        "smoothing. 'square' is the pack's option: a smoothed square box, never stretched, padded "
                        "at image borders, holding the last box when the face is lost.",
            inputs=[
                Pose.Input("pose", tooltip="Poses of the same video (not retargeted: faces come from the original "
                                           "frames)."),
                io.Image.Input("images", optional=True, tooltip="The driving frames. Connect this or video."),
                io.Video.Input("video", optional=True, tooltip="The driving video. Connect this or images."),
                io.Combo.Input("mode", options=["official", "square"], default="official",
                               tooltip="official: the Wan-Animate crop (box of all 68 landmarks whatever their "
                                       "confidence, area x1.3, 3/4 of the extra height above, clipped, whole pixels, "
                                       "stretched to the crop size, no smoothing); where it has no box (landmarks "
                                       "without width or height, or outside the image) the nearest frame's box is "
                                       "used and the frame is reported. square: differs from the official crop - a "
                                       "square of 1.3x the larger landmark side lifted for the forehead, at least 64 "
                                       "px, smoothed over time, sampled at sub-pixel precision, never stretched, "
                                       "padded black outside the image, the last good box held (moved with the head) "
                                       "on frames with an unsure face."),
                io.Int.Input("size", default=512, min=64, max=1024, step=64,
                             tooltip="Crop size in pixels (official 512, what the model expects)."),
                frames_output_input("face crops"),
            ],
            outputs=[io.Image.Output(display_name="face_video",
                                     tooltip="The face crops as an IMAGE batch (needs frames_output on)."),
                     io.String.Output(display_name="report"),
                     io.Video.Output(display_name="video",
                                     tooltip="The same face crops, cut from the driving video on demand when read "
                                             "(no memory held). Connect it to the sampler's face_video.")],
        )

    @classmethod
    def execute(cls, pose, mode, size, images=None, video=None, frames_output=True):
        from ..preprocess.face import crop_faces, crop_faces_official, face_boxes
        from ..preprocess.resolution import scale_keypoints
        from .lazy_video import recipe_video

        src = one_source("Face Crops", images, video)
        if pose.num_people == 0:
            raise InputError("Face Crops", "pose", "has no tracked person")
        if pose.retargeted:
            raise InputError("Face Crops", "pose", "is retargeted", "use the poses before Pose Retarget: face crops come "
                             "from the original frames")
        if src.num_frames != pose.num_frames:
            raise InputError("Face Crops", src.name, f"has {src.num_frames} frames, the pose has {pose.num_frames}",
                             "use the pose extracted from this video")
        w, h = src.size
        # the pose's canvas onto the frames: the official x / W * w (preprocess.resolution.scale_keypoints)
        kps = scale_keypoints(pose.subject_keypoints, pose.width, pose.height, w, h)
        try:
            boxes, low = face_boxes(kps, w, h, mode=mode, fps=pose.fps or 30.0)
        except ValueError as e:
            if "usable face box" not in str(e):
                raise
            raise InputError("Face Crops", "pose", "has no frame with a usable official face box (the face "
                             "landmarks have no width or height, or lie outside the image, in every frame)",
                             "use the pose of a video where the face is seen, or mode 'square'") from None
        fps = src.fps or pose.fps or DEFAULT_FPS
        cut = crop_faces_official if mode == "official" else crop_faces

        def crop():  # one pass over the driving frames
            pos = 0
            for chunk in src.iter_chunks(chunk_frames(w, h, 32)):
                yield cut(chunk, boxes[pos:pos + len(chunk)], size=size)
                pos += len(chunk)

        faces = recipe_video(crop, src.num_frames, size, size, fps, name="face_video")
        report = f"{len(low)} frame(s) with a missing or unsure face" + (f": {low[:20]}" if low else "")
        frames = image_batch(faces.source, "Face Crops") if frames_output else frames_blocked("Face Crops")
        return io.NodeOutput(frames, report, faces, ui=ui.PreviewText(report))


class OutputSize(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "OutputSize",
            display_name="Wan-Animate Output Size",
            category=CAT,
            description="Output width and height for a token budget (default the area of 1280x720), multiples of 16, "
                        "with the aspect of the given image: the reference image in Animation mode, the video's first "
                        "frame in Replacement mode (official rule).",
            inputs=[
                io.Image.Input("image", optional=True, tooltip="Reference image (Animation) or a frame of the video "
                               "(Replacement). Connect this or video."),
                io.Video.Input("video", optional=True, tooltip="Replacement: the driving video (only its size is "
                               "read). Connect this or image. When it comes from Driving Video already resized "
                               "with this same area and divisor (its resize_area, as the official Replacement "
                               "preprocessing does), its own size is returned: the official generation size is "
                               "that of the resized frames."),
                io.Int.Input("area", default=1280 * 720, min=64 * 64, max=4096 * 4096, step=256,
                             tooltip="Pixel budget width x height (official 1280x720 = 921600; 832x480 for 480p)."),
                io.Int.Input("divisor", default=16, min=8, max=64, step=8, tooltip="Sizes are floored to multiples "
                                                                                   "of this (16 for Wan)."),
            ],
            outputs=[io.Int.Output(display_name="width"), io.Int.Output(display_name="height")],
        )

    @classmethod
    def execute(cls, area, divisor, image=None, video=None):
        from ..preprocess.resolution import size_for_area
        from .video_rate import RESIZED_ATTR

        if (image is None) == (video is None):
            raise InputError("Wan-Animate Output Size", "image", "connect exactly one of image and video",
                             "the reference image in Animation mode, the driving video in Replacement mode")
        src_w, src_h = (int(image.shape[2]), int(image.shape[1])) if image is not None else video.get_dimensions()
        if video is not None and getattr(video, RESIZED_ATTR, None) == (int(area), int(divisor)):
            # already the official size (official: wan/animate.py takes the size of the resized frames);
            # the size rule applied a second time can change it
            return io.NodeOutput(int(src_w), int(src_h))
        w, h = size_for_area(int(src_w), int(src_h), area=area, divisor=divisor)
        return io.NodeOutput(w, h)


LETTERBOX_LINEAR = "linear (official reference)"
LETTERBOX_AREA = "area when shrinking (official frames)"


class PaddingResize(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "PaddingResize",
            display_name="Letterbox Resize",
            category=CAT,
            description="Fit images into width x height keeping the aspect ratio, centred, with black bars (the "
                        "official padding_resize). Images are taken back to 8 bits first, as the official code "
                        "resizes 8-bit images.",
            inputs=[
                io.Image.Input("images", tooltip="Images or frames to resize."),
                io.Int.Input("width", default=832, min=16, max=8192, step=16, tooltip="Target width."),
                io.Int.Input("height", default=480, min=16, max=8192, step=16, tooltip="Target height."),
                io.Combo.Input("interpolation", options=[LETTERBOX_LINEAR, LETTERBOX_AREA], default=LETTERBOX_LINEAR,
                               optional=True,
                               tooltip="linear (official reference): always bilinear, as the official generation "
                                       "fits the character image (wan/animate.py padding_resize), so the result "
                                       "equals what the Wan-Animate sampler does to a reference of another size. "
                                       "area when shrinking (official frames): INTER_AREA when shrinking, as the "
                                       "official preprocessing resizes video frames (utils.py resize_by_area)."),
            ],
            outputs=[io.Image.Output(display_name="images")],
        )

    @classmethod
    def execute(cls, images, width, height, interpolation=LETTERBOX_LINEAR):
        from ..preprocess.resolution import padding_resize

        if interpolation not in (LETTERBOX_LINEAR, LETTERBOX_AREA):
            raise InputError("Letterbox Resize", "interpolation", f"is {interpolation!r}",
                             f"pick '{LETTERBOX_LINEAR}' or '{LETTERBOX_AREA}'")
        mode = "linear" if interpolation == LETTERBOX_LINEAR else "area_when_shrinking"
        arr = (images[..., :3].float().cpu().clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()
        out = np.stack([padding_resize(np.ascontiguousarray(f), width, height, 0, interpolation=mode) for f in arr])
        return io.NodeOutput(torch.from_numpy(out).float().div_(255.0))


class PoseToKeypoint(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "PoseToKeypoint",
            display_name="Pose to POSE_KEYPOINT",
            category=CAT,
            description="Export poses as OpenPose JSON (POSE_KEYPOINT, as controlnet_aux writes it) with the real "
                        "confidences, for pose editors and other packs.",
            inputs=[
                Pose.Input("pose", tooltip="Poses to export."),
                io.Combo.Input("people", options=["all", "subject"], default="all",
                               tooltip="Export every tracked person or only the subject."),
            ],
            outputs=[PoseKeypoint.Output(display_name="pose_keypoint")],
        )

    @classmethod
    def execute(cls, pose, people):
        from ..preprocess.openpose_json import to_pose_keypoint

        return io.NodeOutput(to_pose_keypoint(pose, people=people))


class PoseFromKeypoint(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "PoseFromKeypoint",
            display_name="POSE_KEYPOINT to Pose",
            category=CAT,
            description="Bring poses edited elsewhere (OpenPose JSON, flat or nested, pixels or normalised) back as "
                        "the pack's pose type.",
            inputs=[
                PoseKeypoint.Input("pose_keypoint", tooltip="POSE_KEYPOINT frames."),
                io.Float.Input("fps", default=0.0, min=0.0, max=240.0, step=0.001,
                               tooltip="Frame rate of the poses; 0 = unknown."),
                io.String.Input("person", default="largest",
                                tooltip="Subject: 'largest', an index, or a point 'x,y'."),
            ],
            outputs=[Pose.Output(display_name="pose")],
        )

    @classmethod
    def execute(cls, pose_keypoint, fps, person):
        from ..preprocess.openpose_json import from_pose_keypoint
        from ..preprocess.tracking import select_subject

        fps = check_number("POSE_KEYPOINT to Pose", "fps", fps, 0.0, 240.0, "use the video's frame rate, or 0")
        try:
            seq = from_pose_keypoint(pose_keypoint, fps=fps)
            if seq.num_people:
                seq = select_subject(seq, person)
        except ValueError as e:
            raise InputError("POSE_KEYPOINT to Pose", "pose_keypoint", str(e)) from e
        return io.NodeOutput(seq)


NODES = [PoseModelLoader, PoseExtract, RenderPose, FaceCrops, OutputSize, PaddingResize, PoseToKeypoint,
         PoseFromKeypoint]
