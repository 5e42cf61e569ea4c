"""SHA-256 of every .aigic file and decoded image of the built-in architectures.

Run it before and after a refactoring of the learned codecs: equal output means that no
bitstream and no decoded pixel changed. Each architecture is a tiny seeded model (the
tests' hyper-parameters), coded at pad 64/128/own, in modes RGB, L and I;16, with and
without a prompt, on a crop of the package's DiffusionDB sample.

    python benchmarks/aigic_hashes.py > before.json   # ... change ..., then diff
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from tiny_models import TINY_EVERY_ARCH, tiny_model  # noqa: E402

from pku_aigi.codecs.learned import LearnedCodec  # noqa: E402
from pku_aigi.models.architectures.text_encoder import save_tiny_text_encoder  # noqa: E402
from pku_aigi.sample import sample_images  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    path, prompt = sample_images()[1]
    with Image.open(path) as opened:
        image = opened.convert("RGB").crop((40, 30, 190, 100))
    hashes = {}
    with tempfile.TemporaryDirectory() as tmp:
        clip = save_tiny_text_encoder(Path(tmp) / "tiny-clip", dim=16)
        for arch in sorted(TINY_EVERY_ARCH):
            model = tiny_model(arch, text_encoder=clip)
            for pad in (None, 64, 128):
                if pad is not None and pad % model.downsampling_factor:
                    continue
                codec = LearnedCodec(model, device="cpu", pad_multiple=pad, model_id=arch)
                for mode in ("RGB", "L", "I;16"):
                    source = image.convert("L") if mode != "RGB" else image
                    if mode == "I;16":
                        source = Image.fromarray(np.asarray(source, "<u2") * 257, "I;16")
                    for text in (None, prompt):
                        data = codec.encode(source, prompt=text)
                        pixels = np.asarray(codec.decode(data)).tobytes()
                        key = f"{arch} pad={pad} {mode} prompt={text is not None}"
                        hashes[key] = [
                            hashlib.sha256(data).hexdigest()[:16],
                            hashlib.sha256(pixels).hexdigest()[:16],
                        ]
    json.dump(hashes, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
