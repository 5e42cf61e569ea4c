"""Export configs to the data-only Hub layout: Parquet shards plus a dataset card.

``OUT/data/<config>/<split>-NNNNN-of-NNNNN.parquet`` and ``OUT/README.md`` whose YAML
``configs:`` lists every config found under ``OUT/data``, so that
``datasets.load_dataset(OUT, "mj52")`` (and, once pushed, ``load_dataset(repo, "mj52")``)
works with ``datasets`` 4+ and no custom code. Image columns keep the original PNG bytes.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shlex
from pathlib import Path

from ..errors import DatasetError
from ..outputs import check_output_folder
from ..subsets import SPLITS, get_subset
from .card import GENERATED_MARK, render_card

logger = logging.getLogger(__name__)

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMG]?)B?", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes from ``500MB``, ``2GB``, ``64k`` or a plain number."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise DatasetError(f"cannot read the size {text!r}: use e.g. 500MB or 2GB")
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[match.group(2).lower()]
    return int(float(match.group(1)) * scale)


def _exported(out: Path) -> tuple[dict[str, list[str]], dict[str, dict[str, int]]]:
    """Configs and splits present under ``out/data`` with their example counts."""
    import pyarrow.parquet as pq

    splits, counts = {}, {}
    for folder in sorted((out / "data").glob("*")):
        for split in SPLITS:
            files = sorted(folder.glob(f"{split}-*.parquet"))
            if files:
                splits.setdefault(folder.name, []).append(split)
                rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
                counts.setdefault(folder.name, {})[split] = rows
    return splits, counts


def write_card(out: Path) -> Path:
    """(Re)write ``out/README.md`` for the configs exported under ``out/data``."""
    splits, counts = _exported(out)
    card = out / "README.md"
    card.write_text(render_card(splits, counts), encoding="utf-8")
    return card


def export(
    configs: list[str],
    out: str | os.PathLike,
    *,
    splits: list[str] | None = None,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    max_shard_size: int = 500 << 20,
    force: bool = False,
    **load_kwargs,
) -> Path:
    """Write Parquet shards of ``configs`` (and ``splits``) plus the card into ``out``.

    Existing shards of the same config and split, or a README.md that this function did
    not write, are only replaced with ``force``.
    """
    from .loader import load_dataset

    out = check_output_folder(out, option="--out")
    card = out / "README.md"
    if card.exists() and GENERATED_MARK not in card.read_text(encoding="utf-8") and not force:
        raise DatasetError(f"{card} exists and was not written by pku-aigi: use --force")
    for config in configs:
        get_subset(config)
    written = []
    for config in configs:
        for split in splits or [None]:
            loaded = load_dataset(
                config, split, data_dir=data_dir, cache_dir=cache_dir, **load_kwargs
            )
            parts = loaded.items() if split is None else [(split, loaded)]
            for name, ds in parts:
                written += _write_split(ds, out / "data" / config, name, max_shard_size, force)
    write_card(out)
    logger.info("wrote %d Parquet files and %s", len(written), card)
    return out


def _write_split(ds, folder: Path, split: str, max_shard_size: int, force: bool) -> list[Path]:
    old = sorted(folder.glob(f"{split}-*.parquet"))
    if old and not force:
        raise DatasetError(f"{folder}/{split}-*.parquet exist already: use --force to replace")
    for path in old:
        path.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    shards = max(1, math.ceil(ds.data.nbytes / max_shard_size))
    paths = []
    for index in range(shards):
        path = folder / f"{split}-{index:05d}-of-{shards:05d}.parquet"
        ds.shard(num_shards=shards, index=index, contiguous=True).to_parquet(str(path))
        paths.append(path)
    return paths


def push_to_hub(out: str | os.PathLike, repo_id: str, *, token: str | None = None) -> str:
    """Upload an export folder to the dataset repo ``repo_id`` (created if needed)."""
    from huggingface_hub import HfApi

    from .. import network

    api = HfApi(token=token)
    with network.guard(
        f"the Hub to push dataset repo {repo_id}",
        f"The export in {out} is complete: push it when online with "
        f"`hf upload {repo_id} {shlex.quote(str(out))} . --repo-type dataset` (the "
        "export command again would refuse its existing shards)",
        http_errors=True,
    ):
        api.create_repo(repo_id, repo_type="dataset", exist_ok=True)
        info = api.upload_folder(
            folder_path=str(out),
            repo_id=repo_id,
            repo_type="dataset",
            allow_patterns=["README.md", "data/**/*.parquet"],
            commit_message="Parquet export by pku-aigi data export",
        )
    return str(info)
