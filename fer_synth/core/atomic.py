"""Atomic outputs: write to a temporary name beside the target, rename into place only when complete.

An interrupted writer leaves the previous output (or nothing) behind, never half a file. Temporary names carry
the writer's process id and host (:func:`fer_synth.core.outputs.temp_prefix`), so a later run can tell a dead
writer's leftovers from a live one's (:func:`fer_synth.core.outputs.remove_stale_temps`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fer_synth.core.errors import FerError, OutputError, environment_reason
from fer_synth.core.outputs import current_umask, make_dir, swap_into_place, temp_prefix


def _place_error(target: Path, e: BaseException) -> OutputError | None:
    """A write that failed because of the place (a full disk, a read-only file system, ...), as one line."""
    reason = None if isinstance(e, FerError) else environment_reason(e)
    return (
        OutputError(
            f"{target}: cannot write it ({reason}); free space or choose another output path, then run "
            "the same command again"
        )
        if reason
        else None
    )


@contextmanager
def atomic_file(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces ``target`` (with normal permissions)."""
    target = Path(target)
    make_dir(target.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(target), suffix=".tmp", dir=target.parent)
    except OSError as e:
        raise (_place_error(target, e) or e) from None
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # durable before it becomes visible: a record may point at it
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, target)
    except Exception as e:
        tmp.unlink(missing_ok=True)
        if (error := _place_error(target, e)) is not None:
            raise error from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically; return the path."""
    with atomic_file(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


@contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces the folder ``target`` in one swap."""
    target = Path(target)
    make_dir(target.parent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(target), suffix=".tmp", dir=target.parent))
    except OSError as e:
        raise (_place_error(target, e) or e) from None
    try:
        yield tmp
        swap_into_place(tmp, target)
    except Exception as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if (error := _place_error(target, e)) is not None:
            raise error from None
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
