"""Name → object registries, filled by decorators (timm style).

The names users type (``--algo darts``, ``--rule argmax``, ``--dataset digits``) map to
classes or functions here, so adding an algorithm means adding one file.
"""

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from nasforge.errors import NasforgeError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of entries; unknown names raise :class:`NasforgeError`."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' registered twice")
            self._entries[name] = entry
            return entry

        return add

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise NasforgeError(
                f"unknown {self.kind} '{name}'; choose from: {', '.join(self.names())}"
            )
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
