"""Shared command-line plumbing: one rich console, and a click group that turns user errors into one line."""

from __future__ import annotations

import click
from rich.console import Console

from fer_synth.core.errors import FerError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


class FriendlyGroup(click.Group):
    """A click group whose commands report :class:`FerError` and missing files as ``Error: ...``, exit 2.

    Anything else is a bug and keeps its traceback.
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (FerError, FileNotFoundError, KeyError) as e:
            message = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            err = click.ClickException(str(message))
            err.exit_code = 2
            raise err from None


def warn(message: str) -> None:
    """A warning on stderr, in yellow."""
    err_console.print(f"[yellow]warning:[/] {message}")
