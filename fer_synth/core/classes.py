"""Class lists: their order, names and the aliases people type.

This module is the single source of truth for labels. A dataset carries its :class:`ClassList` (an HDF5 file
stores the names in its ``classes`` attribute); a label index means a position in that list. Two lists are
known: FER2013's seven (:data:`FER2013`, the default everywhere) and FER+'s eight (:data:`FERPLUS`: FER2013's
seven in FER2013's order, then ``contempt``, so indices 0-6 mean the same in both). Names are mapped between
lists by name, never by index.

:data:`CLASSES`, :data:`NUM_CLASSES`, :func:`resolve`, :func:`index` and :func:`resolve_many` are FER2013's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from fer_synth.core.errors import FerError

#: FER2013's index order: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral.
CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES = len(CLASSES)

#: Every emotion this project knows, in a fixed order that never changes (prompt seeds use these positions).
EMOTIONS: tuple[str, ...] = (*CLASSES, "contempt")

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
    "contemptuous": "contempt",
    "scorn": "contempt",
}


class UnknownClassError(FerError, ValueError):
    """A class name that is neither a class of the list in use nor a known alias of one."""


class ClassList(Sequence[str]):
    """An ordered list of class names: label ``i`` means ``names[i]``.

    >>> FERPLUS.index("Contemptuous"), len(FERPLUS)
    (7, 8)
    """

    def __init__(self, name: str, names: Iterable[str]):
        self.name = name
        self.names: tuple[str, ...] = tuple(names)
        if (
            not self.names
            or len(set(self.names)) != len(self.names)
            or not all(isinstance(n, str) and n for n in self.names)
        ):
            raise ValueError(f"a class list needs distinct non-empty names, got {list(self.names)}")

    def __getitem__(self, i):  # type: ignore[override]
        return self.names[i]

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ClassList) and self.names == other.names

    def __hash__(self) -> int:
        return hash(self.names)

    def __repr__(self) -> str:
        return f"ClassList({self.name!r}, {list(self.names)})"

    def resolve(self, name: str) -> str:
        """The canonical name of ``name`` in this list (case-insensitive, aliases accepted)."""
        key = name.strip().lower()
        key = _ALIASES.get(key, key)
        if key in self.names:
            return key
        aliases = sorted(a for a, n in _ALIASES.items() if n in self.names)
        elsewhere = [known.name for known in KNOWN_LISTS if key in known.names]
        raise UnknownClassError(
            f"unknown emotion {name!r}; valid: {', '.join(self.names)} (aliases such as "
            f"{', '.join(aliases[:6])}, ... are accepted)"
            + (f"; {key} is a class of the {' and '.join(elsewhere)} class list" if elsewhere else "")
        )

    def index(self, name: str) -> int:  # type: ignore[override]
        """The label index of a class name or alias."""
        return self.names.index(self.resolve(name))

    def resolve_many(self, names: Iterable[str]) -> list[str]:
        """Resolve names (comma-separated items allowed, ``all`` = every class), keeping this list's order."""
        wanted: set[str] = set()
        for item in names:
            for part in str(item).split(","):
                if not part.strip():
                    continue
                if part.strip().lower() == "all":
                    wanted.update(self.names)
                else:
                    wanted.add(self.resolve(part))
        if not wanted:
            raise UnknownClassError(f"no emotion given; valid: {', '.join(self.names)} or all")
        return [c for c in self.names if c in wanted]


FER2013 = ClassList("fer2013", CLASSES)
FERPLUS = ClassList("ferplus", EMOTIONS)
KNOWN_LISTS: tuple[ClassList, ...] = (FER2013, FERPLUS)
#: Every known emotion, for names that need not belong to one dataset (prompt files, ``generate``).
VOCABULARY = ClassList("vocabulary", EMOTIONS)


def known_list(name: str) -> ClassList:
    """A known class list by name (``fer2013``, ``ferplus``)."""
    for known in KNOWN_LISTS:
        if known.name == name:
            return known
    raise UnknownClassError(f"unknown class list {name!r}; choose one of {', '.join(k.name for k in KNOWN_LISTS)}")


def known_list_holding(names: Iterable[str]) -> ClassList:
    """The first known list (FER2013's, then FER+'s) that holds every one of ``names``: the class list of a pool
    of generated faces, which may hold only some classes.

    >>> known_list_holding(["fear", "happy"]).name, known_list_holding(["contempt"]).name
    ('fer2013', 'ferplus')
    """
    names = set(names)
    for known in KNOWN_LISTS:
        if names <= set(known.names):
            return known
    raise UnknownClassError(f"no known class list holds {', '.join(sorted(names - set(VOCABULARY.names)))}")


def class_list(names: Iterable[str]) -> ClassList:
    """The :class:`ClassList` of these names: a known list when they are one (so it has that name), else a
    list named ``custom``."""
    names = tuple(names)
    for known in KNOWN_LISTS:
        if known.names == names:
            return known
    return ClassList("custom", names)


resolve = FER2013.resolve
index = FER2013.index
resolve_many = FER2013.resolve_many
