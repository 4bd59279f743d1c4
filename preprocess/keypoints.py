"""Keypoint formats: COCO-WholeBody 133 to the official 20-point body ("AAPose") and parts.

The 20-point body (wan-animate-reference.md §3.3): each point is the mean of a pair of COCO-WholeBody
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


def to_body20(kps133: np.ndarray) -> np.ndarray:
    """[..., 133, 3] COCO-WholeBody -> [..., 20, 3] official body (pair means, scores averaged)."""
    kps133 = np.asarray(kps133, dtype=np.float32)
    return (kps133[..., _PAIR_A, :] + kps133[..., _PAIR_B, :]) * 0.5


def left_hand(kps133: np.ndarray) -> np.ndarray:
    return np.asarray(kps133)[..., LEFT_HAND, :]


def right_hand(kps133: np.ndarray) -> np.ndarray:
    return np.asarray(kps133)[..., RIGHT_HAND, :]


def face68(kps133: np.ndarray) -> np.ndarray:
    """[..., 68, 3] face landmarks."""
    return np.asarray(kps133)[..., FACE, :]
