"""What an artifact is, for `agileir info`: a checkpoint (its architecture), an .onnx file (architecture, scale, form,
precision, opset, node counts, the export.json it came with) or an engine (its engine.json).

ONNX files and engines are described without PyTorch (onnx only; an engine needs only its sidecar); a checkpoint
needs PyTorch. Each description is plain data (`fields`: label -> text, in print order; `data`: for --json).
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .artifacts import artifact_kind, onnx_metadata, onnx_precision, read_onnx, read_sidecar, sidecar_path


@dataclass
class Description:
    kind: str  # checkpoint, onnx, engine
    path: Path
    fields: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)

    def lines(self) -> list[str]:
        width = max(len(k) for k in self.fields) + 2
        return [f"{k + ':':<{width}}{v}" for k, v in self.fields.items()]


def describe_artifact(path: str | Path | None = None, preset: str | None = None,
                      upstream_compat: bool = False) -> Description:
    """The Description of a checkpoint (None: the bundled one), an .onnx file or an engine, by suffix."""
    if path is not None and not Path(path).is_file():
        raise FileNotFoundError(f"model not found: {path}")
    kind = "checkpoint" if path is None else artifact_kind(path)
    if kind == "onnx":
        return describe_onnx(path)
    if kind == "engine":
        return describe_engine(path)
    return describe_checkpoint(path, preset, upstream_compat)


def describe_checkpoint(path=None, preset: str | None = None, upstream_compat: bool = False) -> Description:
    """Architecture, preset and size of a checkpoint (loads it: needs PyTorch)."""
    from ..models.load import load_model

    loaded = load_model(path, preset, upstream_compat or None)
    c = loaded.config
    heads = f"{list(c.depths)} heads {list(c.num_heads)}" + (f" key_dims {list(c.key_dims)}" if c.key_dims else "")
    fields = {"file": str(loaded.path), "kind": "checkpoint (PyTorch)", "sha256": loaded.sha256,
              "arch": f"{c.arch}{' (upstream-compat forward)' if c.upstream_compat else ''}",
              "preset": loaded.preset or "custom", "scale": f"x{c.scale}", "window": str(c.window_size),
              "embed/depth": f"{c.embed_dim} / {heads}", "parameters": f"{loaded.model.num_parameters():,}",
              "config": json.dumps(c.to_dict())}
    return Description("checkpoint", loaded.path, fields, {"kind": "checkpoint", "file": str(loaded.path),
                                                          "sha256": loaded.sha256, "preset": loaded.preset,
                                                          "config": c.to_dict()})


def graph_node_counts(proto) -> dict[str, Any]:
    """Nodes of the main graph: total, the GSWA plugin nodes, ONNX Attention nodes, Q/DQ pairs, and by op type."""
    from ..models.gswa_node import is_gswa_node

    nodes = list(proto.graph.node)
    ops = Counter(n.op_type for n in nodes)
    return {"total": len(nodes), "gswa": sum(1 for n in nodes if is_gswa_node(n)), "attention": ops["Attention"],
            "quantize": ops["QuantizeLinear"], "by_op": dict(ops.most_common())}


def _export_json(path: Path) -> tuple[Path | None, dict | None, str | None]:
    """(export.json beside `path`, its content, the note on it): None where there is none or it is unreadable."""
    found = path.parent / "export.json"
    if not found.is_file():
        return None, None, "none beside the file"
    try:
        return found, json.loads(found.read_text()), None
    except (json.JSONDecodeError, OSError) as e:
        return found, None, f"{found} is unreadable ({e})"


def _export_entry(info: dict, path: Path) -> tuple[str, dict] | None:
    """(label, entry) of `path` in export.json: a form, or a precision variant of a form."""
    for form, entry in (info.get("forms") or {}).items():
        if isinstance(entry, dict) and entry.get("file") == path.name:
            return form, entry
    for precision, entries in (info.get("variants") or {}).items():
        for form, entry in (entries or {}).items():
            if isinstance(entry, dict) and entry.get("file") == path.name:
                return f"{form} {precision}", entry
    return None


def _export_fields(path: Path, sha256: str) -> tuple[dict[str, str], dict]:
    found, info, note = _export_json(path)
    if info is None:
        return {"export.json": note or ""}, {}
    listed = _export_entry(info, path)
    if listed is None:
        return {"export.json": f"{found} (does not list {path.name})"}, {"export_json": str(found)}
    label, entry = listed
    recorded = entry.get("sha256")
    same = "matches" if recorded == sha256 else ("not recorded" if recorded is None else "DIFFERS (file replaced?)")
    check = entry.get("validation") or {}
    text = f"{found} ({label}; sha256 {same}"
    if "psnr_db" in check:
        text += f"; ONNX Runtime vs PyTorch {check['psnr_db']:.1f} dB, {'passed' if check.get('passed') else 'FAILED'}"
    text += f"; agileir {info.get('toolkit_version', '?')})"
    return {"export.json": text}, {"export_json": str(found), "export_entry": label, "sha256_matches": same}


def describe_onnx(path: str | Path) -> Description:
    """An agileir .onnx file from its graph and metadata (onnx only; no PyTorch, no ONNX Runtime)."""
    from ..export.forms import form_of
    from ..io.gate import file_sha256

    path = Path(path)
    proto = read_onnx(path)  # a truncated or foreign file: a one-line ValueError
    meta, sha = onnx_metadata(proto), file_sha256(path)
    config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    counts = graph_node_counts(proto)
    opsets = {op.domain or "ai.onnx": op.version for op in proto.opset_import}
    form, precision = meta.get("form") or form_of(proto), onnx_precision(proto)
    scale = meta.get("scale")
    source = meta.get("source_checkpoint") if isinstance(meta.get("source_checkpoint"), dict) else {}
    special = ", ".join(f"{counts[k]} {label}" for k, label in (("gswa", "GSWA plugin"), ("attention", "Attention"),
                                                               ("quantize", "QuantizeLinear")) if counts[k])
    fields = {"file": str(path), "kind": "ONNX", "sha256": sha,
              "arch": str(config.get("arch", "?")) + (f" (preset {meta['preset']})" if meta.get("preset") else ""),
              "scale": f"x{scale}" if scale else "? (no agileir metadata: not written by agileir-export)",
              "window": str(meta.get("window", config.get("window_size", "?"))), "form": str(form),
              "precision": precision, "opset": str(opsets.get("ai.onnx", "?")),
              "nodes": f"{counts['total']}" + (f" ({special})" if special else ""),
              "top ops": ", ".join(f"{op} {n}" for op, n in list(counts["by_op"].items())[:6])}
    if source:
        fields["source"] = f"{source.get('file', '?')} (sha256 {str(source.get('sha256', '?'))[:16]}...)"
    extra_fields, extra_data = _export_fields(path, sha)
    fields |= extra_fields
    data = {"kind": "onnx", "file": str(path), "sha256": sha, "arch": config.get("arch"), "scale": scale,
            "window": meta.get("window"), "form": form, "precision": precision, "opsets": opsets,
            "node_counts": counts, "config": config or None, "source_checkpoint": source or None, **extra_data}
    return Description("onnx", path, fields, data)


def describe_engine(path: str | Path) -> Description:
    """A TensorRT / TensorRT-RTX engine from its engine.json (no TensorRT, no GPU needed to describe it)."""
    path = Path(path)
    info = read_sidecar(path)
    profile = info.get("profile") or {}
    plugin = info.get("plugin") or {}
    gpu = info.get("gpu") or {}
    flavour = info.get("flavour", "tensorrt")
    shapes = " / ".join("x".join(str(d) for d in profile.get(k, [])) for k in ("min", "opt", "max") if k in profile)
    fields = {"file": str(path), "kind": f"engine ({'TensorRT-RTX' if flavour == 'rtx' else 'TensorRT'} "
                                         f"{info.get('tensorrt_version', '?')})",
              "sidecar": str(sidecar_path(path)), "scale": f"x{info.get('scale', '?')}",
              "form": str(info.get("form", "?")), "precision": str(info.get("precision", "?")),
              "profile": f"{shapes} (min / opt / max; larger inputs are tiled)" if shapes else "?",
              "plugin": str(plugin.get("impl") or "none"),
              "built for": (f"{gpu.get('name', '?')} (compute capability {gpu.get('compute_capability', '?')})" if gpu
                            else "RTX GPUs, compute capabilities " + ", ".join(
                                str(c) for c in info.get("target_compute_capabilities") or ["TensorRT-RTX's default"]))}
    source = info.get("source_onnx") or {}
    if source:
        fields["from"] = f"{source.get('file', '?')} (sha256 {str(source.get('sha256', '?'))[:16]}...)"
    if info.get("engine_sha256"):
        from ..io.gate import file_sha256

        same = file_sha256(path) == info["engine_sha256"]
        fields["sha256"] = "matches engine.json" if same else "DIFFERS from engine.json (engine replaced?)"
    return Description("engine", path, fields, {"kind": "engine", "file": str(path), **info})


__all__ = ["Description", "describe_artifact", "describe_checkpoint", "describe_engine", "describe_onnx",
           "graph_node_counts"]
