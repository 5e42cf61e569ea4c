"""The dataset card (``README.md``) of a results dataset.

YAML front matter in the Hub's dataset-card format: ``configs`` maps the ``measurements``
config (the default) to ``data/measurements.parquet`` and ``bd`` to ``data/bd.parquet``,
so that ``datasets.load_dataset(FOLDER_OR_REPO_ID)`` reads them without a loading script.
The text holds the run's settings, its BD tables and RD plots, the column meanings and
how to add the dataset to a leaderboard.
"""

from __future__ import annotations

from . import analysis, schema

MEASUREMENTS_FILE = "data/measurements.parquet"
BD_FILE = "data/bd.parquet"
TAGS = ["pku-aigi", "image-compression", "rate-distortion", "benchmark", "ai-generated-images"]


def _size_category(rows: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if rows < limit:
            return name
    return "100K<n<1M" if rows < 1_000_000 else "n>1M"


def front_matter(name: str, rows: int) -> str:
    """The card's YAML header (``huggingface_hub.DatasetCardData``)."""
    from huggingface_hub import DatasetCardData

    data = DatasetCardData(
        pretty_name=f"pku-aigi benchmark results: {name}",
        tags=TAGS,
        size_categories=[_size_category(rows)],
        configs=[
            {
                "config_name": "measurements",
                "default": True,
                "data_files": [{"split": "train", "path": MEASUREMENTS_FILE}],
            },
            {"config_name": "bd", "data_files": [{"split": "train", "path": BD_FILE}]},
        ],
    )
    return f"---\n{data.to_yaml()}\n---\n"


def _columns_table() -> list[str]:
    lines = ["| column | type | meaning |", "|---|---|---|"]
    lines += [f"| `{n}` | {kind} | {text} |" for n, kind, text in schema.MEASUREMENT_COLUMNS]
    return lines


def card_text(
    name: str,
    info: dict,
    rows: list[dict],
    points: dict,
    tables: dict,
    plots: list[str],
    repo_id: str | None = None,
) -> str:
    """The whole ``README.md``: front matter, settings, BD tables, plots, columns.
    ``repo_id`` (else ``ORG/NAME``) is the id the examples load."""
    repo = repo_id or "ORG/NAME"
    anchor = info["anchor"]
    codecs = sorted({row["codec"] for row in rows})
    images = sum(analysis.images_per_subset(rows).values())
    lines = [
        f"# pku-aigi benchmark results: {name}",
        "",
        f"Rate-distortion measurements of `pku-aigi bench` (pku-aigi {info['pku-aigi']}): "
        f"{len(rows)} rows, one per image x codec x quality, on {images} images; codecs "
        f"{', '.join(codecs)}. Made with `pku-aigi results publish`; compare it with other "
        "runs with `pku-aigi results compare`.",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        f'rows = load_dataset("{repo}", split="train")  # or a local copy of this folder',
        f'bd = load_dataset("{repo}", "bd", split="train")  # the BD table below',
        "```",
        "",
        "## Settings",
        "",
    ]
    lines += [f"- **{key}**: {value}" for key, value in info.get("settings", {}).items()]
    lines += [
        "",
        f"## BD values against {anchor}",
        "",
        "Computed with the `bjontegaard` package, Akima interpolation, on mean RD points "
        "(every image of a group measured). BD-rate < 0: fewer bits than the anchor at "
        "equal quality.",
        "",
    ]
    lines += analysis.bd_markdown(points, tables, anchor)
    if plots:
        lines += ["## RD curves", ""]
        lines += [f"![{path}]({path})" for path in plots]
        lines.append("")
    lines += ["## Columns of `measurements`", ""] + _columns_table()
    lines += [
        "",
        "## Add it to a leaderboard",
        "",
        "The PKU-AIGI-500K Space's Leaderboard tab reads the datasets named in "
        "`PKU_AIGI_RESULTS` (comma-separated Hub ids or folders), e.g. "
        f"`PKU_AIGI_RESULTS={repo},other-org/other-run`, and ranks every codec by its "
        "BD-rate against VVC.",
        "",
    ]
    return front_matter(name, len(rows)) + "\n".join(lines)
