"""What every command shares: one-line errors with documented exit codes, model options, JSON output.

Exit codes (README, "Exit codes"): 0 ok; 1 a check failed (validation, a folder run with failed files);
2 bad input or usage (one `error:` line); 3 this machine lacks something (TensorRT, a GPU, an optional
package); 130 interrupted (SIGINT); 143 terminated (SIGTERM). Table: docs/reliability.md.
"""
from __future__ import annotations

import functools
import importlib
import os
from pathlib import Path

import click

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_ENVIRONMENT, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 2, 3, 130, 143


class CliError(click.ClickException):
    exit_code = EXIT_BAD_INPUT

    def show(self, file=None):
        click.echo(f"error: {self.message}", err=True)


class MissingDependency(CliError):
    """Something this machine lacks (TensorRT, a GPU, an optional package): not the input's fault."""
    exit_code = EXIT_ENVIRONMENT


# top-level module -> the extra that installs it (pyproject.toml)
EXTRA_OF = {"onnx": "onnx", "onnxruntime": "onnx", "onnxruntime_extensions": "onnx", "onnxconverter_common": "onnx",
            "onnxslim": "onnx", "onnx_graphsurgeon": "onnx", "matplotlib": "plot", "polygraphy": "trt", "cuda": "trt",
            "tensorrt_rtx": "rtx", "ray": "batch", "tritonclient": "serve", "pytriton": "serve", "av": "video",
            "torch": "torch"}
# Checkpoints (.safetensors/.pth), export, calibration and training need PyTorch; ONNX files and engines do not.
TORCH_HINT = ("PyTorch is not installed: checkpoints need it (pip install torch==2.13.0 first keeps it CPU-only, "
              "then pip install 'agileir[torch]')")


def missing_module_message(e: ModuleNotFoundError) -> str:
    top = (e.name or "").split(".")[0]
    extra = EXTRA_OF.get(top)
    if top == "torch":
        return TORCH_HINT
    if extra is None:
        return f"a package is missing: {_first_line(e)}"
    return f"{top} is not installed (pip install 'agileir[{extra}]')"


def require_module(module: str, extra: str, needed_by: str, package: str | None = None) -> None:
    """One-line error naming the extra to install when an optional dependency is missing."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise MissingDependency(f"{needed_by} needs {package or module} (pip install 'agileir[{extra}]')") from None


def _first_line(e: BaseException) -> str:
    text = str(e)
    return text.splitlines()[0] if text else type(e).__name__


def friendly_errors(fn):
    """Bad input ends in one line on stderr and exit code 2, a missing capability of the machine in exit
    code 3, never a traceback (AGILEIR_DEBUG=1 shows it)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from ..io.images import ImageError
        from ..runtime.base import DeviceUnavailable
        from ..runtime.tensorrt.env import TensorRTUnavailable

        try:
            return fn(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except (TensorRTUnavailable, DeviceUnavailable) as e:
            raise MissingDependency(_first_line(e)) from None
        except ModuleNotFoundError as e:
            if os.environ.get("AGILEIR_DEBUG"):
                raise
            raise MissingDependency(missing_module_message(e)) from None
        except (ImageError, FileNotFoundError, ValueError) as e:  # ModelLoadError is a ValueError
            raise CliError(_first_line(e)) from None
        except OSError as e:  # unwritable output folder, full disk: the message names the target
            raise CliError(_first_line(e)) from None
        except Exception as e:
            if os.environ.get("AGILEIR_DEBUG"):
                raise
            raise CliError(f"{type(e).__name__}: {_first_line(e) if str(e) else ''} "
                           "(set AGILEIR_DEBUG=1 for the traceback)") from None
    return wrapper


def model_options(fn):
    fn = click.option("--preset", "preset_name", help="override the architecture inferred from the weights")(fn)
    fn = click.option("--upstream-compat", is_flag=True,
                      help="reproduce the official AgileIR forward (attention output discarded)")(fn)
    return fn


def backend_option(help_text: str = "override the backend chosen from the file type"):
    from ..runtime.artifacts import BACKENDS

    return click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True, help=help_text)


DEVICE_HELP = "where a checkpoint runs (PyTorch): auto (CUDA when present), cpu, cuda or cuda:N"


def device_option(help_text: str = DEVICE_HELP):
    """--device alone, for commands that run a checkpoint but take no runner_options group (a CUDA device that is
    not there exits 3, agileir.runtime.base.DeviceUnavailable)."""
    return click.option("--device", default="auto", show_default=True, help=help_text)


def runner_options(backend_help: str = "override the backend chosen from the model file type", engine_cache: bool = True):
    """The option group that chooses a runner: --backend, --device, --engine-cache, --preset, --upstream-compat.

    The command receives them as one `runner` argument, an agileir.runtime.RunnerSpec without its artifact
    (`dataclasses.replace(runner, artifact=path)` adds it)."""
    from ..runtime.artifacts import BACKENDS

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, backend, device, preset_name, upstream_compat, engine_cache_dir=None, **kwargs):
            from ..runtime import RunnerSpec

            kwargs["runner"] = RunnerSpec(None, backend, device, preset_name, upstream_compat, engine_cache_dir)
            return fn(*args, **kwargs)

        wrapper = click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
                               help=backend_help)(wrapper)
        wrapper = click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)(wrapper)
        if engine_cache:
            wrapper = click.option("--engine-cache", "engine_cache_dir", type=click.Path(file_okay=False),
                                   help="engine cache folder for --backend tensorrt/rtx on an .onnx file [default: "
                                        "$AGILEIR_ENGINE_CACHE, else ~/.cache/agileir/engines]")(wrapper)
        return model_options(wrapper)
    return decorate


def target_options(fn):
    """--target / --compute-capability: which TensorRT flavour builds the engines."""
    fn = click.option("--compute-capability", metavar="CC,...",
                      help="TensorRT-RTX target GPUs, e.g. 86,89,120 [default: TensorRT-RTX's own, 8.0/8.6/8.9/12.0]")(fn)
    fn = click.option("--target", type=click.Choice(["tensorrt", "rtx"]), default="tensorrt", show_default=True,
                      help="tensorrt: TensorRT 10/11 (datacenter GPUs, Jetson), built on the GPU that runs it; "
                           "rtx: TensorRT for RTX (RTX GPUs), built ahead of time, no GPU needed")(fn)
    return fn


def model_and_input(paths: tuple[str, ...]) -> tuple[str | None, Path]:
    """`[MODEL] INPUT` arguments: (model path or None for the bundled default, input path)."""
    if len(paths) == 1:
        return None, Path(paths[0])
    if len(paths) == 2:
        return paths[0], Path(paths[1])
    raise CliError("expected [MODEL] INPUT")


def artifact_inputs(*artifacts: str | Path | None) -> list[Path]:
    """The files running these artifacts reads (None: the bundled checkpoint): each artifact, and beside an
    engine its engine.json, so that no output of the run may replace them."""
    from ..models.load import default_checkpoint
    from ..runtime.artifacts import ENGINE_SUFFIXES, sidecar_path

    found = []
    for a in artifacts:
        path = Path(a) if a is not None else default_checkpoint()
        found.append(path)
        if path.suffix in ENGINE_SUFFIXES:
            found.append(sidecar_path(path))
    return found


def load_torch_model(path: str | None, preset_name: str | None, upstream_compat: bool):
    """The fused model, probed once on a one-window input: a model whose output is not finite (NaN
    weights) fails here, in one line, before calibration or export start (agileir.upscale.contract)."""
    import numpy as np

    from ..runtime.pytorch import torch_upscaler
    from ..models.load import load_model

    loaded = load_model(path, preset_name, upstream_compat or None, fuse=True)
    w = loaded.config.window_size
    torch_upscaler(loaded.model)(np.full((1, 3, w, w), 0.5, np.float32))
    return loaded


def write_json(path: str | Path, payload: dict) -> None:
    from ..io.atomic import write_json as atomic_write_json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, payload)
