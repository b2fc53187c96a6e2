"""A Triton Inference Server model repository for the artifacts of an agileir-export folder.

    REPO/
      agileir_x4/          config.pbtxt + 1/model.onnx        onnxruntime, FP32 standard form
      agileir_x4_fp16/     ... 1/model.onnx                   onnxruntime, FP16 variant (FP32 I/O)
      agileir_x4_int8/     ... 1/model.onnx                   onnxruntime, INT8 Q/DQ variant
      agileir_x4_openvino/ ... 1/model.onnx                   openvino (--openvino), one per ONNX variant
      agileir_x4_trt_fp16/ config.pbtxt + 1/model.plan        tensorrt_plan, one per engine + engine.json
      plugins/libagileir_trt_plugins.so                       for plugin-form engines (when found)
      README.md                                               how to start tritonserver on it (also Jetson)

Configs are protobuf text format of Triton's ModelConfig (model_config.proto): dynamic H x W (-1), the batch
dimension through max_batch_size, dynamic batching, instance groups, a warm-up request. Plugin-form ONNX graphs
(one custom GSWA node per head group) are not given to the onnxruntime backend: their custom op lives in this
toolkit's Python process (onnxruntime-extensions), which Triton's C++ ONNX Runtime backend cannot load; serve
that form as a TensorRT engine. Triton loads the GSWA plugin library for those engines with
`--backend-config=tensorrt,plugins=LIB` (or LD_PRELOAD=LIB), never from the model config.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..export.forms import FORMS, PRECISIONS, onnx_name
from ..export.folder import check_graph, check_onnx, read_export
from ..io.gate import OutputGate, file_sha256
from ..io.outputs import input_files
from ..runtime.artifacts import ENGINE_SUFFIXES, read_sidecar, sidecar_path

INPUT, OUTPUT = "lr", "sr"
ONNX_VARIANTS = {onnx_name("standard", p): p for p in PRECISIONS}
# ONNX files Triton's onnxruntime backend is not given, by form, with the reason
SKIPPED_FORMS = {
    "plugin": "plugin form: its custom GSWA op is not loadable by Triton's onnxruntime backend; build a TensorRT "
              "engine from it (`agileir build`) and rerun",
    "attention": "attention form: its opset-23 Attention op needs ONNX Runtime >= 1.23, newer than the onnxruntime "
                 "backend of many Triton releases; serve model.onnx, or build a TensorRT engine from it",
}
assert set(SKIPPED_FORMS) | {"standard"} == set(FORMS)


@dataclass
class RepoModel:
    name: str
    backend: str  # onnxruntime | openvino | tensorrt
    source: Path
    config: str


@dataclass
class RepoPlan:
    models: list[RepoModel]
    skipped: list[tuple[str, str]]  # (file, reason)
    plugin_library: Path | None


def _check_engine(path: Path, info: dict) -> None:
    """The engine is the one its sidecar describes (when the sidecar records its sha256)."""
    recorded = info.get("engine_sha256")
    if recorded is not None and file_sha256(path) != recorded:
        raise ValueError(f"{path}: its sha256 is not the one {sidecar_path(path)} records at $.engine_sha256 "
                         "(changed or replaced since the build)")
    scale = info.get("scale")
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise ValueError(f"{sidecar_path(path)}: $.scale: {scale!r} is not an integer >= 1")


def _warmup(h: int, w: int) -> str:
    return (f'model_warmup [\n  {{\n    name: "zeros_{h}x{w}"\n    batch_size: 1\n'
            f'    inputs {{\n      key: "{INPUT}"\n      value {{ data_type: TYPE_FP32 dims: [ 3, {h}, {w} ] '
            'zero_data: true }\n    }\n  }\n]\n')


def model_config(name: str, backend: str, max_batch_size: int, instances: int, kind: str, warmup_hw: tuple[int, int],
                 queue_delay_us: int = 2000, extra: str = "") -> str:
    """config.pbtxt text: input lr [3, -1, -1] FP32, output sr [3, -1, -1] FP32 (batch via max_batch_size)."""
    platform = {"onnxruntime": "onnxruntime_onnx", "tensorrt": "tensorrt_plan"}.get(backend)  # openvino: none
    text = (f'name: "{name}"\nbackend: "{backend}"\n' + (f'platform: "{platform}"\n' if platform else "") +
            f'max_batch_size: {max_batch_size}\n'
            f'input [\n  {{ name: "{INPUT}" data_type: TYPE_FP32 dims: [ 3, -1, -1 ] }}\n]\n'
            f'output [\n  {{ name: "{OUTPUT}" data_type: TYPE_FP32 dims: [ 3, -1, -1 ] }}\n]\n'
            # requests are batched only when their H x W agree: an SR service sees tiles of one size
            f'dynamic_batching {{\n  max_queue_delay_microseconds: {queue_delay_us}\n}}\n'
            f'instance_group [\n  {{ count: {instances} kind: {kind} }}\n]\n')
    return text + extra + _warmup(*warmup_hw)


# Triton's OpenVINO backend (openvino_backend): reads model.onnx itself; latency settings as agileir's runner
OPENVINO_EXTRA = ('default_model_filename: "model.onnx"\n'
                  '# OpenVINO chooses the precision: f32 on CPUs without native bf16; on CPUs with it (AMX, AVX512_BF16)\n'
                  '# its default is bf16, about 54 dB from FP32 (docs/openvino.md); the backend has no f32 parameter.\n'
                  'parameters [\n  { key: "PERFORMANCE_HINT" value: { string_value: "LATENCY" } },\n'
                  '  { key: "NUM_STREAMS" value: { string_value: "1" } }\n]\n')


def plan_repository(export_dir: str | Path, ort_instances: int = 1, ort_kind: str = "KIND_CPU",
                    ort_max_batch: int = 8, plugin_library: str | Path | None = None,
                    openvino: bool = False) -> RepoPlan:
    """What `write_repository` would write, configs included (nothing is written). `openvino`: also a model
    per standard-form ONNX variant for Triton's OpenVINO backend (CPU instances)."""
    export = read_export(export_dir)  # export.json's schema, listed files and their sha256, onnx.checker
    export_dir, scale = export.folder, export.scale
    models, skipped = [], []
    for file, precision in ONNX_VARIANTS.items():
        path = export_dir / file
        if path.is_file():
            if file not in export.listed:  # served too: proven as the listed ones are (scale, form, precision)
                check_onnx(path)
                check_graph(path, export.info, export_dir / "export.json")
            name = f"agileir_x{scale}" + ("" if precision == "fp32" else f"_{precision}")
            # ONNX Runtime: the graph pads to a window multiple itself, so any H, W >= 1 is valid
            models.append(RepoModel(name, "onnxruntime", path, model_config(
                name, "onnxruntime", ort_max_batch, ort_instances, ort_kind, (64, 64))))
            if openvino:
                name = f"agileir_x{scale}_openvino" + ("" if precision == "fp32" else f"_{precision}")
                models.append(RepoModel(name, "openvino", path, model_config(
                    name, "openvino", ort_max_batch, ort_instances, "KIND_CPU", (64, 64), extra=OPENVINO_EXTRA)))
    for form, reason in SKIPPED_FORMS.items():
        for file in (onnx_name(form, p) for p in PRECISIONS):
            if (export_dir / file).is_file():
                skipped.append((file, reason))
    needs_plugin = False
    for path in sorted(p for p in export_dir.iterdir() if p.suffix in ENGINE_SUFFIXES):
        try:
            info = read_sidecar(path)
        except ValueError as e:
            skipped.append((path.name, str(e)))
            continue
        _check_engine(path, info)
        if info["scale"] != scale:  # the sidecar is not hashed: its scale must agree with the export's
            raise ValueError(f"{sidecar_path(path)}: $.scale is {info['scale']}, but "
                             f"{export_dir / 'export.json'} says $.scale {scale}")
        if info.get("flavour") == "rtx":
            skipped.append((path.name, "a TensorRT-RTX engine: Triton's tensorrt_plan backend runs TensorRT engines; "
                                       "build one with `agileir build --target tensorrt` on the serving GPU"))
            continue
        impl = (info.get("plugin") or {}).get("impl")
        if impl == "qdp":
            skipped.append((path.name, "built with the Python (QDP) GSWA plugin, which lives in a Python process; "
                                       "rebuild with the plugin library (`agileir build --plugin library`)"))
            continue
        form = "" if info.get("form", "standard") == "standard" else f"_{info['form']}"
        name = f"agileir_x{int(info['scale'])}_trt{form}_{info['precision']}"
        profile = info.get("profile") or {}
        max_batch = int((profile.get("max") or [1])[0])
        opt = profile.get("opt") or [1, 3, 64, 64]
        note = (f'# engine built with TensorRT {info.get("tensorrt_version")} for '
                f'{(info.get("gpu") or {}).get("name", "?")}: it runs only on that GPU model and TensorRT version.\n'
                f'# H x W must lie in the optimisation profile: min {profile.get("min")} max {profile.get("max")}.\n')
        if impl == "library":
            needs_plugin = True
            note += ("# needs the GSWA plugin library loaded by the server: "
                     "--backend-config=tensorrt,plugins=<REPO>/plugins/libagileir_trt_plugins.so (or LD_PRELOAD)\n")
        models.append(RepoModel(name, "tensorrt", path, note + model_config(
            name, "tensorrt", max_batch, 1, "KIND_GPU", (int(opt[2]), int(opt[3])))))
    library = None
    if needs_plugin:
        if plugin_library is not None:
            library = Path(plugin_library)
        else:
            from ..plugins import find_plugin_library

            library = find_plugin_library()
        if library is None:
            skipped.append(("plugins/", "plugin library not found: pass --plugin-lib (build it with "
                                        "`agileir build` on the target); the README names where it must go"))
    names = [m.name for m in models]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"two artifacts map to the same model name: {', '.join(sorted(duplicates))}")
    if not models:
        why = "; ".join(f"{file}: {reason}" for file, reason in skipped)
        raise ValueError(f"{export_dir}: nothing to serve" + (f": {why}" if why else
                                                               " (no model*.onnx, no engines with their .json)"))
    return RepoPlan(models, skipped, library)


REPO_KIND = "triton repository"


def repository_files(plan: RepoPlan, repo: Path) -> dict[Path, Path | str]:
    """Every file of the repository: path -> the file copied there, or the text written there."""
    files: dict[Path, Path | str] = {}
    for m in plan.models:
        files[repo / m.name / "1" / ("model.plan" if m.backend == "tensorrt" else "model.onnx")] = m.source
        files[repo / m.name / "config.pbtxt"] = m.config
    if plan.plugin_library is not None:
        files[repo / "plugins" / plan.plugin_library.name] = plan.plugin_library
    files[repo / "README.md"] = readme(plan)
    return files


def write_repository(export_dir: str | Path, repo: str | Path, overwrite: bool = False, **kwargs) -> RepoPlan:
    """Write the model repository (configs, model files, plugin library, README.md); returns the plan.

    The export folder is validated first (agileir.export.folder), then every file of the repository is
    claimed through one OutputGate before the first is written: none may be a file of the export folder or
    the plugin library, nor an existing file agileir did not write (a hand-edited config.pbtxt, the user's
    README.md) unless `overwrite`."""
    plan = plan_repository(export_dir, **kwargs)
    gate = OutputGate([*input_files(export_dir), plan.plugin_library], overwrite)
    files = repository_files(plan, Path(repo))
    gate.claim_all(files, REPO_KIND, "agileir triton")
    try:
        for path, content in files.items():
            if isinstance(content, Path):
                gate.copy(content, path, REPO_KIND)
            else:
                gate.write_text(path, content, REPO_KIND)
    finally:  # a run stopped before its first file (a full disk) leaves none of the folders it made
        gate.remove_unused_folders()
    return plan


def readme(plan: RepoPlan) -> str:
    rows = "\n".join(f"| `{m.name}` | {m.backend} | `{m.source.name}` |" for m in plan.models)
    skipped = "\n".join(f"* `{f}`: {why}" for f, why in plan.skipped) or "* nothing"
    has_trt = any(m.backend == "tensorrt" for m in plan.models)
    lib = f"/models/plugins/{plan.plugin_library.name}" if plan.plugin_library else \
        "/models/plugins/libagileir_trt_plugins.so"
    plugin_flag = f" \\\n    --backend-config=tensorrt,plugins={lib}" if any(
        "plugins=" in m.config for m in plan.models) else ""
    return f"""# AgileIR Triton model repository (written by `agileir triton`)

| model | backend | from |
|---|---|---|
{rows}

Skipped:
{skipped}

Every model takes `lr` (FP32, N x 3 x H x W, RGB 0..1) and returns `sr` (N x 3 x H*s x W*s); H and W are
dynamic (-1). Dynamic batching merges requests of the same H x W (send tiles of one size to batch).
TensorRT models accept H x W inside their engine's optimisation profile only (see each config.pbtxt) and
run only on the GPU model and TensorRT version they were built with (their `.json` sidecar says which).

## Start the server (x86-64, NGC container)

```bash
docker run --rm --gpus all -p 8000:8000 -p 8001:8001 -p 8002:8002 -v $PWD:/models \\
  nvcr.io/nvidia/tritonserver:<yy.mm>-py3 \\
  tritonserver --model-repository=/models --strict-model-config=true{plugin_flag}
```

Pick the container whose TensorRT version matches the engines' (`tensorrt_version` in the sidecars);
the onnxruntime models run in any recent container, CPU only with `docker run` without `--gpus`
(their instance groups are `KIND_CPU`; change to `KIND_GPU` for the CUDA provider).
{"The plugin library can instead be preloaded: `LD_PRELOAD=" + lib + " tritonserver ...`." if plugin_flag else ""}

## Jetson (JetPack)

Use the iGPU container `nvcr.io/nvidia/tritonserver:<yy.mm>-py3-igpu` (or the Jetson release tarball from
the server's GitHub releases, run as `tritonserver --model-repository=$PWD --backend-directory=
<tritonserver>/backends`), with `--runtime nvidia` instead of `--gpus all`. TensorRT engines must be built
on the Jetson itself (`agileir build` there) and the plugin library compiled for aarch64/its SM;
{"copy them into this repository (rerun `agileir triton`) before starting." if has_trt else "then rerun `agileir triton` to add them."}

## Check it

```bash
curl -s localhost:8000/v2/health/ready && curl -s localhost:8000/v2/models/{plan.models[0].name}/config
```
"""
