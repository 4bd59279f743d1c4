"""Load a SAM 2 / SAM 2.1 checkpoint into a ``sam2`` video predictor.

Accepted files:

* the official ``.pt`` (a torch pickle ``{"model": state_dict}``), always read with
  ``torch.load(weights_only=True)``;
* a ``.safetensors`` flat state dict (e.g. the Kijai ``sam2-safetensors`` repacks, fp16/bf16/fp32).

The model config is one of the eight YAML files shipped inside the installed ``sam2`` package
(``configs/sam2/sam2_hiera_{t,s,b+,l}.yaml`` and ``configs/sam2.1/sam2.1_hiera_*.yaml``). It is
picked from the checkpoint itself when possible (Hiera trunk width and block count give the size;
keys that exist only in SAM 2.1 give the version), otherwise from the file name.

Official Wan2.2-Animate (official: wan/modules/animate/preprocess/process_pipepline.py,
ProcessPipeline.__init__, and sam_utils.py, build_sam2_video_predictor): the SAM 2 (not 2.1)
Hiera-L checkpoint ``sam2_hiera_large.pt`` with the config ``sam2_hiera_l.yaml`` (the same file
as ``configs/sam2/sam2_hiera_l.yaml``, which this loader picks for that checkpoint), the video
predictor class, the post-processing overrides (dynamic multimask via stability 0.05 / 0.98,
``binarize_mask_from_pts_for_mem_enc``, ``fill_hole_area=8``), a strict state-dict load, eval
mode, and float32 compute (no autocast anywhere in the official preprocessing). The official
``_target_`` is its own ``video_predictor.SAM2VideoPredictor``, a subclass of sam2's that only adds
``init_state_v2`` (frames from memory); ``models.sam2_video.build_inference_state`` is this pack's
equivalent, so sam2's own class is used here. fp16 / bf16 (``dtype``) are the pack's options.

Not bit-exact by construction: the network runs in the installed ``sam2`` (1.1.0; the official
code pins no version) on this machine's torch kernels. The official pipeline also sets the
attention flags of older sam2 releases (flash attention off, math and memory-efficient kernels
on); sam2 1.1 has no such flags and lets torch choose, which in float32 on CUDA rules out flash
attention as well. GPU kernels are not bit-for-bit reproducible across GPU and library versions.

The config is read with OmegaConf straight from the package and built with
``hydra.utils.instantiate``, applying the same overrides as the official builder. Going through
OmegaConf instead of ``hydra.compose`` keeps loading independent of Hydra's process-global state,
which another custom node may have initialised with its own config module.

``sam2`` is an optional dependency: it is imported inside functions only.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import os
import re
import warnings
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import torch

log = logging.getLogger(__name__)

#: (version, size) -> config path inside the ``sam2`` package.
SAM2_CONFIGS: dict[tuple[str, str], str] = {
    (version, size): f"configs/{version}/{version}_hiera_{size}.yaml"
    for version in ("sam2", "sam2.1") for size in ("t", "s", "b+", "l")
}
#: Hiera trunk (embed_dim, number of blocks) -> size letter.
TRUNK_SIZES: dict[tuple[int, int], str] = {(96, 12): "t", (96, 16): "s", (112, 24): "b+", (144, 48): "l"}
#: State-dict keys present in SAM 2.1 checkpoints only.
SAM21_ONLY_KEYS = ("no_obj_embed_spatial", "obj_ptr_tpos_proj.weight")
#: The official checkpoint and its config (official: process_pipepline.py, ProcessPipeline.__init__).
OFFICIAL_CHECKPOINT = "sam2_hiera_large.pt"
OFFICIAL_CONFIG = SAM2_CONFIGS[("sam2", "l")]
#: Overrides the official builder applies (official: sam_utils.py, build_sam2_video_predictor with
#: apply_postprocessing=True), the predictor class being sam2's own (see the module doc).
VIDEO_PREDICTOR_OVERRIDES = (
    "++model._target_=sam2.sam2_video_predictor.SAM2VideoPredictor",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
    "++model.binarize_mask_from_pts_for_mem_enc=true",
    "++model.fill_hole_area=8",
)
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_TRUNK_PATCH = "image_encoder.trunk.patch_embed.proj.weight"
_TRUNK_BLOCK = re.compile(r"^image_encoder\.trunk\.blocks\.(\d+)\.")


@dataclasses.dataclass
class Sam2Model:
    """A loaded SAM 2 video predictor plus what was decided while loading it.

    ``dtype`` is the compute dtype: float32 is the official one (no autocast); fp16/bf16 are the
    pack's options and run under ``torch.autocast`` (what sam2's own demos do) with the weights kept
    fp32, so no op sees mixed parameter dtypes.

    Memory: the weights wait on ``home_device`` (the host's offload device when the SAM2 Loader node
    loaded them) and go to the run device only inside ``sam2_session``, which moves them back
    afterwards, also on an error. Hole filling depends on the device (sam2's CUDA extension only
    works on CUDA), so ``move_sam2`` sets it again on every move.
    """

    predictor: Any  # sam2.sam2_video_predictor.SAM2VideoPredictor
    config: str
    version: str  # "sam2" or "sam2.1"
    size: str  # "t", "s", "b+" or "l"
    device: torch.device  # where the weights are now
    dtype: torch.dtype
    hole_filling: str  # "cuda-ext", "cpu" or "off", for the device the weights are on
    device_choice: str = "auto"  # where it runs: "auto" (the host's device), "cpu", "cuda", "cuda:N"
    home_device: torch.device | None = None  # where it waits between runs (None: ``device`` at load)
    fill_hole_area: int = 0  # the configured hole filling (official 8); 0 = off

    @property
    def image_size(self) -> int:
        return int(self.predictor.image_size)


def _config_choices() -> str:
    return ", ".join(f"{v}_hiera_{s}" for (v, s) in SAM2_CONFIGS)


def resolve_config_name(config: str) -> str:
    """Map ``"sam2.1_hiera_t"``, ``"sam2.1_hiera_t.yaml"`` or ``"configs/sam2.1/sam2.1_hiera_t.yaml"``
    to the package config path; raise ValueError listing the choices otherwise."""
    name = os.path.basename(str(config).strip())
    if name.endswith(".yaml"):
        name = name[: -len(".yaml")]
    for (version, size), path in SAM2_CONFIGS.items():
        if name == f"{version}_hiera_{size}":
            return path
    raise ValueError(f"Unknown SAM2 config {config!r}; choose one of: {_config_choices()}.")


def read_sam2_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a SAM 2 checkpoint (``.pt``/``.pth`` with a "model" key, or ``.safetensors``) on the CPU."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"SAM2 checkpoint not found: {path!r}")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".safetensors":
        from safetensors.torch import load_file

        try:
            sd: Any = load_file(path, device="cpu")
        except Exception as exc:  # safetensors raises its own error types
            raise ValueError(f"{path!r} is not a readable .safetensors file ({exc}).") from exc
    elif ext in (".pt", ".pth", ".ckpt", ".bin"):
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(
                f"{path!r} could not be loaded with torch.load(weights_only=True) ({exc}). "
                "Use an official SAM 2 / 2.1 .pt checkpoint or a .safetensors repack.") from exc
        if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
            sd = obj["model"]
        elif isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            sd = obj  # a bare state dict saved with torch.save
        else:
            keys = list(obj)[:8] if isinstance(obj, Mapping) else type(obj).__name__
            raise ValueError(f"{path!r} has no 'model' state dict (found {keys}); "
                             "expected an official SAM 2 checkpoint {{'model': state_dict}}.")
    else:
        raise ValueError(f"Unsupported SAM2 checkpoint extension {ext!r} for {path!r}; "
                         "use .pt or .safetensors.")
    sd = {str(k): v for k, v in sd.items()}
    # Some repacks prefix every key (e.g. "model." or "sam2_model."): strip a prefix shared by all.
    if sd and _TRUNK_PATCH not in sd:
        for key in sd:
            if key.endswith(_TRUNK_PATCH):
                prefix = key[: -len(_TRUNK_PATCH)]
                if all(k.startswith(prefix) for k in sd):
                    sd = {k[len(prefix):]: v for k, v in sd.items()}
                break
    return sd


def detect_sam2_config(state_dict: Mapping[str, Any] | None,
                       filename: str | None = None) -> tuple[str, str]:
    """Return ``(version, size)`` of a SAM 2 checkpoint, from its keys/shapes, else from its name.

    Raises ValueError listing the choices when neither identifies it.
    """
    if state_dict:
        patch = state_dict.get(_TRUNK_PATCH)
        blocks = {int(m.group(1)) for k in state_dict if (m := _TRUNK_BLOCK.match(k))}
        if patch is not None and blocks:
            key = (int(patch.shape[0]), max(blocks) + 1)
            size = TRUNK_SIZES.get(key)
            if size is not None:
                version = "sam2.1" if any(k in state_dict for k in SAM21_ONLY_KEYS) else "sam2"
                return version, size
            log.warning("SAM2 trunk with embed_dim=%d and %d blocks matches no known size", *key)
    if filename:
        guess = _config_from_filename(filename)
        if guess is not None:
            return guess
    what = "its keys" if state_dict else "(no state dict)"
    raise ValueError(
        f"Cannot tell which SAM2 model {filename or 'this checkpoint'!r} is from {what} or its name. "
        f"Pass config= one of: {_config_choices()}.")


def _config_from_filename(filename: str) -> tuple[str, str] | None:
    name = os.path.basename(filename).lower()
    version = "sam2.1" if re.search(r"sam2[._-]?1|sam21", name) else ("sam2" if "sam2" in name else None)
    size = None
    for pattern, letter in ((r"base[_-]?plus|b\+|hiera[_-]?b(?![a-z])", "b+"), (r"large|hiera[_-]?l(?![a-z])", "l"),
                            (r"small|hiera[_-]?s(?![a-z])", "s"), (r"tiny|hiera[_-]?t(?![a-z])", "t")):
        if re.search(pattern, name):
            size = letter
            break
    if version and size:
        return version, size
    return None


def _parse_override(item: str) -> tuple[str, Any]:
    text = item.strip()
    if text.startswith("~") or "=" not in text:
        raise ValueError(f"Unsupported SAM2 config override {item!r}; use '++model.key=value'.")
    key, value = text.lstrip("+").split("=", 1)
    import yaml

    return key.strip(), yaml.safe_load(value) if value.strip() else None


def sam2_model_config(config: str, overrides: Iterable[str] = ()) -> Any:
    """The resolved OmegaConf config of a package config plus the video-predictor overrides and
    ``overrides`` (what the official builder composes with Hydra, read without Hydra)."""
    import sam2
    from omegaconf import OmegaConf

    path = resolve_config_name(config)
    yaml_path = os.path.join(os.path.dirname(sam2.__file__), path)
    cfg = OmegaConf.load(yaml_path)
    for item in (*VIDEO_PREDICTOR_OVERRIDES, *overrides):
        key, value = _parse_override(item)
        OmegaConf.update(cfg, key, value, force_add=True)
    OmegaConf.resolve(cfg)
    return cfg


def build_sam2_video_predictor_from_config(config: str, overrides: Iterable[str] = ()) -> Any:
    """Instantiate an (untrained) ``SAM2VideoPredictor`` from a package config plus overrides."""
    from hydra.utils import instantiate

    return instantiate(sam2_model_config(config, overrides).model, _recursive_=True)


def sam2_cuda_extension_available() -> bool:
    """True when sam2's optional CUDA extension (``sam2._C``, used for hole filling) imports."""
    try:
        if importlib.util.find_spec("sam2._C") is None:
            return False
        import sam2._C  # noqa: F401
    except Exception:  # ImportError, or an undefined-symbol OSError from a mismatched build
        return False
    return True


def fill_holes_cpu(mask: torch.Tensor, max_area: int) -> torch.Tensor:
    """CPU twin of ``sam2.utils.misc.fill_holes_in_mask_scores``.

    Background components (score <= 0, 8-connectivity) with area <= ``max_area`` get the score 0.1.
    ``mask`` is [B, 1, h, w]; the result has its dtype and device.
    """
    import cv2

    scores = mask.detach().float().cpu().numpy()
    out = scores.copy()
    for b in range(scores.shape[0]):
        background = (scores[b, 0] <= 0).astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(background, connectivity=8)
        if count <= 1:
            continue
        areas = stats[:, cv2.CC_STAT_AREA].copy()
        areas[0] = max_area + 1  # label 0 = foreground pixels of the score map, never a hole
        hole = areas[labels] <= max_area
        out[b, 0][hole] = 0.1
    return torch.from_numpy(out).to(device=mask.device, dtype=mask.dtype)


def _install_cpu_hole_filling(predictor: Any, max_area: int) -> None:
    """Make ``predictor`` fill holes like the CUDA extension would, on this instance only.

    sam2 fills the low-res scores of every tracked frame right after ``track_step``; without the
    extension it warns and skips. We turn the built-in step off and redo it on the CPU on both
    copies the upstream code returns (stored output and the one it resizes for display).
    Installing it again only updates ``max_area``; ``_remove_cpu_hole_filling`` undoes it.
    """
    predictor.fill_hole_area = 0
    if getattr(predictor, "_wak_cpu_fill_area", None) is not None:
        predictor._wak_cpu_fill_area = int(max_area)
        return
    original = predictor._run_single_frame_inference
    predictor._wak_cpu_fill_area = int(max_area)

    def run_single_frame_inference(*args: Any, **kwargs: Any) -> Any:
        compact_out, pred_masks = original(*args, **kwargs)
        filled = fill_holes_cpu(pred_masks, predictor._wak_cpu_fill_area)
        compact_out["pred_masks"] = filled.to(compact_out["pred_masks"].device)
        return compact_out, filled

    predictor._run_single_frame_inference = run_single_frame_inference


def _remove_cpu_hole_filling(predictor: Any) -> None:
    if getattr(predictor, "_wak_cpu_fill_area", None) is None:
        return
    vars(predictor).pop("_run_single_frame_inference", None)  # back to the class method
    predictor._wak_cpu_fill_area = None


def _configure_hole_filling(model: Sam2Model) -> None:
    """Hole filling for the device the weights are on: sam2's own (its CUDA extension) on CUDA when
    the extension imports, else the CPU twin; nothing when it is off."""
    predictor = model.predictor
    if model.fill_hole_area <= 0:
        _remove_cpu_hole_filling(predictor)
        predictor.fill_hole_area = 0
        model.hole_filling = "off"
    elif model.device.type == "cuda" and sam2_cuda_extension_available():
        _remove_cpu_hole_filling(predictor)
        predictor.fill_hole_area = model.fill_hole_area
        model.hole_filling = "cuda-ext"
    else:
        _install_cpu_hole_filling(predictor, model.fill_hole_area)
        model.hole_filling = "cpu"


def install_memory_dtype_guard(predictor: Any) -> None:
    """Cast the memory bank to the frame features' dtype before memory attention (idempotent).

    sam2 stores memory features as bf16. Normally they are concatenated with fp32 object
    pointers (type promotion makes the whole bank fp32) or run under bf16 autocast; but a frame
    tracked before its object's first prompt has no past pointers, and in fp32 the bare bf16 bank
    then crashes the fp32 ``v_proj`` ("mat1 and mat2 must have the same dtype"). Casting it to the
    features' dtype is what promotion would have done.
    """
    module = predictor.memory_attention
    if getattr(module, "_wak_dtype_guard", False):
        return

    def cast_memory(_module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        curr = kwargs.get("curr", args[0] if args else None)
        if isinstance(curr, (list, tuple)):
            curr = curr[0]
        if isinstance(curr, torch.Tensor):
            for name in ("memory", "memory_pos"):
                value = kwargs.get(name)
                if isinstance(value, torch.Tensor) and value.dtype != curr.dtype:
                    kwargs[name] = value.to(curr.dtype)
        return args, kwargs

    module.register_forward_pre_hook(cast_memory, with_kwargs=True)
    module._wak_dtype_guard = True


def pick_device(device: str | torch.device) -> torch.device:
    """'auto' -> the host's device (outside the host: CUDA when available, else the CPU); anything
    else via ``torch.device`` ('cuda' without a CUDA GPU raises ValueError)."""
    from .host_memory import resolve_device

    try:
        return resolve_device(device)
    except ValueError as exc:
        raise ValueError(f"SAM2 {exc}; use 'auto' or 'cpu'.") from exc


def move_sam2(model: Sam2Model, device: str | torch.device) -> None:
    """Put the weights on ``device`` and set the device-dependent hole filling."""
    dev = torch.device(device)
    model.predictor.to(dev)
    model.device = dev
    _configure_hole_filling(model)


def sam2_memory_estimate(model: Sam2Model, video_size: tuple[int, int] | None = None) -> int:
    """Bytes SAM2 needs on its run device: the weights plus a rough allowance for one frame's
    activations (about 2 GiB in fp32 at the 1024 input size, scaling with the input area; half
    under fp16/bf16 autocast) and the full-size mask logits of a frame."""
    from .host_memory import module_bytes

    scale = (model.image_size / 1024.0) ** 2
    activations = 2 * 2 ** 30 * scale * (1.0 if model.dtype == torch.float32 else 0.5)
    logits = 0 if video_size is None else 4 * 4 * int(video_size[0]) * int(video_size[1])
    return int(module_bytes(model.predictor) + activations + logits)


@contextlib.contextmanager
def sam2_session(model: Sam2Model, device: str | torch.device | None = None,
                 video_size: tuple[int, int] | None = None) -> Iterator[torch.device]:
    """Run SAM2 on ``device`` for the body of the ``with`` and put it back home afterwards.

    ``device``: None = the model's ``device_choice`` ('auto' = the host's device). Before moving,
    the host is asked to free ``sam2_memory_estimate`` bytes on that device (it unloads what it must,
    e.g. the diffusion model); on leaving, also after an error or an interrupt, the weights go back
    to ``home_device`` and the cache is emptied, as the host's upscale-model node does (ComfyUI:
    comfy_extras/nodes_upscale_model.py, ImageUpscaleWithModel.execute). Yields the run device.
    """
    from . import host_memory

    run = pick_device(model.device_choice) if device is None else torch.device(device)
    home = model.home_device if model.home_device is not None else model.device
    host_memory.free_memory(sam2_memory_estimate(model, video_size), run)
    try:
        move_sam2(model, run)
        log.debug("SAM2 on %s for this run (home: %s)", run, home)
        yield run
    finally:
        move_sam2(model, home)
        host_memory.empty_cache()


def load_sam2(path: str | os.PathLike, device: str | torch.device = "auto", dtype: str = "fp32",
              config: str | None = None, overrides: Iterable[str] = (),
              hole_filling: bool = True, storage: str | torch.device | None = None) -> Sam2Model:
    """Load a SAM 2 / 2.1 checkpoint as a video predictor.

    Args:
        path: ``.pt`` ({"model": state_dict}) or ``.safetensors`` file.
        device: where it runs: "auto" (the host's device; outside the host CUDA when available),
            "cpu", "cuda" or "cuda:N".
        dtype: compute dtype: "fp32" (official) or the pack's "fp16" / "bf16" (autocast; weights stay
            fp32).
        config: config name such as "sam2.1_hiera_l"; None = detect from keys, then file name.
        overrides: extra Hydra-style overrides, e.g. ``["++model.image_size=256"]``.
        hole_filling: fill small mask holes (fill_hole_area=8, official); uses a CPU version when
            sam2's CUDA extension is missing (the official code would then skip it with a warning).
        storage: where the weights wait between runs (the node passes the host's offload device);
            None = on the run device, loaded there once. ``sam2_session`` moves them for a run.
    """
    if dtype not in DTYPES:
        raise ValueError(f"SAM2 dtype {dtype!r} is not one of {sorted(DTYPES)}.")
    dev = pick_device(device)
    home = dev if storage is None else torch.device(storage)
    compute_dtype = DTYPES[dtype]
    if dev.type == "cpu" and compute_dtype == torch.float16:
        warnings.warn("fp16 autocast is not supported well on the CPU; SAM2 runs in fp32 instead.",
                      stacklevel=2)
        compute_dtype = torch.float32
    state_dict = read_sam2_state_dict(path)
    if config is None:
        version, size = detect_sam2_config(state_dict, os.fspath(path))
        config_path = SAM2_CONFIGS[(version, size)]
    else:
        config_path = resolve_config_name(config)
        version, size = next(k for k, v in SAM2_CONFIGS.items() if v == config_path)

    model = build_sam2_video_predictor_from_config(config_path, overrides)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
                  if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)]
    if missing or unexpected or mismatched:
        def show(keys: list[str]) -> str:
            return ", ".join(keys[:6]) + (f" ... ({len(keys)} in all)" if len(keys) > 6 else "")

        raise ValueError(
            f"SAM2 checkpoint {os.fspath(path)!r} does not match config {config_path}: "
            f"{len(missing)} missing keys [{show(missing)}], {len(unexpected)} unexpected keys "
            f"[{show(unexpected)}], {len(mismatched)} shape mismatches [{show(mismatched)}]. "
            f"Pass config= the right one of: {_config_choices()} (or None to detect it).")
    model.load_state_dict(state_dict, strict=True)
    del state_dict
    model = model.to(home).eval()
    install_memory_dtype_guard(model)

    area = int(model.fill_hole_area) if hole_filling else 0
    handle = Sam2Model(predictor=model, config=config_path, version=version, size=size, device=home,
                       dtype=compute_dtype, hole_filling="off", device_choice=str(device), home_device=home,
                       fill_hole_area=max(area, 0))
    _configure_hole_filling(handle)
    log.info("Loaded SAM2 %s (%s, image_size=%d) on %s (runs on %s), hole filling: %s",
             os.path.basename(os.fspath(path)), config_path, handle.image_size, home, dev, handle.hole_filling)
    return handle
