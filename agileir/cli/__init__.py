"""Every command of the toolkit: `agileir` (group), `agileir-export`, `agileir-infer`.

One module per command family; each imports only click and `common` at import time, so `agileir --help`
works on the base install and a command that needs an extra says which in one line.
"""
from __future__ import annotations

import click

from . import calibrate, export, infer, models, runtime, video
from .common import CliError


class _Group(click.Group):
    def main(self, *args, **kwargs):
        return run_command(super().main, *args, **kwargs)


def run_command(entry, *args, **kwargs):
    """Click's usage errors as one `error:` line (exit 2), like every other error."""
    kwargs.setdefault("standalone_mode", False)
    try:
        result = entry(*args, **kwargs)
    except click.exceptions.Exit as e:
        raise SystemExit(e.exit_code) from None
    except CliError as e:
        e.show()
        raise SystemExit(e.exit_code) from None
    except click.UsageError as e:
        hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
        click.echo(f"error: {e.format_message()}{hint}", err=True)
        raise SystemExit(e.exit_code) from None
    except click.ClickException as e:
        click.echo(f"error: {e.format_message()}", err=True)
        raise SystemExit(e.exit_code) from None
    except click.Abort:
        click.echo("error: interrupted", err=True)
        raise SystemExit(130) from None
    if isinstance(result, int) and result:
        raise SystemExit(result)
    return result


@click.group(cls=_Group)
@click.version_option(package_name="agileir")
def main():
    """AgileIR deployment toolkit: inspect, run, evaluate, export, calibrate, build, validate, benchmark."""


for _module in (models, infer, export, calibrate, runtime, video):
    _module.register(main)


def infer_main():
    run_command(infer.infer_cmd.main, prog_name="agileir-infer")


def export_main():
    run_command(export.export_cmd.main, prog_name="agileir-export")
