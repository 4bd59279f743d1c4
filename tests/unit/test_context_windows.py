"""Context-window plan and blend weights (issue 18): pure functions, no host."""
from __future__ import annotations

import numpy as np
import pytest

from wan_animate_kit.models.context_windows import blend_weights, padded_frames, window_plan


def _coverage(starts, length, total):
    cover = np.zeros(total, int)
    for s in starts:
        cover[s:s + length] += 1
    return cover


@pytest.mark.parametrize("total,length,overlap", [(1, 21, 4), (21, 21, 4), (22, 21, 4), (60, 21, 4), (250, 21, 4),
                                                  (7, 3, 1), (10, 4, 0), (9, 5, 4), (30, 6, 3)])
def test_plan_covers_every_latent_in_order_with_the_overlap(total, length, overlap):
    starts = window_plan(total, length, overlap)
    assert starts[0] == 0 and starts == sorted(set(starts))
    if total <= length:
        assert starts == [0]
        return
    assert starts[-1] == total - length  # the last window ends on the last latent
    assert all(s + length <= total for s in starts)
    assert (_coverage(starts, length, total) >= 1).all()
    stride = length - overlap
    assert [b - a for a, b in zip(starts[:-2], starts[1:-1])] == [stride] * (len(starts) - 2)
    assert 0 < starts[-1] - starts[-2] <= stride


def test_default_plan_of_a_long_video():
    # 1001 frames -> 251 latent frames; windows of 21 every 17, the last moved back to end at 251
    starts = window_plan(251)
    assert starts[:3] == [0, 17, 34] and starts[-1] == 230 and len(starts) == 15


@pytest.mark.parametrize("total,length,overlap", [(7, 3, 1), (60, 21, 4), (22, 21, 4), (9, 5, 4), (30, 6, 3),
                                                  (10, 4, 0), (5, 5, 2)])
def test_weights_sum_to_one_and_ramp_linearly(total, length, overlap):
    starts = window_plan(total, length, overlap)
    ws = blend_weights(starts, length, total)
    acc = np.zeros(total)
    for s, w in zip(starts, ws):
        assert len(w) == min(length, total - s) and (w > 0).all() and (w <= 1).all()
        acc[s:s + len(w)] += w
    np.testing.assert_allclose(acc, 1.0, rtol=0, atol=1e-12)
    # re-stated for a regular pair of neighbours: a k-frame overlap cross-fades 1/(k+1) .. k/(k+1)
    if len(starts) >= 3 and overlap and 2 * overlap <= length:
        k = overlap
        a, b = ws[0], ws[1]
        up = np.array([(j + 1) / (k + 1) for j in range(k)])
        np.testing.assert_allclose(b[:k], up, atol=1e-12)
        np.testing.assert_allclose(a[-k:], 1 - up, atol=1e-12)
        np.testing.assert_allclose(a[:length - k], 1.0)


def test_single_window_weights_are_exactly_one():
    (w,) = blend_weights([0], 21, 13)
    assert len(w) == 13 and (w == 1.0).all()


def test_padded_frames_is_the_next_4n_plus_1():
    assert [padded_frames(n) for n in (1, 2, 5, 6, 9, 77, 78)] == [1, 5, 5, 9, 9, 77, 81]


@pytest.mark.parametrize("length,overlap", [(0, 0), (5, 5), (5, -1), (3, 7)])
def test_bad_window_settings_name_the_input(length, overlap):
    with pytest.raises(ValueError, match="window_length" if length < 1 else "window_overlap"):
        window_plan(10, length, overlap)


def test_memory_check_states_the_latent_size_and_refuses_what_cannot_fit():
    from wan_animate_kit.models.context_windows import latent_bytes, memory_check, pixel_bytes

    # 81 frames 512x1024: 21 video latents + the reference slot, 64x128 latent pixels, 9 x 16 float32 channels
    assert latent_bytes(81, 512, 1024) == 9 * 16 * 22 * 128 * 64 * 4
    assert pixel_bytes(80, 512, 1024, False) == 81 * 512 * 1024 * 3 * 4 * 2
    gib = 2 ** 30
    refusal, warn = memory_check(1000, 512, 1024, True, memory=(16 * gib, 16 * gib))
    assert refusal and "more than this machine has" in refusal and "latent" in refusal and not warn
    refusal, warn = memory_check(81, 512, 1024, False, memory=(64 * gib, 1 * gib))
    assert refusal is None and len(warn) == 1 and "free now" in warn[0]
    assert memory_check(81, 64, 64, False, memory=(64 * gib, 64 * gib)) == (None, [])
