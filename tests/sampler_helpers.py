"""Shared helpers for the sampler tests."""
from __future__ import annotations


def animate_settings(width: int, height: int, **kw):
    """AnimateSettings for quick CPU runs: euler/simple, 9-frame segments, guidance 1, cache off."""
    from wan_animate_kit.models.animate_sampler import AnimateSettings

    base = dict(seed=5, steps=1, cfg=1.0, sampler_name="euler", scheduler="simple", clip_len=9, guidance=1,
                width=width, height=height, cache=False)
    base.update(kw)
    return AnimateSettings(**base)
