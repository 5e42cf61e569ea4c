"""GPU check of the bench sweep: learned codecs measured on CUDA vs CPU, same images.

Runs ``run_sweep`` with two learned codecs (bmshj2018-hyperprior and mbt2018-mean at
quality 3, CompressAI's sizes, untrained weights: the coding path is real, the rates are
not meaningful) on four PKU-AIGI sample images from ../shared/data, padded to 128 as in
the paper's protocol, once on CUDA and once on CPU. Prints mean encode/decode
milliseconds per image on each device, the ratio, and whether both devices produced
the same number of bytes (the entropy coder must not depend on the device). Without
CUDA only the CPU part runs. Then, since the GPU machine has many cores, it times the
conventional-codec sweep on all cores against a plain sequential loop (the
``bench_sweep_parallel.py`` measurement, on 26 centre crops of 256 px, one quality per
codec). Usage: ``python benchmarks/gpu_bench.py [--crop 512]`` (< 90 s on an H100 host).
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import torch

from pku_aigi import codecs, models
from pku_aigi.bench import images_from_folder, run_sweep
from pku_aigi.bench.sweep import CodecRun

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pku-examples"
ARCHITECTURES = ("bmshj2018-hyperprior", "mbt2018-mean")


def sweep(device: str, images) -> dict:
    """``{codec: (mean encode ms, mean decode ms, {image: bytes})}`` on ``device``."""
    torch.manual_seed(0)
    runs = []
    for arch in ARCHITECTURES:
        model = models.create(arch, quality=3).eval()
        model.update(force=True)
        codec = codecs.from_model(model, device=device, pad_multiple=128)
        codec.encode(_warmup_image(), None)  # CUDA / cuDNN warm-up
        runs.append(CodecRun(arch, (3,), codec=codec))
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = run_sweep(images, runs, out, progress=False)
        wall = time.perf_counter() - start
    assert not result.failures, result.failures
    summary = {}
    for arch in ARCHITECTURES:
        rows = [r for r in result.rows if r["codec"] == arch]
        summary[arch] = (
            1000 * sum(r["encode_s"] for r in rows) / len(rows),
            1000 * sum(r["decode_s"] for r in rows) / len(rows),
            {r["image"]: r["bytes"] for r in rows},
            sum(r["psnr"] for r in rows) / len(rows),
        )
    print(f"{device}: sweep of {len(result.rows)} measurements in {wall:.1f} s")
    return summary


def _warmup_image():
    from PIL import Image

    return Image.new("RGB", (256, 256), (120, 90, 60))


def parallel_sweep() -> None:
    """The process-pool gain on this machine's cores (see bench_sweep_parallel.py)."""
    path = Path(__file__).with_name("bench_sweep_parallel.py")
    spec = importlib.util.spec_from_file_location("bench_sweep_parallel", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    images = module.crop_images(images_from_folder(DATA), 256)
    runs = [
        CodecRun(name, module.pick(codecs.codec_class(name).default_qualities, 1))
        for name in codecs.available()
    ]
    module.compare(images, runs, module.default_workers())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crop", type=int, default=512, help="top-left crops (0: full images)")
    parser.add_argument("--no-parallel", action="store_true", help="skip the process-pool timing")
    args = parser.parse_args()
    images = [
        image
        for subset in ("mj52", "sd21", "sd21b", "mod")
        for image in images_from_folder(DATA / subset, limit=1)
    ]
    if args.crop:
        images = [
            image.__class__(image.name, image.subset, image.rgb[: args.crop, : args.crop].copy())
            for image in images
        ]
    print("images:", ", ".join(f"{i.subset}/{i.name} {i.width}x{i.height}" for i in images))
    results = {}
    if torch.cuda.is_available():
        print("CUDA:", torch.cuda.get_device_name(0))
        results["cuda"] = sweep("cuda", images)
    else:
        print("CUDA not available: CPU only")
    results["cpu"] = sweep("cpu", images)
    for arch in ARCHITECTURES:
        for device, summary in results.items():
            enc, dec, sizes, psnr = summary[arch]
            print(f"{arch:22s} {device:4s} encode {enc:8.1f} ms  decode {dec:8.1f} ms  "
                  f"mean PSNR {psnr:.2f} dB  bytes {sum(sizes.values())}")  # fmt: skip
        if "cuda" in results:
            cuda, cpu = results["cuda"][arch], results["cpu"][arch]
            print(f"{arch:22s} CPU/CUDA time ratio: encode {cpu[0] / cuda[0]:.1f}x, "
                  f"decode {cpu[1] / cuda[1]:.1f}x; same bytes on both devices: "
                  f"{cuda[2] == cpu[2]}")  # fmt: skip
    if not args.no_parallel:
        parallel_sweep()


if __name__ == "__main__":
    main()
