"""Seconds per megapixel: our learned-codec path vs CompressAI's compress/decompress.

Same model, same padded images, one run: ``LearnedCodec.encode`` / ``decode`` (image
in, .aigic bytes out, deterministic coding and desync check included) against the
model's own CompressAI ``compress`` / ``decompress`` (tensor in, strings out). Prints
s/MP for both and the ratio ours / CompressAI (< 1: ours is faster). Models are
randomly initialised (seeded) with their entropy coder updated: coding speed does not
depend on training, though the rate (and so rANS time) does somewhat.

    python benchmarks/bench_codecs_learned.py [--device cpu] [--size 512] [--quality 3]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pku_aigi import models  # noqa: E402
from pku_aigi.codecs import from_model  # noqa: E402

IMAGES = ("pku-examples/sdxl", "pku-examples/mj52", "pku-examples/sd21")
ARCHITECTURES = ("bmshj2018-hyperprior", "mbt2018-mean", "mbt2018", "cheng2020-attn")


def load_images(shared: Path, size: int, count: int) -> list[Image.Image]:
    images = []
    for folder in IMAGES[:count]:
        path = sorted((shared / folder).iterdir())[0]
        image = Image.open(path).convert("RGB")
        images.append(image.crop((0, 0, min(size, image.width), min(size, image.height))))
    return images


def best_of(repeats: int, fn, *args):
    """(fastest wall time of ``repeats`` calls after one warm-up call, last result)."""
    result = fn(*args)  # warm-up: first-call allocations, caches, lazy imports
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn(*args)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times), result


def to_tensor(image: Image.Image, device, multiple: int) -> torch.Tensor:
    x = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)[None]
    x = x.to(device, torch.float32) / 255
    return F.pad(x, (0, -image.width % multiple, 0, -image.height % multiple), mode="replicate")


def bench(arch: str, quality: int, images, device, repeats: int) -> dict:
    torch.manual_seed(0)
    model = models.create(arch, quality=quality)
    codec = from_model(model, device=device)  # moves the model, runs update()
    totals = {"ours_enc": 0.0, "ours_dec": 0.0, "cai_enc": 0.0, "cai_dec": 0.0}
    megapixels = 0.0
    for image in images:
        megapixels += image.width * image.height / 1e6
        x = to_tensor(image, device, codec.pad_multiple)
        with torch.no_grad():
            t, data = best_of(repeats, codec.encode, image)
            totals["ours_enc"] += t
            t, _ = best_of(repeats, codec.decode, data)
            totals["ours_dec"] += t
            t, out = best_of(repeats, model.compress, x)
            totals["cai_enc"] += t
            t, _ = best_of(repeats, model.decompress, out["strings"], out["shape"])
            totals["cai_dec"] += t
    return {key: value / megapixels for key, value in totals.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=512, help="crop images to SIZE x SIZE")
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--quality", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--arch", nargs="*", default=list(ARCHITECTURES))
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_grad_enabled(False)
    images = load_images(args.shared, args.size, args.images)
    print(
        f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{len(images)} images {args.size}x{args.size}, quality {args.quality}, "
        f"best of {args.repeats}"
    )
    print(
        f"{'architecture':22s} {'ours enc':>9s} {'CAI enc':>9s} {'ratio':>6s} "
        f"{'ours dec':>9s} {'CAI dec':>9s} {'ratio':>6s}   (s/MP; ratio = ours/CompressAI)"
    )
    for arch in args.arch:
        r = bench(arch, args.quality, images, args.device, args.repeats)
        print(
            f"{arch:22s} {r['ours_enc']:9.3f} {r['cai_enc']:9.3f} "
            f"{r['ours_enc'] / r['cai_enc']:6.2f} {r['ours_dec']:9.3f} {r['cai_dec']:9.3f} "
            f"{r['ours_dec'] / r['cai_dec']:6.2f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
