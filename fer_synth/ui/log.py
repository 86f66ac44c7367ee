"""Logging for both packages: library modules log to ``logging.getLogger(__name__)`` and never print.

The command lines call :func:`setup_logging` (``-v`` for debug detail, ``-q`` for warnings only); a notebook
silences or redirects the libraries with the standard ``logging`` calls, e.g.
``logging.getLogger("fer_models").setLevel(logging.WARNING)``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

PACKAGES = ("fer_synth", "fer_models")


def process_rank() -> int:
    """This process's rank under torchrun/accelerate launch (``RANK``), 0 otherwise."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


class RankZeroFilter(logging.Filter):
    """Under several processes, rank 0 alone logs progress; every rank still reports warnings and errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or process_rank() == 0


class ConsoleHandler(logging.Handler):
    """Records as plain lines on a rich console: warnings in yellow, errors in red, never wrapped, so a log
    file or CI log holds one line per message."""

    STYLES = {logging.DEBUG: "dim", logging.WARNING: "yellow", logging.ERROR: "bold red"}

    def __init__(self, console: Any):
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        from rich.text import Text

        try:
            message = self.format(record)
            if record.levelno >= logging.WARNING:
                message = f"{record.levelname.lower()}: {message}"
            elif record.levelno < logging.INFO:
                message = f"[{record.name}] {message}"
            style = self.STYLES.get(record.levelno, "")
            self.console.print(Text(message, style=style), soft_wrap=True)
        except Exception:  # logging must never raise into the caller
            self.handleError(record)


def setup_logging(verbosity: int, console: Any) -> None:
    """Send both packages' records to ``console``: -1 warnings only, 0 info, 1 and more debug."""
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    for name in PACKAGES:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        for handler in [h for h in logger.handlers if isinstance(h, ConsoleHandler)]:
            logger.removeHandler(handler)
        handler = ConsoleHandler(console)
        handler.addFilter(RankZeroFilter())
        logger.addHandler(handler)


def quiet() -> bool:
    """True when the packages log warnings only (``-q``): progress bars stay off too."""
    return not logging.getLogger(PACKAGES[0]).isEnabledFor(logging.INFO)


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Silence what native libraries (MediaPipe, TFLite) write straight to file descriptor 2, unless debug
    logging is on (``-v``). Python exceptions are unaffected: they are objects, not stderr text."""
    if logging.getLogger(PACKAGES[0]).isEnabledFor(logging.DEBUG):
        yield
        return
    fd = 2  # where native code writes, whatever Python's sys.stderr has become
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            try:
                yield
            finally:
                os.dup2(saved, fd)
    finally:
        os.close(saved)
