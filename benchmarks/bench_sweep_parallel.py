"""Wall time of the bench sweep (worker processes on all cores) vs a plain sequential loop.

Both do the same work: every conventional codec available here, at ``--qualities``
points of its default grid, on every image under ``--data`` (default ../shared/data),
measuring bytes, PSNR, MS-SSIM and times exactly as ``pku-aigi bench`` does. The
sequential loop calls the same ``measure`` function in one process with torch at one
thread (as in each worker), so the ratio is the gain of the process pool alone.

    python benchmarks/bench_sweep_parallel.py [--crop 256] [--qualities 2] [--workers N]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import torch

from pku_aigi import codecs
from pku_aigi.bench import BenchImage, images_from_folder, run_sweep
from pku_aigi.bench.sweep import CodecRun, default_workers, measure

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pick(grid: tuple, count: int) -> tuple:
    """``count`` points spread over ``grid`` (low rate to high rate)."""
    if count >= len(grid):
        return tuple(grid)
    step = (len(grid) - 1) / max(count - 1, 1)
    return (
        tuple(grid[round(i * step)] for i in range(count)) if count > 1 else (grid[len(grid) // 2],)
    )


def crop_images(images: list[BenchImage], side: int) -> list[BenchImage]:
    """Centre crops of at most ``side`` x ``side`` px (0: the images unchanged)."""
    if not side:
        return images
    cropped = []
    for image in images:
        h, w = image.rgb.shape[:2]
        top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
        rgb = image.rgb[top : top + side, left : left + side].copy()
        cropped.append(BenchImage(image.name, image.subset, rgb, image.prompt))
    return cropped


def compare(images: list[BenchImage], runs: list[CodecRun], workers: int) -> tuple[float, float]:
    """(sweep seconds with ``workers`` processes, plain sequential loop seconds)."""
    work = len(images) * sum(len(r.qualities) for r in runs)
    pixels = sum(i.width * i.height for i in images)
    print(f"{len(images)} images ({pixels / 1e6:.1f} Mpixel), codecs: "
          + ", ".join(f"{r.name} q={','.join(map(str, r.qualities))}" for r in runs)
          + f"; {work} measurements")  # fmt: skip

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = run_sweep(images, runs, out, workers=workers, progress=False)
        parallel = time.perf_counter() - start
    assert result.measured == work and not result.failures, result.failures

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in each worker
    start = time.perf_counter()
    for run in runs:
        codec = codecs.get(run.name)
        for quality in run.qualities:
            for image in images:
                measure(codec, image.rgb, quality, image.prompt)
    sequential = time.perf_counter() - start
    torch.set_num_threads(threads)

    print(f"sweep, {workers} worker processes: {parallel:8.1f} s")
    print(f"plain sequential loop:        {sequential:8.1f} s")
    print(f"speed-up: {sequential / parallel:.2f}x on {default_workers()} cores")
    return parallel, sequential


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--crop", type=int, default=0, help="centre crop side in px (0: full)")
    parser.add_argument("--qualities", type=int, default=2, help="points per codec")
    parser.add_argument("--codecs", default=",".join(codecs.available()))
    parser.add_argument("--workers", type=int, default=default_workers())
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    images = crop_images(images_from_folder(args.data), args.crop)
    names = [n.strip() for n in args.codecs.split(",") if n.strip()]
    runs = [
        CodecRun(n, pick(codecs.codec_class(n).default_qualities, args.qualities)) for n in names
    ]
    compare(images, runs, args.workers)


if __name__ == "__main__":
    main()
