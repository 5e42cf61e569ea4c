"""``pku-aigi data list|info|export|script``: the dataset from the command line."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..errors import DatasetError
from ..subsets import HUB_REPO_ID, SPLITS, SUBSETS, VALIDATION_ARCHIVE, get_subset


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="PKU-AIGI-500K: list, inspect, export")
    commands = data.add_subparsers(dest="data_command", metavar="COMMAND")

    listing = commands.add_parser("list", help="the five subsets, their splits and Hub files")
    listing.set_defaults(func=cmd_list)

    info = commands.add_parser("info", help="files a config needs, and what a local copy has")
    info.add_argument("config", choices=list(SUBSETS))
    info.add_argument("--data-dir", help="a local copy of (some of) the Hub repo's files")
    info.set_defaults(func=cmd_info)

    export = commands.add_parser(
        "export", help="write Parquet shards + a dataset card (datasets.load_dataset(OUT, cfg))"
    )
    export.add_argument("--config", action="append", required=True, choices=list(SUBSETS))
    export.add_argument("--split", action="append", choices=list(SPLITS))
    export.add_argument("--data-dir", help="local copy of the Hub files (default: download)")
    export.add_argument("--out", required=True, help="output folder (the dataset repo)")
    export.add_argument("--repo-id", default=HUB_REPO_ID, help="source Hub repo")
    export.add_argument("--revision")
    export.add_argument("--cache-dir")
    export.add_argument("--max-shard-size", default="500MB", help="e.g. 500MB (default)")
    export.add_argument("--force", action="store_true", help="replace existing shards")
    export.add_argument("--push-to-hub", metavar="REPO", help="then upload OUT to this repo")
    export.set_defaults(func=cmd_export)

    script = commands.add_parser(
        "script", help="write the Hub repo's card and legacy loading script (datasets < 4)"
    )
    script.add_argument("--out", default="dataset_script", help="folder (default: %(default)s)")
    script.add_argument("--force", action="store_true", help="replace files not written by it")
    script.set_defaults(func=cmd_script)
    data.set_defaults(func=lambda args: data.print_help() or 2)


def cmd_list(args: argparse.Namespace) -> int:
    print(f"{'config':7} {'subset':9} {'train':>8} {'val':>4} {'test':>4}  {'size':10} hub files")
    for config, s in SUBSETS.items():
        files = [
            a.last_disk if not a.is_split else f"{a.parts[0]}..{a.last_disk}"
            for a in s.train_archives
        ]
        size = f"{s.train_size[0]}x{s.train_size[1]}"
        print(
            f"{config:7} {s.title:9} {s.num_train:>8,} {s.num_validation:>4} {s.num_test:>4}  "
            f"{size:10} {' + '.join(files)}, {s.prompt_file or 'no prompt file'}"
        )
    print(f"validation of every subset: {VALIDATION_ARCHIVE}; test splits are not on the Hub")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .splitzip import ZipArchive

    subset = get_subset(args.config)
    print(f"{args.config}: {subset.title} ({subset.generator})")
    for split in SPLITS:
        files = subset.hub_files(split)
        print(f"  {split}: {', '.join(files) if files else 'not on the Hub'}")
    if not args.data_dir:
        return 0
    data_dir = Path(args.data_dir)
    if not data_dir.is_dir():
        raise DatasetError(f"--data-dir {data_dir} is not a folder")
    print(f"in {data_dir}:")
    for archive in subset.train_archives:
        last = data_dir / archive.last_disk
        if not last.exists():
            print(f"  {archive.last_disk}: missing")
            continue
        with ZipArchive.from_last_disk(last) as opened:
            pngs = [m for m in opened.members() if m.filename.lower().endswith(".png")]
            size = sum(os.path.getsize(p) for p in opened.parts)
            print(
                f"  {archive.last_disk}: {len(opened.parts)} part(s), {size / 1e9:.2f} GB, "
                f"{len(pngs)} PNG images"
            )
    for name in ([subset.prompt_file] if subset.prompt_file else []) + [VALIDATION_ARCHIVE]:
        print(f"  {name}: {'present' if (data_dir / name).exists() else 'missing'}")
    test = data_dir / "test" / subset.validation_folder
    print(f"  test/{subset.validation_folder}/: {'present' if test.is_dir() else 'missing'}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export, parse_size, push_to_hub

    out = export(
        args.config,
        args.out,
        splits=args.split,
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
        max_shard_size=parse_size(args.max_shard_size),
        force=args.force,
        repo_id=args.repo_id,
        revision=args.revision,
    )
    print(f"exported {', '.join(args.config)} to {out}")
    if args.push_to_hub:
        print(push_to_hub(out, args.push_to_hub))
    return 0


def cmd_script(args: argparse.Namespace) -> int:
    from .script_generator import write_dataset_repo

    for path in write_dataset_repo(args.out, force=args.force):
        print(f"wrote {path}")
    return 0
