"""Subcommands of this subsystem (registered on the `agileir` group by agileir.cli)."""
from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """No subcommands yet."""
