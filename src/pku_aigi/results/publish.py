"""``pku-aigi results publish``: a finished ``bench`` output folder as a Hub dataset folder.

Reads the bench folder's ``run.json`` (written last by a finished run, see
:data:`pku_aigi.bench.report.RUN_FILE`) and ``measurements.csv``, refuses a run of another
pku-aigi version or an incomplete one, and writes the Hub's dataset-repo layout::

    README.md                  dataset card (YAML configs, settings, BD tables, plots)
    data/measurements.parquet  one row per measurement (columns: results.schema)
    data/bd.parquet            the run's BD table, one row per group and codec
    run.json                   the bench run's settings, as bench wrote them
    plots/rd_*.png             the run's RD plots
"""

from __future__ import annotations

import csv
import json
import logging
import re
import shlex
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..bench.report import RUN_FILE, RUN_FORMAT
from ..errors import NetworkError, OutputError, PkuAigiError
from . import analysis, card, schema

logger = logging.getLogger(__name__)

BENCH_FILES = ("measurements.csv", "report.md", "bd.json")
OUR_FILES = ("README.md", RUN_FILE, card.MEASUREMENTS_FILE, card.BD_FILE)
# One member of a learned codec's version: ``arch-qN:model_id[@revision]:fingerprint:aigicN``
_MEMBER = re.compile(r"^(?P<arch>.+?)-q(?P<q>\d+):(?P<ref>.+):(?P<fp>[0-9a-f]+):aigic\d+$")
_REPORT_VERSION = re.compile(r"^- \*\*pku-aigi\*\*: (\S+)", re.MULTILINE)


@dataclass
class BenchRun:
    """A finished bench output folder: its ``run.json`` and measurement rows (CSV text)."""

    folder: Path
    info: dict
    rows: list[dict]


def _rerun(command: str | None) -> str:
    """What to do about an unfinished or old run: its bench command again."""
    what = f"`{command}`" if command else "its `pku-aigi bench` command (in its report.md)"
    return f"rerun {what} into that folder (finished measurements are reused), then publish"


def _report_version(folder: Path) -> str | None:
    try:
        match = _REPORT_VERSION.search((folder / "report.md").read_text(encoding="utf-8"))
    except OSError:
        return None
    return match.group(1) if match else None


def read_bench_output(folder: str | Path) -> BenchRun:
    """The finished bench run in ``folder``; :class:`PkuAigiError` (one line) when it is
    not a bench folder, from another pku-aigi version, or incomplete."""
    from ..bench.sweep import CACHE_FILE

    folder = Path(folder)
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is not a folder"
        raise PkuAigiError(f"{folder} {what}: give the --out folder of a `pku-aigi bench` run")
    if (folder / card.MEASUREMENTS_FILE).exists():
        raise PkuAigiError(
            f"{folder} is already a results dataset, not a bench output: publish the "
            "`pku-aigi bench --out` folder it was made from"
        )
    known = [name for name in (CACHE_FILE, RUN_FILE, *BENCH_FILES) if (folder / name).exists()]
    if not known:
        raise PkuAigiError(
            f"{folder} is not a bench output folder (no {CACHE_FILE}, {RUN_FILE} or "
            "measurements.csv): give the --out folder of a `pku-aigi bench` run"
        )
    run_path = folder / RUN_FILE
    if not run_path.exists():
        version = _report_version(folder)
        if version and version != __version__:
            raise PkuAigiError(
                f"{folder} was written by pku-aigi {version} (no {RUN_FILE}), this is "
                f"{__version__}: {_rerun(None)}"
            )
        raise PkuAigiError(
            f"{folder} holds no finished bench run of this pku-aigi ({RUN_FILE}, written "
            "last, is missing: the run was interrupted, is still running, or is older): "
            f"{_rerun(None)}"
        )
    try:
        info = json.loads(run_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise PkuAigiError(f"{run_path} cannot be read ({error}): {_rerun(None)}") from None
    if not isinstance(info, dict):
        raise PkuAigiError(f"{run_path} is not a bench run description: {_rerun(None)}")
    version, command = info.get("pku-aigi"), info.get("command")
    if info.get("format") != RUN_FORMAT or version != __version__:
        raise PkuAigiError(
            f"{folder} was written by pku-aigi {version or 'of another version'} "
            f"({RUN_FILE} format {info.get('format')}), this is {__version__} (format "
            f"{RUN_FORMAT}): {_rerun(command)}"
        )
    missing = [name for name in BENCH_FILES if not (folder / name).is_file()]
    if missing:
        raise PkuAigiError(
            f"{folder} is incomplete: {', '.join(missing)} missing: {_rerun(command)}"
        )
    with (folder / "measurements.csv").open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    _check_complete(folder, info, rows)
    return BenchRun(folder, info, rows)


def _check_complete(folder: Path, info: dict, rows: list[dict]) -> None:
    """Every codec x quality of the run measured on every image of every subset."""
    expected = {str(k): int(v) for k, v in info.get("images_per_subset", {}).items()}
    measured: dict[tuple, set] = defaultdict(set)
    for row in rows:
        measured[(row["codec"], float(row["quality"]), row["subset"])].add(row["image_key"])
    grid = {(c["name"], float(q)) for c in info.get("codecs", []) for q in c.get("qualities", [])}
    grid |= {(codec, quality) for codec, quality, _ in measured}
    gaps = []
    for codec, quality in sorted(grid):
        for subset, count in expected.items():
            found = len(measured.get((codec, quality, subset), ()))
            if found < count:
                gaps.append(f"{codec} q={quality:g} on {subset}: {found} of {count} images")
    if not expected or not rows:
        gaps.insert(0, "no measurements")
    if gaps:
        shown = "; ".join(gaps[:4]) + (f"; and {len(gaps) - 4} more" if len(gaps) > 4 else "")
        failed = info.get("failures") or 0
        why = f" ({failed} measurement(s) failed)" if failed else ""
        raise PkuAigiError(
            f"{folder} is an incomplete run{why}: {shown}: {_rerun(info.get('command'))}"
        )


def model_reference(version: str, quality: float) -> tuple[str | None, str | None]:
    """``(repo id, revision)`` of the model coding at ``quality``, read from a learned
    codec's version string (one member per quality, ``|``-separated)."""
    members = [m for m in (_MEMBER.match(part) for part in version.split("|")) if m]
    chosen = [m for m in members if int(m["q"]) == int(quality)] or members[:1]
    if not chosen:
        return None, None
    ref = chosen[0]["ref"]
    repo, _, revision = ref.partition("@")
    return repo, revision or None


def measurement_rows(run: BenchRun, name: str) -> list[dict]:
    """The bench rows in the columns of :data:`schema.MEASUREMENT_COLUMNS`, typed."""
    codecs = {c["name"]: c for c in run.info.get("codecs", [])}
    types = {column: kind for column, kind, _ in schema.MEASUREMENT_COLUMNS}
    info = run.info
    out = []
    for row in run.rows:
        codec = codecs.get(row["codec"], {})
        learned = codec.get("learned", ":aigic" in row["codec_version"])
        repo, revision = (
            model_reference(row["codec_version"], float(row["quality"]))
            if learned
            else (None, None)
        )
        options = codec.get("options") or {}
        extra = {
            "run": name,
            "source": schema.MEASURED,
            "codec_settings": ", ".join(f"{k}={v}" for k, v in sorted(options.items())),
            "learned": learned,
            "model_repo": repo,
            "model_revision": revision,
            "device": info.get("device"),
            "package_version": info.get("pku-aigi"),
            "protocol": info.get("protocol"),
            "prompt_mode": info.get("prompt_mode"),
        }
        merged = {**row, **extra}
        out.append(
            {column: schema.convert(merged.get(column), kind) for column, kind in types.items()}
        )
    out.sort(key=lambda r: (r["subset"], r["image"], r["codec"], r["quality"]))
    return out


def bd_rows(name: str, anchor: str, tables: dict) -> list[dict]:
    """The BD tables as rows of :data:`schema.BD_COLUMNS`."""
    rows = []
    for group, table in tables.items():
        low, high = table["range"] or (None, None)
        for codec, deltas in sorted(table["codecs"].items()):
            notes = [v.note for pair in deltas.values() for v in pair if v.note]
            rows.append(
                {
                    "run": name,
                    "subset": group,
                    "codec": codec,
                    "anchor": anchor,
                    **{key: ranged.value for key, (ranged, _) in deltas.items()},
                    "bd_rate_psnr_full": deltas["bd_rate_psnr"][1].value,
                    "bd_rate_ms_ssim_db_full": deltas["bd_rate_ms_ssim_db"][1].value,
                    "bpp_low": low,
                    "bpp_high": high,
                    "range_chosen": table["chosen"],
                    "note": "; ".join(dict.fromkeys(notes)) or None,
                }
            )
    return rows


def parquet_bytes(rows: list[dict], columns) -> bytes:
    """``rows`` as one Parquet file (zstd) with the schema of ``columns``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema_ = schema.arrow_schema(columns)
    table = pa.Table.from_pylist(rows, schema=schema_)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def _check_out(out: Path, bench: Path, force: bool) -> None:
    from ..outputs import check_output_folder

    check_output_folder(out, option="--out")
    resolved, source = out.resolve(), bench.resolve()
    if resolved == source or source in resolved.parents:
        raise OutputError(f"--out {out} is inside the bench folder {bench}: choose another folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        ours = [name for name in OUR_FILES if (out / name).exists()]
        what = "an earlier results dataset" if ours else "files"
        raise OutputError(
            f"--out {out} is not empty (it holds {what}): pass --force to replace the dataset "
            "files in it (README.md, run.json, data/, plots/), or choose another folder"
        )


@dataclass
class Published:
    folder: Path
    rows: int
    files: list[Path]

    @property
    def bytes(self) -> int:
        return sum(path.stat().st_size for path in self.files)


def publish(
    bench_out: str | Path,
    out: str | Path,
    *,
    name: str | None = None,
    force: bool = False,
    repo_id: str | None = None,
) -> Published:
    """Write the results dataset of the finished bench run ``bench_out`` into ``out``."""
    from ..outputs import make_output_folder, write_file_atomically

    run = read_bench_output(bench_out)
    out = Path(out)
    _check_out(out, run.folder, force)
    name = name or repo_id or run.folder.resolve().name
    rows = measurement_rows(run, name)
    anchor = run.info.get("anchor", "vvc")
    points, tables, _ = analysis.analyse(rows, anchor, run.info.get("bd_range") or "learned")

    make_output_folder(out, option="--out")
    files = []
    for folder in ("data", "plots"):
        (out / folder).mkdir(exist_ok=True)
    for path, data in (
        (out / card.MEASUREMENTS_FILE, parquet_bytes(rows, schema.MEASUREMENT_COLUMNS)),
        (out / card.BD_FILE, parquet_bytes(bd_rows(name, anchor, tables), schema.BD_COLUMNS)),
        (out / RUN_FILE, (run.folder / RUN_FILE).read_bytes()),
    ):
        write_file_atomically(path, data)
        files.append(path)
    plots = []
    for png in sorted(run.folder.glob("rd_*.png")):
        target = out / "plots" / png.name
        write_file_atomically(target, png.read_bytes())
        files.append(target)
        plots.append(f"plots/{png.name}")
    for stale in [*(out / "plots").glob("rd_*.png"), *(out / "data").glob("*.parquet")]:
        if stale not in files:
            stale.unlink()
    text = card.card_text(name, run.info, rows, points, tables, plots, repo_id)
    write_file_atomically(out / "README.md", text.encode("utf-8"))
    files.append(out / "README.md")
    return Published(out, len(rows), files)


def push(folder: str | Path, repo_id: str, *, token: str | None = None) -> str:
    """Upload a results dataset folder to the dataset repo ``repo_id`` (created if needed)."""
    from huggingface_hub import HfApi

    from .. import network

    later = (
        f"The dataset in {folder} is complete: push it when online with `hf upload {repo_id} "
        f"{shlex.quote(str(folder))} . --repo-type dataset`"
    )
    if network.is_offline():
        raise NetworkError(f"cannot push dataset repo {repo_id}: HF_HUB_OFFLINE=1 is set. {later}")
    api = HfApi(token=token)
    with network.guard(f"the Hub to push dataset repo {repo_id}", later, http_errors=True):
        api.create_repo(repo_id, repo_type="dataset", exist_ok=True)
        info = api.upload_folder(
            folder_path=str(folder),
            repo_id=repo_id,
            repo_type="dataset",
            allow_patterns=["README.md", RUN_FILE, "data/*.parquet", "plots/*.png"],
            commit_message="Benchmark results by pku-aigi results publish",
        )
    return str(info)
