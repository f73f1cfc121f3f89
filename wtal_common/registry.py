"""A name -> object table for everything a config or command line selects by name.

Base methods, prior-generation backends, ingest formats and MLLM4WTAL plug-ins are each a
:class:`Registry`: implementations add themselves with the ``@registry.register(name)``
decorator, and callers look a name up with ``registry[name]``.  An unknown name is a
:class:`~wtal_common.errors.ConfigError` (exit 2) whose message lists the valid names, so
every stage reports a typo the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Objects registered under unique names, in registration order.

    ``kind`` says what is registered ("base method"); ``field`` is the config field or
    option that names one ("--backend", "config 'method'"), used in the lookup error.
    """

    def __init__(self, kind: str, field: str | None = None) -> None:
        self.kind = kind
        self.field = field
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated object under ``name`` and return it unchanged.

        Registering a name twice is a bug in the code (two implementations claim one
        name), not a user error, so it raises a plain ``ValueError`` at import time.
        """

        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' registered twice")
            self._entries[name] = obj
            return obj

        return decorator

    def unregister(self, name: str) -> None:
        """Remove ``name`` (a test that registered a toy implementation cleans up with it)."""
        del self._entries[name]

    def names(self) -> tuple[str, ...]:
        """The registered names, in registration order."""
        return tuple(self._entries)

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):  # TypeError: an unhashable value from a config file
            where = f"{self.field}: " if self.field else ""
            valid = ", ".join(self._entries) or "(none registered)"
            raise ConfigError(f"{where}unknown {self.kind} {name!r}; choose one of: {valid}") from None

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._entries
        except TypeError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={list(self._entries)})"
