"""``pku-aigi codecs`` (and, through :mod:`.compress_cli`, ``compress`` / ``decompress``).

``pku-aigi codecs`` lists every registered codec (the package's and plugins'), whether it runs on this
machine (and why not), its quality scale and its exact version; ``--json`` prints the
same as JSON for scripts.
"""

from __future__ import annotations

import json


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "codecs",
        help="list the codecs (the package's and plugins'), their quality scales and availability",
        description="List every registered codec: available here or not (and why), its "
        "quality scale and the grid of qualities used for rate-distortion sweeps. Learned "
        "codecs are Hub models: see `pku-aigi models` and `pku-aigi compress --model`.",
    )
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    parser.set_defaults(func=codecs_command)

    # compress / decompress live in compress_cli.py
    from . import compress_cli

    compress_cli.register(subparsers)


def describe() -> list[dict]:
    """One dict per registered codec: name, availability, quality scale, version."""
    from .by_name import availability, codec_class, get

    rows = []
    for name, reason in availability().items():
        # An available codec answers for itself (plugin factories have no class to read).
        codec = get(name) if reason is None else codec_class(name)
        rows.append(
            {
                "name": name,
                "aliases": list(codec.aliases),
                "available": reason is None,
                "reason": reason,
                "description": codec.description,
                "quality_help": codec.quality_help,
                "quality_range": list(codec.ladder.range),
                "higher_quality_is_better": codec.ladder.higher_is_better,
                "default_qualities": list(codec.ladder.sweep),
                "file_extension": codec.file_extension,
                "version": codec.version if reason is None else None,
            }
        )
    return rows


def codecs_command(args) -> int:
    rows = describe()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        status = "available" if row["available"] else "UNAVAILABLE"
        print(f"{row['name']:<10} {status:<11} {row['description']}")
        if row["aliases"]:
            print(f"{'':<11} also: {', '.join(row['aliases'])}")
        if not row["available"]:
            print(f"{'':<11} why: {row['reason']}")
        print(f"{'':<11} quality: {row['quality_help']}")
        grid = ", ".join(f"{q:g}" for q in row["default_qualities"])
        print(f"{'':<11} sweep grid: {grid}; files: *{row['file_extension']}")
        if row["version"]:
            print(f"{'':<11} version: {row['version']}")
    available = sum(row["available"] for row in rows)
    print(f"{available} of {len(rows)} codecs available on this machine.")
    return 0
