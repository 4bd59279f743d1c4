"""The official flow-matching solvers (models/flow_solvers.py) against independent re-statements of
the official formulas (wan/utils/fm_solvers_unipc.py, wan/utils/fm_solvers.py) on a toy flow
problem whose exact denoiser is known: data = a 1-D Gaussian mixture (every latent element iid),
so E[x0 | x_t] has a closed form."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wan_animate_kit.models import flow_solvers as fs

# -- toy problem ---------------------------------------------------------------------------------

WEIGHTS = np.array([0.3, 0.5, 0.2])
MEANS = np.array([-1.5, 0.2, 1.8])
STDS = np.array([0.3, 0.5, 0.2])


def exact_x0(x: np.ndarray, sigma: float) -> np.ndarray:
    """E[x0 | x_t = x] for x_t = (1 - sigma) x0 + sigma eps, x0 ~ the mixture (float64)."""
    a = 1.0 - sigma
    var = a * a * STDS ** 2 + sigma * sigma
    xe = x[..., None]
    logp = np.log(WEIGHTS) - 0.5 * np.log(2 * np.pi * var) - 0.5 * (xe - a * MEANS) ** 2 / var
    post = np.exp(logp - logp.max(axis=-1, keepdims=True))
    post /= post.sum(axis=-1, keepdims=True)
    cond = MEANS + a * STDS ** 2 / var * (xe - a * MEANS)
    return (post * cond).sum(axis=-1)


def torch_denoiser(x, sigma, **_):
    s = float(sigma.reshape(-1)[0])
    return torch.from_numpy(exact_x0(x.numpy(), s)).to(x.dtype)


def lam(s: float) -> float:
    if s >= 1.0:
        return -math.inf
    return math.log(1.0 - s) - math.log(s) if s > 0 else math.inf


# -- independent step-by-step references (float64, plain Python/numpy) ---------------------------

def reference_unipc(x: np.ndarray, sig: list[float]) -> np.ndarray:
    """The official FlowUniPCMultistepScheduler.step loop (bh2, order 2, predict_x0,
    lower_order_final, corrector after the first step), written out with scalars."""
    n = len(sig) - 1
    ms: list[np.ndarray] = []  # x0 predictions, newest last
    prev_x = None
    prev_p = None
    warm = 0
    for i in range(n):
        m = exact_x0(x, sig[i])
        if i > 0:
            # UniC of order prev_p from sig[i-1] to sig[i]
            st, s0 = sig[i], sig[i - 1]
            h = lam(st) - lam(s0)
            a_t = 1.0 - st
            e = math.expm1(-h)  # h*phi_1(-h) and B(h) for bh2 are both e^{-h} - 1
            base = st / s0 * prev_x - a_t * e * ms[-1]
            g1 = (e / -h - 1.0) / e  # b_1 = (phi_1-ish term) / B(h)
            if prev_p == 1:
                x = base - a_t * e * 0.5 * (m - ms[-1])
            else:
                r = (lam(sig[i - 2]) - lam(s0)) / h
                k2 = ((e / -h - 1.0) / -h - 0.5) * 2.0 / e
                # solve [[1, 1], [r, 1]] [c0, c1] = [g1, k2] by Cramer's rule
                det = 1.0 - r
                c0 = (g1 - k2) / det
                c1 = (k2 - r * g1) / det
                d1 = (ms[-2] - ms[-1]) / r
                x = base - a_t * e * (c0 * d1 + c1 * (m - ms[-1]))
        ms = (ms + [m])[-2:]
        p = min(2, n - i, warm + 1)
        prev_x = x
        st, s0 = sig[i + 1], sig[i]
        a_t = 1.0 - st
        if st == 0.0:
            x = ms[-1].copy()  # h = inf: e^{-h} - 1 = -1, so x = x0 prediction (order 1 at the end)
        else:
            h = lam(st) - lam(s0)
            e = math.expm1(-h)
            x_new = st / s0 * x - a_t * e * ms[-1]
            if p == 2:
                r = (lam(sig[i - 1]) - lam(s0)) / h
                x_new = x_new - a_t * e * 0.5 * (ms[-2] - ms[-1]) / r
            x = x_new
        prev_p = p
        warm = min(warm + 1, 2)
    return x


def reference_dpmpp(x: np.ndarray, sig: list[float]) -> np.ndarray:
    """The official FlowDPMSolverMultistepScheduler.step loop (dpmsolver++, midpoint, order 2,
    first order on the first step and on the last (final sigma 0))."""
    n = len(sig) - 1
    ms: list[np.ndarray] = []
    for i in range(n):
        ms = (ms + [exact_x0(x, sig[i])])[-2:]
        st, s0 = sig[i + 1], sig[i]
        a_t = 1.0 - st
        if st == 0.0:
            x = ms[-1].copy()
            continue
        h = lam(st) - lam(s0)
        coef = a_t * (math.exp(-h) - 1.0)
        x_new = st / s0 * x - coef * ms[-1]
        if i > 0:
            h0 = lam(s0) - lam(sig[i - 1])
            x_new = x_new - 0.5 * coef * (ms[-1] - ms[-2]) * h / h0
        x = x_new
    return x


def schedule64(steps: int, shift: float, solver: str) -> list[float]:
    """Independent statement of the official sigma list (float64 values, final 0)."""
    if solver == fs.UNIPC:
        top = float(np.float32(0.999))
        s = [top - top * k / steps for k in range(steps)]
    else:
        s = [1.0 - k / steps for k in range(steps)]
    return [shift * v / (1 + (shift - 1) * v) for v in s] + [0.0]


def exact_ode(x: np.ndarray, s_start: float, n: int = 1500) -> np.ndarray:
    """The probability-flow ODE dx/dsigma = (x - E[x0|x]) / sigma from s_start to 0 (RK4 in
    log-sigma down to 1e-6, then the x0 prediction)."""
    def f(u, logs):
        s = math.exp(logs)
        return x_dot(u, s) * s

    def x_dot(u, s):
        return (u - exact_x0(u, s)) / s

    a, b = math.log(s_start), math.log(1e-6)
    hstep = (b - a) / n
    u = x.copy()
    t = a
    for _ in range(n):
        k1 = f(u, t)
        k2 = f(u + 0.5 * hstep * k1, t + 0.5 * hstep)
        k3 = f(u + 0.5 * hstep * k2, t + 0.5 * hstep)
        k4 = f(u + hstep * k3, t + hstep)
        u = u + hstep / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        t += hstep
    return exact_x0(u, 1e-6)


def start_noise(seed: int = 0) -> torch.Tensor:
    return torch.randn(1, 2, 3, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# -- schedules -----------------------------------------------------------------------------------

@pytest.mark.parametrize("solver", [fs.UNIPC, fs.DPMPP])
@pytest.mark.parametrize("steps,shift", [(20, 5.0), (6, 8.0), (4, 5.0), (30, 5.0), (50, 3.0)])
def test_official_sigmas_and_timesteps(solver, steps, shift):
    ref = schedule64(steps, shift, solver)
    got = fs.official_sigmas(steps, shift, solver)
    assert got.dtype == torch.float32 and len(got) == steps + 1 and float(got[-1]) == 0.0
    assert np.array_equal(got.numpy(), np.array(ref, np.float64).astype(np.float32))
    ts = fs.official_timesteps(steps, shift, solver)
    assert ts == [int(v * 1000) for v in np.array(ref[:-1], np.float64)]
    # the sampler recovers the same integers from the float32 SIGMAS alone
    assert fs.timesteps_for(got, solver) == ts


def test_schedule_literals():
    # official values (wan/animate.py at 20 steps, shift 5): UniPC ends 0.357 -> 0.208 -> 0
    s = fs.official_sigmas(20, 5.0, fs.UNIPC)
    assert float(s[0]) == pytest.approx(4.995 / 4.996, abs=1e-7)
    assert float(s[-2]) == pytest.approx(0.24975 / 1.1998, abs=1e-7) and float(s[-3]) == pytest.approx(0.3569, abs=1e-4)
    assert fs.official_timesteps(20, 5.0, fs.UNIPC) == [999, 989, 978, 965, 952, 937, 920, 902, 882, 859, 833, 803,
                                                        768, 728, 681, 624, 555, 468, 356, 208]
    d = fs.official_sigmas(20, 5.0, fs.DPMPP)
    assert float(d[0]) == 1.0 and fs.official_timesteps(20, 5.0, fs.DPMPP)[0] == 1000


@pytest.mark.parametrize("steps,shift,index,value", [(30, 5.0, 25, 499), (50, 3.0, 15, 874), (50, 3.0, 45, 249)])
def test_timesteps_where_float32_rounding_crosses_an_integer(steps, shift, index, value):
    """int(float32 sigma * 1000) is one off here; the official float64 value must be used."""
    sig = fs.official_sigmas(steps, shift, fs.DPMPP)
    assert int(float(sig[index]) * 1000) == value + 1
    assert fs.timesteps_for(sig, fs.DPMPP)[index] == value


def test_unknown_schedule_falls_back_to_truncation():
    sig = torch.tensor([0.9, 0.61, 0.3, 0.0])
    assert fs.timesteps_for(sig, fs.UNIPC) == [int(math.floor(float(v) * 1000)) for v in sig[:-1].double()]


def test_schedule_rejects_bad_arguments():
    with pytest.raises(ValueError, match="steps"):
        fs.official_sigmas(0, 5.0)
    with pytest.raises(ValueError, match="shift"):
        fs.official_sigmas(4, 0.0)
    with pytest.raises(ValueError, match="solver"):
        fs.official_sigmas(4, 5.0, "euler")


# -- solvers on the toy problem ------------------------------------------------------------------------

@pytest.mark.parametrize("solver,reference", [(fs.UNIPC, reference_unipc), (fs.DPMPP, reference_dpmpp)])
@pytest.mark.parametrize("steps", [1, 2, 3, 4, 20])
def test_solver_equals_step_by_step_reference(solver, reference, steps):
    sig64 = schedule64(steps, 5.0, solver)
    sigmas = torch.tensor(sig64, dtype=torch.float64)
    before = sigmas.clone()
    x = start_noise(steps)
    got = fs.sample_official(torch_denoiser, x.clone(), sigmas, solver=solver, disable=True)
    want = reference(x.numpy(), sig64)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12)
    assert torch.equal(sigmas, before)


@pytest.mark.parametrize("solver", [fs.UNIPC, fs.DPMPP])
def test_solvers_converge_to_the_exact_ode_solution(solver):
    x = start_noise(3)
    exact = exact_ode(x.numpy(), schedule64(1, 5.0, solver)[0] if solver == fs.UNIPC else 1 - 1e-9)
    errors = []
    for steps in (4, 20, 200):
        sig = torch.tensor(schedule64(steps, 5.0, solver), dtype=torch.float64)
        got = fs.sample_official(torch_denoiser, x.clone(), sig, solver=solver, disable=True).numpy()
        errors.append(np.abs(got - exact).max())
    assert errors[2] < errors[1] < errors[0]
    assert errors[1] < 0.2 and errors[2] < 5e-3  # narrow mixture components: a stiff toy ODE


def test_float32_run_matches_float64_closely_and_keeps_dtype():
    x = start_noise(1)
    sig = fs.official_sigmas(20, 5.0, fs.UNIPC)
    got = fs.sample_official(torch_denoiser, x.float(), sig, solver=fs.UNIPC, disable=True)
    want = reference_unipc(x.numpy(), [float(v) for v in sig.double()])
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.double().numpy(), want, atol=2e-5)


def test_model_sees_the_noise_first_and_callback_like_host():
    x = start_noise(2).float()
    seen, events = [], []

    def model(xx, sigma, **kw):
        seen.append((xx.clone(), sigma.clone(), kw))
        return torch_denoiser(xx, sigma)

    sig = fs.official_sigmas(4, 5.0, fs.UNIPC)
    fs.sample_official(model, x.clone(), sig, extra_args={"seed": 3}, callback=events.append, solver=fs.UNIPC,
                       disable=True)
    assert len(seen) == 4 and torch.equal(seen[0][0], x)
    assert [float(s[1][0]) for s in seen] == [float(v) for v in sig[:-1]]
    assert seen[0][2]["seed"] == 3
    assert [e["i"] for e in events] == [0, 1, 2, 3]
    assert set(events[0]) == {"x", "i", "sigma", "sigma_hat", "denoised"}


def test_last_step_returns_the_x0_prediction():
    x = start_noise(4)
    for solver in fs.SOLVERS:
        sig = torch.tensor(schedule64(1, 5.0, solver), dtype=torch.float64)
        got = fs.sample_official(torch_denoiser, x.clone(), sig, solver=solver, disable=True)
        np.testing.assert_allclose(got.numpy(), exact_x0(x.numpy(), float(sig[0])), atol=1e-14)


def test_bad_sigmas_are_refused_before_any_model_call():
    calls = []

    def model(xx, sigma, **kw):
        calls.append(1)
        return xx

    x = start_noise(0)
    bad = {"ends at sigma 0": [0.9, 0.5], "decrease": [0.5, 0.9, 0.0], "only the last": [0.9, 0.0, 0.0],
           "below 1": [1.0, 0.5, 0.0]}
    for msg, values in bad.items():
        with pytest.raises(ValueError, match=msg):
            fs.sample_official(model, x, torch.tensor(values), solver=fs.UNIPC, disable=True)
    assert not calls
    # DPM++ starts at 1.0 officially
    out = fs.sample_official(torch_denoiser, x.clone(), torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64),
                             solver=fs.DPMPP, disable=True)
    assert torch.isfinite(out).all()
    # a single sigma: nothing to do
    assert torch.equal(fs.sample_official(model, x, torch.tensor([0.5]), solver=fs.UNIPC), x) and not calls


def test_timestep_slot_replaces_only_matching_calls():
    slot = fs.TimestepSlot()
    got = []

    def executor(x, t, *a, **k):
        got.append(t.clone())
        return x

    slot.value, slot.sigma = 208, float(np.float32(0.2081911))
    slot.wrapper(executor, torch.zeros(1), torch.tensor([np.float32(0.2081911) * np.float32(1000)]))
    slot.wrapper(executor, torch.zeros(1), torch.tensor([500.0]))  # another call: untouched
    assert got[0].tolist() == [208.0] and got[1].tolist() == [500.0] and slot.calls == 1
