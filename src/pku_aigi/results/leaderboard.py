"""The leaderboard's data: every codec of every published run against the VVC anchor.

Sources are results datasets (folders or Hub dataset ids, ``PKU_AIGI_RESULTS``,
comma-separated). Each run's BD-rates are computed from its own measurements against its
own ``vvc`` curve (the benchmark's VVC anchor), per subset and over all images, over the
bpp range the run was benchmarked with. A source that cannot be read gives one error
line and the others are still shown. The packaged reference rows (:mod:`.reference`) are
always there, in a table of their own: their anchor is the paper's VTM.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from ..bench import report
from ..errors import PkuAigiError
from . import analysis
from .dataset import Results, open_results
from .reference import REFERENCE_SOURCE, reference_rows

logger = logging.getLogger(__name__)

ENV = "PKU_AIGI_RESULTS"
ANCHOR = "vvc"
COLUMNS = (
    "source", "run", "subset", "codec", "BD-rate PSNR %", "BD-rate MS-SSIM dB %", "BD-PSNR dB",
    "bpp range", "images", "version / model", "note",
)  # fmt: skip
NUMERIC = {"BD-rate PSNR %", "BD-rate MS-SSIM dB %", "BD-PSNR dB", "images"}


def sources_from_env(value: str | None = None) -> list[str]:
    """The results datasets named in ``PKU_AIGI_RESULTS`` (or ``value``), in order."""
    raw = os.environ.get(ENV, "") if value is None else value
    return [s.strip() for s in raw.split(",") if s.strip() and s.strip() != REFERENCE_SOURCE]


@dataclass
class Board:
    """What the Leaderboard tab shows."""

    measured: list[dict] = field(default_factory=list)  # rows of COLUMNS
    reference: list[dict] = field(default_factory=list)  # rows of reference.COLUMNS
    curves: dict[str, dict[str, list[dict]]] = field(default_factory=dict)  # group: label: pts
    errors: list[str] = field(default_factory=list)  # one line per source that failed
    notes: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)

    @property
    def groups(self) -> list[str]:
        return report.subset_order(self.curves)


def _versions(rows: list[dict], codec: str) -> str:
    """The codec's version string, or its models as ``repo@revision`` (learned codecs)."""
    mine = [row for row in rows if row["codec"] == codec]
    if any(row.get("learned") for row in mine):
        models = {}
        for row in sorted(mine, key=lambda r: r["quality"]):
            repo, revision = row.get("model_repo"), row.get("model_revision")
            if repo:
                models[repo] = f"{repo}@{revision[:12]}" if revision else repo
        if models:
            return ", ".join(models.values())
    return ", ".join(sorted({str(row["codec_version"]) for row in mine}))


def _round(value, digits=2):
    return None if value is None else round(float(value), digits)


def run_rows(results: Results) -> tuple[list[dict], dict, list[str]]:
    """``(table rows, curves per group, notes)`` of one run against :data:`ANCHOR`."""
    points, tables, dropped = analysis.analyse(results.rows, ANCHOR, results.bd_range)
    rows = []
    curves: dict[str, dict[str, list[dict]]] = {}
    versions = {
        codec: _versions(results.rows, codec) for codec in {r["codec"] for r in results.rows}
    }
    for group in report.subset_order(points):
        table = tables.get(group)
        for codec, codec_points in sorted(points[group].items()):
            curves.setdefault(group, {})[f"{codec} · {results.name}"] = codec_points
            row = {
                "source": "measured",
                "run": results.name,
                "subset": group,
                "codec": codec,
                "version / model": versions[codec],
                "images": codec_points[0]["n"],
                "bpp range": "",
                "note": "",
            }
            if codec == ANCHOR:
                row["note"] = "the anchor"
            elif table is None:
                row["note"] = f"no complete {ANCHOR} curve in this run: no BD-rate against VVC"
            else:
                deltas = table["codecs"][codec]
                psnr, ms_ssim, bd_psnr = (
                    deltas[name][0] for name in ("bd_rate_psnr", "bd_rate_ms_ssim_db", "bd_psnr")
                )
                row["BD-rate PSNR %"] = _round(psnr.value)
                row["BD-rate MS-SSIM dB %"] = _round(ms_ssim.value)
                row["BD-PSNR dB"] = _round(bd_psnr.value, 3)
                row["bpp range"] = psnr.format_interval()
                row["note"] = "; ".join(dict.fromkeys(v.note for v in (psnr, ms_ssim) if v.note))
            rows.append({column: row.get(column) for column in COLUMNS})
    notes = [f"{results.name}: {note}" for note in dropped]
    return rows, curves, notes


def build_board(sources: list[str]) -> Board:
    """The leaderboard of ``sources``; a source that fails adds one line to ``errors``."""
    board = Board(reference=reference_rows())
    for source in sources:
        try:
            results = open_results(source)
            taken = sum(
                name == results.name or name.startswith(f"{results.name} #") for name in board.runs
            )
            results.name += f" #{taken + 1}" if taken else ""  # two runs of one name stay apart
            rows, curves, notes = run_rows(results)
        except PkuAigiError as error:
            board.errors.append(f"{source}: {error}")
            continue
        except Exception as error:  # noqa: BLE001 - one bad source never hides the others
            logger.exception("leaderboard source %s", source)
            board.errors.append(f"{source}: cannot be read ({type(error).__name__}: {error})")
            continue
        board.runs.append(results.name)
        board.measured += rows
        board.notes += notes
        for group, by_label in curves.items():
            board.curves.setdefault(group, {}).update(by_label)
    return board


def group_rows(board: Board, group: str) -> list[dict]:
    """The measured rows of ``group``, best BD-rate (PSNR) first, the anchors last."""

    def key(row):
        value = row["BD-rate PSNR %"]
        return (value is None, value if value is not None else 0.0, row["run"], row["codec"])

    return sorted((row for row in board.measured if row["subset"] == group), key=key)
