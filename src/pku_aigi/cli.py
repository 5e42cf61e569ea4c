"""The ``pku-aigi`` command line.

Each part of the package adds its own subcommands through a ``register(subparsers)``
function in its ``cli`` module; this file only assembles them and turns user-facing
errors (:class:`~pku_aigi.errors.PkuAigiError`) into one message and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings

from . import __version__
from .errors import PkuAigiError

# One module per part of the package; each defines register(subparsers) and keeps heavy imports inside the
# command functions so that `pku-aigi --help` stays fast.
COMMAND_MODULES = (
    "pku_aigi.data.cli",  # data
    "pku_aigi.codecs.cli",  # codecs, compress, decompress
    "pku_aigi.models.cli",  # models
    "pku_aigi.bench.cli",  # bench
    "pku_aigi.results.cli",  # results publish, results compare
    "pku_aigi.train.cli",  # train
    "pku_aigi.space",  # demo
    "pku_aigi.space.build",  # space build
)

EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pku-aigi",
        description="PKU-AIGI-500K: dataset, codecs, benchmark, training and demo.",
    )
    parser.add_argument("--version", action="version", version=f"pku-aigi {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    # CompressAI scripts modules with torch.jit at import: noise for a CLI user.
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USER_ERROR
    from . import network

    network.install()  # one network policy for every command: fail fast, once per host
    try:
        return int(args.func(args) or 0)
    except PkuAigiError as error:
        print(f"pku-aigi {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"pku-aigi {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
