"""What every command shares: one-line errors with documented exit codes, model options, JSON output.

Exit codes (README, "Exit codes"): 0 ok; 1 a check failed (validation, a folder run with failed files);
2 bad input or usage (one `error:` line); 3 this machine lacks something (TensorRT, a GPU, an optional
package); 130 interrupted (SIGINT); 143 terminated (SIGTERM). Table: docs/reliability.md.
"""
from __future__ import annotations

import errno
import functools
import importlib
import os
import re
from pathlib import Path

import click

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_ENVIRONMENT, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 2, 3, 130, 143


class CliError(click.ClickException):
    exit_code = EXIT_BAD_INPUT

    def show(self, file=None):
        click.echo(f"error: {self.message}", err=True)


class CheckFailed(click.ClickException):
    """A check failed (validation below its threshold, files of a folder/batch run that failed): exit 1, with a
    one-line summary. The one way every command signals exit code 1."""
    exit_code = EXIT_FAILED

    def show(self, file=None):
        click.echo(self.message, err=True)


class MissingDependency(CliError):
    """Something this machine lacks (TensorRT, a GPU, an optional package): not the input's fault."""
    exit_code = EXIT_ENVIRONMENT


# top-level module -> the extra that installs it (pyproject.toml)
EXTRA_OF = {"onnx": "onnx", "onnxruntime": "onnx", "onnxruntime_extensions": "onnx", "onnxconverter_common": "onnx",
            "onnxslim": "onnx", "onnx_graphsurgeon": "onnx", "matplotlib": "plot", "polygraphy": "trt", "cuda": "trt",
            "jsonschema": "onnx", "tensorrt_rtx": "rtx", "ray": "batch", "tritonclient": "serve", "pytriton": "serve", "av": "video",
            "torch": "torch", "openvino": "openvino", "nncf": "nncf"}
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


DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# a library that names the pip requirement it lacks in a ValueError/RuntimeError (Ray Client: `ray[client]`)
_REQUIRES_PACKAGE = re.compile(r"requires pip package `([^`]+)`")


def is_disk_full(error: BaseException | str) -> bool:
    """A full disk or quota, as an exception or as the one-line error a folder run recorded for a file."""
    if isinstance(error, OSError):
        return error.errno in DISK_FULL_ERRNOS
    text = str(error)
    return any(f"[Errno {code}]" in text or os.strerror(code) in text for code in DISK_FULL_ERRNOS)


def missing_package_in(error: BaseException) -> str | None:
    """The pip requirement a library says it lacks (e.g. `ray[client]`), else None."""
    match = _REQUIRES_PACKAGE.search(str(error))
    return match.group(1) if match else None


def _first_line(e: BaseException) -> str:
    text = str(e)
    return text.splitlines()[0] if text else type(e).__name__


def cli_error_for(e: Exception) -> click.ClickException:
    """The one mapping of an exception to its exit code: 3 for what this machine lacks (TensorRT, a GPU, a
    package, `ray[client]`), 2 for bad input and for a full disk (ENOSPC/EDQUOT) in every command."""
    from ..io.images import ImageError
    from ..models.load import ModelLoadError
    from ..runtime.base import DeviceUnavailable
    from ..runtime.tensorrt.env import TensorRTUnavailable

    if isinstance(e, (TensorRTUnavailable, DeviceUnavailable)):
        return MissingDependency(_first_line(e))
    if isinstance(e, ModuleNotFoundError):
        return MissingDependency(missing_module_message(e))
    package = missing_package_in(e) if isinstance(e, (ValueError, RuntimeError, ImportError)) else None
    if package:
        return MissingDependency(f"{package} is not installed (pip install '{package}')")
    if isinstance(e, OSError) and is_disk_full(e):
        line = _first_line(e)
        return CliError(line if "space" in line.lower() or "quota" in line.lower() else f"disk full: {line}")
    if isinstance(e, (ModelLoadError, ImageError, FileNotFoundError, ValueError, OSError)):
        # OSError: an unwritable output folder; the message names the target
        return CliError(_first_line(e))
    return CliError(f"{type(e).__name__}: {_first_line(e) if str(e) else ''} ({DEBUG_HINT})")


DEBUG_HINT = "set AGILEIR_DEBUG=1 for the traceback"


def friendly_errors(fn):
    """Bad input ends in one line on stderr and exit code 2, a missing capability of the machine in exit
    code 3, never a traceback (AGILEIR_DEBUG=1 shows it for unexpected errors)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as e:
            error = cli_error_for(e)
            unexpected = isinstance(e, ModuleNotFoundError) or error.message.endswith(DEBUG_HINT + ")")
            if unexpected and os.environ.get("AGILEIR_DEBUG"):
                raise
            raise error from None
    return wrapper


def overwrite_option(fn):
    """--overwrite: replace existing files agileir did not write (an input of the run never)."""
    return click.option("--overwrite", is_flag=True,
                        help="replace existing files that agileir did not write (never an input of the run)")(fn)


def model_options(fn):
    fn = click.option("--preset", "preset_name", help="override the architecture inferred from the weights")(fn)
    fn = click.option("--upstream-compat", is_flag=True,
                      help="reproduce the official AgileIR forward (attention output discarded)")(fn)
    return fn


def backend_option(help_text: str = "override the backend chosen from the file type"):
    from ..runtime.artifacts import BACKENDS

    return click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True, help=help_text)


DEVICE_HELP = ("where the model runs, for every backend: auto (CUDA when usable here, else the CPU; one line says "
               "which), cpu, cuda or cuda:N (exit 3 when not usable here)")  # agileir.runtime.devices


def device_option(help_text: str = DEVICE_HELP):
    """--device alone, for commands that run a checkpoint but take no runner_options group (a CUDA device that is
    not there exits 3, agileir.runtime.base.DeviceUnavailable)."""
    return click.option("--device", default="auto", show_default=True, help=help_text)


def ov_precision_option(fn):
    """--ov-precision: OpenVINO's inference precision hint (RunnerSpec.ov_precision)."""
    return click.option("--ov-precision", type=click.Choice(["f32", "bf16", "f16"]), default="f32", show_default=True,
                        help="OpenVINO's precision hint (--backend openvino, or auto choosing it): f32 keeps parity "
                             "with FP32; bf16 / f16 trade PSNR for speed where the CPU has them (docs/openvino.md); "
                             "Intel GPUs / NPUs: --device GPU, NPU or AUTO")(fn)


def runner_options(backend_help: str = "override the backend chosen from the model file type", engine_cache: bool = True):
    """The option group that chooses a runner: --backend, --device, --engine-cache, --preset, --upstream-compat.

    The command receives them as one `runner` argument, an agileir.runtime.RunnerSpec without its artifact
    (`dataclasses.replace(runner, artifact=path)` adds it)."""
    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, backend, device, preset_name, upstream_compat, engine_cache_dir=None, ov_precision="f32",
                    **kwargs):
            from ..runtime import RunnerSpec

            kwargs["runner"] = RunnerSpec(None, backend, device, preset_name, upstream_compat, engine_cache_dir,
                                          ov_precision=ov_precision)
            return fn(*args, **kwargs)

        wrapper = ov_precision_option(device_option()(backend_option(backend_help)(wrapper)))
        if engine_cache:
            wrapper = click.option("--engine-cache", "engine_cache_dir", type=click.Path(file_okay=False),
                                   help="engine cache folder for --backend tensorrt/rtx/openvino on an .onnx file [default: "
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
