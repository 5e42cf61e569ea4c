"""Wall time of the bench sweep (worker processes on all cores) vs a plain sequential loop.

Both do the same work: every conventional codec available here, at ``--qualities``
points of its default grid, on every image under ``--data`` (default ../shared/data),
measuring bytes, PSNR, MS-SSIM and times exactly as ``pku-aigi bench`` does. The
sequential loop calls the same ``measure`` function in one process, torch at one
thread, the codec libraries at their own default thread counts (what a plain loop
gets); ``--one-thread-loop`` adds a loop with every codec at one thread, as in each
worker, so that ratio is the gain of the process pool alone.

Besides wall time it prints the CPU seconds of each run (this process and every
child: workers, ffmpeg) and the load average: on a machine shared with other jobs the
wall-time ratio depends on how busy the machine was, the CPU seconds much less.

    python benchmarks/bench_sweep_parallel.py [--crop 256] [--qualities 2] [--workers N]
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import tempfile
import time
from pathlib import Path

import torch

from pku_aigi import codecs
from pku_aigi.bench import BenchImage, images_from_folder, run_sweep
from pku_aigi.bench.sweep import CodecRun, default_workers, measure
from pku_aigi.codecs.threads import set_codec_threads

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


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Timed:
    """Wall and CPU seconds of a ``with`` block, and the 1-minute load average after it."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = cpu_seconds() - self.cpu
        self.load = os.getloadavg()[0]


def sequential_loop(images: list[BenchImage], runs: list[CodecRun], codec_threads: int) -> Timed:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in each worker
    set_codec_threads(codec_threads)
    with Timed() as timed:
        for run in runs:
            codec = codecs.get(run.name)
            for quality in run.qualities:
                for image in images:
                    measure(codec, image.rgb, quality, image.prompt)
    torch.set_num_threads(threads)
    set_codec_threads(0)
    return timed


def compare(
    images: list[BenchImage], runs: list[CodecRun], workers: int, one_thread_loop: bool = False
) -> dict[str, Timed]:
    """Timings of the sweep with ``workers`` processes and of the sequential loop(s)."""
    work = len(images) * sum(len(r.qualities) for r in runs)
    pixels = sum(i.width * i.height for i in images)
    print(f"{len(images)} images ({pixels / 1e6:.1f} Mpixel), codecs: "
          + ", ".join(f"{r.name} q={','.join(map(str, r.qualities))}" for r in runs)
          + f"; {work} measurements; load average before: {os.getloadavg()[0]:.1f}")  # fmt: skip

    results = {}
    with tempfile.TemporaryDirectory() as out, Timed() as results["pool"]:
        result = run_sweep(images, runs, out, workers=workers, progress=False)
    assert result.measured == work and not result.failures, result.failures
    results["loop"] = sequential_loop(images, runs, codec_threads=0)
    if one_thread_loop:
        results["loop, 1 thread"] = sequential_loop(images, runs, codec_threads=1)

    labels = {
        "pool": f"sweep, {workers} worker processes",
        "loop": "plain sequential loop",
        "loop, 1 thread": "sequential loop, codecs at 1 thread",
    }
    pool = results["pool"]
    print(f"{'':38} {'wall s':>8} {'CPU s':>8} {'load':>5}  wall ratio  CPU ratio")
    for name, timed in results.items():
        print(f"{labels[name]:38} {timed.wall:8.1f} {timed.cpu:8.1f} {timed.load:5.1f}"
              f"  {timed.wall / pool.wall:9.2f}x  {timed.cpu / pool.cpu:8.2f}x")  # fmt: skip
    print(f"speed-up: {results['loop'].wall / pool.wall:.2f}x on {default_workers()} cores")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--crop", type=int, default=0, help="centre crop side in px (0: full)")
    parser.add_argument("--limit", type=int, default=None, help="first N images only")
    parser.add_argument("--qualities", type=int, default=2, help="points per codec")
    parser.add_argument("--codecs", default=",".join(codecs.available()))
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--one-thread-loop", action="store_true",
                        help="also time a sequential loop with every codec at one thread")  # fmt: skip
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    images = crop_images(images_from_folder(args.data, limit=args.limit), args.crop)
    names = [n.strip() for n in args.codecs.split(",") if n.strip()]
    runs = [
        CodecRun(n, pick(codecs.codec_class(n).default_qualities, args.qualities)) for n in names
    ]
    compare(images, runs, args.workers, args.one_thread_loop)


if __name__ == "__main__":
    main()
