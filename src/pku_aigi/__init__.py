"""pku-aigi: PKU-AIGI-500K on the Hugging Face Hub.

The dataset (``load_dataset``), learned and conventional codecs behind one interface
(``codecs``, ``AutoCodec``, ``models``), the paper's rate-distortion benchmark (``bench``),
training (``train``) and a Gradio Space.

Duan, Ma, Liu, Jia. "PKU-AIGI-500K: A Neural Compression Benchmark and Model for
AI-Generated Images." IEEE JETCAS, 2024.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import PkuAigiError

__version__ = "0.1.0"

# Submodules and names are imported on first use so that `import pku_aigi` and the CLI's
# `--help` stay fast (torch, datasets and gradio take seconds to import).
_LAZY_ATTRS = {
    "load_dataset": ("pku_aigi.data", "load_dataset"),
    "AutoCodec": ("pku_aigi.models", "AutoCodec"),
}
_LAZY_MODULES = {"codecs", "models", "data", "bench", "train", "metrics", "subsets"}

if TYPE_CHECKING:  # pragma: no cover
    from . import bench, codecs, data, metrics, models, subsets, train  # noqa: F401
    from .data import load_dataset  # noqa: F401
    from .models import AutoCodec  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _LAZY_ATTRS:
        module_name, attr = _LAZY_ATTRS[name]
        return getattr(importlib.import_module(module_name), attr)
    if name in _LAZY_MODULES:
        return importlib.import_module(f"pku_aigi.{name}")
    raise AttributeError(f"module 'pku_aigi' has no attribute {name!r}")


__all__ = ["PkuAigiError", "__version__", "load_dataset", "AutoCodec"] + sorted(_LAZY_MODULES)
