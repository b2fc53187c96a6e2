"""What a deployed artifact is: kind by suffix, ONNX metadata and precision, the engine sidecar (engine.json).

Nothing here imports torch, onnxruntime or TensorRT.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TORCH_SUFFIXES = (".pth", ".pt", ".safetensors")
ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".plan", ".engine")
SIDECAR_FORMAT = "agileir-engine/1"
PRECISIONS = ("fp32", "fp16", "int8")
# every command's --backend choices (auto: from the file type)
BACKENDS = ("auto", "pytorch", "onnxruntime", "onnxruntime-cpu", "openvino", "tensorrt", "rtx")


def artifact_kind(path: str | Path) -> str:
    """'checkpoint', 'onnx' or 'engine' from the file suffix (ValueError otherwise)."""
    suffix = Path(path).suffix.lower()
    for kind, suffixes in (("checkpoint", TORCH_SUFFIXES), ("onnx", ONNX_SUFFIXES), ("engine", ENGINE_SUFFIXES)):
        if suffix in suffixes:
            return kind
    known = ", ".join(TORCH_SUFFIXES + ONNX_SUFFIXES + ENGINE_SUFFIXES)
    raise ValueError(f"{path}: unsupported model file (expected one of {known})")


def _decode(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def read_onnx(path, external_data: bool = False):
    """The one way agileir reads an .onnx file (its external data too with `external_data`). A file that
    is not an ONNX model (truncated, another format) is a ValueError naming it, not protobuf's DecodeError."""
    import onnx

    if not Path(path).is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    try:
        return onnx.load(str(path), load_external_data=external_data)
    except Exception as e:  # protobuf's DecodeError, onnx's errors: all mean "not a model this can read"
        raise ValueError(f"{Path(path).name} is not a readable ONNX model ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:160] if str(e) else 'unparseable'})") from None


def onnx_metadata(path_or_proto) -> dict:
    """The metadata_props agileir-export writes (values JSON-decoded)."""
    import onnx

    proto = path_or_proto if isinstance(path_or_proto, onnx.ModelProto) else read_onnx(path_or_proto)
    return {p.key: _decode(p.value) for p in proto.metadata_props}


def onnx_precision(proto) -> str:
    """'int8' when the graph has QuantizeLinear nodes, 'fp16' when it has float16 tensors, else 'fp32'.

    Read from the graph itself, not from a name or a metadata key, so a renamed file cannot lie."""
    import onnx

    f16 = onnx.TensorProto.FLOAT16
    graphs = [proto.graph]
    nodes = []
    while graphs:  # include If/Loop bodies
        g = graphs.pop()
        nodes.extend(g.node)
        graphs.extend(a.g for n in g.node for a in n.attribute if a.type == onnx.AttributeProto.GRAPH)
    if any(n.op_type == "QuantizeLinear" for n in nodes):
        return "int8"
    g = proto.graph
    typed = list(g.input) + list(g.output) + list(g.value_info)
    if (any(t.data_type == f16 for t in g.initializer)
            or any(v.type.tensor_type.elem_type == f16 for v in typed)
            or any(n.op_type == "Cast" and any(a.name == "to" and a.i == f16 for a in n.attribute) for n in nodes)):
        return "fp16"
    return "fp32"


def sidecar_path(engine: str | Path) -> Path:
    """engine.plan -> engine.json (model.plugin.plan -> model.plugin.json)."""
    return Path(engine).with_suffix(".json")


def read_sidecar(engine: str | Path) -> dict:
    """The engine.json written beside an engine by `agileir build` (one-line errors)."""
    path = sidecar_path(engine)
    if not path.is_file():
        raise ValueError(f"{path.name} not found beside {Path(engine).name}: engines built outside "
                         "`agileir build` need it (scale, precision, plugin form); rebuild with `agileir build`")
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None
    if info.get("format") != SIDECAR_FORMAT:
        raise ValueError(f"{path} is not an agileir engine description (format {info.get('format')!r})")
    return info


def artifact_inputs(*artifacts: str | Path | None, plugin_library: str | Path | None = None) -> list[Path]:
    """The files running these artifacts reads (None: the bundled checkpoint): each artifact, beside an engine
    its engine.json, and the plugin library given, so that no output of the run may replace them."""
    from ..models.load import default_checkpoint

    found = []
    for a in artifacts:
        path = Path(a) if a is not None else default_checkpoint()
        found.append(path)
        if path.suffix.lower() in ENGINE_SUFFIXES:
            found.append(sidecar_path(path))
    return found + ([Path(plugin_library)] if plugin_library else [])


def artifact_precision(path: str | Path) -> str:
    """Precision of a checkpoint (fp32: loaded as float32), an ONNX graph or an engine (its engine.json)."""
    kind = artifact_kind(path)
    if kind == "checkpoint":
        return "fp32"
    if kind == "engine":
        return str(read_sidecar(path)["precision"])
    return onnx_precision(read_onnx(path))


def artifact_metadata(path: str | Path) -> dict:
    """scale, window, form, source_checkpoint ... of an ONNX file (metadata_props) or an engine (engine.json)."""
    kind = artifact_kind(path)
    if kind == "onnx":
        return onnx_metadata(path)
    if kind == "engine":
        return read_sidecar(path)
    return {}
