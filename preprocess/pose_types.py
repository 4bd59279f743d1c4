"""The one pose structure that flows between the pack's nodes.

A ``PoseSequence`` holds, for every frame of a video (or the single frame of an image), the 133
COCO-WholeBody keypoints of every tracked person, in canvas pixels with their real confidences.
One person is the *subject*: the one whose motion, face and mask the pipeline uses.

COCO-WholeBody layout (133 points):
    0-16   body (COCO-17: nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles)
    17-22  feet (L big toe, L small toe, L heel, R big toe, R small toe, R heel)
    23-90  face (68 landmarks)
    91-111 left hand (21), 112-132 right hand (21)
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

NUM_KEYPOINTS = 133
BODY = slice(0, 17)
FEET = slice(17, 23)
FACE = slice(23, 91)
LEFT_HAND = slice(91, 112)
RIGHT_HAND = slice(112, 133)

# COCO body indices
NOSE, L_EYE, R_EYE, L_EAR, R_EAR = 0, 1, 2, 3, 4
L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST = 5, 6, 7, 8, 9, 10
L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANKLE, R_ANKLE = 11, 12, 13, 14, 15, 16
L_BIG_TOE, L_SMALL_TOE, L_HEEL, R_BIG_TOE, R_SMALL_TOE, R_HEEL = 17, 18, 19, 20, 21, 22


@dataclass(frozen=True)
class PoseSequence:
    """Tracked whole-body poses of a video or image.

    keypoints: float32 [T, P, 133, 3]; x, y in pixels of a ``width`` x ``height`` canvas and a
        confidence in 0..1. A point that is unknown has confidence 0.
    track_ids: one stable id per person column P.
    subject: index into the person axis of the person the pipeline animates or replaces.
    detected: bool [T, P], True where the person was really detected in that frame (False where the
        pose was held or filled in).
    fps: frames per second of the source, 0.0 when unknown (an image).
    retargeted: True once the poses were retargeted to another character's proportions.
    """

    keypoints: np.ndarray
    track_ids: tuple[int, ...]
    width: int
    height: int
    subject: int = 0
    detected: np.ndarray | None = None
    fps: float = 0.0
    retargeted: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self):
        kp = np.asarray(self.keypoints, dtype=np.float32)
        if kp.ndim != 4 or kp.shape[2] != NUM_KEYPOINTS or kp.shape[3] != 3:
            raise ValueError(f"PoseSequence keypoints must be [T, P, 133, 3], got {tuple(kp.shape)}")
        object.__setattr__(self, "keypoints", kp)
        if len(self.track_ids) != kp.shape[1]:
            raise ValueError("PoseSequence needs one track id per person column")
        if kp.shape[1] and not 0 <= self.subject < kp.shape[1]:
            raise ValueError(f"subject index {self.subject} is outside the {kp.shape[1]} tracked people")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"PoseSequence canvas must be positive, got {self.width}x{self.height}")
        det = self.detected
        if det is None:
            det = kp[..., 2].max(axis=2) > 0
        det = np.asarray(det, dtype=bool)
        if det.shape != kp.shape[:2]:
            raise ValueError("PoseSequence detected must be [T, P]")
        object.__setattr__(self, "detected", det)

    @property
    def num_frames(self) -> int:
        return int(self.keypoints.shape[0])

    @property
    def num_people(self) -> int:
        return int(self.keypoints.shape[1])

    @property
    def subject_keypoints(self) -> np.ndarray:
        """[T, 133, 3] keypoints of the subject."""
        if self.num_people == 0:
            raise ValueError("this pose sequence has no person in it")
        return self.keypoints[:, self.subject]

    @property
    def subject_detected(self) -> np.ndarray:
        return self.detected[:, self.subject]

    def with_subject_keypoints(self, kps: np.ndarray, **changes) -> "PoseSequence":
        """A copy whose subject column is replaced by ``kps`` [T, 133, 3]."""
        kps = np.asarray(kps, dtype=np.float32)
        if kps.shape != self.subject_keypoints.shape:
            raise ValueError(f"expected {self.subject_keypoints.shape}, got {kps.shape}")
        new = self.keypoints.copy()
        new[:, self.subject] = kps
        return replace(self, keypoints=new, **changes)

    def only_subject(self) -> "PoseSequence":
        """A copy holding only the subject."""
        s = self.subject
        return replace(self, keypoints=self.keypoints[:, s:s + 1].copy(), track_ids=(self.track_ids[s],),
                       detected=self.detected[:, s:s + 1].copy(), subject=0)

    def frames(self, start: int, stop: int) -> "PoseSequence":
        return replace(self, keypoints=self.keypoints[start:stop].copy(),
                       detected=self.detected[start:stop].copy())

    def with_canvas(self, width: int, height: int, **changes) -> "PoseSequence":
        return replace(self, width=int(width), height=int(height), **changes)


def empty_sequence(num_frames: int, width: int, height: int, fps: float = 0.0) -> PoseSequence:
    """A sequence with no person tracked (every frame empty)."""
    return PoseSequence(np.zeros((num_frames, 0, NUM_KEYPOINTS, 3), np.float32), (), width, height, fps=fps)
