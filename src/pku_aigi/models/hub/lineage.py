"""Lineage of fine-tuned models: which weights a model started from.

A model fine-tuned by ``pku-aigi train --init`` records its base in ``config.json``
under :data:`LINEAGE_KEY` (the name of the Hub's model-card field for fine-tunes,
``base_model``, which links the model tree on the Hub)::

    "base_model": {"repo_id": "pku-aigi/mbt2018-mean-mse-q3", "revision": null,
                   "weights_sha256": "<sha256 of the base's parameters>",
                   "steps": 20000, "data": "PKU-AIGI-500K train split, mj52 x4 per epoch"}

``repo_id`` and ``revision`` name a Hub or zoo model; a base that was a CompressAI
checkpoint is named by ``checkpoint`` and its file's ``sha256``; a local folder by
its name. ``weights_sha256`` (:func:`weights_digest`) identifies the base whatever it
was loaded from, so a benchmark pairs a fine-tuned model with its base even when the
base was converted again or copied.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from ...errors import ModelError

LINEAGE_KEY = "base_model"
# Keys of the lineage record and the types they take (None is allowed for each).
LINEAGE_FIELDS: dict[str, type | tuple] = {
    "repo_id": str,
    "revision": str,
    "checkpoint": str,
    "sha256": str,
    "folder": str,
    "weights_sha256": str,
    "steps": int,
    "data": str,
    "lmbda": (int, float),
}
MAX_TEXT = 4096


def weights_digest(model) -> str:
    """SHA-256 (hex) over the names, dtypes, shapes and values of ``model``'s
    parameters: the learned weights, without the entropy coder's tables (buffers that
    ``update()`` recomputes) or a frozen text encoder outside the parameters."""
    import torch

    digest = hashlib.sha256()
    for name, parameter in sorted(model.named_parameters()):
        tensor = parameter.detach().cpu().contiguous()
        digest.update(f"\0{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def check_lineage(value: Any, where: str) -> dict[str, Any]:
    """``value`` if it is a lineage record :data:`LINEAGE_FIELDS` describes, else
    ModelError naming ``where`` (a ``config.json`` comes from anywhere)."""
    if not isinstance(value, dict):
        raise ModelError(
            f"{where}: {LINEAGE_KEY!r} must be a JSON object such as "
            '{"repo_id": "org/name", "steps": 1000}, not ' + type(value).__name__
        )
    unknown = sorted(set(value) - set(LINEAGE_FIELDS))
    if unknown:
        raise ModelError(
            f"{where}: {LINEAGE_KEY!r} has unknown keys {', '.join(map(repr, unknown))}: "
            f"it takes {', '.join(LINEAGE_FIELDS)}"
        )
    for key, kind in LINEAGE_FIELDS.items():
        item = value.get(key)
        if item is None:
            continue
        wrong = not isinstance(item, kind) or isinstance(item, bool)
        if isinstance(item, str):
            wrong = wrong or len(item) > MAX_TEXT
        elif isinstance(item, float):
            wrong = wrong or not math.isfinite(item)
        if wrong:
            raise ModelError(f"{where}: {LINEAGE_KEY}.{key} has the wrong type or size")
    return dict(value)


def describe(lineage: dict[str, Any]) -> str:
    """The base in words: ``org/name at revision R``, ``checkpoint F (sha256 S)``..."""
    if lineage.get("repo_id"):
        revision = lineage.get("revision")
        return lineage["repo_id"] + (f" at revision {revision}" if revision else "")
    if lineage.get("checkpoint"):
        return f"checkpoint {lineage['checkpoint']} (sha256 {lineage.get('sha256')})"
    if lineage.get("folder"):
        return f"the model folder {lineage['folder']}"
    return f"weights with sha256 {lineage.get('weights_sha256')}"


def hub_base_model(lineage: dict[str, Any] | None) -> str | None:
    """The model card's ``base_model`` value: the base's Hub repo id, when it has one
    (the Hub links only repo ids; a checkpoint's sha256 is in the card's text)."""
    return (lineage or {}).get("repo_id") or None
