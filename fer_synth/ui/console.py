"""What a person sees: the rich consoles, progress bars, and the click group both command lines use.

Library code never prints: it logs (:mod:`fer_synth.ui.log`) and returns results, which the command lines
render here. Results (tables) go to stdout; logs and progress bars go to stderr.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console, ConsoleDimensions
from rich.progress import Progress

from fer_synth.core.errors import FerError, environment_reason
from fer_synth.core.images import printable
from fer_synth.ui.log import quiet, setup_logging

#: Where output is a file or a pipe (CI logs), lines and tables are this wide instead of rich's 80 columns.
NON_TERMINAL_WIDTH = 240


class AdaptiveConsole(Console):
    """A rich console that does not wrap at 80 columns when it writes to a file or pipe."""

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self._width is None and not self.is_terminal and not self.is_jupyter:
            return ConsoleDimensions(NON_TERMINAL_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)


console = AdaptiveConsole(highlight=False)
err_console = AdaptiveConsole(stderr=True, highlight=False)


class NoProgress:
    """The interface of :class:`rich.progress.Progress` that the runs use, doing nothing."""

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def update(self, *args: Any, **kwargs: Any) -> None:
        pass

    def advance(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __enter__(self) -> NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def progress_bar(enabled: bool, *columns: Any, transient: bool = False) -> Progress | NoProgress:
    """A live progress bar on stderr, or a no-op when disabled, under ``-q``, or when stderr is not a
    terminal (a bar redrawn into a log file is noise)."""
    if not enabled or quiet() or not (err_console.is_terminal or err_console.is_jupyter):
        return NoProgress()
    return Progress(*columns, console=err_console, transient=transient)


def _set_verbosity(ctx: click.Context, param: click.Parameter, value: int) -> None:
    # The group's and the command's -v/-q add up; each callback re-applies the sum.
    counts = ctx.find_root().meta.setdefault("fer.verbosity", {"verbose": 0, "quiet": 0})
    counts[param.name] += value
    setup_logging(counts["verbose"] - counts["quiet"], err_console)


def _verbosity_options() -> list[click.Option]:
    return [
        click.Option(
            ["-v", "--verbose"],
            count=True,
            expose_value=False,
            callback=_set_verbosity,
            help="More detail (debug logs, native libraries' start-up lines).",
        ),
        click.Option(
            ["-q", "--quiet"],
            count=True,
            expose_value=False,
            callback=_set_verbosity,
            help="Warnings and errors only; no progress bars.",
        ),
    ]


class FriendlyGroup(click.Group):
    """A click group whose commands show a :class:`FerError` as one line ``Error: ...`` and exit 2.

    Anything else is a bug and keeps its traceback. Every command (and the group) takes ``-v``/``-q``.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.params.extend(_verbosity_options())

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        cmd.params.extend(_verbosity_options())
        super().add_command(cmd, name)

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any):
        try:
            return super().make_context(info_name, args, parent, **extra)
        except _NO_ARGS_IS_HELP:
            raise  # `fer-synth` alone: the help, as click shows it
        except click.UsageError as e:  # the group's own options (fer-synth --bogus)
            raise _one_line(e) from None

    def invoke(self, ctx: click.Context) -> Any:
        for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 is shown escaped, never a crash
            if isinstance(stream, io.TextIOWrapper):
                stream.reconfigure(errors="fer-escape")  # core.images registers it: \xNN for the name's bytes
        try:
            return super().invoke(ctx)
        except _NO_ARGS_IS_HELP:
            raise
        except click.UsageError as e:  # a command's options and arguments, as click parses them
            raise _one_line(e) from None
        except FerError as e:
            message = str(e)
        except (OSError, MemoryError, RuntimeError) as e:
            # The machine, not the code: a full disk, a read-only place, memory or open files exhausted. What was
            # written is complete (atomic files, fsynced records), so the same command again goes on from there.
            if (reason := environment_reason(e)) is None:
                raise
            where = getattr(e, "filename", None)
            detail = (str(e).splitlines() or [type(e).__name__])[0][:200]
            message = (
                f"{f'{where}: ' if where else ''}{reason} ({detail}); fix that and run the same command "
                "again: what was done is kept"
            )
        err = click.ClickException(printable(message))
        err.exit_code = 2
        raise err from None


#: click (8.2+) shows a group's help for no arguments by raising this usage error: it stays the help.
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _one_line(e: click.UsageError) -> click.ClickException:
    """click's usage error (a bad option value, a missing argument, an unknown command) as the one line every
    other bad input gets, naming where help is, instead of click's usage block above it; exit code 2 as click's."""
    where = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
    err = click.ClickException(f"{e.format_message()}{where}")
    err.exit_code = 2
    return err


def with_options(options: list) -> Callable:
    """Apply a list of click options to a command, in the listed order."""

    def decorator(f):
        for option in reversed(options):
            f = option(f)
        return f

    return decorator
