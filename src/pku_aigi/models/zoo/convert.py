"""Convert CompressAI checkpoints (``.pth.tar``) into Hub model folders.

Reads CompressAI's published zoo checkpoints (a bare state dict) and the checkpoints of
its training script (``{"state_dict": ..., "epoch": ..., "optimizer": ...}``) with
``torch.load(weights_only=True)``, so no code in the file can run, and only after the
sizes the file declares were checked against its size (:func:`check_checkpoint_size`),
so that loading allocates no more than the file holds. Legacy key names are
renamed with CompressAI's own helpers: ``compressai.zoo.load_state_dict`` (DataParallel's
``module.`` prefix, ``downsample`` -> ``skip``, the entropy bottleneck's
``_biases.N``/``_matrices.N``/``_factors.N`` lists) and
``compressai.models.utils.remap_old_keys`` (``_biasN`` -> ``biases.N``). The weights are
loaded strictly and the entropy coder tables of the checkpoint are kept, so the
converted model codes exactly like CompressAI's own model built from the checkpoint.

The quality asked for is checked against what the file shows (:func:`check_quality`):
the shapes of its tensors must fit that quality's hyper-parameters, and one of
CompressAI's published checkpoints (recognised by its name and sha256) must be
converted as the architecture, quality and metric it was published as.
"""

from __future__ import annotations

import logging
import pickle
import shutil
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from ...errors import ModelError
from ...outputs import check_output_folder
from ..architectures.specs import create, get_spec
from ..base import LearnedCodecModel
from ..hub import validation
from ..hub.folder import entropy_table_keys, load_state
from . import manifest

logger = logging.getLogger(__name__)

# Buffers that hold constants fixed by the constructor (GDN reparametrisation pedestals,
# lower bounds, the bottleneck's quantile targets): old checkpoints may lack them.
CONSTANT_BUFFER_SUFFIXES = (".pedestal", ".bound", ".target", ".scale_bound")

ZOO_SOURCE = (
    "Converted from a CompressAI pre-trained model checkpoint `{checkpoint}` "
    "({architecture}, quality {quality}, {metric}): a bare state dict, the format of "
    "CompressAI's pre-trained model zoo (https://interdigitalinc.github.io/CompressAI/zoo.html). "
    "Where it was downloaded from was not recorded; CompressAI's own zoo models were "
    "trained on natural images (Vimeo-90k), not on AI-generated images."
)
TRAINING_SOURCE = (
    "Converted from the CompressAI training checkpoint `{checkpoint}` ({architecture}, "
    "quality {quality}, {metric}{details}), written by CompressAI's training script. "
    "The checkpoint does not record the training data or recipe."
)
# Scalars of CompressAI's training checkpoints (examples/train.py) worth showing on a card.
TRAINING_SCALARS = ("epoch", "loss")


def read_compressai_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of a CompressAI checkpoint, keys renamed to current CompressAI names.

    Raises:
        ModelError: see :func:`read_checkpoint_with_info`.
    """
    return read_checkpoint_with_info(path)[0]


def read_checkpoint_with_info(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict, what the file says about itself) of a CompressAI checkpoint.

    The info is ``{"format": "zoo"}`` for a bare state dict (CompressAI's published
    models) and ``{"format": "training", "epoch": ..., "loss": ...}`` for a checkpoint
    of CompressAI's training script (``{"state_dict": ..., "epoch": ...}``).

    Raises:
        ModelError: the file is missing, not a weights-only torch file, or holds no
            state dict of tensors.
    """
    from compressai.models.utils import remap_old_keys
    from compressai.zoo import load_state_dict as rename_legacy_keys

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint {path} does not exist")
    check_checkpoint_size(path)
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
    info: dict[str, Any] = {"format": "zoo"}
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        info = {"format": "training"}
        for key in TRAINING_SCALARS:
            value = checkpoint.get(key)
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                value = value.item()
            if isinstance(value, (int, float)):
                info[key] = value
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
    return dict(state_dict), info


def check_checkpoint_size(path: Path) -> None:
    """ModelError unless loading ``path`` allocates at most what the file holds.

    ``torch.load`` allocates what a file declares before reading it. PyTorch's zip
    format (since 1.6): the sizes the central directory declares for the members (the
    ``data/`` tensors, ``data.pkl``) may not add up to more than the file's size (torch
    stores them uncompressed), read with :mod:`zipfile`. The legacy format (pickles, then
    the tensor data): the storages the pickles declare may not add up to more than the
    file's size, read without running anything (:class:`_StorageScan`). Any checkpoint
    may not exceed the limit on downloads (``PKU_AIGI_MAX_DOWNLOAD_MB``).
    """
    from ... import network

    size = path.stat().st_size
    limit = network.max_download_bytes()
    if size > limit:
        raise ModelError(
            f"checkpoint {path} is {size} bytes, above the limit of {limit >> 20} MB "
            f"({network.MAX_DOWNLOAD_ENV}): raise it to convert this file"
        )
    with open(path, "rb") as handle:
        zipped = handle.read(4) == b"PK\x03\x04"  # what torch.load tells them apart by
    try:
        if zipped:
            with zipfile.ZipFile(path) as archive:
                declared = sum(info.file_size for info in archive.infolist())
        else:
            declared = _legacy_storage_bytes(path)
    except (zipfile.BadZipFile, pickle.UnpicklingError, ValueError, EOFError, OSError) as error:
        kind = "PyTorch zip file" if zipped else "PyTorch file"
        raise ModelError(f"cannot read checkpoint {path}: not a {kind} ({error})") from None
    except (MemoryError, RecursionError):
        raise ModelError(f"cannot read checkpoint {path}: its pickle is malformed") from None
    if declared > size:
        raise ModelError(
            f"cannot read checkpoint {path}: it declares {declared} bytes of data, more "
            f"than the file's {size} bytes; it is damaged or crafted, get it again"
        )


class _Stub:
    """Stands for any object a legacy checkpoint's pickle builds: nothing is run."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Stub()

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, item):
        pass

    def extend(self, items):
        pass


class _StorageScan(pickle.Unpickler):
    """Unpickles with stand-ins for every class, recording the storages declared
    (``("storage", type, key, location, numel, ...)`` persistent ids) and their bytes."""

    def __init__(self, file):
        super().__init__(file)
        self.storages: dict[str, int] = {}

    def find_class(self, module, name):
        kind = getattr(torch, name, None) if module == "torch" else None
        if isinstance(kind, type) and name.endswith("Storage"):
            with warnings.catch_warnings():  # "TypedStorage is deprecated"
                warnings.simplefilter("ignore")
                return getattr(kind, "dtype", _Stub)
        return _Stub

    def persistent_load(self, pid):
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage":
            dtype, key, numel = pid[1], pid[2], pid[4]
            if not isinstance(dtype, torch.dtype) or not isinstance(numel, int) or numel < 0:
                raise pickle.UnpicklingError(f"malformed storage {str(pid)[:100]}")
            self.storages[str(key)] = numel * dtype.itemsize
        return _Stub()


def _legacy_storage_bytes(path: Path) -> int:
    """The bytes of the storages a legacy checkpoint's pickles declare (magic number,
    protocol, system info, then the object). Each pickle's opcodes are walked first
    (:func:`pickletools.genops` reads no more than the file holds), then unpickled."""
    import mmap
    import pickletools

    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        for _ in range(4):
            start = data.tell()
            for _ in pickletools.genops(data):
                pass
            data.seek(start)
            scan = _StorageScan(data)
            scan.load()
        return sum(scan.storages.values())


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
        ModelError: unknown architecture or quality, hyper-parameters that
            ``config.json`` could not hold or wider than the checkpoint's tensors
            (:mod:`..hub.validation`), unreadable checkpoint, weights that do not fit the
            architecture at this quality (:func:`check_quality`).
    """
    config = {"architecture": architecture, "quality": quality, "metric": metric, **hparams}
    validation.check_config(config, f"converting {checkpoint}")
    state_dict, info = read_checkpoint_with_info(checkpoint)
    shapes = {key: tuple(value.shape) for key, value in state_dict.items()}
    validation.check_widths(config, f"converting {checkpoint}", shapes)
    model = create(architecture, quality=quality, metric=metric, **hparams)
    state_dict = fill_constant_buffers(model, state_dict)
    check_quality(model, state_dict, checkpoint, quality=quality, metric=metric)
    load_state(model, state_dict, source=str(checkpoint))
    model.checkpoint_info = info
    return model.eval()


def check_quality(
    model: LearnedCodecModel,
    state_dict: dict[str, torch.Tensor],
    checkpoint: str | Path,
    *,
    quality: int,
    metric: str,
) -> None:
    """Refuse to label a checkpoint with a quality its weights were not trained for.

    ``model`` is the model built for ``quality`` (with any hyper-parameter overrides).
    If the checkpoint's tensors have other shapes than ``model``'s under the same
    names, the error names the qualities of the architecture whose hyper-parameters
    the shapes fit (or says that none does, with the first weights of the wrong shape).

    The shapes tell apart only qualities with different hyper-parameters: CompressAI's
    qualities share them (mbt2018-mean: N=128, M=192 at quality 1-4, N=192, M=320 at
    5-8; cheng2020: N=128 at 1-3, N=192 at 4-6), so a checkpoint is accepted as any
    quality whose hyper-parameters it fits; only the file can say which of those it is.
    One of CompressAI's published checkpoints does: recognised by its file name and
    sha256 (the packaged zoo manifest), it is refused under another architecture,
    quality or metric than its own.

    Checkpoints whose weight names do not fit the architecture are left to
    :func:`..hub.folder.load_state`, which lists the missing and unexpected weights.

    Raises:
        ModelError: naming the checkpoint, the quality asked and the fitting ones.
    """
    spec = get_spec(model.config["architecture"])
    _check_published_label(Path(checkpoint), spec.name, quality, metric)
    tables = entropy_table_keys(model)
    expected = model.state_dict()
    if set(expected) - tables != set(state_dict) - tables:
        return  # other weight names: another architecture, load_state says which
    wrong = _wrong_shapes(expected, state_dict, tables, f"quality {quality} needs")
    if not wrong:
        return
    asked = {k: v for k, v in model.config.items() if k in spec.qualities[quality]}
    groups: dict[tuple, list[int]] = {}
    for q, hparams in sorted(spec.qualities.items()):
        groups.setdefault(tuple(hparams.items()), []).append(q)
    fitting = []
    for key, qualities in groups.items():
        if dict(key) == asked:
            continue  # the model of the quality asked: it does not fit
        candidate = create(spec.name, quality=qualities[0], metric=metric).state_dict()
        if not _wrong_shapes(candidate, state_dict, tables, ""):
            fitting.append((qualities, dict(key)))
    where = f"checkpoint {checkpoint}"
    asked_text = f"{spec.name} quality {quality} ({_hparams(asked)})"
    if fitting:
        fits = "; ".join(f"quality {_span(q)} ({_hparams(h)})" for q, h in fitting)
        choices = [q for qualities, _ in fitting for q in qualities]
        tail = (
            f"convert it as quality {choices[0]}"
            if len(choices) == 1
            else f"convert it as the quality it was trained for, one of {_span(choices)} "
            "(their hyper-parameters are the same: the shapes cannot tell them apart)"
        )
        raise ModelError(
            f"{where} does not hold {asked_text} weights: the checkpoint's shapes fit "
            f"{fits}, not quality {quality}; {tail}"
        )
    others = "; ".join(f"{_span(q)}: {_hparams(dict(k))}" for k, q in groups.items())
    raise ModelError(
        f"{where} does not hold {asked_text} weights, nor those of any quality of "
        f"{spec.name} ({others}): weights of the wrong shape: {', '.join(wrong[:3])}"
        + (f" and {len(wrong) - 3} more" if len(wrong) > 3 else "")
    )


def _wrong_shapes(expected: dict, state_dict: dict, tables: set[str], needs: str) -> list[str]:
    """``"key (shape) (NEEDS (shape))"`` for the weights whose shapes differ, in the
    model's order (its first layers first)."""
    return [
        f"{key} {tuple(state_dict[key].shape)} ({needs} {tuple(expected[key].shape)})"
        for key in expected
        if key in state_dict
        and key not in tables
        and tuple(state_dict[key].shape) != tuple(expected[key].shape)
    ]


def _hparams(hparams: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in hparams.items())


def _span(qualities: list[int]) -> str:
    """``"1-5"`` for a run of consecutive qualities, else ``"1, 3"``."""
    qualities = sorted(qualities)
    if len(qualities) > 1 and qualities == list(range(qualities[0], qualities[-1] + 1)):
        return f"{qualities[0]}-{qualities[-1]}"
    return ", ".join(map(str, qualities))


def _check_published_label(path: Path, architecture: str, quality: int, metric: str) -> None:
    """ModelError if ``path`` is a CompressAI published checkpoint of another
    architecture, quality or metric than asked."""
    entry = published_compressai_entry(path) if path.is_file() else None
    if entry is None:
        return
    theirs = (entry["architecture"], int(entry["quality"]), entry["metric"])
    if theirs != (architecture, quality, metric):
        raise ModelError(
            f"checkpoint {path} is CompressAI's published {theirs[0]} quality {theirs[1]} "
            f"{theirs[2]} model (its file name and sha256), not {architecture} quality "
            f"{quality} {metric}: convert it as {theirs[0]}, quality {theirs[1]}, metric "
            f"{theirs[2]}"
        )


def convert_compressai(
    architecture: str,
    checkpoint: str | Path,
    out: str | Path,
    *,
    quality: int,
    metric: str = "mse",
    force: bool = False,
    source: str | None = None,
    license: str | None = None,
    training: dict[str, Any] | None = None,
    **hparams: Any,
) -> Path:
    """Convert a CompressAI checkpoint into a model folder (safetensors, config, card).

    Args:
        architecture, checkpoint, quality, metric, hparams: see
            :func:`model_from_compressai_checkpoint`.
        out: the model folder to write.
        force: replace ``out`` if it exists (otherwise :class:`ModelError`).
        source: text for the card's "source of the weights"; by default it says what the
            file itself shows: a zoo-format state dict, or a training checkpoint (with
            its epoch and loss) whose training data is not recorded.
            A file that is one of CompressAI's published checkpoints (its name and
            sha256 prefix) gets CompressAI's source, licence and training data.
        license: the card's licence id (default: pku-aigi's own, or CompressAI's for
            one of its published checkpoints).
        training: the card's training section (default: only what is known).

    Returns:
        The model folder.
    """
    out = check_output_folder(out, option="--out")
    if out.exists() and not force:
        raise ModelError(f"{out} already exists: choose another --out or pass --force")
    model = model_from_compressai_checkpoint(
        architecture, checkpoint, quality=quality, metric=metric, **hparams
    )
    if out.exists():
        shutil.rmtree(out)
    model.card_info = _card_info(model, architecture, checkpoint, quality, metric, source, training)
    if license:
        model.card_info["license"] = license
    model.save_pretrained(out)
    logger.info("wrote %s (%s, quality %d, %s)", out, architecture, quality, metric)
    return out


def _card_info(model, architecture, checkpoint, quality, metric, source, training) -> dict:
    """What the card can truthfully say about converted weights."""
    info = getattr(model, "checkpoint_info", None) or {"format": "zoo"}
    names = {"architecture": architecture, "quality": quality, "metric": metric}
    names["checkpoint"] = Path(checkpoint).name
    card: dict[str, Any] = {}
    if source is None and info["format"] == "training":
        details = "".join(f", {key} {info[key]:g}" for key in TRAINING_SCALARS if key in info)
        source = TRAINING_SOURCE.format(**names, details=details)
    elif source is None:
        entry = published_compressai_entry(Path(checkpoint))
        if entry is not None:
            digest = manifest.file_sha256(Path(checkpoint))
            source = manifest.source_text(entry, digest)
            card["license"] = manifest.COMPRESSAI_LICENSE
            training = training or {"data": manifest.training_data(entry)}
        else:
            source = ZOO_SOURCE.format(**names)
    card["source"] = source
    if training is not None:
        card["training"] = training
    return card


def published_compressai_entry(path: Path) -> dict | None:
    """The packaged zoo entry whose CompressAI file this is (name and sha256 prefix)."""
    for entry in manifest.packaged_compressai_entries():
        if entry["source"].rsplit("/", 1)[-1] == path.name:
            if manifest.file_sha256(path).startswith(manifest.expected_hash(entry)):
                return entry
    return None
