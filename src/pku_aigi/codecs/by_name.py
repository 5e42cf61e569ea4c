"""Codecs by name: ``get("vvc")``, ``names()``, ``availability()``, ``identify(data)``.

The package's conventional codecs register themselves with :func:`register`; other
installed distributions add codecs through the entry-point group ``pku_aigi.codecs``,
whose value is a :class:`~pku_aigi.codecs.base.Codec` subclass (``module:CodecClass``)
or a factory (any callable returning a ``Codec``, registered under the entry point's
name). Names ignore case and accept aliases (``JPEG``, ``jpg``, ``h265``); an unknown name
suggests the closest ones. Learned codecs are built from models (``from_model``) or
grouped from the zoo (:mod:`.families`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePath

from ..errors import CodecError, CodecUnavailableError
from ..registry import Registry
from .base import Codec

ENTRY_POINT_GROUP = "pku_aigi.codecs"


def _module_rank(module: str) -> int:
    return _CODEC_MODULES.index(module) if module in _CODEC_MODULES else len(_CODEC_MODULES)


def _add_plugin(entry_point_name: str, obj: object) -> None:
    if isinstance(obj, type) and issubclass(obj, Codec):
        _CODECS.register(obj)
    elif callable(obj):
        _CODECS.register(obj, name=entry_point_name)
    else:
        raise TypeError(f"expected a Codec subclass or a factory, got {type(obj).__name__}")


_CODEC_MODULES = (
    "pku_aigi.codecs.pillow_codecs",
    "pku_aigi.codecs.jpegxl",
    "pku_aigi.codecs.ffmpeg_codecs",
)
_CODECS: Registry[type[Codec] | Callable[..., Codec]] = Registry(
    "codec",
    modules=_CODEC_MODULES,
    entry_point_group=ENTRY_POINT_GROUP,
    load_plugin=_add_plugin,
    error=CodecError,
    hint=" (run `pku-aigi codecs` to see which are available here)",
    # The package's codecs in the order of their modules (whichever was imported
    # first), then plugins.
    order=lambda entry: _module_rank(getattr(entry, "__module__", "")),
)
_probes: dict[str, Codec | type[Codec] | None] = {}


def register(cls: type[Codec]) -> type[Codec]:
    """Class decorator: make ``cls`` available as ``get(cls.name)`` (and its aliases)."""
    return _CODECS.register(cls)


def names() -> list[str]:
    """Names of every registered codec, available on this machine or not.

    The package's codecs first (in the order of their modules), then plugins.
    """
    return _CODECS.names()


def canonical_name(name: str) -> str:
    """The registered name for ``name`` in any case or an alias; CodecError if unknown."""
    return _CODECS.canonical(name)


def is_known(name: str) -> bool:
    """True if ``name`` (any case, or an alias) names a registered codec."""
    return name in _CODECS


def codec_class(name: str) -> type[Codec] | Callable[..., Codec]:
    """The class (or plugin factory) registered as ``name``."""
    return _CODECS.get(name)


def _availability_of(entry) -> str | None:
    check = getattr(entry, "availability", None)
    return check() if check is not None else None


def get(name: str, **options) -> Codec:
    """An instance of the codec ``name``; CodecUnavailableError says why it cannot run."""
    name = canonical_name(name)
    entry = _CODECS.get(name)
    reason = _availability_of(entry)
    if reason is not None:
        raise CodecUnavailableError(f"codec {name!r} is not available on this machine: {reason}")
    codec = entry(**options)
    if not isinstance(codec, Codec):
        raise CodecError(f"the plugin {name!r} made a {type(codec).__name__}, not a Codec")
    return codec


def availability() -> dict[str, str | None]:
    """``{name: None if available else reason}`` for every registered codec."""
    return {name: _availability_of(_CODECS.get(name)) for name in names()}


def available() -> list[str]:
    return [name for name, reason in availability().items() if reason is None]


def _probe(name: str):
    """What answers ``matches`` and ``file_extension`` for ``name`` (None: cannot run)."""
    if name not in _probes:
        entry = _CODECS.get(name)
        if isinstance(entry, type):
            _probes[name] = entry
        else:  # a plugin factory: ask an instance
            try:
                _probes[name] = get(name)
            except Exception:  # noqa: BLE001 - a codec that cannot be built identifies nothing
                _probes[name] = None
    return _probes[name]


def identify(data: bytes, path: str | PurePath | None = None) -> list[str]:
    """Registered codecs that may have written ``data``, most likely first.

    Codecs whose file signature matches come first, then codecs whose file extension is
    the one of ``path`` (signatures are checked on the bytes, so a file saved under
    another extension is still recognised).
    """
    suffix = PurePath(path).suffix.lower() if path is not None else ""
    by_bytes, by_name = [], []
    for name in names():
        probe = _probe(name)
        if probe is None:
            continue
        if probe.matches(data):
            by_bytes.append(name)
        elif suffix and probe.file_extension.lower() == suffix:
            by_name.append(name)
    return by_bytes + by_name
