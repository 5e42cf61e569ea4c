"""The codecs the demo offers: conventional codecs and learned models from the zoo.

A :class:`CodecOption` is one checkbox of the UI. Conventional codecs come from
``pku_aigi.codecs.availability()``; learned models from the zoo manifest
(``pku_aigi.models.zoo.load_zoo()``) plus any model folder found under
``PKU_AIGI_MODELS_DIR``, grouped into one option per (architecture, metric) whose
quality range is the set of models found. Each model loads from
``$PKU_AIGI_MODELS_DIR/<repo_id>`` when that folder exists (a local copy laid out like
the Hub: config.json + model.safetensors), else from the Hub by repo id (config checked
at start, weights fetched on first use). A model that cannot load is listed as
unavailable with the reason, never an exception.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ModelError, PkuAigiError

log = logging.getLogger(__name__)

MODELS_DIR_ENV = "PKU_AIGI_MODELS_DIR"
_LOAD_LOCK = threading.Lock()
MAX_RD_POINTS = 6  # points of an RD curve: enough for a curve, affordable on a CPU Space


@dataclass
class CodecOption:
    """One codec the user can choose; ``reason`` is None when it can run here."""

    key: str  # the checkbox label, unique
    kind: str  # "conventional" or "learned"
    reason: str | None = None
    codecs: dict[float, object] = field(default_factory=dict)  # learned: loaded models
    codec: object | None = None  # conventional: the codec instance
    grid: tuple[float, ...] = ()  # RD grid in the codec's own units, low rate -> high rate
    text_conditioned: bool = False
    sources: dict[float, str] = field(default_factory=dict)  # learned: quality -> repo/dir

    @property
    def available(self) -> bool:
        return self.reason is None

    def codec_for(self, quality: float):
        """The codec instance that encodes at ``quality`` (learned: loaded on first use)."""
        if self.kind == "conventional":
            return self.codec
        with _LOAD_LOCK:
            if quality not in self.codecs:
                source = self.sources[quality]
                try:
                    self.codecs[quality] = _load_learned(source)
                except PkuAigiError as error:
                    raise ModelError(
                        f"{self.key}: model {source} cannot be loaded: {error}"
                    ) from None
            return self.codecs[quality]

    def quality_at(self, level: float) -> float:
        """Map a quality level 0..100 onto this codec's own scale.

        0 is the lowest-rate point of the RD grid, 100 the highest; conventional codecs
        interpolate (rounded to integers when the grid is), learned ones take the
        nearest model.
        """
        level = min(max(float(level), 0.0), 100.0) / 100.0
        low, high = self.grid[0], self.grid[-1]
        value = low + level * (high - low)
        if self.kind == "learned" or all(float(q).is_integer() for q in self.grid):
            if self.kind == "learned":
                return min(self.grid, key=lambda q: (abs(q - value), q))
            return int(round(value))
        return round(value, 2)

    def rd_grid(self, max_points: int = MAX_RD_POINTS) -> list[float]:
        """At most ``max_points`` qualities of the grid, evenly spread, ends included."""
        grid = list(self.grid)
        if len(grid) <= max_points:
            return grid
        step = (len(grid) - 1) / (max_points - 1)
        return sorted({grid[round(i * step)] for i in range(max_points)}, key=grid.index)


def conventional_options() -> list[CodecOption]:
    """One option per registered conventional codec, available or with its reason."""
    import pku_aigi.codecs as codecs

    options = []
    for name, reason in codecs.availability().items():
        option = CodecOption(key=name, kind="conventional", reason=reason)
        if reason is None:
            try:
                option.codec = codecs.get(name)
                option.grid = tuple(option.codec.default_qualities)
                option.text_conditioned = bool(getattr(option.codec, "text_conditioned", False))
            except PkuAigiError as error:
                option.reason = str(error)
        options.append(option)
    return options


def zoo_entries() -> tuple[list[dict], str | None]:
    """The zoo manifest's model entries, and why there are none if it cannot be read."""
    try:
        from ..models import zoo
    except ImportError as error:
        return [], f"the model zoo is not part of this build ({error})"
    try:
        return list(zoo.load_zoo().get("models", [])), None
    except (OSError, ValueError, PkuAigiError) as error:
        return [], f"the zoo manifest cannot be read: {error}"


def local_model_dirs(models_dir: Path) -> dict[str, Path]:
    """``{repo_id: folder}`` of model folders (with config.json) up to two levels deep."""
    found = {}
    for config in sorted(models_dir.glob("*/config.json")) + sorted(
        models_dir.glob("*/*/config.json")
    ):
        found[config.parent.relative_to(models_dir).as_posix()] = config.parent
    return found


def learned_options(models_dir: str | os.PathLike | None = None) -> list[CodecOption]:
    """One option per (architecture, metric) of the zoo and the local models folder.

    Local models are loaded at once (a broken folder is reported now); Hub models are
    checked by fetching their config.json and load their weights on first use.
    """
    models_dir = models_dir or os.environ.get(MODELS_DIR_ENV)
    local = local_model_dirs(Path(models_dir)) if models_dir and Path(models_dir).is_dir() else {}
    entries, zoo_problem = zoo_entries()
    if zoo_problem:
        log.warning("%s", zoo_problem)

    listed = {entry["repo_id"] for entry in entries}
    for repo_id, folder in local.items():
        if repo_id not in listed:
            entries.append({"repo_id": repo_id, **_config_fields(folder)})

    groups: dict[str, list[dict]] = {}
    for entry in entries:
        key = f"{entry.get('architecture', entry['repo_id'])} ({entry.get('metric') or 'mse'})"
        groups.setdefault(key, []).append(entry)

    hub = _HubCheck()
    options = []
    for key, members in sorted(groups.items()):
        option = CodecOption(key=key, kind="learned")
        failures = []
        for entry in members:
            repo_id, quality = entry["repo_id"], entry.get("quality")
            try:
                if repo_id in local:
                    source = str(local[repo_id].resolve())
                    codec = _load_learned(source)
                    quality = getattr(codec, "model_quality", None) or quality
                    option.codecs[quality] = codec
                else:
                    source = repo_id
                    hub.check(repo_id)
            except Exception as error:  # noqa: BLE001 - any failure: listed, not raised
                failures.append(f"{repo_id}: {_first_line(error)}")
                continue
            option.sources[quality] = source
        option.text_conditioned = _text_conditioned(members[0].get("architecture"))
        if option.sources:
            option.grid = tuple(sorted(option.sources))
            if failures:
                log.warning(
                    "%s: %d model(s) unavailable: %s", key, len(failures), _summarise(failures)
                )
        else:
            option.reason = _summarise(failures)
        options.append(option)
    return options


class _HubCheck:
    """Checks that Hub model repos answer, giving up on the Hub after a network failure."""

    def __init__(self):
        self.down: str | None = None

    def check(self, repo_id: str) -> None:
        if self.down:
            raise ConnectionError(self.down)
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import (
            EntryNotFoundError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
        )

        try:
            hf_hub_download(repo_id, "config.json")
        except LocalEntryNotFoundError:
            self.down = (
                "not in the local Hub cache and the Hub cannot be reached (offline): copy the "
                f"model repo to ${MODELS_DIR_ENV}/<repo id>"
            )
            raise ConnectionError(self.down) from None
        except (RepositoryNotFoundError, EntryNotFoundError):
            raise
        except Exception as error:
            self.down = f"the Hub cannot be reached ({_first_line(error)})"
            raise ConnectionError(self.down) from None


def _text_conditioned(architecture: str | None) -> bool:
    try:
        from .. import models

        return bool(models.get_spec(architecture).model_class.text_conditioned)
    except Exception:  # noqa: BLE001 - unknown architecture: treated as not text-conditioned
        return False


def _summarise(failures: list[str]) -> str:
    if not failures:
        return "no model listed"
    reasons = {failure.split(": ", 1)[-1] for failure in failures}
    if len(reasons) == 1:
        return f"{len(failures)} model(s) cannot load: {reasons.pop()}"
    return "; ".join(failures)


def _load_learned(source: str):
    from ..codecs.learned import LearnedCodec

    log.info("loading learned codec %s", source)
    return LearnedCodec.from_pretrained(source)


def _config_fields(folder: Path) -> dict:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return {k: config[k] for k in ("architecture", "quality", "metric") if k in config}


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


@dataclass
class Catalog:
    """Every codec option of the demo, in UI order (conventional first)."""

    options: list[CodecOption]

    @classmethod
    def discover(cls, models_dir: str | os.PathLike | None = None) -> Catalog:
        return cls(conventional_options() + learned_options(models_dir))

    def get(self, key: str) -> CodecOption:
        for option in self.options:
            if option.key == key:
                return option
        raise PkuAigiError(f"unknown codec {key!r}: choose one of {', '.join(self.available_keys)}")

    @property
    def available_keys(self) -> list[str]:
        return [option.key for option in self.options if option.available]

    @property
    def unavailable(self) -> list[CodecOption]:
        return [option for option in self.options if not option.available]
