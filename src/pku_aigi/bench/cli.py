"""``pku-aigi bench``: the rate-distortion benchmark as one command."""

from __future__ import annotations

import argparse
import logging
import shlex
from datetime import datetime, timezone
from pathlib import Path

from ..errors import PkuAigiError, by_cause
from .prompt_modes import PROMPT_MODES

logger = logging.getLogger(__name__)

DEFAULT_OUT = "bench-results"


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default unless it is None or False (a flag) or the help already
    says it."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "(default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="rate-distortion benchmark: BD-rate tables, RD plots, CompressAI JSON",
        description=(
            "Encode and decode every image with every codec at every quality; write "
            "measurements.csv, report.md (BD tables vs the anchor), rd_*.png and one "
            "CompressAI results JSON per codec into --out. Without input arguments it runs "
            "on the Hub's validation split of all five subsets (vaild.zip, ~121 MB). "
            "Rerunning the same command reuses finished measurements."
        ),
        formatter_class=_DefaultsFormatter,
    )
    what = parser.add_argument_group("codecs")
    what.add_argument("--protocol", choices=["pku-aigi"], help="the paper's codecs and settings, "
                      "VVC and HEVC at their strongest presets (without --codecs or --model, "
                      "its codecs run at their fast default presets)")  # fmt: skip
    what.add_argument("--codecs", help="comma-separated codec names (`pku-aigi codecs`, plugins "
                      "included), e.g. jpeg,webp,vvc, and zoo architectures, e.g. mbt2018-mean "
                      "(its MSE quality ladder from the model zoo)")  # fmt: skip
    what.add_argument("--model", action="append", default=[], metavar="DIR_OR_REPO",
                      help="a learned model folder or Hub id (repeatable; one curve per architecture)")  # fmt: skip
    what.add_argument("--qualities", action="append", default=[], metavar="CODEC=Q1,Q2",
                      help="quality grid of a conventional codec (repeatable)")  # fmt: skip
    what.add_argument("--anchor", default="vvc", help="codec the BD values are relative to")
    what.add_argument("--anchor-preset", metavar="VALUE",
                      help="speed setting of the anchor codec (vvc/hevc: preset, avif: speed), "
                      "e.g. slower")  # fmt: skip
    what.add_argument("--codec-option", action="append", default=[], metavar="CODEC:OPTION=VALUE",
                      help="an option of a conventional codec, e.g. vvc:preset=slower or "
                      "avif:speed=2 (repeatable)")  # fmt: skip
    what.add_argument("--bd-range", default="learned", metavar="learned|full|LOW,HIGH",
                      help="bpp interval of the BD values: the learned codecs' rates (else the "
                      "anchor's protocol points), the full overlap, or LOW,HIGH bpp")  # fmt: skip
    data = parser.add_argument_group("images (default: the Hub's validation split, all configs)")
    data.add_argument("--images", metavar="DIR", help="a folder of images (subsets = sub-folders)")
    data.add_argument("--sample", action="store_true",
                      help="the built-in sample: 8 CC0 DiffusionDB images with prompts, offline")  # fmt: skip
    data.add_argument("--config", help="dataset config(s), comma-separated, or 'all'")
    data.add_argument("--split", default="validation", help="dataset split")
    data.add_argument("--data-dir", metavar="DIR", help="local folder laid out like the Hub repo")
    data.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="cache of downloads and Arrow files (datasets' default if unset)",
    )
    data.add_argument("--limit", type=int, metavar="N", help="first N images of each subset")
    run = parser.add_argument_group("run")
    run.add_argument(
        "--out", default=DEFAULT_OUT, help="output folder (also the measurement cache)"
    )
    run.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes (default: all cores); "
        "with --executor ray, measurements in flight at once (default: the cluster's CPUs)",
    )
    run.add_argument("--executor", choices=["local", "ray"], default="local",
                     help="where conventional codecs run: worker processes here, or Ray tasks "
                     "on the cluster at RAY_ADDRESS (a local Ray when unset; pip install "
                     "'pku-aigi[ray]')")  # fmt: skip
    run.add_argument("--dry-run", action="store_true",
                     help="print the measurements per codec and setting, how many are cached in "
                     "--out and an estimate of their CPU time; code nothing, write nothing")  # fmt: skip
    run.add_argument(
        "--device", default="auto", help="device of learned codecs: auto, cpu, cuda, cuda:1"
    )
    run.add_argument("--clip", action="store_true", help="also score CLIP similarity to the prompt")
    run.add_argument("--clip-model", default=None, help="transformers CLIP model id")
    run.add_argument("--prompt-mode", choices=PROMPT_MODES, default="correct",
                     help="prompt given to the codecs (ablation, see prompt_modes.py): own, none, "
                     "words shuffled, or another image's")  # fmt: skip
    run.add_argument("--prompt-seed", type=int, default=0, help="seed of shuffled/swapped prompts")
    run.add_argument(
        "--lpips", action="store_true", help="also score LPIPS (needs the lpips package)"
    )
    run.add_argument(
        "--force", action="store_true", help="write into a non-empty --out not made by bench"
    )
    run.add_argument(
        "--skip-unavailable",
        action="store_true",
        help="run without the codecs named in --codecs or --model that cannot run here "
        "(without it they end the run with exit status 2 and the reason)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_bench, bench_parser=parser)


def command_line(args) -> str:
    """The command as typed, rebuilt from the options that differ from their defaults."""
    parts = ["pku-aigi", "bench"]
    for action in args.bench_parser._actions:
        value = getattr(args, action.dest, None)
        if not action.option_strings or value == action.default or action.dest == "help":
            continue
        values = value if isinstance(value, list) else [value]
        for item in values:
            parts.append(action.option_strings[-1])
            if not isinstance(item, bool):
                parts.append(shlex.quote(str(item)))
    return " ".join(parts)


def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _check_out(out: Path, force: bool) -> bool:
    """Refuse a non-empty --out that is not a bench folder unless ``force``; True when
    the folder is bench's own (new, or holding its measurement cache)."""
    from ..outputs import check_output_folder
    from .sweep import CACHE_FILE, LOCK_FILE

    check_output_folder(out, option="--out")
    ours = {CACHE_FILE, LOCK_FILE}
    busy = out.is_dir() and any(p.name not in ours for p in out.iterdir())
    if busy and not (out / CACHE_FILE).exists() and not force:
        raise PkuAigiError(
            f"--out {out} is not empty and holds no {CACHE_FILE}: it is not a bench folder. "
            "Choose another --out, or pass --force to write the report files into it"
        )
    return not busy or (out / CACHE_FILE).exists()


def _load_images(args):
    from .. import subsets
    from .images import images_from_dataset, images_from_folder

    if args.sample:
        from ..sample import sample_dir

        if args.images or args.config or args.data_dir or args.cache_dir:
            raise PkuAigiError(
                "--sample cannot be combined with --images/--config/--data-dir/--cache-dir: "
                "choose one input"
            )
        images = images_from_folder(sample_dir(), args.limit)
        return images, "the built-in sample (DiffusionDB, CC0 1.0; not PKU-AIGI-500K)"
    if args.images:
        if args.config or args.data_dir or args.cache_dir:
            raise PkuAigiError(
                "--images cannot be combined with --config/--data-dir/--cache-dir: choose one input"
            )
        return images_from_folder(args.images, args.limit), f"folder {args.images}"
    configs = list(subsets.CONFIGS)
    if args.config and args.config != "all":
        configs = [c.strip() for c in args.config.split(",") if c.strip()]
        for config in configs:
            subsets.get_subset(config)
    images = images_from_dataset(configs, args.split, args.data_dir, args.limit, args.cache_dir)
    where = args.data_dir or f"hf://datasets/{subsets.HUB_REPO_ID}"
    return images, f"{','.join(configs)} / {args.split} from {where}"


def _check_codec_names(args) -> None:
    from .. import codecs
    from .presets import parse_qualities

    parse_qualities(args.qualities)
    zoo_architectures = _zoo_architectures()
    for name in (args.codecs or "").split(","):
        if name.strip() and name.strip() not in zoo_architectures:
            codecs.codec_class(name.strip())
    if codecs.by_name.is_known(args.anchor):  # "--anchor VVC" means vvc
        args.anchor = codecs.canonical_name(args.anchor)
    _codec_options(args)  # after the anchor's name is canonical
    parse_bd_range(args.bd_range)


def parse_bd_range(text: str):
    """``--bd-range``: "learned", "full" or a ``(low, high)`` bpp tuple."""
    if text in ("learned", "full"):
        return text
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        low = high = -1.0
    if not 0 < low < high:
        raise PkuAigiError(
            f"--bd-range {text!r}: expected learned, full, or LOW,HIGH bpp with "
            "0 < LOW < HIGH (e.g. 0.1,0.8)"
        )
    return (low, high)


def _codec_options(args) -> dict[str, dict]:
    """``--codec-option`` items plus ``--anchor-preset`` as the anchor's speed option."""
    from .. import codecs
    from .presets import parse_codec_options

    options = {
        codecs.canonical_name(name) if codecs.by_name.is_known(name) else name: values
        for name, values in parse_codec_options(args.codec_option).items()
    }
    if args.anchor_preset is not None:
        try:
            option = getattr(codecs.codec_class(args.anchor), "speed_option", None)
        except PkuAigiError:
            option = None
        if option is None:
            raise PkuAigiError(
                f"--anchor-preset: the anchor {args.anchor!r} has no speed setting; it applies "
                "to vvc and hevc (preset) and avif (speed)"
            )
        options.setdefault(args.anchor, {})[option] = args.anchor_preset
    return options


def _zoo_architectures() -> set[str]:
    from ..models import zoo

    return {entry["architecture"] for entry in zoo.find_models()}


def _select(args, device: str):
    from . import presets

    grids = presets.parse_qualities(args.qualities)
    options = _codec_options(args)
    use_protocol = args.protocol or not (args.codecs or args.model)
    if use_protocol:
        selection = presets.protocol_selection(
            device, grids, options, strongest=bool(args.protocol)
        )
    else:
        selection = presets.Selection([], {})
    if args.codecs:
        names = [n.strip() for n in args.codecs.split(",") if n.strip()]
        learned = [n for n in names if n in _zoo_architectures()]
        conventional = [n for n in names if n not in learned]
        runs, unavailable = presets.conventional_runs(conventional, grids, options)
        for name in learned:  # the architecture's whole ladder, or its --qualities
            ladder = tuple(int(q) for q in grids.get(name, ())) or None
            family_runs, missing = presets.zoo_runs((name,), qualities=ladder, device=device)
            runs += family_runs
            unavailable.update(missing)
        known = {r.name for r in selection.runs}
        selection.runs += [r for r in runs if r.name not in known]
        selection.unavailable.update(unavailable)
    if args.model:
        pad = selection.padding if use_protocol else None
        runs, unavailable = presets.learned_runs(args.model, pad_multiple=pad, device=device)
        selection.runs += runs
        selection.unavailable.update(unavailable)
    for flag, named in (("--qualities", grids), ("--codec-option", options)):
        unknown = set(named) - {r.name for r in selection.runs} - set(selection.unavailable)
        if unknown:
            raise PkuAigiError(f"{flag} names codecs not in this run: {', '.join(sorted(unknown))}")
    named = [n.strip() for n in (args.codecs or "").split(",") if n.strip()] + args.model
    missing = {name: selection.unavailable[name] for name in named if name in selection.unavailable}
    if missing and not args.skip_unavailable:
        raise PkuAigiError(
            f"{_reasons(missing)}; add --skip-unavailable to run the other codecs without them"
        )
    if not selection.runs:
        raise PkuAigiError(
            f"no codec to benchmark ({_reasons(selection.unavailable) or 'none selected'})"
        )
    return selection, use_protocol


def _reasons(unavailable: dict) -> str:
    """Why codecs cannot run, one message per cause."""
    return "; ".join(
        f"{', '.join(names)} cannot run: {message}" for names, message in by_cause(unavailable)
    )


def _extras(args, device: str, notes: list[str]):
    from .. import metrics
    from .sweep import Extras

    extras = Extras()
    if args.clip:
        try:
            extras.clip = metrics.ClipScorer(args.clip_model or metrics.DEFAULT_CLIP_MODEL, device)
        except metrics.MetricUnavailableError as error:
            notes.append(str(error))
            logger.warning("%s", error)
    if args.lpips:
        try:
            extras.lpips = metrics.LpipsScorer(device=device)
        except metrics.MetricUnavailableError as error:
            notes.append(str(error))
            logger.warning("%s", error)
    return extras


def _protocol_line(args, use_protocol: bool) -> str:
    if not use_protocol:
        return "custom"
    padding = "learned codecs padded to a multiple of 128, prompts counted"
    if args.protocol:
        return f"pku-aigi (VVC and HEVC at their strongest presets; {padding})"
    return (
        f"pku-aigi codecs and grids at the codecs' fast default presets, a quick look ({padding}); "
        "--protocol pku-aigi runs VVC and HEVC at their strongest presets, as the paper's anchors"
    )


def _anchor_line(anchor: str, runs) -> str:
    """The anchor, its speed setting and what a setting short of the strongest costs."""
    from . import presets

    run = next((r for r in runs if r.display_name == anchor and r.parallel), None)
    strength = presets.anchor_strength(run.name, run.options) if run else None
    return f"{anchor}, {strength}" if strength else anchor


def _executor(args):
    """The executor of the conventional codecs (Ray's import checked at once; a dry
    run needs no Ray)."""
    if args.workers is not None and args.workers < 1:
        raise PkuAigiError(f"--workers {args.workers}: expected 1 or more")
    if args.executor == "ray" and not args.dry_run:
        from .ray_executor import RayExecutor

        executor = RayExecutor(max_in_flight=args.workers)
        executor.check()
        return executor
    from .sweep import ProcessPool

    return ProcessPool(args.workers)


def _dry_run(args, out: Path, images, source: str, selection, extras) -> int:
    from .dry_run import dry_run
    from .sweep import default_workers

    workers = args.workers or default_workers()
    plan = dry_run(images, selection.runs, out, extras.fields(), workers)
    print(f"bench --dry-run: nothing coded, nothing written; {len(images)} images from {source}")
    print(plan.format())
    if args.executor == "ray":
        print("on Ray the wall time divides by the cluster's CPUs (or --workers) instead")
    for names, reason in by_cause(selection.unavailable):
        print(f"note: {', '.join(names)} left out: {reason}")
    return 0


def run_bench(args) -> int:
    from ..outputs import make_output_folder
    from . import prompt_modes
    from .sweep import out_dir_lock

    out = Path(args.out)
    args.own_out = _check_out(out, args.force)
    _check_codec_names(args)  # before any download: a typo fails at once
    executor = _executor(args)
    images, source = _load_images(args)
    images = prompt_modes.apply_to_images(images, args.prompt_mode, args.prompt_seed)
    device = _resolve_device(args.device)
    selection, use_protocol = _select(args, device)
    prompt_modes.label_runs(selection.runs, args.prompt_mode)
    notes = [
        f"{'codecs' if len(names) > 1 else 'codec'} {', '.join(names)} left out: {reason}"
        for names, reason in by_cause(selection.unavailable)
    ]
    extras = _extras(args, device, notes)
    if args.dry_run:
        return _dry_run(args, out, images, source, selection, extras)

    make_output_folder(out, option="--out")
    with out_dir_lock(out):  # held until the report is written
        return _sweep_and_report(args, out, images, source, device, selection, use_protocol,
                                 notes, extras, executor)  # fmt: skip


def _sweep_and_report(
    args, out, images, source, device, selection, use_protocol, notes, extras, executor
):
    from .. import __version__
    from . import bdrate
    from .finetune import pair_members, run_members
    from .report import RUN_FILE, write_report, write_run_info
    from .sweep import run_sweep

    (out / RUN_FILE).unlink(missing_ok=True)  # until this run's report is whole
    result = run_sweep(
        images, selection.runs, out, workers=args.workers, extras=extras,
        progress=not args.no_progress, executor=executor,
    )  # fmt: skip
    kept = sorted({row["codec"] for row in result.earlier})
    if kept:
        notes.append(
            f"kept from earlier runs into {out} (same images): {', '.join(kept)} "
            f"({len(result.earlier)} measurements)"
        )
    notes += [
        f"retried once after a failure: {f.codec} q={f.quality} on {f.image}: {f.error}"
        for f in result.retried
    ]
    notes += [f"failed: {f.codec} q={f.quality} on {f.image}: {f.error}" for f in result.failures]

    pairings, unpaired = pair_members(run_members(selection.runs))
    notes += unpaired
    per_subset: dict[str, int] = {}
    for image in images:
        per_subset[image.subset] = per_subset.get(image.subset, 0) + 1
    settings = {
        "command": command_line(args),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "pku-aigi": __version__,
        "protocol": _protocol_line(args, use_protocol),
        "images": f"{len(images)} ({', '.join(f'{k}: {v}' for k, v in per_subset.items())}) — {source}",
        "codecs": "; ".join(
            f"{r.display_name} [{r.version()}] q={','.join(format(q, 'g') for q in r.qualities)}"
            for r in selection.runs
        ),
        "anchor": _anchor_line(args.anchor, selection.runs),
        "prompt mode": f"{args.prompt_mode} (seed {args.prompt_seed})",
        "bpp": "bytes of the whole stored file × 8 / pixels (for .aigic: header, prompt and "
        "payload; payload bpp counts the entropy-coded strings only)",
        "metrics": "PSNR and MS-SSIM (pytorch_msssim, data_range 255) on RGB 8-bit; "
        "MS-SSIM dB = -10 log10(1 - mean MS-SSIM); points are means over images",
        "BD interpolation": f"{bdrate.INTERPOLATION} (bjontegaard package)",
        "device (learned codecs)": device,
        "executor (conventional codecs)": executor.describe(),
        "measurements": f"{result.measured} new, {result.reused} reused from the cache",
    }
    report = write_report(
        result.rows + result.earlier, out, images_per_subset=per_subset, anchor=args.anchor,
        settings=settings, notes=notes, bd_range=parse_bd_range(args.bd_range),
        learned=[r.display_name for r in selection.runs if not r.parallel],
        remove_stale=args.own_out, finetune_pairs=pairings,
    )  # fmt: skip
    write_run_info(
        out,
        {
            "pku-aigi": __version__,
            "date": settings["date"],
            "command": settings["command"],
            "protocol": settings["protocol"],
            "anchor": args.anchor,
            "bd_range": args.bd_range,
            "device": device,
            "prompt_mode": args.prompt_mode,
            "images": source,
            "images_per_subset": per_subset,
            "codecs": [
                {
                    "name": r.display_name,
                    "version": r.version(),
                    "qualities": list(r.qualities),
                    "options": dict(r.options),
                    "learned": not r.parallel,
                }
                for r in selection.runs
            ],  # fmt: skip
            "kept": kept,
            "failures": len(result.failures),
            "settings": settings,
        },
    )
    print(
        f"bench: {len(result.rows)} measurements ({result.measured} new); report: {out / 'report.md'}"
    )
    for note in report["notes"]:
        print(f"note: {note}")
    return 1 if result.failures else 0
