"""``pku-aigi models``: list architectures and the zoo, pull, convert, inspect models."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import ModelError, by_cause


def register(subparsers) -> None:
    """Add ``models list|pull|convert-compressai|info`` to the ``pku-aigi`` parser."""
    parser = subparsers.add_parser(
        "models",
        help="learned codecs: list architectures and the zoo, pull, convert, inspect",
        description="Learned image codecs as Hugging Face Hub models.",
    )
    commands = parser.add_subparsers(dest="models_command", metavar="ACTION")
    # `pku-aigi models` alone lists the architectures, as `models list` does.
    parser.set_defaults(func=list_command, json=False, zoo=False, arch=None, no_hub_check=False)

    listing = commands.add_parser(
        "list",
        help="architectures with paper and qualities (--zoo: the pretrained models)",
        description="List the architectures, or with --zoo every zoo model id and where it "
        "would load from (local folder, cache, Hub, source checkpoint); downloads nothing.",
    )
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.add_argument("--zoo", action="store_true", help="list the zoo's model ids")
    listing.add_argument("--arch", help="with --zoo: only this architecture")
    listing.add_argument(
        "--no-hub-check",
        action="store_true",
        help="with --zoo: do not ask the Hub whether a repo exists (no network at all)",
    )
    listing.set_defaults(func=list_command)

    pull = commands.add_parser(
        "pull",
        help="fetch zoo models into the local cache (Hub repo or converted source)",
        description="Fetch zoo models so that later loads need no network: from the Hub "
        "repo, or else by downloading the entry's source checkpoint, verifying its sha256 "
        "and converting it. Already cached models are skipped.",
    )
    pull.add_argument(
        "ids", nargs="*", metavar="ID", help="zoo ids, e.g. pku-aigi/mbt2018-mean-mse-q3"
    )
    pull.add_argument("--arch", action="append", help="every zoo model of this architecture")
    pull.add_argument("--metric", choices=("mse", "ms-ssim"), help="with --arch/--all: only this")
    pull.add_argument("--all", action="store_true", help="every zoo model")
    pull.add_argument("--force", action="store_true", help="fetch again even when cached")
    pull.set_defaults(func=pull_command)

    convert = commands.add_parser(
        "convert-compressai",
        help="turn a CompressAI .pth.tar checkpoint into a Hub model folder",
        description="Convert a CompressAI checkpoint (zoo .pth.tar or a training "
        "checkpoint) into a model folder: model.safetensors, config.json and a model card. "
        "The checkpoint is read with torch.load(weights_only=True).",
    )
    convert.add_argument("architecture", metavar="ARCH", help="e.g. mbt2018-mean")
    convert.add_argument("checkpoint", metavar="CHECKPOINT", type=Path, help=".pth.tar file")
    convert.add_argument("--quality", type=int, required=True, help="CompressAI quality index")
    convert.add_argument("--metric", choices=("mse", "ms-ssim"), default="mse")
    convert.add_argument("--out", type=Path, required=True, help="model folder to write")
    convert.add_argument("--force", action="store_true", help="replace --out if it exists")
    convert.add_argument("--source", help="text for the card's 'source of the weights'")
    convert.set_defaults(func=convert_command)

    info = commands.add_parser("info", help="describe a saved model (folder or Hub repo id)")
    info.add_argument("model", metavar="REPO_OR_DIR")
    info.add_argument("--revision", help="Hub branch, tag or commit")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=info_command)


def list_command(args) -> int:
    if args.zoo:
        return zoo_list_command(args)
    if args.arch or args.no_hub_check:
        raise ModelError("--arch and --no-hub-check go with --zoo")
    from .architectures.specs import available, get_spec

    rows = []
    for name in available():
        spec = get_spec(name)
        rows.append(
            {
                "architecture": name,
                "qualities": sorted(spec.qualities),
                "metrics": sorted(spec.lambdas),
                "text_conditioned": spec.text_conditioned,
                "paper": spec.paper,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(row["architecture"]) for row in rows)
    for row in rows:
        qualities = f"q{min(row['qualities'])}-{max(row['qualities'])}"
        text = " text" if row["text_conditioned"] else ""
        print(f"{row['architecture']:<{width}}  {qualities:<5}{text}  {row['paper']}")
    return 0


def zoo_list_command(args) -> int:
    from . import zoo

    entries = zoo.find_models(args.arch)
    if args.arch and not entries:
        raise ModelError(f"the zoo has no {args.arch} model (see `pku-aigi models list --zoo`)")
    rows = [
        {
            "repo_id": entry["repo_id"],
            "architecture": entry["architecture"],
            "quality": entry["quality"],
            "metric": entry["metric"],
            "trained_on": entry["trained_on"],
            "preferred": entry in zoo.preferred_entries(entry["architecture"], entry["metric"]),
            "loads_from": zoo.where(entry["repo_id"], check_hub=not args.no_hub_check),
        }
        for entry in entries
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(row["repo_id"]) for row in rows)
    for row in rows:
        mark = "" if row["preferred"] else " (not preferred: other weights exist)"
        print(f"{row['repo_id']:<{width}}  {row['trained_on']:<10} {row['loads_from']}{mark}")
    return 0


def pull_command(args) -> int:
    from . import zoo

    if args.all and (args.ids or args.arch):
        raise ModelError("give zoo ids, --arch or --all, not several")
    if args.all or args.arch:
        entries = [
            entry
            for arch in (args.arch or [None])
            for entry in zoo.find_models(arch, metric=args.metric)
        ]
        if not entries:
            raise ModelError(f"the zoo has no model of {', '.join(args.arch)}")
        ids = [entry["repo_id"] for entry in entries]
    else:
        ids = args.ids
    if not ids:
        raise ModelError("name zoo ids to pull, or --arch A, or --all")
    unknown = [repo for repo in ids if zoo.find_entry(repo) is None]
    if unknown:
        raise ModelError(f"not in the zoo: {', '.join(unknown)} (see `pku-aigi models list --zoo`)")
    if len(ids) == 1:
        print(f"{ids[0]}: {zoo.resolve(ids[0], force_download=args.force)}")
        return 0
    failed = {}
    for repo in ids:
        try:
            folder = zoo.resolve(repo, force_download=args.force)
        except ModelError as error:
            failed[repo] = error
            continue
        print(f"{repo}: {folder}")
    if failed:
        for names, message in by_cause(failed):  # one message per cause, not per model
            print(f"{shorten_list(names)}: failed: {message}", file=sys.stderr)
        raise ModelError(f"{len(failed)} of {len(ids)} models could not be pulled (see above)")
    return 0


def shorten_list(names: list[str], shown: int = 4) -> str:
    """``a, b, c, d and 5 more`` for a long list of names."""
    if len(names) <= shown + 1:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} and {len(names) - shown} more"


def convert_command(args) -> int:
    from .zoo.convert import convert_compressai

    out = convert_compressai(
        args.architecture,
        args.checkpoint,
        args.out,
        quality=args.quality,
        metric=args.metric,
        force=args.force,
        source=args.source,
    )
    print(f"wrote {out}")
    return 0


def info_command(args) -> int:
    from .hub.folder import load_config, resolve_source

    # Resolve and read config.json first: a model that cannot be reached fails before
    # the model code (torch, CompressAI) is imported.
    source = resolve_source(str(args.model), revision=args.revision)
    load_config(source, revision=args.revision)
    from .base import AutoCodec

    model = AutoCodec.from_pretrained(source, revision=args.revision)
    parameters = sum(p.numel() for p in model.parameters())
    info = {
        **model.config,
        "class": type(model).__name__,
        "parameters": parameters,
        "text_conditioned": model.text_conditioned,
        "downsampling_factor": model.downsampling_factor,
        "entropy_coder_ready": model.entropy_coder_ready(),
        "source": model.card_info.get("source"),
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key, value in info.items():
        print(f"{key}: {value}")
    return 0
