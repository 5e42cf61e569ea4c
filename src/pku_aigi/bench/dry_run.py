"""``pku-aigi bench --dry-run``: what a run would measure and what it would cost.

Nothing is coded and nothing is written: the images are read, the codecs' versions give
the cache keys, and the measurement cache in ``--out`` is read (left as it is) to count
what is already done. The same :func:`~pku_aigi.bench.sweep.plan_sweep` decides what the
real run measures, so the counts are the measurements that run then makes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .images import BenchImage
from .sweep import CACHE_FILE, CodecRun, MeasurementCache, duration, estimate_seconds, plan_sweep

ESTIMATE_SOURCE = (
    "from the seconds-per-megapixel table of each codec (pku_aigi/bench/costs.py) at its "
    "speed setting, scaled by the encode times of anchor_costs.json for the presets of "
    "VVC, HEVC and AVIF; codecs without an entry (learned, plugins) count 1 s/MP; "
    "not a calibration on this machine"
)


@dataclass
class Group:
    """The measurements of one codec at one setting and quality."""

    codec: str
    setting: str
    quality: float
    total: int
    cached: int
    cpu_to_make: float  # estimated CPU seconds of the measurements still to make
    cpu_cached: float  # estimated CPU seconds of the cached ones

    @property
    def to_make(self) -> int:
        return self.total - self.cached


@dataclass
class DryRun:
    groups: list[Group]
    cache_path: Path
    recorded_seconds: float  # encode + decode seconds recorded in the cached rows
    workers: int

    @property
    def total(self) -> int:
        return sum(g.total for g in self.groups)

    @property
    def cached(self) -> int:
        return sum(g.cached for g in self.groups)

    @property
    def to_make(self) -> int:
        return self.total - self.cached

    def per_codec(self) -> dict[str, int]:
        """Measurements to make per codec."""
        counts: dict[str, int] = {}
        for group in self.groups:
            counts[group.codec] = counts.get(group.codec, 0) + group.to_make
        return counts

    def format(self) -> str:
        cpu = sum(g.cpu_to_make for g in self.groups)
        cpu_cached = sum(g.cpu_cached for g in self.groups)
        lines = [
            "| codec | setting | quality | measurements | cached | to make | est. CPU to make |",
            "|---|---|---|---|---|---|---|",
        ]
        for g in self.groups:
            lines.append(
                f"| {g.codec} | {g.setting} | {format(g.quality, 'g')} | {g.total} | "
                f"{g.cached} | {g.to_make} | {duration(g.cpu_to_make)} |"
            )
        share = 100 * self.cached / self.total if self.total else 0.0
        lines += [
            "",
            f"total: {self.total} measurements, {self.cached} cached, {self.to_make} to make",
            f"estimated CPU time to make: {duration(cpu)}, about {duration(cpu / self.workers)} "
            f"of wall time on {self.workers} workers",
            f"estimate: {ESTIMATE_SOURCE}",
            f"cached in {self.cache_path}: {self.cached} of {self.total} measurements "
            f"({share:.0f} %), {duration(cpu_cached)} of estimated CPU time; their rows "
            f"recorded {duration(self.recorded_seconds)} of encoding and decoding",
        ]
        return "\n".join(lines)


def setting(run: CodecRun) -> str:
    """A run's speed setting and options as text, e.g. ``preset=slower``."""
    if not run.parallel:
        return "learned"
    from .. import codecs

    options = dict(run.options)
    try:
        cls = codecs.codec_class(run.name)
    except Exception:  # noqa: BLE001 - an unknown name only loses its default setting
        cls = None
    option = getattr(cls, "speed_option", None)
    if option and option not in options:
        options[option] = getattr(cls, f"default_{option}", "default")
    return ",".join(f"{key}={value}" for key, value in options.items()) or "-"


def dry_run(
    images: list[BenchImage], runs: list[CodecRun], out_dir: str | Path, fields=(), workers=1
) -> DryRun:
    """Count, per codec, setting and quality, the measurements a run into ``out_dir``
    would make and those it would reuse; estimate their CPU time."""
    cache_path = Path(out_dir) / CACHE_FILE
    plan = plan_sweep(images, runs, MeasurementCache(cache_path, read_only=True), fields)
    groups: dict[tuple, Group] = {}
    for run in runs:
        for quality in run.qualities:
            key = (run.display_name, quality)
            groups[key] = Group(run.display_name, setting(run), quality, 0, 0, 0.0, 0.0)
    recorded = 0.0
    for entries, cached in ((plan.cached, True), (plan.tasks, False)):
        for run, image, quality, row in entries:
            group = groups[(run.display_name, quality)]
            group.total += 1
            cpu = estimate_seconds([(run, image, quality)], 1)[0]
            if cached:
                group.cached += 1
                group.cpu_cached += cpu
                recorded += float(row.get("encode_s") or 0) + float(row.get("decode_s") or 0)
            else:
                group.cpu_to_make += cpu
    return DryRun(list(groups.values()), cache_path, recorded, max(1, workers))
