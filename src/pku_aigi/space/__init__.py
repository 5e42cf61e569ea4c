"""The Gradio Space: compress any AI-generated image and compare quality and bitrate.

``build_app()`` builds the one app that both the Hub Space (``space/app.py``) and
``pku-aigi demo`` launch. Configuration comes from environment variables:

- ``PKU_AIGI_MODELS_DIR``: a folder laid out like the Hub (``<org>/<name>/config.json``
  ...) from which learned models load before trying the Hub;
- ``PKU_AIGI_DATA_DIR``: a local copy of the dataset's files, for validation examples;
- ``PKU_AIGI_EXAMPLES_DIR``: else, a folder of example images (imagefolder layout);
- ``PKU_AIGI_DEMO_MAX_PIXELS``: the largest accepted image (default 2048 x 2048);
- ``PKU_AIGI_CLIP_MODEL``: the CLIP model of the CLIP score (Hub id or folder);
- ``PKU_AIGI_DEMO_MAX_UPLOAD``, ``PKU_AIGI_DEMO_QUEUE_SIZE``: see :mod:`.limits`.
- ``PKU_AIGI_RESULTS``: the Leaderboard tab's results datasets, comma-separated Hub
  dataset ids or folders (``pku-aigi results publish``); the paper's reference rows are
  always shown.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

DEFAULT_PORT = 7860


def build_app(catalog=None, examples_dir: str | Path | None = None):
    """The Space's ``gr.Blocks`` app, queued so that heavy work runs one job at a time.

    Args:
        catalog: the codec options (:class:`~pku_aigi.space.catalog.Catalog`); discovered
            from the registry, the zoo and ``PKU_AIGI_MODELS_DIR`` when None.
        examples_dir: the examples folder used when no dataset folder is configured.
    """
    from .. import network
    from .catalog import Catalog
    from .limits import queue_size
    from .ui import build_blocks

    network.install()  # an unreachable Hub costs one failed connection, not a backoff

    if catalog is None:
        catalog = Catalog.discover()
    logger.info(
        "demo codecs: %s (unavailable: %s)",
        ", ".join(catalog.available_keys),
        ", ".join(option.key for option in catalog.unavailable) or "none",
    )
    demo = build_blocks(catalog, Path(examples_dir) if examples_dir else None)
    return demo.queue(default_concurrency_limit=1, max_size=queue_size())


def register(subparsers) -> None:
    """Add ``pku-aigi demo``."""
    parser = subparsers.add_parser(
        "demo",
        help="launch the Gradio Space locally",
        description="Launch the Space's app (the same as space/app.py) on this machine.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default 7860)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.add_argument(
        "--examples-dir", default=None, help="folder of example images (imagefolder layout)"
    )
    parser.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from .limits import launch_options

    demo = build_app(examples_dir=args.examples_dir)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, **launch_options())
    return 0
