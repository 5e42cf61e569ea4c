"""Seconds per megapixel: our learned-codec path vs CompressAI's compress/decompress.

Same model, same padded images, one run: ``LearnedCodec.encode`` / ``decode`` (image
in, .aigic bytes out, deterministic coding and desync check included) against the
model's own CompressAI ``compress`` / ``decompress`` (tensor in, strings out). Prints
s/MP for both and the ratio ours / CompressAI (< 1: ours is faster). Models are
randomly initialised (seeded), the analysis output scaled x10 so that the entropy coder
sees real symbols, as with a trained model, and the entropy coder updated.

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


def _timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def best_of(repeats: int, fn, *args):
    """(fastest of ``repeats`` timed calls after a warm-up call, last result).

    A call slower than 2 s needs no warm-up: the first call is then the only sample.
    """
    first, result = _timed(fn, *args)
    if first > 2.0:
        return first, result
    times = []
    for _ in range(repeats):
        t, result = _timed(fn, *args)
        times.append(t)
    return min(times), result


def to_tensor(image: Image.Image, device, multiple: int) -> torch.Tensor:
    x = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)[None]
    x = x.to(device, torch.float32) / 255
    return F.pad(x, (0, -image.width % multiple, 0, -image.height % multiple), mode="replicate")


def make_model(arch: str, quality: int):
    """Seeded random model with its latents scaled up: untrained latents round to almost
    all zeros, a trained model's do not (the entropy coder should see real symbols)."""
    torch.manual_seed(0)
    model = models.create(arch, quality=quality)
    convs = [m for m in model.g_a.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        convs[-1].weight.mul_(10)
    return model


def bench(arch: str, quality: int, images, device, repeats: int) -> dict:
    """Median s/MP of each operation over ``repeats`` interleaved rounds per image.

    Each round times ours and CompressAI's encode and decode one after the other, so
    that load from other processes hits both sides alike; one warm-up round first.
    """
    model = make_model(arch, quality)
    codec = from_model(model, device=device)  # moves the model, runs update()
    keys = ("ours_enc", "ours_dec", "cai_enc", "cai_dec")
    totals = dict.fromkeys(keys, 0.0)
    megapixels = 0.0
    for n, image in enumerate(images):
        megapixels += image.width * image.height / 1e6
        x = to_tensor(image, device, codec.pad_multiple)
        data, out = codec.encode(image), model.compress(x)
        samples = {key: [] for key in keys}
        for round_ in range(repeats + (1 if n == 0 else 0)):
            times = {
                "ours_enc": _timed(codec.encode, image)[0],
                "ours_dec": _timed(codec.decode, data)[0],
                "cai_enc": _timed(model.compress, x)[0],
                "cai_dec": _timed(model.decompress, out["strings"], out["shape"])[0],
            }
            if n == 0 and round_ == 0:
                continue  # warm-up
            for key in keys:
                samples[key].append(times[key])
        for key in keys:
            totals[key] += float(np.median(samples[key]))
    return {key: value / megapixels for key, value in totals.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=512, help="crop images to SIZE x SIZE")
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--quality", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per image")
    parser.add_argument("--arch", nargs="*", default=list(ARCHITECTURES))
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_grad_enabled(False)
    images = load_images(args.shared, args.size, args.images)
    print(
        f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{len(images)} images {args.size}x{args.size}, quality {args.quality}, "
        f"median of {args.repeats} interleaved rounds"
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
