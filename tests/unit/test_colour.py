"""Colour statistics, overlap-based colour matching, cross-fade and the drift metric."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from wan_animate_kit.preprocess.colour import (colour_drift, crossfade, crossfade_weights, from_lab, lab_stats,
                                               match_colour, to_lab)


def scene(t=8, h=24, w=32, seed=0):
    """Smooth colourful frames that move a little over time."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.random(3).astype(np.float32)
    frames = []
    for k in range(t):
        r = 0.5 + 0.35 * np.sin(x / 5 + k * 0.3 + base[0] * 6)
        g = 0.5 + 0.3 * np.cos(y / 4 - k * 0.2 + base[1] * 6)
        b = 0.45 + 0.3 * np.sin((x + y) / 7 + base[2] * 6)
        frames.append(np.stack([r, g, b], -1))
    return np.clip(np.stack(frames), 0, 1).astype(np.float32)


def cast(frames, gain=(1.08, 0.97, 0.9), offset=(0.02, 0.0, -0.02)):
    """A per-channel RGB gain/offset cast."""
    return np.clip(frames * np.float32(gain) + np.float32(offset), 0, 1).astype(np.float32)


def lab_cast(frames, l_gain=0.93, shift=(3.0, 4.0, -5.0)):
    """A cast in Lab: lower contrast in L, brighter, tinted in a and b (what a VAE round trip does)."""
    lab = to_lab(frames)
    lab[..., 0] = (lab[..., 0] - 50) * l_gain + 50
    lab = lab + np.float32(shift)
    return from_lab(lab)


def test_lab_roundtrip_and_stats():
    f = scene()
    assert np.abs(from_lab(to_lab(f)) - f).max() < 3e-3
    grey = np.full((2, 4, 4, 3), 0.5, np.float32)
    mean, std = lab_stats(grey)
    assert mean[0] == pytest.approx(53.39, abs=0.1) and np.allclose(mean[1:], 0, atol=1e-3)
    assert np.allclose(std, 0, atol=1e-4)
    half = grey.copy()
    half[:, :, :2] = (1.0, 0.0, 0.0)
    mask = np.zeros((4, 4), bool)
    mask[:, 2:] = True
    assert np.allclose(lab_stats(half, mask)[0], mean, atol=1e-3)  # the red half is outside the region
    with pytest.raises(ValueError, match="no pixel"):
        lab_stats(grey, np.zeros((4, 4), bool))


def test_stats_over_many_frames_match_direct_computation():
    f = scene(19)  # more frames than one conversion chunk
    lab = to_lab(f).reshape(-1, 3).astype(np.float64)
    mean, std = lab_stats(f)
    assert np.allclose(mean, lab.mean(0), atol=1e-4) and np.allclose(std, lab.std(0), atol=1e-3)
    u8 = (f * 255).round().astype(np.uint8)
    assert np.allclose(lab_stats(u8)[0], mean, atol=0.5)


def test_drift_zero_for_identical_and_positive_for_cast():
    f = scene()
    assert np.allclose(colour_drift(f, f), 0, atol=1e-4)
    d = colour_drift(cast(f), f)
    assert d.shape == (len(f),) and (d > 2).all()
    assert (colour_drift(cast(f), f, per_pixel=False) > 1).all()
    region = np.zeros(f.shape[:3], bool)
    region[:4] = True
    out = colour_drift(cast(f), f, region)
    assert np.allclose(out[:4], d[:4]) and np.isnan(out[4:]).all()


def test_match_colour_removes_cast_measured_on_shared_frames():
    src = scene(12)
    prev_tail = src[:5]  # the previous segment's versions of the 5 shared frames
    new_segment = lab_cast(src)  # the new segment came out with a colour cast
    before = colour_drift(new_segment, src).mean()
    assert before > 4
    fixed = match_colour(new_segment, prev_tail)
    after = colour_drift(fixed, src)
    assert after.mean() < 0.1 * before
    assert after[5:].mean() < 0.1 * before  # applied to the whole segment, not just the shared frames
    half = colour_drift(match_colour(new_segment, prev_tail, strength=0.5), src).mean()
    assert after.mean() < half < before
    assert np.allclose(match_colour(new_segment, prev_tail, strength=0.0), new_segment)


def test_rgb_affine_removes_channel_gains():
    src = scene(12)
    new_segment = cast(src)
    before = colour_drift(new_segment, src).mean()
    lab_fixed = colour_drift(match_colour(new_segment, src[:1]), src).mean()
    aff_fixed = colour_drift(match_colour(new_segment, src[:1], method="rgb_affine"), src).mean()
    assert aff_fixed < 0.1 * before
    assert aff_fixed < lab_fixed < before  # Lab statistics only partly model RGB gains
    with pytest.raises(ValueError, match="method"):
        match_colour(new_segment, src[:1], method="histogram")


def test_match_colour_shared_selection_and_mask():
    src = scene(10)
    new = lab_cast(src)
    fixed = match_colour(new, src[-2:], shared=slice(8, 10))
    assert colour_drift(fixed, src).mean() < 0.1 * colour_drift(new, src).mean()
    # stats measured on the environment only: a character region that changed must not bias it
    new2 = new.copy()
    new2[:, :, :10] = (1.0, 0.0, 1.0)  # a magenta "character" on the left, absent from the source
    env = np.ones(src.shape[:3], bool)
    env[:, :, :10] = False
    with_mask = match_colour(new2, src[:3], mask=env)
    without = match_colour(new2, src[:3])
    assert colour_drift(with_mask, src, env).mean() < 0.5 * colour_drift(without, src, env).mean()
    with pytest.raises(ValueError, match="shared frames"):
        match_colour(new, src[:3], shared=slice(0, 2))
    with pytest.raises(ValueError, match="strength"):
        match_colour(new, src[:1], strength=2)


def test_crossfade():
    w = crossfade_weights(4)
    assert np.allclose(w, [0.2, 0.4, 0.6, 0.8])
    prev = np.zeros((4, 2, 2, 3), np.float32)
    new = np.ones((4, 2, 2, 3), np.float32)
    out = crossfade(prev, new)
    assert np.allclose(out[:, 0, 0, 0], w)
    tout = crossfade(torch.from_numpy(prev), torch.from_numpy(new))
    assert np.allclose(tout.numpy(), out)
    with pytest.raises(ValueError, match="shape"):
        crossfade(prev, new[:3])


def test_bad_frames():
    with pytest.raises(ValueError, match="RGB"):
        lab_stats(np.zeros((4, 4)))
