"""The official CLIP-vision preprocessing of the reference (wan/modules/animate/clip.py, CLIPModel.visual,
fed by wan/animate.py, WanAnimate.generate): pinned against re-statements written here, and against
the host's preprocessing (comfy/clip_vision.py, clip_preprocess, crop off), re-stated here too."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from wan_animate_kit.models.clip_vision_official import (OFFICIAL_MEAN, OFFICIAL_SIZE, OFFICIAL_STD,
                                                         official_mismatch, official_pixel_values,
                                                         resize_bicubic_bf16, to_official_range)

BF16 = torch.bfloat16
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]


# --- independent re-statements ------------------------------------------------------------------

def keys_weights(t: float, a: float = -0.75) -> list[float]:
    """Keys cubic convolution weights for the 4 taps at offsets -1, 0, 1, 2 from floor(src)."""
    def w(d):
        d = abs(d)
        if d <= 1:
            return (a + 2) * d ** 3 - (a + 3) * d ** 2 + 1
        if d < 2:
            return a * d ** 3 - 5 * a * d ** 2 + 8 * a * d - 4 * a
        return 0.0
    return [w(t + 1), w(t), w(1 - t), w(2 - t)]


def bicubic_matrix(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] float64 matrix of a bicubic resize, half-pixel centres, edge taps clamped, no
    antialias (the kernel is not widened on a downscale). The source coordinate is computed in float32
    as torch's kernels (CUDA and CPU) compute it; the weights in float64."""
    m = np.zeros((n_out, n_in))
    f32 = np.float32
    scale = f32(n_in) / f32(n_out)
    for i in range(n_out):
        src = f32(f32(scale * f32(i + 0.5)) - f32(0.5))
        x0 = int(np.floor(src))
        for k, wk in enumerate(keys_weights(float(src) - x0)):
            m[i, min(max(x0 - 1 + k, 0), n_in - 1)] += wk
    return m


def reference_resize_f64(chw: np.ndarray, size: int) -> np.ndarray:
    """[C, H, W] float64 -> [C, size, size] float64, separable bicubic."""
    my, mx = bicubic_matrix(chw.shape[1], size), bicubic_matrix(chw.shape[2], size)
    rows = np.einsum("oh,chw->cow", my, chw)
    return np.einsum("cow,pw->cop", rows, mx)


def bf16(a) -> torch.Tensor:
    """Round to bfloat16 (as float32 values)."""
    return torch.as_tensor(a).to(BF16).float()


def reference_official(img_hwc_uint8: np.ndarray) -> torch.Tensor:
    """Official: uint8 / 127.5 - 1 (float64) -> bf16; bicubic 224 (computed exactly, rounded once to
    bf16); then * 0.5, + 0.5, - mean, / std with every op rounded to bf16 and mean/std rounded too."""
    x = bf16(img_hwc_uint8.astype(np.float64) / 127.5 - 1).double().numpy().transpose(2, 0, 1)
    r = bf16(reference_resize_f64(x, 224))
    r = bf16(bf16(r * 0.5) + 0.5)
    m, s = bf16(MEAN).view(3, 1, 1), bf16(STD).view(3, 1, 1)
    return bf16(bf16(r - m) / s)


def reference_host(img_hwc_float: torch.Tensor) -> torch.Tensor:
    """Host (comfy/clip_vision.py, clip_preprocess with crop off): float32 bicubic resize with antialias,
    rounded to 8-bit levels, float32 normalisation."""
    x = img_hwc_float[None].movedim(-1, 1)
    x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bicubic", antialias=True)
    x = torch.clip(255.0 * x, 0, 255).round() / 255.0
    return ((x - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1))[0]


def image_u8(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A reference-like picture: smooth gradients plus fine detail (stripes and noise), uint8 RGB."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / w, yy / h, (xx + yy) / (w + h)], -1) * 200
    stripes = 40 * ((xx // 2 + yy // 3) % 2)[..., None]
    return np.clip(base + stripes + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)


def as_image(u8: np.ndarray) -> torch.Tensor:
    """IMAGE batch of one, as the host's Load Image makes it (float32 k / 255)."""
    return torch.from_numpy(u8.astype(np.float32) / 255.0)[None]


# --- tests ------------------------------------------------------------------------------------------

def test_constants_are_the_official_clip_ones():
    assert OFFICIAL_SIZE == 224
    assert list(OFFICIAL_MEAN) == MEAN and list(OFFICIAL_STD) == STD


def test_range_map_matches_official_float64_formula_for_every_8bit_level():
    k = np.arange(256)
    official = bf16(k / 127.5 - 1)  # float64 then bf16, as the official batch
    ours = to_official_range(torch.from_numpy((k.astype(np.float32) / 255.0)).view(1, 1, 256, 1).expand(1, 1, 256, 3))
    assert ours.dtype == BF16 and ours.shape == (1, 3, 1, 256)
    for c in range(3):
        assert torch.equal(ours[0, c, 0].float(), official)
    # also for values between the 8-bit levels: the same bf16 value as the map done exactly
    v = torch.linspace(0, 1, 4097, dtype=torch.float32)
    exact = bf16(v.double() * 2 - 1)
    assert torch.equal(to_official_range(v.view(1, 1, -1, 1).expand(1, 1, -1, 3))[0, 0, 0].float(), exact)


def test_resize_is_bicubic_without_antialias_rounded_once():
    u8 = image_u8(72, 128, seed=1)
    x = bf16(u8.astype(np.float64) / 127.5 - 1)
    ours = resize_bicubic_bf16(x.permute(2, 0, 1)[None].to(BF16), 224)[0].float()
    exact = torch.from_numpy(reference_resize_f64(x.double().numpy().transpose(2, 0, 1), 224))
    half_ulp = exact.abs().clamp_min(2.0 ** -126).log2().floor().exp2() / 256
    # ours is the exact value rounded once to bf16, up to float32 arithmetic error (~1e-6): a second
    # rounding (bf16 intermediates, as the CPU bf16 kernel has) would be off by up to a whole ulp
    assert ((ours.double() - exact).abs() <= half_ulp + 4e-6).all()
    assert (ours != bf16(exact)).float().mean() < 1e-3


def test_downscale_is_not_antialiased_nor_cropped():
    u8 = image_u8(720, 1280, seed=2)
    x = bf16(u8.astype(np.float64) / 127.5 - 1)
    ours = resize_bicubic_bf16(x.permute(2, 0, 1)[None].to(BF16), 224)[0].float()
    aa = torch.nn.functional.interpolate(x.permute(2, 0, 1)[None], size=(224, 224), mode="bicubic",
                                         antialias=True)[0]
    ref = bf16(reference_resize_f64(x.double().numpy().transpose(2, 0, 1), 224))
    assert (ours - ref).abs().max() <= 2 ** -6  # at most one ulp near |value| 1
    assert (ours - aa).abs().mean() > 0.05      # antialias would be a visibly different picture


@pytest.mark.parametrize("hw", [(72, 128), (720, 1280), (224, 224), (300, 200)])
def test_official_pixel_values_equal_the_restatement(hw):
    u8 = image_u8(*hw, seed=3)
    ours = official_pixel_values(as_image(u8))
    assert ours.dtype == BF16 and ours.shape == (1, 3, 224, 224)
    ref = reference_official(u8)
    diff = (ours[0].float() - ref).abs()
    # only the rare float32-vs-exact resize roundings may differ, by a bf16 ulp carried through
    assert (diff > 0).float().mean() < 1e-3
    assert diff.max() <= 2 ** -6 / min(STD) * 1.01


def test_bf16_arithmetic_is_kept_not_float32():
    """The official normalisation runs in bfloat16: a float32 pipeline (same resize) gives other values."""
    u8 = image_u8(720, 1280, seed=4)
    ours = official_pixel_values(as_image(u8))[0].float()
    x = torch.from_numpy(u8.astype(np.float64) / 127.5 - 1).float().permute(2, 0, 1)[None]
    r = torch.nn.functional.interpolate(x, size=(224, 224), mode="bicubic", align_corners=False)[0]
    f32 = (r * 0.5 + 0.5 - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    d = (ours - f32).abs()
    assert d.max() > 1e-3 and d.max() < 0.05  # bf16 rounding: small but real
    # and ours is exactly representable in bf16
    assert torch.equal(bf16(ours), ours)


def test_identity_size_and_extremes():
    """A 224 x 224 white/black image: the resize is the identity; the values are (+-1 -> 1|0 - mean) / std
    with bf16 mean/std and a bf16 subtraction and division."""
    img = torch.zeros(1, 224, 224, 3)
    img[:, :, 112:] = 1.0
    out = official_pixel_values(img)[0].float()
    m, s = bf16(MEAN), bf16(STD)
    white = bf16(bf16(1.0 - m) / s)
    black = bf16(bf16(0.0 - m) / s)
    for c in range(3):
        assert torch.all(out[c, :, 112:] == white[c])
        assert torch.all(out[c, :, :112] == black[c])


def test_alpha_dropped_and_batch_is_per_image():
    a, b = image_u8(64, 96, seed=5), image_u8(64, 96, seed=6)
    batch = torch.cat([as_image(a), as_image(b)])
    rgba = torch.cat([batch, torch.rand(2, 64, 96, 1)], dim=-1)
    out = official_pixel_values(rgba)
    assert torch.equal(out[0], official_pixel_values(as_image(a))[0])
    assert torch.equal(out[1], official_pixel_values(as_image(b))[0])
    assert torch.equal(official_pixel_values(batch, device=torch.device("cpu")), out)


def test_official_differs_from_host_on_a_downscaled_1280x720_reference():
    u8 = image_u8(720, 1280, seed=7)
    ours = official_pixel_values(as_image(u8))[0].float()
    host = reference_host(as_image(u8)[0])
    # antialias makes a different (softer) picture: far beyond bf16 or 8-bit rounding
    assert (ours - host).abs().mean() > 0.1
    assert ours.std() > host.std()  # no antialias keeps the fine detail (aliased)
    # without a resize the two agree up to 8-bit / bf16 rounding only
    u8s = image_u8(224, 224, seed=8)
    ours_s = official_pixel_values(as_image(u8s))[0].float()
    host_s = reference_host(as_image(u8s)[0])
    assert (ours_s - host_s).abs().max() < 0.04


def test_torchvision_normalize_agrees_when_available():
    """The official code normalises with torchvision's Normalize on the bf16 tensor."""
    tv = pytest.importorskip("torchvision.transforms")
    u8 = image_u8(100, 180, seed=9)
    x = to_official_range(as_image(u8))
    r = resize_bicubic_bf16(x, 224)[0]
    expected = tv.Normalize(mean=MEAN, std=STD)(r.mul(0.5).add(0.5))
    assert expected.dtype == BF16
    assert torch.equal(official_pixel_values(as_image(u8))[0], expected)


def test_official_mismatch():
    class Model:
        image_size = 224
        image_mean = MEAN
        image_std = STD

    assert official_mismatch(Model()) is None
    m = Model()
    m.image_size = 384
    assert "384 px" in official_mismatch(m)
    m = Model()
    m.image_mean = [0.5, 0.5, 0.5]
    assert "mean" in official_mismatch(m)
