"""Loading learned codecs saved with ``save_pretrained``: local folders and Hub repos.

A model folder (or Hub model repo) holds ``config.json``, ``model.safetensors`` and a
model card. :class:`AutoCodec` reads ``config.json``, picks the class registered for its
``"architecture"`` and loads the weights strictly: missing or unexpected weights, wrong
shapes, unknown architectures and missing files raise :class:`ModelError`. Pickled
weights (``pytorch_model.bin``) are never loaded.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelError
from .base import CARD_METADATA_KEY, LearnedCodecModel, entropy_table_keys
from .validation import check_config, check_entropy_tables

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
PICKLE_NAMES = ("pytorch_model.bin", "model.pth", "model.pt")

# How many key names an error message lists before "and N more".
_LIST_LIMIT = 8


class AutoCodec:
    """Loads any registered learned codec; the class comes from ``config.json``.

    Example:
        >>> model = AutoCodec.from_pretrained("org/mbt2018-mean-mse-q3")  # doctest: +SKIP
    """

    def __init__(self) -> None:
        raise TypeError("use AutoCodec.from_pretrained(repo_id_or_dir)")

    @staticmethod
    def from_pretrained(
        pretrained_model_name_or_path: str | Path,
        *,
        revision: str | None = None,
        **kwargs: Any,
    ) -> LearnedCodecModel:
        """Load the model in a local folder or Hub repo (see :func:`load_pretrained`)."""
        return load_pretrained(pretrained_model_name_or_path, revision=revision, **kwargs)


def load_pretrained(
    pretrained_model_name_or_path: str | Path,
    *,
    expected_class: type | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    force_download: bool = False,
    token: str | bool | None = None,
    local_files_only: bool = False,
    map_location: str | torch.device = "cpu",
) -> LearnedCodecModel:
    """A saved model, ready to code (entropy tables loaded or computed).

    Args:
        pretrained_model_name_or_path: a local folder or a Hub repo id ("org/name").
        expected_class: when set, the folder must hold this class's architecture.
        revision: branch, tag or commit of a Hub repo (default ``main``).
        cache_dir, force_download, token, local_files_only: as for ``hf_hub_download``.
        map_location: device to load the weights on.

    Raises:
        ModelError: when the folder or repo cannot be loaded as asked.
    """
    source = str(pretrained_model_name_or_path)
    download = {
        "revision": revision,
        "cache_dir": cache_dir,
        "force_download": force_download,
        "token": token,
        "local_files_only": local_files_only,
    }
    config_path = resolve_file(source, CONFIG_NAME, **download)
    config = read_config(config_path)
    weights_path = resolve_file(source, WEIGHTS_NAME, **download)
    check_config(config, config_path, weights_path)
    model_class = model_class_for(config, expected_class)

    model = model_class.from_config(**config)
    state_dict = read_safetensors(weights_path, map_location)
    load_checked(model, state_dict, source=source)
    model.card_info = read_card_info(weights_path)
    model.to(map_location)
    model.eval()
    return model


def resolve_file(source: str, filename: str, **download: Any) -> Path:
    """Local path of ``filename`` in a model folder or (cached or downloaded) Hub repo."""
    if os.path.isdir(source):
        path = Path(source) / filename
        if not path.is_file():
            raise ModelError(_missing_file_message(source, filename, local=True))
        return path
    if _looks_like_path(source):
        raise ModelError(f"model folder {source} does not exist")

    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    revision = download.get("revision") or "main"
    try:
        return Path(hf_hub_download(repo_id=source, filename=filename, **download))
    except HFValidationError as error:
        raise ModelError(
            f"{source!r} is neither a model folder nor a valid Hub repo id ({error})"
        ) from None
    except LocalEntryNotFoundError:  # offline, or the Hub unreachable, and not cached
        raise ModelError(
            f"cannot get {filename} of Hub repo {source!r} (revision {revision}): it is not"
            " in the local Hugging Face cache and the Hub cannot be reached (offline mode or"
            " no network), and there is no local folder of that name. Download it while"
            " online, or pass a local model folder"
        ) from None
    except GatedRepoError:
        raise ModelError(f"Hub repo {source!r} is gated: accept its terms and log in") from None
    except RepositoryNotFoundError:
        raise ModelError(f"Hub model repo {source!r} not found (or it is private)") from None
    except RevisionNotFoundError:
        raise ModelError(f"Hub model repo {source!r} has no revision {revision!r}") from None
    except RemoteEntryNotFoundError:
        raise ModelError(_missing_file_message(source, filename, local=False)) from None
    except OSError as error:  # other network failures
        raise ModelError(f"cannot get {filename} of Hub repo {source!r}: {error}") from None


def _looks_like_path(source: str) -> bool:
    return (
        source.startswith((".", "/", "~"))
        or os.sep in source.replace("/", "", 1)
        or source.count("/") > 1
        or os.path.exists(source)
    )


def _missing_file_message(source: str, filename: str, *, local: bool) -> str:
    where = f"folder {source}" if local else f"Hub repo {source!r}"
    if filename == CONFIG_NAME:
        return (
            f"{where} has no {CONFIG_NAME}: it is not a model saved with save_pretrained "
            "(CompressAI checkpoints are converted with `pku-aigi models convert-compressai`)"
        )
    if local and any((Path(source) / name).exists() for name in PICKLE_NAMES):
        return (
            f"{where} has pickled weights but no {WEIGHTS_NAME}; pickles are never loaded: "
            "re-save the model with save_pretrained"
        )
    return f"{where} has no {filename}: the model folder is incomplete"


def read_config(path: Path) -> dict[str, Any]:
    """The config dict of ``config.json``, checked to name an architecture."""
    try:
        config = _json(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ModelError(f"cannot read {path}: {error}") from None
    check_config(config, path)
    return config


def _json(text: str) -> Any:
    """``json.loads`` for untrusted text: too deep nesting and numbers of thousands of
    digits are a ValueError like any other malformed JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def model_class_for(config: dict[str, Any], expected_class: type | None = None) -> type:
    """The registered class of ``config["architecture"]`` (checked against expected)."""
    from .registry import get_spec

    model_class = get_spec(config["architecture"]).model_class
    if expected_class is not None and not issubclass(model_class, expected_class):
        raise ModelError(
            f"the model is a {config['architecture']!r}, not a {expected_class.architecture!r}:"
            " load it with pku_aigi.AutoCodec.from_pretrained"
        )
    return model_class


def read_safetensors(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """The tensors of a safetensors file, or :class:`ModelError` if it is unreadable."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device=str(map_location))
    except (SafetensorError, OSError, ValueError) as error:
        raise ModelError(f"cannot read weights {path}: {error}") from None


def read_card_info(path: Path) -> dict[str, Any]:
    """The model card's inputs saved in the safetensors metadata (empty if none)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        text = (handle.metadata() or {}).get(CARD_METADATA_KEY)
    try:
        info = _json(text) if text else {}
    except ValueError as error:
        raise ModelError(
            f"the model-card metadata ({CARD_METADATA_KEY}) in {path} is unreadable "
            f"({str(error)[:100]}): re-save the model with save_pretrained"
        ) from None
    return info if isinstance(info, dict) else {}


def check_state_dict(model: torch.nn.Module, state_dict: dict, *, source: str = "") -> None:
    """Raise :class:`ModelError` unless ``state_dict`` has exactly ``model``'s keys and shapes.

    The entropy coder's tables may have any shape (they depend on the weights) and may
    be absent (``update()`` computes them).
    """
    expected = model.state_dict()
    tables = entropy_table_keys(model)
    where = f" in {source}" if source else ""
    missing = sorted(set(expected) - set(state_dict) - tables)
    unexpected = sorted(set(state_dict) - set(expected))
    problems = []
    if missing:
        problems.append(f"missing weights{where}: {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected weights{where}: {_names(unexpected)}")
    wrong = [
        f"{key} {tuple(state_dict[key].shape)} (model needs {tuple(expected[key].shape)})"
        for key in sorted(set(expected) & set(state_dict) - tables)
        if tuple(state_dict[key].shape) != tuple(expected[key].shape)
    ]
    if wrong:
        problems.append(f"weights of the wrong shape{where}: {_names(wrong)}")
    if problems:
        config = getattr(model, "config", {})
        raise ModelError(
            "; ".join(problems)
            + f". The weights do not fit {config.get('architecture') or type(model).__name__}"
            + _hparams_text(config)
            + ": check the architecture, quality and hyper-parameters in config.json"
        )


def load_checked(model: LearnedCodecModel, state_dict: dict, *, source: str = "") -> None:
    """Strictly load ``state_dict`` into ``model``; compute missing entropy tables."""
    check_state_dict(model, state_dict, source=source)
    model.load_state_dict(state_dict, strict=False)
    if not model.entropy_coder_ready():
        logger.info("entropy coder tables missing%s: computing them (update)", _at(source))
        model.update(force=True)
    check_entropy_tables(model, source)


def _at(source: str) -> str:
    return f" in {source}" if source else ""


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:_LIST_LIMIT])
    if len(names) > _LIST_LIMIT:
        shown += f" and {len(names) - _LIST_LIMIT} more"
    return shown


def _hparams_text(config: dict[str, Any]) -> str:
    hparams = {k: v for k, v in config.items() if k not in ("architecture", "metric", "lmbda")}
    if not hparams:
        return ""
    return " (" + ", ".join(f"{k}={v}" for k, v in hparams.items()) + ")"
