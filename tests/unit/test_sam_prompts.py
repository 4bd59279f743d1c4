"""SAM2 prompt planning from keypoints and user points."""
from __future__ import annotations

import numpy as np
import pytest

from wan_animate_kit.preprocess import pose_types as P
from wan_animate_kit.preprocess.sam_prompts import (ChunkPrompts, chunk_bounds, keyframe_offsets, keypoint_prompt,
                                                    parse_boxes_json, parse_points_json, parse_points_store,
                                                    plan_prompts)

W, H = 200, 100


def person(conf=0.9):
    kp = np.zeros((133, 3), np.float32)
    for idx, (x, y) in {P.NOSE: (100, 10), P.L_SHOULDER: (110, 30), P.R_SHOULDER: (90, 30),
                        P.L_HIP: (108, 60), P.R_HIP: (92, 60), P.L_ANKLE: (108, 95), P.R_ANKLE: (92, 95)}.items():
        kp[idx] = (x, y, conf)
    return kp


def sequence(t, conf=0.9, detected=None):
    kps = np.repeat(person(conf)[None, None], t, axis=0)
    return P.PoseSequence(kps, (7,), W, H, detected=detected)


def test_keypoint_prompt_filters_confidence_and_frame():
    kp = person()
    pts = keypoint_prompt(kp, W, H)
    assert len(pts) == 8
    assert pts[1].tolist() == [100, 30]  # neck = shoulder midpoint, in official order after the nose
    kp[P.L_ANKLE, 2] = 0.2  # not confident
    kp[P.R_ANKLE] = (92, 130, 0.99)  # confident but below the frame
    pts = keypoint_prompt(kp, W, H)
    assert len(pts) == 6 and not np.isin(95, pts[:, 1]) and (pts[:, 1] < H).all()
    kp[P.R_SHOULDER, 2] = 0.1  # neck needs both shoulders
    assert len(keypoint_prompt(kp, W, H)) == 4


def test_keyframes_and_chunks():
    assert keyframe_offsets(400) == [0, 100, 200, 300]
    assert keyframe_offsets(10) == [0, 2, 4, 6]
    assert keyframe_offsets(4) == [0] and keyframe_offsets(1) == [0]
    assert chunk_bounds(1000) == [(0, 400), (400, 800), (800, 1000)]
    assert chunk_bounds(400) == [(0, 400)] and chunk_bounds(401) == [(0, 400), (400, 401)]


def test_plan_chunks_keyframes_first_frame():
    plans = plan_prompts(sequence(850), 850)
    assert [(c.start, c.stop) for c in plans] == [(0, 400), (400, 800), (800, 850)]
    assert list(plans[0].frames) == [0, 100, 200, 300]
    assert list(plans[2].frames) == [0, 12, 24, 36]
    pts, labels = plans[1].frames[0]
    assert pts.shape == (8, 2) and labels.tolist() == [1] * 8
    assert not any(c.from_previous for c in plans)


def test_keyframe_without_points_moves_to_nearest():
    t = 40
    det = np.ones((t, 1), bool)
    seq = sequence(t)
    kps = seq.keypoints.copy()
    kps[0:3, 0, :, 2] = 0.1  # frames 0-2: nothing confident
    kps[10, 0, :, 2] = 0.0  # keyframe 10 empty
    seq = P.PoseSequence(kps, (7,), W, H, detected=det)
    det2 = det.copy()
    det2[20] = False  # keyframe 20 only a held pose, not a detection
    seq2 = P.PoseSequence(kps, (7,), W, H, detected=det2)
    plans = plan_prompts(seq, t, keyframes=4)
    assert list(plans[0].frames) == [3, 9, 20, 30]  # 0 -> 3, 10 -> 9 (tie 9/11 -> earlier)
    assert list(plan_prompts(seq2, t, keyframes=4)[0].frames) == [3, 9, 19, 30]
    # no confident point anywhere: the chunk is empty (or seeded from the previous chunk)
    empty = P.PoseSequence(kps * [1, 1, 0], (7,), W, H)
    plans = plan_prompts(empty, 30, chunk_size=10)
    assert [c.frames for c in plans] == [{}, {}, {}]
    assert [c.from_previous for c in plans] == [False, True, True]


def test_user_points_add_and_replace():
    seq = sequence(20)
    pos = '[{"x":150,"y":50},{"x":160,"y":55}]'
    neg = '[{"x":10,"y":10}]'
    add = plan_prompts(seq, 20, chunk_size=10, user_positive=pos, user_negative=neg)
    pts, labels = add[0].frames[0]
    assert len(pts) == 11 and labels.tolist() == [1] * 10 + [0]
    assert pts[-1].tolist() == [10, 10] and pts[8].tolist() == [150, 50]
    assert list(add[0].frames) == [0, 2, 4, 6]
    rep = plan_prompts(seq, 20, chunk_size=10, user_positive=pos, user_negative=neg, mode="replace")
    assert list(rep[0].frames) == [0]
    pts, labels = rep[0].frames[0]
    assert pts.tolist() == [[150, 50], [160, 55], [10, 10]] and labels.tolist() == [1, 1, 0]
    assert len(rep[1].frames) == 4  # the other chunk keeps its keypoint prompts
    # user frame inside a later chunk, no poses at all
    only = plan_prompts(None, 20, chunk_size=10, user_positive=pos, mode="replace", user_frame=13,
                        width=W, height=H, user_box="[[1,2,30,40]]", object_points="[[50,50]]")
    assert only[0].frames == {} and not only[0].from_previous
    assert list(only[1].frames) == [3] and only[1].box == (1, 2, 30, 40) and only[1].box_frame == 3
    assert only[1].object_points[3][0].tolist() == [[50, 50]]


def test_user_point_errors():
    seq = sequence(5)
    with pytest.raises(ValueError, match="outside the 200x100 canvas"):
        plan_prompts(seq, 5, user_positive='[{"x":250,"y":50}]')
    with pytest.raises(ValueError, match="replace"):
        plan_prompts(seq, 5, mode="replace")
    with pytest.raises(ValueError, match="mode"):
        plan_prompts(seq, 5, mode="swap")
    with pytest.raises(ValueError, match="width and height"):
        plan_prompts(None, 5)


def test_parse_points_formats():
    assert parse_points_json('[{"x":256,"y":128}]').tolist() == [[256, 128]]
    assert parse_points_json("[[1, 2], [3.5, 4]]").tolist() == [[1, 2], [3.5, 4]]
    assert parse_points_json('{"x": 1, "y": 2}').tolist() == [[1, 2]]
    assert parse_points_json("[5, 6]").tolist() == [[5, 6]]
    for empty in ("", "  ", "[]", "[{}]", None):
        assert parse_points_json(empty).shape == (0, 2)
    assert parse_points_json(np.array([[1, 2]])).dtype == np.float32
    pos, neg = parse_points_store('{"positive":[{"x":256,"y":256}],"negative":[{"x":0,"y":0}]}')
    assert pos.tolist() == [[256, 256]] and neg.tolist() == [[0, 0]]


@pytest.mark.parametrize("bad,msg", [("[{x:1}]", "not valid JSON"), ('[{"x":1}]', "'x' and 'y'"),
                                     ('[{"x":"a","y":2}]', "must be a number"), ("[[1,2,3]]", "point 0"),
                                     ('"abc"', "JSON list"), ('{"positive": []}', "parse_points_store")])
def test_parse_points_errors(bad, msg):
    with pytest.raises(ValueError, match=msg):
        parse_points_json(bad)


def test_parse_boxes():
    assert parse_boxes_json("[[1,2,3,4]]").tolist() == [[1, 2, 3, 4]]
    assert parse_boxes_json("[1,2,3,4]").tolist() == [[1, 2, 3, 4]]
    assert parse_boxes_json("[1,2,3,4]", fmt="xywh").tolist() == [[1, 2, 4, 6]]
    assert parse_boxes_json('[{"x1":1,"y1":2,"x2":3,"y2":4}]').tolist() == [[1, 2, 3, 4]]
    assert parse_boxes_json('{"x":1,"y":2,"width":3,"height":4}').tolist() == [[1, 2, 4, 6]]
    assert parse_boxes_json("[{}]").shape == (0, 4)
    with pytest.raises(ValueError, match="inverted"):
        parse_boxes_json("[[5,5,1,1]]")
    with pytest.raises(ValueError, match="keys"):
        parse_boxes_json('[{"a":1}]')


def test_chunk_prompts_dataclass():
    c = ChunkPrompts(10, 20)
    assert c.num_frames == 10 and not c.has_prompts
