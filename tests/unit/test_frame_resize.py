"""The official Replacement-mode frame resize (preprocess.frame_resize) and its size rule
(preprocess.resolution.size_for_area), against plain re-statements of the official
resize_by_area / padding_resize (Wan2.2 preprocess/utils.py) written here."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from wan_animate_kit.preprocess.frame_resize import AreaResize
from wan_animate_kit.preprocess.resolution import size_for_area

OFFICIAL_AREA = 1280 * 720


def official_sizes(widths, heights, area, divisor):
    """The fallback branch of the official resize_by_area, vectorised with numpy float64: aspect w / h,
    height sqrt(area / aspect), width area / height, each floor-divided by the divisor and multiplied back."""
    widths = np.asarray(widths, dtype=np.int64)
    heights = np.asarray(heights, dtype=np.int64)
    aspect = widths / heights
    tall = np.sqrt(area / aspect)
    wide = area / tall
    return (np.floor_divide(wide, divisor) * divisor).astype(np.int64), \
        (np.floor_divide(tall, divisor) * divisor).astype(np.int64)


def official_resize_by_area(frame: np.ndarray, area: int, divisor: int = 16) -> np.ndarray:
    """resize_by_area(frame, area, divisor) re-stated: size from the fallback branch, INTER_AREA when the
    new size has fewer pixels than the frame, then padding_resize: a float64 zero canvas, the frame fitted
    to the limiting side and pasted at int((canvas - fitted) / 2), cast with np.uint8."""
    h, w = frame.shape[:2]
    ratio = w / h
    nh_f = math.sqrt(area / ratio)
    nw_f = area / nh_f
    nw, nh = int((nw_f // divisor) * divisor), int((nh_f // divisor) * divisor)
    interp = cv2.INTER_AREA if nw * nh < w * h else cv2.INTER_LINEAR
    canvas = np.zeros((nh, nw, frame.shape[2]))
    if h / w > nh / nw:
        fw = int(nh / h * w)
        pad = int((nw - fw) / 2)
        canvas[:, pad:pad + fw, :] = cv2.resize(frame, (fw, nh), interpolation=interp).reshape(nh, fw, -1)
    else:
        fh = int(nw / w * h)
        pad = int((nh - fh) / 2)
        canvas[pad:pad + fh, :, :] = cv2.resize(frame, (nw, fh), interpolation=interp).reshape(fh, nw, -1)
    return np.uint8(canvas)


COMMON = [(1920, 1080), (1080, 1920), (1280, 720), (720, 1280), (3840, 2160), (2160, 3840), (2560, 1440),
          (1440, 1080), (1024, 768), (640, 480), (480, 640), (854, 480), (480, 854), (1366, 768), (1000, 1000),
          (720, 720), (800, 1200), (1080, 1350), (1080, 1440), (2048, 1080), (1998, 1080), (3996, 2160),
          (960, 544), (832, 480), (480, 832), (1104, 816), (1328, 672), (1344, 672), (426, 240), (640, 360),
          (352, 288), (720, 576), (720, 480), (1200, 1600), (1242, 2688), (1170, 2532), (49, 25), (81, 25)]


@pytest.mark.parametrize("area", [OFFICIAL_AREA, 832 * 480, 1024 * 576, 640 * 640, 123457])
@pytest.mark.parametrize("divisor", [16, 8, 24, 64])
def test_size_for_area_is_the_official_fallback_on_a_sweep(area, divisor):
    ws, hs = np.meshgrid(np.arange(17, 2400, 37), np.arange(13, 2400, 41))
    sizes = list(zip(ws.ravel().tolist(), hs.ravel().tolist())) + COMMON
    want_w, want_h = official_sizes([s[0] for s in sizes], [s[1] for s in sizes], area, divisor)
    got = np.array([size_for_area(w, h, area=area, divisor=divisor) for w, h in sizes])
    # where the official floor gives 0 (its padding_resize then fails), the pack keeps one divisor
    assert np.array_equal(got[:, 0], np.maximum(want_w, divisor))
    assert np.array_equal(got[:, 1], np.maximum(want_h, divisor))
    assert np.count_nonzero((want_w > 0) & (want_h > 0)) > 0.9 * len(sizes)


def test_size_for_area_floors_like_the_official_float_arithmetic():
    # the float width lands just under a multiple of 16: 1343.9999999999998 -> 1328 (not 1344) officially
    assert 921600 / math.sqrt(921600 / (49 / 25)) < 1344
    assert size_for_area(49, 25) == (1328, 672)
    assert size_for_area(81, 25) == (1712, 528)
    # exact cases stay exact
    assert size_for_area(1280, 720) == (1280, 720) and size_for_area(720, 1280) == (720, 1280)
    assert size_for_area(1920, 1080) == (1280, 720) and size_for_area(640, 480) == (1104, 816)


def test_size_for_area_keeps_one_divisor_where_the_official_floor_gives_zero():
    # official: int((13.57 // 16) * 16) == 0, and padding_resize then fails; the pack keeps 16
    assert official_sizes([1], [5000], OFFICIAL_AREA, 16)[0][0] == 0
    assert size_for_area(1, 5000) == (16, official_sizes([1], [5000], OFFICIAL_AREA, 16)[1][0])
    assert size_for_area(5000, 1, area=100) == (704, 16)  # sqrt(500000) = 707.1; 100 / 707.1 -> 0


def _clip(rng, w, h, n=2):
    return rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("src,area", [
    ((200, 120), 96 * 64),   # shrink, INTER_AREA, letterboxed with bars top and bottom
    ((50, 38), 96 * 64),     # enlarge, INTER_LINEAR
    ((37, 53), 96 * 64),     # not a multiple of 16, portrait, bars left and right
    ((101, 29), 80 * 48),    # a wide odd size
    ((45, 118), 6144),       # canvas 48x112 has more pixels than the frame but the fit 42x112 fewer: LINEAR
    ((96, 64), 96 * 64),     # already the size: unchanged
    ((160, 90), 1280 * 720), # 16:9 enlarged to exactly 1280x720
])
def test_frames_equal_the_official_resize_by_area(src, area):
    rng = np.random.default_rng(src[0] * 1000 + src[1])
    frames = _clip(rng, *src)
    plan = AreaResize.plan(src[0], src[1], area, 16)
    got = plan(frames)
    want = np.stack([official_resize_by_area(f, area, 16) for f in frames])
    assert got.dtype == np.uint8 and got.shape == want.shape == (2, plan.height, plan.width, 3)
    assert (plan.width, plan.height) == size_for_area(*src, area=area)
    assert np.array_equal(got, want)


def test_the_canvas_not_the_fit_picks_the_interpolation():
    plan = AreaResize.plan(45, 118, 6144, 16)
    assert (plan.width, plan.height, plan.fit_w, plan.fit_h) == (48, 112, 42, 112)
    assert plan.interpolation == cv2.INTER_LINEAR  # 48 * 112 >= 45 * 118 although 42 * 112 < 45 * 118
    frame = _clip(np.random.default_rng(3), 45, 118, 1)[0]
    area_version = cv2.resize(frame, (42, 112), interpolation=cv2.INTER_AREA)
    assert not np.array_equal(plan(frame[None])[0, :, 3:45], area_version)  # the test can tell them apart
    assert AreaResize.plan(200, 120, 96 * 64).interpolation == cv2.INTER_AREA
    assert AreaResize.plan(50, 38, 96 * 64).interpolation == cv2.INTER_LINEAR


def test_bars_are_black_and_centred():
    plan = AreaResize.plan(64, 48, 1280 * 720)  # 4:3 -> 1104x816 canvas, the picture 1088 wide
    assert (plan.width, plan.height, plan.fit_w, plan.fit_h, plan.left, plan.top) == (1104, 816, 1088, 816, 8, 0)
    out = plan(np.full((1, 48, 64, 3), 200, np.uint8))
    assert out[0, :, :8].max() == 0 and out[0, :, 1096:].max() == 0 and out[0, :, 8:1096].min() == 200


def test_identity_and_bad_frames():
    plan = AreaResize.plan(1280, 720, 1280 * 720)
    frames = _clip(np.random.default_rng(0), 1280, 720, 1)
    assert plan.identity and plan(frames) is frames
    assert np.array_equal(official_resize_by_area(frames[0], 1280 * 720), frames[0])
    with pytest.raises(ValueError, match="uint8 frames"):
        AreaResize.plan(64, 48, 6144)(np.zeros((1, 48, 64, 3), np.float32))
    with pytest.raises(ValueError, match="uint8 frames"):
        AreaResize.plan(64, 48, 6144)(np.zeros((1, 40, 64, 3), np.uint8))
