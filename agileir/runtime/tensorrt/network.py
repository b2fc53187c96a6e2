"""The parsed TensorRT network: the builder's logger, parsing an ONNX file, and what the network holds (layer counts,
fused attentions, the parser's scale layers per attention). `tensorrt` is passed in, never imported here."""
from __future__ import annotations

import time
from typing import Callable

from .env import FLAVOUR_NAMES


def collecting_logger(trt, verbose: bool, echo: Callable[[str], None]):
    """The flavour's ILogger: shows warnings and errors (everything with `verbose`) and keeps them for the sidecar."""
    label = FLAVOUR_NAMES[flavour_of(trt)]
    shown = trt.ILogger.VERBOSE if verbose else trt.ILogger.WARNING

    class Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.messages: list[str] = []

        def log(self, severity, msg):
            if severity <= trt.ILogger.WARNING:
                self.messages.append(f"{severity.name}: {msg}")
            if severity <= shown:
                echo(f"[{label}] {severity.name}: {msg}")

    return Logger()


def flavour_of(trt) -> str:
    return "rtx" if trt.__name__.startswith("tensorrt_rtx") else "tensorrt"


def network_summary(trt, network) -> dict:
    """Layer counts of the parsed network: total, GSWA plugin layers, fused attentions, Q/DQ layers, by type."""
    types = [network.get_layer(i).type for i in range(network.num_layers)]
    plugin_types = {getattr(trt.LayerType, n) for n in ("PLUGIN_V3", "PLUGIN_V2", "PLUGIN") if hasattr(trt.LayerType, n)}
    attention_input = getattr(trt.LayerType, "ATTENTION_INPUT", None)
    by_type: dict[str, int] = {}
    for t in types:
        by_type[t.name] = by_type.get(t.name, 0) + 1
    return {"layers": len(types), "plugin_layers": sum(t in plugin_types for t in types),
            "attention_layers": sum(t == attention_input for t in types) if attention_input is not None else 0,
            "quantize_layers": sum(t == trt.LayerType.QUANTIZE for t in types),
            "dequantize_layers": sum(t == trt.LayerType.DEQUANTIZE for t in types),
            "attention_scale_layers": attention_scale_layers(trt, network),
            "by_type": dict(sorted(by_type.items(), key=lambda kv: -kv[1]))}


def attention_scale_layers(trt, network) -> int:
    """Layers the ONNX parser adds in front of each fused attention to scale Q and K by sqrt(scale): a
    multiply by a cast scalar constant (3 layers each, also at scale 1). Reported apart because no graph
    formulation removes them: they are the parser's fixed cost per ONNX `Attention` node."""
    attentions = fused_attentions(trt, network)
    if not attentions:
        return 0
    producer = {}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        for j in range(layer.num_outputs):
            producer[layer.get_output(j).name] = layer
    return sum(_scalar_scaling(trt, producer, attention.get_input(k)) for attention in attentions
               for k in (0, 1))  # query, key


def fused_attentions(trt, network) -> list:
    """The IAttention of every fused attention in the parsed network (none where the TensorRT has no
    IAttention)."""
    attention_input = getattr(trt.LayerType, "ATTENTION_INPUT", None)
    found = []
    for i in range(network.num_layers if attention_input is not None else 0):
        layer = network.get_layer(i)
        if layer.type == attention_input:
            layer.__class__ = trt.IAttentionInputLayer
            found.append(layer.attention)
    return found


def _scalar_scaling(trt, producer: dict, tensor) -> int:
    """3 (multiply, cast, constant) when `tensor` is another tensor times a cast scalar constant, else 0."""
    multiply = producer.get(tensor.name)
    if multiply is None or multiply.type != trt.LayerType.ELEMENTWISE:
        return 0
    multiply.__class__ = trt.IElementWiseLayer
    if multiply.op != trt.ElementWiseOperation.PROD:
        return 0
    for k in range(multiply.num_inputs):
        cast = producer.get(multiply.get_input(k).name)
        if cast is None or cast.type != trt.LayerType.CAST:
            continue
        constant = producer.get(cast.get_input(0).name)
        if constant is None or constant.type != trt.LayerType.CONSTANT:
            continue
        if trt.volume(constant.get_output(0).shape) == 1:
            return 3
    return 0


def decompose_fp32_attention(trt, network) -> int:
    """Mark every attention whose query is FP32 decomposable; returns how many.

    TensorRT-RTX 1.7 has fused attention kernels for FP16/BF16 only: an FP32 IAttention that is not
    decomposable fails the build ("not supported by a dedicated kernel"). Decomposed, it runs as
    MatMul/SoftMax/MatMul layers inside the engine."""
    marked = 0
    for attention in fused_attentions(trt, network):
        if attention.get_input(0).dtype == trt.float32:
            attention.decomposable = True
            marked += 1
    return marked


def parse_network(trt, builder, info, typing: tuple[bool, bool], logger, echo: Callable[[str], None]):
    """(network, parser, parse seconds, network summary) of the ONNX file (`info`: config.OnnxInfo); typing =
    (strongly typed, Python AOT plugins). FP32 attentions are marked decomposable (decompose_fp32_attention)."""
    strongly_typed, aot_plugins = typing
    network_flags = 0
    strong = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)  # ignored (always on) in 11
    if strongly_typed and strong is not None:
        network_flags |= 1 << int(strong)
    aot = getattr(trt.NetworkDefinitionCreationFlag, "PREFER_AOT_PYTHON_PLUGINS", None)  # TensorRT >= 10.9
    if aot_plugins and aot is not None:
        network_flags |= 1 << int(aot)
    network = builder.create_network(network_flags)
    parser = trt.OnnxParser(network, logger)
    start = time.time()
    if not parser.parse_from_file(str(info.path)):
        errors = [parser.get_error(i).desc() for i in range(parser.num_errors)]
        raise ValueError(f"{FLAVOUR_NAMES[flavour_of(trt)]}'s ONNX parser rejected {info.path.name}: "
                         f"{errors[0].splitlines()[0] if errors else 'no error reported'}")
    parse_s = time.time() - start
    summary = network_summary(trt, network)
    summary["decomposable_attentions"] = decompose_fp32_attention(trt, network)
    if summary["decomposable_attentions"]:
        echo(f"{summary['decomposable_attentions']} FP32 attentions marked decomposable (fused attention kernels "
             "are FP16/BF16 only): build the FP16 variant for fused attention")
    return network, parser, parse_s, summary
