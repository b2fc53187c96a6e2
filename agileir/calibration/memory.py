"""What a calibration pass holds in memory, estimated from the graph's activation sizes before it starts, and
checked against the memory budget of agileir.upscale.memory (`default_budget`: half of the available memory,
or the budget the caller gives, e.g. `--max-memory`). One budget policy for every step that runs images.

Activation sizes come from ONNX Runtime's symbolic shape inference on a copy of the graph whose input is
fixed to the largest calibration image (1 x 3 x H x W), so every tensor has a static size in bytes.

Estimates, in bytes, of what a calibration pass adds to the process:

* a streaming pass (the toolkit's calibrators; ONNX Runtime's calibrators fed in strides of `stride`
  images): 2 x the calibrated tensors of one stride (ONNX Runtime holds every one of them at once in its
  CPU arena, which grows by doubling: as graph outputs, or, for MinMax, as inputs of the ReduceMin/ReduceMax
  nodes it appends after the graph; measured 1.6x (histograms) and 2.4x (MinMax) on a tiny model), the
  collector's transient copies (3 x the largest tensor x stride), plus the session's own working set;
* the session's working set: WORKSET x the largest activation of the graph plus MODEL_COPIES x the
  graph's serialized size (the calibrators and quantizers hold several copies of the model).
"""
from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

WORKSET = 6  # largest activations alive at once in one ORT run (input, output, residual, MLP hidden, ...)
MODEL_COPIES = 8  # graph copies held by a calibrator + quantizer (loaded, shape-inferred, augmented, output)
GIB = 2**30

_BYTES = {onnx.TensorProto.FLOAT: 4, onnx.TensorProto.FLOAT16: 2, onnx.TensorProto.DOUBLE: 8,
          onnx.TensorProto.INT64: 8, onnx.TensorProto.INT32: 4, onnx.TensorProto.BOOL: 1,
          onnx.TensorProto.INT8: 1, onnx.TensorProto.UINT8: 1}


_LAST: dict = {}  # the last graph's sizes: the peers of one report share one graph


def activation_bytes(graph: onnx.ModelProto, height: int, width: int) -> dict[str, int]:
    """Tensor name -> bytes for one height x width image (batch 1), every non-constant tensor of the graph."""
    data = graph.SerializeToString()
    key = (hashlib.sha256(data).hexdigest(), height, width)
    if key not in _LAST:
        _LAST.clear()
        _LAST[key] = _inferred_sizes(onnx.ModelProto.FromString(data), height, width)
    return dict(_LAST[key])


def _inferred_sizes(model: onnx.ModelProto, height: int, width: int) -> dict[str, int]:
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    del model.graph.value_info[:]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for dim, value in zip(dims, (1, 3, height, width)):
        dim.Clear()
        dim.dim_value = value
    inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    constants = {i.name for i in inferred.graph.initializer}
    sizes = {}
    for info in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input):
        tensor = info.type.tensor_type
        if info.name in constants or not tensor.HasField("shape"):
            continue
        shape = [d.dim_value if d.HasField("dim_value") else 0 for d in tensor.shape.dim]
        if all(shape) or not shape:
            sizes[info.name] = int(np.prod(shape, dtype=np.int64)) * _BYTES.get(tensor.elem_type, 4)
    return sizes


def largest_image(images: list[np.ndarray]) -> tuple[int, int]:
    """(height, width) of the image with the most pixels (HxWx3 arrays)."""
    return max((im.shape[:2] for im in images), key=lambda hw: hw[0] * hw[1])


@dataclass(frozen=True)
class PassEstimate:
    """Peak bytes a calibration pass adds, and what it is made of."""
    bytes: int
    tensors: int  # calibrated tensors per image
    per_image: int  # their bytes for one image
    stride: int  # images whose tensors are held at once
    image: tuple[int, int]  # the largest image (h, w) the sizes are for

    def fits(self, budget: int) -> bool:
        return self.bytes <= budget

    def over_budget(self, budget: int) -> str:
        return (f"calibrating needs ~{self.bytes / GIB:.2f} GiB ({self.tensors} calibrated tensors, "
                f"{self.per_image / 2**20:.1f} MiB per {self.image[1]}x{self.image[0]} image, {self.stride} "
                f"image(s) at a time), over the {budget / GIB:.2f} GiB memory budget (default: half of the "
                "available memory; --max-memory sets it)")

    def record(self) -> dict:
        return {"estimate_bytes": self.bytes, "calibrated_tensors": self.tensors, "bytes_per_image": self.per_image,
                "stride": self.stride}


def pass_estimate(graph: onnx.ModelProto, tensors: list[str] | set[str], images: list[np.ndarray], stride: int = 1,
                  batch: int = 1, sizes: dict[str, int] | None = None) -> PassEstimate:
    """Peak bytes of a pass over `images` that calibrates `tensors`, `stride` images at a time, running
    `batch` images per call."""
    h, w = largest_image(images)
    sizes = sizes if sizes is not None else activation_bytes(graph, h, w)
    biggest = max(sizes.values(), default=0)
    known = [sizes.get(t, biggest) for t in tensors]  # a tensor of unknown size counts as the largest
    per_image = sum(known)
    stride = max(1, min(stride, len(images)))
    session = WORKSET * biggest * batch + MODEL_COPIES * graph.ByteSize()
    held = 2 * stride * per_image + 3 * stride * max(known, default=0)
    return PassEstimate(int(session + held), len(known), per_image, stride, (h, w))


def budget_or_default(budget: int | None) -> int:
    from ..upscale.memory import default_budget

    return budget or default_budget()


def release_memory() -> None:
    """Collect garbage and hand the freed heap back to the OS (glibc's malloc_trim), so the resident size falls
    back after a pass that peaked instead of staying at that peak for the rest of the run. No-op off glibc."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class SpilledGraphs(MutableMapping):
    """Name -> onnx.ModelProto kept as serialized files in a private temporary folder instead of in memory: the
    calibration report holds about 19 variant graphs (tens of MB each for AgileIR-light, the folded position-bias
    tables included) through every later pass. Reading a name loads that graph; `close()` (or leaving the `with`
    block) removes the folder. Scratch space, not an output: nothing in it outlives the run."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="agileir-graphs-")
        self._files: dict[str, Path] = {}
        self._next = 0

    def __setitem__(self, name: str, graph: onnx.ModelProto) -> None:
        path = self._files.get(name)
        if path is None:  # a new name gets the next file; a name set again rewrites its own
            path, self._next = Path(self._dir.name) / f"{self._next}.onnx", self._next + 1
        path.write_bytes(graph.SerializeToString())
        self._files[name] = path

    def __getitem__(self, name: str) -> onnx.ModelProto:
        return onnx.ModelProto.FromString(self._files[name].read_bytes())

    def __delitem__(self, name: str) -> None:
        self._files.pop(name).unlink(missing_ok=True)

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)

    def close(self) -> None:
        self._files.clear()
        self._dir.cleanup()

    def __enter__(self) -> "SpilledGraphs":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
