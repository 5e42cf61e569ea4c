"""Speed of the conventional codecs (JPEG ... VVC) on the real AI-generated sample images.

For each codec, at the middle quality of its sweep grid, on every image: seconds per
megapixel to encode and to decode through ``pku_aigi.codecs`` ("ours"), the same
library call made directly ("reference": ``Image.save`` / ``Image.open`` with the same
options, ``imagecodecs.jpegxl_*``, or the bare ffmpeg command without our Annex-B
checks), their ratio (our wrapper's overhead), and the mean bpp and RGB PSNR.

    python benchmarks/bench_codecs_conventional.py [--codecs jpeg,hevc] [--limit N]
"""

from __future__ import annotations

import argparse
import io
import logging
import subprocess
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from pku_aigi import codecs
from pku_aigi.codecs import ffmpeg_codecs, pillow_codecs
from pku_aigi.codecs.ffmpeg_codecs import even_padded

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "pku-examples"


def psnr(a: Image.Image, b: Image.Image) -> float:
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return 10 * np.log10(255**2 / max(mse, 1e-10))


def reference(codec, image: Image.Image, quality):
    """(encode, decode) callables doing what ``codec`` does with the bare library."""
    if isinstance(codec, pillow_codecs.PillowCodec):
        options = codec.save_options(quality, image.size)

        def encode():
            buffer = io.BytesIO()
            image.save(buffer, codec.pil_format, **options)
            return buffer.getvalue()

        def decode(data):
            with Image.open(io.BytesIO(data)) as decoded:
                decoded.load()
                return decoded

        return encode, decode
    if codec.name == "jpegxl":
        import imagecodecs

        array = np.asarray(image)
        return (
            lambda: imagecodecs.jpegxl_encode(array, effort=7, distance=quality, lossless=False),
            imagecodecs.jpegxl_decode,
        )
    # ffmpeg: the same command lines, without padding checks and Annex-B post-processing.
    padded = even_padded(np.asarray(image), codec.side_multiple, ffmpeg_codecs.MIN_SIDE)
    height, width = padded.shape[:2]
    exe = ffmpeg_codecs.ffmpeg_executable()
    sws = ffmpeg_codecs._SWS
    encode_cmd = [
        *(exe, "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24"),
        *("-s", f"{width}x{height}", "-i", "-", "-vf"),
        f"scale=out_color_matrix=bt601:out_range=full:flags={sws},format={codec.pix_fmt}",
        *("-color_range", "pc", "-colorspace", "bt470bg", "-frames:v", "1"),
        *codec.encoder_args(quality),
        *("-f", codec.container, "-"),
    ]
    decode_cmd = [
        *(exe, "-loglevel", "error", "-f", codec.container, "-i", "-", "-frames:v", "1"),
        *("-vf", f"scale=in_color_matrix=bt601:in_range=full:flags={sws},format=rgb24"),
        *("-f", "image2pipe", "-c:v", "ppm", "-"),
    ]
    raw = padded.tobytes()
    return (
        lambda: subprocess.run(encode_cmd, input=raw, capture_output=True, check=True).stdout,
        lambda data: subprocess.run(decode_cmd, input=data, capture_output=True, check=True),
    )


def timed(function, *args):
    """(result, seconds): the best of 3 runs for calls under 0.5 s (cache effects), else 1."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        result = function(*args)
        best = min(best, time.perf_counter() - start)
        if best > 0.5:
            break
    return result, best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of PNG images")
    parser.add_argument("--codecs", default=",".join(codecs.available()))
    parser.add_argument("--limit", type=int, default=0, help="use N evenly spaced images only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    files = sorted(args.data.rglob("*.png"))
    if args.limit and args.limit < len(files):  # evenly spaced: every subset is represented
        files = [files[i * len(files) // args.limit] for i in range(args.limit)]
    images = [Image.open(path).convert("RGB") for path in files]
    megapixels = sum(image.width * image.height for image in images) / 1e6
    print(f"{len(images)} images from {args.data} ({megapixels:.2f} MP in total)")
    header = (
        f"{'codec':<9} {'quality':>7} {'enc s/MP':>9} {'ref':>7} {'ratio':>6} "
        f"{'dec s/MP':>9} {'ref':>7} {'ratio':>6} {'bpp':>6} {'PSNR dB':>8}"
    )
    rows = []
    for name in args.codecs.split(","):
        codec = codecs.get(name)
        quality = codec.default_qualities[len(codec.default_qualities) // 2]
        totals = np.zeros(4)  # ours encode, ref encode, ours decode, ref decode
        rates, scores = [], []
        for image in tqdm(images, desc=name, leave=False):
            data, t_enc = timed(codec.encode, image, quality)
            decoded, t_dec = timed(codec.decode, data)
            ref_encode, ref_decode = reference(codec, image, quality)
            ref_data, r_enc = timed(ref_encode)
            _, r_dec = timed(ref_decode, ref_data)
            totals += (t_enc, r_enc, t_dec, r_dec)
            rates.append(8 * len(data) / (image.width * image.height))
            scores.append(psnr(image, decoded))
        per_mp = totals / megapixels
        rows.append(
            f"{name:<9} {quality:>7g} {per_mp[0]:>9.3f} {per_mp[1]:>7.3f} "
            f"{per_mp[0] / per_mp[1]:>6.2f} {per_mp[2]:>9.3f} {per_mp[3]:>7.3f} "
            f"{per_mp[2] / per_mp[3]:>6.2f} {np.mean(rates):>6.3f} {np.mean(scores):>8.2f}"
        )
        print(rows[-1] if len(rows) > 1 else f"{header}\n{rows[-1]}", flush=True)
    print("\nratio = ours / reference (wrapper overhead); s/MP = seconds per megapixel")
    for name in args.codecs.split(","):
        print(f"  {codecs.get(name).version}")


if __name__ == "__main__":
    main()
