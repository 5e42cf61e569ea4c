"""``pku-aigi bench``: the rate-distortion benchmark as one command."""

from __future__ import annotations

import argparse
import logging
import shlex
from datetime import datetime, timezone
from pathlib import Path

from ..errors import PkuAigiError
from .prompt_modes import PROMPT_MODES

logger = logging.getLogger(__name__)

DEFAULT_OUT = "bench-results"


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
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    what = parser.add_argument_group("codecs")
    what.add_argument("--protocol", choices=["pku-aigi"], help="the paper's codecs and settings "
                      "(default when neither --codecs nor --model is given)")  # fmt: skip
    what.add_argument("--codecs", help="comma-separated codec names (`pku-aigi codecs`, plugins "
                      "included), e.g. jpeg,webp,vvc")  # fmt: skip
    what.add_argument("--model", action="append", default=[], metavar="DIR_OR_REPO",
                      help="a learned model folder or Hub id (repeatable; one curve per architecture)")  # fmt: skip
    what.add_argument("--qualities", action="append", default=[], metavar="CODEC=Q1,Q2",
                      help="quality grid of a conventional codec (repeatable)")  # fmt: skip
    what.add_argument("--anchor", default="vvc", help="codec the BD values are relative to")
    data = parser.add_argument_group("images (default: the Hub's validation split, all configs)")
    data.add_argument("--images", metavar="DIR", help="a folder of images (subsets = sub-folders)")
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
        "--workers", type=int, metavar="N", help="worker processes (default: all cores)"
    )
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


def _check_out(out: Path, force: bool) -> None:
    from .sweep import CACHE_FILE, LOCK_FILE

    if out.is_file():
        raise PkuAigiError(f"--out {out} is a file; give a folder")
    ours = {CACHE_FILE, LOCK_FILE}
    busy = out.is_dir() and any(p.name not in ours for p in out.iterdir())
    if busy and not (out / CACHE_FILE).exists() and not force:
        raise PkuAigiError(
            f"--out {out} is not empty and holds no {CACHE_FILE}: it is not a bench folder. "
            "Choose another --out, or pass --force to write the report files into it"
        )


def _load_images(args):
    from .. import subsets
    from .images import images_from_dataset, images_from_folder

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
    for name in (args.codecs or "").split(","):
        if name.strip():
            codecs.codec_class(name.strip())
    if codecs.registry.is_known(args.anchor):  # "--anchor VVC" means vvc
        args.anchor = codecs.canonical_name(args.anchor)


def _select(args, device: str):
    from . import presets

    grids = presets.parse_qualities(args.qualities)
    use_protocol = args.protocol or not (args.codecs or args.model)
    if use_protocol:
        selection = presets.protocol_selection(device, grids)
    else:
        selection = presets.Selection([], {})
    if args.codecs:
        names = [n.strip() for n in args.codecs.split(",") if n.strip()]
        runs, unavailable = presets.conventional_runs(names, grids)
        known = {r.name for r in selection.runs}
        selection.runs += [r for r in runs if r.name not in known]
        selection.unavailable.update(unavailable)
    if args.model:
        pad = selection.padding if use_protocol else None
        runs, unavailable = presets.learned_runs(args.model, pad_multiple=pad, device=device)
        selection.runs += runs
        selection.unavailable.update(unavailable)
    unknown = set(grids) - {r.name for r in selection.runs} - set(selection.unavailable)
    if unknown:
        raise PkuAigiError(
            f"--qualities names codecs not in this run: {', '.join(sorted(unknown))}"
        )
    if not selection.runs:
        reasons = "; ".join(f"{k}: {v}" for k, v in selection.unavailable.items())
        raise PkuAigiError(f"no codec to benchmark ({reasons or 'none selected'})")
    return selection, use_protocol


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


def run_bench(args) -> int:
    from . import prompt_modes
    from .sweep import out_dir_lock

    out = Path(args.out)
    _check_out(out, args.force)
    _check_codec_names(args)  # before any download: a typo fails at once
    images, source = _load_images(args)
    images = prompt_modes.apply_to_images(images, args.prompt_mode, args.prompt_seed)
    device = _resolve_device(args.device)
    selection, use_protocol = _select(args, device)
    prompt_modes.label_runs(selection.runs, args.prompt_mode)
    notes = [f"codec {name} left out: {reason}" for name, reason in selection.unavailable.items()]
    extras = _extras(args, device, notes)

    with out_dir_lock(out):  # held until the report is written
        return _sweep_and_report(args, out, images, source, device, selection, use_protocol,
                                 notes, extras)  # fmt: skip


def _sweep_and_report(args, out, images, source, device, selection, use_protocol, notes, extras):
    from .. import __version__
    from . import bdrate
    from .report import write_report
    from .sweep import run_sweep

    result = run_sweep(
        images, selection.runs, out, workers=args.workers, extras=extras,
        progress=not args.no_progress,
    )  # fmt: skip
    kept = sorted({row["codec"] for row in result.earlier})
    if kept:
        notes.append(
            f"kept from earlier runs into {out} (same images): {', '.join(kept)} "
            f"({len(result.earlier)} measurements)"
        )
    notes += [f"failed: {f.codec} q={f.quality} on {f.image}: {f.error}" for f in result.failures]

    per_subset: dict[str, int] = {}
    for image in images:
        per_subset[image.subset] = per_subset.get(image.subset, 0) + 1
    settings = {
        "command": command_line(args),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "pku-aigi": __version__,
        "protocol": "pku-aigi (learned codecs padded to a multiple of 128, prompts counted)"
        if use_protocol
        else "custom",
        "images": f"{len(images)} ({', '.join(f'{k}: {v}' for k, v in per_subset.items())}) — {source}",
        "codecs": "; ".join(
            f"{r.display_name} [{r.version()}] q={','.join(format(q, 'g') for q in r.qualities)}"
            for r in selection.runs
        ),
        "anchor": args.anchor,
        "prompt mode": f"{args.prompt_mode} (seed {args.prompt_seed})",
        "bpp": "bytes of the whole stored file × 8 / pixels (for .aigic: header, prompt and "
        "payload; payload bpp counts the entropy-coded strings only)",
        "metrics": "PSNR and MS-SSIM (pytorch_msssim, data_range 255) on RGB 8-bit; "
        "MS-SSIM dB = -10 log10(1 - mean MS-SSIM); points are means over images",
        "BD interpolation": f"{bdrate.INTERPOLATION} (bjontegaard package)",
        "device (learned codecs)": device,
        "measurements": f"{result.measured} new, {result.reused} reused from the cache",
    }
    report = write_report(
        result.rows + result.earlier, out, images_per_subset=per_subset, anchor=args.anchor,
        settings=settings, notes=notes,
    )  # fmt: skip
    print(
        f"bench: {len(result.rows)} measurements ({result.measured} new); report: {out / 'report.md'}"
    )
    for note in report["notes"]:
        print(f"note: {note}")
    return 1 if result.failures else 0
