"""The errors that mean "the user asked for something that cannot be done", as opposed to bugs.

The command lines print a :class:`FerError` as one line (``Error: ...``) and exit with code 2; any other
exception is a bug and keeps its traceback. Each message names the problem and the fix. The subclasses also
derive from the built-in error a caller would naturally catch (a missing file is a ``FileNotFoundError``).
"""

from __future__ import annotations

import errno
import re


class FerError(Exception):
    """A problem with what the user asked for; the message names the problem and the fix."""


class MissingPathError(FerError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class InvalidOptionError(FerError, ValueError):
    """An option value outside what the function accepts."""


class DatasetError(FerError):
    """A dataset path that cannot be read as any supported layout."""


class SplitNotFoundError(FerError, KeyError):
    """A dataset has no split of the requested name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class OutputError(FerError):
    """An output location that cannot, or must not, be written."""


#: OS errors that mean "this machine or place cannot do it", not a bug: each becomes one clear line.
ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EIO: "an input/output error of the disk",
    errno.EMFILE: "too many open files (ulimit -n)",
    errno.ENFILE: "too many open files",
    errno.ENOMEM: "out of memory",
    errno.ENAMETOOLONG: "the file name is too long",
    errno.ELOOP: "too many levels of symbolic links",
}
# Native writers (safetensors, HDF5) report the OS error inside their message only.
_ERRNO_IN_TEXT = re.compile(r"(?:os error|errno =?)\s*(\d+)", re.IGNORECASE)


def environment_errno(error: BaseException) -> int | None:
    """The errno of an OS error, also one that a native library wrapped in its message; None for other errors."""
    number = getattr(error, "errno", None)
    if isinstance(number, int):
        return number
    match = _ERRNO_IN_TEXT.search(str(error))
    return int(match.group(1)) if match else None


# What PyTorch's and OpenCV's allocators raise (a RuntimeError, a cv2.error) when memory runs out.
_NO_MEMORY_TEXT = re.compile(
    r"can't allocate memory|cannot allocate memory|insufficient memory|out of memory", re.IGNORECASE
)


def environment_reason(error: BaseException) -> str | None:
    """Why the environment refused (``the disk is full``, ``out of memory``, ...), or None when ``error`` is not
    such a refusal (and so may be a bug)."""
    if isinstance(error, MemoryError) or (isinstance(error, RuntimeError) and _NO_MEMORY_TEXT.search(str(error))):
        return "out of memory"
    return ENVIRONMENT_ERRNOS.get(environment_errno(error))
