"""The model zoo: which trained codec a repo id names, and where its weights come from.

``zoo.json`` is package data (``pku_aigi/models/zoo.json``); the repository's
``models/zoo.json`` is a symbolic link to it. Each entry names a Hub model repo, what it
holds and a published checkpoint it can be made from::

    {"repo_id": "pku-aigi/mbt2018-mean-mse-q3", "architecture": "mbt2018-mean",
     "quality": 3, "metric": "mse", "trained_on": "Vimeo-90k", "source": "<url>"}

Optional keys: ``sha256`` (of the source file; otherwise the hash prefix in its name,
``<name>-<first 8 hex of sha256>.pth.tar``, is checked as ``torch.hub`` does),
``license`` and ``hparams`` (hyper-parameters other than the quality table's).
``PKU_AIGI_ZOO`` names an extra JSON file of the same format whose entries are added to
(and replace, by ``repo_id``) the packaged ones; ``PKU_AIGI_COMPRESSAI_URL`` replaces the
base URL of the packaged CompressAI sources (a mirror).

:func:`resolve` finds a zoo id's model folder, in this order: a local folder
(``$PKU_AIGI_MODELS_DIR/<repo_id>``), the Hugging Face cache (a downloaded Hub repo, or
a converted checkpoint), the Hub repo, and last the entry's source checkpoint, which is
downloaded (resumable), verified, converted with
:func:`~pku_aigi.models.convert.convert_compressai` and kept in the cache, so that later
loads need no network.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ModelError, NetworkError

logger = logging.getLogger(__name__)

NAMESPACE = "pku-aigi"
ENTRY_KEYS = ("repo_id", "architecture", "quality", "metric", "trained_on", "source")
ZOO_ENV = "PKU_AIGI_ZOO"
MIRROR_ENV = "PKU_AIGI_COMPRESSAI_URL"
MODELS_DIR_ENV = "PKU_AIGI_MODELS_DIR"
COMPRESSAI_BASE_URL = "https://compressai.s3.amazonaws.com/models/v1/"
VIMEO = "Vimeo-90k"
COMPRESSAI_LICENSE = "bsd-3-clause-clear"
COMPRESSAI_LICENSE_URL = "https://github.com/InterDigitalInc/CompressAI/blob/master/LICENSE"
# Folder of converted checkpoints inside the Hugging Face hub cache.
CACHE_FOLDER = "pku-aigi-zoo"
SOURCE_RECORD = "zoo-source.json"
# torch.hub.HASH_REGEX: the hash prefix in a checkpoint's file name.
HASH_IN_NAME = re.compile(r"-([a-f0-9]*)\.")

_zoo_cache: dict[tuple, dict[str, Any]] = {}


# ---------------------------------------------------------------------- the manifest
def load_zoo() -> dict[str, Any]:
    """The manifest ``{"models": [entry, ...]}``: packaged entries plus ``PKU_AIGI_ZOO``'s."""
    extra = os.environ.get(ZOO_ENV) or None
    mirror = os.environ.get(MIRROR_ENV) or None
    stamp = _mtime(extra) if extra else None
    key = (extra, stamp, mirror)
    if key not in _zoo_cache:
        text = resources.files("pku_aigi.models").joinpath("zoo.json").read_text("utf-8")
        entries = {e["repo_id"]: e for e in _checked(json.loads(text), "zoo.json")}
        if mirror:
            base = mirror.rstrip("/") + "/"
            for entry in entries.values():
                if entry["source"].startswith(COMPRESSAI_BASE_URL):
                    entry["source"] = base + entry["source"][len(COMPRESSAI_BASE_URL) :]
        if extra:
            for entry in _checked(_read_extra(extra), f"{ZOO_ENV}={extra}"):
                entries[entry["repo_id"]] = entry  # replaces a packaged entry
        _zoo_cache.clear()
        _zoo_cache[key] = {"models": list(entries.values())}
    return {"models": [dict(entry) for entry in _zoo_cache[key]["models"]]}


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _read_extra(path: str) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(
            f"{ZOO_ENV}={path}: no such file (unset {ZOO_ENV} or fix the path)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{ZOO_ENV}={path} is not a readable zoo JSON file: {error}") from None


def _checked(zoo: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(zoo, dict) or not isinstance(zoo.get("models"), list):
        raise ModelError(f'{where} must hold {{"models": [entry, ...]}} (the zoo.json format)')
    for number, entry in enumerate(zoo["models"]):
        if not isinstance(entry, dict):
            raise ModelError(f"{where}: entry {number} is not a JSON object")
        missing = [key for key in ENTRY_KEYS if key not in entry]
        if missing:
            raise ModelError(f"{where}: entry {number} lacks {', '.join(missing)}")
    return zoo["models"]


def find_entry(repo_id: str) -> dict[str, Any] | None:
    """The zoo entry of ``repo_id``, or None when it is not a zoo id."""
    for entry in load_zoo()["models"]:
        if entry["repo_id"] == repo_id:
            return entry
    return None


def find_models(
    architecture: str | None = None,
    *,
    quality: int | None = None,
    metric: str | None = None,
    trained_on: str | None = None,
) -> list[dict[str, Any]]:
    """Zoo entries matching every given field (all entries when none is given)."""
    wanted = {"architecture": architecture, "quality": quality, "metric": metric}
    wanted["trained_on"] = trained_on
    return [
        entry
        for entry in load_zoo()["models"]
        if all(value is None or entry[key] == value for key, value in wanted.items())
    ]


def preference(entry: dict[str, Any]) -> int:
    """Sort key: weights trained on other data than Vimeo-90k (AI-generated images) first."""
    return 0 if entry["trained_on"] != VIMEO else 1


def preferred_entries(
    architecture: str | None = None, metric: str | None = None
) -> list[dict[str, Any]]:
    """One entry per (architecture, quality, metric), the preferred one (see :func:`preference`)."""
    chosen: dict[tuple, dict[str, Any]] = {}
    for entry in sorted(find_models(architecture, metric=metric), key=preference):
        chosen.setdefault((entry["architecture"], entry["quality"], entry["metric"]), entry)
    return list(chosen.values())


def repo_id(architecture: str, quality: int, metric: str, trained_on: str | None = None) -> str:
    """The repo id of one zoo model (the preferred one unless ``trained_on`` is given).

    Raises:
        ModelError: the zoo has no such model; the message names what it has.
    """
    matches = find_models(architecture, quality=quality, metric=metric, trained_on=trained_on)
    if not matches:
        have = sorted({(e["quality"], e["metric"]) for e in find_models(architecture)})
        on = f" trained on {trained_on}" if trained_on else ""
        raise ModelError(
            f"the zoo has no {architecture} quality {quality} {metric} model{on}; "
            f"it has (quality, metric): {have or 'none'}"
        )
    return sorted(matches, key=preference)[0]["repo_id"]


def entry_for_pushed_model(repo_id: str, config: dict[str, Any], trained_on: str) -> dict:
    """The zoo entry to add for a model pushed to the Hub as ``repo_id``."""
    return {
        "repo_id": repo_id,
        "architecture": config["architecture"],
        "quality": config.get("quality"),
        "metric": config.get("metric") or "mse",
        "trained_on": trained_on,
        "source": f"https://huggingface.co/{repo_id}",
    }


def compressai_zoo_entries(namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    """Entries for CompressAI's pre-trained models converted with ``convert-compressai``."""
    from compressai.zoo.image import model_urls

    entries = []
    for architecture, metrics in model_urls.items():
        for metric, urls in metrics.items():
            for quality, url in sorted(urls.items()):
                entries.append(
                    {
                        "repo_id": f"{namespace}/{architecture}-{metric}-q{quality}",
                        "architecture": architecture,
                        "quality": quality,
                        "metric": metric,
                        "trained_on": VIMEO,
                        "source": url,
                    }
                )
    return entries


def render_zoo(entries: list[dict[str, Any]]) -> str:
    """The text of ``zoo.json`` for ``entries`` (one entry per line, stable order)."""
    lines = ",\n".join("    " + json.dumps(entry, sort_keys=False) for entry in entries)
    return '{\n  "models": [\n' + lines + "\n  ]\n}\n"


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
    if root and (Path(root) / repo_id / "config.json").is_file():
        return Path(root) / repo_id
    return None


def hub_cache_folder(repo_id: str) -> Path | None:
    """The cached snapshot of Hub repo ``repo_id`` holding config and weights, else None."""
    from huggingface_hub import try_to_load_from_cache

    folders = set()
    for name in ("config.json", "model.safetensors"):
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
    from .. import network

    if network.is_offline():
        online = f"; online: Hub, else source {entry['source']}" if entry else ""
        return f"not cached (HF_HUB_OFFLINE=1){online}"
    if check_hub:
        from huggingface_hub import HfApi

        try:
            with network.guard("the Hub"):
                if HfApi().file_exists(repo_id, "config.json"):
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
    from .. import network

    if network.is_offline():
        raise ModelError(
            f"{repo_id} is not in the local cache and HF_HUB_OFFLINE=1 is set: fetch it once "
            f"with network access (`pku-aigi models pull {repo_id}`), or pass a local model "
            f"folder (or put it in ${MODELS_DIR_ENV}/{repo_id})"
        )
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


def _from_hub(repo_id: str, *, token, force_download: bool) -> Path | str:
    """The downloaded Hub repo folder, or why it could not be used (for the message)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
    )

    from .. import network

    network.install()
    try:
        paths = [
            hf_hub_download(repo_id, name, token=token, force_download=force_download)
            for name in ("config.json", "model.safetensors")
        ]
    except LocalEntryNotFoundError as error:  # unreachable, and not cached
        return f"could not be reached ({network.short_reason(error)})"
    except RepositoryNotFoundError:
        return "does not exist (or is private)"
    except RemoteEntryNotFoundError:
        return "has no config.json and model.safetensors"
    except (HfHubHTTPError, OSError) as error:  # unreachable (not cached), a server error
        return f"could not be used ({network.short_reason(error)})"
    except Exception as error:  # noqa: BLE001 - httpx errors of huggingface_hub
        if network.is_network_error(error):
            return f"could not be used ({network.short_reason(error)})"
        raise
    logger.info("%s: downloaded from the Hub", repo_id)
    return Path(paths[0]).parent


def expected_hash(entry: dict[str, Any]) -> str:
    """The sha256 (full, or a prefix from the file name) the source must have."""
    if entry.get("sha256"):
        return str(entry["sha256"]).lower()
    name = entry["source"].rstrip("/").rsplit("/", 1)[-1]
    match = HASH_IN_NAME.search(name)
    if match is None or len(match.group(1)) < 8:
        raise ModelError(
            f"zoo entry {entry['repo_id']}: cannot verify {name}: the entry has no 'sha256' "
            "and the file name carries no hash prefix (<name>-<first 8 hex of sha256>.pth.tar)"
        )
    return match.group(1)


def fetch_source(entry: dict[str, Any], *, force: bool = False) -> Path:
    """Download, verify and convert ``entry["source"]``; the converted folder in the cache.

    Nothing half-written is left: the checkpoint is renamed into place only when complete
    (a cut download stays as ``.incomplete`` to be resumed), a file that fails its hash or
    is no checkpoint is deleted, and the model folder is renamed into place only when
    written completely.
    """
    from filelock import FileLock

    repo_id = entry["repo_id"]
    locks = cache_root() / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    # One process at a time per model (parallel benchmark workers share the cache).
    with FileLock(str(locks / (converted_folder(repo_id).name + ".lock"))):
        if not force and _converted_if_complete(repo_id) is not None:
            return converted_folder(repo_id)
        return _fetch_and_convert(entry, force=force)


def _fetch_and_convert(entry: dict[str, Any], *, force: bool) -> Path:
    from .. import network

    repo_id, url = entry["repo_id"], entry["source"]
    expected = expected_hash(entry)
    name = url.rstrip("/").rsplit("/", 1)[-1]
    checkpoint = cache_root() / "downloads" / name
    try:
        network.download(url, checkpoint, what=f"the weights of {repo_id}")
    except NetworkError as error:
        raise ModelError(str(error)) from None
    digest = file_sha256(checkpoint)
    if not digest.startswith(expected):
        checkpoint.unlink()
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
        checkpoint.unlink(missing_ok=True)
        raise ModelError(f"{url} {error}" if "checkpoint" in str(error) else str(error)) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    checkpoint.unlink(missing_ok=True)  # the converted folder holds everything
    logger.info("%s: converted %s into %s", repo_id, name, target)
    return target


def _convert(entry: dict[str, Any], checkpoint: Path, out: Path, digest: str) -> None:
    from .convert import convert_compressai

    convert_compressai(
        entry["architecture"],
        checkpoint,
        out,
        quality=int(entry["quality"]),
        metric=entry["metric"],
        source=source_text(entry, digest),
        license=entry.get("license") or _default_license(entry),
        training={"data": training_data(entry)},
        **(entry.get("hparams") or {}),
    )
    record = {**entry, "sha256": digest}
    (out / SOURCE_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def _is_compressai(entry: dict[str, Any]) -> bool:
    name = entry["source"].rsplit("/", 1)[-1]
    return entry["trained_on"] == VIMEO and name in _compressai_file_names()


def _compressai_file_names() -> set[str]:
    return {e["source"].rsplit("/", 1)[-1] for e in packaged_compressai_entries()}


def packaged_compressai_entries() -> list[dict[str, Any]]:
    text = resources.files("pku_aigi.models").joinpath("zoo.json").read_text("utf-8")
    return [e for e in json.loads(text)["models"] if e["trained_on"] == VIMEO]


def _default_license(entry: dict[str, Any]) -> str | None:
    return COMPRESSAI_LICENSE if _is_compressai(entry) else None


def training_data(entry: dict[str, Any]) -> str:
    if entry["trained_on"] == VIMEO:
        return "Vimeo-90k (natural video frames, not AI-generated images)"
    return str(entry["trained_on"])


def source_text(entry: dict[str, Any], digest: str) -> str:
    """The card's "source of the weights" for a converted zoo checkpoint."""
    url = entry["source"]
    parts = [
        f"Converted by pku-aigi from the checkpoint {url} (sha256 {digest}): "
        f"{entry['architecture']}, quality {entry['quality']}, {entry['metric']}."
    ]
    if _is_compressai(entry):
        parts.append(
            "It is one of CompressAI's pre-trained models "
            "(https://interdigitalinc.github.io/CompressAI/zoo.html), released under the "
            f"BSD 3-Clause Clear License, as CompressAI's LICENSE ({COMPRESSAI_LICENSE_URL})."
        )
    elif entry.get("license"):
        parts.append(f"Licence: {entry['license']}.")
    else:
        parts.append("Licence: not stated by the zoo entry.")
    if entry["trained_on"] == VIMEO:
        parts.append(
            "The weights were trained on natural images (Vimeo-90k video frames), "
            "not on AI-generated images."
        )
    else:
        parts.append(f"Trained on: {entry['trained_on']}.")
    return " ".join(parts)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


if __name__ == "__main__":  # pragma: no cover - maintenance: regenerate zoo.json
    target = Path(__file__).with_name("zoo.json")
    text = resources.files("pku_aigi.models").joinpath("zoo.json").read_text("utf-8")
    others = [e for e in json.loads(text)["models"] if e["trained_on"] != VIMEO]
    target.write_text(render_zoo(compressai_zoo_entries() + others), encoding="utf-8")
    print(f"wrote {target}")
