"""agileir: deployment toolkit for the AgileIR super-resolution transformer.

    from agileir import export, load_runner, upscale     # the Python API (agileir.api, docs/api.md)

Importing the package imports nothing heavy: the API's names load agileir.api on first use (PEP 562), and that
imports PyTorch only when a checkpoint is loaded, ONNX Runtime only when an .onnx file runs.

`upscale` and `export` are also the names of subpackages (agileir.upscale, agileir.export), which Python's import
system binds on this package whenever anything imports them; so those two subpackages are made callable and call
agileir.api.upscale / agileir.api.export: `from agileir import upscale; upscale(runner, lr)` works whichever was
imported first, and `import agileir.upscale.files` still imports the module. For the typed overloads, import
them from agileir.api.
"""
import importlib
import types

__version__ = "0.1.0"

_API = ("export", "load_model", "load_runner", "release", "upscale", "RunnerSpec")


class _CallableSubpackage(types.ModuleType):
    """A subpackage that, called, is the API function of its name (agileir.api.<name>)."""

    def __call__(self, *args, **kwargs):
        return getattr(importlib.import_module("agileir.api"), self.__name__.rpartition(".")[2])(*args, **kwargs)

    @property
    def __signature__(self):
        import inspect

        return inspect.signature(getattr(importlib.import_module("agileir.api"), self.__name__.rpartition(".")[2]))


for _name in ("upscale", "export"):  # their __init__ modules import nothing
    importlib.import_module(f"{__name__}.{_name}").__class__ = _CallableSubpackage


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module("agileir.api"), name)
    raise AttributeError(f"module 'agileir' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_API})


__all__ = ["__version__", *_API]
