"""The zoo manifest: which trained codecs ``zoo.json`` lists, and what it says of them.

:func:`load_zoo` reads the packaged ``zoo.json`` (and ``PKU_AIGI_ZOO``'s entries, and
``PKU_AIGI_COMPRESSAI_URL``'s mirror); :func:`find_entry`, :func:`find_models` and
:func:`repo_id` look models up; the provenance helpers (:func:`expected_hash`,
:func:`source_text`, :func:`training_data`) say where an entry's weights come from and
what its model card says of them. Nothing here downloads or loads a model
(:mod:`.fetch` does).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ...errors import ModelError

NAMESPACE = "pku-aigi"
ENTRY_KEYS = ("repo_id", "architecture", "quality", "metric", "trained_on", "source")
ZOO_ENV = "PKU_AIGI_ZOO"
MIRROR_ENV = "PKU_AIGI_COMPRESSAI_URL"
COMPRESSAI_BASE_URL = "https://compressai.s3.amazonaws.com/models/v1/"
VIMEO = "Vimeo-90k"
COMPRESSAI_LICENSE = "bsd-3-clause-clear"
COMPRESSAI_LICENSE_URL = "https://github.com/InterDigitalInc/CompressAI/blob/master/LICENSE"
# torch.hub.HASH_REGEX: the hash prefix in a checkpoint's file name.
HASH_IN_NAME = re.compile(r"-([a-f0-9]*)\.")
SHA256 = re.compile(r"[0-9a-fA-F]{64}")
FILE_NAME = re.compile(r"\w[\w.+-]{0,199}")
# Keys of an entry that its hparams may not set (they are the entry's own).
RESERVED_HPARAMS = ("architecture", "quality", "metric", "name")
# The package holding zoo.json (package data).
ZOO_PACKAGE = "pku_aigi.models.zoo"
ZOO_FILE = "zoo.json"

_zoo_cache: dict[tuple, dict[str, Any]] = {}


# ---------------------------------------------------------------------- the manifest
def load_zoo() -> dict[str, Any]:
    """The manifest ``{"models": [entry, ...]}``: packaged entries plus ``PKU_AIGI_ZOO``'s."""
    extra = os.environ.get(ZOO_ENV) or None
    mirror = os.environ.get(MIRROR_ENV) or None
    stamp = _mtime(extra) if extra else None
    key = (extra, stamp, mirror)
    if key not in _zoo_cache:
        text = packaged_text()
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
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
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
        _check_fields(entry, f"{where}: entry {number}")
    return zoo["models"]


def _check_fields(entry: dict[str, Any], where: str) -> None:
    """ModelError unless each field of ``entry`` has its type and form (no model code)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    from ..hub.validation import MAX_TEXT, _show

    def refuse(key: str, must: str) -> ModelError:
        return ModelError(f"{where}: {key!r} must be {must}, not {_show(entry.get(key))}")

    try:
        if not isinstance(entry["repo_id"], str):
            raise refuse("repo_id", "a valid Hub repo id such as org/name")
        validate_repo_id(entry["repo_id"])
    except HFValidationError as error:
        raise refuse("repo_id", f"a valid Hub repo id such as org/name ({error})") from None
    for key, most in (("architecture", 128), ("metric", 64), ("trained_on", MAX_TEXT)):
        if not isinstance(entry[key], str) or not 0 < len(entry[key]) <= most:
            raise refuse(key, f"a name (a string of 1 to {most} characters)")
    quality = entry["quality"]
    if not isinstance(quality, int) or isinstance(quality, bool):
        raise refuse("quality", "an integer")
    if entry.get("license") is not None and not isinstance(entry["license"], str):
        raise refuse("license", "a licence id (a string)")
    if entry.get("base_model") is not None:
        try:
            validate_repo_id(entry["base_model"])
        except (HFValidationError, TypeError):
            raise refuse("base_model", "the Hub repo id of the base model (org/name)") from None
    if entry.get("sha256") is not None and not (
        isinstance(entry["sha256"], str) and SHA256.fullmatch(entry["sha256"])
    ):
        raise refuse("sha256", "the full sha256 of the source file (64 hex digits)")
    size = entry.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
        raise refuse("size", "the size of the source file in bytes (a positive integer)")
    hparams = entry.get("hparams")
    if hparams is not None and not isinstance(hparams, dict):
        raise refuse("hparams", 'a JSON object of hyper-parameters such as {"N": 64}')
    reserved = [key for key in RESERVED_HPARAMS if key in (hparams or {})]
    if reserved:
        raise refuse("hparams", f"free of {', '.join(reserved)} (the entry's own keys)")
    source = entry["source"]
    try:
        scheme = urlsplit(source).scheme if isinstance(source, str) else None
    except ValueError:
        scheme = None
    if scheme not in ("", "file", "http", "https") or len(source) > MAX_TEXT:
        raise refuse("source", "an http(s) or file:// URL, or a path")
    if not FILE_NAME.fullmatch(source_name(entry)):
        raise refuse(
            "source", "a URL ending in a file name (such as mbt2018-mean-3-723404a8.pth.tar)"
        )


def check_entry(entry: dict[str, Any]) -> None:
    """ModelError unless ``entry`` can be fetched and built safely: its fields, and its
    architecture, quality, metric and ``hparams`` by the rules of a model folder's
    ``config.json`` (:func:`pku_aigi.models.hub.validation.check_config`)."""
    from ..hub.validation import check_config

    where = f"zoo entry {entry.get('repo_id')!r}"
    missing = [key for key in ENTRY_KEYS if key not in entry]
    if missing:
        raise ModelError(f"{where} lacks {', '.join(missing)}")
    _check_fields(entry, where)
    config = {key: entry[key] for key in ("architecture", "quality", "metric")}
    check_config({**config, **(entry.get("hparams") or {})}, where)


def source_name(entry: dict[str, Any]) -> str:
    """The file name the entry's source ends in."""
    return urlsplit(entry["source"]).path.rstrip("/").rsplit("/", 1)[-1]


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
    """Sort key: weights trained on other data than Vimeo-90k (AI-generated images), or
    fine-tuned from a base (``base_model``), first."""
    return 0 if entry["trained_on"] != VIMEO or entry.get("base_model") else 1


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
    """The zoo entry to add for a model pushed to the Hub as ``repo_id`` (with the repo
    id of its base when it was fine-tuned from one)."""
    entry = {
        "repo_id": repo_id,
        "architecture": config["architecture"],
        "quality": config.get("quality"),
        "metric": config.get("metric") or "mse",
        "trained_on": trained_on,
        "source": f"https://huggingface.co/{repo_id}",
    }
    base = (config.get("base_model") or {}).get("repo_id")
    if base:
        entry["base_model"] = base
    return entry


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


def packaged_text() -> str:
    """The text of the packaged ``zoo.json``."""
    return resources.files(ZOO_PACKAGE).joinpath(ZOO_FILE).read_text("utf-8")


# ---------------------------------------------------------------------- provenance
def expected_hash(entry: dict[str, Any]) -> str:
    """The sha256 the source must have: the entry's full one, else the prefix of at
    least 8 hex digits in its file name (``<name>-<first 8 hex of sha256>.pth.tar``)."""
    if entry.get("sha256") is not None:
        digest = str(entry["sha256"]).lower()
        if not SHA256.fullmatch(digest):
            raise ModelError(
                f"zoo entry {entry['repo_id']}: 'sha256' must be the full sha256 of the "
                f"source file (64 hex digits), not {digest[:70]!r}"
            )
        return digest
    name = source_name(entry)
    match = HASH_IN_NAME.search(name)
    if match is None or not 8 <= len(match.group(1)) <= 64:
        raise ModelError(
            f"zoo entry {entry['repo_id']}: cannot verify {name}: the entry has no 'sha256' "
            "and the file name carries no hash prefix (<name>-<first 8 hex of sha256>.pth.tar)"
        )
    return match.group(1)


def _is_compressai(entry: dict[str, Any]) -> bool:
    name = entry["source"].rsplit("/", 1)[-1]
    return entry["trained_on"] == VIMEO and name in _compressai_file_names()


def _compressai_file_names() -> set[str]:
    return {e["source"].rsplit("/", 1)[-1] for e in packaged_compressai_entries()}


def packaged_compressai_entries() -> list[dict[str, Any]]:
    text = packaged_text()
    return [e for e in json.loads(text)["models"] if e["trained_on"] == VIMEO]


def default_license(entry: dict[str, Any]) -> str | None:
    """The licence of an entry that names none: CompressAI's for its published models."""
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
