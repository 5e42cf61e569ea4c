"""What measurements cost: the encode-time table of the anchors' presets and the codecs'
seconds per megapixel, for ordering the sweep's tasks and estimating a run up front."""

from __future__ import annotations

import functools
import json
from pathlib import Path

ANCHOR_COSTS_FILE = Path(__file__).with_name("anchor_costs.json")

# Seconds per megapixel of one measurement at each codec's default speed setting (encode
# and decode, mid-grid; a rough figure: tasks are ordered by it, runs estimated with it).
SECONDS_PER_MP = {
    **{"jpeg": 0.02, "webp": 0.8, "jpeg2000": 2.6, "avif": 2.0, "jpegxl": 1.2},
    **{"hevc": 2.0, "vvc": 8.9},
}
METRICS_SECONDS_PER_MP = 0.3  # PSNR + MS-SSIM of every measurement


@functools.lru_cache(maxsize=1)
def anchor_costs() -> dict:
    """The table of ``benchmarks/bench_anchors.py`` (``anchor_costs.json``)."""
    return json.loads(ANCHOR_COSTS_FILE.read_text(encoding="utf-8"))


def speed_factor(cls, options: dict) -> float:
    """How much slower than at its default speed setting codec class ``cls`` encodes
    with ``options``, from the encode times of ``anchor_costs.json``; 1 where not
    measured."""
    option = getattr(cls, "speed_option", None)
    if option is None or option not in (options or {}):
        return 1.0
    rows = anchor_costs().get("codecs", {}).get(cls.name, [])
    seconds = {str(row.get(option)): row["encode_s"] for row in rows}
    default = getattr(cls, f"default_{option}", None)
    chosen, base = seconds.get(str(options[option])), seconds.get(str(default))
    return chosen / base if chosen and base else 1.0
