"""An agileir-export folder, validated before anything reads a model from it or writes anything for it.

`read_export(folder)` checks export.json against `EXPORT_SCHEMA` (jsonschema): `scale` an integer >= 1, forms
and variants of known names with their known file names, each listed file present and, where export.json
records its sha256 (every export since the toolkit records them), unchanged; each listed ONNX loads and passes
`onnx.checker`. Every error is one ValueError naming the file and the field (`export.json: $.scale: -4 is less
than the minimum of 1`). `check_onnx(path)` is the ONNX check alone, for files a folder holds but does not list.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..io.gate import file_sha256
from .forms import FORMS, PRECISIONS, onnx_name

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
    return ExportFolder(folder, info, {name: field for name, (field, _, _) in listed.items()})
