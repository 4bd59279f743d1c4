"""ONNX sessions for the pose pipeline: model listing, provider checks, contracts, batched runs.

* ``list_pose_models`` lists what a dropdown may offer: loadable ``.onnx`` files and folders in the
  official layout (a folder holding ``end2end.onnx``), never the external-data companions
  (``*.bin``, ``*.data``, names containing ``_data``) that users pick by mistake.
* ``load_session`` never falls back silently: onnxruntime-gpu quietly runs on the CPU when its CUDA
  provider cannot start, so ``device='cuda'`` checks the provider really in use
  and raises a RuntimeError that says why and what to install; ``'auto'`` falls back with a warning.
* ``PersonDetector`` (YOLOv10 end-to-end) and ``WholeBodyPose`` (ViTPose-WholeBody heatmaps) check
  the model contract on load and run in batches, looping for models with a fixed batch size.
* ``check_model_file`` checks the same contracts without a session, from the graph's declared inputs
  and outputs (``read_graph_io`` reads them from the file and skips the weights), and
  ``PoseModelFiles`` opens the sessions only for a run and drops them after it, so their GPU memory
  is held only while poses are extracted.

onnxruntime is imported lazily inside the functions.
"""
from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import os
import pathlib
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from ..preprocess.detection import (DEFAULT_CONF, DEFAULT_IOU, DETECTOR_SIZE, parse_detections,
                                    preprocess_for_detector)
from ..preprocess.heatmap import (BOX_PADDING, CROP_H, CROP_W, HEATMAP_H, HEATMAP_W, NUM_KEYPOINTS,
                                  crop_batch, keypoints_from_heatmaps)

log = logging.getLogger(__name__)

OFFICIAL_MODEL_FILE = "end2end.onnx"
DEVICES = ("auto", "cuda", "cpu")
DETECTOR_CONTRACT = ("a YOLOv10 end-to-end person detector: input [1 or N, 3, 640, 640] float RGB 0..1, "
                     "output [N, 300, 6] rows (x1, y1, x2, y2, score, class), e.g. yolov10m.onnx")
POSE_CONTRACT = ("a ViTPose COCO-WholeBody model: input [N, 3, 256, 192] ImageNet-normalised crops, "
                 "output [N, 133, 64, 48] heatmaps, e.g. vitpose_h_wholebody or vitpose-l-wholebody.onnx")
INSTALL_GPU_HINT = ("pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu "
                    "(a build matching your CUDA major version and cuDNN 9)")


class ModelContractError(ValueError):
    """A model file that is missing, not ONNX, or not the network the caller expects."""


# ------------------------------------------------------------------------------------------ listing

def is_external_data_companion(name: str | os.PathLike) -> bool:
    """True for the weight files that sit beside a large ONNX model and cannot be loaded alone."""
    base = pathlib.Path(name).name.lower()
    return (base.endswith((".bin", ".data", ".onnx_data", ".onnx.data", ".weight", ".weights"))
            or "_data" in base)


def _folders(folder_paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[pathlib.Path]:
    if isinstance(folder_paths, (str, os.PathLike)):
        folder_paths = [folder_paths]
    return [pathlib.Path(f) for f in folder_paths]


def list_pose_models(folder_paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """Names of the loadable ONNX models under ``folder_paths`` (searched recursively).

    A name is a path relative to its folder with '/' separators: an ``.onnx`` file, or a folder
    holding ``end2end.onnx`` (the official layout; the folder stands for the model and its other
    files are not listed). External-data companions and empty files are never listed.
    """
    names: set[str] = set()
    for root in _folders(folder_paths):
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            here = pathlib.Path(dirpath)
            rel = here.relative_to(root)
            dirnames.sort()
            if here != root and OFFICIAL_MODEL_FILE in filenames:
                names.add(rel.as_posix())
                dirnames[:] = []
                continue
            for fname in filenames:
                if not fname.lower().endswith(".onnx") or is_external_data_companion(fname):
                    continue
                try:
                    if (here / fname).stat().st_size == 0:
                        continue
                except OSError:
                    continue
                names.add((rel / fname).as_posix())
    return sorted(names, key=str.lower)


def resolve_model_path(name: str | os.PathLike,
                       folder_paths: str | os.PathLike | Iterable[str | os.PathLike] = ()) -> pathlib.Path:
    """The file of a listed model name inside ``folder_paths``; a folder resolves to its ``end2end.onnx``.

    Only names inside the folders are accepted (models.model_paths): never an absolute path, '..',
    or a link leading outside; the error is the same whether or not such an outside file exists.
    """
    from .model_paths import find_model_file, not_in_folder

    found = find_model_file(os.fspath(name) if isinstance(name, os.PathLike) else name,
                            _folders(folder_paths), folder_file=OFFICIAL_MODEL_FILE)
    if found is None:
        problem, fix = not_in_folder(name, "detection", _folders(folder_paths))
        raise ModelContractError(f"pose model {problem}; {fix}. A folder stands for its {OFFICIAL_MODEL_FILE} "
                                 f"(official layout)")
    return pathlib.Path(found)


def _model_file(path: str | os.PathLike) -> pathlib.Path:
    """An already resolved model path: a folder in the official layout -> its end2end.onnx."""
    p = pathlib.Path(path)
    if p.is_dir():
        inner = p / OFFICIAL_MODEL_FILE
        if not inner.is_file():
            raise ModelContractError(
                f"{p.name} is a folder without {OFFICIAL_MODEL_FILE}; pick the .onnx file itself, or a folder "
                f"in the official layout (<model>/{OFFICIAL_MODEL_FILE})")
        return inner
    if not p.is_file():
        raise ModelContractError(f"pose model file {p.name} was not found")
    return p


_FOREIGN_SIGNATURES = (
    (b"PK\x03\x04", "a zip archive (a PyTorch .pt/.pth checkpoint?)"),
    (b"\x80", "a Python pickle (a PyTorch checkpoint?)"),
    (b"GGUF", "a GGUF file"),
    (b"{", "a JSON file"),
)


def check_onnx_file(path: str | os.PathLike) -> pathlib.Path:
    """Take a resolved ``path`` (a folder -> its end2end.onnx) and reject files that cannot be an ONNX
    model. User-picked names go through ``resolve_model_path`` first (confined to the model folders)."""
    p = _model_file(path)
    if is_external_data_companion(p):
        siblings = sorted(s.name for s in p.parent.glob("*.onnx") if not is_external_data_companion(s))
        which = f" ({', '.join(siblings)})" if siblings else ""
        raise ModelContractError(
            f"{p.name} is the external-data companion of an ONNX model (its weights), not a model: pick the "
            f".onnx file next to it{which}; both files must stay in the same folder")
    with open(p, "rb") as fh:
        head = fh.read(16)
    if not head:
        raise ModelContractError(f"{p} is empty; download the model again")
    for sig, what in _FOREIGN_SIGNATURES:
        if head.startswith(sig):
            raise ModelContractError(f"{p.name} is {what}, not an ONNX model; pick an .onnx file")
    if len(head) >= 10 and head[8:10] == b'{"':
        raise ModelContractError(f"{p.name} is a safetensors file, not an ONNX model; pick an .onnx file")
    return p


# ----------------------------------------------------------------------------------------- sessions

def _import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError("onnxruntime is not installed; the pose models need it: "
                           f"{INSTALL_GPU_HINT} (or pip install onnxruntime for the CPU only)") from exc
    return onnxruntime


def _prepare_cuda_libraries(ort: Any) -> None:
    """Help onnxruntime-gpu find the CUDA/cuDNN libraries: torch loads its bundled copies on import,
    and onnxruntime >= 1.21 can preload the ones of the nvidia-* wheels."""
    try:
        import torch  # noqa: F401
    except Exception:  # pragma: no cover - torch is always there inside ComfyUI
        pass
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        try:
            preload()
        except Exception as exc:  # pragma: no cover - best effort
            log.debug("onnxruntime.preload_dlls() failed: %s", exc)


def _installed_runtimes() -> list[str]:
    from importlib import metadata

    found = []
    for dist in ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino"):
        try:
            found.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pass
    return found


def _cuda_failure_reason(ort: Any, path: pathlib.Path, available: Sequence[str], device: str) -> str:
    runtimes = _installed_runtimes()
    torch_cuda = "unknown"
    try:
        import torch

        torch_cuda = f"torch CUDA {torch.version.cuda}, GPU visible: {torch.cuda.is_available()}"
    except Exception:  # pragma: no cover
        pass
    if "CUDAExecutionProvider" not in available:
        why = (f"the installed onnxruntime ({ort.__version__}) has no CUDAExecutionProvider "
               f"(providers: {', '.join(available)}); this is the CPU-only package")
    else:
        why = ("onnxruntime-gpu could not start its CUDA provider and fell back to the CPU (it does this "
               "silently); usually the NVIDIA driver/GPU is not visible, or the CUDA/cuDNN libraries do "
               "not match the onnxruntime-gpu build (see the onnxruntime error printed above)")
    both = (" Both onnxruntime and onnxruntime-gpu are installed, and the CPU package shadows the GPU one."
            if sum(r.startswith(("onnxruntime ", "onnxruntime-gpu ")) for r in runtimes) > 1 else "")
    asked = "was requested" if device == "cuda" else "was tried (device 'auto')"
    return (f"CUDA {asked} for {path.name} but {why}.{both} Installed: {', '.join(runtimes) or 'none'}; "
            f"{torch_cuda}. Fix: {INSTALL_GPU_HINT}, then restart ComfyUI; or choose device 'cpu'.")


def _create_session(ort: Any, path: pathlib.Path, providers: list, threads: int | None) -> Any:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = int(threads)
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as exc:
        text = str(exc)
        if "protobuf" in text.lower() or "INVALID_PROTOBUF" in text:
            raise ModelContractError(
                f"{path.name} is not a valid ONNX model ({text.strip()[:300]}). If it is a weights file (.bin/.data) "
                f"pick the .onnx beside it; otherwise download the model again") from exc
        if "external" in text.lower() or "No such file" in text:
            raise ModelContractError(
                f"{path.name} needs its external-data file (e.g. *_data.bin) in the same folder: "
                f"{text.strip()[:300]}") from exc
        raise ModelContractError(f"onnxruntime could not load {path}: {text.strip()[:500]}") from exc


def load_session(path: str | os.PathLike, device: str = "auto", *, threads: int | None = None,
                 device_id: int | None = None) -> Any:
    """Open an onnxruntime InferenceSession on ``device`` ('auto' | 'cuda' | 'cpu').

    A folder resolves to its ``end2end.onnx``. 'cuda' raises RuntimeError when the CUDA provider is
    missing or did not start (never a silent CPU run); 'auto' then uses the CPU and logs a warning.
    ``device_id``: the CUDA device the provider uses (None = its default, device 0).
    """
    dev = str(device).lower().strip()
    if dev not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got '{device}'")
    p = check_onnx_file(path)
    ort = _import_onnxruntime()
    if dev == "cpu":
        return _create_session(ort, p, ["CPUExecutionProvider"], threads)
    _prepare_cuda_libraries(ort)
    available = list(ort.get_available_providers())
    if "CUDAExecutionProvider" in available:
        cuda: Any = ("CUDAExecutionProvider" if device_id is None
                     else ("CUDAExecutionProvider", {"device_id": int(device_id)}))
        session = _create_session(ort, p, [cuda, "CPUExecutionProvider"], threads)
        if session.get_providers() and session.get_providers()[0] == "CUDAExecutionProvider":
            return session
        reason = _cuda_failure_reason(ort, p, available, dev)
        if dev == "cuda":
            raise RuntimeError(reason)
        log.warning("%s Running %s on the CPU instead (slow).", reason, p.name)
        return session
    reason = _cuda_failure_reason(ort, p, available, dev)
    if dev == "cuda":
        raise RuntimeError(reason)
    log.warning("%s Running %s on the CPU instead (slow).", reason, p.name)
    return _create_session(ort, p, ["CPUExecutionProvider"], threads)


# ---------------------------------------------------------------------------------------- contracts

@dataclass(frozen=True)
class TensorSpec:
    """Name, dims (an int, or None when symbolic) and numpy dtype of a model input or output."""

    name: str
    dims: tuple[int | None, ...]
    dtype: Any

    @property
    def fixed_batch(self) -> int | None:
        return self.dims[0] if self.dims else None


_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


def _spec(arg: Any) -> TensorSpec:
    dims = tuple(d if isinstance(d, int) and d > 0 else None for d in (arg.shape or ()))
    return TensorSpec(arg.name, dims, _ORT_TYPES.get(arg.type, np.float32))


def _fits(dims: tuple[int | None, ...], expected: tuple[int | None, ...]) -> bool:
    return len(dims) == len(expected) and all(d is None or e is None or d == e for d, e in zip(dims, expected))


def _show(dims: tuple[int | None, ...]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def _io(session: Any) -> tuple[list[TensorSpec], list[TensorSpec]]:
    return [_spec(a) for a in session.get_inputs()], [_spec(a) for a in session.get_outputs()]


def _check_contract(session: Any, name: str, contract: str, ok, mistakes) -> tuple[TensorSpec, TensorSpec]:
    """Shared check: ``ok(ins, outs)`` decides; ``mistakes`` is [(test(ins, outs), hint)] for the
    error message, first match wins. Returns the (input, output) specs."""
    ins, outs = _io(session)
    if not (len(ins) == 1 and outs and ok(ins, outs)):
        got = f"inputs {[_show(s.dims) for s in ins]}, outputs {[_show(s.dims) for s in outs]}"
        hint = next((h for test, h in mistakes if test(ins, outs)), "")
        raise ModelContractError(f"{name} is not {contract}; it has {got}.{hint}")
    return ins[0], outs[0]


def check_detector_contract(session: Any, name: str = "detector") -> tuple[TensorSpec, TensorSpec]:
    """Check a session against the YOLOv10 end-to-end contract; returns (input, output) specs."""
    return _check_contract(
        session, name, DETECTOR_CONTRACT,
        lambda ins, outs: (_fits(ins[0].dims, (None, 3, DETECTOR_SIZE, DETECTOR_SIZE))
                           and _fits(outs[0].dims, (None, 300, 6))
                           and (ins[0].dims[0] is None or outs[0].dims[0] in (None, ins[0].dims[0]))),
        [(lambda ins, outs: ins and _fits(ins[0].dims, (None, 3, CROP_H, CROP_W)),
          " This looks like a pose model: connect it to the pose (ViTPose) input instead."),
         (lambda ins, outs: outs and len(outs[0].dims) == 3 and outs[0].dims[1] == 84,
          " This looks like a YOLOv8/11 raw-head export; export YOLOv10 end-to-end (or use yolov10m.onnx).")])


def check_pose_contract(session: Any, name: str = "pose model") -> tuple[TensorSpec, TensorSpec]:
    """Check a session against the ViTPose-WholeBody heatmap contract; returns (input, output) specs."""
    return _check_contract(
        session, name, POSE_CONTRACT,
        lambda ins, outs: (_fits(ins[0].dims, (None, 3, CROP_H, CROP_W))
                           and _fits(outs[0].dims, (None, NUM_KEYPOINTS, HEATMAP_H, HEATMAP_W))),
        [(lambda ins, outs: ins and _fits(ins[0].dims, (None, 3, DETECTOR_SIZE, DETECTOR_SIZE)),
          " This looks like a detector: connect it to the detector (YOLO) input instead."),
         (lambda ins, outs: outs and len(outs[0].dims) == 4 and outs[0].dims[1] == 17,
          " This is a body-only (COCO-17) model; the pack needs the WholeBody (133-point) one.")])


# ------------------------------------------------------------------------- graph reading, no session
# The loader node checks the contract without opening a session (the official ViTPose-H is 2.5 GB):
# the inputs and outputs are read straight from the ONNX protobuf (onnx/onnx.proto: ModelProto.graph
# = 7; GraphProto.initializer = 5, input = 11, output = 12; ValueInfoProto.name = 1, type = 2;
# TypeProto.tensor_type = 1; Tensor.elem_type = 1, shape = 2; TensorShapeProto.dim = 1;
# Dimension.dim_value = 1; TensorProto.name = 8, external_data = 13 with key = 1 / value = 2),
# seeking over every weight instead of reading it.

_ELEM_TYPES = {1: "tensor(float)", 10: "tensor(float16)", 11: "tensor(double)", 16: "tensor(bfloat16)"}


class _WireError(ValueError):
    pass


@dataclass(frozen=True)
class GraphArg:
    """A graph input or output as ``onnxruntime.NodeArg`` shows it (name, shape, type)."""

    name: str
    shape: list
    type: str


class GraphIO:
    """The inputs (initializers excluded, as onnxruntime lists them) and outputs of an ONNX file;
    stands in for a session in the contract checks."""

    def __init__(self, inputs: list[GraphArg], outputs: list[GraphArg], external: list[tuple[str, int]]):
        self._inputs, self._outputs, self.external = inputs, outputs, external

    def get_inputs(self) -> list[GraphArg]:
        return list(self._inputs)

    def get_outputs(self) -> list[GraphArg]:
        return list(self._outputs)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise _WireError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _fields(data: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of a message held in memory; length-delimited values are bytes."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos:pos + size], pos + size
        else:
            raise _WireError(f"unsupported wire type {wire}")
        if pos > len(data) or number == 0:
            raise _WireError("truncated or malformed message")
        yield number, wire, value


class _FileFields:
    """Reads the fields of a message that lies in ``[start, end)`` of a file, seeking over large ones."""

    def __init__(self, fh: Any, size: int):
        self.fh, self.size = fh, size

    def _varint(self) -> int:
        value = shift = 0
        while True:
            b = self.fh.read(1)
            if not b or shift > 63:
                raise _WireError("truncated varint")
            value |= (b[0] & 0x7F) << shift
            shift += 7
            if not b[0] & 0x80:
                return value

    def fields(self, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
        """(field number, wire type, value start, value end); a varint's value is in the start slot."""
        pos = start
        while pos < end:
            self.fh.seek(pos)
            key = self._varint()
            number, wire = key >> 3, key & 7
            if wire == 0:
                value = self._varint()
                pos = self.fh.tell()
                yield number, wire, value, pos
                continue
            here = self.fh.tell()
            if wire == 1:
                stop = here + 8
            elif wire == 5:
                stop = here + 4
            elif wire == 2:
                length = self._varint()
                here = self.fh.tell()
                stop = here + length
            else:
                raise _WireError(f"unsupported wire type {wire}")
            if stop > end or number == 0:
                raise _WireError("truncated or malformed message")
            yield number, wire, here, stop
            pos = stop

    def read(self, start: int, end: int) -> bytes:
        self.fh.seek(start)
        return self.fh.read(end - start)


def _value_info(data: bytes) -> GraphArg:
    name, dims, elem = "", [], 0
    for number, wire, value in _fields(data):
        if number == 1 and wire == 2:
            name = value.decode("utf-8", "replace")
        elif number == 2 and wire == 2:
            for n2, w2, tensor in _fields(value):
                if n2 != 1 or w2 != 2:
                    continue
                for n3, w3, v3 in _fields(tensor):
                    if n3 == 1 and w3 == 0:
                        elem = v3
                    elif n3 == 2 and w3 == 2:
                        for n4, w4, dim in _fields(v3):
                            if n4 != 1 or w4 != 2:
                                continue
                            size: Any = None
                            for n5, w5, v5 in _fields(dim):
                                if n5 == 1 and w5 == 0:
                                    size = v5
                                elif n5 == 2 and w5 == 2:
                                    size = v5.decode("utf-8", "replace")
                            dims.append(size)
    return GraphArg(name, dims, _ELEM_TYPES.get(elem, f"tensor(type {elem})"))


def read_graph_io(path: str | os.PathLike) -> GraphIO:
    """Inputs, outputs and external-data references of an ONNX file, without loading its weights.

    Raises ModelContractError when the file is not an ONNX model (malformed or truncated protobuf,
    or no graph with inputs and outputs).
    """
    p = pathlib.Path(path)
    size = p.stat().st_size
    inputs: list[GraphArg] = []
    outputs: list[GraphArg] = []
    initializers: set[str] = set()
    external: list[tuple[str, int]] = []
    try:
        with open(p, "rb") as fh:
            reader = _FileFields(fh, size)
            graph = None
            has_ir_version = False
            for number, wire, start, end in reader.fields(0, size):
                if number == 1 and wire == 0:
                    has_ir_version = True
                elif number == 7 and wire == 2:
                    graph = (start, end)
            if graph is None or not has_ir_version:
                raise _WireError("no ir_version or no graph")
            for number, wire, start, end in reader.fields(*graph):
                if wire != 2:
                    continue
                if number in (11, 12):
                    (inputs if number == 11 else outputs).append(_value_info(reader.read(start, end)))
                elif number == 5:  # an initializer: its name and external-data entry, never its values
                    name, location, span = "", None, 0
                    for n2, w2, s2, e2 in reader.fields(start, end):
                        if n2 == 8 and w2 == 2:
                            name = reader.read(s2, e2).decode("utf-8", "replace")
                        elif n2 == 13 and w2 == 2:
                            entry = dict((k, v) for k, _, v in _fields(reader.read(s2, e2)))
                            key = entry.get(1, b"").decode("utf-8", "replace")
                            value = entry.get(2, b"").decode("utf-8", "replace")
                            if key == "location":
                                location = value
                            elif key in ("offset", "length") and value.isdigit():
                                span += int(value)
                    initializers.add(name)
                    if location is not None:
                        external.append((location, span))
    except (_WireError, OSError, UnicodeDecodeError) as exc:
        raise ModelContractError(f"{p.name} is not a valid ONNX model ({exc}); download the model again, "
                                 f"or pick the .onnx file if this is its weights file") from exc
    inputs = [a for a in inputs if a.name not in initializers]
    if not inputs or not outputs:
        raise ModelContractError(f"{p.name} is not a valid ONNX model (its graph has no inputs or outputs)")
    return GraphIO(inputs, outputs, external)


def _check_external_data(path: pathlib.Path, graph: GraphIO) -> None:
    """Every external-data file the graph names is beside it and long enough (a partial download)."""
    needed: dict[str, int] = {}
    for location, span in graph.external:
        needed[location] = max(needed.get(location, 0), span)
    for location, span in sorted(needed.items()):
        data = path.parent / location
        if not data.is_file():
            raise ModelContractError(f"{path.name} needs its external-data file {location} in the same folder "
                                     f"({path.parent}); download it too")
        if data.stat().st_size < span:
            raise ModelContractError(f"{path.name}: its external-data file {location} is shorter than the model "
                                     f"expects ({data.stat().st_size} < {span} bytes); download it again")


def check_model_file(path: str | os.PathLike, kind: str, name: str | None = None) -> pathlib.Path:
    """Check a model file against the detector (``kind='detector'``) or pose contract without a
    session, cheaply (graph header only); returns the resolved file.

    When the graph cannot be read this way a CPU session is tried once, so a file onnxruntime accepts
    is never refused; its error is raised otherwise. A graph that declares a symbolic size beyond the
    batch dimension (onnxruntime infers it only when it builds a session) is checked through a CPU
    session too, so a wrong network is still refused here.
    """
    if kind not in ("detector", "pose"):
        raise ValueError(f"kind must be 'detector' or 'pose', got {kind!r}")
    p = check_onnx_file(path)
    label = name or p.name
    check = check_detector_contract if kind == "detector" else check_pose_contract
    try:
        graph = read_graph_io(p)
    except ModelContractError as exc:
        log.debug("reading the graph of %s failed (%s); trying an onnxruntime session", p, exc)
        graph = None
    if graph is not None:
        _check_external_data(p, graph)
        check(graph, label)  # a clear mismatch is refused without a session
        args = [*graph.get_inputs(), *graph.get_outputs()]
        if all(isinstance(d, int) and d > 0 for a in args for d in a.shape[1:]):
            return p
    session = load_session(p, "cpu", threads=1)
    check(session, label)
    del session
    return p


# ------------------------------------------------------------------------------------------ running

def _run_in_batches(session: Any, spec: TensorSpec, x: np.ndarray, batch_size: int, name: str) -> np.ndarray:
    """Run ``x`` [n, ...] through a single-input session in batches, honouring a fixed batch dim
    (a fixed size b: chunks of b, the last one zero-padded). Returns float32 outputs [n, ...]."""
    n = x.shape[0]
    fixed = spec.fixed_batch
    step = fixed if fixed is not None else max(1, int(batch_size))
    outs = []
    for start in range(0, n, step):
        part = x[start:start + step]
        real = part.shape[0]
        if fixed is not None and real < fixed:
            pad = np.zeros((fixed - real,) + part.shape[1:], dtype=part.dtype)
            part = np.concatenate([part, pad], axis=0)
        try:
            y = session.run(None, {spec.name: np.ascontiguousarray(part, dtype=spec.dtype)})[0]
        except Exception as exc:
            text = str(exc)
            if "NoKernelImageForDevice" in text or "no kernel image" in text.lower():
                raise RuntimeError(
                    f"{name}: this onnxruntime-gpu build has no CUDA kernels for your GPU ({text.strip()[:200]}). "
                    f"Install a newer onnxruntime-gpu that supports your GPU generation, or choose device "
                    f"'cpu'.") from exc
            raise
        if y.shape[0] != part.shape[0]:
            raise ModelContractError(f"{name} returned {y.shape[0]} results for a batch of {part.shape[0]}")
        outs.append(np.asarray(y[:real], dtype=np.float32))
    if not outs:
        return np.zeros((0,), dtype=np.float32)
    return np.concatenate(outs, axis=0)


class _OnnxModel:
    """What the detector and the pose model share: loading from a file and session facts."""

    session: Any
    input: Any

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "auto", *, device_id: int | None = None, **kwargs: Any):
        p = check_onnx_file(path)
        kwargs.setdefault("name", p.name)
        return cls(load_session(p, device, device_id=device_id), **kwargs)

    @property
    def dynamic_batch(self) -> bool:
        return self.input.fixed_batch is None

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())


class PersonDetector(_OnnxModel):
    """YOLOv10 end-to-end person detector over an onnxruntime session.

    ``run(frames)`` returns, per frame, float32 boxes [k, 5] (x1, y1, x2, y2, score) in image
    pixels: every person after the confidence filter and NMS, best first.
    """

    def __init__(self, session: Any, *, name: str = "detector", conf_threshold: float = DEFAULT_CONF,
                 iou_threshold: float = DEFAULT_IOU, batch_size: int = 8):
        self.session = session
        self.name = name
        self.input, self.output = check_detector_contract(session, name)
        self.conf_threshold = float(conf_threshold)
        self.iou_threshold = float(iou_threshold)
        self.batch_size = max(1, int(batch_size))

    def run(self, frames: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
        """Detect people in RGB uint8 frames ([N, H, W, 3], one [H, W, 3], or a list of frames)."""
        seq = list(frames) if isinstance(frames, (list, tuple)) or np.ndim(frames) == 4 else [frames]
        results: list[np.ndarray] = []
        for start in range(0, len(seq), self.batch_size):
            part = seq[start:start + self.batch_size]
            x = preprocess_for_detector(list(part))
            raw = _run_in_batches(self.session, self.input, x, self.batch_size, self.name)
            if raw.ndim != 3 or raw.shape[1:] != (300, 6):
                raise ModelContractError(f"{self.name} returned {tuple(raw.shape)}; expected {DETECTOR_CONTRACT}")
            for frame, rows in zip(part, raw):
                h, w = np.shape(frame)[:2]
                results.append(parse_detections(rows, w, h, self.conf_threshold, self.iou_threshold))
        return results


class WholeBodyPose(_OnnxModel):
    """ViTPose COCO-WholeBody heatmap model over an onnxruntime session, run in batches of crops."""

    def __init__(self, session: Any, *, name: str = "pose model", batch_size: int = 16,
                 bgr_like_official: bool = False, padding: float = BOX_PADDING):
        self.session = session
        self.name = name
        self.input, self.output = check_pose_contract(session, name)
        self.batch_size = max(1, int(batch_size))
        self.bgr_like_official = bool(bgr_like_official)
        self.padding = float(padding)

    def heatmaps(self, crops: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Heatmaps float32 [n, 133, 64, 48] of crops [n, 3, 256, 192], ``batch_size`` crops per run."""
        x = np.asarray(crops)
        if x.ndim != 4 or x.shape[1:] != (3, CROP_H, CROP_W):
            raise ValueError(f"{self.name}: crops must be [n, 3, {CROP_H}, {CROP_W}], got {tuple(x.shape)}")
        if x.shape[0] == 0:
            return np.zeros((0, NUM_KEYPOINTS, HEATMAP_H, HEATMAP_W), dtype=np.float32)
        hm = _run_in_batches(self.session, self.input, x, batch_size or self.batch_size, self.name)
        if hm.shape[1:] != (NUM_KEYPOINTS, HEATMAP_H, HEATMAP_W):
            raise ModelContractError(f"{self.name} returned {tuple(hm.shape)}; expected {POSE_CONTRACT}")
        return hm

    def crops(self, frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """The normalised crops of ``boxes`` in one RGB uint8 frame, as this model expects them."""
        return crop_batch(frame, boxes, padding=self.padding, bgr_like_official=self.bgr_like_official)

    def decode(self, heatmaps: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Keypoints [n, 133, 3] in image pixels from the heatmaps of the crops of ``boxes``."""
        return keypoints_from_heatmaps(heatmaps, boxes, padding=self.padding)

    def estimate(self, frame: np.ndarray, boxes: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Keypoints float32 [k, 133, 3] (x, y, score in image pixels) of the people in ``boxes``."""
        b = np.asarray(boxes, dtype=np.float32).reshape(-1, np.shape(boxes)[-1] if np.size(boxes) else 5)
        if b.shape[0] == 0:
            return np.zeros((0, NUM_KEYPOINTS, 3), dtype=np.float32)
        return self.decode(self.heatmaps(self.crops(frame, b), batch_size), b)


# ------------------------------------------------------------------------------ sessions on demand

#: Working memory allowed for one pose run on a GPU besides the weights (onnxruntime's arena, a batch
#: of crops and heatmaps): a rough figure for the host's free-memory request.
RUN_WORKSPACE_BYTES = 1 << 30


class OpenPoseModels:
    """The detector and pose model of one run; emptied (``None``) when the run ends."""

    def __init__(self, detector: PersonDetector, pose: WholeBodyPose):
        self.detector: PersonDetector | None = detector
        self.pose: WholeBodyPose | None = pose

    @property
    def provider(self) -> str:
        if self.pose is None:
            raise RuntimeError("the pose models were released when their run ended")
        return self.pose.providers[0]


@dataclass
class PoseModelFiles:
    """A detector and a pose model checked on disk, opened as onnxruntime sessions only for a run.

    ``validate`` checks both contracts cheaply (``check_model_file``). ``open`` creates the sessions
    on the device asked for, yields them, and drops them when the run ends, which gives their GPU
    memory back (onnxruntime frees its arena with the session), unless ``keep_loaded`` keeps them
    for the next run on the same device.
    """

    detector: pathlib.Path
    pose: pathlib.Path
    bgr_like_official: bool = False
    keep_loaded: bool = False
    detector_name: str = "detector"
    pose_name: str = "pose model"
    _kept: Any = dataclasses.field(default=None, init=False, repr=False, compare=False)
    _open: Any = dataclasses.field(default=None, init=False, repr=False, compare=False)

    def validate(self) -> None:
        """Raise ModelContractError naming the file that is not the expected model."""
        self.detector = check_model_file(self.detector, "detector", self.detector_name)
        self.pose = check_model_file(self.pose, "pose", self.pose_name)

    @property
    def loaded(self) -> bool:
        """True while sessions exist (inside ``open``, or kept after it)."""
        return self._kept is not None or self._open is not None

    def bytes_needed(self) -> int:
        """Bytes to ask the host for before GPU sessions: both models' weights and a workspace."""
        total = RUN_WORKSPACE_BYTES
        for path in (self.detector, self.pose):
            p = _model_file(path)
            total += p.stat().st_size
            try:
                graph = read_graph_io(p)
            except ModelContractError:
                continue
            for location in {loc for loc, _ in graph.external}:
                data = p.parent / location
                if data.is_file():
                    total += data.stat().st_size
        return total

    def release(self) -> None:
        """Drop kept sessions (their GPU memory goes back)."""
        self._kept = None
        gc.collect()

    @contextlib.contextmanager
    def open(self, device: str = "auto", *, device_id: int | None = None, batch_size: int = 16,
             before_gpu: Callable[[int], None] | None = None) -> Iterator[OpenPoseModels]:
        """Sessions on ``device`` ('auto' | 'cuda' | 'cpu', see ``load_session``) for the ``with`` body.

        ``before_gpu(bytes)`` is called before sessions are created on a device other than the CPU
        (the node asks the host to free that much VRAM). On leaving, also after an error, the
        sessions are dropped unless ``keep_loaded``.
        """
        key = (str(device), device_id)
        kept, self._kept = self._kept, None
        if kept is not None and kept[0] == key:
            run = OpenPoseModels(kept[1], kept[2])
        else:
            del kept
            gc.collect()
            if key[0] != "cpu" and before_gpu is not None:
                before_gpu(self.bytes_needed())
            det = PersonDetector.load(self.detector, device, device_id=device_id, name=self.detector_name)
            pose = WholeBodyPose.load(self.pose, device, device_id=device_id, name=self.pose_name,
                                      batch_size=batch_size, bgr_like_official=self.bgr_like_official)
            run = OpenPoseModels(det, pose)
            del det, pose
        self._open = run
        try:
            yield run
        finally:
            self._open = None
            if self.keep_loaded and run.detector is not None and run.pose is not None:
                self._kept = (key, run.detector, run.pose)
            run.detector = run.pose = None
            gc.collect()
