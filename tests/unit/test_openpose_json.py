"""PoseSequence <-> POSE_KEYPOINT (OpenPose JSON) conversion."""
from __future__ import annotations

import json

import numpy as np
import pytest

from wan_animate_kit.preprocess import pose_types as pt
from wan_animate_kit.preprocess.openpose_json import (COCO18_FROM_WHOLEBODY, from_pose_keypoint,
                                                      person_to_openpose, to_pose_keypoint)
from wan_animate_kit.preprocess.pose_types import PoseSequence

W, H = 640, 480


def random_sequence(t_len: int = 4, people: int = 2, seed: int = 0) -> PoseSequence:
    rng = np.random.default_rng(seed)
    kps = np.zeros((t_len, people, 133, 3), np.float32)
    kps[..., 0] = rng.uniform(5, W - 5, kps.shape[:3])
    kps[..., 1] = rng.uniform(5, H - 5, kps.shape[:3])
    kps[..., 2] = rng.uniform(0.05, 1.0, kps.shape[:3])
    missing = rng.random(kps.shape[:3]) < 0.1
    kps[missing] = 0.0
    if t_len > 2 and people > 1:
        kps[1, 1] = 0.0                   # person 1 absent in frame 1
        kps[2, 0, pt.LEFT_HAND] = 0.0     # a hand not seen
    return PoseSequence(kps, tuple(range(5, 5 + 4 * people, 4)), W, H, fps=24.0)


def kept_points() -> list[int]:
    """COCO-WholeBody points that POSE_KEYPOINT carries (body 17, face, hands)."""
    return list(range(17)) + list(range(23, 133))


def test_round_trip_with_extras_is_exact():
    seq = random_sequence()
    data = json.loads(json.dumps(to_pose_keypoint(seq)))   # through real JSON text
    assert len(data) == 4 and data[0]["canvas_width"] == W and data[0]["canvas_height"] == H
    assert [len(f["people"]) for f in data] == [2, 1, 2, 2]
    back = from_pose_keypoint(data, fps=24.0)
    assert back.track_ids == (5, 9) and (back.width, back.height) == (W, H)
    np.testing.assert_allclose(back.keypoints, seq.keypoints, atol=1e-4)   # feet too, via the extra key
    assert back.detected.tolist() == seq.detected.tolist()


def test_round_trip_plain_format_loses_only_feet():
    seq = random_sequence(seed=1)
    data = to_pose_keypoint(seq, extras=False)
    assert "person_id" not in data[0]["people"][0] and "foot_keypoints_2d" not in data[0]["people"][0]
    back = from_pose_keypoint(data)
    keep = kept_points()
    # frame 1 lists only person 0; people go by list position without ids
    np.testing.assert_allclose(back.keypoints[:, :, keep], seq.keypoints[:, :, keep], atol=1e-4)
    assert not back.keypoints[:, :, pt.FEET].any()


def test_export_layout_neck_eyes_and_real_confidences():
    k = random_sequence(1, 1, seed=2).keypoints[0, 0]
    k[pt.L_SHOULDER] = (100, 200, 0.8)
    k[pt.R_SHOULDER] = (60, 210, 0.6)
    p = person_to_openpose(k)
    body = np.array(p["pose_keypoints_2d"]).reshape(18, 3)
    np.testing.assert_allclose(body[1], [80, 205, 0.7], rtol=1e-6)        # neck = shoulder midpoint
    np.testing.assert_allclose(body[2], k[pt.R_SHOULDER])                   # COCO-18 order: r-shoulder 3rd
    np.testing.assert_allclose(body[15], k[pt.L_EYE])                       # l-eye at 15
    for i, src in enumerate(COCO18_FROM_WHOLEBODY):
        if src >= 0 and k[src, 2] > 0:
            np.testing.assert_allclose(body[i], k[src])
    face = np.array(p["face_keypoints_2d"]).reshape(70, 3)
    np.testing.assert_allclose(face[:68][k[pt.FACE, 2] > 0], k[pt.FACE][k[pt.FACE, 2] > 0])
    np.testing.assert_allclose(face[68], k[pt.R_EYE] if k[pt.R_EYE, 2] > 0 else 0)
    assert len(p["hand_left_keypoints_2d"]) == 63
    confs = body[:, 2][body[:, 2] > 0]
    assert len(np.unique(confs)) > 3       # real confidences, not 0/1
    k[pt.L_SHOULDER, 2] = 0
    assert person_to_openpose(k)["pose_keypoints_2d"][3:6] == [0.0, 0.0, 0.0]   # no neck without both


def test_import_flat_nested_none_and_controlnet_aux_style():
    body = [[100 + i, 50 + i, 1.0] for i in range(18)]
    body[3] = [0, 0, 0]
    frame_flat = {"people": [{"pose_keypoints_2d": [v for p in body for v in p],
                              "face_keypoints_2d": None, "hand_left_keypoints_2d": None,
                              "hand_right_keypoints_2d": [1.0, 2.0, 1.0] * 21}],
                  "canvas_width": 320, "canvas_height": 240}
    frame_nested = {"people": [{"pose_keypoints_2d": body, "face_keypoints_2d": [[5, 6, 0.5]] * 70,
                                "hand_left_keypoints_2d": None, "hand_right_keypoints_2d": None}],
                    "canvas_width": 320, "canvas_height": 240}
    seq = from_pose_keypoint(json.dumps([frame_flat, frame_nested]))
    assert seq.keypoints.shape == (2, 1, 133, 3) and (seq.width, seq.height) == (320, 240)
    k0, k1 = seq.keypoints[0, 0], seq.keypoints[1, 0]
    np.testing.assert_allclose(k0[pt.NOSE], [100, 50, 1])
    np.testing.assert_allclose(k0[pt.R_SHOULDER], [102, 52, 1])
    assert not k0[pt.R_ELBOW].any()                        # (0, 0, 0) stays missing
    np.testing.assert_allclose(k0[pt.L_EAR], [117, 67, 1])
    assert not k0[pt.FACE].any() and not k0[pt.LEFT_HAND].any()
    np.testing.assert_allclose(k0[pt.RIGHT_HAND, :2], np.tile([1.0, 2.0], (21, 1)))
    np.testing.assert_allclose(k0[:17], k1[:17])           # nested body reads the same as flat
    np.testing.assert_allclose(k1[pt.FACE], np.tile([5, 6, 0.5], (68, 1)))
    single = from_pose_keypoint(frame_flat)                # one dict is one frame
    assert single.num_frames == 1


def test_import_normalised_coordinates_and_body25():
    body25 = np.zeros((25, 3))
    body25[0] = (0.5, 0.25, 0.9)       # nose
    body25[8] = (0.5, 0.6, 0.9)        # mid-hip: dropped
    body25[12] = (0.6, 0.6, 0.8)       # l-hip
    body25[19] = (0.55, 0.95, 0.7)     # l-big-toe
    frame = {"people": [{"pose_keypoints_2d": body25.reshape(-1).tolist()}],
             "canvas_width": 800, "canvas_height": 400}
    seq = from_pose_keypoint([frame])
    k = seq.keypoints[0, 0]
    np.testing.assert_allclose(k[pt.NOSE], [400, 100, 0.9], rtol=1e-6)
    np.testing.assert_allclose(k[pt.L_HIP], [480, 240, 0.8], rtol=1e-6)
    np.testing.assert_allclose(k[pt.L_BIG_TOE], [440, 380, 0.7], rtol=1e-6)
    assert int((k[:, 2] > 0).sum()) == 3


def test_frames_on_another_canvas_are_rescaled_and_people_by_id():
    p = {"pose_keypoints_2d": [10.0, 20.0, 0.9] + [0.0] * 51, "person_id": 7}
    q = {"pose_keypoints_2d": [30.0, 40.0, 0.5] + [0.0] * 51, "person_id": 3}
    frames = [{"people": [p, q], "canvas_width": 100, "canvas_height": 100},
              {"people": [q], "canvas_width": 200, "canvas_height": 200}]
    seq = from_pose_keypoint(frames)
    assert seq.track_ids == (7, 3)
    np.testing.assert_allclose(seq.keypoints[1, 1, 0], [15, 20, 0.5])     # halved to the first canvas
    assert not seq.detected[1, 0] and seq.detected[1, 1]


def test_import_errors():
    with pytest.raises(ValueError, match="canvas"):
        from_pose_keypoint([{"people": []}])
    assert from_pose_keypoint([{"people": []}], width=64, height=32).num_people == 0
    with pytest.raises(ValueError, match="18"):
        from_pose_keypoint([{"people": [{"pose_keypoints_2d": [1.0, 2.0, 1.0] * 17}],
                             "canvas_width": 10, "canvas_height": 10}])
    with pytest.raises(ValueError, match="triples"):
        from_pose_keypoint([{"people": [{"pose_keypoints_2d": [1.0, 2.0]}],
                             "canvas_width": 10, "canvas_height": 10}])
    with pytest.raises(ValueError, match="list of frame dicts"):
        from_pose_keypoint(42)
    with pytest.raises(ValueError, match="people"):
        to_pose_keypoint(random_sequence(), people="everyone")
