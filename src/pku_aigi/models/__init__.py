"""Learned image codecs as Hugging Face Hub models.

``available()`` lists the architectures, ``create(name, quality=Q)`` builds an untrained
model, ``AutoCodec.from_pretrained(repo_or_dir)`` loads a trained one.

The package by concern:

- :mod:`.architectures`: the architecture registry (:mod:`.architectures.specs`) and
  the model classes that register themselves in it;
- :mod:`.coding`: deterministic entropy coding and the memory engine (bands, pixels,
  the rANS guard);
- :mod:`.hub`: the model-folder format (:mod:`.hub.folder`), its checks and the card;
- :mod:`.base`: :class:`LearnedCodecModel` and :class:`AutoCodec`;
- :mod:`.zoo`: the model zoo and CompressAI conversion;
- :mod:`.cli`: ``pku-aigi models``.

Imports go one way (``tests/test_imports.py`` finds no circle): the registry and
:mod:`.coding` at the bottom, :mod:`.hub` on the registry, :mod:`.base` on those, the
architecture classes on :mod:`.base`, and :mod:`.zoo` above everything.

Importing this package imports no model code (torch, CompressAI); it registers the zoo as
a source resolver of the folder loader, so that ``from_pretrained(zoo_id)`` resolves
through the zoo, which is imported when a name is first resolved.
"""

from .architectures.specs import (
    ArchitectureSpec,
    available,
    create,
    get_spec,
    register_architecture,
)
from .hub.folder import register_source_resolver


def _zoo_folder(source: str, **options):
    """The folder of zoo id ``source``, None for other names (:func:`.zoo.zoo_folder`)."""
    from .zoo.fetch import zoo_folder

    return zoo_folder(source, **options)


register_source_resolver(_zoo_folder)


def __getattr__(name):
    if name in ("AutoCodec", "LearnedCodecModel"):
        from . import base

        return getattr(base, name)
    if name == "load_zoo":
        from .zoo.manifest import load_zoo

        return load_zoo
    if name in _SUBPACKAGES:  # pku_aigi.models.zoo etc. without importing them first
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(name)


_SUBPACKAGES = ("architectures", "base", "cli", "coding", "hub", "zoo")


__all__ = [
    "ArchitectureSpec",
    "AutoCodec",
    "LearnedCodecModel",
    "available",
    "create",
    "get_spec",
    "load_zoo",
    "register_architecture",
]
