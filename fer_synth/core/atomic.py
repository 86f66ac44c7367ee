"""Atomic outputs: write to a temporary name beside the target, rename into place only when complete.

An interrupted writer leaves the previous output (or nothing) behind, never half a file. Temporary names carry
the writer's process id and host (:func:`fer_synth.core.outputs.temp_prefix`), so a later run can tell a dead
writer's leftovers from a live one's (:func:`fer_synth.core.outputs.remove_stale_temps`). Several files of one
command (:func:`write_together`) cannot be renamed in one step: a note beside each lets the same command again
finish a group that a kill cut between two renames.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from fer_synth.core.errors import FerError, OutputError, environment_reason
from fer_synth.core.outputs import GROUP_NOTE, current_umask, make_dir, swap_into_place, temp_prefix


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


def _new_temp(target: Path, suffix: str = ".tmp") -> Path:
    """An empty temporary file beside ``target``, named after it, this process and this host."""
    make_dir(target.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(target), suffix=suffix, dir=target.parent)
    except OSError as e:
        raise (_place_error(target, e) or e) from None
    os.close(fd)
    return Path(tmp)


def _make_durable(tmp: Path) -> None:
    """Flush ``tmp`` to the disk and give it normal permissions, before it becomes visible: a record may point at
    it."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.chmod(tmp, 0o666 & ~current_umask())


@contextmanager
def atomic_file(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces ``target`` (with normal permissions)."""
    target = Path(target)
    tmp = _new_temp(target)
    try:
        yield tmp
        _make_durable(tmp)
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


def write_together(files: Mapping[str | os.PathLike, bytes]) -> list[Path]:
    """Write several files of one command (target -> bytes) so that the same command can finish after a kill at
    any instant: each is written complete under a temporary name first, then a note beside each target names its
    new content (:data:`~fer_synth.core.outputs.GROUP_NOTE`), then all are renamed into place and the notes
    removed. Renaming several files is not one step: a kill between two renames leaves some targets new and a
    dead writer's notes vouching for them, so the same command again replaces them without ``--overwrite``
    (:func:`~fer_synth.core.outputs.left_by_dead_group`) instead of refusing the output it made itself. Returns
    the targets."""
    targets = [Path(t) for t in files]
    pending: list[Path] = []  # temporaries (files, then notes) to remove should this fail before any rename
    renamed = False
    target = targets[0]
    try:
        built = []
        for target, data in zip(targets, files.values()):
            tmp = _new_temp(target)
            pending.append(tmp)
            tmp.write_bytes(data)
            _make_durable(tmp)
            built.append(tmp)
        if len(targets) > 1:  # one file is renamed in one step: it needs no note
            for target, data in zip(targets, files.values()):
                note = _new_temp(target, GROUP_NOTE)
                pending.append(note)
                note.write_text(hashlib.sha256(data).hexdigest())
                _make_durable(note)
        for tmp, target in zip(built, targets):
            os.replace(tmp, target)
            renamed = True
        for note in pending[len(built) :]:
            note.unlink(missing_ok=True)
    except BaseException as e:
        # Once a rename is done the notes stay (a dead writer's, removed by the next run): they are what lets the
        # same command again finish the group.
        for tmp in pending if not renamed else pending[: len(targets)]:
            tmp.unlink(missing_ok=True)
        if isinstance(e, Exception) and (error := _place_error(target, e)) is not None:
            raise error from None
        raise
    return targets


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
