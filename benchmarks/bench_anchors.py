"""Anchor strength: BD-rate and encode time of each conventional codec's speed settings.

Every speed setting of VVenC (``vvc`` presets faster..slower), x265 (``hevc`` presets
ultrafast..placebo) and libaom (``avif`` speeds 10..0) is measured on centre crops of
the real AI-generated images in ``../shared/data/pku-examples`` (one image per subset)
through the package's own sweep (``pku_aigi.bench.sweep.run_sweep``, cached, so a rerun
only recomputes the tables), against the codec's slowest setting as the anchor:

- BD-rate on PSNR and on MS-SSIM dB (``pku_aigi.bench.bdrate``, Akima), over the full
  overlap of the curves and over the protocol's rate range (QP 42..27, the rates where
  the paper's learned codecs operate) for VVC and HEVC;
- encode time: mean seconds per image per quality, and its ratio to the slowest setting.

    python benchmarks/bench_anchors.py [--crop 384] [--codecs vvc,hevc,avif] \\
        [--out bench-anchors] [--write-package]

``--write-package`` stores the table in ``src/pku_aigi/bench/anchor_costs.json``, which
the benchmark report reads to say how much a faster anchor preset costs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from pku_aigi.bench import bdrate, presets
from pku_aigi.bench.images import BenchImage
from pku_aigi.bench.report import aggregate
from pku_aigi.bench.sweep import CodecRun, run_sweep

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "pku-examples"
PACKAGE_TABLE = ROOT / "src" / "pku_aigi" / "bench" / "anchor_costs.json"

# codec -> (option name, settings fastest first, the slowest last; qualities)
SETTINGS = {
    "vvc": ("preset", ("faster", "fast", "medium", "slow", "slower"), (47, 42, 37, 32, 27, 22)),
    "hevc": (
        "preset",
        ("ultrafast", "superfast", "veryfast", "faster", "fast")
        + ("medium", "slow", "slower", "veryslow", "placebo"),
        (47, 42, 37, 32, 27, 22),
    ),
    "avif": ("speed", (10, 8, 6, 4, 2, 1, 0), (20, 35, 50, 62, 74, 86)),
}


def crops(folder: Path, side: int, per_subset: int) -> list[BenchImage]:
    """Centre crops ``side`` x ``side`` of the first images of each subset folder."""
    images = []
    for subset in sorted(p for p in folder.iterdir() if p.is_dir()):
        for path in sorted(subset.glob("*.png"))[:per_subset]:
            with Image.open(path) as opened:
                rgb = opened.convert("RGB")
            left, top = (rgb.width - side) // 2, (rgb.height - side) // 2
            array = np.asarray(rgb.crop((left, top, left + side, top + side)))
            images.append(BenchImage(f"{subset.name}/{path.name}", subset.name, array))
    return images


def label(codec: str, option: str, value) -> str:
    return f"{codec}:{option}={value}"


def protocol_range(points: list[dict], codec: str) -> tuple[float, float] | None:
    """bpp interval of the protocol's quality points on this curve (VVC/HEVC only)."""
    grid = presets.PROTOCOL_CONVENTIONAL.get(codec)
    if not grid:
        return None
    rates = [p["bpp"] for p in points if p["quality"] in grid]
    return (min(rates), max(rates)) if len(rates) == len(grid) else None


def table(points: dict[str, list[dict]], codec: str) -> list[dict]:
    option, values, _ = SETTINGS[codec]
    anchor_points = points[label(codec, option, values[-1])]
    anchor_time = np.mean([p["encode_s"] for p in anchor_points])
    bpp_range = protocol_range(anchor_points, codec)
    rows = []
    for value in values:
        test = points[label(codec, option, value)]
        full = bdrate.compare(anchor_points, test)
        row = {
            option: value,
            "encode_s": float(np.mean([p["encode_s"] for p in test])),
            "time_vs_slowest": float(np.mean([p["encode_s"] for p in test]) / anchor_time),
            "bd_rate_psnr": full["bd_rate_psnr"].value,
            "bd_rate_ms_ssim_db": full["bd_rate_ms_ssim_db"].value,
            "bpp_full": [
                min(p["bpp"] for p in anchor_points),
                max(p["bpp"] for p in anchor_points),
            ],
        }
        if bpp_range is not None:
            ranged = bdrate.compare(anchor_points, test, rate_range=bpp_range)
            row["bd_rate_psnr_protocol"] = ranged["bd_rate_psnr"].value
            row["bd_rate_ms_ssim_db_protocol"] = ranged["bd_rate_ms_ssim_db"].value
            row["bpp_protocol"] = list(bpp_range)
        rows.append(row)
    return rows


def markdown(results: dict) -> str:
    lines = []
    for codec, rows in results["codecs"].items():
        option = SETTINGS[codec][0]
        slowest = rows[-1][option]
        has_protocol = "bd_rate_psnr_protocol" in rows[0]
        head = f"| {codec} {option} | BD-rate PSNR | BD-rate MS-SSIM dB |"
        if has_protocol:
            lo, hi = rows[0]["bpp_protocol"]
            head += f" BD-rate PSNR, protocol {lo:.2f}-{hi:.2f} bpp |"
        head += " encode s/image | time vs slowest |"
        lines += [head, "|---" * (head.count("|") - 1) + "|"]
        for row in rows:
            cells = [
                str(row[option]) + (" (anchor)" if row[option] == slowest else ""),
                f"{row['bd_rate_psnr']:+.2f} %",
                f"{row['bd_rate_ms_ssim_db']:+.2f} %",
            ]
            if has_protocol:
                cells.append(f"{row['bd_rate_psnr_protocol']:+.2f} %")
            cells += [f"{row['encode_s']:.3f}", f"{row['time_vs_slowest']:.3f}x"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--crop", type=int, default=384, help="centre crop side in pixels")
    parser.add_argument("--per-subset", type=int, default=1, help="images per subset folder")
    parser.add_argument("--codecs", default="vvc,hevc,avif")
    parser.add_argument("--out", type=Path, default=Path("bench-anchors"), help="cache + results")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--write-package", action="store_true", help=f"update {PACKAGE_TABLE}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    images = crops(args.data, args.crop, args.per_subset)
    names = [n.strip() for n in args.codecs.split(",") if n.strip()]
    runs = []
    for codec in names:
        option, values, qualities = SETTINGS[codec]
        for value in values:
            runs.append(
                CodecRun(
                    codec, qualities, options={option: value}, label=label(codec, option, value)
                )
            )
    # The slowest settings first, so that the pool stays busy to the end.
    runs.sort(key=lambda r: -SETTINGS[r.name][1].index(r.options[SETTINGS[r.name][0]]))
    start = time.perf_counter()
    sweep = run_sweep(images, runs, args.out, workers=args.workers)
    wall = time.perf_counter() - start
    if sweep.failures:
        for failure in sweep.failures:
            print(f"failed: {failure}")
        return 1
    per_subset = {}
    for image in images:
        per_subset[image.subset] = per_subset.get(image.subset, 0) + 1
    points, _ = aggregate(sweep.rows, per_subset)
    results = {
        "command": "python benchmarks/bench_anchors.py "
        f"--crop {args.crop} --per-subset {args.per_subset} --codecs {args.codecs}",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores shared with other jobs, "
        f"{args.workers} worker processes",
        "images": f"{len(images)} centre crops {args.crop}x{args.crop}: "
        + ", ".join(i.name for i in images),
        "interpolation": bdrate.INTERPOLATION,
        "wall_s_of_this_run": round(wall, 1),  # cached measurements cost nothing
        "measured": sweep.measured,
        "reused": sweep.reused,
        "codecs": {codec: table(points["all"], codec) for codec in names},
        "qualities": {codec: list(SETTINGS[codec][2]) for codec in names},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "anchors.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    (args.out / "anchors.md").write_text(markdown(results), encoding="utf-8")
    print(markdown(results))
    if args.write_package:
        PACKAGE_TABLE.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {PACKAGE_TABLE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
