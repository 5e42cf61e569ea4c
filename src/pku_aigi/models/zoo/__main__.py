"""Maintenance: regenerate ``zoo.json`` (``python -m pku_aigi.models.zoo``).

CompressAI's pre-trained models as listed by the installed CompressAI, followed by the
manifest's other entries (weights trained on other data) as they are.
"""

import json
from pathlib import Path

from .manifest import VIMEO, ZOO_FILE, compressai_zoo_entries, packaged_text, render_zoo

if __name__ == "__main__":  # pragma: no cover - maintenance: regenerate zoo.json
    target = Path(__file__).with_name(ZOO_FILE)
    others = [e for e in json.loads(packaged_text())["models"] if e["trained_on"] != VIMEO]
    target.write_text(render_zoo(compressai_zoo_entries() + others), encoding="utf-8")
    print(f"wrote {target}")
