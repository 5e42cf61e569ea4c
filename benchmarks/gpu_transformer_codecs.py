"""GPU check of TCM and CATC (< 60 s on an H100): exact coding, then speed vs cheng2020-attn.

1. Coding check on CUDA: a tiny-width TCM and CATC compress and decompress a real image;
   the reconstruction must equal the eval forward pass's, and a CATC file decoded with
   another prompt must differ (prints max abs differences).
2. Speed: encode/decode seconds per megapixel of cheng2020-attn, TCM small/large and
   CATC (default sizes, random weights) on the same 512x512 crops, through
   ``pku_aigi.codecs.from_model`` with CUDA synchronisation
   (benchmarks/bench_transformer_codecs.py on CUDA).

Without CUDA it runs the same on the CPU with smaller images (a smoke test).

    python benchmarks/gpu_transformer_codecs.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_transformer_codecs as speed  # noqa: E402

from pku_aigi.models import create  # noqa: E402
from pku_aigi.models.architectures.text_encoder import save_tiny_text_encoder  # noqa: E402

TINY_TCM = dict(
    N=16, M=40, z_channels=16, head_dims=[8] * 6, hyper_head_dim=8, atten_dim=32,
    atten_head_dim=8,
)  # fmt: skip
TINY_CATC = dict(
    N=32, M=40, z_channels=16, encoder_heads=[4, 4, 4], decoder_heads=[4, 4, 4],
    hyper_heads=4, kv_tokens=4, attention_dim=32, attention_heads=4, text_dim=16,
)  # fmt: skip


def coding_check(device: str, workdir: Path) -> bool:
    """Round trips on ``device`` equal the forward pass; a wrong prompt changes CATC's output."""
    (image, prompt), (_, other_prompt) = speed.load_images(speed.DEFAULT_DATA, 256, 2)
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)
    x = x.permute(2, 0, 1)[None].to(device)
    clip = save_tiny_text_encoder(workdir / "tiny-clip", dim=16)
    ok = True
    for name, options in (
        ("tcm-small", TINY_TCM),
        ("catc", {**TINY_CATC, "text_encoder": str(clip), "text_encoder_revision": None}),
    ):
        torch.manual_seed(0)
        model = create(name, **options)
        with torch.no_grad():
            model.g_a[-1].weight.mul_(10)  # latents of an untrained model are ~0
        model = model.to(device).eval()
        model.update(force=True)
        text = model.encode_prompts([prompt])
        with torch.no_grad():
            expected = model(x, text)["x_hat"].clamp(0, 1)
            coded = model.compress(x, text)
            decoded = model.decompress(coded["strings"], coded["shape"], text)["x_hat"]
        error = (decoded - expected).abs().max().item()
        line = f"{name}: decompress vs forward max |diff| = {error:.2e}"
        ok &= error < 1e-4
        if model.text_conditioned:
            wrong = model.encode_prompts([other_prompt])
            with torch.no_grad():
                bad = model.decompress(coded["strings"], coded["shape"], wrong)["x_hat"]
            change = (bad - decoded).abs().max().item()
            line += f"; decoded with another prompt: max |diff| = {change:.3f}"
            ok &= change > 1e-3
        print(line)
    print("coding check:", "OK" if ok else "FAILED")
    return ok


def main() -> int:
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    print(f"device: {torch.cuda.get_device_name(0) if cuda else 'CPU (no CUDA: smoke test)'}")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:
        ok = coding_check(device, Path(workdir))
    print(f"coding check took {time.perf_counter() - start:.1f} s")
    if cuda:
        speed.run(device, size=512, limit=3)
    else:
        speed.run(device, size=256, limit=1, names=("cheng2020-attn", "tcm-small"))
    print(f"total {time.perf_counter() - start:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
