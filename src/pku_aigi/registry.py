"""Things by name: one registry type for codecs and learned architectures.

A :class:`Registry` maps a name (and its aliases) to an object registered with the
:meth:`Registry.register` decorator. It fills itself on first use by importing the
package's own modules and then any plugins another installed distribution declares in
an entry-point group (``importlib.metadata``, as ``pip install`` writes them). Lookups
ignore case and, for an unknown name, suggest the closest known ones.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import threading
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Generic, TypeVar

from .errors import PkuAigiError

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Registry(Generic[T]):
    """Objects of one kind by name.

    Args:
        kind: what is registered, for messages ("codec", "architecture").
        modules: modules that register objects when imported (imported on first use).
        entry_point_group: entry-point group of plugins from other distributions; each
            entry point's object is passed to ``load_plugin``.
        load_plugin: registers one loaded entry-point object (default: ``register``).
        error: the :class:`PkuAigiError` subclass raised for an unknown name.
        hint: appended to the unknown-name message (e.g. the command that lists names).
        order: sort key of the registered objects in :meth:`names` (default: the order
            of registration).
    """

    def __init__(
        self,
        kind: str,
        *,
        modules: tuple[str, ...] = (),
        entry_point_group: str | None = None,
        load_plugin: Callable[[str, object], None] | None = None,
        error: type[PkuAigiError] = PkuAigiError,
        hint: str = "",
        order: Callable[[T], int] | None = None,
    ):
        self.kind = kind
        self.modules = modules
        self.entry_point_group = entry_point_group
        self.load_plugin = load_plugin
        self.error = error
        self.hint = hint
        self.order = order
        self._objects: dict[str, T] = {}
        self._aliases: dict[str, str] = {}  # lower-case name or alias -> name
        self._lock = threading.RLock()
        self._loaded = False

    def register(self, obj: T | None = None, *, name: str | None = None, aliases=()):
        """Register ``obj`` under ``name`` (default ``obj.name``); usable as a decorator.

        ``aliases`` (default ``obj.aliases`` when present) are other names for it.
        """
        if obj is None:
            return lambda actual: self.register(actual, name=name, aliases=aliases)
        name = name or obj.name
        aliases = tuple(aliases) or tuple(getattr(obj, "aliases", ()))
        with self._lock:
            if name in self._objects and self._objects[name] is not obj:
                raise ValueError(f"{self.kind} name {name!r} is registered twice")
            for key in (name, *aliases):
                owner = self._aliases.get(key.lower())
                if owner is not None and owner != name:
                    raise ValueError(f"{self.kind} name {key!r} already names {owner!r}")
            self._objects[name] = obj
            for key in (name, *aliases):
                self._aliases[key.lower()] = name
        return obj

    def _load(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            for module in self.modules:
                importlib.import_module(module)
            if self.entry_point_group:
                self._load_plugins()
            self._loaded = True

    def _load_plugins(self) -> None:
        add = self.load_plugin or (lambda name, obj: self.register(obj))
        for entry_point in metadata.entry_points(group=self.entry_point_group):
            where = f"{entry_point.value} (entry point {entry_point.name!r} of {self.entry_point_group})"
            try:
                add(entry_point.name, entry_point.load())
            except Exception as error:  # noqa: BLE001 - a broken plugin must not break the rest
                logger.warning(
                    "%s plugin %s cannot be loaded: %s: %s",
                    self.kind,
                    where,
                    type(error).__name__,
                    error,
                )
                continue
            logger.debug("%s plugin loaded: %s", self.kind, where)

    def names(self) -> list[str]:
        """Every registered name, in ``order`` (default: registration order)."""
        self._load()
        if self.order is None:
            return list(self._objects)
        return sorted(self._objects, key=lambda name: self.order(self._objects[name]))

    def canonical(self, name: str) -> str:
        """The registered name for ``name`` (any case, or an alias).

        Raises:
            PkuAigiError (the registry's ``error``): unknown, with the closest names.
        """
        self._load()
        found = self._aliases.get(str(name).strip().lower())
        if found is not None:
            return found
        close = difflib.get_close_matches(str(name).lower(), list(self._aliases), n=3, cutoff=0.6)
        suggestions = list(dict.fromkeys(self._aliases[key] for key in close))
        guess = f"did you mean {' or '.join(map(repr, suggestions))}? " if suggestions else ""
        raise self.error(
            f"unknown {self.kind} {name!r}: {guess}known {self.kind}s are "
            f"{', '.join(self.names())}{self.hint}"
        )

    def get(self, name: str) -> T:
        """The object registered as ``name`` (see :meth:`canonical`)."""
        return self._objects[self.canonical(name)]

    def __contains__(self, name: str) -> bool:
        self._load()
        return str(name).strip().lower() in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
