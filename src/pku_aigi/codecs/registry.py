"""Codecs by name: ``get("vvc")``, ``names()``, ``availability()``."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from ..errors import CodecError, CodecUnavailableError
from .base import Codec

# Modules that register codecs when imported (conventional codecs; learned codecs are
# built from models with `from_model`).
_CODEC_MODULES = (
    "pku_aigi.codecs.pillow_codecs",
    "pku_aigi.codecs.jpegxl",
    "pku_aigi.codecs.ffmpeg_codecs",
)
_REGISTRY: dict[str, type[Codec]] = {}
_loaded = False


def register(cls: type[Codec]) -> type[Codec]:
    """Class decorator: make ``cls`` available as ``get(cls.name)``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"codec name {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _load() -> None:
    global _loaded
    if not _loaded:
        for module in _CODEC_MODULES:
            importlib.import_module(module)
        _loaded = True


def names() -> list[str]:
    """Names of every registered codec, available on this machine or not.

    In the order of ``_CODEC_MODULES`` (whichever module was imported first), then any
    codec registered from elsewhere.
    """
    _load()

    def order(name: str) -> int:
        module = _REGISTRY[name].__module__
        return _CODEC_MODULES.index(module) if module in _CODEC_MODULES else len(_CODEC_MODULES)

    return sorted(_REGISTRY, key=order)


def codec_class(name: str) -> type[Codec]:
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise CodecError(
            f"unknown codec {name!r}: known codecs are {', '.join(_REGISTRY)} "
            "(run `pku-aigi codecs` to see which are available here)"
        ) from None


def get(name: str, **options) -> Codec:
    """An instance of the codec ``name``; CodecUnavailableError says why it cannot run."""
    cls = codec_class(name)
    reason = cls.availability()
    if reason is not None:
        raise CodecUnavailableError(f"codec {name!r} is not available on this machine: {reason}")
    return cls(**options)


def availability() -> dict[str, str | None]:
    """``{name: None if available else reason}`` for every registered codec."""
    _load()
    return {name: _REGISTRY[name].availability() for name in names()}


def available() -> list[str]:
    return [name for name, reason in availability().items() if reason is None]


CodecFactory = Callable[..., Codec]
