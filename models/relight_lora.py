"""The Wan2.2-Animate Relighting LoRA: load any of its published key layouts and patch it into the
host's Wan model through the host's own LoRA machinery (official: wan/animate.py,
WanAnimate._configure_model with use_relighting_lora).

The official LoRA (PEFT ``LoraConfig(r=128, lora_alpha=128)``) targets every Linear layer inside
the transformer blocks except face and modulation layers: per block ``self_attn.{q,k,v,o}``,
``cross_attn.{q,k,v,o,k_img,v_img}``, ``ffn.0`` and ``ffn.2`` (480 pairs on the 40-block 14B
model). The host's generic loader only knows ``diffusion_model.``-prefixed names, so the released
PEFT file loads with "lora key not loaded" warnings and silently does nothing (Wan2.2 #205).
Here every layout is normalised to the model's own weight keys, every key must find a target
(unless ``allow_partial``), shapes are checked before anything is patched, and the result is
reported.

Supported key layouts (any of the prefixes ``base_model.model.``, ``model.diffusion_model.``,
``diffusion_model.``, ``transformer.``, ``unet.``, or kohya ``lora_unet_``):

* PEFT: ``blocks.N.<mod>.lora_A.weight`` / ``lora_B.weight`` (also ``.lora_A.default.weight``);
* ComfyUI / kohya: ``lora_down.weight`` / ``lora_up.weight`` with an optional ``.alpha``;
* diffusers module names (``attn1.to_q``, ``attn2.add_k_proj``, ``ffn.net.0.proj``, ...);
* full-weight ``.diff`` and bias ``.diff_b`` tensors on the same layers.

Scale: ``alpha / rank`` when an ``.alpha`` tensor is present, otherwise ``default_scale`` (from a
PEFT ``adapter_config.json`` beside the file, see :func:`peft_config_scale`), otherwise 1.0 (the
official r = lora_alpha = 128).
"""
from __future__ import annotations

import json
import math
import pathlib
import pickle
import re
from dataclasses import dataclass, field

import torch

# The 12 official target layers of one block (§1.13), in block order.
OFFICIAL_TARGETS = ("self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o",
                    "cross_attn.q", "cross_attn.k", "cross_attn.v", "cross_attn.o",
                    "cross_attn.k_img", "cross_attn.v_img", "ffn.0", "ffn.2")
EXCLUDED_WORDS = ("face", "modulation")

# Suffix -> role. Longer suffixes first so ".lora_A.weight" wins over ".lora_A".
_ROLE_SUFFIXES = (
    (".lora_A.default.weight", "down"), (".lora_B.default.weight", "up"),
    (".lora_A.weight", "down"), (".lora_B.weight", "up"),
    (".lora_down.weight", "down"), (".lora_up.weight", "up"),
    (".lora.down.weight", "down"), (".lora.up.weight", "up"),
    (".lora_A", "down"), (".lora_B", "up"),
    (".alpha", "alpha"), (".diff_b", "diff_b"), (".diff", "diff"),
)
_PREFIXES = ("base_model.model.", "model.diffusion_model.", "diffusion_model.", "transformer.", "unet.")
_KOHYA_PREFIXES = ("lora_unet__", "lora_unet_")
# diffusers' WanTransformer3DModel names -> the official / host names
_DIFFUSERS_NAMES = {
    "attn1.to_q": "self_attn.q", "attn1.to_k": "self_attn.k", "attn1.to_v": "self_attn.v",
    "attn1.to_out.0": "self_attn.o", "attn2.to_q": "cross_attn.q", "attn2.to_k": "cross_attn.k",
    "attn2.to_v": "cross_attn.v", "attn2.to_out.0": "cross_attn.o",
    "attn2.add_k_proj": "cross_attn.k_img", "attn2.add_v_proj": "cross_attn.v_img",
    "ffn.net.0.proj": "ffn.0", "ffn.net.2": "ffn.2",
}
_BLOCK_RE = re.compile(r"^blocks\.(\d+)\.(.+)$")
_KOHYA_BLOCK_RE = re.compile(r"^blocks_(\d+)_(.+)$")
# (dim, ffn_dim) of published Wan models, to say what a LoRA was made for
_KNOWN_WAN = {
    (5120, 13824): "Wan 14B (Wan2.1/2.2 T2V/I2V, Wan2.2-Animate-14B)",
    (1536, 8960): "Wan2.1 1.3B",
    (3072, 14336): "Wan2.2 TI2V-5B",
}
_SAFETENSORS = (".safetensors", ".sft")
_PICKLES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")


# --- loading -------------------------------------------------------------------------------------
def load_lora_file(path: str | pathlib.Path) -> dict[str, torch.Tensor]:
    """Read a LoRA file into a flat ``{key: tensor}`` dict on the CPU.

    ``.safetensors``/``.sft`` through safetensors; ``.ckpt``/``.pt``/``.pth``/``.bin``/``.pkl``
    through ``torch.load(weights_only=True)`` (never arbitrary unpickling), taking
    ``["state_dict"]`` when present (the official ``relighting_lora.ckpt``).
    """
    path = pathlib.Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ValueError(f"LoRA file '{path}' does not exist: put it in ComfyUI/models/loras/")
    if suffix in _SAFETENSORS:
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as e:  # truncated download, not a safetensors file
            raise ValueError(f"LoRA file '{path.name}' could not be read as safetensors ({e}); "
                             "re-download it") from e
    if suffix not in _PICKLES:
        raise ValueError(f"LoRA file '{path.name}': unsupported extension '{suffix}'; use .safetensors "
                         "or a PyTorch .ckpt/.pt/.pth/.bin")
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "global" not in str(e).lower():  # random bytes or a cut file, not a refused Python object
            raise ValueError(f"LoRA file '{path.name}' could not be read as a PyTorch checkpoint (truncated or not "
                             "a checkpoint); re-download it or use the .safetensors file") from e
        raise ValueError(f"LoRA file '{path.name}' holds Python objects besides tensors; it is only loaded "
                         "safely (torch.load weights_only=True) and was refused. Convert it to .safetensors "
                         f"or use the official file. Detail: {str(e).splitlines()[0]}") from e
    except Exception as e:  # truncated download, random bytes, a zip that is not a torch file
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ValueError(f"LoRA file '{path.name}' could not be read as a PyTorch checkpoint (truncated or not a "
                         f"checkpoint: {first}); re-download it or use the .safetensors file") from e
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict):
        raise ValueError(f"LoRA file '{path.name}' holds a {type(data).__name__}, expected a dict of tensors")
    tensors = {str(k): v for k, v in data.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ValueError(f"LoRA file '{path.name}' has no tensors (keys: {list(data)[:5]})")
    return tensors


def peft_config_scale(path: str | pathlib.Path) -> float | None:
    """``lora_alpha / r`` (``/ sqrt(r)`` with rsLoRA) from a PEFT ``adapter_config.json`` next to
    ``path``, or None when there is none (then the file's own ``.alpha`` tensors or 1.0 apply)."""
    config = pathlib.Path(path).with_name("adapter_config.json")
    if not config.is_file():
        return None
    try:
        cfg = json.loads(config.read_text())
        r, alpha = float(cfg["r"]), float(cfg["lora_alpha"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"'{config}' is not a readable PEFT adapter config (needs 'r' and 'lora_alpha'): {e}") from e
    if r <= 0:
        raise ValueError(f"'{config}': r must be positive, got {r}")
    return alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r


# --- model side ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """One Linear layer of the model that the LoRA may patch."""

    name: str  # "blocks.3.cross_attn.k_img"
    weight_key: str  # the ModelPatcher key: "diffusion_model.blocks.3.cross_attn.k_img.weight"
    out_features: int
    in_features: int
    has_bias: bool


@dataclass(frozen=True)
class WanShape:
    """What a set of block layers says about the model it belongs to."""

    blocks: int
    dim: int | None
    ffn_dim: int | None
    image_cross_attn: bool

    def describe(self) -> str:
        parts = [f"{self.blocks} blocks"]
        if self.dim:
            parts.append(f"dim {self.dim}")
        if self.ffn_dim:
            parts.append(f"ffn {self.ffn_dim}")
        text = "a Wan model with " + ", ".join(parts)
        known = _KNOWN_WAN.get((self.dim, self.ffn_dim))
        if known:
            text += f" = {known}"
        text += ", with image cross-attention (I2V/Animate)" if self.image_cross_attn else ", text-only cross-attention (T2V)"
        return text


def check_wan_model(model) -> None:
    """Raise ValueError unless ``model`` is a host MODEL of the Wan 2.1 block family."""
    if not (hasattr(model, "clone") and hasattr(model, "add_patches") and hasattr(model, "model")):
        raise ValueError(f"input 'model': expected a MODEL (ComfyUI ModelPatcher), got {type(model).__name__}")
    import comfy.model_base

    base = model.model
    blocks = getattr(getattr(base, "diffusion_model", None), "blocks", None)
    if not isinstance(base, comfy.model_base.WAN21) or blocks is None:
        raise ValueError(f"input 'model': the Relighting LoRA is for Wan models (Wan2.2-Animate-14B, made on the "
                         f"Wan 2.1 block layout); the connected MODEL is {type(base).__name__}. Connect the "
                         "Wan-Animate model from 'Load Diffusion Model'.")


def model_targets(model) -> dict[str, Target]:
    """Every Linear layer inside the transformer blocks, face and modulation layers excluded."""
    blocks = model.model.diffusion_model.blocks
    keys = set(model.model_state_dict().keys())
    targets: dict[str, Target] = {}
    for i, block in enumerate(blocks):
        for name, module in block.named_modules():
            if not name or any(w in name for w in EXCLUDED_WORDS):
                continue
            if not (hasattr(module, "in_features") and hasattr(module, "out_features")):
                continue
            full = f"blocks.{i}.{name}"
            weight_key = f"diffusion_model.{full}.weight"
            if weight_key not in keys:
                continue
            targets[full] = Target(full, weight_key, int(module.out_features), int(module.in_features),
                                   getattr(module, "bias", None) is not None)
    return targets


def _shape_of_targets(targets: dict[str, Target]) -> WanShape:
    blocks, dim, ffn, img = set(), None, None, False
    for t in targets.values():
        m = _BLOCK_RE.match(t.name)
        blocks.add(int(m.group(1)))
        layer = m.group(2)
        if layer == "self_attn.q":
            dim = dim or t.out_features
        elif layer == "ffn.0":
            ffn = ffn or t.out_features
        img = img or layer.endswith("k_img")
    return WanShape(len(blocks), dim, ffn, img)


# --- key parsing ---------------------------------------------------------------------------------
def _kohya_table(targets: dict[str, Target]) -> dict[str, str]:
    names = set(OFFICIAL_TARGETS) | {_BLOCK_RE.match(n).group(2) for n in targets}
    return {n.replace(".", "_"): n for n in names}


def split_key(key: str, kohya: dict[str, str] | None = None) -> tuple[str, str, str] | None:
    """``key`` -> (layer name like ``blocks.0.self_attn.q``, role, layout) or None.

    role is one of down/up/alpha/diff/diff_b; layout names the prefix and naming style.
    """
    kohya = kohya if kohya is not None else {n.replace(".", "_"): n for n in OFFICIAL_TARGETS}
    for suffix, role in _ROLE_SUFFIXES:
        if key.endswith(suffix):
            stem = key[:-len(suffix)]
            break
    else:
        return None
    style = {"down": "lora_A/lora_B", "up": "lora_A/lora_B"}.get(role, role)
    if suffix in (".lora_down.weight", ".lora_up.weight"):
        style = "lora_down/lora_up"
    prefix = ""
    for p in _KOHYA_PREFIXES:
        if stem.startswith(p):
            m = _KOHYA_BLOCK_RE.match(stem[len(p):])
            if m is None:
                return None
            layer = kohya.get(m.group(2), m.group(2))
            return f"blocks.{m.group(1)}.{layer}", role, f"kohya lora_unet_ {style}"
    changed = True
    while changed:
        changed = False
        for p in _PREFIXES:
            if stem.startswith(p):
                stem, prefix, changed = stem[len(p):], prefix + p, True
    m = _BLOCK_RE.match(stem)
    if m is None:
        return None
    layer = m.group(2)
    if layer in _DIFFUSERS_NAMES:
        layer, style = _DIFFUSERS_NAMES[layer], "diffusers " + style
    kind = "PEFT " if prefix in ("", "base_model.model.") and style == "lora_A/lora_B" else ""
    layout = f"{kind}{style}, " + (f"prefix '{prefix}'" if prefix else "no prefix")
    return f"blocks.{m.group(1)}.{layer}", role, layout


def _shape_of_lora(groups: dict[str, dict[str, tuple[str, torch.Tensor]]]) -> WanShape | None:
    blocks, dim, ffn, img = -1, None, None, False
    for name, parts in groups.items():
        m = _BLOCK_RE.match(name)
        blocks = max(blocks, int(m.group(1)))
        layer = m.group(2)
        down, up = parts.get("down"), parts.get("up")
        if layer in ("self_attn.q", "self_attn.k", "self_attn.v", "cross_attn.q") and down is not None:
            dim = dim or int(down[1].shape[-1])
        if layer in ("self_attn.q", "self_attn.o", "cross_attn.o") and up is not None:
            dim = dim or int(up[1].shape[0])
        if layer == "ffn.0" and up is not None:
            ffn = ffn or int(up[1].shape[0])
        if layer == "ffn.2" and down is not None:
            ffn = ffn or int(down[1].shape[-1])
        img = img or "_img" in layer
    return WanShape(blocks + 1, dim, ffn, img) if blocks >= 0 else None


# --- report --------------------------------------------------------------------------------------
def _some(items: list[str], n: int = 4) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" (+{len(items) - n} more)" if len(items) > n else "")


@dataclass
class LoraReport:
    """What a LoRA file did (or would do) to a model."""

    expected: int
    matched: list[str] = field(default_factory=list)  # target layer names that get a patch
    unmatched: dict[str, str] = field(default_factory=dict)  # file key -> why it has no target
    missing: list[str] = field(default_factory=list)  # model targets the file does not cover
    shape_mismatches: list[str] = field(default_factory=list)
    layouts: list[str] = field(default_factory=list)
    ranks: list[int] = field(default_factory=list)
    scales: list[float] = field(default_factory=list)
    bias_diffs: int = 0
    lora_shape: WanShape | None = None
    model_shape: WanShape | None = None
    strength: float | None = None

    @property
    def complete(self) -> bool:
        return not self.unmatched and not self.missing

    def summary(self) -> str:
        """One line per fact, for the node's STRING output and the UI."""
        head = f"matched {len(self.matched)}/{self.expected} targets"
        if self.model_shape is not None:
            per = self.expected // max(self.model_shape.blocks, 1)
            head += f" ({self.model_shape.blocks} blocks x {per} layers)"
        facts = []
        if self.ranks:
            facts.append("rank " + "/".join(str(r) for r in self.ranks))
        if self.scales:
            facts.append("scale " + "/".join(f"{s:g}" for s in self.scales))
        if self.strength is not None:
            facts.append(f"strength {self.strength:g}")
        if self.bias_diffs:
            facts.append(f"{self.bias_diffs} bias diffs")
        lines = [head + (", " + ", ".join(facts) if facts else "")]
        if self.layouts:
            lines.append("layout: " + "; ".join(self.layouts))
        if self.unmatched:
            lines.append(f"skipped {len(self.unmatched)} LoRA keys with no target in the model: "
                         + _some(list(self.unmatched)))
        if self.missing:
            lines.append(f"{len(self.missing)} model targets not in the LoRA (left unchanged): " + _some(self.missing))
        if self.shape_mismatches:
            lines.append("shape mismatches: " + _some(self.shape_mismatches, 3))
        return "\n".join(lines)

    def problem(self) -> str:
        """Why this LoRA does not fit the model, with what it seems to be for and how to go on."""
        lines = []
        if self.unmatched:
            reasons = {}
            for key, why in self.unmatched.items():
                reasons.setdefault(why, []).append(key)
            lines.append(f"{len(self.unmatched)} LoRA keys have no target in the model:")
            for why, keys in list(reasons.items())[:4]:
                lines.append(f"  - {why}: {_some(keys, 3)}")
        if self.missing:
            lines.append(f"{len(self.missing)} of {self.expected} model layers get no LoRA weights: {_some(self.missing)}")
        if self.shape_mismatches:
            lines.append(f"{len(self.shape_mismatches)} layers differ in shape, e.g. {self.shape_mismatches[0]}")
        ls, ms = self.lora_shape, self.model_shape
        if ls is None:
            lines.append("No key looks like a Wan transformer-block LoRA layer (blocks.N.<layer>); this file is "
                         "probably for another model family (SD/SDXL/Flux/...).")
        elif ms is not None:
            lines.append(f"This LoRA seems to be for {ls.describe()}; the loaded model is {ms.describe()}.")
            if ls.dim and ms.dim and ls.dim != ms.dim:
                lines.append(f"Shape mismatch: this LoRA is for a model with dim {ls.dim}, the loaded model has dim {ms.dim}.")
        return "\n".join(lines)


# --- mapping -------------------------------------------------------------------------------------
def _check_group(parts: dict[str, tuple[str, torch.Tensor]], t: Target) -> tuple[str | None, bool]:
    """(problem or None, is_shape_mismatch) for one layer's tensors against its target."""
    down, up = parts.get("down"), parts.get("up")
    if (down is None) != (up is None):
        have, lack = ("lora_A/down", "lora_B/up") if up is None else ("lora_B/up", "lora_A/down")
        return f"incomplete pair: {have} without {lack}", False
    if down is None and "diff" not in parts and "diff_b" not in parts:
        return "alpha without a LoRA pair", False
    want = (t.out_features, t.in_features)
    if down is not None:
        a, b = down[1], up[1]
        if a.ndim != 2 or b.ndim != 2:
            return f"LoRA tensors must be 2-D for a Linear layer (got {list(b.shape)} @ {list(a.shape)})", True
        if b.shape[1] != a.shape[0]:
            return f"lora_B {list(b.shape)} and lora_A {list(a.shape)} have different ranks", True
        if (b.shape[0], a.shape[1]) != want:
            return (f"shape mismatch: lora_B @ lora_A is {[b.shape[0], a.shape[1]]}, the model weight is "
                    f"{list(want)}"), True
    if "alpha" in parts and parts["alpha"][1].numel() != 1:
        return f"alpha must be a scalar, got shape {list(parts['alpha'][1].shape)}", False
    if "diff" in parts and tuple(parts["diff"][1].shape) != want:
        return f"shape mismatch: diff is {list(parts['diff'][1].shape)}, the model weight is {list(want)}", True
    if "diff_b" in parts:
        if not t.has_bias:
            return "diff_b for a layer without bias", False
        if tuple(parts["diff_b"][1].shape) != (t.out_features,):
            return (f"shape mismatch: diff_b is {list(parts['diff_b'][1].shape)}, the model bias is "
                    f"[{t.out_features}]"), True
    return None, False


def map_lora_keys(sd: dict[str, torch.Tensor], model, allow_partial: bool = False,
                  default_scale: float | None = None) -> tuple[dict, LoraReport]:
    """Map a LoRA state dict onto ``model`` (a host ModelPatcher of a Wan model).

    Returns ``(patches, report)``: ``patches`` is in the host's format (``{weight key: adapter}``,
    built by ``comfy.lora.load_lora``) ready for ``ModelPatcher.add_patches``.

    Raises ValueError when nothing matches, or when any key has no target or any target is
    uncovered and ``allow_partial`` is False; the message says what the LoRA seems to be for.
    """
    import comfy.lora

    if not isinstance(sd, dict) or not sd:
        raise ValueError("the LoRA state dict is empty; the file has no tensors")
    targets = model_targets(model)
    if not targets:
        raise ValueError("input 'model': no Linear layers found in the model's transformer blocks")
    kohya = _kohya_table(targets)
    report = LoraReport(expected=len(targets), model_shape=_shape_of_targets(targets))

    groups: dict[str, dict[str, tuple[str, torch.Tensor]]] = {}
    layouts: dict[str, int] = {}
    for key, tensor in sd.items():
        parsed = split_key(key, kohya)
        if parsed is None:
            report.unmatched[key] = "not a LoRA layer of a Wan transformer block"
            continue
        name, role, layout = parsed
        parts = groups.setdefault(name, {})
        if role in parts:
            report.unmatched[key] = f"duplicate of '{parts[role][0]}'"
            continue
        parts[role] = (key, tensor)
        if role in ("down", "up"):
            layouts[layout] = layouts.get(layout, 0) + 1
    report.layouts = sorted(layouts, key=lambda k: -layouts[k])
    report.lora_shape = _shape_of_lora(groups)

    normal: dict[str, torch.Tensor] = {}
    key_map: dict[str, str] = {}
    ranks, scales = set(), set()
    for name, parts in groups.items():
        target = targets.get(name)
        if target is None:
            index, layer = _BLOCK_RE.match(name).groups()
            if int(index) >= report.model_shape.blocks:
                why = f"block index >= the model's {report.model_shape.blocks} blocks"
            else:
                why = f"no target layer '{layer}' in the model's blocks"
            for key, _ in parts.values():
                report.unmatched[key] = why
            continue
        problem, is_shape = _check_group(parts, target)
        if problem is not None:
            if is_shape:
                report.shape_mismatches.append(f"{name}: {problem}")
                problem = "shape mismatch with the model's layer"
            for key, _ in parts.values():
                report.unmatched[key] = problem
            continue
        base = target.weight_key[:-len(".weight")]
        key_map[base] = target.weight_key
        if "down" in parts:
            down, up = parts["down"][1], parts["up"][1]
            rank = int(down.shape[0])
            normal[f"{base}.lora_down.weight"] = down
            normal[f"{base}.lora_up.weight"] = up
            if "alpha" in parts:
                alpha = parts["alpha"][1].reshape(()).float()
            elif default_scale is not None:
                alpha = torch.tensor(float(default_scale) * rank)
            else:
                alpha = None  # the host's default: scale 1.0 (official r = lora_alpha)
            if alpha is not None:
                normal[f"{base}.alpha"] = alpha
            ranks.add(rank)
            scales.add(round(float(alpha) / rank, 6) if alpha is not None else 1.0)
        if "diff" in parts:
            normal[f"{base}.diff"] = parts["diff"][1]
        if "diff_b" in parts:
            normal[f"{base}.diff_b"] = parts["diff_b"][1]
            report.bias_diffs += 1
        report.matched.append(name)
    report.ranks, report.scales = sorted(ranks), sorted(scales)
    covered = set(report.matched)
    report.missing = [n for n in targets if n not in covered]

    if not report.matched:
        raise ValueError("Relighting LoRA: no key of this LoRA fits the loaded model, so it would do nothing.\n"
                         + report.problem())
    if not report.complete and not allow_partial:
        raise ValueError("Relighting LoRA does not fit the loaded model "
                         f"(matched {len(report.matched)}/{report.expected} targets).\n" + report.problem()
                         + "\nLoad the model this LoRA was made for, or set allow_partial to apply only the "
                           f"{len(report.matched)} layers that fit.")

    patches = comfy.lora.load_lora(normal, key_map, log_missing=False)
    lost = [k for k in key_map.values() if k not in patches]
    if lost:
        raise RuntimeError(f"the host's LoRA loader did not accept {len(lost)} mapped layers: {_some(lost)}")
    return patches, report


def apply_lora(model, sd: dict[str, torch.Tensor], strength: float = 1.0, allow_partial: bool = False,
               default_scale: float | None = None):
    """Return ``(patched clone of model, report)``; the input MODEL is left untouched.

    The host's patcher applies ``W + strength * scale * (lora_B @ lora_A)`` when it loads the
    weights, exactly as for its own LoRA loader.
    """
    check_wan_model(model)
    strength = float(strength)
    if not math.isfinite(strength):
        raise ValueError(f"input 'strength' must be a finite number, got {strength}")
    patches, report = map_lora_keys(sd, model, allow_partial=allow_partial, default_scale=default_scale)
    patched = model.clone()
    applied = set(patched.add_patches(patches, strength))
    if applied != set(patches):
        raise RuntimeError(f"the host's ModelPatcher did not take {len(set(patches) - applied)} patches: "
                           + _some(sorted(set(patches) - applied)))
    report.strength = strength
    return patched, report


def load_and_apply(model, path: str | pathlib.Path, strength: float = 1.0, allow_partial: bool = False):
    """Load the LoRA file at ``path`` (scale from a PEFT adapter_config.json beside it, if any) and
    apply it; returns ``(patched model, report)``."""
    check_wan_model(model)
    sd = load_lora_file(path)
    return apply_lora(model, sd, strength, allow_partial, default_scale=peft_config_scale(path))
