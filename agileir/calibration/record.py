"""calibration.json: everything needed to rebuild an INT8 variant without calibrating again.

Ranges are stored as the float32 values ORT's quantizer received (JSON floats hold float32 exactly),
keyed by the standard-form tensor and listing the nodes that read it; scale = max(|lo|, |hi|) / 127 is
written alongside for readers (TensorRT tools, humans), the graph recomputes it from the range.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from ..io.atomic import write_json

FORMAT = "agileir-calibration/1"
INT8_MAX = 127


@dataclass
class Calibration:
    calibrator: str
    settings: dict
    ranges: dict[str, tuple[float, float]]  # standard-form activation tensor -> (lo, hi)
    readers: dict[str, list[str]]  # tensor -> quantized nodes reading it
    images: list[dict] = field(default_factory=list)
    model: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        activations = []
        for tensor in sorted(self.ranges):
            lo, hi = self.ranges[tensor]
            scale = np.float32(max(abs(lo), abs(hi))) / np.float32(INT8_MAX)
            activations.append({"tensor": tensor, "nodes": self.readers.get(tensor, []), "lo": lo, "hi": hi,
                                "scale": float(scale), "zero_point": 0})
        return {"format": FORMAT, "calibrator": self.calibrator, "settings": self.settings,
                "quantization": {"activations": "int8 symmetric per tensor",
                                 "weights": "int8 symmetric per output channel", "bias": "float"},
                "model": self.model, "images": self.images, "versions": self.versions,
                "activations": activations}

    @classmethod
    def from_dict(cls, data: dict) -> "Calibration":
        if data.get("format") != FORMAT:
            raise ValueError(f"not an agileir calibration file (format {data.get('format')!r}, expected {FORMAT})")
        ranges = {a["tensor"]: (float(np.float32(a["lo"])), float(np.float32(a["hi"]))) for a in data["activations"]}
        readers = {a["tensor"]: list(a.get("nodes", [])) for a in data["activations"]}
        return cls(data["calibrator"], data.get("settings", {}), ranges, readers, data.get("images", []),
                   data.get("model", {}), data.get("versions", {}))

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_dict(), indent=1)

    @classmethod
    def load(cls, path: str | Path) -> "Calibration":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"calibration file not found: {path}")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path.name} is not JSON ({e})") from None
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError) as e:
            raise ValueError(f"{path.name} is not a complete calibration file (missing {e})") from None

    def node_ranges(self) -> dict[str, tuple[float, float]]:
        """Quantized node name -> range of its activation input (names are the same in every export)."""
        return {node: self.ranges[tensor] for tensor, nodes in self.readers.items() for node in nodes}

    def ranges_for(self, activation_inputs: dict[str, str]) -> dict[str, tuple[float, float]]:
        """Tensor ranges for a graph given as node name -> activation tensor (qdq_rules.activation_inputs)."""
        by_node = self.node_ranges()
        missing = sorted(set(activation_inputs) - set(by_node))
        if missing:
            raise ValueError(f"the calibration has no range for {len(missing)} quantized layer(s) of this "
                             f"model, e.g. {missing[0]}")
        return {tensor: by_node[node] for node, tensor in activation_inputs.items()}

    def check_checkpoint(self, checkpoint_sha256: str | None) -> None:
        recorded = (self.model.get("source_checkpoint") or {}).get("sha256")
        if checkpoint_sha256 and recorded and recorded != checkpoint_sha256:
            raise ValueError(f"the calibration was made for checkpoint {recorded[:12]}..., "
                             f"not {checkpoint_sha256[:12]}...")


def graph_sha256(proto: onnx.ModelProto) -> str:
    """Hash of the graph itself (nodes and weights), not of the metadata written beside it."""
    return hashlib.sha256(proto.graph.SerializeToString(deterministic=True)).hexdigest()


def library_versions() -> dict:
    import onnxruntime

    from .. import __version__

    versions = {"agileir": __version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
                "numpy": np.__version__}
    try:
        import onnxconverter_common

        versions["onnxconverter_common"] = onnxconverter_common.__version__
    except ImportError:
        pass
    return versions
