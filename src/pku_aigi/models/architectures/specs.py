"""Learned architectures by name: ``available()``, ``create(name, quality=Q)``.

Each architecture module registers an :class:`ArchitectureSpec`: the model class, the
quality -> hyper-parameter table and lambda ladder (CompressAI's for its models), and
the paper it implements. Other installed distributions add architectures through the
entry-point group ``pku_aigi.architectures``, whose value is an ``ArchitectureSpec`` or a
factory returning one (the same registry as the codec plugins'). ``create`` builds an untrained model whose ``config`` records
everything needed to rebuild it (what ``config.json`` stores on the Hub).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from ...errors import ModelError
from ...registry import Registry

ENTRY_POINT_GROUP = "pku_aigi.architectures"

# Modules that register architectures when imported.
_ARCHITECTURE_MODULES = ("pku_aigi.models.architectures.builtin",)


@dataclass(frozen=True)
class ArchitectureSpec:
    name: str  # e.g. "mbt2018-mean"
    model_class: type | str  # a LearnedCodecModel subclass, or "module:Class"
    paper: str  # citation line for model cards
    qualities: dict[int, dict[str, Any]]  # quality -> hyper-parameters (e.g. N, M)
    lambdas: dict[str, dict[int, float]] = field(default_factory=dict)  # metric -> q -> lambda
    default_quality: int | None = None
    text_conditioned: bool | None = None  # default: the class's attribute

    def __post_init__(self):
        if isinstance(self.model_class, str) and ":" not in self.model_class:
            raise TypeError(f"model_class {self.model_class!r} is not 'module:Class'")
        if self.text_conditioned is None:
            conditioned = not isinstance(self.model_class, str) and bool(
                getattr(self.model_class, "text_conditioned", False)
            )
            object.__setattr__(self, "text_conditioned", conditioned)

    def load_model_class(self) -> type:
        """The model class, imported on first use when given as ``"module:Class"``."""
        if not isinstance(self.model_class, str):
            return self.model_class
        module, _, name = self.model_class.partition(":")
        return getattr(importlib.import_module(module), name)

    def hyperparameters(self, quality: int | None) -> dict[str, Any]:
        if quality is None:
            quality = self.default_quality or max(self.qualities)
        if quality not in self.qualities:
            raise ModelError(
                f"{self.name} has no quality {quality}: choose one of {sorted(self.qualities)}"
            )
        return dict(self.qualities[quality])


def _add_plugin(entry_point_name: str, obj: object) -> None:
    spec = obj() if callable(obj) and not isinstance(obj, ArchitectureSpec) else obj
    if not isinstance(spec, ArchitectureSpec):
        raise TypeError(
            f"expected an ArchitectureSpec or a factory returning one, got {type(spec).__name__}"
        )
    _ARCHITECTURES.register(spec)


_ARCHITECTURES: Registry[ArchitectureSpec] = Registry(
    "architecture",
    modules=_ARCHITECTURE_MODULES,
    entry_point_group=ENTRY_POINT_GROUP,
    load_plugin=_add_plugin,
    error=ModelError,
)


def register_architecture(spec: ArchitectureSpec) -> ArchitectureSpec:
    """Make ``spec`` available as ``create(spec.name)`` (the same registry as the codecs')."""
    return _ARCHITECTURES.register(spec)


def available() -> list[str]:
    """Names of every learned architecture, e.g. ``["bmshj2018-factorized", ...]``."""
    return sorted(_ARCHITECTURES.names())


def get_spec(name: str) -> ArchitectureSpec:
    """The spec registered as ``name`` (any case); ModelError naming the closest ones."""
    return _ARCHITECTURES.get(name)


def create(name: str, quality: int | None = None, **hparams: Any):
    """An untrained model of architecture ``name`` at ``quality``.

    ``hparams`` override the quality table (e.g. ``N=64`` for a tiny test model);
    ``metric`` ("mse" or "ms-ssim") and ``lmbda`` are recorded in the config.
    """
    spec = get_spec(name)
    config = spec.hyperparameters(quality)
    config.update(hparams)
    return spec.load_model_class().from_config(architecture=spec.name, quality=quality, **config)
