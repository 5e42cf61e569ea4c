"""Families of learned codecs: one architecture and metric, one model per quality.

A :class:`LearnedCodecFamily` (defined beside :class:`LearnedCodec` in :mod:`.learned`,
whose ``LearnedCodec.family`` builds one, and re-exported here) is one
:class:`~pku_aigi.codecs.base.Codec` whose ladder is the qualities of its models; each
model loads on first use (once, thread-safe), so a catalog of the whole zoo costs
nothing until a quality is used. :func:`discover_families` groups the zoo manifest
(``models/zoo.json``) and any model folders under ``PKU_AIGI_MODELS_DIR`` into
families, the way the Space and the benchmark offer them.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from pathlib import Path

from ..errors import ModelError, PkuAigiError, by_cause
from ..models.hub import folder as model_folder
from .learned import LearnedCodec, LearnedCodecFamily

logger = logging.getLogger(__name__)

MODELS_DIR_ENV = "PKU_AIGI_MODELS_DIR"
DEFAULT_METRIC = "mse"


def family_label(architecture: str, metric: str | None) -> str:
    """The name of a zoo family in the Space, e.g. ``"mbt2018-mean (mse)"``."""
    return f"{architecture} ({metric or DEFAULT_METRIC})"


def group_by_family(entries: list[dict]) -> dict[tuple[str, str], dict[int, str]]:
    """Zoo entries as ``{(architecture, metric): {quality: repo_id}}``."""
    groups: dict[tuple[str, str], dict[int, str]] = defaultdict(dict)
    for entry in entries:
        key = (entry.get("architecture") or entry["repo_id"], entry.get("metric") or DEFAULT_METRIC)
        groups[key][int(entry.get("quality") or 0)] = entry["repo_id"]
    return dict(groups)


def zoo_entries() -> list[dict]:
    """The zoo's entries (``models/zoo.json`` + ``PKU_AIGI_ZOO``), one per architecture,
    quality and metric: weights trained on AI-generated images are preferred over
    CompressAI's Vimeo-90k ones (:func:`pku_aigi.models.zoo.preferred_entries`)."""
    from ..models import zoo

    return zoo.preferred_entries()


def local_model_dirs(models_dir: Path) -> dict[str, Path]:
    """``{repo_id: folder}`` of model folders (with config.json) up to two levels deep."""
    name = model_folder.CONFIG_NAME
    configs = sorted(models_dir.glob(f"*/{name}")) + sorted(models_dir.glob(f"*/*/{name}"))
    return {config.parent.relative_to(models_dir).as_posix(): config.parent for config in configs}


def discover_families(
    models_dir: str | os.PathLike | None = None, **options
) -> dict[str, LearnedCodecFamily | str]:
    """Every family of the zoo and of ``models_dir`` (default ``$PKU_AIGI_MODELS_DIR``).

    Models found in ``models_dir/<repo id>`` load at once (a broken folder is reported
    now); zoo models load on first use (from the cache, or fetched then: the Hub repo or
    the published checkpoint), and nothing touches the network now. Offline
    (``HF_HUB_OFFLINE=1``) a zoo model that is not cached is left out with the reason.
    Returns ``{label: family}``, or ``{label: reason}`` when no model of the family can
    be used here; models that fail beside working ones are logged and left out.
    """
    models_dir = models_dir or os.environ.get(MODELS_DIR_ENV)
    local = local_model_dirs(Path(models_dir)) if models_dir and Path(models_dir).is_dir() else {}
    try:
        entries = zoo_entries()
    except (OSError, ValueError, PkuAigiError) as error:
        logger.warning("the zoo manifest cannot be read: %s", error)
        entries = []
    listed = {entry["repo_id"] for entry in entries}
    entries += [
        {"repo_id": repo_id, **_config_fields(folder)}
        for repo_id, folder in local.items()
        if repo_id not in listed
    ]

    found: dict[str, LearnedCodecFamily | str] = {}
    for (architecture, metric), repos in sorted(group_by_family(entries).items()):
        label = family_label(architecture, metric)
        members, failures = {}, {}
        for quality, repo_id in repos.items():
            try:
                if repo_id in local:
                    codec = LearnedCodec.from_pretrained(
                        local[repo_id].resolve(), model_id=repo_id, **options
                    )
                    members[codec.model_quality or quality] = codec
                else:
                    _check_loadable(repo_id)
                    members[quality] = repo_id
            except PkuAigiError as error:
                failures[repo_id] = error
            except Exception as error:  # noqa: BLE001 - any failure: listed, not raised
                failures[repo_id] = _first_line(error)
        if members:
            if failures:
                logger.warning(
                    "%s: %d model(s) unavailable: %s", label, len(failures), _summarise(failures)
                )
            found[label] = LearnedCodecFamily(label, members, architecture=architecture, **options)
        else:
            found[label] = _summarise(failures)
    return found


def _check_loadable(repo_id: str) -> None:
    """Raise unless zoo model ``repo_id`` can load here (cached, a local source, or
    fetched when online)."""
    from ..models.zoo.fetch import offline_problem

    problem = offline_problem(repo_id)
    if problem is not None:
        raise problem


def _summarise(failures: dict) -> str:
    """``{repo id: error}`` as one line, one message per cause."""
    if not failures:
        return "no model listed"
    parts = []
    for names, message in by_cause(failures):
        if len(names) == 1:
            parts.append(message if message.startswith(names[0]) else f"{names[0]}: {message}")
        else:
            parts.append(f"{len(names)} models ({names[0]} ... {names[-1]}): {message}")
    return "; ".join(parts)


def _config_fields(model_dir: Path) -> dict:
    """Architecture, quality and metric of a local folder's checked ``config.json``; none
    when it is unreadable or invalid (the folder is then listed under its repo id, with
    the reason loading it gives)."""
    try:
        path = model_dir / model_folder.CONFIG_NAME
        config = model_folder.check_config(model_folder.read_config(path), path)
    except ModelError:
        return {}
    return {key: config[key] for key in ("architecture", "quality", "metric") if key in config}


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
