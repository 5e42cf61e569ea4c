"""Open a results dataset (what ``pku-aigi results publish`` writes) from a folder or the Hub.

A folder is read as it is; a Hub dataset id is fetched with ``huggingface_hub`` (its card,
``run.json`` and Parquet files only) under the package's network policy, so offline it
reads the local cache or fails with one line naming the id. The measurement rows are
read with ``pyarrow`` from ``data/measurements*.parquet`` and must hold the columns of
:data:`.schema.REQUIRED`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..bench.report import RUN_FILE
from ..errors import DatasetError
from . import schema

MEASUREMENTS_GLOB = "data/measurements*.parquet"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_HINT = "Pass a local folder of the dataset instead"


@dataclass
class Results:
    """One benchmark run read from a results dataset."""

    source: str  # the folder or Hub id as given
    name: str  # the run's name (its ``run`` column)
    rows: list[dict]
    info: dict = field(default_factory=dict)  # run.json, when the dataset has it

    @property
    def bd_range(self) -> str:
        return str(self.info.get("bd_range") or "learned")

    @property
    def image_keys(self) -> set[str]:
        return {row["image_key"] for row in self.rows}


def is_hub_id(source: str) -> bool:
    """True for ``org/name`` that is not an existing path."""
    return bool(_HUB_ID.match(source)) and not Path(source).exists()


def open_results(source: str) -> Results:
    """The run in the results dataset ``source`` (folder or Hub dataset id);
    :class:`DatasetError` in one line when it cannot be read."""
    source = str(source).strip()
    folder = _hub_folder(source) if is_hub_id(source) else Path(source)
    return read_folder(folder, source)


def _hub_folder(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from .. import network

    try:
        with network.guard(f"Hub dataset {repo_id}", _HINT):
            return Path(
                snapshot_download(
                    repo_id,
                    repo_type="dataset",
                    allow_patterns=["README.md", RUN_FILE, "data/*.parquet"],
                )
            )
    except LocalEntryNotFoundError as error:
        raise DatasetError(
            f"cannot get Hub dataset {repo_id}: it is not in the local Hugging Face cache and "
            f"{network.why_offline(error)}. {_HINT}"
        ) from None
    except (RepositoryNotFoundError, GatedRepoError):
        raise DatasetError(
            f"Hub dataset {repo_id} not found (or private, or gated): check the id"
        ) from None
    except RevisionNotFoundError:
        raise DatasetError(f"Hub dataset {repo_id} has no main revision") from None
    except HFValidationError as error:
        raise DatasetError(f"{repo_id!r} is not a valid Hub dataset id ({error})") from None


def read_folder(folder: Path, source: str | None = None) -> Results:
    """The run in a results dataset folder (see :func:`open_results`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = source or str(folder)
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is a file"
        raise DatasetError(
            f"{source} {what}: give a results dataset folder or a Hub dataset id (org/name)"
        )
    files = sorted(folder.glob(MEASUREMENTS_GLOB))
    if not files:
        bench = (folder / RUN_FILE).exists() or (folder / "measurements.csv").exists()
        hint = (
            f"it is a bench output: publish it first with `pku-aigi results publish {source} "
            "--out FOLDER`"
            if bench
            else "make one with `pku-aigi results publish BENCH_OUT --out FOLDER`"
        )
        raise DatasetError(f"{source} is not a results dataset (no {MEASUREMENTS_GLOB}): {hint}")
    tables = []
    for path in files:
        try:
            tables.append(pq.read_table(path))
        except (OSError, pa.ArrowException) as error:
            raise DatasetError(f"{path} is not a readable Parquet file ({error})") from None
    missing = [c for c in schema.REQUIRED if any(c not in t.column_names for t in tables)]
    if missing:
        raise DatasetError(
            f"{source}: {files[0].relative_to(folder)} lacks the column(s) "
            f"{', '.join(missing)} of a pku-aigi results dataset: republish the run with "
            "`pku-aigi results publish`"
        )
    rows = [row for table in tables for row in table.to_pylist()]
    if not rows:
        raise DatasetError(f"{source} holds no measurement rows")
    info = {}
    if (folder / RUN_FILE).is_file():
        try:
            info = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            info = {}
    names = sorted({str(row["run"]) for row in rows if row.get("run")})
    name = ", ".join(names) if names else folder.name
    return Results(source, name, rows, info if isinstance(info, dict) else {})
