"""A named registry of factories: ``@REGISTRY.register("name")`` adds one, ``REGISTRY.get(name)`` finds it.

Detector backends and training losses use it, so that choosing one is a lookup, never an if-chain.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from fer_synth.core.errors import FerError

T = TypeVar("T")


class Registry(Generic[T]):
    """Factories of one ``kind`` (used in messages) by name; an unknown name raises ``error`` listing them."""

    def __init__(self, kind: str, error: type[Exception] = FerError):
        self.kind = kind
        self.error = error
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = item
            return item

        return add

    def get(self, name: str) -> T:
        if name not in self._items:
            raise self.error(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}")
        return self._items[name]

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._items)
