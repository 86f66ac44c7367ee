"""The errors that mean "the user asked for something that cannot be done", as opposed to bugs.

The command lines print a :class:`FerError` as one line (``Error: ...``) and exit with code 2; any other
exception is a bug and keeps its traceback. Each message names the problem and the fix. The subclasses also
derive from the built-in error a caller would naturally catch (a missing file is a ``FileNotFoundError``).
"""


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
