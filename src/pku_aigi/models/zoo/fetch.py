"""Where a zoo model's folder comes from: local folder, cache, Hub repo or source.

:func:`resolve` finds a zoo id's model folder, in this order: a local folder
(``$PKU_AIGI_MODELS_DIR/<repo_id>``), the Hugging Face cache (a downloaded Hub repo, or
a converted checkpoint), the Hub repo, and last the entry's source checkpoint, which is
downloaded (resumable), verified, converted with
:func:`~pku_aigi.models.zoo.convert.convert_compressai` and kept in the cache, so that
later loads need no network. :func:`zoo_folder` is the source resolver the model loaders
ask (:func:`pku_aigi.models.hub.folder.register_source_resolver`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from ...errors import ModelError, NetworkError
from ..hub.folder import CONFIG_NAME, WEIGHTS_NAME
from .manifest import (
    MIRROR_ENV,
    VIMEO,
    check_entry,
    default_license,
    expected_hash,
    file_sha256,
    find_entry,
    source_name,
    source_text,
    training_data,
)

logger = logging.getLogger(__name__)

MODELS_DIR_ENV = "PKU_AIGI_MODELS_DIR"
# Folder of converted checkpoints inside the Hugging Face hub cache.
CACHE_FOLDER = "pku-aigi-zoo"
SOURCE_RECORD = "zoo-source.json"


# ---------------------------------------------------------------------- where it is
def cache_root() -> Path:
    """``<Hugging Face hub cache>/pku-aigi-zoo``: converted checkpoints and downloads."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / CACHE_FOLDER


def converted_folder(repo_id: str) -> Path:
    return cache_root() / ("models--" + repo_id.replace("/", "--"))


def local_folder(repo_id: str) -> Path | None:
    """``$PKU_AIGI_MODELS_DIR/<repo_id>`` when it holds a model, else None."""
    root = os.environ.get(MODELS_DIR_ENV)
    if root and (Path(root) / repo_id / CONFIG_NAME).is_file():
        return Path(root) / repo_id
    return None


def hub_cache_folder(repo_id: str) -> Path | None:
    """The cached snapshot of Hub repo ``repo_id`` holding config and weights, else None."""
    from huggingface_hub import try_to_load_from_cache

    folders = set()
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        path = try_to_load_from_cache(repo_id, name)
        if not isinstance(path, str):
            return None
        folders.add(Path(path).parent)
    return folders.pop() if len(folders) == 1 else None


def cached_folder(repo_id: str) -> tuple[Path, str] | None:
    """(folder, where) of a model that loads without network, or None."""
    for where, find in (
        ("local", local_folder),
        ("cached (Hub)", hub_cache_folder),
        ("cached (converted)", _converted_if_complete),
    ):
        folder = find(repo_id)
        if folder is not None:
            return folder, where
    return None


def _converted_if_complete(repo_id: str) -> Path | None:
    folder = converted_folder(repo_id)
    return folder if (folder / SOURCE_RECORD).is_file() else None


def where(repo_id: str, *, check_hub: bool = True) -> str:
    """Where ``repo_id`` would load from: local, cached, Hub or source; downloads nothing."""
    found = cached_folder(repo_id)
    if found is not None:
        return f"{found[1]}: {found[0]}"
    entry = find_entry(repo_id)
    from ... import network

    if network.is_offline():
        online = f"; online: Hub, else source {entry['source']}" if entry else ""
        return f"not cached (HF_HUB_OFFLINE=1){online}"
    if check_hub:
        from huggingface_hub import HfApi

        try:
            with network.guard("the Hub"):
                if HfApi().file_exists(repo_id, CONFIG_NAME):
                    return "Hub"
        except NetworkError:
            pass  # unreachable: the source is the next candidate
        except Exception as error:  # noqa: BLE001 - an unusable repo id, a gated repo
            logger.debug("Hub check of %s failed: %s", repo_id, error)
    if entry is not None and entry.get("source"):
        return f"source: {entry['source']}"
    return "unavailable"


# ---------------------------------------------------------------------- resolution
def resolve(repo_id: str, *, token: str | bool | None = None, force_download: bool = False) -> Path:
    """The model folder of zoo id ``repo_id``, fetched and converted when needed.

    Raises:
        ModelError: not a zoo id, or no step can provide the model; the message says
            why each step failed and what to do.
    """
    entry = find_entry(repo_id)
    if entry is None:
        raise ModelError(f"{repo_id!r} is not in the model zoo (see `pku-aigi models list --zoo`)")
    if not force_download:
        found = cached_folder(repo_id)
        if found is not None:
            logger.debug("%s: %s", repo_id, found[1])
            return found[0]
    from ... import network

    if network.is_offline():
        if _is_local(entry.get("source", "")):  # a mirror folder needs no network
            return fetch_source(entry, force=force_download)
        raise offline_error(entry)
    hub_problem = _from_hub(repo_id, token=token, force_download=force_download)
    if isinstance(hub_problem, Path):
        return hub_problem
    if not entry.get("source") or entry["source"].startswith("https://huggingface.co/"):
        raise ModelError(f"cannot load {repo_id}: the Hub repo {hub_problem}")
    try:
        return fetch_source(entry, force=force_download)
    except ModelError as error:
        raise ModelError(
            f"cannot load {repo_id}: it is not in the local cache, the Hub repo {hub_problem},"
            f" and its source checkpoint failed: {error}"
        ) from None


def _is_local(source: str) -> bool:
    return bool(source) and not source.startswith(("http://", "https://"))


def offline_problem(repo_id: str) -> ModelError | None:
    """Why zoo model ``repo_id`` cannot load now, without the network: None when it is
    cached, online, or its source is a local file (a mirror folder)."""
    from ... import network

    entry = find_entry(repo_id)
    if entry is None or cached_folder(repo_id) is not None or not network.is_offline():
        return None
    return None if _is_local(entry.get("source", "")) else offline_error(entry)


def offline_error(entry: dict[str, Any]) -> ModelError:
    """Not cached and offline: the ways to get the weights, with and without the Hub
    (its ``cause`` is the same text for every model: a report prints it once)."""

    def message(repo: str, arch: str, quality: str, metric: str, it: str = "it") -> str:
        text = (
            f"not in the local cache and HF_HUB_OFFLINE=1 is set. Get {it} once with network "
            f"access (`pku-aigi models pull {repo}`); or, without the Hub, from CompressAI's "
            f"checkpoint file (`pku-aigi models list --zoo` names it): set {MIRROR_ENV} to "
            f"the folder holding such files, or run `pku-aigi models convert-compressai "
            f"{arch} FILE --quality {quality} --metric {metric} --out DIR` and pass DIR "
            f"(or put it in ${MODELS_DIR_ENV}/{repo})"
        )
        return text if entry.get("trained_on") == VIMEO else text.split("; or, without")[0]

    error = ModelError(
        f"{entry['repo_id']} is "
        + message(entry["repo_id"], entry["architecture"], entry["quality"], entry["metric"])
    )
    error.cause = "these models are " + message("ID", "ARCH", "Q", "METRIC", it="them")
    return error


def zoo_folder(
    source: str, *, token: str | bool | None = None, force_download: bool = False
) -> Path | None:
    """The model loaders' source resolver: the folder of zoo id ``source``
    (:func:`resolve`), or None when ``source`` is not a zoo id."""
    if find_entry(source) is None:
        return None
    return resolve(source, token=token, force_download=bool(force_download))


def _from_hub(repo_id: str, *, token, force_download: bool) -> Path | str:
    """The downloaded Hub repo folder, or why it could not be used (for the message)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
    )

    from ... import network

    network.install()
    try:
        paths = [
            hf_hub_download(repo_id, name, token=token, force_download=force_download)
            for name in (CONFIG_NAME, WEIGHTS_NAME)
        ]
    except LocalEntryNotFoundError as error:  # unreachable, and not cached
        return f"could not be reached ({network.short_reason(error)})"
    except RepositoryNotFoundError:
        return "does not exist (or is private)"
    except RemoteEntryNotFoundError:
        return f"has no {CONFIG_NAME} and {WEIGHTS_NAME}"
    except (HfHubHTTPError, OSError) as error:  # unreachable (not cached), a server error
        return f"could not be used ({network.short_reason(error)})"
    except Exception as error:  # noqa: BLE001 - httpx errors of huggingface_hub
        if network.is_network_error(error):
            return f"could not be used ({network.short_reason(error)})"
        raise
    logger.info("%s: downloaded from the Hub", repo_id)
    return Path(paths[0]).parent


def fetch_source(entry: dict[str, Any], *, force: bool = False) -> Path:
    """Download, verify and convert ``entry["source"]``; the converted folder in the cache.

    The entry is checked first (:func:`.manifest.check_entry`). Nothing half-written is
    left: the checkpoint is renamed into place only when complete (a cut download stays
    as ``.incomplete`` to be resumed), a file that fails its hash or is no checkpoint is
    deleted, and the model folder is renamed into place only when written completely.
    Everything written for one model (download, staging, folder) is under its own lock.
    """
    from filelock import FileLock

    check_entry(entry)
    repo_id = entry["repo_id"]
    locks = cache_root() / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    # One process at a time per model (parallel benchmark workers share the cache).
    with FileLock(str(locks / (converted_folder(repo_id).name + ".lock"))):
        if not force and _converted_if_complete(repo_id) is not None:
            return converted_folder(repo_id)
        return _fetch_and_convert(entry, force=force)


def download_folder(repo_id: str) -> Path:
    """Where the source checkpoint of ``repo_id`` is downloaded (one folder per model, as
    the lock: two models whose sources share a file name never share the file)."""
    return cache_root() / "downloads" / converted_folder(repo_id).name


def _fetch_and_convert(entry: dict[str, Any], *, force: bool) -> Path:
    from ... import network

    repo_id, url = entry["repo_id"], entry["source"]
    expected = expected_hash(entry)
    name = source_name(entry)
    checkpoint = download_folder(repo_id) / name
    try:
        network.download(url, checkpoint, what=f"the weights of {repo_id}", size=entry.get("size"))
    except NetworkError as error:
        raise ModelError(str(error)) from None
    digest = file_sha256(checkpoint)
    if not digest.startswith(expected):
        _discard(checkpoint)
        raise ModelError(
            f"{url} is not the expected file: its sha256 is {digest}, the zoo expects "
            f"{expected}{'...' if len(expected) < 64 else ''}. The download was deleted; "
            "check the URL (or the mirror in PKU_AIGI_COMPRESSAI_URL)"
        )
    target = converted_folder(repo_id)
    staging = target.with_name(f".{target.name}.{os.getpid()}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _convert(entry, checkpoint, staging, digest)
        if force:
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(staging, target)
        except OSError:  # another process converted it meanwhile: keep theirs
            if not (target / SOURCE_RECORD).is_file():
                raise
    except ModelError as error:
        _discard(checkpoint)
        raise ModelError(f"{url} {error}" if "checkpoint" in str(error) else str(error)) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _discard(checkpoint)  # the converted folder holds everything
    logger.info("%s: converted %s into %s", repo_id, name, target)
    return target


def _discard(checkpoint: Path) -> None:
    """Delete a downloaded checkpoint, and its model's download folder once empty."""
    checkpoint.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        checkpoint.parent.rmdir()


def _convert(entry: dict[str, Any], checkpoint: Path, out: Path, digest: str) -> None:
    from .convert import convert_compressai

    convert_compressai(
        entry["architecture"],
        checkpoint,
        out,
        quality=int(entry["quality"]),
        metric=entry["metric"],
        source=source_text(entry, digest),
        license=entry.get("license") or default_license(entry),
        training={"data": training_data(entry)},
        **(entry.get("hparams") or {}),
    )
    record = {**entry, "sha256": digest}
    (out / SOURCE_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
