"""`agileir plugin build`: the GSWA TensorRT plugin library, built (or found) explicitly.

`agileir build` and `--backend tensorrt|rtx` build it on first use anyway; this command does it ahead of time
(or into a folder of your choice with -o) and prints where the library is.
"""
from __future__ import annotations

import click

from .common import friendly_errors


@click.group(name="plugin")
def plugin_group():
    """The GSWA TensorRT plugin library (docs/plugin.md)."""


@plugin_group.command(name="build")
@click.option("--target", type=click.Choice(["tensorrt", "rtx"]), default="tensorrt", show_default=True,
              help="the TensorRT flavour the library is for")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False),
              help="also copy the library (and, for rtx, its libtensorrt_rtx.so link) into this folder")
@friendly_errors
def plugin_build_cmd(target, out_dir):
    """Build the plugin library for the installed TensorRT(-RTX), or find the one already built, and print its path.

    Headers: AGILEIR_TRT_INCLUDE, TensorRT_ROOT, else NVIDIA's open-source headers fetched by pinned sha256."""
    from ..plugins.ondemand import copy_library
    from ..runtime.tensorrt.env import ensure_plugin_library

    lib = ensure_plugin_library(target, echo=lambda m: click.echo(m, err=True))
    if out_dir is not None:
        lib = copy_library(lib, out_dir)
    click.echo(str(lib))


def register(group: click.Group) -> None:
    group.add_command(plugin_group)
