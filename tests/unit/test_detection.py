"""Person-detector input preparation and YOLOv10 end-to-end output parsing."""
from __future__ import annotations

import numpy as np
import pytest

from wan_animate_kit.preprocess.detection import box_iou, nms, parse_detections, preprocess_for_detector


def _rows(*boxes):
    rows = np.zeros((300, 6), dtype=np.float32)
    for i, b in enumerate(boxes):
        rows[i] = b
    return rows


def test_preprocess_is_plain_resize_rgb_nchw_unit_range():
    frame = np.zeros((100, 300, 3), dtype=np.uint8)
    frame[:, :150] = (255, 0, 0)   # left half red
    frame[:, 150:] = (0, 0, 204)   # right half blue
    x = preprocess_for_detector(frame[None])
    assert x.shape == (1, 3, 640, 640) and x.dtype == np.float32
    # no letterbox: the top and bottom rows carry the image, not black bars
    assert x[0, 0, 0, 10] == pytest.approx(1.0) and x[0, 0, 639, 10] == pytest.approx(1.0)
    assert x[0, 2, 0, 630] == pytest.approx(0.8) and x[0, 0, 0, 630] == pytest.approx(0.0)
    # the left half of the 640 input is red: the width was stretched, not padded
    assert x[0, 0, 320, 300] == pytest.approx(1.0) and x[0, 2, 320, 340] == pytest.approx(0.8)


def test_preprocess_accepts_list_of_frames_of_different_sizes():
    a = np.full((50, 60, 3), 51, dtype=np.uint8)
    b = np.full((70, 30, 3), 102, dtype=np.uint8)
    x = preprocess_for_detector([a, b])
    assert x.shape == (2, 3, 640, 640)
    np.testing.assert_allclose(x[0], 0.2, atol=1e-6)
    np.testing.assert_allclose(x[1], 0.4, atol=1e-6)


@pytest.mark.parametrize("bad", [np.zeros((2, 10, 10, 3), np.float32), np.zeros((10, 10), np.uint8),
                                 np.zeros((1, 10, 10, 4), np.uint8)])
def test_preprocess_rejects_bad_frames(bad):
    with pytest.raises(ValueError, match="uint8"):
        preprocess_for_detector(bad)


def test_parse_filters_confidence_and_class_and_scales():
    rows = _rows([64, 64, 128, 192, 0.9, 0],      # kept
                 [300, 300, 400, 500, 0.05, 0],   # kept: at the threshold
                 [500, 10, 600, 100, 0.049, 0],   # below the threshold
                 [10, 400, 200, 600, 0.95, 2])    # not a person
    out = parse_detections(rows, image_width=1280, image_height=720)
    assert out.shape == (2, 5) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], [128, 72, 256, 216, 0.9], rtol=1e-6)
    np.testing.assert_allclose(out[1], [600, 337.5, 800, 562.5, 0.05], rtol=1e-6)


def test_parse_accepts_batched_shape_and_clips_to_image():
    rows = _rows([-20, 600, 100, 700, 0.8, 0])[None]  # [1, 300, 6]
    out = parse_detections(rows, image_width=320, image_height=320)
    np.testing.assert_allclose(out[0, :4], [0, 300, 50, 320])


def test_parse_drops_boxes_empty_after_clipping():
    rows = _rows([650, 10, 700, 100, 0.9, 0])
    assert parse_detections(rows, 640, 640).shape == (0, 5)


def test_parse_nms_at_iou_half():
    base = [0, 0, 100, 100]
    heavy = [0, 0, 100, 80, 0.7, 0]       # IoU 0.8 with base: suppressed
    light = [0, 0, 100, 40, 0.6, 0]       # IoU 0.4 with base: kept
    out = parse_detections(_rows(base + [0.9, 0], heavy, light), 640, 640)
    np.testing.assert_allclose(out[:, 4], [0.9, 0.6], rtol=1e-6)
    np.testing.assert_allclose(out[1, :4], [0, 0, 100, 40])


def test_parse_sorted_by_score_and_empty_output():
    out = parse_detections(_rows([0, 0, 10, 10, 0.3, 0], [50, 50, 60, 60, 0.6, 0]), 640, 640)
    assert list(out[:, 4]) == pytest.approx([0.6, 0.3])
    assert parse_detections(np.zeros((300, 6), np.float32), 640, 480).shape == (0, 5)


def test_parse_rejects_wrong_shape():
    with pytest.raises(ValueError, match="300, 6"):
        parse_detections(np.zeros((1, 84, 8400), np.float32), 640, 640)


def test_nms_matches_brute_force():
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 200, (40, 2))
    wh = rng.uniform(20, 80, (40, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1)
    scores = rng.uniform(0, 1, 40)
    keep = nms(boxes, scores, 0.5)
    expected = []
    for i in np.argsort(-scores):
        if all(box_iou(boxes[i], boxes[[j]])[0] <= 0.5 for j in expected):
            expected.append(int(i))
    assert list(keep) == expected
    assert len(keep) < 40  # the case really suppresses boxes
