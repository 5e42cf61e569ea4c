"""GPU checks of the learned-codec path: cross-device decoding and speed on CUDA.

1. Cross-device: for mbt2018-mean, mbt2018 and cheng2020-attn (randomly initialised,
   seeded, entropy coder updated) and real images from ../shared/data, encode on CUDA
   and decode on CPU, and the reverse. Each decode must give the same image as the
   same-device decode (identical latents; pixels may differ by the synthesis
   transform's float noise, reported as max |diff|) or fail loudly with the desync
   error. For contrast, CompressAI's own compress on CUDA (cuDNN autotuning and TF32
   on, the defaults many scripts use) decoded on CPU is reported as PSNR against its
   CUDA decode: < 60 dB means a silently wrong image.
2. Speed: s/MP to encode and decode, ours vs CompressAI's compress/decompress, on CUDA.

Runs on CPU only too (the CUDA parts are skipped). Must finish in < 90 s.

    python benchmarks/gpu_codecs.py
"""

from __future__ import annotations

import copy
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_codecs_learned import ROOT, bench, load_images, to_tensor  # noqa: E402
from bench_codecs_learned import make_model as bench_model  # noqa: E402

from pku_aigi import models  # noqa: E402
from pku_aigi.codecs.learned import LearnedCodec  # noqa: E402
from pku_aigi.errors import CorruptStreamError  # noqa: E402

ARCHITECTURES = ("mbt2018-mean", "mbt2018", "cheng2020-attn")
QUALITY = 3
SIZE = 384
BUDGET_S = 80.0
# "cpu" dry-runs every check with both sides on the CPU (for testing this script).
DEVICE = os.environ.get("GPU_CODECS_DEVICE", "cuda")
START = time.perf_counter()


def elapsed() -> float:
    return time.perf_counter() - START


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def make_model(arch: str):
    return bench_model(arch, QUALITY)


def try_decode(codec: LearnedCodec, data: bytes):
    try:
        return np.asarray(codec.decode(data)), None
    except CorruptStreamError as error:
        return None, str(error)


def cross_device(arch: str, images) -> None:
    model = make_model(arch)
    cpu = LearnedCodec(model, device="cpu", model_id=f"random/{arch}")
    gpu = LearnedCodec(copy.deepcopy(model), device=DEVICE, model_id=f"random/{arch}")
    for n, image in enumerate(images):
        if elapsed() > BUDGET_S:
            print(f"  {arch} image {n}: skipped (time budget)")
            continue
        on_gpu, on_cpu = gpu.encode(image), cpu.encode(image)
        for label, data, same, other in (
            ("encode cuda -> decode cpu ", on_gpu, gpu, cpu),
            ("encode cpu  -> decode cuda", on_cpu, cpu, gpu),
        ):
            reference, _ = try_decode(same, data)
            crossed, error = try_decode(other, data)
            if error:
                print(f"  {arch} image {n} {label}: LOUD FAILURE (desync detected): {error}")
            else:
                diff = int(np.abs(crossed.astype(int) - reference.astype(int)).max())
                print(
                    f"  {arch} image {n} {label}: OK, latent identical, max |pixel diff| vs "
                    f"same-device decode = {diff}, PSNR vs it {psnr(crossed, reference):.1f} dB"
                )
        print(f"  {arch} image {n}: bytes encoded on cuda == on cpu: {on_gpu == on_cpu}")
    if elapsed() < BUDGET_S:
        compressai_cross_device(model, arch, images[0])


def compressai_cross_device(model, arch: str, image) -> None:
    """CompressAI's own path, autotuned cuDNN + TF32 on CUDA, decoded on CPU."""
    cudnn = torch.backends.cudnn
    saved = (cudnn.benchmark, cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    cudnn.benchmark, cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = True, True, True
    try:
        gpu_model = copy.deepcopy(model).to(DEVICE).eval()
        cpu_model = copy.deepcopy(model).cpu().eval()
        with torch.no_grad():
            out = gpu_model.compress(to_tensor(image, DEVICE, 64))
            a = gpu_model.decompress(out["strings"], out["shape"])["x_hat"].cpu()
            b = cpu_model.decompress(out["strings"], out["shape"])["x_hat"]
        a = (a.nan_to_num(0) * 255).round().clamp(0, 255).numpy()
        b = (b.nan_to_num(0) * 255).round().clamp(0, 255).numpy()
        verdict = "silently WRONG image" if psnr(a, b) < 60 else "same image"
        print(
            f"  CompressAI {arch}, encode cuda (autotune+TF32) -> decode cpu: PSNR vs cuda "
            f"decode {psnr(a, b):.1f} dB ({verdict}, no error raised)"
        )
    finally:
        cudnn.benchmark, cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def speed(arch: str, images) -> None:
    r = bench(arch, QUALITY, images, DEVICE, repeats=3)
    print(
        f"  {arch:16s} encode ours {r['ours_enc']:7.3f} CompressAI {r['cai_enc']:7.3f} "
        f"ratio {r['ours_enc'] / r['cai_enc']:5.2f} | decode ours {r['ours_dec']:7.3f} "
        f"CompressAI {r['cai_dec']:7.3f} ratio {r['ours_dec'] / r['cai_dec']:5.2f}",
        flush=True,
    )


def main() -> int:
    warnings.filterwarnings("ignore")
    torch.set_grad_enabled(False)
    images = load_images(ROOT.parent / "shared" / "data", SIZE, 2)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"gpu_codecs: torch {torch.__version__}, CUDA device: {device}")
    print(
        f"{len(images)} real images cropped to {SIZE}x{SIZE}, quality {QUALITY}, random init, g_a output x10"
    )
    if DEVICE == "cuda" and not torch.cuda.is_available():
        print("no CUDA: cross-device and CUDA speed checks skipped; CPU determinism only")
        torch.manual_seed(0)
        codec = LearnedCodec(models.create("mbt2018-mean", quality=1), device="cpu")
        data = codec.encode(images[0])
        same = data == codec.encode(images[0])
        print(f"  mbt2018-mean cpu: encode twice identical: {same}")
        return 0 if same else 1
    print("1. cross-device decoding")
    for arch in ARCHITECTURES:
        cross_device(arch, images)
    print(f"2. speed on CUDA, s/MP (ratio = ours / CompressAI)   [{elapsed():.0f} s so far]")
    for arch in ARCHITECTURES:
        if elapsed() > BUDGET_S:
            print(f"  {arch}: skipped (time budget)")
            continue
        speed(arch, images[:1])
    print(f"done in {elapsed():.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
