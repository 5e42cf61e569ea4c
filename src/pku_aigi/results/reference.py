"""The packaged reference results: the paper's BD-rates against VTM (``reference.json``).

Reference rows are never measured here: each names the paper, its anchor (VTM, the
H.266/VVC reference encoder, not the VVenC of ``bench``), the metric and how exact it is
(values read off the paper's plots: about 2 %). They are kept apart from measured rows
(``source`` = ``reference``) and never enter a BD computation.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from . import schema

REFERENCE_FILE = Path(__file__).with_name("reference.json")
REFERENCE_SOURCE = "reference"  # its name in PKU_AIGI_RESULTS
COLUMNS = ("source", "run", "subset", "codec", "metric", "bd_rate", "anchor", "accuracy",
           "model", "note")  # fmt: skip


@cache
def reference_data() -> dict:
    """The parsed ``reference.json``."""
    return json.loads(REFERENCE_FILE.read_text(encoding="utf-8"))


def reference_rows() -> list[dict]:
    """One dict per reference value, with :data:`COLUMNS`; every row says where it is from
    and how exact it is."""
    data = reference_data()
    rows = []
    for entry in data["rows"]:
        row = {
            "source": schema.REFERENCE,
            "run": data["run"],
            "anchor": data["anchor"],
            "accuracy": data["accuracy"],
            **entry,
        }
        rows.append({column: row.get(column) for column in COLUMNS})
    return rows
