"""Measurement rows to RD points and BD tables, with the bench report's own functions.

Rows are dicts with the columns of :mod:`.schema` (from a bench folder's CSV or a results
dataset's Parquet file); points and tables are those of :mod:`pku_aigi.bench.report`
(means over every image of a group, Akima BD values over the chosen bpp range).
"""

from __future__ import annotations

from ..bench import report
from ..bench.cli import parse_bd_range


def images_per_subset(rows: list[dict]) -> dict[str, int]:
    """``{subset: number of distinct images}`` of ``rows``."""
    keys: dict[str, set] = {}
    for row in rows:
        keys.setdefault(row["subset"], set()).add(row["image_key"])
    return {subset: len(found) for subset, found in keys.items()}


def learned_codecs(rows: list[dict]) -> list[str]:
    """Names of the learned codecs among ``rows`` (they set the default BD range)."""
    return sorted({row["codec"] for row in rows if row.get("learned")})


def analyse(rows: list[dict], anchor: str, bd_range: str = "learned") -> tuple[dict, dict, list]:
    """``(points, tables, notes)``: RD points per group and codec, the BD table of each
    group against ``anchor`` over ``bd_range`` (learned, full or LOW,HIGH), and notes on
    points left out (not every image of the group measured)."""
    points, notes = report.aggregate(rows, images_per_subset(rows))
    tables = report.bd_tables(
        points, anchor, request=parse_bd_range(bd_range), learned=learned_codecs(rows)
    )
    return points, tables, notes


def bd_markdown(points: dict, tables: dict, anchor: str) -> list[str]:
    """The BD tables of every group as Markdown lines, titled as in the bench report."""
    lines = []
    for group in report.subset_order(points):
        lines += [f"### {report.group_title(group, points)}", ""]
        table = tables.get(group)
        if table is None:
            lines += [f"No BD table: the anchor {anchor} has no complete curve here.", ""]
        else:
            lines += report.bd_table_lines(table)
    return lines
