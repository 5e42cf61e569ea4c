"""The model-folder format: what ``save_pretrained`` writes and ``from_pretrained`` reads.

A model folder (or Hub model repo) holds exactly:

- ``config.json``: the model's ``config`` (architecture, quality, metric, lambda and
  hyper-parameters);
- ``model.safetensors``: the weights and the entropy coder's tables (never a pickle),
  with the model card's inputs (:attr:`LearnedCodecModel.card_info`) as JSON in the
  metadata key ``pku_aigi.card``, so that a loaded model saves the same card again;
- ``README.md``: the model card (:mod:`.card`).

Loading is strict: unknown architectures, missing files, pickles only, and missing,
unexpected or wrong-shape weights raise :class:`ModelError`. A repo id resolves through
huggingface_hub's cache (offline too). Everything that is read passes
:func:`check_config`, :func:`check_weights_fit` (the weights' shapes, from the file's
header, against those of the model on the meta device) and :func:`check_state_dict`
before a model is built from it or loaded: add new checks of loaded data there. ``config.json`` is read here only (:func:`read_config`,
once per load), and the file names above are this module's.

A name that is not a local folder is first offered to the registered source resolvers
(:func:`register_source_resolver`): the model zoo registers one for its ids, so that the
loaders never import the zoo.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import ModelError
from . import validation
from .lineage import LINEAGE_KEY

if TYPE_CHECKING:  # torch and CompressAI are imported where weights are handled: the zoo
    import torch  # and the Space's start-up read this format's names without model code

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
PICKLE_NAMES = ("pytorch_model.bin", "model.pth", "model.pt")

# Keywords of from_pretrained that say where and how to download (hf_hub_download's).
DOWNLOAD_OPTIONS = ("revision", "cache_dir", "force_download", "token", "local_files_only")

# safetensors metadata key holding the model card's inputs (training, rd_points, source).
CARD_METADATA_KEY = "pku_aigi.card"

# Entropy-coder tables whose shapes depend on the trained weights (set by ``update()``),
# by the name of CompressAI's entropy model that holds them (see :func:`entropy_tables`).
ENTROPY_TABLE_BUFFERS = {
    "EntropyBottleneck": ("_quantized_cdf", "_offset", "_cdf_length"),
    "GaussianConditional": ("_quantized_cdf", "_offset", "_cdf_length", "scale_table"),
}

# How many key names an error message lists before "and N more".
_LIST_LIMIT = 8


# --------------------------------------------------------------------------- saving
def save_folder(model, directory: Path) -> None:
    """Write ``model.safetensors`` and ``config.json`` of ``model`` into ``directory``.

    Entropy-coder tables that are missing are computed (``update()``) so that a loaded
    model codes at once; existing tables are kept as they are.
    """
    from safetensors.torch import save_file

    model.update(force=False)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    metadata = {"format": "pt", CARD_METADATA_KEY: json.dumps(model.card_info)}
    save_file(tensors, str(directory / WEIGHTS_NAME), metadata=metadata)
    (directory / CONFIG_NAME).write_text(
        json.dumps(model.config, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )


# --------------------------------------------------------------------------- sources
# A resolver maps a name given to from_pretrained onto the model folder it stands for,
# or returns None for names it does not know: ``resolver(source, token=...,
# force_download=...) -> folder | None``. The model zoo registers one (when
# ``pku_aigi.models`` is imported), so that this module and the loaders above it never
# import the zoo.
SourceResolver = Callable[..., "str | os.PathLike | None"]
_source_resolvers: list[SourceResolver] = []


def register_source_resolver(resolver: SourceResolver) -> SourceResolver:
    """Ask ``resolver`` about every name that is neither a local folder nor pinned to a
    ``revision`` before it is taken for a Hub repo id (once per resolver)."""
    if resolver not in _source_resolvers:
        _source_resolvers.append(resolver)
    return resolver


def resolve_source(
    source: str,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    force_download: bool = False,
) -> str:
    """The folder the first registered resolver finds for ``source``, else ``source``
    itself (a local folder or a Hub repo id); a resolver's ModelError propagates."""
    if revision is not None or os.path.isdir(source):
        return source
    for resolver in _source_resolvers:
        found = resolver(source, token=token, force_download=force_download)
        if found is not None:
            return str(found)
    return source


# --------------------------------------------------------------------------- loading
def load_folder(
    source: str,
    *,
    expected_class: type | None = None,
    map_location: str | torch.device = "cpu",
    **download: Any,
):
    """The model saved in folder or Hub repo ``source``, ready to code.

    Args:
        source: a local folder or a Hub repo id ("org/name").
        expected_class: when set, the folder must hold this class's architecture.
        map_location: device to load the weights on.
        download: ``revision``, ``cache_dir``, ``force_download``, ``token`` and
            ``local_files_only``, as for ``hf_hub_download``.

    Raises:
        ModelError: when the folder or repo cannot be loaded as asked.
    """
    config = load_config(source, **download)
    model_class = model_class_for(config, expected_class)
    weights_path = resolve_file(source, WEIGHTS_NAME, **download)
    validation.check_config(config, f"{source}/{CONFIG_NAME}", weights_path)
    check_weights_fit(model_class, config, weights_path, source=source)
    model = model_class.from_config(**config)
    load_state(model, read_safetensors(weights_path, map_location), source=source)
    model.card_info = read_card_info(weights_path)
    model.to(map_location)
    model.eval()
    return model


def load_config(source: str, **download: Any) -> dict[str, Any]:
    """The checked ``config.json`` of folder or Hub repo ``source``."""
    path = resolve_file(source, CONFIG_NAME, **download)
    return check_config(read_config(path), path)


def resolve_file(source: str, filename: str, **download: Any) -> Path:
    """Local path of ``filename`` in a model folder or (cached or downloaded) Hub repo."""
    if os.path.isdir(source):
        path = Path(source) / filename
        if not path.is_file():
            raise ModelError(_missing_file_message(source, filename, local=True))
        return path
    from huggingface_hub import hf_hub_download

    with hub_errors(source, filename, download.get("revision")):
        return Path(hf_hub_download(repo_id=source, filename=filename, **download))


@contextlib.contextmanager
def hub_errors(source: str, filename: str = CONFIG_NAME, revision: str | None = None):
    """Turn what ``hf_hub_download`` raises for ``source`` into one clear ModelError."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from ... import network

    revision = revision or "main"
    if not os.path.isdir(source) and _looks_like_path(source):
        raise ModelError(f"model folder {source} does not exist")
    try:
        with network.guard(f"Hub repo {source!r}", "Pass a local model folder instead"):
            try:
                yield
            except LocalEntryNotFoundError as error:  # offline or unreachable, not cached
                raise ModelError(
                    f"cannot get {filename} of Hub repo {source!r} (revision {revision}): it"
                    f" is not in the local Hugging Face cache and {network.why_offline(error)},"
                    " and there is no local folder of that name. Download it once with network"
                    " access, or pass a local model folder (to work offline without waiting"
                    " for the network, set HF_HUB_OFFLINE=1)"
                ) from None
    except HFValidationError as error:
        raise ModelError(
            f"{source!r} is neither a model folder nor a valid Hub repo id ({error})"
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
    """The JSON object of ``config.json``."""
    try:
        config = _json(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ModelError(f"cannot read {path}: {error}") from None
    if not isinstance(config, dict):
        raise ModelError(f"{path} must hold a JSON object, not {type(config).__name__}")
    return config


def _json(text: str) -> Any:
    """``json.loads`` for untrusted text: too deep nesting and numbers of thousands of
    digits are a ValueError like any other malformed JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def check_config(config: dict[str, Any], path: Path | str = CONFIG_NAME) -> dict[str, Any]:
    """``config`` (read from ``path``) if a model can be built from it: types and ranges
    of every value (:func:`.validation.check_config`; ``from_config`` checks the rest)."""
    validation.check_config(config, path)
    return config


def model_class_for(config: dict[str, Any], expected_class: type | None = None) -> type:
    """The registered class of ``config["architecture"]`` (checked against expected)."""
    from ..architectures.specs import get_spec

    model_class = get_spec(config["architecture"]).load_model_class()
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
    """The model card's inputs saved in the safetensors metadata (empty if none), of the
    types :func:`.validation.check_card_info` takes."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        text = (handle.metadata() or {}).get(CARD_METADATA_KEY)
    try:
        return validation.check_card_info(_json(text) if text else {})
    except (ValueError, ModelError) as error:
        raise ModelError(
            f"the model-card metadata ({CARD_METADATA_KEY}) in {path} is unreadable "
            f"({str(error)[:200]}): re-save the model with save_pretrained"
        ) from None


# --------------------------------------------------------------------------- state dicts
@functools.cache
def entropy_tables() -> dict[type, tuple[str, ...]]:
    """``{CompressAI entropy model class: its data-dependent table buffers}``."""
    from compressai import entropy_models

    return {getattr(entropy_models, name): tables for name, tables in ENTROPY_TABLE_BUFFERS.items()}


def entropy_table_keys(model: torch.nn.Module) -> set[str]:
    """State-dict keys of the data-dependent entropy-coder tables of ``model``."""
    keys = set()
    for name, module in model.named_modules():
        for kind, buffers in entropy_tables().items():
            if isinstance(module, kind):
                keys.update(f"{name}.{buffer}" if name else buffer for buffer in buffers)
    return keys


def resize_entropy_tables(model: torch.nn.Module, state_dict: dict) -> None:
    """Give ``model``'s entropy tables the shapes of those in ``state_dict``.

    The tables written by ``update()`` have data-dependent shapes (CompressAI's
    ``update_registered_buffers`` with the ``resize`` policy).
    """
    from compressai.models.utils import update_registered_buffers

    for name, module in model.named_modules():
        for kind, buffers in entropy_tables().items():
            if isinstance(module, kind):
                present = [b for b in buffers if f"{name}.{b}" in state_dict]
                if present:
                    update_registered_buffers(module, name, present, state_dict, policy="resize")


def check_weights_fit(
    model_class: type, config: dict[str, Any], weights_path: Path, *, source: str = ""
) -> None:
    """Raise :class:`ModelError` unless ``weights_path`` holds exactly the tensors, of
    exactly the shapes, of the model ``config`` builds.

    The model is built on PyTorch's meta device (no memory) and compared with the shapes
    in the safetensors header (the data is not read), so a config never builds a model
    larger than its weights file (a tensor of shape (4096, 0) holds no bytes).
    """
    import torch

    try:
        with torch.device("meta"), _meta_inputs()():
            shell = model_class.from_config(**config)
    except ModelError:
        raise
    except Exception as error:  # noqa: BLE001 - a model class that cannot build on meta
        raise ModelError(
            f"cannot check the weights of {source or 'the model'} before building it: "
            f"{model_class.__name__} does not build on PyTorch's meta device ({error})"
        ) from None
    check_state_dict(shell, header_shapes(weights_path), source=source)


@functools.cache
def _meta_inputs() -> type:
    """A torch function mode moving CPU tensors onto the meta device where they meet meta
    tensors (CompressAI makes some constants with the legacy ``torch.Tensor(...)``, which
    ignores the default device). Defined on first use: this module imports no torch."""
    import torch
    from torch.overrides import TorchFunctionMode
    from torch.utils import _pytree

    def to_meta(tensor):
        return tensor if tensor.is_meta else tensor.to("meta")

    class MetaInputs(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            leaves = _pytree.tree_leaves((args, kwargs))
            if any(isinstance(t, torch.Tensor) and t.is_meta for t in leaves):
                args, kwargs = _pytree.tree_map_only(torch.Tensor, to_meta, (args, kwargs))
            return func(*args, **kwargs)

    return MetaInputs


def header_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """``{key: shape}`` of a safetensors file, from its header alone."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError, RecursionError) as error:
        raise ModelError(f"cannot read weights {path}: {error}") from None


def check_state_dict(model: torch.nn.Module, state_dict: dict, *, source: str = "") -> None:
    """Raise :class:`ModelError` unless ``state_dict`` has exactly ``model``'s keys and shapes.

    ``state_dict`` maps keys to tensors or to shapes (:func:`header_shapes`). The entropy
    coder's tables may have any shape (they depend on the weights) and may be absent
    (``update()`` computes them).
    """
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    shapes = {key: tuple(getattr(value, "shape", value)) for key, value in state_dict.items()}
    tables = entropy_table_keys(model)
    where = f" in {source}" if source else ""
    missing = sorted(set(expected) - set(shapes) - tables)
    unexpected = sorted(set(shapes) - set(expected))
    problems = []
    if missing:
        problems.append(f"missing weights{where}: {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected weights{where}: {_names(unexpected)}")
    wrong = [
        f"{key} {shapes[key]} (model needs {expected[key]})"
        for key in sorted(set(expected) & set(shapes) - tables)
        if shapes[key] != expected[key]
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


def load_state(model, state_dict: dict, *, source: str = "") -> None:
    """Strictly load ``state_dict`` into ``model``; compute missing entropy tables."""
    check_state_dict(model, state_dict, source=source)
    model.load_state_dict(state_dict, strict=False)
    if not model.entropy_coder_ready():
        logger.info(
            "entropy coder tables missing%s: computing them (update)",
            f" in {source}" if source else "",
        )
        model.update(force=True)
    validation.check_entropy_tables(model, source)


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:_LIST_LIMIT])
    if len(names) > _LIST_LIMIT:
        shown += f" and {len(names) - _LIST_LIMIT} more"
    return shown


def _hparams_text(config: dict[str, Any]) -> str:
    hparams = {
        k: v for k, v in config.items() if k not in ("architecture", "metric", "lmbda", LINEAGE_KEY)
    }
    if not hparams:
        return ""
    return " (" + ", ".join(f"{k}={v}" for k, v in hparams.items()) + ")"


# --------------------------------------------------------------------------- references
def portable_reference(path: str | os.PathLike) -> tuple[str, str | None]:
    """``(reference, revision)`` naming a local model folder without its absolute path.

    What an .aigic header records, so that shared files do not carry the user's paths: a
    Hub cache snapshot (``.../models--ORG--NAME/snapshots/REV``) is ``("ORG/NAME", REV)``,
    a folder of the zoo's cache (``.../models--ORG--NAME``) is ``("ORG/NAME", None)``, a
    folder under ``$PKU_AIGI_MODELS_DIR`` its repo id there, any other folder its name.
    The model's fingerprint, not this name, decides whether weights fit a file.
    """
    folder = Path(path).resolve()
    parts = folder.parts
    if len(parts) >= 3 and parts[-2] == "snapshots" and parts[-3].startswith("models--"):
        return parts[-3][len("models--") :].replace("--", "/"), parts[-1]
    if folder.name.startswith("models--") and "--" in folder.name[len("models--") :]:
        return folder.name[len("models--") :].replace("--", "/"), None
    root = os.environ.get("PKU_AIGI_MODELS_DIR")
    if root:
        with contextlib.suppress(ValueError, OSError):
            relative = folder.relative_to(Path(root).resolve()).as_posix()
            if relative != ".":
                return relative, None
    return folder.name, None
