"""Where commands write: the one resolver of inputs and outputs, the rule for output folders, replacing by swap,
the temporaries of a writer, and the lock that keeps two runs apart.

* **Inputs are never outputs.** :func:`refuse_inputs` resolves both sides (``~``, symbolic links, hard links) and
  refuses an output that is, contains or lies inside anything the command reads (``beside`` allows files written
  beside an input, such as evaluate's reports beside a checkpoint, never over one). :func:`refuse_collisions`
  refuses two outputs of one command that are, or contain, each other.
* **A folder output** must be absent, empty, or an earlier output of the same command (recognised by the file that
  command writes there); ``overwrite`` is the explicit way to replace anything else. :func:`output_folder` claims
  it: a command that resumes (generate, crop, train) works in place; a replacement, and every output built whole
  (reports, exports), is built in a temporary folder beside the target and swapped in at the end, so an error or
  a kill at any instant leaves the old output whole.
* **Temporaries** are named ``.<target>.<pid>@<host>.<random>.tmp``: the writer's process and host are in the name,
  so a later run removes those of dead writers (:func:`remove_stale_temps`) and never a live writer's.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from fer_synth.core.errors import FerError, OutputError, environment_reason

LOCK_NAME = ".fer.lock"
Given = str | os.PathLike | None


class BusyError(FerError):
    """Another live process holds the output's lock."""


# --- inputs and outputs ------------------------------------------------------------------------------------------


def _real(path: str | os.PathLike) -> Path:
    """The path with ``~`` expanded and every symbolic link of its existing part resolved."""
    return Path(os.path.realpath(Path(path).expanduser()))


def _same_file(a: Path, b: Path) -> bool:
    """Two names of one existing file (a hard link, a bind mount)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def once_each(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[tuple[str, str]]]:
    """``paths`` with every later name of a file or folder named before left out (``./x`` and ``x``, a symbolic or
    hard link, a file also found in a folder given), and what was left out as (its name, the first name)."""
    kept: list[Path] = []
    first: dict[object, Path] = {}
    repeated: list[tuple[str, str]] = []
    for path in map(Path, paths):
        try:
            st = os.stat(path)
            identity: object = (st.st_dev, st.st_ino)
        except OSError:  # not there (yet): its name decides
            identity = _real(path)
        if identity in first:
            repeated.append((str(path), str(first[identity])))
        else:
            first[identity] = path
            kept.append(path)
    return kept, repeated


def overlap(out: str | os.PathLike, given: str | os.PathLike) -> str | None:
    """How ``out`` overlaps ``given``: ``"is"``, ``"contains"``, ``"lies inside"``, or None."""
    target, source = _real(out), _real(given)
    if target == source or _same_file(target, source):
        return "is"
    if target in source.parents:
        return "contains"
    if source in target.parents:
        return "lies inside"
    return None


def refuse_inputs(
    out: str | os.PathLike, inputs: Iterable[Given], option: str = "--out", *, beside: bool = False
) -> None:
    """Raise when ``out`` is, contains or lies inside one of ``inputs`` (everything the command reads): writing
    there could destroy them. ``beside``: ``out`` may lie inside a folder input (a report written beside the
    checkpoint it is about), though never be or contain an input."""
    for given in inputs:
        if given is None or str(given) == "":
            continue
        how = overlap(out, given)
        if how is None or (beside and how == "lies inside"):
            continue
        raise OutputError(
            f"{option} {out} overlaps the input {given} (it {how} it); write the output somewhere "
            "else (an input is never replaced, not even with --overwrite)"
        )


def refuse_collisions(outputs: dict[str, Given]) -> None:
    """Raise when two of a command's outputs (option -> path) are the same place or one holds the other: the
    second would replace the first."""
    given = [(option, path) for option, path in outputs.items() if path is not None]
    for i, (option, path) in enumerate(given):
        for other, other_path in given[i + 1 :]:
            if overlap(path, other_path):
                raise OutputError(
                    f"{option} {path} and {other} {other_path} are the same place (or one holds the "
                    "other), so one output would replace the other; give them different names"
                )


def refuse_existing_file(
    out: str | os.PathLike, overwrite: bool, option: str = "--out", is_own: Callable[[Path], bool] | None = None
) -> None:
    """Raise when the output file ``out`` exists and replacing it was not asked for (``overwrite``). ``is_own``
    recognises an earlier output of the same command, replaced without asking (as an output folder is)."""
    out = Path(out)
    if out.is_dir():
        raise OutputError(f"{option} {out} is a folder; give a file name")
    if out.exists() and not overwrite and not (is_own is not None and is_own(out)) and not left_by_dead_group(out):
        what = "exists" if is_own is None else "exists and is not an earlier output of this command"
        raise OutputError(f"{out} {what}; choose another {option} or pass --overwrite to replace it")


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
        raise OutputError(
            f"{folder}: cannot create it ({environment_reason(e) or e.strerror}); choose a writable output path"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{folder} is not writable; choose a writable output path")
    return folder


# --- the temporaries of a writer ----------------------------------------------------------------------------------


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:63] or "host"


def temp_prefix(target: str | os.PathLike) -> str:
    """The start of a temporary's name beside ``target``: it names the target, this process and this host."""
    return f".{Path(target).name}.{os.getpid()}@{_host()}."


_WRITER = re.compile(r"\.(\d+)@([A-Za-z0-9-]+)\.[A-Za-z0-9_-]+\.tmp$")
_OLD_WRITER = re.compile(r"\.(\d+)(?:\.[A-Za-z0-9_]+)?\.tmp$")  # before the host was named: this host's
_PREVIOUS = "-previous.tmp"  # the old output during a swap where the file system cannot exchange two names
#: The end of a note beside each file of a group written together (:func:`fer_synth.core.atomic.write_together`)
#: while the group is renamed into place: it holds the SHA-256 of the file's new content.
GROUP_NOTE = "-group.tmp"


def _writer(path: Path) -> tuple[int, str] | None:
    """(process id, host) of the writer named in a temporary's name; None when it names none."""
    if match := _WRITER.search(path.name):
        return int(match.group(1)), match.group(2)
    if match := _OLD_WRITER.search(path.name):
        return int(match.group(1)), _host()
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


#: A temporary file (not folder) of another host's writer older than this is stale: a live writer holds one for
#: the seconds a write takes, and another host's process cannot be asked whether it lives.
STALE_AFTER_S = 300.0


def _dead(path: Path, other_hosts: bool = False) -> bool:
    """A temporary whose writer is gone: a process of this host that no longer runs; with ``other_hosts``, also a
    temporary file of another host's writer untouched for :data:`STALE_AFTER_S`."""
    writer = _writer(path)
    if writer is None or writer[0] == os.getpid() and writer[1] == _host():
        return False
    if writer[1] != _host():
        try:
            return other_hosts and path.is_file() and time.time() - path.stat().st_mtime > STALE_AFTER_S
        except OSError:
            return False
    return not _alive(writer[0])


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_stale_temps(target: str | os.PathLike) -> list[Path]:
    """Clean what killed writers of ``target`` left beside it (temporary files and folders of dead processes of
    this host); a live writer's, or another host's, stay. A previous output that a swap had moved aside is put
    back if the target is missing. Returns what was removed."""
    target = Path(target)
    removed: list[Path] = []
    try:
        candidates = sorted(target.parent.glob(f".{_glob_escape(target.name)}.*.tmp"))
    except OSError:
        return removed
    for path in candidates:
        if not _dead(path):
            continue
        if path.name.endswith(_PREVIOUS) and not os.path.lexists(target):
            os.rename(path, target)
            continue
        _remove(path)
        removed.append(path)
    return removed


def left_by_dead_group(target: str | os.PathLike) -> bool:
    """Whether ``target`` is a file a writer of several files renamed into place before it died with others of
    them still to rename: a dead writer's group note beside it names its present content. The same command
    again replaces it without ``--overwrite`` (it is that command's own output, half committed), so it can finish
    the group; any other existing file still needs ``--overwrite``."""
    target = Path(target)
    try:
        notes = [n for n in target.parent.glob(f".{_glob_escape(target.name)}.*{GROUP_NOTE}") if _dead(n)]
        if not notes or not target.is_file():
            return False
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
        return any(n.read_text().strip() == digest for n in notes)
    except OSError:
        return False


def remove_dead_temps_in(folder: str | os.PathLike) -> list[Path]:
    """Clean the temporaries that killed writers left anywhere inside ``folder`` (a run folder, a pool; the ranks
    of one sharded run may write there from several hosts)."""
    removed = []
    for path in sorted(Path(folder).rglob(".*.tmp")):
        if _dead(path, other_hosts=True) and not path.name.endswith(_PREVIOUS):
            _remove(path)
            removed.append(path)
    return removed


def _glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _exchange(a: Path, b: Path) -> bool:
    """Swap two names in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    number = ctypes.get_errno()
    if number in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(number, os.strerror(number), str(b))


def swap_into_place(built: Path, target: Path) -> None:
    """Put the complete folder ``built`` (a temporary beside ``target``) at ``target``, replacing what was there in
    one atomic exchange where the file system has one. Elsewhere the old output is first renamed to a
    ``-previous`` temporary, which :func:`remove_stale_temps` puts back should the process die between the two
    renames."""
    os.chmod(built, 0o777 & ~current_umask())
    if not os.path.lexists(target):
        try:
            os.rename(built, target)
            return
        except OSError as e:
            # Another writer of the same output swapped its complete one in since the check (outputs built whole
            # without a lock: reports, exports, folder packs): it is replaced like any earlier output.
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
    if _exchange(built, target):
        _remove(built)  # now the old output
        return
    previous = target.parent / f"{temp_prefix(target)}{os.urandom(4).hex()}{_PREVIOUS}"
    os.rename(target, previous)
    os.rename(built, target)
    _remove(previous)


# --- output folders ---------------------------------------------------------------------------------------------


def is_lock_file(path: Path) -> bool:
    """A lock file of :func:`output_lock` (hidden, ``.lock`` suffix): not content of the folder."""
    return path.name.startswith(".") and path.name.endswith(".lock")


def check_output_folder(
    folder: str | os.PathLike,
    *,
    command: str,
    is_own: Callable[[Path], bool],
    overwrite: bool = False,
    inputs: Iterable[Given] = (),
    option: str = "--out",
) -> bool:
    """Check ``folder`` by the output-folder rule without changing anything; True when it holds content (which
    the command then resumes, extends or, with ``overwrite``, replaces)."""
    folder = Path(folder)
    refuse_inputs(folder, inputs, option)
    if os.path.lexists(folder) and not folder.is_dir():
        raise OutputError(f"{folder} exists and is not a folder; choose another {option}")
    existing = next((p for p in folder.absolute().parents if os.path.lexists(p)), None)
    if existing is not None and not existing.is_dir():  # known now, not when the folder is made after the work
        raise OutputError(f"{folder}: a parent of it ({existing}) is a file, not a folder; choose another {option}")
    try:
        content = sorted(p for p in folder.iterdir() if not is_lock_file(p)) if folder.is_dir() else []
    except OSError as e:
        raise OutputError(
            f"{folder}: cannot read it ({environment_reason(e) or e.strerror}); choose another {option}"
        ) from None
    if content and not overwrite and not is_own(folder):
        shown = ", ".join(p.name for p in content[:3]) + (f" and {len(content) - 3} more" if len(content) > 3 else "")
        raise OutputError(
            f"{folder} holds files that are not an earlier `{command}` output ({shown}); choose a new "
            "or empty folder, or pass --overwrite to replace its contents"
        )
    return bool(content)


@contextmanager
def output_folder(
    folder: str | os.PathLike,
    *,
    command: str,
    is_own: Callable[[Path], bool],
    overwrite: bool = False,
    inputs: Iterable[Given] = (),
    whole: bool = False,
    lock: str | None = LOCK_NAME,
    option: str = "--out",
) -> Iterator[Path]:
    """Claim ``folder`` by the output-folder rule and yield where to write.

    A command that resumes (``whole=False``) writes in place into a new, empty or earlier own folder. A
    replacement (``overwrite`` of a folder with content), and every output built whole (``whole=True``), is built
    in a temporary folder beside ``folder`` and swapped in when the block ends without an error: until then, and
    after an error or a kill, the old output is whole. ``lock`` names the lock file held in ``folder`` meanwhile
    (None: none). Dead writers' leftovers beside and inside ``folder`` are removed first.
    """
    folder = Path(folder)
    inputs = list(inputs)
    content = check_output_folder(
        folder, command=command, is_own=is_own, overwrite=overwrite, inputs=inputs, option=option
    )
    make_dir(folder.parent)
    remove_stale_temps(folder)
    staged = whole or (content and overwrite)
    if staged and overlap(Path.cwd(), folder) in ("is", "lies inside"):
        raise OutputError(
            f"{option} {folder} holds the current folder, which a replacement would move away; run "
            "the command from another folder, or choose another output"
        )
    if not staged:
        make_dir(folder)
    with output_lock(folder, lock) if lock and folder.is_dir() else nullcontext():
        if not staged:
            remove_dead_temps_in(folder)
            yield folder
            return
        try:
            work = Path(tempfile.mkdtemp(prefix=temp_prefix(folder), suffix=".tmp", dir=folder.absolute().parent))
        except OSError as e:
            raise OutputError(
                f"{folder}: cannot write beside it ({environment_reason(e) or e.strerror}); choose a writable {option}"
            ) from None
        try:
            yield work
            swap_into_place(work, folder)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise


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
def output_lock(folder: str | os.PathLike, name: str = LOCK_NAME) -> Iterator[Path]:
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
        os.pwrite(fd, info.encode(errors="backslashreplace"), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock
