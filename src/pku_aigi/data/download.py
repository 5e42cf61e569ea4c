"""Download exactly the Hub files a config and split need, checked against their sha256.

``huggingface_hub.hf_hub_download`` fetches each file into the Hugging Face cache
(resuming a partial ``.incomplete`` download), and every file is then hashed and compared
with the sha256 the Hub lists for it (its Git LFS object id). Online, the expected hash
comes from ``HfApi.get_paths_info`` at one pinned commit; offline, from the cached blob's
name, which for an LFS file is its sha256. A verified file is remembered (by size and
mtime) so a 10 GB part is hashed once, not on every load.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

from ..errors import DatasetError

logger = logging.getLogger(__name__)

_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 8 << 20


def sha256_file(path: str | os.PathLike, desc: str | None = None) -> str:
    """Hex sha256 of a file, with a progress bar for large files."""
    from tqdm.auto import tqdm

    digest = hashlib.sha256()
    size = os.path.getsize(path)
    with (
        open(path, "rb") as handle,
        tqdm(
            total=size,
            unit="B",
            unit_scale=True,
            desc=f"sha256 {desc or Path(path).name}",
            disable=size < (256 << 20),
        ) as bar,
    ):
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def _expected_hashes(repo_id: str, files: list[str], revision: str | None):
    """(commit, {file: sha256 or None}) from the Hub, or (None, {}) when offline."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import (
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if constants.HF_HUB_OFFLINE:
        return None, {}
    from .. import network

    network.install()
    api = HfApi()
    try:
        commit = api.dataset_info(repo_id, revision=revision).sha
        infos = api.get_paths_info(repo_id, files, repo_type="dataset", revision=commit)
    except (RepositoryNotFoundError, RevisionNotFoundError) as error:
        raise DatasetError(
            f"dataset repo {repo_id!r} (revision {revision}) not found: {error}"
        ) from None
    except (OfflineModeIsEnabled, HfHubHTTPError, OSError) as error:
        from .. import network

        network.warn_once(
            "dataset-hashes",
            "cannot reach the Hub (%s): looking for the files in the local cache",
            network.short_reason(error),
        )
        return None, {}
    listed = {
        info.path: (info.lfs.sha256 if getattr(info, "lfs", None) else None) for info in infos
    }
    missing = [name for name in files if name not in listed]
    if missing:
        raise DatasetError(f"{repo_id} has no file {', '.join(missing)} at revision {commit}")
    return commit, listed


def _verify(path: str, name: str, expected: str | None) -> None:
    """Hash ``path`` once and compare with ``expected`` (a blob name when not given)."""
    blob = os.path.realpath(path)
    if expected is None:
        blob_name = os.path.basename(blob)
        expected = blob_name if _SHA256.fullmatch(blob_name) else None
    if expected is None:
        return  # a small non-LFS file: git has no sha256 for it
    stat = os.stat(blob)
    marker = Path(blob).parents[1] / "pku_aigi-verified" / expected
    stamp = f"{stat.st_size} {stat.st_mtime_ns}"
    if marker.is_file() and marker.read_text() == stamp:
        return
    actual = sha256_file(blob, name)
    if actual != expected:
        raise DatasetError(
            f"{name} is corrupt: its sha256 is {actual}, the Hub lists {expected}. Delete "
            f"{blob} and load again to download it anew"
        )
    try:
        marker.parent.mkdir(exist_ok=True)
        marker.write_text(stamp)
    except OSError:  # a read-only cache still works, it is only hashed again next time
        pass


def download_files(
    repo_id: str,
    files: list[str],
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    """Download ``files`` of the dataset repo and return the snapshot folder holding them.

    Raises:
        DatasetError: a file is not on the Hub, cannot be downloaded, or fails its sha256.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    commit, hashes = _expected_hashes(repo_id, files, revision)
    folder = None
    for name in files:
        try:
            path = hf_hub_download(
                repo_id,
                name,
                repo_type="dataset",
                revision=commit or revision,
                cache_dir=cache_dir,
            )
        except LocalEntryNotFoundError as error:
            from .. import network

            raise DatasetError(
                f"cannot download {name} from {repo_id}: it is not in the local cache and "
                f"{network.why_offline(error)}. Connect to the Hub, or pass data_dir= "
                "(--data-dir) a local copy of the dataset's files"
                + ("" if network.is_offline() else " (and set HF_HUB_OFFLINE=1 to skip the Hub)")
            ) from None
        _verify(path, name, hashes.get(name))
        parent = Path(path).parent
        if folder is not None and parent != folder:
            raise DatasetError(f"{name} came from another revision than {files[0]}; retry")
        folder = parent
    if folder is None:
        raise DatasetError("no file to download")
    return folder
