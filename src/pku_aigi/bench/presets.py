"""Which codecs a benchmark runs, at which qualities: the ``pku-aigi`` protocol and more.

The PKU-AIGI-500K paper (Duan et al., JETCAS 2024) compares BPG (HEVC intra),
bmshj2018-hyperprior, mbt2018, cheng2020-attn, VTM (VVC intra), TCM and CATC at four
rate points each, learned codecs padding the input to a multiple of 128 and CATC
counting its prompt in the bitrate. HEVC and VVC here are ffmpeg's x265 and VVenC
intra encoders (the BPG / VTM stand-ins); learned codecs come from the model zoo
(``models/zoo.json``) or from ``--model`` folders / Hub ids, and are listed as
unavailable, with the reason, when their weights cannot be loaded.

The anchors' speed settings move every BD-rate measured against them: ``--protocol
pku-aigi`` codes VVC and HEVC with their strongest presets (``PROTOCOL_OPTIONS``, closest
to VTM / HM), plain ``bench`` with the codecs' fast defaults. ``anchor_costs.json``, made
by ``benchmarks/bench_anchors.py``, holds what each speed setting costs in BD-rate
against the slowest one, so that a report can say how far its anchor is from it.
"""

from __future__ import annotations

import fnmatch
import logging
from collections import defaultdict
from dataclasses import dataclass

from ..errors import PkuAigiError
from .costs import ANCHOR_COSTS_FILE, anchor_costs
from .sweep import CodecRun

logger = logging.getLogger(__name__)

PAD_MULTIPLE = 128
# Conventional codecs of the protocol and their grids (the codec's own quality scale),
# chosen so that their bitrates span the learned codecs' range on the validation
# images (about 0.05 .. 0.6 bpp) with enough overlap for BD-rate.
# Measured on ../shared/data (1024² MJ5.2, 512² SD2.1B): QP 42 -> 0.13-0.31 bpp,
# QP 27 -> 1.0-1.8 bpp, 27-38 dB PSNR, spanning CompressAI qualities 1-4.
PROTOCOL_CONVENTIONAL: dict[str, tuple[float, ...]] = {
    "hevc": (42, 37, 32, 27),
    "vvc": (42, 37, 32, 27),
}
# The strongest speed settings (benchmarks/bench_anchors.py, README "Anchor strength"):
# VVenC's slowest preset; x265 veryslow, within 1 % BD-rate of placebo.
PROTOCOL_OPTIONS: dict[str, dict[str, str]] = {
    "vvc": {"preset": "slower"},
    "hevc": {"preset": "veryslow"},
}
PROTOCOL_LEARNED_QUALITIES = (1, 2, 3, 4)  # four rate points, as in the paper
# Learned architectures of the protocol (shell patterns), in the paper's order; TCM is
# any of its sizes.
PROTOCOL_LEARNED = ("bmshj2018-hyperprior", "mbt2018", "cheng2020-attn", "tcm-*", "catc")
PROTOCOL_METRIC = "mse"  # the paper scores the MSE-trained models with both metrics
FINETUNED_SUFFIX = "-finetuned"  # the family name of fine-tuned --model models


@dataclass
class Selection:
    """Codec runs of a benchmark plus the codecs left out and why."""

    runs: list[CodecRun]
    unavailable: dict[str, str | PkuAigiError]  # codec -> reason
    padding: int | None = None  # pad multiple forced on learned codecs, if any


def parse_qualities(items: list[str] | None) -> dict[str, tuple[float, ...]]:
    """``["jpeg=20,50,80", ...]`` -> ``{"jpeg": (20.0, 50.0, 80.0)}``."""
    from ..codecs.by_name import canonical_name, is_known

    grids = {}
    for item in items or []:
        name, sep, values = item.partition("=")
        try:
            grid = tuple(float(v) for v in values.split(",") if v.strip())
        except ValueError:
            grid = ()
        if not sep or not name.strip() or not grid:
            raise PkuAigiError(
                f"--qualities {item!r}: expected CODEC=Q1,Q2,... (e.g. jpeg=20,50,80)"
            )
        name = name.strip()
        name = canonical_name(name) if is_known(name) else name  # "JPEG=..." means jpeg
        grids[name] = tuple(int(q) if q.is_integer() else q for q in grid)
    return grids


def parse_codec_options(items: list[str] | None) -> dict[str, dict[str, str]]:
    """``["vvc:preset=slower", "avif:speed=2"]`` -> ``{"vvc": {"preset": "slower"}, ...}``."""
    options: dict[str, dict[str, str]] = defaultdict(dict)
    for item in items or []:
        codec, _, setting = item.partition(":")
        key, sep, value = setting.partition("=")
        if not (codec.strip() and key.strip() and sep and value.strip()):
            raise PkuAigiError(
                f"--codec-option {item!r}: expected CODEC:OPTION=VALUE (e.g. vvc:preset=slower)"
            )
        options[codec.strip()][key.strip()] = value.strip()
    return dict(options)


def _codec(cls, options: dict, name: str):
    """An instance of the codec class with ``options``; unknown options said clearly."""
    try:
        return cls(**options)
    except TypeError:
        speed = getattr(cls, "speed_option", None)
        has = f"its speed option is {speed!r}" if speed else "it has no speed option"
        raise PkuAigiError(
            f"codec {name!r} has no option {', '.join(map(repr, options))} ({has})"
        ) from None


def conventional_runs(
    names: list[str],
    grids: dict[str, tuple[float, ...]],
    options: dict[str, dict] | None = None,
) -> tuple[list[CodecRun], dict[str, str]]:
    """Runs of registry codecs; unavailable ones (missing binary or library) listed.

    ``options``: constructor options per codec name, e.g. ``{"vvc": {"preset": "slower"}}``.
    """
    from .. import codecs

    runs, unavailable = [], {}
    options = {codecs.canonical_name(k): v for k, v in (options or {}).items()}
    reasons = codecs.availability()
    for name in map(codecs.canonical_name, names):  # unknown: CodecError naming close ones
        if reasons[name] is not None:
            unavailable[name] = reasons[name]
            continue
        codec_options = dict(options.get(name, {}))
        # a bad preset: CodecError listing the presets
        codec = _codec(codecs.codec_class(name), codec_options, name)
        qualities = grids.get(name) or tuple(codec.ladder.sweep)
        for quality in qualities:
            codec.check_quality(quality)  # out of range / not whole: CodecError naming the scale
        runs.append(CodecRun(name, tuple(qualities), options=codec_options))
    return runs, unavailable


def speed_setting(name: str, options: dict | None = None) -> tuple[str, object] | None:
    """``(option, value)`` of the codec's speed setting as run, None if it has none."""
    from .. import codecs

    cls = codecs.codec_class(name)
    option = getattr(cls, "speed_option", None)
    if option is None:
        return None
    return option, getattr(_codec(cls, dict(options or {}), name), option)


def anchor_strength(name: str, options: dict | None = None) -> str | None:
    """One line: the anchor's speed setting and, when not the strongest, what it costs.

    The cost is the BD-rate (PSNR) of that setting against the slowest one, from
    ``anchor_costs.json``, over the protocol's rates when measured there.
    """
    from .. import codecs

    setting = speed_setting(name, options)
    if setting is None:
        return None
    option, value = setting
    strongest = codecs.codec_class(name).speed_settings()[-1]
    if str(value) == str(strongest):
        return f"{option} {value} (the strongest)"
    table = anchor_costs()
    rows = {str(row[option]): row for row in table.get("codecs", {}).get(name, [])}
    row = rows.get(str(value))
    text = f"{option} {value}, not the strongest ({strongest})"
    if row is None:
        return f"{text}; its cost is not measured in {ANCHOR_COSTS_FILE.name}"
    if row.get("bd_rate_psnr_protocol") is not None:
        cost, where = row["bd_rate_psnr_protocol"], "at the protocol's rates "
        where += "{:.2f}-{:.2f} bpp".format(*row["bpp_protocol"])
    else:
        cost, where = row["bd_rate_psnr"], "over the full overlap"
    return (
        f"{text}: it needs {cost:+.1f} % bits (BD-rate PSNR {where}) for the quality of "
        f"{option} {strongest} at {row['time_vs_slowest']:.2g}x its encode time (measured by "
        f"benchmarks/bench_anchors.py on {table['images']}), so BD-rates against it look "
        f"better by about that much; use --protocol pku-aigi or --anchor-preset {strongest}"
    )


def _learned_codec(
    sources: dict[int, object],
    name: str,
    pad_multiple: int | None,
    device: str,
    architecture=None,
    references: dict[int, tuple[str, str | None]] | None = None,
):
    """A learned codec family over ``{quality: repo id, folder or model}``, loaded now;
    ``references`` names the models given as objects: ``{quality: (repo id, revision)}``."""
    from ..codecs.families import LearnedCodecFamily
    from ..codecs.learned import LearnedCodec

    options = {"device": device}
    if pad_multiple:
        options["pad_multiple"] = pad_multiple
    for quality, (model_id, revision) in (references or {}).items():
        sources[quality] = LearnedCodec.from_model(
            sources[quality], model_id=model_id, revision=revision, **options
        )
    return LearnedCodecFamily(name, sources, architecture=architecture, **options).load()


def _model_reference(source: str) -> tuple[str, str | None]:
    """What a model loaded from ``source`` records in its files and version: its Hub repo
    id, or a folder's portable name and snapshot revision (as ``LearnedCodec.from_pretrained``)."""
    from pathlib import Path

    from ..models.hub.folder import portable_reference

    return portable_reference(source) if Path(source).is_dir() else (source, None)


def learned_runs(
    models: list[str],
    *,
    pad_multiple: int | None = None,
    device: str = "cpu",
) -> tuple[list[CodecRun], dict[str, str]]:
    """Runs of ``--model`` folders or Hub ids, grouped by architecture and metric;
    fine-tuned models (with a ``base_model``) form a family of their own."""
    from ..models import AutoCodec
    from ..models.hub.lineage import LINEAGE_KEY

    groups: dict[str, dict[int, object]] = defaultdict(dict)
    references: dict[str, dict[int, tuple]] = defaultdict(dict)
    architectures: dict[str, str] = {}
    unavailable = {}
    for source in models:
        try:
            model = AutoCodec.from_pretrained(source)
        except PkuAigiError as error:
            unavailable[source] = error  # kept whole: reports print one message per cause
            continue
        except Exception as error:  # noqa: BLE001 - any hub/network error: listed as unavailable
            unavailable[source] = f"cannot load: {type(error).__name__}: {error}"
            continue
        config = model.config
        label = config.get("architecture", model.architecture)
        if config.get("metric") and config["metric"] != "mse":
            label += f"-{config['metric']}"
        if config.get(LINEAGE_KEY):  # its own curve, beside its base's
            label += FINETUNED_SUFFIX
        quality = int(config.get("quality") or 0)
        if quality in groups[label]:
            raise PkuAigiError(
                f"--model {source}: a second {label} model at quality {quality}; "
                "benchmark different qualities of one architecture, or run them separately"
            )
        groups[label][quality] = model
        references[label][quality] = _model_reference(source)
        architectures[label] = model.architecture
    runs = []
    for label, sources in groups.items():
        codec = _learned_codec(
            sources, label, pad_multiple, device, architectures[label], references[label]
        )
        runs.append(CodecRun(label, tuple(sorted(sources)), codec=codec))
    return runs, unavailable


def zoo_runs(
    architectures: tuple[str, ...],
    *,
    metric: str = PROTOCOL_METRIC,
    qualities: tuple[int, ...] | None = PROTOCOL_LEARNED_QUALITIES,
    pad_multiple: int | None = None,
    device: str = "cpu",
) -> tuple[list[CodecRun], dict[str, str]]:
    """Runs of the zoo's models of ``architectures`` (shell patterns, e.g. ``tcm-*``).

    Each architecture runs at ``qualities`` (or its lowest ones when the zoo lacks them;
    every quality of the zoo when None). Models trained on AI-generated images are
    preferred over CompressAI's Vimeo-90k ones; a model that is not cached is fetched
    (Hub repo, or the published checkpoint converted once).
    """
    from ..codecs.families import group_by_family, zoo_entries

    families = group_by_family(zoo_entries())
    runs, unavailable = [], {}
    for wanted in architectures:
        by_arch = {
            arch: sources
            for (arch, family_metric), sources in families.items()
            if fnmatch.fnmatchcase(arch, wanted) and family_metric == metric
        }
        if not by_arch:
            unavailable[wanted] = f"no {metric} weights in the model zoo (models/zoo.json)"
            continue
        for arch, sources in sorted(by_arch.items()):
            if qualities is None:
                chosen = sorted(sources)
            else:
                chosen = [q for q in sorted(sources) if q in qualities]
                chosen = chosen or sorted(sources)[: len(qualities)]
            sources = {q: sources[q] for q in chosen}
            try:
                codec = _learned_codec(sources, arch, pad_multiple, device, architecture=arch)
            except PkuAigiError as error:  # kept whole: reports print one message per cause
                unavailable[arch] = error
                continue
            except Exception as error:  # noqa: BLE001 - any load error (offline, no weights): unavailable
                unavailable[arch] = f"weights cannot be loaded ({type(error).__name__}: {error})"
                continue
            runs.append(CodecRun(arch, tuple(sorted(sources)), codec=codec))
    return runs, unavailable


def protocol_selection(
    device: str = "cpu",
    grids: dict | None = None,
    options: dict[str, dict] | None = None,
    *,
    strongest: bool = True,
) -> Selection:
    """The paper's setting: HEVC, VVC and the learned codecs whose weights exist.

    ``strongest``: VVC and HEVC at ``PROTOCOL_OPTIONS`` (else the codecs' fast defaults);
    ``options`` override them per codec.
    """
    grids = {**PROTOCOL_CONVENTIONAL, **(grids or {})}
    merged = {n: dict(PROTOCOL_OPTIONS.get(n, {})) if strongest else {} for n in grids}
    for name, extra in (options or {}).items():
        merged.setdefault(name, {}).update(extra)
    runs, unavailable = conventional_runs(list(PROTOCOL_CONVENTIONAL), grids, merged)
    learned, missing = zoo_runs(PROTOCOL_LEARNED, pad_multiple=PAD_MULTIPLE, device=device)
    unavailable.update(missing)
    return Selection(runs + learned, unavailable, padding=PAD_MULTIPLE)
