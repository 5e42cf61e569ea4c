"""Convert CompressAI checkpoints (``.pth.tar``) into Hub model folders.

Reads CompressAI's published zoo checkpoints (a bare state dict) and the checkpoints of
its training script (``{"state_dict": ..., "epoch": ..., "optimizer": ...}``) with
``torch.load(weights_only=True)``, so no code in the file can run. Legacy key names are
renamed with CompressAI's own helpers: ``compressai.zoo.load_state_dict`` (DataParallel's
``module.`` prefix, ``downsample`` -> ``skip``, the entropy bottleneck's
``_biases.N``/``_matrices.N``/``_factors.N`` lists) and
``compressai.models.utils.remap_old_keys`` (``_biasN`` -> ``biases.N``). The weights are
loaded strictly and the entropy coder tables of the checkpoint are kept, so the
converted model codes exactly like CompressAI's own model built from the checkpoint.
"""

from __future__ import annotations

import logging
import pickle
import shutil
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelError
from .base import LearnedCodecModel
from .folder import entropy_table_keys, load_state

logger = logging.getLogger(__name__)

# Buffers that hold constants fixed by the constructor (GDN reparametrisation pedestals,
# lower bounds, the bottleneck's quantile targets): old checkpoints may lack them.
CONSTANT_BUFFER_SUFFIXES = (".pedestal", ".bound", ".target", ".scale_bound")

ZOO_SOURCE = (
    "Converted from CompressAI's pre-trained model zoo "
    "(https://interdigitalinc.github.io/CompressAI/zoo.html): {architecture}, quality "
    "{quality}, {metric}, checkpoint `{checkpoint}`. CompressAI trained these models on "
    "natural images (Vimeo-90k frames, 256x256 random crops), not on AI-generated images."
)


def read_compressai_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of a CompressAI checkpoint, keys renamed to current CompressAI names.

    Raises:
        ModelError: the file is missing, not a weights-only torch file, or holds no
            state dict of tensors.
    """
    from compressai.models.utils import remap_old_keys
    from compressai.zoo import load_state_dict as rename_legacy_keys

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        refused = [line.strip() for line in str(error).splitlines() if "Unsupported" in line]
        raise ModelError(
            f"cannot read checkpoint {path}: it is not a PyTorch file of tensors only. "
            "Objects other than tensors are never unpickled (weights_only=True)"
            + (f": {refused[0]}" if refused else "")
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as error:
        raise ModelError(f"cannot read checkpoint {path}: {error}") from None
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict) or not checkpoint:
        raise ModelError(f"{path} holds no state dict (a dict of weight tensors)")
    not_tensors = [k for k, v in checkpoint.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise ModelError(
            f"{path} is not a state dict: {', '.join(map(str, not_tensors[:5]))} are not tensors"
        )
    state_dict = rename_legacy_keys(checkpoint)
    marker = "entropy_bottleneck."
    modules = {k[: k.index(marker) + len(marker) - 1] for k in state_dict if marker in k}
    for module in sorted(modules):
        state_dict = remap_old_keys(module, state_dict)
    return dict(state_dict)


def fill_constant_buffers(model: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> dict:
    """Add the constructor-fixed buffers an old checkpoint lacks (from a fresh ``model``)."""
    filled = dict(state_dict)
    buffers = dict(model.named_buffers())
    added = [
        key
        for key in buffers
        if key not in state_dict
        and key not in entropy_table_keys(model)
        and key.endswith(CONSTANT_BUFFER_SUFFIXES)
    ]
    for key in added:
        filled[key] = buffers[key].detach().clone()
    if added:
        logger.info("checkpoint lacks %d constant buffers; using defaults", len(added))
    return filled


def model_from_compressai_checkpoint(
    architecture: str,
    checkpoint: str | Path,
    *,
    quality: int,
    metric: str = "mse",
    **hparams: Any,
) -> LearnedCodecModel:
    """A :class:`LearnedCodecModel` holding the weights of a CompressAI checkpoint.

    Args:
        architecture: a registered CompressAI architecture, e.g. ``"mbt2018-mean"``.
        checkpoint: path of the ``.pth.tar`` file.
        quality: CompressAI's quality index the checkpoint was trained for.
        metric: ``"mse"`` or ``"ms-ssim"``.
        hparams: overrides of the quality table (e.g. ``N`` and ``M``).

    Raises:
        ModelError: unknown architecture or quality, unreadable checkpoint, weights that
            do not fit the architecture at this quality.
    """
    from .registry import create

    model = create(architecture, quality=quality, metric=metric, **hparams)
    state_dict = fill_constant_buffers(model, read_compressai_checkpoint(checkpoint))
    load_state(model, state_dict, source=str(checkpoint))
    return model.eval()


def convert_compressai(
    architecture: str,
    checkpoint: str | Path,
    out: str | Path,
    *,
    quality: int,
    metric: str = "mse",
    force: bool = False,
    source: str | None = None,
    **hparams: Any,
) -> Path:
    """Convert a CompressAI checkpoint into a model folder (safetensors, config, card).

    Args:
        architecture, checkpoint, quality, metric, hparams: see
            :func:`model_from_compressai_checkpoint`.
        out: the model folder to write.
        force: replace ``out`` if it exists (otherwise :class:`ModelError`).
        source: text for the card's "source of the weights" (default: CompressAI zoo).

    Returns:
        The model folder.
    """
    out = Path(out)
    if out.exists() and not force:
        raise ModelError(f"{out} already exists: choose another --out or pass --force")
    if out.exists() and not out.is_dir():
        raise ModelError(f"{out} exists and is not a folder")
    model = model_from_compressai_checkpoint(
        architecture, checkpoint, quality=quality, metric=metric, **hparams
    )
    if out.exists():
        shutil.rmtree(out)
    model.card_info = {
        "source": source
        or ZOO_SOURCE.format(
            architecture=architecture,
            quality=quality,
            metric=metric,
            checkpoint=Path(checkpoint).name,
        ),
        "training": {
            "data": "Vimeo-90k (natural video frames), by CompressAI",
            "loss": f"rate + lambda * distortion ({metric})",
        },
    }
    model.save_pretrained(out)
    logger.info("wrote %s (%s, quality %d, %s)", out, architecture, quality, metric)
    return out
