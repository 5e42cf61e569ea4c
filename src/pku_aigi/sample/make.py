"""Rebuild the built-in sample from a DiffusionDB folder (imagefolder layout).

``python -m pku_aigi.sample.make SOURCE`` reads ``SOURCE/metadata.jsonl`` (rows with
``file_name``, ``prompt``, ``width``, ``height``, ``source``), re-encodes the chosen PNGs
as lossless WebP (libwebp through Pillow, method 6: the same RGB pixels, about 30 %
smaller than the PNGs) and writes them with their metadata rows into the package's
``diffusiondb/`` folder. The licence and README there are kept as they are.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..image_input import open_image_file
from . import sample_dir

# DiffusionDB 2m part-001310 images: photos and paintings, square and wide, no real people.
CHOSEN = ("0003", "0005", "0019", "0021", "0032", "0036", "0039", "0044")


def make_sample(source: Path, target: Path, chosen=CHOSEN) -> list[dict]:
    rows = {}
    for line in (source / "metadata.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            rows[Path(row["file_name"]).stem] = row
    written = []
    for stem in chosen:
        row = rows[stem]
        rgb = open_image_file(source / row["file_name"]).convert("RGB")
        name = f"{stem}.webp"
        rgb.save(target / name, "WEBP", lossless=True, quality=100, method=6, exact=True)
        written.append({**row, "file_name": name, "original": Path(row["file_name"]).name})
    lines = [json.dumps(row, ensure_ascii=False) for row in written]
    (target / "metadata.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="DiffusionDB folder with metadata.jsonl")
    args = parser.parse_args(argv)
    for row in make_sample(args.source, sample_dir()):
        print(row["file_name"], row["width"], row["height"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
