"""Example images for the Compress tab.

1. ``PKU_AIGI_DATA_DIR`` set: a few images of each subset's validation split, read with
   ``pku_aigi.load_dataset(subset, "validation", data_dir=...)``, with their prompts.
2. Else ``PKU_AIGI_EXAMPLES_DIR`` (default: ``examples/`` next to the Space's app.py): a
   folder of images in the ``datasets`` imagefolder layout, with an optional
   ``metadata.jsonl`` of ``{"file_name": ..., "prompt": ...}`` rows.
3. Else the package's built-in sample (``pku_aigi.sample``: 8 CC0 DiffusionDB images
   with their prompts).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from ..errors import DatasetError
from ..image_input import read_folder

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "PKU_AIGI_DATA_DIR"
EXAMPLES_DIR_ENV = "PKU_AIGI_EXAMPLES_DIR"
MAX_EXAMPLES = 12
PER_SUBSET = 2


def find_examples(default_dir: Path | None = None) -> tuple[list[list[str]], str]:
    """``([[image_path, prompt], ...], where they come from)``."""
    data_dir = os.environ.get(DATA_DIR_ENV)
    if data_dir:
        examples = validation_examples(data_dir)
        if examples:
            return examples, f"validation split of PKU-AIGI-500K in {data_dir}"
    folder = os.environ.get(EXAMPLES_DIR_ENV) or (str(default_dir) if default_dir else None)
    if folder and Path(folder).is_dir():
        try:
            examples = folder_examples(Path(folder))
        except DatasetError as error:  # examples are optional: say why there are none
            logger.warning("no examples from %s: %s", folder, error)
            examples = []
        if examples:
            return examples, f"images in {folder}"
    from ..sample import sample_dir

    return folder_examples(sample_dir()), "built-in sample: DiffusionDB, CC0 1.0"


def validation_examples(data_dir: str) -> list[list[str]]:
    """A few validation images of every subset (written as PNGs for the browser)."""
    import pku_aigi
    from pku_aigi.subsets import CONFIGS

    out_dir = Path(tempfile.mkdtemp(prefix="pku-aigi-examples-"))
    examples = []
    for subset in CONFIGS:
        try:
            dataset = pku_aigi.load_dataset(subset, "validation", data_dir=data_dir)
        except Exception as error:  # noqa: BLE001 - examples are optional: log and go on
            logger.warning("no %s validation examples: %s", subset, error)
            continue
        for index in range(min(PER_SUBSET, len(dataset))):
            row = dataset[index]
            path = out_dir / f"{subset}-{Path(str(row.get('file_name') or index)).stem}.png"
            row["image"].convert("RGB").save(path)
            examples.append([str(path), row.get("prompt") or ""])
    return examples[:MAX_EXAMPLES]


def folder_examples(folder: Path) -> list[list[str]]:
    """Images of an imagefolder-style folder (:func:`pku_aigi.image_input.read_folder`)."""
    return [[str(item.path), item.prompt or ""] for item in read_folder(folder)[:MAX_EXAMPLES]]
