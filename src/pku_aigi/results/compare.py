"""``pku-aigi results compare``: BD tables across published runs, on the images they share.

Images are matched by content (``image_key``: a hash of the pixels), so two runs on the
same images compare whatever their file names; only images every run measured count.
A codec name found in several runs becomes ``codec (run)``. The anchor is chosen as in
``bench`` (``--anchor``, default vvc): a codec label, or a codec name, taken from the
first run that has it. The tables are the bench report's (Markdown, Akima BD values on
PSNR and MS-SSIM dB over ``--bd-range``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ..bench import report
from ..errors import DatasetError
from . import analysis
from .dataset import Results


@dataclass
class Comparison:
    runs: list[Results]
    labels: list[str]  # run names, made unique
    shared: int  # images every run measured
    anchor: str  # the anchor's codec label
    rows: list[dict]  # the runs' rows on the shared images, codecs relabelled
    points: dict
    tables: dict
    notes: list[str]
    text: str  # the Markdown report


def _unique(names: list[str]) -> list[str]:
    seen: Counter = Counter()
    labels = []
    for name in names:
        seen[name] += 1
        labels.append(name if seen[name] == 1 else f"{name} #{seen[name]}")
    return labels


def overlap_line(runs: list[Results], labels: list[str], shared: set) -> str:
    counts = ", ".join(f"{label}: {len(r.image_keys)}" for label, r in zip(labels, runs))
    return f"{len(shared)} image(s) measured by every run (images per run: {counts})"


def combine(runs: list[Results], labels: list[str]) -> tuple[list[dict], set]:
    """The rows of every run on the images they all measured; codec names found in
    several runs become ``codec (run)``; each image keeps the subset of its first run."""
    shared = set.intersection(*(r.image_keys for r in runs))
    if not shared:
        raise DatasetError(
            f"the runs share no image ({overlap_line(runs, labels, shared)}; images match by "
            "pixel content): nothing to compare; run bench on the same images"
        )
    owners = Counter(codec for r in runs for codec in {row["codec"] for row in r.rows})
    subset_of: dict[str, str] = {}
    for run in runs:
        for row in run.rows:
            subset_of.setdefault(row["image_key"], row["subset"])
    rows = []
    for run, label in zip(runs, labels):
        for row in run.rows:
            if row["image_key"] in shared:
                codec = row["codec"] if owners[row["codec"]] == 1 else f"{row['codec']} ({label})"
                rows.append({**row, "codec": codec, "subset": subset_of[row["image_key"]]})
    return rows, shared


def choose_anchor(rows: list[dict], labels: list[str], anchor: str) -> tuple[str, str | None]:
    """The anchor's codec label and a note when it was picked among several runs."""
    codecs = list(dict.fromkeys(row["codec"] for row in rows))
    if anchor in codecs:
        return anchor, None
    for label in labels:
        candidate = f"{anchor} ({label})"
        if candidate in codecs:
            others = [f"{anchor} ({other})" for other in labels if f"{anchor} ({other})" in codecs]
            note = f"anchor: {candidate}, the first of {', '.join(others)}"
            return candidate, note
    raise DatasetError(
        f"no run has the anchor codec {anchor!r}: choose one with --anchor "
        f"(codecs: {', '.join(codecs)})"
    )


def compare(runs: list[Results], anchor: str = "vvc", bd_range: str = "learned") -> Comparison:
    """BD tables of every codec of ``runs`` against ``anchor`` on their shared images."""
    if len(runs) < 2:
        raise DatasetError("give at least two results datasets to compare")
    labels = _unique([run.name for run in runs])
    rows, shared = combine(runs, labels)
    anchor_label, anchor_note = choose_anchor(rows, labels, anchor)
    points, tables, notes = analysis.analyse(rows, anchor_label, bd_range)
    notes = ([anchor_note] if anchor_note else []) + notes
    per_subset = analysis.images_per_subset(rows)
    lines = ["# pku-aigi results compare", ""]
    lines += [f"- **run {label}**: {run.source}" for label, run in zip(labels, runs)]
    lines += [
        f"- **images**: {overlap_line(runs, labels, shared)}; per subset: "
        + ", ".join(f"{s} {per_subset[s]}" for s in report.subset_order(per_subset)),
        f"- **anchor**: {anchor_label}",
        f"- **BD range**: {bd_range}",
        "",
    ]
    lines += analysis.bd_markdown(points, tables, anchor_label)
    if notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in notes] + [""]
    return Comparison(
        runs, labels, len(shared), anchor_label, rows, points, tables, notes, "\n".join(lines)
    )
