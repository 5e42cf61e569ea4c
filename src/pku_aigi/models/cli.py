"""``pku-aigi models``: list architectures, convert CompressAI checkpoints, inspect models."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers) -> None:
    """Add ``models list|convert-compressai|info`` to the ``pku-aigi`` parser."""
    parser = subparsers.add_parser(
        "models",
        help="learned codecs: list architectures, convert CompressAI checkpoints, inspect",
        description="Learned image codecs as Hugging Face Hub models.",
    )
    commands = parser.add_subparsers(dest="models_command", metavar="ACTION")
    parser.set_defaults(func=lambda args: _help(parser))

    listing = commands.add_parser("list", help="architectures with paper and qualities")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=list_command)

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


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def list_command(args) -> int:
    from .registry import available, get_spec

    rows = []
    for name in available():
        spec = get_spec(name)
        rows.append(
            {
                "architecture": name,
                "qualities": sorted(spec.qualities),
                "metrics": sorted(spec.lambdas),
                "text_conditioned": bool(getattr(spec.model_class, "text_conditioned", False)),
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


def convert_command(args) -> int:
    from .convert import convert_compressai

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
    from .base import AutoCodec

    model = AutoCodec.from_pretrained(str(args.model), revision=args.revision)
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
