"""Keypoint formats: COCO-WholeBody 133 to the official 20-point body ("AAPose") and parts.

The 20-point body (official: wan/modules/animate/preprocess/pose2d_utils.py, AAPoseMeta): each point is the mean of a pair of COCO-WholeBody
indices, confidences averaged. 0 Nose, 1 Neck (shoulder midpoint), 2 RShoulder, 3 RElbow, 4 RWrist,
5 LShoulder, 6 LElbow, 7 LWrist, 8 RHip, 9 RKnee, 10 RAnkle, 11 LHip, 12 LKnee, 13 LAnkle, 14 REye,
15 LEye, 16 REar, 17 LEar, 18 LToe (big/small toe midpoint), 19 RToe.
"""
from __future__ import annotations

import numpy as np

from .pose_types import FACE, LEFT_HAND, RIGHT_HAND

_PAIR_A = np.array([0, 6, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3, 17, 20])
_PAIR_B = np.array([0, 5, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3, 18, 21])

B20_NOSE, B20_NECK = 0, 1
B20_R_SHOULDER, B20_R_ELBOW, B20_R_WRIST = 2, 3, 4
B20_L_SHOULDER, B20_L_ELBOW, B20_L_WRIST = 5, 6, 7
B20_R_HIP, B20_R_KNEE, B20_R_ANKLE = 8, 9, 10
B20_L_HIP, B20_L_KNEE, B20_L_ANKLE = 11, 12, 13
B20_R_EYE, B20_L_EYE, B20_R_EAR, B20_L_EAR = 14, 15, 16, 17
B20_L_TOE, B20_R_TOE = 18, 19

# Limbs of the official renderer, as 0-based (parent, child) pairs in drawing order.
# The hips hang from the neck: there is no mid-hip point and no hip-hip line.
BODY20_LIMBS = [
    (1, 2), (1, 5),            # shoulders
    (2, 3), (3, 4),            # right arm
    (5, 6), (6, 7),            # left arm
    (1, 8), (8, 9), (9, 10),   # right leg
    (1, 11), (11, 12), (12, 13),  # left leg
    (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),  # head
    (13, 18), (10, 19),        # feet: LAnkle-LToe, RAnkle-RToe
]

# OpenPose palette plus two foot colours (RGB), indexed by limb and by joint.
BODY20_COLORS = [
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
    (200, 200, 0), (100, 100, 0),
]

# 20 edges of a 21-point hand (wrist 0, then 4 points per finger).
HAND_EDGES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10),
              (10, 11), (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18),
              (18, 19), (19, 20)]


BODY_FEET_133 = np.arange(23)  # COCO-WholeBody body (0-16) and feet (17-22): what the 20-point body is made of


def _pair_means(kps133: np.ndarray) -> np.ndarray:
    kps133 = np.asarray(kps133, dtype=np.float32)
    return (kps133[..., _PAIR_A, :] + kps133[..., _PAIR_B, :]) * 0.5


def invalid_body_frames(kps133: np.ndarray) -> np.ndarray:
    """[T, ..., 133, 3] -> [T, ...] bool: frames whose every 20-point body joint has x < 0 or y < 0.

    The official extraction treats such a body as a failed detection (official:
    wan/modules/animate/preprocess/pose2d_utils.py, load_pose_metas_from_kp2ds_seq).
    """
    body = _pair_means(kps133)
    return (body[..., :2].min(axis=-1) < 0).all(axis=-1)


def held_body_source(invalid: np.ndarray) -> np.ndarray:
    """[T, ...] invalid-frame mask -> [T, ...] index of the frame each frame takes its body from.

    A valid frame keeps its own body; an invalid one takes the body the previous frame ended up
    with (so a run of invalid frames repeats the last valid body). An invalid first frame keeps its
    own body: the official code has no previous body there and stops with an error.
    """
    invalid = np.asarray(invalid, bool)
    src = np.broadcast_to(np.arange(invalid.shape[0]).reshape((-1,) + (1,) * (invalid.ndim - 1)),
                          invalid.shape).copy()
    for t in range(1, invalid.shape[0]):
        src[t] = np.where(invalid[t], src[t - 1], src[t])
    return src


def hold_invalid_bodies(kps133: np.ndarray) -> np.ndarray:
    """[T, ..., 133, 3] sequence -> a copy where each invalid frame's body and feet points (COCO 0-22)
    are those of the previous frame (official rule, see :func:`invalid_body_frames`).

    Hands and face stay the frame's own, as in the official extraction. Axis 0 is time.
    """
    kps = np.array(kps133, copy=True)
    if kps.ndim < 3 or kps.shape[0] < 2:
        return kps
    src = held_body_source(invalid_body_frames(kps))
    if (src == np.arange(kps.shape[0]).reshape((-1,) + (1,) * (src.ndim - 1))).all():
        return kps
    idx = src[..., None, None]
    body = kps[..., :BODY_FEET_133.size, :]
    kps[..., :BODY_FEET_133.size, :] = np.take_along_axis(body, np.broadcast_to(idx, body.shape), axis=0)
    return kps


def to_body20(kps133: np.ndarray, hold_invalid: bool = True) -> np.ndarray:
    """[..., 133, 3] COCO-WholeBody -> [..., 20, 3] official body (pair means, scores averaged).

    For a sequence ([T, 133, 3] or [T, P, 133, 3]; axis 0 is time) with ``hold_invalid`` (the
    official behaviour), a frame whose every body joint has x < 0 or y < 0 takes the previous
    frame's body instead (official: wan/modules/animate/preprocess/pose2d_utils.py,
    load_pose_metas_from_kp2ds_seq); ``hold_invalid=False`` keeps each frame's own body. A single
    frame ([133, 3]) has no previous frame and is converted as it is.
    """
    body = _pair_means(kps133)
    if not hold_invalid or body.ndim < 3 or body.shape[0] < 2:
        return body
    src = held_body_source((body[..., :2].min(axis=-1) < 0).all(axis=-1))
    idx = np.broadcast_to(src[..., None, None], body.shape)
    return np.take_along_axis(body, idx, axis=0)


def left_hand(kps133: np.ndarray) -> np.ndarray:
    return np.asarray(kps133)[..., LEFT_HAND, :]


def right_hand(kps133: np.ndarray) -> np.ndarray:
    return np.asarray(kps133)[..., RIGHT_HAND, :]


def face68(kps133: np.ndarray) -> np.ndarray:
    """[..., 68, 3] face landmarks."""
    return np.asarray(kps133)[..., FACE, :]
