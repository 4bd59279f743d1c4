"""Test helpers: the official Wan2.2-Animate SAM2 masking re-stated, and a recording stand-in predictor.

Re-stated from reading the official code (wan/modules/animate/preprocess/process_pipepline.py,
ProcessPipeline.get_mask; sam_utils.py, load_video_frames_v2 / _load_img_v2_as_tensor and
build_sam2_video_predictor; pose2d_utils.py, split_kp2ds_for_aa / load_pose_metas_from_kp2ds_seq),
written plainly and independently of the pack's code, so that the pack's defaults can be compared
with it call by call.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from PIL import Image

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

#: The overrides the official builder composes for sam2_hiera_l.yaml (apply_postprocessing=True), with
#: sam2's own video predictor in place of the official subclass (which only adds init_state_v2).
OFFICIAL_OVERRIDES = [
    "++model._target_=sam2.sam2_video_predictor.SAM2VideoPredictor",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
    "++model.binarize_mask_from_pts_for_mem_enc=true",
    "++model.fill_hole_area=8",
]


def official_frame_tensor(frame: np.ndarray, image_size: int) -> torch.Tensor:
    """One frame as the official loader hands it to SAM2: float32 [3, S, S]."""
    picture = Image.fromarray(frame.astype(np.uint8))
    resized = np.array(picture.convert("RGB").resize((image_size, image_size)))  # Pillow's default filter
    assert resized.dtype == np.uint8
    chw = torch.from_numpy(resized / 255.0).permute(2, 0, 1)  # float64
    out = torch.zeros(1, 3, image_size, image_size, dtype=torch.float32)
    out[0] = chw  # the official batch is float32: the float64 frame is cast on assignment
    out -= torch.tensor(MEAN, dtype=torch.float32)[:, None, None]
    out /= torch.tensor(STD, dtype=torch.float32)[:, None, None]
    return out[0]


def official_metas(kps133: np.ndarray, width: int, height: int) -> list[dict]:
    """Official pose metas of one person's [T, 133, 3] pixel keypoints: the 20-point body, normalised,
    a frame whose body is all at negative x or y taking the previous frame's."""
    metas, last = [], None
    for kp in np.asarray(kps133, np.float32):
        k = kp.copy()
        k[:, 0] /= width
        k[:, 1] /= height
        first = [0, 6, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3, 17, 20]
        second = [0, 5, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3, 18, 21]
        body = (k[first] + k[second]) / 2
        if body[:, :2].min(axis=1).max() < 0:
            body = last
        last = body
        metas.append({"width": width, "height": height, "keypoints_body": body})
    return metas


def official_get_mask(predictor, frames, metas, th_step: int = 400) -> list[np.ndarray]:
    """ProcessPipeline.get_mask re-stated on a predictor with the official call names."""
    n = len(frames)
    steps = 1 if n < th_step else (n + th_step) // th_step
    masks = []
    for i in range(steps):
        part = frames[i * th_step:(i + 1) * th_step]
        kp = metas[i * th_step:(i + 1) * th_step]
        if len(part) > 4:
            count = 4
        elif len(part) > 0:
            count = 1
        else:
            continue
        keyframes = list(range(0, len(kp), len(kp) // count))
        prompts = []
        for t in keyframes:
            body = kp[t]["keypoints_body"]
            chosen = np.array([body[j] for j in (0, 1, 2, 5, 8, 11, 10, 13)])[:, :2]
            wh = np.array([[kp[0]["width"], kp[0]["height"]]])
            prompts.append((chosen * wh).astype(np.int32))
        state = predictor.init_state_v2(frames=part)
        predictor.reset_state(state)
        for t, points in zip(keyframes, prompts):
            predictor.add_new_points(inference_state=state, frame_idx=t, obj_id=1, points=points,
                                     labels=np.array([1] * points.shape[0], np.int32))
        segments = {}
        for t, ids, logits in predictor.propagate_in_video(state):
            segments[t] = {obj: (logits[j] > 0.0).cpu().numpy() for j, obj in enumerate(ids)}
        for t in range(len(segments)):
            for obj, mask in segments[t].items():
                masks.append(mask[0].astype(np.uint8))
    return masks


class RecordingPredictor:
    """A stand-in for sam2's video predictor: records every call and answers with seeded logits.

    It serves both the pack (``add_new_points_or_box``, a state built by the pack) and the official
    re-statement (``init_state_v2``, ``reset_state``, ``add_new_points``). The logits of a frame depend
    on the chunk's ordinal, the frame and the normalised input frame, so masks only agree when the
    chunks, the frames and their preprocessing agree.
    """

    def __init__(self, image_size: int = 16):
        self.image_size = image_size
        self.device = torch.device("cpu")
        self.num_maskmem = 7
        self.max_obj_ptrs_in_encoder = 16
        self.memory_attention = torch.nn.Identity()
        self.log: list[tuple] = []
        self.inputs: list[list[torch.Tensor]] = []  # per state: the input tensor of every frame it tracked

    # -- the official loader's state (video_predictor.py, init_state_v2), reduced to what is used here
    def init_state_v2(self, frames):
        images = torch.stack([official_frame_tensor(np.asarray(f), self.image_size) for f in frames])
        h, w = np.asarray(frames[0]).shape[:2]
        return {"images": images, "num_frames": len(images), "video_height": h, "video_width": w,
                "obj_id_to_idx": OrderedDict(), "obj_ids": [], "output_dict_per_obj": {}}

    def reset_state(self, state):
        self.log.append(("reset",))

    def add_new_points_or_box(self, inference_state, frame_idx, obj_id, points=None, labels=None,
                              clear_old_points=True, normalize_coords=True, box=None):
        state = inference_state
        if not state["obj_id_to_idx"]:
            self.inputs.append([])
        if obj_id not in state["obj_id_to_idx"]:
            state["obj_id_to_idx"][obj_id] = len(state["obj_id_to_idx"])
            state["obj_ids"].append(obj_id)
        self.log.append(("add", len(self.inputs) - 1, int(frame_idx), int(obj_id),
                         torch.as_tensor(np.asarray(points), dtype=torch.float32).tolist(),
                         np.asarray(labels).astype(np.int64).tolist(), clear_old_points, normalize_coords,
                         None if box is None else np.asarray(box).tolist(), state["num_frames"],
                         (state["video_height"], state["video_width"])))

    add_new_points = add_new_points_or_box

    def propagate_in_video(self, inference_state, start_frame_idx=None, max_frame_num_to_track=None,
                           reverse=False):
        state = inference_state
        n = state["num_frames"]
        start = 0 if start_frame_idx is None else start_frame_idx
        stop = n if max_frame_num_to_track is None else min(n, start + max_frame_num_to_track)
        chunk = len(self.inputs) - 1
        self.log.append(("propagate", chunk, n, start, stop, bool(reverse)))
        h, w = state["video_height"], state["video_width"]
        for t in range(start, stop):
            image = state["images"][t].float()
            self.inputs[chunk].append(image.clone())
            g = torch.Generator().manual_seed(1000 * chunk + t)
            logits = torch.randn(len(state["obj_ids"]), 1, h, w, generator=g)
            logits += float(image.mean()) * 0.25  # the frame's input moves the mask
            yield t, list(state["obj_ids"]), logits
