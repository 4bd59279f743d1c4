"""The official Wan2.2 flow-matching solvers, in the host's k-diffusion calling convention.

Official sources (Wan2.2 repository):

* UniPC: ``wan/utils/fm_solvers_unipc.py``, ``FlowUniPCMultistepScheduler`` as
  ``wan/animate.py`` ``WanAnimate.generate`` builds it (``shift=1``, then
  ``set_timesteps(steps, shift=shift)``): B(h) = expm1(-h) ("bh2"), ``solver_order=2``,
  ``predict_x0``, ``lower_order_final``, the UniC corrector on every step but the first. It is
  the default of ``generate.py`` (``--sample_solver unipc``).
* DPM++: ``wan/utils/fm_solvers.py``, ``FlowDPMSolverMultistepScheduler`` with
  ``get_sampling_sigmas(steps, shift)`` passed through ``retrieve_timesteps(..., sigmas=...)``:
  ``dpmsolver++``, ``midpoint``, order 2, first order on the first and on the last step (the
  final sigma is 0). It is the default of ``WanAnimate.generate`` when called directly.

Both work on x0 predictions. For flow models x0 = x - sigma * v, which is exactly what the host's
flow models return as "denoised" (``comfy.model_sampling.CONST.calculate_denoised``), so the
samplers here call ``model(x, sigma * s_in, **extra_args)`` and use its result directly.

Schedules (``set_timesteps``): ``s`` = ``linspace(sigma_max, 0, steps + 1)[:-1]`` (UniPC;
``sigma_max`` is the float32 0.999 of the 1000-step training grid) or ``linspace(1, 0, steps +
1)[:steps]`` (DPM++), shifted in float64 by ``shift * s / (1 + (shift - 1) * s)``; the model's
timesteps are that float64 list times 1000 cast to int64 (truncated), the solver's sigmas the same
list cast to float32 with a final 0 appended.

The step arithmetic follows the official order of float32 scalar operations (scalars are 0-dim
CPU tensors in the working precision: float32, or float64 when the latent is float64), so with the
same model outputs the result is the same to the last bit. This module has no host import at
module level; :func:`timestep_wrapper_options` imports ``comfy.patcher_extension`` when called.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch

UNIPC = "unipc"
DPMPP = "dpm++"
SOLVERS = (UNIPC, DPMPP)
TRAIN_TIMESTEPS = 1000
WRAPPER_KEY = "wan_animate_kit_official_timestep"


# -- schedules ---------------------------------------------------------------------------------

def _unipc_sigma_max() -> float:
    """sigma_max of the official UniPC scheduler: the first value of its 1000-step training grid,
    1 - 1/1000 stored as float32 and read back as a Python float."""
    grid = 1.0 - np.linspace(1.0, 1.0 / TRAIN_TIMESTEPS, TRAIN_TIMESTEPS)[::-1]
    return float(torch.tensor(grid[0], dtype=torch.float32).item())


def _check_schedule_args(steps: int, shift: float, solver: str) -> None:
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if int(steps) < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if not (shift > 0 and math.isfinite(shift)):
        raise ValueError(f"shift must be a positive number, got {shift}")


def shifted_sigmas64(steps: int, shift: float, solver: str = UNIPC) -> np.ndarray:
    """The official float64 sigmas of the ``steps`` model calls (no final 0)."""
    _check_schedule_args(steps, shift, solver)
    n = int(steps)
    if solver == UNIPC:
        base = np.linspace(_unipc_sigma_max(), 0.0, n + 1).copy()[:-1]
    else:
        base = np.linspace(1.0, 0.0, n + 1)[:n]
    shift = float(shift)
    return shift * base / (1 + (shift - 1) * base)


def official_sigmas(steps: int, shift: float, solver: str = UNIPC) -> torch.Tensor:
    """float32 [steps + 1]: the official solver's sigmas, ending in 0 (a host SIGMAS tensor)."""
    s = shifted_sigmas64(steps, shift, solver)
    return torch.from_numpy(np.concatenate([s, [0.0]]).astype(np.float32))


def official_timesteps(steps: int, shift: float, solver: str = UNIPC) -> list[int]:
    """The integer timesteps the official loop gives the DiT: int64(sigma64 * 1000), truncated."""
    t = shifted_sigmas64(steps, shift, solver) * TRAIN_TIMESTEPS
    return [int(v) for v in torch.from_numpy(t).to(torch.int64)]


def _shift_candidates(sigmas64: np.ndarray, base: np.ndarray) -> list[float]:
    """Shifts that could have produced ``sigmas64`` from ``base`` (inverting the shift formula at
    the best-conditioned interior point, then the decimal roundings a UI would give)."""
    inner = [i for i in range(len(base)) if 0.05 < base[i] < 0.95 and 0 < sigmas64[i] < 1]
    if not inner:
        inner = [i for i in range(len(base)) if 0 < base[i] < 1 and 0 < sigmas64[i] < 1]
    if not inner:
        return []
    i = min(inner, key=lambda k: abs(base[k] - 0.5))
    s, y = float(base[i]), float(sigmas64[i])
    est = y * (1 - s) / (s * (1 - y))
    return [round(est, d) for d in range(0, 7)] + [est]


def timesteps_for(sigmas: torch.Tensor, solver: str) -> list[int]:
    """The official integer timestep of each sigma but the last.

    When ``sigmas`` is an official schedule (see :func:`official_sigmas`) for some shift, its exact
    float64 timesteps are used; otherwise ``int(float64(sigma) * 1000)`` (equal except where the
    float32 rounding of a sigma crosses an integer timestep).
    """
    sig = sigmas.detach().to("cpu", torch.float64).numpy()
    n = len(sig) - 1
    if n < 1:
        return []
    if sig[-1] == 0.0 and solver in SOLVERS:
        base = (np.linspace(_unipc_sigma_max(), 0.0, n + 1).copy()[:-1] if solver == UNIPC
                else np.linspace(1.0, 0.0, n + 1)[:n])
        target = sigmas.detach().to("cpu", torch.float32)
        for shift in _shift_candidates(sig[:-1], base):
            if shift > 0 and torch.equal(official_sigmas(n, shift, solver), target):
                return official_timesteps(n, shift, solver)
    return [int(math.floor(v * TRAIN_TIMESTEPS)) for v in sig[:-1]]


# -- the official timestep on the way to the DiT -------------------------------------------------

class TimestepSlot:
    """The integer timestep of the model call in progress, read by the DIFFUSION_MODEL wrapper."""

    def __init__(self):
        self.value: int | None = None
        self.sigma: float | None = None
        self.calls = 0

    def wrapper(self, executor, x, timestep, *args, **kwargs):
        # Replace the host's float sigma * 1000 by the official int only for the call it belongs to.
        if self.value is not None and self.sigma is not None and torch.is_tensor(timestep):
            expected = self.sigma * TRAIN_TIMESTEPS
            if float((timestep.double() - expected).abs().max()) < 1.0:
                timestep = torch.full_like(timestep, float(self.value))
                self.calls += 1
        return executor(x, timestep, *args, **kwargs)


def timestep_wrapper_options(extra_args: dict | None, slot: TimestepSlot) -> dict:
    """A copy of ``extra_args`` whose model_options carry ``slot``'s DIFFUSION_MODEL wrapper
    (after any wrapper already there; the caller's dicts are not modified)."""
    import comfy.patcher_extension as pe

    extra = dict(extra_args or {})
    options = pe.copy_nested_dicts(extra.get("model_options", {}) or {})
    pe.add_wrapper_with_key(pe.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY, slot.wrapper, options,
                            is_model_options=True)
    extra["model_options"] = options
    return extra


# -- solver arithmetic -------------------------------------------------------------------------

def _scalar_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _lam(sigma: torch.Tensor) -> torch.Tensor:
    """log-SNR of a flow sigma: log(alpha) - log(sigma) with alpha = 1 - sigma."""
    return torch.log(1 - sigma) - torch.log(sigma)


def _bh_coefficients(h: torch.Tensor, rks: list, order: int, dtype):
    """R (order x order) and b of the UniPC B(h) system for x0 prediction with B(h) = expm1(-h)."""
    hh = -h
    h_phi_1 = torch.expm1(hh)
    b_h = torch.expm1(hh)
    h_phi_k = h_phi_1 / hh - 1
    fact = 1
    r_vec = torch.stack([torch.as_tensor(r, dtype=dtype) for r in rks])
    rows, b = [], []
    for i in range(1, order + 1):
        rows.append(torch.pow(r_vec, i - 1))
        b.append(h_phi_k * fact / b_h)
        fact *= i + 1
        h_phi_k = h_phi_k / hh - 1 / fact
    return h_phi_1, b_h, torch.stack(rows), torch.stack(b)


def unipc_predict(x: torch.Tensor, outputs: Sequence[torch.Tensor], sig: torch.Tensor, i: int,
                  order: int) -> torch.Tensor:
    """UniP-``order`` step from sig[i] to sig[i + 1]; ``outputs[-1]`` is the x0 at sig[i],
    ``outputs[-1 - k]`` the one at sig[i - k] (official ``multistep_uni_p_bh_update``)."""
    dtype = sig.dtype
    s_t, s_0 = sig[i + 1], sig[i]
    a_t = 1 - s_t
    l_0 = _lam(s_0)
    h = _lam(s_t) - l_0
    m0 = outputs[-1]
    rks, diffs = [], []
    for k in range(1, order):
        rk = (_lam(sig[i - k]) - l_0) / h
        rks.append(rk)
        diffs.append((outputs[-1 - k] - m0) / rk)
    rks.append(torch.tensor(1.0, dtype=dtype))
    h_phi_1, b_h, _, _ = _bh_coefficients(h, rks, order, dtype)
    out = s_t / s_0 * x - a_t * h_phi_1 * m0
    if diffs:
        # order 2 (the official maximum here): rho = 1/2, a single difference term
        out = out - a_t * b_h * (diffs[0] * 0.5)
    return out.to(x.dtype)


def unipc_correct(x_prev: torch.Tensor, x_now: torch.Tensor, m_now: torch.Tensor, outputs: Sequence[torch.Tensor],
                  sig: torch.Tensor, i: int, order: int) -> torch.Tensor:
    """UniC-``order`` correction of ``x_now`` (at sig[i], predicted from ``x_prev`` at sig[i - 1]),
    with ``m_now`` the x0 just computed at ``x_now``; ``outputs[-1]`` is the x0 at sig[i - 1]
    (official ``multistep_uni_c_bh_update``)."""
    dtype = sig.dtype
    s_t, s_0 = sig[i], sig[i - 1]
    a_t = 1 - s_t
    l_0 = _lam(s_0)
    h = _lam(s_t) - l_0
    m0 = outputs[-1]
    rks, diffs = [], []
    for k in range(1, order):
        rk = (_lam(sig[i - 1 - k]) - l_0) / h
        rks.append(rk)
        diffs.append((outputs[-1 - k] - m0) / rk)
    rks.append(torch.tensor(1.0, dtype=dtype))
    h_phi_1, b_h, r_mat, b = _bh_coefficients(h, rks, order, dtype)
    rhos = torch.tensor([0.5], dtype=dtype) if order == 1 else torch.linalg.solve(r_mat, b)
    rhos = rhos.to(x_now.dtype)
    base = s_t / s_0 * x_prev - a_t * h_phi_1 * m0
    last = rhos[-1] * (m_now - m0)
    if diffs:
        corr = rhos[0] * diffs[0]
        for k in range(1, len(diffs)):
            corr = corr + rhos[k] * diffs[k]
        total = corr + last
    else:
        total = last
    return (base - a_t * b_h * total).to(x_now.dtype)


def dpmpp_step(x: torch.Tensor, outputs: Sequence[torch.Tensor], sig: torch.Tensor, i: int,
               second_order: bool) -> torch.Tensor:
    """DPM-Solver++ step from sig[i] to sig[i + 1] (official ``dpm_solver_first_order_update`` /
    ``multistep_dpm_solver_second_order_update`` with the midpoint rule)."""
    s_t, s_0 = sig[i + 1], sig[i]
    a_t = 1 - s_t
    l_t, l_0 = _lam(s_t), _lam(s_0)
    h = l_t - l_0
    m0 = outputs[-1]
    if not second_order:
        return (s_t / s_0) * x - (a_t * (torch.exp(-h) - 1.0)) * m0
    h_0 = l_0 - _lam(sig[i - 1])
    r0 = h_0 / h
    d1 = (1.0 / r0) * (m0 - outputs[-2])
    coef = a_t * (torch.exp(-h) - 1.0)
    return (s_t / s_0) * x - coef * m0 - 0.5 * coef * d1


# -- k-diffusion style samplers --------------------------------------------------------------------

def _check_sigmas(sigmas: torch.Tensor, solver: str) -> torch.Tensor:
    sig = sigmas.detach().to("cpu")
    if sig.ndim != 1 or len(sig) < 1:
        raise ValueError(f"sigmas must be a 1-D list, got shape {tuple(sigmas.shape)}")
    if not torch.isfinite(sig).all():
        raise ValueError("sigmas contain NaN or inf")
    if len(sig) < 2:
        return sig
    if float(sig[-1]) != 0.0:
        raise ValueError(f"the official {solver} solver ends at sigma 0, the last sigma is {float(sig[-1])}: "
                         "use the Wan-Animate official SIGMAS (or a full schedule ending in 0)")
    inner = sig[:-1]
    if bool((inner <= 0).any()):
        raise ValueError("only the last sigma may be 0: the official solver cannot step from sigma 0")
    if bool((inner[1:] >= inner[:-1]).any()):
        raise ValueError("sigmas must decrease")
    if solver == UNIPC and bool((inner >= 1).any()):
        raise ValueError("the official UniPC needs sigmas below 1 (its schedule starts at 0.999; at 1 its log-SNR "
                         "is -inf): use the Wan-Animate official SIGMAS with solver unipc")
    if bool((inner > 1).any()):
        raise ValueError("flow sigmas must be at most 1")
    return sig


def sample_official(model, x: torch.Tensor, sigmas: torch.Tensor, extra_args=None, callback=None, disable=None,
                    solver: str = UNIPC, timesteps: Sequence[int] | None = None) -> torch.Tensor:
    """Run the official ``solver`` over ``sigmas`` (never modified). ``model(x, sigma)`` returns x0.

    Every model call gets the official integer timestep through a DIFFUSION_MODEL wrapper added to
    a copy of ``extra_args['model_options']`` (``timesteps`` or :func:`timesteps_for`). The
    callback receives ``{"x", "i", "sigma", "sigma_hat", "denoised"}`` like the host's samplers.
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    sig_in = _check_sigmas(sigmas, solver)
    n = len(sig_in) - 1
    if n < 1:
        return x
    sig = sig_in.to(_scalar_dtype(x))
    ts = list(timesteps) if timesteps is not None else timesteps_for(sig_in, solver)
    if len(ts) != n:
        raise ValueError(f"{len(ts)} timesteps for {n} steps")
    slot = TimestepSlot()
    extra = timestep_wrapper_options(extra_args, slot) if _host_available() else dict(extra_args or {})
    s_in = x.new_ones([x.shape[0]])
    outputs: list[torch.Tensor] = []
    x_prev = None
    prev_order = 1
    done = 0  # lower_order_nums
    try:
        from tqdm.auto import trange
    except ImportError:  # pragma: no cover
        trange = None
    steps = trange(n, disable=disable) if trange is not None else range(n)
    for i in steps:
        sigma = sigmas[i]
        slot.value, slot.sigma = int(ts[i]), float(sig_in[i])
        denoised = model(x, sigma * s_in, **extra)
        slot.value = slot.sigma = None
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        if solver == UNIPC:
            if i > 0 and x_prev is not None:
                x = unipc_correct(x_prev, x, denoised, outputs, sig, i, prev_order)
            outputs = (outputs + [denoised])[-2:]
            order = min(2, n - i, done + 1)  # lower_order_final, then the multistep warm-up
            x_prev = x
            x = unipc_predict(x, outputs, sig, i, order)
            prev_order = order
        else:
            outputs = (outputs + [denoised])[-2:]
            first = done < 1 or i == n - 1  # first step, and the last (final sigma 0)
            x = dpmpp_step(x.to(torch.float32) if x.dtype != torch.float64 else x, outputs, sig, i, not first)
            x = x.to(denoised.dtype)
        done = min(done + 1, 2)
    return x


def _host_available() -> bool:
    try:
        import comfy.patcher_extension  # noqa: F401
    except ImportError:
        return False
    return True


def sampler_function(solver: str) -> Callable:
    """A k-diffusion style ``sampler_function`` for ``comfy.samplers.KSAMPLER``."""
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")

    def sample(model, x, sigmas, extra_args=None, callback=None, disable=None):
        return sample_official(model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable,
                               solver=solver)

    sample.__name__ = f"sample_official_{'unipc' if solver == UNIPC else 'dpmpp'}"
    return sample


# -- host objects --------------------------------------------------------------------------------

SOLVER_LABELS = {UNIPC: "official UniPC (bh2, order 2)", DPMPP: "official DPM++ (2M midpoint)"}


def official_ksampler(solver: str):
    """``comfy.samplers.KSAMPLER`` running the official ``solver`` (a host SAMPLER)."""
    import comfy.samplers

    ks = comfy.samplers.KSAMPLER(sampler_function(solver))
    ks.wan_animate_kit_solver = solver  # identity for the resume cache
    return ks


def with_flow_shift(model, shift: float, official_start: bool = True):
    """A clone of the host MODEL whose model_sampling is a flow schedule with ``shift`` (as core
    ModelSamplingSD3 does: ``add_object_patch('model_sampling', ...)``).

    With ``official_start`` the initial latent of a full-denoise run is the noise itself, as in the
    official loop (``latents = noise``), instead of the host's ``sigma * noise + (1 - sigma) *
    latent`` (the Wan-Animate sampler always denoises fully from an empty latent). Without it the
    host's scaling stays.
    """
    import comfy.model_sampling

    class WanAnimateFlowSampling(comfy.model_sampling.ModelSamplingDiscreteFlow, comfy.model_sampling.CONST):
        keep_noise = bool(official_start)

        def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
            if self.keep_noise:
                return noise
            return super().noise_scaling(sigma, noise, latent_image, max_denoise)

    m = model.clone()
    sampling = WanAnimateFlowSampling(model.model.model_config)
    sampling.set_parameters(shift=float(shift), multiplier=1000)
    m.add_object_patch("model_sampling", sampling)
    return m
