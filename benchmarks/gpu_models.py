"""GPU checks of the Hub models: save on one device, load on another, bit-exact state.

Run: ``python benchmarks/gpu_models.py``. For each CompressAI architecture (quality 1)
it saves a model from CUDA, loads it on CPU and on CUDA (``map_location``), and checks
that every tensor (weights and entropy-coder tables) is bit-identical and that the
model compresses on each device. Prints one line per architecture; without CUDA only
the CPU part runs. Takes well under 90 s on an H100.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

import pku_aigi.models as models

ARCHS = [
    "bmshj2018-factorized",
    "bmshj2018-hyperprior",
    "mbt2018-mean",
    "mbt2018",
    "cheng2020-anchor",
    "cheng2020-attn",
]


def check(arch: str, device: str, folder: Path) -> str:
    torch.manual_seed(0)
    model = models.create(arch, quality=1).to(device).eval()
    start = time.perf_counter()
    model.save_pretrained(folder)
    saved = time.perf_counter() - start
    reference = {k: v.cpu() for k, v in model.state_dict().items()}
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    results = [f"{arch:<22} saved on {device} in {saved:5.2f}s"]
    for target in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        start = time.perf_counter()
        loaded = models.AutoCodec.from_pretrained(folder, map_location=target)
        load_s = time.perf_counter() - start
        same = all(torch.equal(reference[k], v.cpu()) for k, v in loaded.state_dict().items())
        with torch.no_grad():
            size = sum(len(s[0]) for s in loaded.compress(x.to(target))["strings"])
        results.append(f"| load {target} {load_s:5.2f}s bit-exact={same} bytes={size}")
    return " ".join(results)


def main() -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"torch {torch.__version__}, device {device}")
    with tempfile.TemporaryDirectory() as tmp:
        for arch in ARCHS:
            print(check(arch, device, Path(tmp) / arch), flush=True)


if __name__ == "__main__":
    main()
