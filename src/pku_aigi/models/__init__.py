"""Learned image codecs as Hugging Face Hub models.

``available()`` lists the architectures, ``create(name, quality=Q)`` builds an untrained
model, ``AutoCodec.from_pretrained(repo_or_dir)`` loads a trained one.
"""

from .registry import ArchitectureSpec, available, create, get_spec, register_architecture


def __getattr__(name):
    if name == "AutoCodec":
        from .hub import AutoCodec

        return AutoCodec
    if name == "LearnedCodecModel":
        from .base import LearnedCodecModel

        return LearnedCodecModel
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
