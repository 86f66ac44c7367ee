"""Atomic outputs: write to a temporary name beside the target, rename into place only when complete.

An interrupted writer leaves the previous output (or nothing) behind, never half a file. Temporary names
carry the writer's process id, so :func:`remove_stale_temps` can tell a dead writer's leftovers from a live one's.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fer_synth.core.outputs import OutputError, make_dir


def _temp_prefix(target: Path) -> str:
    return f".{target.name}.{os.getpid()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temps(target: str | os.PathLike) -> list[Path]:
    """Remove the temporary files and folders that killed writers of ``target`` left beside it (those whose
    process is gone); returns what was removed."""
    target = Path(target)
    removed = []
    prefix = f".{target.name}."
    if not target.parent.is_dir():
        return removed
    for path in target.parent.glob(f"{prefix}*.tmp"):
        pid = path.name[len(prefix) :].split(".", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: OS errors that mean "this place cannot take the output", not a bug: each becomes one clear line.
_PLACE_ERRORS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


def _place_error(target: Path, e: OSError) -> OutputError | None:
    reason = _PLACE_ERRORS.get(e.errno)
    return (
        OutputError(f"{target}: cannot write it ({reason}); free space or choose another output path")
        if reason
        else None
    )


@contextmanager
def atomic_file(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces ``target`` (with normal permissions)."""
    target = Path(target)
    make_dir(target.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(target), suffix=".tmp", dir=target.parent)
    except OSError as e:
        raise (_place_error(target, e) or e) from None
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # durable before it becomes visible: a record may point at it
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except OSError as e:
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
    """Yield a temporary folder; on success it replaces the folder ``target``."""
    target = Path(target)
    make_dir(target.parent)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(target), suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=_temp_prefix(target), suffix=".tmp", dir=target.parent))
            os.replace(target, old / "previous")
            os.replace(tmp, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp, target)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if (error := _place_error(target, e)) is not None:
            raise error from None
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
