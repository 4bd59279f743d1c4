"""The official Wan2.2 solvers and schedules as host SAMPLER / SIGMAS, for core SamplerCustom /
SamplerCustomAdvanced (and the Wan-Animate Sampler's optional inputs)."""
from __future__ import annotations

import math

from comfy_api.latest import io

from .common import CATEGORY, PREFIX, InputError

SOLVER_CHOICES = ["official UniPC (bh2, order 2)", "official DPM++ (2M midpoint)"]
SAMPLER_NODE = "Wan-Animate Official Sampler"
SIGMAS_NODE = "Wan-Animate Official Sigmas"


def solver_key(choice: str) -> str:
    from ..models.flow_solvers import DPMPP, UNIPC

    return {SOLVER_CHOICES[0]: UNIPC, SOLVER_CHOICES[1]: DPMPP}[choice]


class OfficialSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "OfficialSampler",
            display_name=SAMPLER_NODE,
            category=CATEGORY + "/sampling",
            description="The official Wan2.2 flow-matching solver as a SAMPLER for core SamplerCustom / "
                        "SamplerCustomAdvanced. Pair it with Wan-Animate Official Sigmas of the same solver. The "
                        "DiT gets the official integer timesteps (int(sigma * 1000)) instead of the host's float "
                        "sigma * 1000. Through core SamplerCustom the host still scales the start noise by the "
                        "first sigma (0.999 * noise); the Wan-Animate Sampler starts from the noise itself, as "
                        "the official loop does.",
            inputs=[
                io.Combo.Input("solver", options=SOLVER_CHOICES, default=SOLVER_CHOICES[0],
                               tooltip="official UniPC: the generate.py default (--sample_solver unipc): UniPC "
                                       "bh2, order 2, x0 prediction, UniC corrector after every step but the "
                                       "first, first order on the last step. The host's uni_pc differs (bh1, "
                                       "order 3, and it drops the last sigma before 0). official DPM++: "
                                       "DPM-Solver++ 2M midpoint, first order on the first and last step (the "
                                       "default of WanAnimate.generate when called directly)."),
            ],
            outputs=[io.Sampler.Output(display_name="SAMPLER")],
        )

    @classmethod
    def execute(cls, solver) -> io.NodeOutput:
        from ..models.flow_solvers import official_ksampler

        if solver not in SOLVER_CHOICES:
            raise InputError(SAMPLER_NODE, "solver", f"unknown choice {solver!r}", f"pick one of {SOLVER_CHOICES}")
        return io.NodeOutput(official_ksampler(solver_key(solver)))


class OfficialSigmas(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "OfficialSigmas",
            display_name=SIGMAS_NODE,
            category=CATEGORY + "/sampling",
            description="The official Wan2.2 sigma schedule: shift * s / (1 + (shift - 1) * s) over "
                        "s = linspace(0.999, 0, steps + 1) without its last value (UniPC) or linspace(1, 0, "
                        "steps + 1) without its last value (DPM++), then a final 0; float32 like the "
                        "official schedulers. Independent of the model's own shift.",
            inputs=[
                io.Int.Input("steps", default=20, min=1, max=1000, tooltip="Sampling steps (official 20)."),
                io.Float.Input("shift", default=5.0, min=0.01, max=100.0, step=0.01,
                               tooltip="Sampling shift (official 5.0)."),
                io.Combo.Input("solver", options=SOLVER_CHOICES, default=SOLVER_CHOICES[0],
                               tooltip="The solver this schedule is for: UniPC and DPM++ start at different "
                                       "sigmas (0.999 and 1.0 before the shift)."),
            ],
            outputs=[io.Sigmas.Output(display_name="SIGMAS")],
        )

    @classmethod
    def execute(cls, steps, shift, solver) -> io.NodeOutput:
        from ..models.flow_solvers import official_sigmas

        if int(steps) < 1:
            raise InputError(SIGMAS_NODE, "steps", f"{steps} < 1", "use at least 1 step (official 20)")
        if not (isinstance(shift, (int, float)) and math.isfinite(shift) and shift > 0):
            raise InputError(SIGMAS_NODE, "shift", f"must be a positive number, got {shift}", "official 5.0")
        if solver not in SOLVER_CHOICES:
            raise InputError(SIGMAS_NODE, "solver", f"unknown choice {solver!r}", f"pick one of {SOLVER_CHOICES}")
        return io.NodeOutput(official_sigmas(int(steps), float(shift), solver_key(solver)))


NODES = [OfficialSampler, OfficialSigmas]
