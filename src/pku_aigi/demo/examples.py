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

import json
import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

DATA_DIR_ENV = "PKU_AIGI_DATA_DIR"
EXAMPLES_DIR_ENV = "PKU_AIGI_EXAMPLES_DIR"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".avif"}
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
        examples = folder_examples(Path(folder))
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
            log.warning("no %s validation examples: %s", subset, error)
            continue
        for index in range(min(PER_SUBSET, len(dataset))):
            row = dataset[index]
            path = out_dir / f"{subset}-{Path(str(row.get('file_name') or index)).stem}.png"
            row["image"].convert("RGB").save(path)
            examples.append([str(path), row.get("prompt") or ""])
    return examples[:MAX_EXAMPLES]


def folder_examples(folder: Path) -> list[list[str]]:
    """Images of an imagefolder-style folder, with prompts from its metadata.jsonl."""
    prompts = {}
    metadata = folder / "metadata.jsonl"
    if metadata.is_file():
        for line in metadata.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                prompts[row.get("file_name", "")] = (row.get("prompt") or "").strip()
    images = sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )
    return [
        [str(p), prompts.get(p.relative_to(folder).as_posix(), "")] for p in images[:MAX_EXAMPLES]
    ]
