"""Face boxes (official and smoothed square) and padded 512x512 face crops."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from wan_animate_kit.preprocess import pose_types as pt
from wan_animate_kit.preprocess.face import crop_faces, crop_faces_official, face_boxes, official_face_boxes

W, H = 1280, 720


def face_kps(t_len: int, cx, cy, w: float = 100.0, h: float = 120.0, noise: float = 0.0,
             conf: float = 0.8, seed: int = 0) -> np.ndarray:
    """[T, 133, 3] with an elliptical ring of 68 landmarks (plus nose/eyes/ears) around (cx, cy)."""
    rng = np.random.default_rng(seed)
    cx = np.broadcast_to(np.asarray(cx, np.float64), (t_len,))
    cy = np.broadcast_to(np.asarray(cy, np.float64), (t_len,))
    k = np.zeros((t_len, 133, 3), np.float32)
    ang = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    k[:, pt.FACE, 0] = cx[:, None] + w / 2 * np.cos(ang)
    k[:, pt.FACE, 1] = cy[:, None] + h / 2 * np.sin(ang)
    k[:, pt.FACE, 2] = conf
    k[:, pt.FACE, :2] += rng.normal(0, noise, (t_len, 68, 2)) if noise else 0
    for i, (dx, dy) in zip((pt.NOSE, pt.L_EYE, pt.R_EYE, pt.L_EAR, pt.R_EAR),
                           [(0, 0), (20, -15), (-20, -15), (50, -5), (-50, -5)]):
        k[:, i] = np.stack([cx + dx, cy + dy, np.full(t_len, 0.9)], axis=1)
    return k


def official_crop_reference(frame: np.ndarray, kps133: np.ndarray, size: int = 512) -> np.ndarray:
    """Re-statement of the official face crop (process_pipepline.py + utils.get_face_bboxes, scale 1.3).

    Keypoints go through the official meta: float32 division by the image size, the 'keypoints_face'
    slice 22:91, its first point dropped and x, y multiplied back by (w, h). Raises where the official
    code raises (NaN -> int(), empty region -> cv2.resize)."""
    h, w = frame.shape[:2]
    k = np.array(kps133, np.float32).copy()
    k[:, 0] /= w
    k[:, 1] /= h
    keypoints_face = k[22:91]
    pts = keypoints_face[:, :2].copy()[1:] * (w, h)
    lo, hi = np.min(pts, axis=0), np.max(pts, axis=0)
    fw, fh = hi[0] - lo[0], hi[1] - lo[1]
    area = fw * fh * 1.3
    dw = (np.sqrt(area * (fw / fh)) - fw) / 2
    dh = (np.sqrt(area * (fh / fw)) - fh) / 4
    x1, x2 = int(max(lo[0] - dw, 0)), int(min(hi[0] + dw, w))
    y1, y2 = int(max(lo[1] - 3 * dh, 0)), int(min(hi[1] + dh, h))
    return cv2.resize(frame[y1:y2, x1:x2], (size, size))


def _official_ok(frame, kps133) -> bool:
    try:
        with np.errstate(all="ignore"):
            official_crop_reference(frame, kps133, 8)
        return True
    except (ValueError, cv2.error):
        return False


def random_faces(rng, t_len: int, w: int, h: int) -> np.ndarray:
    """Random landmark clouds of every size and place, many touching or past the image border."""
    k = np.zeros((t_len, 133, 3), np.float32)
    for t in range(t_len):
        cx, cy = rng.uniform(-0.2 * w, 1.2 * w), rng.uniform(-0.2 * h, 1.2 * h)
        fw, fh = rng.uniform(2, 0.6 * w), rng.uniform(2, 0.6 * h)
        k[t, pt.FACE, 0] = cx + rng.uniform(-fw / 2, fw / 2, 68)
        k[t, pt.FACE, 1] = cy + rng.uniform(-fh / 2, fh / 2, 68)
        k[t, pt.FACE, 2] = rng.uniform(0, 1, 68)   # confidences are ignored by the official rule
        k[t, :23] = rng.uniform(0, max(w, h), (23, 3))  # body/feet (index 22 sits in the official slice)
    return k


@pytest.mark.parametrize("w,h,seed", [(W, H, 0), (832, 480, 1), (97, 131, 2)])
def test_official_crop_is_pixel_equal_to_the_reference(w, h, seed):
    rng = np.random.default_rng(seed)
    t_len = 40
    kps = random_faces(rng, t_len, w, h)
    kps[0, pt.FACE, 0] = np.linspace(-30, 50, 68)   # over the left/top edge
    kps[0, pt.FACE, 1] = np.linspace(-20, 60, 68)
    kps[1, pt.FACE, 0] = np.linspace(w - 40, w + 30, 68)   # over the right/bottom edge
    kps[1, pt.FACE, 1] = np.linspace(h - 50, h + 25, 68)
    kps[2, pt.FACE, :2] = kps[1, pt.FACE, :2] - [w + 60, 0]   # entirely left of the image: negative end
    kps[3, pt.FACE, 0] = np.linspace(0, w, 68)   # the whole image
    kps[3, pt.FACE, 1] = np.linspace(0, h, 68)
    kps[4, pt.FACE, 0] = np.round(rng.uniform(0.3, 0.6, 68) * w) + 0.5   # half pixels
    kps[4, pt.FACE, 1] = np.round(rng.uniform(0.3, 0.6, 68) * h) + 0.5
    kps[5, pt.FACE, 0] = 10.2 + rng.uniform(0, 0.6, 68)   # within one pixel column: empty region
    kps[5, pt.FACE, 1] = 20.0 + rng.uniform(0, 30, 68)
    kps[6, pt.FACE, 0] = 10.2 + rng.uniform(0, 1.5, 68)   # a box one or two pixels wide
    kps[6, pt.FACE, 1] = 20.7 + rng.uniform(0, 1.2, 68)
    kps[7, pt.FACE, 0] = w                                 # a vertical line on the right edge: no width
    kps[7, pt.FACE, 1] = rng.uniform(0, h, 68)
    kps[8, pt.FACE, :2] = [w / 3, h / 3]                   # one point: no box at all
    kps[9, pt.FACE, 0] = rng.uniform(w - 0.5, w, 68)       # a sliver at the right edge
    kps[9, pt.FACE, 1] = rng.uniform(0, h, 68)
    frames = rng.integers(0, 256, (t_len, h, w, 3), dtype=np.uint8)
    with np.errstate(all="ignore"):
        ok = np.array([_official_ok(frames[t], kps[t]) for t in range(t_len)])
    assert ok[:5].all() and ok[6] and not ok[[5, 7, 8]].any() and ok.sum() >= 28
    boxes, low = face_boxes(kps, w, h, mode="official")
    crops = crop_faces_official(frames, boxes, size=512)
    assert crops.dtype == np.uint8 and crops.shape == (t_len, 512, 512, 3)
    for t in np.flatnonzero(ok):
        assert np.array_equal(crops[t], official_crop_reference(frames[t], kps[t])), t
    assert not (set(np.flatnonzero(~ok).tolist()) - set(low))   # frames without an official crop are reported


def test_official_box_numbers():
    kps = np.zeros((1, 133, 3), np.float32)
    kps[0, pt.FACE, 0] = np.linspace(100, 200, 68)
    kps[0, pt.FACE, 1] = np.linspace(100, 220, 68)
    boxes, low = face_boxes(kps, W, H, mode="official")
    g = math.sqrt(1.3)
    dw, dh = (100 * g - 100) / 2, (120 * g - 120) / 4
    want = [math.floor(100 - dw), math.floor(100 - 3 * dh), math.floor(200 + dw), math.floor(220 + dh)]
    assert boxes.tolist() == [want] and boxes.dtype == np.float32
    assert low == [0]   # confidence 0: reported, but the official rule uses the box anyway
    # the official slicing: the box is clipped, an end left of the image counts from the right
    raw, usable = official_face_boxes(kps[:, pt.FACE] - [300, 0, 0], W, H)
    assert usable[0] and raw[0].tolist() == [0, want[1], W + int(200 + dw - 300), want[3]]


def test_official_box_sees_the_float32_normalised_landmarks():
    """The official meta stores x / w in float32; multiplied back the left edge here is 750.00001, not
    749.99998 as with the raw pixel coordinates."""
    kps = np.zeros((1, 133, 3), np.float32)
    kps[0, pt.FACE, 0] = np.linspace(759.9741821289062, 902.2845458984375, 68).astype(np.float32)
    kps[0, pt.FACE, 1] = np.linspace(178.3238067626953, 424.1578369140625, 68).astype(np.float32)
    kps[0, pt.FACE.start, :2] = [759.9741821289062, 178.3238067626953]
    kps[0, pt.FACE.stop - 1, :2] = [902.2845458984375, 424.1578369140625]
    boxes, _ = face_boxes(kps, W, H, mode="official")
    assert boxes[0].tolist() == [750, 152, 912, 432]
    frame = np.random.default_rng(3).integers(0, 256, (H, W, 3), dtype=np.uint8)
    assert np.array_equal(crop_faces_official(frame[None], boxes)[0], official_crop_reference(frame, kps[0]))


def test_official_boxes_without_a_crop_take_the_nearest_frame():
    kps = np.zeros((6, 133, 3), np.float32)
    for t in range(6):
        kps[t, pt.FACE, 0] = np.linspace(100, 200, 68) + 10 * t
        kps[t, pt.FACE, 1] = np.linspace(100, 220, 68)
    kps[0, pt.FACE, :2] = 0.0                      # no face: all zeros (NaN box officially)
    kps[2, pt.FACE, 1] = 150.0                     # a flat line: no height
    kps[3, pt.FACE, 0] = np.linspace(W + 10, W + 90, 68)   # right of the image: empty region
    boxes, usable = official_face_boxes(kps[:, pt.FACE], W, H)
    assert usable.tolist() == [False, True, False, False, True, True]
    held, low = face_boxes(kps, W, H, mode="official")
    assert set(low) >= {0, 2, 3}
    np.testing.assert_array_equal(held[[0, 2, 3]], boxes[[1, 1, 4]].astype(np.float32))   # tie -> earlier
    np.testing.assert_array_equal(held[[1, 4, 5]], boxes[[1, 4, 5]].astype(np.float32))
    with pytest.raises(ValueError, match="usable face box"):
        face_boxes(np.zeros((3, 133, 3), np.float32), W, H, mode="official")
    with pytest.raises(ValueError, match="whole pixels"):
        crop_faces_official(np.zeros((1, 10, 10, 3), np.uint8), np.array([[0.5, 0, 5, 5]]))
    with pytest.raises(ValueError, match="outside"):
        crop_faces_official(np.zeros((1, 10, 10, 3), np.uint8), np.array([[0, 0, 11, 5]]))
    with pytest.raises(ValueError, match="one box per frame"):
        crop_faces_official(np.zeros((1, 10, 10, 3), np.uint8), np.array([[0, 0, 5, 5]] * 2))


def test_official_crop_ignores_confidence_and_uses_only_the_68_landmarks():
    rng = np.random.default_rng(5)
    kps = random_faces(rng, 1, 320, 240)
    kps[0, pt.FACE, 0] = np.linspace(100, 180, 68)
    kps[0, pt.FACE, 1] = np.linspace(60, 160, 68)
    other = kps.copy()
    other[0, pt.FACE, 2] = 0.0                      # confidence: no effect
    other[0, :23, :2] = 1000.0                      # body / feet (incl. index 22): no effect
    other[0, pt.LEFT_HAND, :2] = -500.0             # hands: no effect
    a, _ = face_boxes(kps, 320, 240, mode="official")
    b, _ = face_boxes(other, 320, 240, mode="official")
    np.testing.assert_array_equal(a, b)


def test_square_box_contains_face_and_is_square():
    k = face_kps(10, 640, 360)
    boxes, low = face_boxes(k, W, H, mode="square")
    assert boxes.shape == (10, 4) and boxes.dtype == np.float32 and low == []
    side_w, side_h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    np.testing.assert_allclose(side_w, side_h, rtol=1e-5)
    np.testing.assert_allclose(side_w, 120 * 1.3, rtol=1e-3)   # max(w, h) * scale
    lm = k[0, pt.FACE]
    assert (boxes[0, 0] < lm[:, 0].min() and boxes[0, 2] > lm[:, 0].max()
            and boxes[0, 1] < lm[:, 1].min() and boxes[0, 3] > lm[:, 1].max())
    # lifted for the forehead: more room above the landmarks than below
    assert lm[:, 1].min() - boxes[0, 1] > boxes[0, 3] - lm[:, 1].max()


def test_square_box_stable_under_landmark_noise():
    t_len = 90
    k = face_kps(t_len, 640, 360, noise=2.0)
    boxes, _ = face_boxes(k, W, H, mode="square", fps=30)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    box_jitter = np.diff(centre, axis=0).std(axis=0).mean()
    lm_jitter = np.diff(k[:, pt.FACE.start + 5, :2], axis=0).std(axis=0).mean()
    official, _ = face_boxes(k, W, H, mode="official")
    off_jitter = np.diff((official[:, :2] + official[:, 2:]) / 2, axis=0).std(axis=0).mean()
    size_jitter = np.diff(boxes[:, 2] - boxes[:, 0]).std()
    off_size_jitter = np.diff(official[:, 2] - official[:, 0]).std()
    # measured: landmark 2.8 px, official box centre 1.26 px, ours 0.13 px per frame (size 0.03 vs 3.3)
    assert box_jitter < lm_jitter / 10
    assert box_jitter < off_jitter / 5
    assert size_jitter < off_size_jitter / 5


def test_square_box_follows_motion():
    t_len = 60
    cx = 300 + 8 * np.arange(t_len)          # 240 px/s pan
    k = face_kps(t_len, cx, 360, noise=1.0)
    boxes, _ = face_boxes(k, W, H, mode="square", fps=30)
    centre_x = (boxes[:, 0] + boxes[:, 2]) / 2
    assert np.abs(centre_x[5:-5] - cx[5:-5]).max() < 4.0


def test_box_held_when_face_disappears_and_reported():
    t_len = 40
    k = face_kps(t_len, 500, 300)
    k[20:31] = 0.0                            # the person is gone for 11 frames
    boxes, low = face_boxes(k, W, H, mode="square", fps=30)
    assert low == list(range(20, 31))
    np.testing.assert_allclose(boxes[20:31], np.repeat(boxes[19:20], 11, axis=0), atol=1e-3)
    assert np.isfinite(boxes).all()


def test_unsure_face_follows_head_points():
    t_len = 30
    cx = 400 + 10 * np.arange(t_len)
    k = face_kps(t_len, cx, 300)
    k[10:20, pt.FACE, 2] = 0.1                # face turned away: landmarks unsure, head still seen
    boxes, low = face_boxes(k, W, H, mode="square", fps=30, smoothing=0.0, size_sigma_s=0.0)
    assert low == list(range(10, 20))
    centre_x = (boxes[:, 0] + boxes[:, 2]) / 2
    np.testing.assert_allclose(centre_x[10:20], cx[10:20], atol=1e-3)


def test_leading_bad_frames_and_min_size_and_no_face_at_all():
    k = face_kps(10, 640, 360, w=10, h=12)
    k[:3, pt.FACE, 2] = 0.0
    boxes, low = face_boxes(k, W, H, mode="square", min_size=64)
    assert low == [0, 1, 2]
    np.testing.assert_allclose(boxes[:, 2] - boxes[:, 0], 64, rtol=1e-5)   # tiny face: size floor
    none = np.zeros((5, 133, 3), np.float32)
    boxes, low = face_boxes(none, W, H, mode="square")
    assert low == [0, 1, 2, 3, 4] and np.isfinite(boxes).all()
    np.testing.assert_allclose((boxes[:, 0] + boxes[:, 2]) / 2, W / 2)
    with pytest.raises(ValueError, match="133"):
        face_boxes(np.zeros((5, 17, 3)), W, H)
    with pytest.raises(ValueError, match="mode"):
        face_boxes(k, W, H, mode="round")


def _gradient_frames(t_len: int = 2) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    img = np.stack([xx % 256, yy % 256, (xx // 256 + 4 * (yy // 256)) * 10], axis=-1).astype(np.uint8)
    return np.repeat(img[None], t_len, axis=0)


def test_crop_content_and_black_padding_outside_the_image():
    frames = _gradient_frames()
    boxes = np.array([[100, 50, 356, 306], [-128, -128, 128, 128]], np.float32)  # 256 px squares
    crops = crop_faces(frames, boxes, size=512)
    assert crops.shape == (2, 512, 512, 3) and crops.dtype == np.uint8
    # 2x enlargement: output pixel (2i+1) lies on source pixel box + i + 0.25 -> close to the source
    assert abs(int(crops[0, 101, 201, 0]) - int(frames[0, 50 + 50, 100 + 100, 0])) <= 1
    assert abs(int(crops[0, 101, 201, 1]) - int(frames[0, 50 + 50, 100 + 100, 1])) <= 1
    # the second box hangs over the top-left corner: its first 256 rows/cols are padding, not shifted
    assert crops[1, :250, :, :].max() == 0 and crops[1, :, :250].max() == 0
    assert abs(int(crops[1, 511, 511, 0]) - int(frames[1, 127, 127, 0])) <= 1
    edge = crop_faces(frames, boxes, size=512, border="edge")
    # above the image the top row repeats: output column 400 samples x = -128 + 400.5 / 2 - 0.5 = 71.75
    assert abs(int(edge[1, 10, 400, 0]) - 72) <= 1
    assert edge[1, :250].max() > 0


def test_crop_stretches_non_square_boxes_and_accepts_iterables_and_floats():
    frames = _gradient_frames(3)
    boxes = np.array([[0, 0, 512, 256]] * 3, np.float32)     # 2:1 box -> stretched vertically
    crops = crop_faces((f for f in frames), boxes, size=256)
    assert crops.shape == (3, 256, 256, 3)
    # x shrinks 2x (area-averaged), y is kept: row r of the crop is source row r
    assert abs(int(crops[0, 100, 10, 1]) - int(frames[0, 100, 20, 1])) <= 1
    as_float = crop_faces(frames.astype(np.float32) / 255.0, boxes, size=256)
    assert as_float.dtype == np.float32
    assert np.abs(as_float * 255 - crops).max() <= 1.5


def test_crop_downscale_is_area_averaged():
    img = ((np.indices((H, W)).sum(axis=0) % 2) * 255).astype(np.uint8)[..., None].repeat(3, axis=2)
    crops = crop_faces(img[None], np.array([[0, 0, 512, 512]], np.float32), size=128)   # 4x shrink
    assert np.abs(crops[0, 8:-8, 8:-8].astype(int) - 127).max() <= 2


def test_crop_errors():
    frames = _gradient_frames(2)
    with pytest.raises(ValueError, match="one box per frame"):
        crop_faces(frames, np.zeros((3, 4), np.float32) + [0, 0, 10, 10])
    with pytest.raises(ValueError, match="empty"):
        crop_faces(frames, np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="border"):
        crop_faces(frames, np.zeros((2, 4)), border="mirror")


@pytest.mark.parametrize("box", [(100.3, 40.7, 300.3, 240.7),      # 200 px -> 512: enlarging
                                 (10.25, 5.5, 1010.25, 705.5),      # 1000x700 -> 256: shrinking ~4x
                                 (-50.6, -20.2, 149.4, 179.8)])     # over the corner (edge padding)
def test_crop_sub_pixel_geometry_on_a_ramp(box):
    """On a linear ramp, output pixel u must read x1 + (u + 0.5) * sx - 0.5 (pixel centres)."""
    size = 256 if box[2] - box[0] > 500 else 512
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    frame = np.stack([xx / 1000, yy / 1000, np.zeros_like(xx)], axis=-1)
    crop = crop_faces(frame[None], np.array([box], np.float32), size=size, border="edge")[0]
    u = np.arange(size)
    sx, sy = (box[2] - box[0]) / size, (box[3] - box[1]) / size
    want_x = np.clip(box[0] + (u + 0.5) * sx - 0.5, 0, W - 1) / 1000
    want_y = np.clip(box[1] + (u + 0.5) * sy - 0.5, 0, H - 1) / 1000
    inner = slice(8, size - 8)   # away from the clamped image border, where the ramp bends
    ok_x = (want_x > 0.004) & (want_x < (W - 5) / 1000)
    ok_y = (want_y > 0.004) & (want_y < (H - 5) / 1000)
    np.testing.assert_allclose(crop[size // 2, inner, 0][ok_x[inner]], want_x[inner][ok_x[inner]], atol=2e-5)
    np.testing.assert_allclose(crop[inner, size // 2, 1][ok_y[inner]], want_y[inner][ok_y[inner]], atol=2e-5)


def test_crop_into_preallocated_output():
    frames = _gradient_frames(2)
    boxes = np.array([[100, 50, 356, 306]] * 2, np.float32)
    buf = np.zeros((2, 128, 128, 3), np.uint8)
    res = crop_faces(frames, boxes, size=128, out=buf)
    assert res is buf and buf.any()
    np.testing.assert_array_equal(buf, crop_faces(frames, boxes, size=128))
    with pytest.raises(ValueError, match="out must be"):
        crop_faces(frames, boxes, size=64, out=buf)
