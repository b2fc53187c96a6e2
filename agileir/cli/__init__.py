"""Every command of the toolkit: `agileir` (group), `agileir-export`, `agileir-infer`.

One module per command family; each imports only click and `common` at import time, so `agileir --help`
works on the base install and a command that needs an extra says which in one line.
"""
from __future__ import annotations

import signal

import click

from . import batch, calibrate, check, export, infer, models, plugin, runtime, serve, video
from .common import EXIT_INTERRUPTED, EXIT_TERMINATED, CheckFailed, CliError


class _Group(click.Group):
    def main(self, *args, **kwargs):
        return run_command(super().main, *args, **kwargs)


class _Terminated(BaseException):
    """Raised by the SIGTERM handler: unwinds like KeyboardInterrupt, so every atomic write removes its
    temporary file (BaseException: no `except Exception` swallows it)."""


def _on_sigterm(signum, frame):
    raise _Terminated()


def _install_signal_handlers():
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread
        return None
    return previous


def run_command(entry, *args, **kwargs):
    """Click's usage errors as one `error:` line (exit 2), like every other error; SIGTERM (exit 143) and
    SIGINT (exit 130) remove the temporary files in flight and end with one line."""
    from ..io.atomic import remove_in_flight

    kwargs.setdefault("standalone_mode", False)
    previous = _install_signal_handlers()
    try:
        result = entry(*args, **kwargs)
    except _Terminated:
        remove_in_flight()
        click.echo("error: terminated (SIGTERM); no partial file was left", err=True)
        raise SystemExit(EXIT_TERMINATED) from None
    except (KeyboardInterrupt, click.Abort) as e:
        remove_in_flight()
        cause = e.__cause__ or e.__context__ if isinstance(e, click.Abort) else e  # click wraps it in Abort
        if getattr(cause, "signum", None) == signal.SIGTERM:  # a pipeline stopped cleanly on SIGTERM
            click.echo(f"error: terminated (SIGTERM) after {cause.done} items; no partial file was left", err=True)
            raise SystemExit(EXIT_TERMINATED) from None
        click.echo("error: interrupted", err=True)
        raise SystemExit(EXIT_INTERRUPTED) from None
    except click.exceptions.Exit as e:
        raise SystemExit(e.exit_code) from None
    except (CliError, CheckFailed) as e:
        e.show()
        raise SystemExit(e.exit_code) from None
    except click.UsageError as e:
        hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
        click.echo(f"error: {e.format_message()}{hint}", err=True)
        raise SystemExit(e.exit_code) from None
    except click.ClickException as e:
        click.echo(f"error: {e.format_message()}", err=True)
        raise SystemExit(e.exit_code) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if isinstance(result, int) and result:  # click returns a raised Exit's code when not in standalone mode
        raise SystemExit(result)
    return result


@click.group(cls=_Group)
@click.version_option(package_name="agileir")
def main():
    """AgileIR deployment toolkit: inspect, run, evaluate, export, calibrate, build, validate, benchmark."""


for _module in (models, infer, export, calibrate, runtime, plugin, batch, serve, video, check):
    _module.register(main)


def infer_main():
    run_command(infer.infer_cmd.main, prog_name="agileir-infer")


def export_main():
    run_command(export.export_cmd.main, prog_name="agileir-export")
