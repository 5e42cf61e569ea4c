"""Learned image codecs as Hugging Face Hub models.

``available()`` lists the architectures, ``create(name, quality=Q)`` builds an untrained
model, ``AutoCodec.from_pretrained(repo_or_dir)`` loads a trained one.
"""

from .registry import ArchitectureSpec, available, create, get_spec, register_architecture


def __getattr__(name):
    if name in ("AutoCodec", "LearnedCodecModel"):
        from . import base

        return getattr(base, name)
    if name == "load_zoo":
        from .zoo import load_zoo

        return load_zoo
    raise AttributeError(name)


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
