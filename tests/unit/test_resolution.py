"""Output size by area and letterbox placement (official: wan/modules/animate/preprocess/utils.py,
resize_by_area and padding_resize)."""
from __future__ import annotations

import numpy as np
import pytest

from wan_animate_kit.preprocess.resolution import (letterbox_geometry, letterbox_keypoints, letterbox_transform,
                                                   padding_resize, size_for_area, stretch_keypoints)


@pytest.mark.parametrize("src,expected", [
    ((1920, 1080), (1280, 720)),
    ((1080, 1920), (720, 1280)),
    ((1280, 720), (1280, 720)),
    ((1024, 768), (1104, 816)),
    ((640, 480), (1104, 816)),
    ((1000, 1000), (960, 960)),
    ((800, 1200), (768, 1168)),
])
def test_size_for_area_official_examples(src, expected):
    assert size_for_area(*src) == expected


def test_size_for_area_multiple_of_divisor_and_under_area():
    for w, h in [(1234, 567), (333, 999), (4096, 2160), (720, 1280), (10, 3000)]:
        nw, nh = size_for_area(w, h, area=832 * 480, divisor=16)
        assert nw % 16 == 0 and nh % 16 == 0 and nw >= 16 and nh >= 16
        if min(nw, nh) > 16:
            assert nw * nh <= 832 * 480
            assert abs(nw / nh - w / h) / (w / h) < 0.15


def test_size_for_area_rejects_bad_input():
    with pytest.raises(ValueError, match="positive"):
        size_for_area(0, 100)
    with pytest.raises(ValueError, match="area"):
        size_for_area(100, 100, area=0)


def test_letterbox_geometry_and_transform():
    assert letterbox_geometry(1024, 768, 1104, 816) == (1088, 816, 8, 0)
    assert letterbox_geometry(800, 1200, 768, 1168) == (768, 1152, 0, 8)
    assert letterbox_geometry(1920, 1080, 1280, 720) == (1280, 720, 0, 0)
    s, ox, oy = letterbox_transform(1024, 768, 1104, 816)
    assert s == pytest.approx(816 / 768) and (ox, oy) == (8.0, 0.0)
    s, ox, oy = letterbox_transform(800, 1200, 768, 1168)
    assert s == pytest.approx(768 / 800) and (ox, oy) == (0.0, 8.0)


def test_padding_resize_bars_and_content_uint8_and_float():
    img = np.full((768, 1024, 3), 200, np.uint8)
    out = padding_resize(img, 1104, 816)
    assert out.shape == (816, 1104, 3) and out.dtype == np.uint8
    assert out[:, :8].max() == 0 and out[:, 8 + 1088:].max() == 0
    assert (out[:, 8:8 + 1088] == 200).all()
    f = np.ones((100, 50), np.float32)
    out = padding_resize(f, 100, 100)
    assert out.shape == (100, 100) and out.dtype == np.float32
    assert out[:, :25].max() == 0 and out[:, 75:].max() == 0 and (out[:, 25:75] == 1).all()
    one_channel = padding_resize(np.ones((40, 20, 1), np.uint8), 20, 20)
    assert one_channel.shape == (20, 20, 1)


def test_padding_resize_shrinks_with_area_averaging():
    # a 1-px checkerboard shrunk 2x must average to grey (INTER_AREA), not alias to black/white
    img = ((np.indices((200, 200)).sum(axis=0) % 2) * 255).astype(np.uint8)[..., None].repeat(3, axis=2)
    out = padding_resize(img, 100, 100)
    assert np.abs(out.astype(int) - 127).max() <= 1


def test_letterbox_keypoints_follow_image_pixels():
    src_w, src_h, dst_w, dst_h = 640, 480, 1104, 816
    img = np.zeros((src_h, src_w, 3), np.uint8)
    img[100:110, 300:310] = 255  # a square centred on pixel (304.5, 104.5)
    out = padding_resize(img, dst_w, dst_h)
    ys, xs = np.where(out[..., 0] > 127)
    kp = letterbox_keypoints(np.array([[304.5, 104.5, 0.8]], np.float32), src_w, src_h, dst_w, dst_h)
    assert kp[0, 2] == pytest.approx(0.8)
    assert kp[0, 0] == pytest.approx(xs.mean(), abs=0.6)
    assert kp[0, 1] == pytest.approx(ys.mean(), abs=0.6)
    # missing points stay missing
    missing = letterbox_keypoints(np.zeros((2, 3), np.float32), src_w, src_h, dst_w, dst_h)
    assert not missing.any()


def test_stretch_keypoints():
    kp = stretch_keypoints(np.array([[[99.5, 49.5, 1.0]]], np.float32), 200, 100, 100, 100)
    assert kp.shape == (1, 1, 3)
    assert kp[0, 0, 0] == pytest.approx(49.5) and kp[0, 0, 1] == pytest.approx(49.5)  # pixel centres: (x + .5) * s - .5
    with pytest.raises(ValueError, match="x, y, confidence"):
        stretch_keypoints(np.zeros((3, 2)), 10, 10, 10, 10)


def _official_padding_resize(img, height, width):
    """Independent statement of the official padding_resize (wan/animate.py; preprocess/utils.py) with
    its default INTER_LINEAR: zero float canvas, resized image pasted at int((dst - new) / 2), uint8."""
    import cv2

    oh, ow, ch = img.shape
    canvas = np.zeros((height, width, ch))
    if oh / ow > height / width:
        nw = int(height / oh * ow)
        pad = int((width - nw) / 2)
        canvas[:, pad:pad + nw] = cv2.resize(img, (nw, height), interpolation=cv2.INTER_LINEAR).reshape(height, nw, ch)
    else:
        nh = int(width / ow * oh)
        pad = int((height - nh) / 2)
        canvas[pad:pad + nh] = cv2.resize(img, (width, nh), interpolation=cv2.INTER_LINEAR).reshape(nh, width, ch)
    return np.uint8(canvas)


@pytest.mark.parametrize("src,dst", [((37, 53), (32, 48)), ((101, 29), (48, 32)), ((15, 77), (80, 64)),
                                     ((90, 61), (48, 48)), ((200, 300), (1104, 816))])
def test_padding_resize_linear_equals_official_uint8(src, dst):
    rng = np.random.default_rng(sum(src))
    img = rng.integers(0, 256, src + (3,), dtype=np.uint8)
    got = padding_resize(img, dst[0], dst[1], interpolation="linear")
    assert got.dtype == np.uint8
    assert np.array_equal(got, _official_padding_resize(img, dst[1], dst[0]))


def test_padding_resize_rejects_unknown_interpolation():
    with pytest.raises(ValueError, match="interpolation"):
        padding_resize(np.zeros((4, 4, 3), np.uint8), 8, 8, interpolation="cubic")
