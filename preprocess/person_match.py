"""Find, in one tracking, the person who is a given person of another tracking of the same scene.

Used when a video was re-tracked after an edit (e.g. after a Replacement pass changed how one
person looks): the people did not move, so they are matched by *position*, never by appearance.

For every person column of ``seq`` the cost against the reference subject is computed over the
frames where both were really detected: ``1 - mean IoU`` of their keypoint boxes, and as the tie
break the mean distance between the keypoints confident in both, divided by the diagonal of the
reference's box. The lowest cost wins. Canvases of different sizes are compared after scaling the
reference onto ``seq``'s canvas.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .pose_types import PoseSequence
from .resolution import scale_keypoints
from .tracking import box_iou, person_boxes


@dataclass(frozen=True)
class PersonMatch:
    index: int                    # the matched column of ``seq``
    iou: float                    # its mean box IoU with the reference subject over the shared frames
    shared_frames: int            # frames where both were detected
    ious: tuple[float, ...]       # mean IoU of every column (0 where no shared frame)


def _on_canvas(ref: PoseSequence, width: int, height: int) -> PoseSequence:
    if (ref.width, ref.height) == (width, height):
        return ref
    kps = scale_keypoints(ref.keypoints, ref.width, ref.height, width, height)
    return replace(ref, keypoints=kps, width=int(width), height=int(height))


def match_person(seq: PoseSequence, reference: PoseSequence, threshold: float = 0.3) -> PersonMatch:
    """The column of ``seq`` whose track lies where ``reference``'s subject is (see the module doc).

    Raises ValueError when the frame counts differ, either side has no person, or no column of
    ``seq`` shares a detected frame with the reference subject.
    """
    if seq.num_frames != reference.num_frames:
        raise ValueError(f"the two poses have {seq.num_frames} and {reference.num_frames} frames; match poses "
                         "of the same clip")
    if seq.num_people == 0 or reference.num_people == 0:
        raise ValueError("one of the poses has no tracked person")
    ref = _on_canvas(reference, seq.width, seq.height)
    ref_kps = ref.subject_keypoints
    ref_box = person_boxes(ref, threshold)[:, ref.subject]
    ref_det = ref.subject_detected & (ref_kps[..., 2] >= threshold).any(axis=1)
    boxes = person_boxes(seq, threshold)
    ious, dists, shared = [], [], []
    for p in range(seq.num_people):
        both = np.flatnonzero(ref_det & seq.detected[:, p] & (seq.keypoints[:, p, :, 2] >= threshold).any(axis=1))
        shared.append(len(both))
        if not len(both):
            ious.append(0.0)
            dists.append(np.inf)
            continue
        iou = [box_iou(ref_box[t:t + 1], boxes[t:t + 1, p])[0, 0] for t in both]
        ious.append(float(np.mean(iou)))
        per_frame = []
        for t in both:
            ok = (ref_kps[t, :, 2] >= threshold) & (seq.keypoints[t, p, :, 2] >= threshold)
            diag = max(float(np.hypot(ref_box[t, 2] - ref_box[t, 0], ref_box[t, 3] - ref_box[t, 1])), 1.0)
            if ok.any():
                d = np.linalg.norm(ref_kps[t, ok, :2] - seq.keypoints[t, p, ok, :2], axis=1).mean()
                per_frame.append(float(d) / diag)
        dists.append(float(np.mean(per_frame)) if per_frame else 1.0)
    if max(shared) == 0:
        raise ValueError("no tracked person shares a detected frame with the reference person")
    order = sorted(range(seq.num_people), key=lambda p: (shared[p] == 0, 1.0 - ious[p], dists[p]))
    best = order[0]
    return PersonMatch(best, ious[best], shared[best], tuple(ious))
