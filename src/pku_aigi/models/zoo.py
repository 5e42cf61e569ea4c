"""The zoo manifest: which Hub model repos hold which trained codec.

``zoo.json`` is package data (``pku_aigi/models/zoo.json``, read with
``importlib.resources``); the repository's ``models/zoo.json`` is a symbolic link to it,
so there is one source of truth. Each entry names a Hub model repo and what it holds::

    {"repo_id": "pku-aigi/mbt2018-mean-mse-q3", "architecture": "mbt2018-mean",
     "quality": 3, "metric": "mse", "trained_on": "Vimeo-90k", "source": "<url>"}

The converted CompressAI zoo entries are produced by :func:`compressai_zoo_entries`
(``python -m pku_aigi.models.zoo`` rewrites the file from the current entries).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from ..errors import ModelError

NAMESPACE = "pku-aigi"
ENTRY_KEYS = ("repo_id", "architecture", "quality", "metric", "trained_on", "source")


def load_zoo() -> dict[str, Any]:
    """The manifest ``{"models": [entry, ...]}``, checked for the required keys."""
    text = resources.files("pku_aigi.models").joinpath("zoo.json").read_text(encoding="utf-8")
    zoo = json.loads(text)
    for number, entry in enumerate(zoo.get("models", [])):
        missing = [key for key in ENTRY_KEYS if key not in entry]
        if missing:
            raise ModelError(f"zoo.json entry {number} lacks {', '.join(missing)}")
    return zoo


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


def repo_id(architecture: str, quality: int, metric: str, trained_on: str = "Vimeo-90k") -> str:
    """The Hub repo id of one zoo model, or :class:`ModelError` naming what exists."""
    matches = find_models(architecture, quality=quality, metric=metric, trained_on=trained_on)
    if not matches:
        have = sorted({(e["quality"], e["metric"]) for e in find_models(architecture)})
        raise ModelError(
            f"the zoo has no {architecture} quality {quality} {metric} model trained on "
            f"{trained_on}; it has (quality, metric): {have or 'none'}"
        )
    return matches[0]["repo_id"]


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
                        "trained_on": "Vimeo-90k",
                        "source": url,
                    }
                )
    return entries


def render_zoo(entries: list[dict[str, Any]]) -> str:
    """The text of ``zoo.json`` for ``entries`` (one entry per line, stable order)."""
    lines = ",\n".join("    " + json.dumps(entry, sort_keys=False) for entry in entries)
    return '{\n  "models": [\n' + lines + "\n  ]\n}\n"


if __name__ == "__main__":  # pragma: no cover - maintenance: regenerate zoo.json
    from pathlib import Path

    target = Path(__file__).with_name("zoo.json")
    others = [e for e in load_zoo()["models"] if e["trained_on"] != "Vimeo-90k"]
    target.write_text(render_zoo(compressai_zoo_entries() + others), encoding="utf-8")
    print(f"wrote {target}")
