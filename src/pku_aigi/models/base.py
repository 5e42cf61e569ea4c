"""The base class of every learned codec: a ``torch.nn.Module`` that is also a Hub model.

:class:`LearnedCodecModel` follows CompressAI's model convention (``forward``,
``compress``, ``decompress``, ``aux_loss``, ``update``) and huggingface_hub's
``PyTorchModelHubMixin`` (``save_pretrained``, ``from_pretrained``, ``push_to_hub``).
A saved model folder holds ``model.safetensors`` (weights and the entropy coder's
tables: never a pickle), ``config.json`` (:attr:`LearnedCodecModel.config`) and a
generated model card ``README.md``.

Subclasses (one per architecture, registered in :mod:`pku_aigi.models.registry`):

- set ``architecture`` (the registered name) and, if needed, ``text_conditioned`` and
  ``pad_multiple``;
- take their hyper-parameters (e.g. ``N``, ``M``) as ``__init__`` keyword arguments;
- implement ``forward(x, text=None)``, ``compress(x, text=None)`` and
  ``decompress(strings, shape, text=None)``.

Build them with ``Cls.from_config(**config)`` (or :func:`pku_aigi.models.create`), which
fills quality, metric and lambda from the architecture's tables and records
:attr:`config`.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models import CompressionModel
from compressai.models.utils import update_registered_buffers
from huggingface_hub import PyTorchModelHubMixin

from ..errors import ModelError

# Config keys every model records besides its architecture's hyper-parameters.
_COMMON_KEYS = ("architecture", "quality", "metric", "lmbda")

# safetensors metadata key holding the model card's inputs (training, rd_points, source).
CARD_METADATA_KEY = "pku_aigi.card"

# Entropy-coder tables whose shapes depend on the trained weights (set by ``update()``).
ENTROPY_TABLES = {
    EntropyBottleneck: ("_quantized_cdf", "_offset", "_cdf_length"),
    GaussianConditional: ("_quantized_cdf", "_offset", "_cdf_length", "scale_table"),
}


def entropy_table_keys(model: torch.nn.Module) -> set[str]:
    """State-dict keys of the data-dependent entropy-coder tables of ``model``."""
    keys = set()
    for name, module in model.named_modules():
        for kind, buffers in ENTROPY_TABLES.items():
            if isinstance(module, kind):
                keys.update(f"{name}.{buffer}" if name else buffer for buffer in buffers)
    return keys


class LearnedCodecModel(
    torch.nn.Module,
    PyTorchModelHubMixin,
    library_name="pku-aigi",
    tags=["image-compression", "learned-image-compression", "pku-aigi"],
):
    """A learned image codec that loads from and saves to the Hugging Face Hub."""

    architecture: str = ""
    text_conditioned: bool = False
    pad_multiple: int = 64

    # CompressAI's implementations work for any module tree: reuse them.
    aux_loss = CompressionModel.aux_loss
    update = CompressionModel.update

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_config(cls, **config: Any) -> LearnedCodecModel:
        """An untrained model built from ``config`` (what ``config.json`` stores).

        Missing hyper-parameters come from the architecture's quality table, a missing
        ``lmbda`` from its lambda ladder for ``metric`` (default ``"mse"``).

        Raises:
            ModelError: unknown architecture, quality, metric or hyper-parameter.
        """
        from .registry import get_spec

        config = dict(config)
        architecture = config.pop("architecture", None) or cls.architecture
        if not architecture:
            raise ModelError("config has no 'architecture': cannot tell which model to build")
        spec = get_spec(architecture)
        if cls.architecture and architecture != cls.architecture:
            raise ModelError(
                f"config is for architecture {architecture!r}, not {cls.architecture!r}: "
                "load it with pku_aigi.AutoCodec"
            )
        if not cls.architecture:  # called on the base class: dispatch
            return spec.model_class.from_config(architecture=architecture, **config)

        quality = config.pop("quality", None)
        if quality is None:
            quality = spec.default_quality or max(spec.qualities)
        if not isinstance(quality, int) or isinstance(quality, bool):
            raise ModelError(f"quality must be an integer, got {quality!r}")
        hparams = spec.hyperparameters(quality)
        metric = config.pop("metric", None) or "mse"
        if spec.lambdas and metric not in spec.lambdas:
            raise ModelError(
                f"{architecture} has no metric {metric!r}: choose one of {sorted(spec.lambdas)}"
            )
        lmbda = config.pop("lmbda", None)
        if lmbda is None:
            lmbda = spec.lambdas.get(metric, {}).get(quality)
        hparams.update(config)
        _check_hyperparameters(cls, hparams)

        model = cls(**hparams)
        model.config = {
            "architecture": architecture,
            "quality": quality,
            "metric": metric,
            "lmbda": lmbda,
            **hparams,
        }
        return model

    @property
    def config(self) -> dict[str, Any]:
        """Architecture, quality, metric, lambda and hyper-parameters (``config.json``)."""
        config = self.__dict__.get("_codec_config")
        if config is None:  # built directly, not through from_config
            config = {key: None for key in _COMMON_KEYS}
            config["architecture"] = self.architecture
            self.__dict__["_codec_config"] = config
        return config

    @config.setter
    def config(self, value: dict[str, Any]) -> None:
        self.__dict__["_codec_config"] = dict(value)

    def encode_prompts(self, prompts: list[str]) -> torch.Tensor | None:
        """Prompt embeddings for text-conditioned models; ``None`` for the others."""
        return None

    # ---------------------------------------------------------------- state dicts
    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Like ``nn.Module.load_state_dict``, resizing the entropy coder's tables.

        The tables written by ``update()`` have data-dependent shapes (CompressAI's
        ``update_registered_buffers`` with the ``resize`` policy), so a fresh model can
        load them from any trained state dict.
        """
        for name, module in self.named_modules():
            for kind, buffers in ENTROPY_TABLES.items():
                if isinstance(module, kind):
                    present = [b for b in buffers if f"{name}.{b}" in state_dict]
                    if present:
                        update_registered_buffers(
                            module, name, present, state_dict, policy="resize"
                        )
        return torch.nn.Module.load_state_dict(self, state_dict, strict=strict, assign=assign)

    def entropy_coder_ready(self) -> bool:
        """True when every entropy model has its tables (``update()`` has run)."""
        state = self.state_dict()
        return all(state[key].numel() > 0 for key in entropy_table_keys(self))

    # ---------------------------------------------------------------- Hub
    def _save_pretrained(self, save_directory: Path) -> None:
        """Write ``model.safetensors``, ``config.json`` and the model card.

        Entropy-coder tables that are missing are computed (``update()``) so that a loaded
        model can code at once; existing tables are kept as they are (after training,
        call ``update(force=True)`` before saving). The card's inputs travel in the
        safetensors metadata so that loading and saving again keeps the card.
        """
        import json

        from safetensors.torch import save_file

        from .card import write_model_card

        self.update(force=False)
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        metadata = {"format": "pt", CARD_METADATA_KEY: json.dumps(getattr(self, "card_info", {}))}
        save_file(tensors, str(save_directory / "model.safetensors"), metadata=metadata)
        (save_directory / "config.json").write_text(
            json.dumps(self.config, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        write_model_card(self, save_directory, **getattr(self, "card_info", {}))

    def push_to_hub(self, repo_id: str, **kwargs: Any):
        """Upload to Hub repo ``repo_id`` (huggingface_hub's ``push_to_hub``).

        Raises:
            NetworkError: the Hub cannot be reached, or refuses the upload (one line).
        """
        from .. import network

        with network.guard(
            f"the Hub to push model repo {repo_id}",
            "The model can be saved with save_pretrained(folder) and uploaded later",
            http_errors=True,
        ):
            return super().push_to_hub(repo_id, **kwargs)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | Path,
        *,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        force_download: bool = False,
        token: str | bool | None = None,
        local_files_only: bool = False,
        map_location: str | torch.device = "cpu",
        **unused: Any,
    ) -> LearnedCodecModel:
        """Load a saved model from a local folder or a Hub repo id (strictly).

        Called on the base class (or :class:`pku_aigi.AutoCodec`) the class is picked
        from ``config.json``; called on a subclass the folder must hold that
        architecture. Only safetensors weights are read. The entropy coder is ready.

        Raises:
            ModelError: missing files, unknown architecture, missing or unexpected
                weights, or weights of the wrong shape.
        """
        from .hub import load_pretrained

        return load_pretrained(
            pretrained_model_name_or_path,
            expected_class=cls if cls.architecture else None,
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            token=token,
            local_files_only=local_files_only,
            map_location=map_location,
        )


def _check_hyperparameters(cls: type, hparams: dict[str, Any]) -> None:
    parameters = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    known = [name for name in parameters if name != "self"]
    unknown = sorted(set(hparams) - set(known))
    if unknown:
        raise ModelError(
            f"{cls.architecture} has no hyper-parameter {', '.join(unknown)}: "
            f"its hyper-parameters are {', '.join(known)}"
        )
