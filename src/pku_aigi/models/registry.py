"""Learned architectures by name: ``available()``, ``create(name, quality=Q)``.

Each architecture module registers an :class:`ArchitectureSpec`: the model class, the
quality -> hyper-parameter table and lambda ladder (CompressAI's for its models), and
the paper it implements. ``create`` builds an untrained model whose ``config`` records
everything needed to rebuild it (what ``config.json`` stores on the Hub).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from ..errors import ModelError

# Modules that register architectures when imported.
_ARCHITECTURE_MODULES = (
    "pku_aigi.models.compressai_archs",
    "pku_aigi.models.tcm",
    "pku_aigi.models.catc",
)


@dataclass(frozen=True)
class ArchitectureSpec:
    name: str  # e.g. "mbt2018-mean"
    model_class: type  # a LearnedCodecModel subclass
    paper: str  # citation line for model cards
    qualities: dict[int, dict[str, Any]]  # quality -> hyper-parameters (e.g. N, M)
    lambdas: dict[str, dict[int, float]] = field(default_factory=dict)  # metric -> q -> lambda
    default_quality: int | None = None

    def hyperparameters(self, quality: int | None) -> dict[str, Any]:
        if quality is None:
            quality = self.default_quality or max(self.qualities)
        if quality not in self.qualities:
            raise ModelError(
                f"{self.name} has no quality {quality}: choose one of {sorted(self.qualities)}"
            )
        return dict(self.qualities[quality])


_REGISTRY: dict[str, ArchitectureSpec] = {}
_loaded = False


def register_architecture(spec: ArchitectureSpec) -> ArchitectureSpec:
    if spec.name in _REGISTRY and _REGISTRY[spec.name] is not spec:
        raise ValueError(f"architecture {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def _load() -> None:
    global _loaded
    if _loaded:
        return
    for module in _ARCHITECTURE_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:  # an architecture module not written yet
            if error.name != module:
                raise
    _loaded = True


def available() -> list[str]:
    """Names of every learned architecture, e.g. ``["bmshj2018-factorized", ...]``."""
    _load()
    return sorted(_REGISTRY)


def get_spec(name: str) -> ArchitectureSpec:
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModelError(
            f"unknown architecture {name!r}: available architectures are {', '.join(available())}"
        ) from None


def create(name: str, quality: int | None = None, **hparams: Any):
    """An untrained model of architecture ``name`` at ``quality``.

    ``hparams`` override the quality table (e.g. ``N=64`` for a tiny test model);
    ``metric`` ("mse" or "ms-ssim") and ``lmbda`` are recorded in the config.
    """
    spec = get_spec(name)
    config = spec.hyperparameters(quality)
    config.update(hparams)
    return spec.model_class.from_config(architecture=name, quality=quality, **config)
