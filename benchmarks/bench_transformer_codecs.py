"""Speed of the transformer codecs TCM and CATC against cheng2020-attn, same images.

Seconds per megapixel to encode and to decode through ``pku_aigi.codecs.from_model``
(what ``pku-aigi compress`` does: padding, deterministic entropy coding with the desync
check, the .aigic container), for

- cheng2020-attn at quality 3 (CompressAI's architecture, N=128): the reference;
- TCM large (Liu et al. CVPR 2023, N=128, M=320) and small (N=64);
- CATC (the paper's codec, N=256, M=320, 109.3 M parameters) with its text encoder:
  the real CLIP ViT-B/32 when it is in the Hugging Face cache, otherwise a randomly
  initialised text tower of the same size (same compute, meaningless embeddings).

Images: DiffusionDB samples (real Stable Diffusion images and their prompts) cropped to
``--size`` squares. The weights are random (no trained weights are published), so bpp is
not reported; the compute is the trained models', and the entropy coder sees the same
number of symbols. The first image of each codec is coded once untimed (warm-up).

    python benchmarks/bench_transformer_codecs.py [--device cpu] [--size 512] [--limit 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from pku_aigi import codecs
from pku_aigi.models import create
from pku_aigi.models.architectures import text_encoder as text_encoders
from pku_aigi.models.base import LearnedCodecModel

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "diffusiondb-sample"
REFERENCE = "cheng2020-attn"
CODECS = ("cheng2020-attn", "tcm-small", "tcm-large", "catc")

logger = logging.getLogger("bench_transformer_codecs")


def load_images(data: Path, size: int, limit: int) -> list[tuple[Image.Image, str]]:
    """Centre ``size`` x ``size`` crops of the first ``limit`` images large enough."""
    rows = [json.loads(line) for line in (data / "metadata.jsonl").read_text().splitlines()]
    images = []
    for row in rows:
        if min(row["width"], row["height"]) < size:
            continue
        image = Image.open(data / row["file_name"]).convert("RGB")
        left, top = (image.width - size) // 2, (image.height - size) // 2
        images.append((image.crop((left, top, left + size, top + size)), row["prompt"].strip()))
        if len(images) == limit:
            break
    if not images:
        raise SystemExit(f"no image of at least {size}x{size} in {data}")
    return images


def catc_text_encoder(workdir: Path) -> tuple[dict, str]:
    """CATC options for its text encoder: the cached CLIP, or a same-size random tower."""
    try:
        text_encoders.load_text_encoder(local_files_only=True)
        return {}, f"{text_encoders.DEFAULT_TEXT_ENCODER} (cached)"
    except Exception as error:  # noqa: BLE001 - any failure: fall back and say so
        logger.info("real CLIP text encoder unavailable (%s): using a random one", error)
    folder = text_encoders.save_tiny_text_encoder(
        workdir / "clip-b32-random", dim=512, width=512, layers=12, heads=8, mlp_ratio=4
    )
    return {"text_encoder": str(folder), "text_encoder_revision": None}, (
        "random CLIP ViT-B/32-sized text tower (the real one is not cached)"
    )


def build(name: str, workdir: Path) -> tuple[LearnedCodecModel, str]:
    torch.manual_seed(0)
    if name == "catc":
        options, note = catc_text_encoder(workdir)
        return create("catc", **options), note
    return create(name, quality=3) if name == REFERENCE else create(name), ""


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_codec(model, images, device: str) -> dict:
    """Total encode/decode seconds and megapixels over ``images`` (after one warm-up)."""
    codec = codecs.from_model(model, device=device)
    warm_image, warm_prompt = images[0]
    codec.decode(codec.encode(warm_image, prompt=warm_prompt))
    totals = dict.fromkeys(("encode_s", "decode_s", "encode_cpu_s", "decode_cpu_s"), 0.0)
    megapixels = 0.0
    for image, prompt in images:
        synchronize(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        data = codec.encode(image, prompt=prompt)
        synchronize(device)
        middle, middle_cpu = time.perf_counter(), time.process_time()
        decoded = codec.decode(data)
        synchronize(device)
        totals["decode_s"] += time.perf_counter() - middle
        totals["decode_cpu_s"] += time.process_time() - middle_cpu
        totals["encode_s"] += middle - start
        totals["encode_cpu_s"] += middle_cpu - start_cpu
        megapixels += image.width * image.height / 1e6
        assert decoded.size == image.size
    return {**totals, "megapixels": megapixels}


def run(device: str, size: int, limit: int, names=CODECS, data: Path = DEFAULT_DATA) -> list:
    """Measure every codec in ``names`` on the same images; print and return the rows."""
    images = load_images(data, size, limit)
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for name in tqdm(names, desc="codecs", unit="codec"):
            model, note = build(name, Path(workdir))
            params = sum(p.numel() for p in model.parameters())
            result = time_codec(model, images, device)
            rows.append({"codec": name, "params": params, "note": note, **result})
            del model
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
    print_table(rows, device, size, len(images))
    return rows


def print_table(rows: list[dict], device: str, size: int, count: int) -> None:
    label = torch.cuda.get_device_name(device) if device.startswith("cuda") else "CPU"
    threads = torch.get_num_threads()
    print(f"\nTransformer codecs vs {REFERENCE}: {count} image(s) of {size}x{size}, ", end="")
    print(f"device {device} ({label}), {threads} torch threads, random weights")
    print(f"{'codec':<16}{'params':>10}{'enc s/MP':>10}{'dec s/MP':>10}", end="")
    print(f"{'enc vs ref':>12}{'dec vs ref':>12}{'enc cpu-s/MP':>14}{'dec cpu-s/MP':>14}")
    reference = next((r for r in rows if r["codec"] == REFERENCE), None)
    for row in rows:
        enc = row["encode_s"] / row["megapixels"]
        dec = row["decode_s"] / row["megapixels"]
        ratios = ("", "")
        if reference is not None:
            ratios = (
                f"{row['encode_s'] / reference['encode_s']:.2f}x",
                f"{row['decode_s'] / reference['decode_s']:.2f}x",
            )
        print(f"{row['codec']:<16}{row['params'] / 1e6:>9.1f}M{enc:>10.3f}{dec:>10.3f}", end="")
        cpu = (row["encode_cpu_s"] / row["megapixels"], row["decode_cpu_s"] / row["megapixels"])
        print(f"{ratios[0]:>12}{ratios[1]:>12}{cpu[0]:>14.3f}{cpu[1]:>14.3f}")
    print("s/MP: wall-clock seconds per megapixel (synchronised); cpu-s/MP: process CPU time")
    for row in rows:
        if row["note"]:
            print(f"note: {row['codec']} text encoder: {row['note']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1")
    parser.add_argument("--size", type=int, default=512, help="side of the square crops")
    parser.add_argument("--limit", type=int, default=2, help="number of images")
    parser.add_argument("--codecs", default=",".join(CODECS), help="comma-separated")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (0: torch's default)"
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="imagefolder + prompts")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.threads > 0:  # one thread by default: stable numbers on a shared machine
        torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.codecs.split(",") if n.strip()]
    run(args.device, args.size, args.limit, names, args.data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
