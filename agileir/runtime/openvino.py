"""OpenVINO runner for the standard and attention forms and their FP16 / INT8 variants (CPU; Intel GPU / NPU).

The ONNX file is read by OpenVINO's ONNX frontend and compiled for one device with an explicit precision hint:
`f32` by default (parity with ONNX Runtime FP32: PSNR >= 60 dB, docs/openvino.md), `bf16` / `f16` opt-in (what
the CPU does with them depends on the CPU: the compiled model reports the precision it runs, kept in
`runner.precision_hint`). An INT8 Q/DQ graph runs in INT8 kernels whatever the hint.

Devices: `auto` and `cpu` -> OpenVINO's CPU; any other name (GPU, GPU.1, NPU, AUTO, HETERO:...) is handed to
OpenVINO as written, after checking that OpenVINO lists it (DeviceUnavailable names the devices it has). Only the
CPU is verified by this toolkit's tests and benchmarks.

The plugin form is refused: its custom GSWA node would need an OpenVINO CPU extension (a C++ kernel library),
which the toolkit does not ship; its standard and attention forms compute the same function.

Compiled models are cached (OpenVINO's CACHE_DIR) in the engine cache folder, one entry per key: the ONNX file's
sha256, form, precision, OpenVINO version, device and precision hint (like the TensorRT engines' keys,
agileir.runtime.tensorrt.cache). Needs `openvino` and `onnx` (the `openvino` extra), not PyTorch.
"""
from __future__ import annotations

import hashlib
import io
import json
import threading
from pathlib import Path

import numpy as np
import onnx

from ..io.atomic import user_cache_dir, write_json
from .base import DeviceUnavailable, Runner

PRECISION_HINTS = ("f32", "bf16", "f16")
DEFAULT_HINT = "f32"
KEY_FORMAT = "agileir-openvino-cache/1"
PLUGIN_REFUSAL = ("the plugin form's custom GSWA node has no OpenVINO kernel (it would need an OpenVINO CPU "
                  "extension, which agileir does not ship): run model.onnx (standard form) or model.attention.onnx "
                  "with --backend openvino, or the plugin form in ONNX Runtime or TensorRT")


def import_openvino():
    try:
        import openvino
    except ImportError:
        raise ModuleNotFoundError("the openvino backend needs OpenVINO (pip install 'agileir[openvino]')",
                                  name="openvino") from None
    return openvino


_CORE: list = []  # the process's one openvino.Core, made on first use
_CORE_LOCK = threading.Lock()


def shared_core():
    """One openvino.Core for the process. Compiling a model on the CPU installs an alternate signal stack on the
    calling thread and each Core puts the previous one back when it is destroyed: two Cores destroyed out of
    order left the main thread's alternate stack pointing at freed memory, and the next SIGINT / SIGTERM
    (Python's handlers run on that stack) was a segmentation fault. One Core that lives as long as the process
    keeps that stack valid; per-runner settings (cache folder, threads, hint) go to compile_model instead."""
    with _CORE_LOCK:
        if not _CORE:
            _CORE.append(import_openvino().Core())
        return _CORE[0]


def openvino_device(device: str | None) -> str:
    """The OpenVINO device name for a --device value: auto / cpu -> CPU; cuda -> refused; others upper-cased
    (GPU, GPU.1, NPU, AUTO, HETERO:GPU,CPU, ...)."""
    name = (device or "auto").strip()
    if name.lower() in ("auto", "cpu"):
        return "CPU"
    if name.lower().startswith("cuda"):
        raise DeviceUnavailable(f"OpenVINO does not run on CUDA devices ({name}): use --backend onnxruntime or "
                                "tensorrt for an NVIDIA GPU, or --device cpu / GPU / NPU / AUTO with openvino")
    return name.upper()


def check_device(core, device: str) -> None:
    """DeviceUnavailable unless OpenVINO lists `device` (or, for AUTO/HETERO/MULTI/BATCH, each device named)."""
    available = list(core.available_devices)
    head, _, rest = device.partition(":")
    wanted = [d for d in rest.split(",") if d] if head in ("AUTO", "HETERO", "MULTI", "BATCH") else [device]
    for name in wanted:
        if name not in available and name.split(".")[0] not in {a.split(".")[0] for a in available}:
            raise DeviceUnavailable(f"OpenVINO device {name} is not on this machine (OpenVINO lists: "
                                    f"{', '.join(available) or 'none'})")


def default_cache_dir() -> Path:
    """The engine cache folder ($AGILEIR_ENGINE_CACHE, else ~/.cache/agileir/engines), as TensorRT's."""
    return user_cache_dir("engines", "AGILEIR_ENGINE_CACHE")


def cache_entry(cache_dir: str | Path, key: dict) -> Path:
    """`<cache>/openvino-<digest>/` for `key` (its key.json written once), OpenVINO's CACHE_DIR for it."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    entry = Path(cache_dir) / f"openvino-{digest}"
    entry.mkdir(parents=True, exist_ok=True)
    if not (entry / "key.json").is_file():
        write_json(entry / "key.json", key)
    return entry


class OpenVINORunner(Runner):
    """An exported ONNX graph (file or in-memory proto) compiled by OpenVINO for `device` with `precision_hint`."""

    backend = "openvino"

    def __init__(self, path_or_proto: str | Path | onnx.ModelProto, device: str = "auto", threads: int = 0,
                 precision_hint: str = DEFAULT_HINT, cache_dir: str | Path | None = None,
                 name: str | None = None) -> None:
        from ..models.gswa_node import is_gswa_node
        from .artifacts import onnx_metadata, onnx_precision

        if precision_hint not in PRECISION_HINTS:
            raise ValueError(f"unknown OpenVINO precision hint {precision_hint!r} (one of {', '.join(PRECISION_HINTS)})")
        if isinstance(path_or_proto, onnx.ModelProto):
            self.proto, name, self.sha256 = path_or_proto, name or "in-memory graph", None
        else:
            data = Path(path_or_proto).read_bytes()
            self.proto, name = onnx.load_from_string(data), name or Path(path_or_proto).name
            self.sha256 = hashlib.sha256(data).hexdigest()
        meta = onnx_metadata(self.proto)
        if "scale" not in meta:
            raise ValueError(f"{name} has no agileir metadata (scale); export it with agileir-export")
        self.form = str(meta.get("form", "?"))
        if self.form == "plugin" or any(is_gswa_node(n) for n in self.proto.graph.node):
            raise ValueError(f"{name}: {PLUGIN_REFUSAL}")
        super().__init__(int(meta["scale"]), f"{name} ({self.form} form)", onnx_precision(self.proto),
                         window=int(meta.get("window", 1)))
        self.config = meta.get("config") if isinstance(meta.get("config"), dict) else None
        self.device, self.threads, self.requested_hint = openvino_device(device), int(threads), precision_hint
        if (device or "auto").lower() == "auto":  # printed by load_runner for --device auto
            self.device_line = "device: cpu (auto: OpenVINO's CPU; --device GPU, NPU or AUTO for Intel accelerators)"
        self.precision_hint: str | None = None  # what the compiled model reports
        self.cache_dir = cache_dir
        self.cache_entry: Path | None = None
        self.compiled = self.request = None

    def compile_config(self) -> dict:
        config = {"INFERENCE_PRECISION_HINT": self.requested_hint, "PERFORMANCE_HINT": "LATENCY"}
        if self.threads and self.device == "CPU":
            config["INFERENCE_NUM_THREADS"] = self.threads
        return config

    def _cache_key(self, version: str) -> dict | None:
        if self.sha256 is None:  # an in-memory graph has no file to key on: compiled each time
            return None
        return {"format": KEY_FORMAT, "onnx_sha256": self.sha256, "form": self.form, "precision": self.precision,
                "openvino": version, "device": self.device, "precision_hint": self.requested_hint}

    def _activate(self) -> None:
        ov = import_openvino()
        core = shared_core()
        check_device(core, self.device)
        key = self._cache_key(ov.__version__)
        config = self.compile_config()
        if key is not None:
            self.cache_entry = cache_entry(self.cache_dir or default_cache_dir(), key)
            config["CACHE_DIR"] = str(self.cache_entry)
        model = core.read_model(io.BytesIO(self.proto.SerializeToString()))
        self.compiled = core.compile_model(model, self.device, config)
        self.request = self.compiled.create_infer_request()
        self.precision_hint = _hint_name(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        unverified = "" if self.device == "CPU" else ", unverified here"
        self.description += f" on OpenVINO {self.device} ({self.precision_hint} hint{unverified})"

    def _deactivate(self) -> None:
        self.request = self.compiled = None

    def _run(self, batch: np.ndarray) -> np.ndarray:
        assert self.request is not None
        self.request.infer({0: batch})
        return np.array(self.request.get_output_tensor(0).data, dtype=np.float32)


def _hint_name(value) -> str:
    """'f32' / 'bf16' / 'f16' from the compiled model's INFERENCE_PRECISION_HINT (an openvino.Type)."""
    return value.to_string() if hasattr(value, "to_string") else str(value)
