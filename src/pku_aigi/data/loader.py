"""``pku_aigi.load_dataset``: one call from a config name to a ready ``datasets`` dataset."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import quote

from ..errors import DatasetError, PkuAigiError
from ..subsets import HUB_REPO_ID, VALIDATION_ARCHIVE, check_split, get_subset

_SOURCES = ("builder.py", "prompts.py", "splitzip.py", "../subsets.py", "../errors.py")


def _code_hash() -> str:
    """Hash of the code that shapes the examples: a new version rebuilds the cache."""
    digest = hashlib.sha256()
    here = Path(__file__).parent
    for name in _SOURCES:
        digest.update((here / name).read_bytes())
    return digest.hexdigest()[:16]


def _fingerprint(data_dir: str, config: str) -> str:
    """Names, sizes and mtimes of the files a config may read from ``data_dir``."""
    subset = get_subset(config)
    names = {VALIDATION_ARCHIVE, *subset.hub_files("train")}
    stems = {a.last_disk.rsplit(".", 1)[0] for a in subset.train_archives}
    entries = []
    for entry in sorted(os.scandir(data_dir), key=lambda e: e.name):
        if entry.name in names or entry.name.rsplit(".", 1)[0] in stems:
            stat = entry.stat()
            entries.append(f"{entry.name}:{stat.st_size}:{stat.st_mtime_ns}")
    test_dir = Path(data_dir, "test")
    if test_dir.is_dir():
        for path in sorted(test_dir.rglob("*")):
            if path.is_file():
                stat = path.stat()
                entries.append(f"{path.relative_to(data_dir)}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()[:16]


def _unwrap(error: BaseException) -> PkuAigiError | None:
    """The user-facing error that ``datasets`` wrapped in a generation error, if any."""
    while error is not None:
        if isinstance(error, PkuAigiError):
            return error
        error = error.__cause__ or error.__context__
    return None


def load_dataset(
    config: str,
    split: str | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    repo_id: str = HUB_REPO_ID,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    streaming: bool = False,
):
    """Load a subset of PKU-AIGI-500K as a ``datasets`` dataset.

    Args:
        config: subset name: ``sd21b``, ``sd21``, ``sdxl``, ``mj52`` or ``mod``.
        split: ``train``, ``validation`` or ``test``; None loads every available split.
        data_dir: a local folder holding (some of) the Hub repo's files under their Hub
            names (and, for the test split, ``test/<FOLDER>/<N>.png`` + ``test/<FOLDER>.txt``),
            or an fsspec URL of one (e.g. ``hf://datasets/<repo>``). None downloads exactly
            the files needed from ``repo_id``.
        repo_id: the Hub dataset repo.
        revision: a branch, tag or commit of ``repo_id``.
        cache_dir: where ``datasets`` keeps its Arrow files (and, under ``hub/``, the
            downloads); the library defaults when None.
        streaming: yield examples straight from the archives, writing no Arrow files
            (without ``data_dir`` the archives are read remotely through ``hf://``).

    Returns:
        ``datasets.Dataset`` for one split, ``datasets.DatasetDict`` for ``split=None``,
        ``datasets.IterableDataset`` / ``IterableDatasetDict`` when streaming.

    Raises:
        DatasetError: unknown config or split, the test split without ``data_dir``, a
            missing or corrupt archive part, an image whose prompt line does not exist.
    """
    from datasets.exceptions import DatasetGenerationError

    from .. import network
    from .builder import PkuAigi500K, test_split_error
    from .download import download_files

    subset = get_subset(config)
    if split is not None:
        check_split(split)
    splits = (split,) if split else None
    fingerprint = ""
    if data_dir is None:
        if split == "test":
            raise test_split_error(subset, f"{repo_id} has no test images")
        splits = splits or ("train", "validation")
        files = sorted({name for s in splits for name in subset.hub_files(s)})
        if streaming:
            _check_hub_reachable_for_streaming(repo_id, revision)
            at = f"@{quote(revision, safe='')}" if revision else ""
            data_dir = f"hf://datasets/{repo_id}{at}"
        else:
            hub_cache = Path(cache_dir, "hub") if cache_dir is not None else None
            with network.guard(f"the Hub to download {repo_id}", _LOCAL_COPY_HINT):
                data_dir = str(download_files(repo_id, files, revision, hub_cache))
    else:
        data_dir = os.fspath(data_dir)
        if "://" not in data_dir and not os.path.isdir(data_dir):
            raise DatasetError(f"data_dir {data_dir} is not a folder")
    if "://" not in data_dir:
        data_dir = os.path.abspath(data_dir)
        fingerprint = _fingerprint(data_dir, config)

    builder = PkuAigi500K(
        config_name=config,
        data_dir=data_dir,
        cache_dir=os.fspath(cache_dir) if cache_dir is not None else None,
        hash=_code_hash(),
        splits=splits,
        fingerprint=fingerprint,
    )
    if streaming:
        return builder.as_streaming_dataset(split=split)
    try:
        builder.download_and_prepare()
    except DatasetGenerationError as error:
        cause = _unwrap(error)
        if cause is not None:
            raise cause from None
        raise
    return builder.as_dataset(split=split)


_LOCAL_COPY_HINT = "Or pass data_dir= (--data-dir) a local copy of the dataset's files"


def _check_hub_reachable_for_streaming(repo_id: str, revision: str | None) -> None:
    """Streaming reads the archives on the Hub: say so at once when it cannot be reached."""
    from huggingface_hub import HfApi

    from .. import network

    if network.is_offline():
        raise DatasetError(
            f"streaming reads the archives of {repo_id} on the Hub, and HF_HUB_OFFLINE=1 is "
            "set: unset it, load without streaming from the local cache, or pass data_dir= "
            "(--data-dir) a local copy of the dataset's files"
        )
    from huggingface_hub.errors import HfHubHTTPError

    try:
        with network.guard(f"the Hub to stream {repo_id}", _LOCAL_COPY_HINT):
            HfApi().dataset_info(repo_id, revision=revision)
    except HfHubHTTPError as error:
        raise DatasetError(f"cannot stream {repo_id}: {str(error).splitlines()[0]}") from None
