"""Preparing a split of PKU-AIGI-500K, against the physical limit on this machine.

Builds an SD21-style Info-ZIP split archive (``SD21.z01`` .. ``SD21.zNN`` + ``SD21.zip``,
stored members, like the Hub's) from the real images in ../shared/data/pku-examples,
repeated to ``--images`` members, then measures in one run, page cache warm for all:

- limit: read the same PNG files from plain files + decode them with Pillow;
- raw read only: the same files, no decode;
- ours, prepare: ``pku_aigi.load_dataset("sd21", "train", data_dir=...)`` into a fresh
  cache (reads members out of the split parts, writes Arrow);
- ours, prepare + decode: the above, then every image decoded from the dataset;
- streaming: time to the first example (also of the process's first call, which pays
  for ``datasets`` importing torch), and images/s over the whole split (decoding, as
  ``datasets`` decodes streamed images).

Usage: ``python benchmarks/bench_data_prepare.py [--images 120] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = (
    Path(os.environ.get("PKU_AIGI_SHARED_DATA", ROOT.parent / "shared" / "data")) / "pku-examples"
)


def build(work: Path, count: int) -> tuple[Path, list[Path]]:
    """SD21 split archive with ``count`` images in ``work/repo``; the staged sources."""
    sources = sorted((EXAMPLES / "sd21").glob("*.png"))
    staged = work / "stage" / "SD21"
    staged.mkdir(parents=True)
    files = []
    for i in range(count):
        path = staged / f"{i // 4 + 1:06d}_{i % 4 + 1}.png"
        shutil.copyfile(sources[i % len(sources)], path)  # copies: distinct files to read
        files.append(path)
    repo = work / "repo"
    repo.mkdir()
    total = sum(p.stat().st_size for p in files)
    split_k = max(64, total // 1024 // 18 + 1)
    subprocess.run(
        ["zip", "-q", "-X", "-0", "-r", "-s", f"{split_k}k", str(repo / "SD21.zip"), "SD21"],
        cwd=staged.parent,
        check=True,
    )
    lines = [f"prompt {n}" for n in range(1, count // 4 + 2)]
    (repo / "SD21.txt").write_text("\n".join(lines))
    return repo, files


def warm(paths) -> None:
    for path in paths:
        with open(path, "rb") as handle:
            while handle.read(1 << 24):
                pass


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import datasets

    import pku_aigi

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        repo, files = build(work, args.images)
        parts = sorted(repo.iterdir())
        size_mb = sum(p.stat().st_size for p in files) / 1e6
        warm(files + parts)
        n = len(files)

        def raw_read():
            for path in files:
                path.read_bytes()

        def raw_decode():
            for path in files:
                with Image.open(path) as image:
                    image.load()

        def prepare():
            return pku_aigi.load_dataset(
                "sd21", "train", data_dir=repo, cache_dir=work / f"cache{time.time_ns()}"
            )

        def prepare_decode():
            for row in prepare():
                row["image"].load()

        def first_example():
            start = time.perf_counter()
            stream = pku_aigi.load_dataset("sd21", "train", data_dir=repo, streaming=True)
            iterator = iter(stream)
            first = next(iterator)
            return time.perf_counter() - start, first, iterator

        def stream_all():
            t_first, first, iterator = first_example()
            rest = sum(1 for _ in iterator)
            assert first["file_name"] == "SD21/000001_1.png" and rest == n - 1
            return t_first

        # The first streaming call of a process includes datasets importing torch.
        t_first_cold = first_example()[0]
        # Interleaved repeats, best of each: the machine may be shared.
        best: dict[str, float] = {}
        firsts = []
        for _ in range(args.repeats):
            for name, fn in (
                ("raw", raw_read),
                ("limit", raw_decode),
                ("prepare", prepare),
                ("prepare_decode", prepare_decode),
            ):
                best[name] = min(best.get(name, float("inf")), timed(fn))
            start = time.perf_counter()
            firsts.append(stream_all())
            best["stream"] = min(best.get("stream", float("inf")), time.perf_counter() - start)
        t_first = min(firsts)
        archive_files = len([p for p in parts if p.suffix != ".txt"])

    print(f"bench_data_prepare: {n} PNG images ({size_mb:.0f} MB) in an SD21-style split")
    print(f"archive of {archive_files} files, page cache warm, {os.cpu_count()} CPUs, ", end="")
    print(f"best of {args.repeats}")
    rows = [
        ("raw read (plain files)", best["raw"]),
        ("limit: raw read + PNG decode", best["limit"]),
        ("ours: prepare split (Arrow)", best["prepare"]),
        ("ours: prepare + decode every image", best["prepare_decode"]),
        ("ours: streaming whole split (+decode)", best["stream"]),
    ]
    for name, seconds in rows:
        print(f"  {name:36s} {n / seconds:8.1f} images/s  ({seconds:.2f} s)")
    for name, key in (("prepare", "prepare"), ("prepare+decode", "prepare_decode")):
        print(f"ratio {name} / limit (images/s): {best['limit'] / best[key]:.2f}x")
    print(f"ratio streaming / limit (images/s): {best['limit'] / best['stream']:.2f}x")
    print(f"ratio prepare / raw read only (images/s): {best['raw'] / best['prepare']:.3f}x")
    print(f"streaming time to first example:           {t_first * 1000:.0f} ms")
    print(f"  (first call in a fresh process:          {t_first_cold * 1000:.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
