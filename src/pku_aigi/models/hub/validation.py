"""Checks on a model folder before it is trusted: ``config.json`` and entropy tables.

A model folder comes from anywhere (the Hub, a download, a colleague). Two parts of it
drive native code or large allocations and are checked here, each raising
:class:`ModelError` with the file and the fix:

- :func:`check_config`: every ``config.json`` value has the type and range its
  architecture takes, before anything is allocated (``"N": 3000`` would build a 9.7 GB
  model; ``"16"``, ``16.5``, ``true``, ``null``, NaN, lists or dicts where a number
  belongs fail deep inside PyTorch), and keys that are not the architecture's are
  refused. Widths (``N``, ``M``, ...) may not exceed the largest dimension of a non-empty
  tensor in ``model.safetensors``; the exact bound is
  :func:`~pku_aigi.models.hub.folder.check_weights_fit`, which compares the file's shapes
  with the model's before it is built.
- :func:`check_entropy_tables`: the tables of CompressAI's entropy models (loaded from
  ``model.safetensors``) are what its rANS coder can use safely: CDF lengths and
  offsets in range, CDF rows strictly increasing from 0 to 2**16, medians and scales
  finite. Tampered tables otherwise crash the coder (SIGFPE, SIGSEGV) or hang it.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import ModelError
from .lineage import LINEAGE_KEY, check_lineage

if TYPE_CHECKING:  # imported where tables are checked: the folder format loads without it
    import torch

MAX_INT = 4096  # no hyper-parameter of any architecture comes near it
MAX_LIST = 16
MAX_TEXT = 4096
COUNT_FACTOR = 4  # counts (depths, heads, slices, windows) up to 4x the paper's largest
# Hyper-parameters that are tensor widths: bounded by the weights actually present.
WIDTH_KEYS = (
    "N",
    "M",
    "z_channels",
    "atten_dim",
    "attention_dim",
    "text_dim",
    "head_dims",
    "hyper_head_dim",
    "atten_head_dim",
)
PRECISION = 16  # CompressAI's CDF precision
_TABLE_SUFFIXES = ("_quantized_cdf", "_cdf_length", "_offset", "scale_table")


def check_config(config: Any, path: Path | str, weights_path: Path | str | None = None) -> None:
    """Raise ModelError unless ``config`` (from ``path``) can be built safely.

    Args:
        config: the parsed ``config.json``.
        path: where it came from (for the message).
        weights_path: ``model.safetensors``; when given, widths are bounded by it.
    """
    from ..architectures.specs import get_spec

    where = f"{path}"
    if not isinstance(config, dict):
        raise ModelError(f"{where} must hold a JSON object, not {type(config).__name__}")
    architecture = config.get("architecture")
    if not architecture:
        raise ModelError(f"{where} has no 'architecture': cannot tell which model it holds")
    if not isinstance(architecture, str) or len(architecture) > 128:
        raise ModelError(
            f"{where}: 'architecture' must be a name (a string), not {_show(architecture)}"
        )
    spec = get_spec(architecture)
    quality = config.get("quality")
    if quality is not None and (not _is_int(quality) or quality not in spec.qualities):
        raise ModelError(
            f"{where}: {architecture} has no quality {_show(quality)}: "
            f"choose one of {sorted(spec.qualities)}"
        )
    metric = config.get("metric")
    if metric is not None and (not isinstance(metric, str) or len(metric) > 64):
        raise ModelError(f"{where}: 'metric' must be a name such as \"mse\", not {_show(metric)}")
    lmbda = config.get("lmbda")
    if lmbda is not None and not (_is_number(lmbda) and 0 < lmbda < 1e6):
        raise ModelError(f"{where}: 'lmbda' must be a positive number, not {_show(lmbda)}")

    defaults = _defaults(spec)
    max_width = _largest_dimension(weights_path) if weights_path is not None else None
    for key, value in config.items():
        if key in ("architecture", "quality", "metric", "lmbda"):
            continue
        if key == LINEAGE_KEY:
            check_lineage(value, where)
            continue
        if key not in defaults:  # never passed on as a keyword argument
            raise ModelError(
                f"{where}: unknown key {_show(key)}: {architecture} takes architecture, "
                f"quality, metric, lmbda and {', '.join(defaults) or 'no hyper-parameter'}"
            )
        _check_value(where, key, value, defaults[key], max_width)


def _check_value(where: str, key: str, value: Any, default: Any, max_width: int | None) -> None:
    if isinstance(default, str) or default is None:
        if value is None or (isinstance(value, str) and len(value) <= MAX_TEXT):
            return
        raise ModelError(f"{where}: {key!r} must be a string, not {_show(value)}")
    if isinstance(default, (list, tuple)):
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_LIST:
            raise ModelError(
                f"{where}: {key!r} must be a list of 1 to {MAX_LIST} integers like "
                f"{list(default)}, not {_show(value)}"
            )
        limit = _limit(key, max(default), max_width)
        for item in value:
            _check_int(where, key, item, limit)
        return
    if _is_int(default):
        _check_int(where, key, value, _limit(key, default, max_width))
        return
    if isinstance(default, float) and not _is_number(value):
        raise ModelError(f"{where}: {key!r} must be a finite number, not {_show(value)}")


def _limit(key: str, largest_default: int, max_width: int | None) -> int:
    if key in WIDTH_KEYS:
        return min(MAX_INT, max_width) if max_width else MAX_INT
    return min(MAX_INT, COUNT_FACTOR * max(1, largest_default))


def _check_int(where: str, key: str, value: Any, limit: int) -> None:
    if not _is_int(value):
        raise ModelError(f"{where}: {key!r} must be an integer, not {_show(value)}")
    if not 1 <= value <= limit:
        raise ModelError(
            f"{where}: {key!r} = {value} is out of range 1..{limit}"
            + (
                " (the largest tensor dimension in model.safetensors)"
                if key in WIDTH_KEYS and limit < MAX_INT
                else ""
            )
            + ": the config does not describe these weights"
        )


def _defaults(spec) -> dict[str, Any]:
    """Hyper-parameter -> its largest value in the quality table, else its default."""
    out: dict[str, Any] = {}
    signature = inspect.signature(spec.load_model_class().__init__)
    for name, parameter in signature.parameters.items():
        if name == "self" or parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
            continue
        out[name] = None if parameter.default is inspect.Parameter.empty else parameter.default
        if out[name] is None and "int" in str(parameter.annotation):
            out[name] = 1
    for table in spec.qualities.values():
        for name, value in table.items():
            if _is_int(value) and _is_int(out.get(name)):
                out[name] = max(out[name], value)
            elif name not in out or out[name] is None:
                out[name] = value
    return out


def _largest_dimension(weights_path: Path | str) -> int:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights_path), framework="pt") as handle:
            shapes = [
                handle.get_slice(key).get_shape()
                for key in handle.keys()
                if not key.endswith(_TABLE_SUFFIXES)  # CDF rows are long, not widths
            ]
    except (SafetensorError, OSError, ValueError, RecursionError) as error:
        raise ModelError(f"cannot read weights {weights_path}: {error}") from None
    # A tensor without elements holds no bytes: its dimensions bound nothing.
    return max((int(d) for shape in shapes if math.prod(shape) for d in shape), default=0)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**30 else "a huge number"
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------- entropy tables
def check_entropy_tables(model: torch.nn.Module, source: str = "") -> None:
    """Raise ModelError unless every entropy model's coding tables are usable.

    Checks what CompressAI's rANS coder relies on without checking it: for each row,
    ``3 <= _cdf_length <= row width``, ``-(_cdf_length - 2) <= _offset <= 0`` (the
    offset is minus the lowest symbol), ``_quantized_cdf`` strictly increasing from 0 to
    2**16 (no zero frequency: the encoder divides by it), one row per channel
    (EntropyBottleneck) or per scale (GaussianConditional), finite medians and scales.
    """
    import torch
    from compressai.entropy_models import EntropyBottleneck, GaussianConditional

    where = f" in {source}" if source else ""
    for name, module in model.named_modules():
        if not isinstance(module, (EntropyBottleneck, GaussianConditional)):
            continue
        if module._quantized_cdf.numel() == 0:
            continue  # not computed yet: update() computes valid tables
        problem = _table_problem(module)
        if problem is None and isinstance(module, EntropyBottleneck):
            problem = _bottleneck_problem(module)
        if problem is None and isinstance(module, GaussianConditional):
            table = module.scale_table
            if table.numel() == 0 or not bool(torch.isfinite(table).all()):
                problem = "scale_table is empty or not finite"
            elif bool((table <= 0).any()) or bool((table[1:] <= table[:-1]).any()):
                problem = "scale_table is not positive and increasing"
            elif module._quantized_cdf.shape[0] != table.numel():
                problem = f"{module._quantized_cdf.shape[0]} CDF rows for {table.numel()} scales"
        if problem is not None:
            raise ModelError(
                f"the entropy coder tables of {name or 'the model'}{where} are invalid "
                f"({problem}): the weights file is corrupted or was edited; re-save the "
                "model with save_pretrained, or drop the tables (_quantized_cdf, _offset, "
                "_cdf_length) from model.safetensors so that they are recomputed"
            )


def _bottleneck_problem(module) -> str | None:
    """The factorized prior's offsets and lengths, recomputed from its quantiles as
    ``EntropyBottleneck.update`` does: they must match (medians far out make the symbols
    overflow the coder)."""
    import torch

    quantiles = module.quantiles.detach()
    if not bool(torch.isfinite(quantiles).all()) or float(quantiles.abs().max()) >= 2**20:
        return "medians (quantiles) are not finite or beyond +-2**20"
    if module._quantized_cdf.shape[0] != module.channels:
        return f"{module._quantized_cdf.shape[0]} CDF rows for {module.channels} channels"
    medians = quantiles[:, 0, 1]
    minima = torch.clamp(torch.ceil(medians - quantiles[:, 0, 0]).int(), min=0)
    maxima = torch.clamp(torch.ceil(quantiles[:, 0, 2] - medians).int(), min=0)
    offsets = module._offset.reshape(-1)
    lengths = module._cdf_length.reshape(-1)
    if not torch.equal(offsets, -minima) or not torch.equal(lengths, minima + maxima + 3):
        return (
            "_offset and _cdf_length do not match the medians (quantiles): tables from "
            "other weights; call model.update(force=True) before save_pretrained"
        )
    return None


def _table_problem(module) -> str | None:
    import torch

    cdf, lengths, offsets = module._quantized_cdf, module._cdf_length, module._offset
    if cdf.dim() != 2 or cdf.dtype != torch.int32:
        return f"_quantized_cdf must be a 2-D int32 table, not {tuple(cdf.shape)} {cdf.dtype}"
    rows, width = cdf.shape
    if lengths.dtype != torch.int32 or offsets.dtype != torch.int32:
        return "_cdf_length and _offset must be int32"
    if lengths.reshape(-1).numel() != rows or offsets.reshape(-1).numel() != rows:
        return f"_cdf_length and _offset must have one entry per CDF row ({rows})"
    lengths = lengths.reshape(-1).to(torch.int64)
    offsets = offsets.reshape(-1).to(torch.int64)
    if bool((lengths < 3).any()) or bool((lengths > width).any()):
        return f"_cdf_length outside 3..{width}"
    if bool((offsets > 0).any()) or bool((offsets < -(lengths - 2)).any()):
        return "_offset outside -(_cdf_length - 2)..0"
    cdf = cdf.to(torch.int64)
    columns = torch.arange(width)
    inside = columns[None] < lengths[:, None]
    steps = cdf[:, 1:] - cdf[:, :-1]
    if bool((cdf[:, 0] != 0).any()):
        return "a CDF row does not start at 0"
    if bool(((steps <= 0) & inside[:, 1:]).any()):
        return "a CDF row is not strictly increasing"
    ends = cdf.gather(1, (lengths - 1)[:, None]).reshape(-1)
    if bool((ends != 2**PRECISION).any()):
        return f"a CDF row does not end at 2**{PRECISION}"
    return None


def check_widths(config: dict[str, Any], path: Path | str, shapes: dict[str, Any]) -> None:
    """Raise ModelError if a width of ``config`` (``N``, ``M``, ...) exceeds the largest
    dimension of the weights' ``shapes`` (name -> shape): :func:`check_config`'s bound,
    for weights that are not in ``model.safetensors`` (a checkpoint to convert)."""
    largest = max(
        (
            int(d)
            for key, shape in shapes.items()
            if not key.endswith(_TABLE_SUFFIXES)
            for d in shape
        ),
        default=0,
    )
    for key in WIDTH_KEYS:
        values = config.get(key)
        for value in values if isinstance(values, list) else [values]:
            if _is_int(value) and value > largest:
                raise ModelError(
                    f"{path}: {key!r} = {value} is more than {largest}, the largest tensor "
                    "dimension of the weights: the config does not describe these weights"
                )


CARD_INFO_KEYS = ("training", "rd_points", "source", "license")  # the model card's inputs


def check_card_info(info: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``info`` if it only holds the card's inputs (:data:`CARD_INFO_KEYS`), of
    the types :func:`.card.render_model_card` takes (None for a key is as good as none)."""
    if not isinstance(info, dict):
        raise ModelError(f"card_info must be a dict, not {type(info).__name__}")
    unknown = sorted(set(info) - set(CARD_INFO_KEYS))
    if unknown:
        raise ModelError(
            f"card_info has unknown keys {', '.join(unknown)}: use {', '.join(CARD_INFO_KEYS)}"
        )
    for key, (kind, what) in _CARD_INFO_TYPES.items():
        value = info.get(key)
        if value is None:
            continue
        if not isinstance(value, kind) or (
            key == "rd_points" and not all(isinstance(point, dict) for point in value)
        ):
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
            raise ModelError(f"card_info {key!r} must be {what}, not {shown}")
    return dict(info)


_CARD_INFO_TYPES = {
    "training": (dict, "a dict such as {'data': ..., 'steps': ...}"),
    "rd_points": (list, "a list of dicts such as {'bpp': ..., 'psnr': ...}"),
    "source": (str, "a string"),
    "license": (str, "a licence id (a string)"),
}
