"""The error type for bad user input: the command lines print its message on one line and exit non-zero."""


class FerError(Exception):
    """A problem with what the user asked for; the message names the problem and the fix."""
