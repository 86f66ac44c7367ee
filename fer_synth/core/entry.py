"""What the console scripts ``fer-synth`` and ``fer-models`` run (each package's ``__main__``): the command line
loaded behind a guard.

Loading the command lines loads NumPy, OpenCV and PyTorch. On a machine whose memory limit is too low for their
libraries (``ulimit -v``, a container's limit) that fails inside the import, before any command can turn it into
a message; here it becomes one line and exit code 2. This module imports nothing heavy itself.
"""

from __future__ import annotations

import importlib
import resource
import subprocess
import sys

#: What a library that could not be loaded into the memory left says (the dynamic loader, CPython, PyTorch).
_NO_MEMORY = (
    "failed to map segment",
    "cannot allocate memory",
    "out of memory",
    "returned null without setting",
    "memoryerror",
)


def _out_of_memory(error: BaseException) -> bool:
    if isinstance(error, MemoryError):
        return True
    text = str(error).lower()
    return any(phrase in text for phrase in _NO_MEMORY) and (_limit() is not None or "null" not in text)


def run_command_line(target: str) -> None:
    """Load the click group ``module:name`` and run it; a machine without the memory to load its libraries gets one
    line and exit code 2."""
    module, name = target.split(":")
    if _limit() is not None:
        _probe(module)
    try:
        main = getattr(importlib.import_module(module), name)
    except (ImportError, OSError, SystemError, MemoryError) as e:
        if not _out_of_memory(e):
            raise
        _refuse((str(e).splitlines() or [type(e).__name__])[0])
    main()


def _limit() -> int | None:
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    return None if limit == resource.RLIM_INFINITY else limit


def _probe(module: str) -> None:
    """Under an address-space limit, load ``module`` in a child process first: the dynamic loader may abort the
    process outright (``cannot allocate memory for thread-local data``), where no exception could be caught."""
    probe = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, check=False)
    if probe.returncode == 0:
        return
    last = (probe.stderr.strip().splitlines() or [f"exit status {probe.returncode}"])[-1]
    if (
        probe.returncode < 0
        or probe.returncode == 127
        or any(p in probe.stderr.lower() for p in _NO_MEMORY)
        or "MemoryError" in probe.stderr
    ):
        _refuse(last)
    # Anything else is not the limit: the import below shows it as it is.


def _refuse(detail: str) -> None:
    limit = _limit()
    shown = "" if limit is None else f" (the address-space limit is {limit / 2**30:.1f} GiB)"
    sys.stderr.write(
        f"Error: not enough memory to load the libraries{shown}: {detail[:160]}; raise the limit "
        "(`ulimit -v`) or free memory, then run the command again\n"
    )
    sys.exit(2)
