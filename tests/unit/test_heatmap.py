"""Top-down crop geometry and DARK heatmap decoding (pure numpy, no model)."""
from __future__ import annotations

import numpy as np
import pytest

from tiny_onnx import default_peaks, gaussian_heatmaps
from wan_animate_kit.preprocess.heatmap import (IMAGENET_MEAN, IMAGENET_STD, box_to_center_size, crop_affine,
                                                crop_batch, decode_heatmaps, heatmap_to_image,
                                                inverse_crop_affine, keypoints_from_heatmaps)


def _expected_image_points(box, peaks, padding=1.25):
    """Independent closed form: aspect 3:4 expansion, x1.25, heatmap cell u -> crop pixel 4u."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    if w > 0.75 * h:
        h = w / 0.75
    else:
        w = h * 0.75
    w, h = w * padding, h * padding
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    px = cx + (4 * peaks[:, 0] - 96) * w / 192
    py = cy + (4 * peaks[:, 1] - 128) * h / 256
    return np.stack([px, py], axis=1), w / 48, h / 64  # image pixels per heatmap cell


def test_box_expansion_to_three_by_four_and_padding():
    centers, sizes = box_to_center_size(np.array([[100, 50, 160, 250, 0.9],    # tall: width grows
                                                  [0, 0, 300, 100, 0.8]]))    # wide: height grows
    np.testing.assert_allclose(centers, [[130, 150], [150, 50]])
    np.testing.assert_allclose(sizes, [[150 * 1.25, 200 * 1.25], [300 * 1.25, 400 * 1.25]])
    _, no_pad = box_to_center_size(np.array([10, 10, 40, 50]), padding=1.0)
    np.testing.assert_allclose(no_pad, [[30, 40]])


def test_affine_and_inverse_compose_to_identity():
    c, s = np.array([321.7, 98.2]), np.array([150.0, 200.0])
    m = np.vstack([crop_affine(c, s), [0, 0, 1]])
    inv = np.vstack([inverse_crop_affine(c, s), [0, 0, 1]])
    np.testing.assert_allclose(m @ inv, np.eye(3), atol=1e-12)
    # box centre -> crop centre, expanded box corner -> crop corner
    np.testing.assert_allclose(m @ [321.7, 98.2, 1], [96, 128, 1])
    np.testing.assert_allclose(m @ [321.7 - 75, 98.2 - 100, 1], [0, 0, 1], atol=1e-12)


def test_crop_samples_the_right_image_pixels():
    h, w = 300, 250
    frame = np.zeros((h, w, 3), dtype=np.uint8)
    frame[..., 0] = np.arange(w)[None, :]       # red = x
    frame[..., 1] = np.arange(h)[:, None] % 256  # green = y
    frame[..., 2] = 7
    box = np.array([[60, 40, 150, 230]])
    crops = crop_batch(frame, box)
    assert crops.shape == (1, 3, 256, 192) and crops.dtype == np.float32
    pixels = crops[0].transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN  # back to 0..255 RGB
    c, s = box_to_center_size(box)
    inv = inverse_crop_affine(c[0], s[0])
    for u, v in [(96, 128), (40, 30), (150, 200)]:
        x, y = inv @ [u, v, 1]
        assert pixels[v, u, 0] == pytest.approx(x, abs=0.6)
        assert pixels[v, u, 1] == pytest.approx(y, abs=0.6)
        assert pixels[v, u, 2] == pytest.approx(7, abs=1e-3)


def test_crop_outside_frame_is_black_and_bgr_option_swaps_channels():
    frame = np.zeros((100, 100, 3), dtype=np.uint8)
    frame[...] = (200, 100, 50)
    box = np.array([[-60, -60, 40, 40]])  # mostly outside the frame (top-left)
    rgb = crop_batch(frame, box)[0].transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
    bgr = crop_batch(frame, box, bgr_like_official=True)[0].transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
    np.testing.assert_allclose(rgb[0, 0], [0, 0, 0], atol=1e-3)        # outside: black
    np.testing.assert_allclose(rgb[-1, -1], [200, 100, 50], atol=1e-3)  # inside
    np.testing.assert_allclose(bgr[-1, -1], [50, 100, 200], atol=1e-3)


def test_crop_rejects_float_frames_and_bad_boxes():
    with pytest.raises(ValueError, match="uint8"):
        crop_batch(np.zeros((10, 10, 3), np.float32), np.array([[0, 0, 5, 5]]))
    with pytest.raises(ValueError, match="x1, y1, x2, y2"):
        crop_batch(np.zeros((10, 10, 3), np.uint8), np.array([[0, 0, 5]]))
    assert crop_batch(np.zeros((10, 10, 3), np.uint8), np.zeros((0, 5))).shape == (0, 3, 256, 192)


def test_dark_recovers_sub_pixel_peaks():
    peaks = default_peaks(seed=11)
    hm = gaussian_heatmaps(peaks, sigma=2.0, amplitude=np.linspace(0.3, 0.95, 133))[None]
    coords, scores = decode_heatmaps(hm)
    err = np.abs(coords[0] - peaks)
    assert err.max() < 0.05
    np.testing.assert_allclose(scores[0], hm[0].reshape(133, -1).max(axis=1))
    # the plain argmax is off by up to half a cell: the refinement is what gets below 0.1
    plain, _ = decode_heatmaps(hm, unbiased=False)
    assert np.abs(plain[0] - peaks).max() > 0.2
    assert np.all(plain[0] == np.round(plain[0]))


def test_dark_skips_peaks_at_the_border():
    peaks = default_peaks(seed=2)
    peaks[0] = (0.3, 10.4)   # at the left border: argmax column 0, not refined
    peaks[1] = (20.2, 62.8)  # at the bottom: argmax row 63
    coords, _ = decode_heatmaps(gaussian_heatmaps(peaks)[None])
    np.testing.assert_array_equal(coords[0, 0], [0, 10])
    np.testing.assert_array_equal(coords[0, 1], [20, 63])
    assert np.abs(coords[0, 2:] - peaks[2:]).max() < 0.05


def test_keypoints_from_heatmaps_back_projects_with_closed_form():
    peaks = default_peaks(seed=5)
    hm = np.repeat(gaussian_heatmaps(peaks)[None], 3, axis=0)
    boxes = np.array([[100, 50, 160, 250, 0.9],    # tall
                      [0, 300, 400, 420, 0.8],      # wide, touching the left border
                      [590, 400, 640, 480, 0.7]])   # at the bottom-right corner
    kps = keypoints_from_heatmaps(hm, boxes)
    assert kps.shape == (3, 133, 3) and kps.dtype == np.float32
    for i, box in enumerate(boxes):
        expected, cell_x, cell_y = _expected_image_points(box[:4], peaks)
        assert np.abs(kps[i, :, 0] - expected[:, 0]).max() / cell_x < 0.1
        assert np.abs(kps[i, :, 1] - expected[:, 1]).max() / cell_y < 0.1
    assert np.all((kps[..., 2] > 0.5) & (kps[..., 2] <= 0.9 + 1e-6))


def test_heatmap_to_image_is_the_inverse_affine_of_stride_four():
    c, s = np.array([[200.0, 300.0]]), np.array([[120.0, 160.0]])
    coords = np.array([[[0.0, 0.0], [24.0, 32.0], [47.5, 63.25]]])
    out = heatmap_to_image(coords, c, s)
    inv = inverse_crop_affine(c[0], s[0])
    for k in range(3):
        np.testing.assert_allclose(out[0, k], inv @ [4 * coords[0, k, 0], 4 * coords[0, k, 1], 1])
    np.testing.assert_allclose(out[0, 1], [200, 300])  # heatmap centre -> box centre


def test_scores_are_clipped_and_shape_mismatch_raises():
    hm = np.full((1, 133, 64, 48), -0.2, dtype=np.float32)
    hm[0, 0, 30, 20] = 1.4
    kps = keypoints_from_heatmaps(hm, np.array([[0, 0, 100, 100]]))
    assert kps[0, 0, 2] == 1.0 and kps[0, 1, 2] == 0.0
    with pytest.raises(ValueError, match="one heatmap stack per box"):
        keypoints_from_heatmaps(hm, np.zeros((2, 4)))


def _reference_dark(hm, kernel=11):
    """Plain per-map reference: blur the whole map (zeros outside, max kept), log, Newton step."""
    import cv2

    out = np.zeros(hm.shape[:2] + (2,))
    for i in range(hm.shape[0]):
        for k in range(hm.shape[1]):
            m = hm[i, k].astype(np.float64)
            y, x = np.unravel_index(np.argmax(m), m.shape)
            out[i, k] = (x, y)
            if not (2 <= x <= m.shape[1] - 3 and 2 <= y <= m.shape[0] - 3):
                continue
            b = cv2.GaussianBlur(m, (kernel, kernel), 0, borderType=cv2.BORDER_CONSTANT)
            b *= m.max() / b.max()
            L = np.log(np.maximum(b, 1e-10))
            g = np.array([(L[y, x + 1] - L[y, x - 1]) / 2, (L[y + 1, x] - L[y - 1, x]) / 2])
            hess = np.array([[(L[y, x + 2] - 2 * L[y, x] + L[y, x - 2]) / 4,
                              (L[y + 1, x + 1] - L[y - 1, x + 1] - L[y + 1, x - 1] + L[y - 1, x - 1]) / 4],
                             [0.0, (L[y + 2, x] - 2 * L[y, x] + L[y - 2, x]) / 4]])
            hess[1, 0] = hess[0, 1]
            step = -np.linalg.solve(hess, g)
            if np.all(np.abs(step) <= 1.0):
                out[i, k] += step
    return out


def test_local_dark_matches_full_map_reference_on_noisy_maps():
    rng = np.random.default_rng(9)
    peaks = np.concatenate([default_peaks(seed=1, num=30), [[1.2, 30.0], [46.6, 2.1], [3.0, 61.5]]])
    hm = gaussian_heatmaps(peaks, sigma=2.5, amplitude=rng.uniform(0.2, 1.0, len(peaks)))
    hm = hm + gaussian_heatmaps(rng.uniform(0, 48, (len(peaks), 2)) * [1, 64 / 48], sigma=1.5,
                                amplitude=0.3)  # second, weaker blob
    hm = (hm + rng.normal(0, 0.02, hm.shape)).astype(np.float32)[None]
    coords, _ = decode_heatmaps(hm)
    np.testing.assert_allclose(coords, _reference_dark(hm), atol=1e-5)
