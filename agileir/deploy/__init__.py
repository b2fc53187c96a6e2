"""Deployment jobs over a checkpoint: validated ONNX forms, their FP16/INT8 variants and engines (agileir-export)."""
from .export import ExportRequest, ExportResult, export_checkpoint
from .engines import EngineTarget, engine_step

__all__ = ["EngineTarget", "ExportRequest", "ExportResult", "engine_step", "export_checkpoint"]
