"""Output size by area and letterbox placement (official: wan/modules/animate/preprocess/utils.py,
resize_by_area and padding_resize)."""
from __future__ import annotations

import numpy as np
import pytest

from wan_animate_kit.preprocess.resolution import (letterbox_geometry, letterbox_keypoints, letterbox_transform,
                                                   padding_resize, scale_keypoints, size_for_area,
                                                   stretch_keypoints)


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


def _official_normalised_rescale(kps, src_w, src_h, dst_w, dst_h):
    """The official route of a keypoint to another canvas, restated: divide by the frame size
    (pose2d_utils.py load_pose_metas_from_kp2ds_seq), multiply by the canvas size
    (AAPoseMeta.from_humanapi_meta / retarget_pose.py rescale_skeleton)."""
    out = np.array(kps, np.float64)
    out[..., 0] = out[..., 0] / src_w
    out[..., 1] = out[..., 1] / src_h
    out[..., 0] = out[..., 0] * dst_w
    out[..., 1] = out[..., 1] * dst_h
    return out


def _official_padding_resize2(kps, src_w, src_h, dst_w, dst_h):
    """AAPoseMeta.padding_resize2 (pose2d_utils.py), restated: the limiting side's scale on both
    axes, the other side centred with int((dst - new) / 2)."""
    out = np.array(kps, np.float64)
    if src_h / src_w > dst_h / dst_w:
        scale = dst_h / src_h
        pad = int((dst_w - int(dst_h / src_h * src_w)) / 2)
        out[..., 0] = out[..., 0] * scale + pad
        out[..., 1] = out[..., 1] * scale
    else:
        scale = dst_w / src_w
        pad = int((dst_h - int(dst_w / src_w * src_h)) / 2)
        out[..., 1] = out[..., 1] * scale + pad
        out[..., 0] = out[..., 0] * scale
    return out


@pytest.mark.parametrize("src,dst", [((1920, 1080), (1280, 720)), ((640, 480), (1104, 816)),
                                     ((1080, 1920), (832, 480)), ((333, 517), (1000, 999)), ((50, 50), (50, 50))])
def test_scale_keypoints_is_the_official_normalised_rescale(src, dst):
    rng = np.random.default_rng(sum(src) + sum(dst))
    kps = np.stack([rng.uniform(-20, src[0] + 20, (4, 133)), rng.uniform(-20, src[1] + 20, (4, 133)),
                    rng.uniform(0, 1, (4, 133))], axis=-1).astype(np.float32)
    kps[0, :5] = 0  # missing points
    out = scale_keypoints(kps, *src, *dst)
    assert out.dtype == np.float32 and out.shape == kps.shape
    want = _official_normalised_rescale(kps, *src, *dst)
    np.testing.assert_allclose(out[..., :2], want[..., :2], rtol=0, atol=1e-4)
    assert (out[..., 2] == kps[..., 2]).all()
    assert not out[0, :5].any()  # missing stays missing
    if src == dst:
        assert (out == kps).all()  # the same canvas leaves every coordinate bit for bit
    # stretch_keypoints is the same function
    assert (stretch_keypoints(kps, *src, *dst) == out).all()


def test_scale_keypoints_convention_and_bad_input():
    # x' = x / W * W' (the corner convention), not the pixel-centre (x + .5) * s - .5
    kp = scale_keypoints(np.array([[[100.0, 50.0, 1.0], [0.0, 0.0, 0.0], [0.0, 10.0, 0.0]]], np.float32),
                         200, 100, 100, 300)
    assert kp[0, 0].tolist() == [50.0, 150.0, 1.0]
    assert kp[0, 1].tolist() == [0.0, 0.0, 0.0]
    assert kp[0, 2].tolist() == [0.0, 30.0, 0.0]  # known coordinates with no score still move
    with pytest.raises(ValueError, match="x, y, confidence"):
        scale_keypoints(np.zeros((3, 2)), 10, 10, 10, 10)
    with pytest.raises(ValueError, match="dst_w=0"):
        scale_keypoints(np.zeros((3, 3)), 10, 10, 0, 10)
    with pytest.raises(ValueError, match="src_h=-1"):
        stretch_keypoints(np.zeros((3, 3)), 10, -1, 10, 10)


@pytest.mark.parametrize("src,dst", [((640, 480), (1104, 816)), ((800, 1200), (768, 1168)),
                                     ((1920, 1080), (1280, 720)), ((517, 333), (480, 832))])
def test_letterbox_keypoints_is_the_official_padding_resize2(src, dst):
    rng = np.random.default_rng(sum(src))
    kps = np.stack([rng.uniform(0, src[0], (3, 133)), rng.uniform(0, src[1], (3, 133)),
                    rng.uniform(0, 1, (3, 133))], axis=-1).astype(np.float32)
    kps[1, 7] = 0
    out = letterbox_keypoints(kps, *src, *dst)
    want = _official_padding_resize2(kps, *src, *dst)
    want[1, 7] = 0  # the pack keeps missing points missing (the official moves the zeros onto the bar)
    np.testing.assert_allclose(out[..., :2], want[..., :2], rtol=0, atol=1e-4)
    assert (out[..., 2] == kps[..., 2]).all()


def test_letterbox_keypoints_follow_image_pixels():
    # The official drawing truncates (pixel i holds [i, i + 1)), so a square over pixels 300..309 is
    # centred on x = 305.0; the letterboxed picture's square, in those coordinates, is centred on its
    # mean pixel index + 0.5, and that is where the keypoint lands.
    src_w, src_h, dst_w, dst_h = 640, 480, 1104, 816
    img = np.zeros((src_h, src_w, 3), np.uint8)
    img[100:110, 300:310] = 255
    out = padding_resize(img, dst_w, dst_h, interpolation="linear")
    ys, xs = np.where(out[..., 0] > 127)
    kp = letterbox_keypoints(np.array([[305.0, 105.0, 0.8]], np.float32), src_w, src_h, dst_w, dst_h)
    assert kp[0, 2] == pytest.approx(0.8)
    assert kp[0, 0] == pytest.approx(xs.mean() + 0.5, abs=0.1)
    assert kp[0, 1] == pytest.approx(ys.mean() + 0.5, abs=0.1)
    # missing points stay missing
    missing = letterbox_keypoints(np.zeros((2, 3), np.float32), src_w, src_h, dst_w, dst_h)
    assert not missing.any()


def test_stretch_keypoints():
    kp = stretch_keypoints(np.array([[[99.5, 49.5, 1.0]]], np.float32), 200, 100, 100, 100)
    assert kp.shape == (1, 1, 3)
    assert kp[0, 0, 0] == pytest.approx(49.75) and kp[0, 0, 1] == pytest.approx(49.5)  # x / W * W'
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
