"""An agileir-export folder, validated before anything reads a model from it or writes anything for it.

`read_export(folder)` checks export.json against `EXPORT_SCHEMA` (jsonschema): `scale` an integer >= 1, forms
and variants of known names with their known file names, each listed file present and, where export.json
records its sha256 (every export since the toolkit records them), unchanged; each listed ONNX loads and passes
`onnx.checker`. Every error is one ValueError naming the file and the field (`export.json: $.scale: -4 is less
than the minimum of 1`). `check_onnx(path)` is the ONNX check alone, for files a folder holds but does not list.

Exports prove what they are: each ONNX file is read back (`graph_facts`) and must be what export.json says it is
(`check_graph`), or the command stops naming the file and the field:

* scale: the product of the graph's DepthToSpace block sizes, and, for graphs plain ONNX Runtime runs (every
  form but the plugin one), the output/input size ratio of a probe (one window of zeros) - against `$.scale`;
* form: a node of the `agileir` domain is the plugin form, an `Attention` node the attention form, else
  standard - against the form export.json lists the file under (and the file name);
* precision: QuantizeLinear/DequantizeLinear nodes are int8, float16 initializers fp16, else fp32 - against
  the variant it is listed under;
* opset: the default domain's `opset_import` - against the entry's `opset` (every form records its own), or,
  for exports that predate it, `$.opset` for the standard and plugin forms.

`check_listed_artifact(path)` applies the same to one ONNX file and the export.json beside it that lists it
(`agileir validate`, `agileir build`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..io.gate import file_sha256
from .forms import FORMS, PRECISIONS, onnx_name

PLUGIN_DOMAIN = "agileir"

EXPORT_JSON = "export.json"
ONNX_FILES = tuple(onnx_name(form, precision) for form in FORMS for precision in PRECISIONS)
_SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_FILE = {"type": "object", "required": ["file"],
         "properties": {"file": {"enum": list(ONNX_FILES)}, "sha256": _SHA256}}
EXPORT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["scale", "forms"],
    "properties": {
        "scale": {"type": "integer", "minimum": 1},
        "window": {"type": "integer", "minimum": 1},
        "forms": {"type": "object", "propertyNames": {"enum": list(FORMS)},
                  "additionalProperties": _FILE},
        "variants": {"type": "object", "propertyNames": {"enum": ["fp16", "int8"]},
                     "additionalProperties": {
                         "type": "object",
                         "properties": {**{form: _FILE for form in FORMS},
                                        "calibration": {"enum": ["calibration.json"]},
                                        "calibration_sha256": _SHA256}}},
    },
}


@dataclass
class ExportFolder:
    folder: Path
    info: dict  # export.json's content ({} when the folder has none)
    listed: dict[str, str]  # file name -> the export.json field that lists it

    @property
    def scale(self) -> int:
        return int(self.info["scale"])


def listed_files(info: dict) -> dict[str, tuple[str, str, str | None]]:
    """Files export.json lists: name -> (the field naming it, the field of its sha256, that sha256 or None)."""
    found: dict[str, tuple[str, str, str | None]] = {}
    for form, entry in (info.get("forms") or {}).items():
        found[entry["file"]] = (f"$.forms.{form}.file", f"$.forms.{form}.sha256", entry.get("sha256"))
    for precision, entries in (info.get("variants") or {}).items():
        for form in FORMS:
            if isinstance(entries.get(form), dict):
                at = f"$.variants.{precision}.{form}"
                found[entries[form]["file"]] = (f"{at}.file", f"{at}.sha256", entries[form].get("sha256"))
        if entries.get("calibration"):
            at = f"$.variants.{precision}.calibration"
            found[entries["calibration"]] = (at, f"{at}_sha256", entries.get("calibration_sha256"))
    return found


def check_onnx(path: str | Path) -> None:
    """ValueError naming `path` unless it loads as ONNX and passes onnx.checker."""
    import onnx

    try:
        onnx.checker.check_model(str(path))
    except Exception as e:  # onnx raises DecodeError, ValidationError, ...: all mean "not a valid model"
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path}: not a valid ONNX model ({text})") from None


def _schema_error(path: Path, info: Any) -> str | None:
    import jsonschema  # type: ignore[import-untyped]

    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(EXPORT_SCHEMA).iter_errors(info))
    return None if error is None else f"{path}: {error.json_path}: {error.message}"


def read_export(folder: str | Path) -> ExportFolder:
    """The validated export folder (module docstring); ValueError/FileNotFoundError naming file and field."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"export folder not found: {folder}")
    path = folder / EXPORT_JSON
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (is {folder} an agileir-export folder?)")
    try:
        info = json.loads(path.read_text())
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    error = _schema_error(path, info)
    if error:
        raise ValueError(error)
    listed = listed_files(info)
    for name, (field, sha_field, sha256) in listed.items():
        file = folder / name
        if not file.is_file():
            raise ValueError(f"{path}: {field} lists {name}, which is missing from {folder}")
        if sha256 is not None and file_sha256(file) != sha256:
            raise ValueError(f"{file}: its sha256 is not the one {path} records at {sha_field} (changed or "
                             "replaced since the export)")
    for name in listed:
        if name.endswith(".onnx"):
            check_onnx(folder / name)
            check_graph(folder / name, info, path)
    return ExportFolder(folder, info, {name: field for name, (field, _, _) in listed.items()})


def listed_as(info: dict, name: str) -> tuple[str, str, dict] | None:
    """(form, precision, its entry) under which export.json lists the ONNX file `name`, or None."""
    for form, entry in (info.get("forms") or {}).items():
        if isinstance(entry, dict) and entry.get("file") == name:
            return form, "fp32", entry
    for precision, entries in (info.get("variants") or {}).items():
        for form in FORMS:
            entry = entries.get(form) if isinstance(entries, dict) else None
            if isinstance(entry, dict) and entry.get("file") == name:
                return form, precision, entry
    return None


def graph_opset(proto) -> int | None:
    """The opset of the default ONNX domain the graph imports (an onnx.ModelProto, or a path to one)."""
    if isinstance(proto, (str, Path)):
        import onnx

        proto = onnx.load(str(proto), load_external_data=False)
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)


def graph_facts(path: str | Path, probe: bool = True) -> dict:
    """What an ONNX file is, read from its graph: opset, form, precision, scale (see the module docstring)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    opset = graph_opset(proto)
    ops = {n.op_type for n in proto.graph.node}
    domains = {n.domain for n in proto.graph.node}
    form = "plugin" if PLUGIN_DOMAIN in domains else "attention" if "Attention" in ops else "standard"
    if ops & {"QuantizeLinear", "DequantizeLinear"}:
        precision = "int8"
    elif any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer):
        precision = "fp16"
    else:
        precision = "fp32"
    blocks = [a.i for n in proto.graph.node if n.op_type == "DepthToSpace" for a in n.attribute if a.name == "blocksize"]
    facts = {"opset": opset, "form": form, "precision": precision, "scale": _product(blocks) if blocks else None}
    if probe and form != "plugin":
        facts["probe"] = _probe(proto)
    return facts


def _product(values: list[int]) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out


def _probe(proto, size: int = 16) -> tuple[tuple[int, int], tuple[int, int]] | str:
    """(input H x W, output H x W) of one run on zeros in plain ONNX Runtime (no optimisations); a str says why
    there is none (ONNX Runtime missing or failing, a static input shape)."""
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime is not installed"
    inp = proto.graph.input[0]
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
    shape = [d if d else (1 if i < 2 else size) for i, d in enumerate(dims)]
    if len(shape) == 4 and not dims[1]:
        shape[1] = 3
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        out = session.run(None, {inp.name: np.zeros(shape, np.float32)})[0]
    except Exception as e:  # noqa: BLE001 - any failure only means: no probe
        return f"ONNX Runtime cannot run it ({str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__})"
    return (shape[2], shape[3]), (int(out.shape[2]), int(out.shape[3]))


def check_graph(path: str | Path, info: dict, json_path: str | Path) -> dict:
    """ValueError naming `path`, the field and `json_path` unless the graph is what export.json (`info`) says."""
    path = Path(path)
    listed = listed_as(info, path.name)
    facts = graph_facts(path)
    if listed is None:
        form, precision, entry, at = _from_name(path.name) + ({}, "")
    else:
        form, precision, entry = listed
        at = f"$.forms.{form}" if precision == "fp32" else f"$.variants.{precision}.{form}"
    scale = info.get("scale")
    if facts["scale"] is not None and facts["scale"] != scale:
        raise ValueError(f"{path}: the graph upscales x{facts['scale']} (its DepthToSpace blocks), but {json_path} "
                         f"says $.scale {scale}")
    probe = facts.get("probe")
    if isinstance(probe, tuple):
        (h, w), (oh, ow) = probe
        if (oh, ow) != (h * scale, w * scale):
            raise ValueError(f"{path}: the graph maps {h}x{w} to {oh}x{ow}, not x{scale} as {json_path} says at "
                             f"$.scale")
    if facts["form"] != form:
        raise ValueError(f"{path}: the graph is the {facts['form']} form, but {json_path} lists it as the {form} "
                         f"form{' at ' + at if at else ''}")
    if facts["precision"] != precision:
        raise ValueError(f"{path}: the graph is {facts['precision']}, but {json_path} lists it as {precision}"
                         f"{' at ' + at if at else ''}")
    recorded = entry.get("opset") if isinstance(entry, dict) else None
    where = f"{at}.opset"
    if recorded is None and form != "attention":
        recorded, where = info.get("opset"), "$.opset"
    if recorded is not None and facts["opset"] != recorded:
        raise ValueError(f"{path}: the graph's opset is {facts['opset']}, but {json_path} says {where} {recorded}")
    return facts


def _from_name(name: str) -> tuple[str, str]:
    """(form, precision) a file's name says (model.plugin.fp16.onnx -> plugin, fp16)."""
    for form in FORMS:
        for precision in PRECISIONS:
            if onnx_name(form, precision) == name:
                return form, precision
    return "standard", "fp32"


def check_listed_artifact(path: str | Path) -> dict | None:
    """For one ONNX file: when an export.json beside it lists it, `check_graph` against it (ValueError naming the
    file and the field on a mismatch); returns the graph's facts, None when no export.json lists the file."""
    path = Path(path)
    json_path = path.parent / EXPORT_JSON
    if path.suffix != ".onnx" or not json_path.is_file():
        return None
    try:
        info = json.loads(json_path.read_text())
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{json_path}: not valid JSON ({e})") from None
    if not isinstance(info, dict) or listed_as(info, path.name) is None:
        return None
    error = _schema_error(json_path, info)
    if error:
        raise ValueError(error)
    return check_graph(path, info, json_path)
