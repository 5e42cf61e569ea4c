"""Aggregation and outputs of a sweep: CompressAI JSON, tidy CSV, Markdown, RD plots.

RD points are means over the images of a group (a subset, or ``all`` images) at one
codec and quality, CompressAI's convention (``compressai.utils.eval_model``): mean bpp,
mean PSNR, mean MS-SSIM, and MS-SSIM dB of that mean MS-SSIM (what
``compressai.utils.plot`` draws). A point enters the tables only if every image of the
group was measured, so all codecs are compared on the same images. A run on a single
subset (a plain folder of images, one dataset config) has one group, named after that
subset, not a copy of it called ``all``.

BD values are integrated over the rates where the paper compares codecs (the
learned codecs' rates, else the anchor's protocol points) with the value over the
full overlap of the curves beside them when the two differ.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from pathlib import Path

from .. import metrics, subsets
from . import bdrate, finetune

ALL = "all"
# What a finished run is, for tools that read an output folder (``pku-aigi results``):
# written last, removed when a run starts, so its presence means the report is whole.
RUN_FILE = "run.json"
RUN_FORMAT = 1
CSV_FIELDS = [
    "subset", "image", "image_key", "width", "height", "prompt_chars", "codec",
    "codec_version", "quality", "bytes", "payload_bytes", "bpp", "payload_bpp", "psnr",
    "ms_ssim", "ms_ssim_db", "encode_s", "decode_s", "clip_score", "clip_score_original",
    "lpips",
]  # fmt: skip
MEAN_FIELDS = [
    "bpp", "payload_bpp", "psnr", "ms_ssim", "encode_s", "decode_s", "clip_score",
    "clip_score_original", "lpips",
]  # fmt: skip


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def subset_order(names) -> list[str]:
    """``all`` first, then dataset configs in the table's order, then other names sorted."""
    names = set(names)
    known = [c for c in (ALL, *subsets.CONFIGS) if c in names]
    return known + sorted(names - set(known))


def aggregate(rows: list[dict], images_per_subset: dict[str, int]) -> tuple[dict, list[str]]:
    """``{group: {codec: [point, ...]}}`` sorted by bpp, and notes on dropped points.

    The groups are the subsets, plus ``all`` when there are several of them.
    """
    several = len(images_per_subset) > 1
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        for group in (row["subset"], ALL) if several else (row["subset"],):
            groups[(group, row["codec"], float(row["quality"]))].append(row)
    expected = dict(images_per_subset)
    if several:
        expected[ALL] = sum(images_per_subset.values())
    points: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    notes = []
    for (group, codec, quality), members in sorted(groups.items()):
        if group not in expected:
            continue
        if len(members) < expected[group]:
            notes.append(
                f"{codec} q={metrics_q(quality)} on {group}: {len(members)} of "
                f"{expected[group]} images measured, point left out"
            )
            continue
        point = {"quality": quality, "n": len(members)}
        for name in MEAN_FIELDS:
            point[name] = _mean([m.get(name) for m in members])
        point["ms_ssim_db"] = metrics.ms_ssim_db(point["ms_ssim"])
        points[group][codec].append(point)
    for group in points.values():
        for codec_points in group.values():
            codec_points.sort(key=lambda p: p["bpp"])
    return {g: dict(c) for g, c in points.items()}, notes


def overall_group(points: dict) -> str | None:
    """The group holding every image: ``all``, or the only subset of a one-subset run."""
    if ALL in points:
        return ALL
    return next(iter(points)) if len(points) == 1 else None


def group_title(group: str, points: dict, plot: bool = False) -> str:
    """``All images``, ``All images (name)`` for a one-subset run, else ``Subset name``.

    Plot titles are lower case and name a subset alone.
    """
    if group == ALL:
        title = "all images"
    elif overall_group(points) == group:
        title = f"all images ({group})"
    else:
        return group if plot else f"Subset {group}"
    return title if plot else title[0].upper() + title[1:]


def metrics_q(quality: float) -> str:
    return format(quality, "g")


def choose_bd_range(
    group: dict[str, list[dict]], anchor: str, request="learned", learned=()
) -> tuple[tuple[float, float] | None, str]:
    """The bpp interval the BD values of one group integrate over, and why that one.

    ``request``: ``"full"`` (the full overlap of each pair of curves), a ``(low, high)``
    bpp tuple, or ``"learned"``: the rates of the learned codecs of the run (the range
    where the paper compares codecs), else those of the anchor's protocol points, which
    were chosen to span them, else the full overlap.
    """
    from .presets import PROTOCOL_CONVENTIONAL

    if request == "full":
        return None, "as asked with --bd-range full"
    if isinstance(request, tuple):
        return (float(request[0]), float(request[1])), "as asked with --bd-range"
    names = sorted(c for c in learned if c in group)
    rates = [p["bpp"] for name in names for p in group[name]]
    if rates:
        return (min(rates), max(rates)), f"the rates of the learned codecs ({', '.join(names)})"
    grid = PROTOCOL_CONVENTIONAL.get(anchor, ())
    rates = [p["bpp"] for p in group.get(anchor, []) if p["quality"] in grid]
    if grid and len(rates) == len(grid):
        qualities = ",".join(format(q, "g") for q in grid)
        return (min(rates), max(rates)), (
            f"the rates of the anchor's protocol points (q={qualities}, chosen to span the "
            "paper's learned codecs; no learned codec in this run)"
        )
    return None, "no learned codec in this run and no protocol grid of the anchor"


def bd_tables(
    points: dict, anchor: str, method: str = bdrate.INTERPOLATION, request="full", learned=()
) -> dict:
    """``{group: {"range", "chosen", "codecs": {codec: {delta: (BDValue, full BDValue)}}}}``.

    Each codec vs ``anchor``: the delta over the group's :func:`choose_bd_range` and over the
    full overlap (the same value when the range is the full overlap).
    """
    tables = {}
    for group, codecs in points.items():
        if anchor not in codecs:
            continue
        rate_range, chosen = choose_bd_range(codecs, anchor, request, learned)
        rows = {}
        for codec, codec_points in codecs.items():
            if codec == anchor:
                continue
            full = bdrate.compare(codecs[anchor], codec_points, method)
            ranged = (
                full
                if rate_range is None
                else bdrate.compare(codecs[anchor], codec_points, method, rate_range)
            )
            rows[codec] = {name: (ranged[name], full[name]) for name in full}
        tables[group] = {"range": rate_range, "chosen": chosen, "codecs": rows}
    return tables


def write_csv(rows: list[dict], path: Path) -> None:
    """Every single measurement, one row each (tidy format)."""
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in sorted(
            rows, key=lambda r: (r["subset"], r["image"], r["codec"], float(r["quality"]))
        ):
            writer.writerow({k: row.get(k) for k in CSV_FIELDS})


def compressai_json(codec: str, points: list[dict], description: str, by_subset: dict) -> dict:
    """One codec's results in the format of ``compressai.utils.eval_model``.

    ``python -m compressai.utils.plot -f FILE.json`` reads ``name`` and
    ``results`` (``bpp``, ``psnr-rgb``, ``ms-ssim-rgb``); the per-subset curves are an
    extra ``subsets`` key it ignores.
    """

    def results(pts):
        out = {
            "quality": [p["quality"] for p in pts],
            "bpp": [p["bpp"] for p in pts],
            "psnr-rgb": [p["psnr"] for p in pts],
            "ms-ssim-rgb": [p["ms_ssim"] for p in pts],
            "ms-ssim-db": [p["ms_ssim_db"] for p in pts],
            "encoding_time": [p["encode_s"] for p in pts],
            "decoding_time": [p["decode_s"] for p in pts],
        }
        if any(p["payload_bpp"] is not None for p in pts):
            out["payload-bpp"] = [p["payload_bpp"] for p in pts]
        return out

    return {
        "name": codec,
        "description": description,
        "results": results(points),
        "subsets": {group: results(pts) for group, pts in by_subset.items()},
    }


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def plot_rd(
    points: dict[str, list[dict]], metric: str, title: str, path: Path, anchor: str | None
) -> None:
    """RD curves of every codec: ``metric`` (psnr or ms_ssim_db) vs bpp, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    for codec, pts in sorted(points.items()):
        ax.plot(
            [p["bpp"] for p in pts],
            [p[metric] for p in pts],
            marker="o",
            markersize=3,
            linewidth=1.8 if codec == anchor else 1.0,
            linestyle="--" if codec == anchor else "-",
            label=codec + (" (anchor)" if codec == anchor else ""),
        )
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel("PSNR [dB]" if metric == "psnr" else "MS-SSIM [dB]")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt(value, digits=3) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}f}"


def _ms(seconds) -> str:
    return "" if seconds is None else f"{seconds * 1000:.1f}"


DELTAS = (
    ("bd_rate_psnr", "BD-rate (PSNR)", " %", 2),
    ("bd_psnr", "BD-PSNR", " dB", 3),
    ("bd_rate_ms_ssim_db", "BD-rate (MS-SSIM dB)", " %", 2),
    ("bd_ms_ssim_db", "BD-MS-SSIM dB", " dB", 3),
)


def _bd_cell(value: bdrate.BDValue, unit: str, digits: int) -> str:
    interval = value.format_interval()
    text = value.format(unit, digits)
    return f"{text} over {interval}" if interval and value.value is not None else text


def bd_table_lines(table: dict) -> list[str]:
    """One group's BD table; full-overlap columns beside the ranged ones when they differ."""
    rows = table["codecs"]
    differs = table["range"] is not None and any(
        ranged.value != full.value or ranged.interval != full.interval
        for deltas in rows.values()
        for ranged, full in deltas.values()
    )
    where = (
        "the full overlap of each pair of curves"
        if table["range"] is None
        else ("{:.3f}-{:.3f} bpp".format(*table["range"]))
    )
    lines = [f"BD values over {where}: {table['chosen']}.", ""]
    header = ["codec"]
    for _, title, _, _ in DELTAS:
        header += [title, f"{title}, full overlap"] if differs else [title]
    lines += ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    reasons = []
    for codec, deltas in sorted(rows.items()):
        cells = [codec]
        for name, _, unit, digits in DELTAS:
            ranged, full = deltas[name]
            cells.append(_bd_cell(ranged, unit, digits))
            if differs:
                cells.append(_bd_cell(full, unit, digits))
            reasons += [f"{codec}, {name}: {v.note}" for v in (ranged, full) if v.note]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"- {reason}" for reason in dict.fromkeys(reasons)]
    if reasons:
        lines.append("")
    return lines


def _finetune_section(points: dict, finetuned: dict) -> list[str]:
    """The "fine-tuned vs base" tables: one row per fine-tuned family and group."""
    if not finetuned:
        return []
    lines = [
        "## Fine-tuned vs base",
        "",
        "Each fine-tuned family against the models it was fine-tuned from (their "
        "`base_model`), over the qualities paired and the full overlap of the two curves: "
        "BD-rate < 0 means the fine-tuned models need fewer bits for the same quality.",
        "",
        "| group | fine-tuned | base | qualities (tuned/base) | "
        + " | ".join(title for _, title, _, _ in DELTAS)
        + " |",
        "|---" * (4 + len(DELTAS)) + "|",
    ]
    reasons = []
    for group in subset_order(finetuned):
        for tuned, row in sorted(finetuned[group].items()):
            pairs = ", ".join(f"{metrics_q(t)}/{metrics_q(b)}" for t, b in row["pairs"])
            cells = [group_title(group, points, plot=True), tuned, row["base"], pairs]
            cells += [_bd_cell(row[name], unit, digits) for name, _, unit, digits in DELTAS]
            reasons += [
                f"{tuned} on {group}, {n}: {row[n].note}" for n, *_ in DELTAS if row[n].note
            ]
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"- {reason}" for reason in dict.fromkeys(reasons)]
    return lines + ([""] if reasons else [])


def markdown(
    points: dict,
    tables: dict,
    anchor: str,
    settings: dict,
    notes: list[str],
    finetuned: dict | None = None,
) -> str:
    """The report: settings, BD tables per subset and overall, fine-tuned vs base, RD
    points, notes."""
    lines = ["# pku-aigi benchmark", "", "## Settings", ""]
    for key, value in settings.items():
        lines.append(f"- **{key}**: {value}")
    lines += [
        "",
        f"BD values are computed with the `bjontegaard` package, {bdrate.INTERPOLATION} "
        f"interpolation, against the anchor **{anchor}**. BD-rate < 0 means fewer bits than "
        f"the anchor at equal quality; (!) marks curves overlapping on less than "
        f"{bdrate.MIN_OVERLAP:.0%} of their range; n/a gives the reason below the table.",
        "",
    ]
    lines += _finetune_section(points, finetuned or {})
    for group in subset_order(points):
        lines += [f"## {group_title(group, points)}", ""]
        table = tables.get(group)
        if table is None:
            lines += [f"No BD table: the anchor {anchor} has no complete curve here.", ""]
        else:
            lines += bd_table_lines(table)
        lines += [
            "| codec | quality | bpp | payload bpp | PSNR | MS-SSIM | MS-SSIM dB | enc ms | dec ms | n |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for codec, pts in sorted(points[group].items()):
            for p in pts:
                lines.append(
                    f"| {codec} | {metrics_q(p['quality'])} | {_fmt(p['bpp'], 4)} | "
                    f"{_fmt(p['payload_bpp'], 4)} | {_fmt(p['psnr'], 2)} | {_fmt(p['ms_ssim'], 4)} | "
                    f"{_fmt(p['ms_ssim_db'], 2)} | {_ms(p['encode_s'])} | {_ms(p['decode_s'])} | {p['n']} |"
                )
        lines.append("")
        extra = [
            (codec, p)
            for codec, pts in sorted(points[group].items())
            for p in pts
            if p.get("clip_score") is not None or p.get("lpips") is not None
        ]
        if extra:
            lines += [
                "| codec | quality | CLIP score | CLIP score of originals | LPIPS |",
                "|---|---|---|---|---|",
            ]
            for codec, p in extra:
                lines.append(
                    f"| {codec} | {metrics_q(p['quality'])} | {_fmt(p.get('clip_score'), 2)} | "
                    f"{_fmt(p.get('clip_score_original'), 2)} | {_fmt(p.get('lpips'), 4)} |"
                )
            lines.append("")
    if notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in notes] + [""]
    return "\n".join(lines)


def write_run_info(out_dir: str | Path, info: dict) -> Path:
    """Write ``run.json``: the run's settings, images per subset and codecs (name,
    version, qualities, options), as JSON with ``format`` = :data:`RUN_FORMAT`."""
    from ..outputs import write_file_atomically

    path = Path(out_dir) / RUN_FILE
    data = json.dumps({"format": RUN_FORMAT, **info}, indent=2, default=str)
    write_file_atomically(path, data.encode("utf-8"))
    return path


def write_report(
    rows: list[dict],
    out_dir: str | Path,
    *,
    images_per_subset: dict[str, int],
    anchor: str,
    settings: dict,
    notes: list[str] | None = None,
    method: str = bdrate.INTERPOLATION,
    bd_range="full",
    learned=(),
    remove_stale: bool = False,
    finetune_pairs=(),
) -> dict:
    """Write every output into ``out_dir``; return ``{"points", "bd", "files"}``.

    ``bd_range`` and ``learned`` (names of the learned codecs) choose the bpp interval
    of the BD values, see :func:`choose_bd_range`. ``finetune_pairs``
    (:func:`.finetune.pair_members`) add the "fine-tuned vs base" section to the report
    and ``bd.json``. With ``remove_stale`` the plots and
    CompressAI JSON files of an earlier report that this one does not make (another
    codec selection or subsets) are deleted.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    points, dropped = aggregate(rows, images_per_subset)
    tables = bd_tables(points, anchor, method, bd_range, learned)
    finetuned = finetune.compare(points, list(finetune_pairs), method)
    notes = list(notes or []) + dropped
    if points and not any(anchor in codecs for codecs in points.values()):
        notes.append(f"anchor {anchor!r} was not measured: no BD tables (choose it with --anchor)")
    files = []

    csv_path = out / "measurements.csv"
    write_csv(rows, csv_path)
    files.append(csv_path)

    json_dir = out / "compressai"
    json_dir.mkdir(exist_ok=True)
    codec_names = sorted({codec for group in points.values() for codec in group})
    for codec in codec_names:
        by_subset = {
            g: points[g][codec] for g in subset_order(points) if g != ALL and codec in points[g]
        }
        data = compressai_json(
            codec,
            points.get(overall_group(points), {}).get(codec, []),
            "pku-aigi bench (mean over all images)",
            by_subset,
        )
        path = json_dir / f"{_safe(codec)}.json"
        path.write_text(json.dumps(data, indent=2), encoding="utf-8")
        files.append(path)

    for group in subset_order(points):
        for metric in ("psnr", "ms_ssim_db"):
            path = out / f"rd_{metric}_{_safe(group)}.png"
            label = "PSNR" if metric == "psnr" else "MS-SSIM dB"
            title = f"{group_title(group, points, plot=True)}: {label} vs bpp"
            plot_rd(points[group], metric, title, path, anchor)
            files.append(path)

    if remove_stale:
        made = set(files)
        for path in [*out.glob("rd_*.png"), *json_dir.glob("*.json")]:
            if path not in made:
                path.unlink(missing_ok=True)

    report_path = out / "report.md"
    report_path.write_text(
        markdown(points, tables, anchor, settings, notes, finetuned), encoding="utf-8"
    )
    files.append(report_path)

    def value(v: bdrate.BDValue) -> dict:
        return {"value": v.value, "note": v.note, "bpp_interval": v.interval}

    bd_json = {
        group: {
            codec: {
                name: {**value(ranged), "full_overlap": value(full)}
                for name, (ranged, full) in deltas.items()
            }
            for codec, deltas in table["codecs"].items()
        }
        for group, table in tables.items()
    }
    ranges = {
        group: {"bpp": table["range"], "chosen": table["chosen"]} for group, table in tables.items()
    }
    tuned_json = {
        group: {
            tuned: {
                "base": row["base"],
                "qualities": [list(pair) for pair in row["pairs"]],
                **{name: value(row[name]) for name, *_ in DELTAS},
            }
            for tuned, row in rows.items()
        }
        for group, rows in finetuned.items()
    }
    summary = {"anchor": anchor, "interpolation": method, "bd_range": ranges, "tables": bd_json}
    if tuned_json:
        summary["fine_tuned_vs_base"] = tuned_json
    (out / "bd.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    files.append(out / "bd.json")
    return {"points": points, "bd": tables, "finetuned": finetuned, "files": files, "notes": notes}
