"""The seven FER2013 classes: their order, names and the aliases people type.

This module is the single source of truth for labels. Everything that stores or reads a label index
uses :data:`CLASSES`; everything that reads a name from a user goes through :func:`resolve`.
"""

from __future__ import annotations

from collections.abc import Iterable

from fer_synth.core.errors import FerError

#: FER2013's index order: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral.
CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES = len(CLASSES)

_ALIASES: dict[str, str] = {
    "anger": "angry",
    "mad": "angry",
    "disgusted": "disgust",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "happiness": "happy",
    "joy": "happy",
    "sadness": "sad",
    "surprised": "surprise",
    "calm": "neutral",
    "neutrality": "neutral",
}


class UnknownClassError(FerError, ValueError):
    """A class name that is neither a FER2013 class nor a known alias."""


def resolve(name: str) -> str:
    """Return the canonical class name for ``name`` (case-insensitive, aliases accepted).

    >>> resolve("Fearful")
    'fear'
    """
    key = name.strip().lower()
    if key in CLASSES:
        return key
    if key in _ALIASES:
        return _ALIASES[key]
    raise UnknownClassError(
        f"unknown emotion {name!r}; valid: {', '.join(CLASSES)} (aliases such as "
        f"{', '.join(sorted(_ALIASES)[:6])}, ... are accepted)"
    )


def index(name: str) -> int:
    """Return the FER2013 label index of a class name or alias."""
    return CLASSES.index(resolve(name))


def resolve_many(names: Iterable[str]) -> list[str]:
    """Resolve names (comma-separated items allowed, ``all`` = every class), keeping FER2013 order."""
    wanted: set[str] = set()
    for item in names:
        for part in str(item).split(","):
            if not part.strip():
                continue
            if part.strip().lower() == "all":
                wanted.update(CLASSES)
            else:
                wanted.add(resolve(part))
    if not wanted:
        raise UnknownClassError(f"no emotion given; valid: {', '.join(CLASSES)} or all")
    return [c for c in CLASSES if c in wanted]
