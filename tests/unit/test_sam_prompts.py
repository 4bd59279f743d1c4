"""SAM2 prompt planning from keypoints and user points."""
from __future__ import annotations

import numpy as np
import pytest

from wan_animate_kit.preprocess import pose_types as P
from wan_animate_kit.preprocess.sam_prompts import (ChunkPrompts, chunk_bounds, keyframe_offsets, keypoint_prompt,
                                                    official_keyframe_offsets, official_keypoint_prompt,
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


def test_plan_chunks_keyframes_first_frame_confident_rule():
    plans = plan_prompts(sequence(850), 850, rule="confident")
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
    plans = plan_prompts(seq, t, keyframes=4, rule="confident")
    assert list(plans[0].frames) == [3, 9, 20, 30]  # 0 -> 3, 10 -> 9 (tie 9/11 -> earlier)
    assert list(plan_prompts(seq2, t, keyframes=4, rule="confident")[0].frames) == [3, 9, 19, 30]
    # no confident point anywhere: the chunk is empty (or seeded from the previous chunk)
    empty = P.PoseSequence(kps * [1, 1, 0], (7,), W, H)
    plans = plan_prompts(empty, 30, chunk_size=10, rule="confident")
    assert [c.frames for c in plans] == [{}, {}, {}]
    assert [c.from_previous for c in plans] == [False, True, True]


def test_user_points_add_and_replace():
    seq = sequence(20)
    pos = '[{"x":150,"y":50},{"x":160,"y":55}]'
    neg = '[{"x":10,"y":10}]'
    for rule, keys in (("confident", [0, 2, 4, 6]), ("official", [0, 2, 4, 6, 8])):
        add = plan_prompts(seq, 20, chunk_size=10, user_positive=pos, user_negative=neg, rule=rule)
        pts, labels = add[0].frames[0]
        assert len(pts) == 11 and labels.tolist() == [1] * 10 + [0]
        assert pts[-1].tolist() == [10, 10] and pts[8].tolist() == [150, 50]
        assert list(add[0].frames) == keys
        rep = plan_prompts(seq, 20, chunk_size=10, user_positive=pos, user_negative=neg, mode="replace", rule=rule)
        assert list(rep[0].frames) == [0]
        pts, labels = rep[0].frames[0]
        assert pts.tolist() == [[150, 50], [160, 55], [10, 10]] and labels.tolist() == [1, 1, 0]
        assert list(rep[1].frames) == keys  # the other chunk keeps its keypoint prompts
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
    with pytest.raises(ValueError, match="rule must be one of official, confident"):
        plan_prompts(seq, 5, rule="strict")


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


# --- the official rule (process_pipepline.py, ProcessPipeline.get_mask) -----------------------------
# Re-statement of the official arithmetic: the keypoints are normalised in place (float32), the
# 20-point body is the mean of COCO-WholeBody pairs, the 8 prompt joints are taken in the official
# order and multiplied by an integer [[W, H]] array, then cast to int32.
_A = [0, 6, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3, 17, 20]
_B = [0, 5, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3, 18, 21]
_OFFICIAL_JOINTS = [0, 1, 2, 5, 8, 11, 10, 13]


def official_body(kps: np.ndarray, w: int, h: int) -> np.ndarray:
    k = np.array(kps, np.float32)
    k[:, 0] /= w
    k[:, 1] /= h
    return (k[_A] + k[_B]) / 2


def official_points(body: np.ndarray, w: int, h: int) -> np.ndarray:
    return (body[_OFFICIAL_JOINTS][:, :2] * np.array([[w, h]])).astype(np.int32)


def official_held_bodies(kps: np.ndarray, w: int, h: int) -> list[np.ndarray]:
    bodies = []
    for t in range(len(kps)):
        body = official_body(kps[t], w, h)
        if body[:, :2].min(axis=1).max() < 0:
            body = bodies[-1]
        bodies.append(body)
    return bodies


def test_official_keyframes_restated():
    for n in range(1, 401):
        step = n // (4 if n > 4 else 1)
        assert official_keyframe_offsets(n) == list(range(0, n, step)), n
    assert official_keyframe_offsets(7) == [0, 1, 2, 3, 4, 5, 6]  # step 1: every frame
    assert official_keyframe_offsets(9) == [0, 2, 4, 6, 8]
    assert official_keyframe_offsets(400) == [0, 100, 200, 300] and official_keyframe_offsets(4) == [0]
    assert official_keyframe_offsets(50) == [0, 12, 24, 36, 48]
    assert official_keyframe_offsets(10, keyframes=2) == [0, 5]
    with pytest.raises(ValueError):
        official_keyframe_offsets(0)


def test_official_points_every_joint_whatever_score_or_place_truncated():
    rng = np.random.default_rng(5)
    for w, h in ((1280, 720), (720, 1280), (832, 480), (W, H)):
        for _ in range(50):
            kp = np.zeros((133, 3), np.float32)
            kp[:23, 0] = rng.uniform(-0.3 * w, 1.3 * w, 23)
            kp[:23, 1] = rng.uniform(-0.3 * h, 1.3 * h, 23)
            kp[:23, 2] = rng.uniform(0, 1, 23)
            # whole pixels and halves, where the float32 normalisation decides the truncation
            kp[[0, 5, 6, 12], 0] = rng.integers(-50, w + 50, 4)
            kp[[11, 15, 16], 1] = rng.integers(-50, h + 50, 3) + 0.5 * rng.integers(0, 2, 3)
            got = official_keypoint_prompt(kp, w, h)
            want = official_points(official_body(kp, w, h), w, h)
            np.testing.assert_array_equal(got, want.astype(np.float32))
    kp = person(conf=0.0)
    kp[P.R_ANKLE] = (92.9, 130.7, 0.0)  # below the 200x100 frame, no confidence: still a prompt
    kp[P.L_SHOULDER, 0] = -3.7  # truncated toward zero
    pts = official_keypoint_prompt(kp, W, H)
    # 90 / 200 and 95 / 100 in float32 times the size fall just below 90 and 95: the official int cast
    # gives 89 and 94 (worked out by hand in float32)
    assert pts.tolist() == [[100, 10], [43, 30], [89, 30], [-3, 30], [92, 60], [108, 60], [92, 130], [108, 94]]


def official_case(t: int = 23):
    """A walk whose body fails (every point at negative x) on frames 4, 9, 10, 20; low scores on 6."""
    rng = np.random.default_rng(11)
    kps = np.repeat(person()[None], t, axis=0)
    kps[:, :23, 0] += np.arange(t)[:, None] * 3.37
    kps[:, :23, :2] += rng.uniform(-2, 2, (t, 23, 2)).astype(np.float32)
    for f in (4, 9, 10, 20):
        if f < t:
            kps[f, :23, 0] -= 400
    kps[6, :, 2] = 0.05
    return kps


def test_plan_prompts_default_is_the_official_rule_with_held_bodies():
    kps = official_case()
    t = len(kps)
    det = np.ones((t, 1), bool)
    det[7] = False  # a frame filled in by the extraction: the official has a pose there, used as it is
    seq = P.PoseSequence(kps[:, None], (7,), W, H, detected=det)
    bodies = official_held_bodies(kps, W, H)
    plans = plan_prompts(seq, t, chunk_size=10)
    assert [(c.start, c.stop) for c in plans] == [(0, 10), (10, 20), (20, 23)]
    for c in plans:
        n = c.stop - c.start
        assert list(c.frames) == list(range(0, n, n // (4 if n > 4 else 1)))
        for k, (pts, labels) in c.frames.items():
            want = official_points(bodies[c.start + k], W, H)
            np.testing.assert_array_equal(pts, want.astype(np.float32))
            assert labels.tolist() == [1] * 8
        assert not c.from_previous
    # frame 4 failed: prompted with frame 3's body; frames 9 and 10 with frame 8's, across the chunk
    # border (the hold runs over the whole video before the chunks); frame 20 with frame 19's
    np.testing.assert_array_equal(plans[0].frames[4][0], official_points(official_body(kps[3], W, H), W, H))
    np.testing.assert_array_equal(plans[1].frames[0][0], official_points(official_body(kps[8], W, H), W, H))
    np.testing.assert_array_equal(plans[2].frames[0][0], official_points(official_body(kps[19], W, H), W, H))
    assert len(plans[0].frames[6][0]) == 8  # scores of 0.05 do not matter
    # the pack's rule differs: confident, in-frame, detected points only, exactly 4 keyframes
    own = plan_prompts(seq, t, chunk_size=10, rule="confident")
    assert list(own[0].frames) == [0, 2, 3, 5] and list(own[2].frames) == [1]  # 4 -> 3, 6 -> 5, 20 -> 21
    assert [len(p) for p, _ in own[0].frames.values()] == [8, 8, 8, 8]


def test_official_rule_skips_frames_without_any_keypoint():
    kps = official_case(12)
    kps[0] = 0.0  # the subject was neither found nor filled in: nothing to prompt with
    kps[8:, :, 2] = 0.0
    seq = P.PoseSequence(kps[:, None], (7,), W, H)
    plans = plan_prompts(seq, 12, chunk_size=8)
    assert list(plans[0].frames) == [2, 4, 6] and plans[1].frames == {} and plans[1].from_previous
    beyond = plan_prompts(P.PoseSequence(kps[:4, None], (7,), W, H), 12, chunk_size=8)
    assert list(beyond[0].frames) == [2] and beyond[1].frames == {}  # frames past the poses: none
