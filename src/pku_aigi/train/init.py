"""Fine-tuning: the trained model a run starts from (``pku-aigi train --init SOURCE``).

SOURCE is a zoo id, a Hub repo id (at ``--init-revision``), a local model folder, or a
CompressAI checkpoint (``.pth.tar``): its architecture and quality come from the flags,
from the file when it is one of CompressAI's published checkpoints, or from its weight
names and tensor shapes (:func:`checkpoint_candidates`). The run takes the init's
architecture, hyper-parameters and quality; its metric and lambda unless given; every
weight and the entropy models' quantiles start from the init's. What the init was is
recorded as the models' lineage (:mod:`pku_aigi.models.hub.lineage`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..models.hub.lineage import LINEAGE_KEY, weights_digest
from .config import TrainConfig, TrainingError

logger = logging.getLogger(__name__)

CHECKPOINT_SUFFIXES = (".pth.tar", ".pth", ".pt", ".tar", ".ckpt")
COMMON_KEYS = ("architecture", "quality", "metric", "lmbda", LINEAGE_KEY)


@dataclass
class InitModel:
    """The model a fine-tuning run starts from, and how it is named in the lineage."""

    model: Any  # a LearnedCodecModel on the CPU
    lineage: dict[str, Any]  # repo_id/revision, checkpoint/sha256 or folder; weights_sha256
    name: str  # SOURCE as given, for messages

    @property
    def config(self) -> dict[str, Any]:
        return self.model.config

    def hyperparameters(self) -> dict[str, Any]:
        """The init's hyper-parameters (its sizes): what the run's models are built with."""
        return {k: v for k, v in self.config.items() if k not in COMMON_KEYS}


def load_init(config: TrainConfig) -> InitModel:
    """Load ``config.init`` and fill the run's architecture, quality, hyper-parameters,
    metric and lambdas from it; a flag that disagrees with the init is one error naming
    both."""
    source = config.init
    path = Path(source).expanduser()
    if path.is_file() or source.endswith(CHECKPOINT_SUFFIXES):
        if not path.is_file():
            raise TrainingError(f"--init {source}: no such checkpoint file")
        if config.init_revision:
            raise TrainingError("--init-revision is for Hub repos, not a checkpoint file")
        init = _from_checkpoint(path, config)
    else:
        init = _from_model(source, config)
    _adopt(init, config)
    logger.info(
        "fine-tuning %s (%s, quality %s, %s) at lambda %s, lr %g",
        source,
        config.arch,
        config.quality,
        config.metric,
        ", ".join(f"{x:g}" for x in config.lmbdas),
        config.lr,
    )
    return init


def _from_model(source: str, config: TrainConfig) -> InitModel:
    """A zoo id, Hub repo id or local model folder."""
    from ..errors import PkuAigiError
    from ..models import AutoCodec
    from ..models.hub.folder import CONFIG_NAME, portable_reference, resolve_file, resolve_source

    try:
        folder = resolve_source(source, revision=config.init_revision)
        model = AutoCodec.from_pretrained(folder, revision=config.init_revision)
    except PkuAigiError as error:
        raise TrainingError(f"--init {source}: {error}") from None
    lineage: dict[str, Any] = {}
    if Path(source).expanduser().is_dir():
        reference, revision = portable_reference(source)
        if revision or "/" in reference:  # a Hub snapshot, or a repo id under the models dir
            lineage.update(repo_id=reference, revision=revision)
        else:
            lineage["folder"] = reference
    else:
        # the commit a Hub download is at (its snapshot folder's name)
        where = resolve_file(folder, CONFIG_NAME, revision=config.init_revision).parent
        revision = portable_reference(where)[1] or config.init_revision
        lineage.update(repo_id=source, revision=revision)
    lineage["weights_sha256"] = weights_digest(model)
    return InitModel(model.cpu(), lineage, source)


def _from_checkpoint(path: Path, config: TrainConfig) -> InitModel:
    """A CompressAI checkpoint: architecture and quality from flags, the file's
    published label, or its shapes."""
    from ..errors import PkuAigiError
    from ..models.zoo import convert, manifest

    published = convert.published_compressai_entry(path)
    arch = config.arch or (published or {}).get("architecture")
    quality = config.quality or (published or {}).get("quality")
    metric = config.metric or (published or {}).get("metric") or "mse"
    if arch is None or quality is None:
        arch, quality = _label_from_shapes(path, arch, quality, config)
    try:
        model = convert.model_from_compressai_checkpoint(
            arch, path, quality=int(quality), metric=metric, **config.overrides
        )
    except PkuAigiError as error:
        raise TrainingError(f"--init {path}: {error}") from None
    lineage = {"checkpoint": path.name, "sha256": manifest.file_sha256(path)}
    lineage["weights_sha256"] = weights_digest(model)
    return InitModel(model, lineage, str(path))


def _label_from_shapes(path: Path, arch, quality, config: TrainConfig) -> tuple[str, int]:
    """The architecture and quality whose weight names and shapes the checkpoint has."""
    from ..models.zoo.convert import read_compressai_checkpoint

    state = read_compressai_checkpoint(path)
    fitting = [
        (name, qualities)
        for name, qualities in checkpoint_candidates(state, config.overrides)
        if arch in (None, name)
    ]
    fitting = [(n, [q for q in qs if quality in (None, q)]) for n, qs in fitting]
    fitting = [(n, qs) for n, qs in fitting if qs]
    if not fitting:
        asked = f" as {arch}" if arch else ""
        raise TrainingError(
            f"--init {path}: its weights fit no CompressAI architecture{asked} at any "
            "quality: give --arch and --quality (and --arch-override N=..,M=.. for "
            "other sizes than the quality tables')"
        )
    if len(fitting) > 1:
        names = ", ".join(name for name, _ in fitting)
        raise TrainingError(
            f"--init {path}: its weights fit several architectures ({names}): give --arch"
        )
    name, qualities = fitting[0]
    if len(qualities) > 1:
        if not config.lmbdas:
            raise TrainingError(
                f"--init {path}: its shapes fit {name} qualities "
                f"{', '.join(map(str, qualities))} (the same sizes): give --quality, or "
                "--lmbda to take the quality whose lambda is nearest"
            )
        from ..models import get_spec

        ladder = get_spec(name).lambdas.get(config.metric or "mse", {})
        qualities = sorted(
            qualities, key=lambda q: abs(math.log(ladder.get(q, 1.0) / config.lmbdas[0]))
        )
    logger.info("--init %s: %s quality %d, from its weights' shapes", path, name, qualities[0])
    return name, qualities[0]


def checkpoint_candidates(state: dict, overrides: dict) -> list[tuple[str, list[int]]]:
    """``[(architecture, [quality, ...])]`` of the CompressAI architectures whose models
    have exactly ``state``'s weight names and shapes (entropy tables aside). Each
    candidate is built once per size (CompressAI's models need the CPU to build: a few
    seconds in all)."""
    from ..models import create
    from ..models.architectures.builtin import COMPRESSAI_ARCHITECTURES
    from ..models.hub.folder import entropy_table_keys

    found = []
    for name in COMPRESSAI_ARCHITECTURES:
        from ..models import get_spec

        groups: dict[tuple, list[int]] = {}
        for quality, hparams in sorted(get_spec(name).qualities.items()):
            groups.setdefault(tuple({**hparams, **overrides}.items()), []).append(quality)
        fits = []
        for key, qualities in groups.items():
            model = create(name, quality=qualities[0], **dict(key))
            tables = entropy_table_keys(model)
            expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if k not in tables}
            given = {k: tuple(v.shape) for k, v in state.items() if k not in tables}
            if expected == given:
                fits += qualities
        if fits:
            found.append((name, fits))
    return found


def _adopt(init: InitModel, config: TrainConfig) -> None:
    """The run's settings from the init; ModelError-free mismatches as TrainingError."""
    theirs = init.config
    arch = theirs["architecture"]
    if config.arch and config.arch != arch:
        raise TrainingError(
            f"--arch {config.arch} does not match --init {init.name}, a {arch} model: "
            "drop --arch (fine-tuning keeps the init's architecture)"
        )
    if config.quality is not None and config.quality != theirs.get("quality"):
        raise TrainingError(
            f"--quality {config.quality} does not match --init {init.name}, a {arch} "
            f"quality {theirs.get('quality')} model: drop --quality"
        )
    hparams = init.hyperparameters()
    other = {
        k: v for k, v in config.overrides.items() if hparams.get(k, v) != v or k not in hparams
    }
    if other:
        asked = ", ".join(f"{k}={v}" for k, v in other.items())
        have = ", ".join(f"{k}={hparams.get(k)}" for k in other)
        raise TrainingError(
            f"--arch-override {asked} does not match --init {init.name} ({arch} with "
            f"{have}): fine-tuning keeps the init's sizes; drop --arch-override"
        )
    if config.text_encoder:
        raise TrainingError(
            f"--text-encoder: --init {init.name} brings its own text encoder "
            f"({hparams.get('text_encoder', 'none')}); drop --text-encoder"
        )
    init.lineage["lmbda"] = theirs.get("lmbda")
    config.arch = arch
    config.quality = theirs.get("quality")
    config.overrides = hparams
    config.metric = config.metric or theirs.get("metric") or "mse"
    if not config.lmbdas:
        lmbda = theirs.get("lmbda")
        if lmbda is None:
            raise TrainingError(
                f"--init {init.name} records no lambda: give --lmbda (the rate-distortion "
                "trade-off to fine-tune for)"
            )
        config.lmbdas = [float(lmbda)]
