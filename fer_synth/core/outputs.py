"""Where commands write: the rule for output folders, the lock that keeps two runs apart, and the paths a
command must never write over.

The rule (docs/reliability.md): a file target is replaced atomically; a folder target must be absent, empty,
or an earlier output of the same command (recognised by the file that command writes there), else the command
stops with a one-line error. ``overwrite`` is the explicit way to replace a folder, and even then never one
that holds (or lies inside) the command's inputs.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from fer_synth.core.errors import FerError


class OutputError(FerError):
    """An output location that cannot, or must not, be written."""


class BusyError(FerError):
    """Another live process holds the output's lock."""


def _overlap(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def refuse_inputs(out: str | os.PathLike, inputs: Iterable[str | os.PathLike | None], option: str = "--out") -> None:
    """Raise when ``out`` is, contains or lies inside one of ``inputs``: writing there could destroy them."""
    target = Path(out).resolve()
    for given in inputs:
        if given is None:
            continue
        source = Path(given).resolve()
        if _overlap(target, source):
            raise OutputError(
                f"{option} {out} overlaps the input {given}; write the output somewhere else "
                "(the input is never replaced, not even with --overwrite)"
            )


def refuse_existing_file(out: str | os.PathLike, overwrite: bool, option: str = "--out") -> None:
    """Raise when the output file ``out`` exists and replacing it was not asked for (``overwrite``)."""
    if Path(out).exists() and not overwrite:
        raise OutputError(f"{out} exists; choose another {option} or pass --overwrite to replace it")


def make_dir(folder: str | os.PathLike) -> Path:
    """``mkdir -p`` that turns a parent that is a file, or a place that cannot be written, into one clear line."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"{folder} exists and is not a folder; choose another output path") from None
    except NotADirectoryError:
        raise OutputError(f"{folder}: a parent of it is a file, not a folder; choose another output path") from None
    except OSError as e:
        raise OutputError(f"{folder}: cannot create it ({e.strerror}); choose a writable output path") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{folder} is not writable; choose a writable output path")
    return folder


def prepare_output_folder(
    folder: str | os.PathLike,
    *,
    command: str,
    is_own: Callable[[Path], bool],
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike | None] = (),
) -> Path:
    """Check (and create) an output folder by the rule above; with ``overwrite`` empty it first.

    ``is_own(folder)`` recognises an earlier output of ``command``, which may be resumed or extended.
    """
    folder = Path(folder)
    refuse_inputs(folder, inputs)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder} exists and is not a folder; choose another --out")
    content = sorted(p for p in folder.iterdir() if not is_lock_file(p)) if folder.is_dir() else []
    if content and overwrite:
        clear_folder(folder)
    elif content and not is_own(folder):
        shown = ", ".join(p.name for p in content[:3]) + (f" and {len(content) - 3} more" if len(content) > 3 else "")
        raise OutputError(
            f"{folder} holds files that are not an earlier `{command}` output ({shown}); choose a new "
            "or empty folder, or pass --overwrite to replace its contents"
        )
    return make_dir(folder)


def is_lock_file(path: Path) -> bool:
    """A lock file of :func:`output_lock` (hidden, ``.lock`` suffix): not content of the folder."""
    return path.name.startswith(".") and path.name.endswith(".lock")


def clear_folder(folder: Path) -> None:
    """Remove everything inside ``folder`` (the folder itself stays, so a lock taken on it stays valid)."""
    for entry in folder.iterdir():
        if is_lock_file(entry):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def has_settings_of(command: str, settings_file: str = "run.json") -> Callable[[Path], bool]:
    """An ``is_own`` test: the folder's settings file names ``command`` (what generate and crop write)."""

    def is_own(folder: Path) -> bool:
        try:
            return json.loads((folder / settings_file).read_text()).get("command") == command
        except (OSError, ValueError, AttributeError):
            return False

    return is_own


def has_file(name: str) -> Callable[[Path], bool]:
    """An ``is_own`` test: the folder holds ``name`` (e.g. a training run's config.json)."""
    return lambda folder: (folder / name).is_file()


@contextmanager
def output_lock(folder: str | os.PathLike, name: str = ".fer.lock") -> Iterator[Path]:
    """Hold an exclusive OS lock on ``folder/name`` while writing there; a second process gets a
    :class:`BusyError` naming the holder. The OS drops the lock of a process that dies, so a killed run's lock
    is taken over at once; the file itself stays (removing it would race with a new holder)."""
    path = make_dir(folder) / name
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
            raise BusyError(
                f"{folder} is in use by {holder}; wait for it to finish or stop it, then run again"
            ) from None
        command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "python"
        info = (
            f"process {os.getpid()} on {socket.gethostname()} (`{command}`, since {time.strftime('%Y-%m-%d %H:%M:%S')})"
        )
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock
