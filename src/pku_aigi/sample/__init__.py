"""A built-in sample of AI-generated images with their prompts, for use without the Hub.

Eight Stable Diffusion images from DiffusionDB (Wang et al., "DiffusionDB: A Large-scale
Prompt Gallery Dataset for Text-to-Image Generative Models", ACL 2023; CC0 1.0), stored
as lossless WebP (the same RGB pixels as the published PNGs) in the ``datasets``
imagefolder layout: ``metadata.jsonl`` rows give ``file_name`` and ``prompt``.
``pku-aigi bench --sample`` benchmarks it, and the Space shows it as its examples when no
dataset folder is configured. It is a smoke test, not PKU-AIGI-500K.
"""

from __future__ import annotations

import json
from pathlib import Path

SAMPLE_NAME = "diffusiondb"


def sample_dir() -> Path:
    """The sample's folder: ``*.webp`` images, ``metadata.jsonl``, ``LICENSE``, ``README.md``."""
    return Path(__file__).resolve().parent / SAMPLE_NAME


def sample_images() -> list[tuple[Path, str]]:
    """``(image path, prompt)`` of every sample image, in file-name order."""
    folder = sample_dir()
    rows = []
    for line in (folder / "metadata.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            rows.append((folder / row["file_name"], row["prompt"]))
    return sorted(rows)
