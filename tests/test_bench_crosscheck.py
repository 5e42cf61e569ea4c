"""Cross-check with CompressAI: this harness and `compressai.utils.eval_model checkpoint`
agree on payload bpp, PSNR and MS-SSIM for the same weights and images (real coding)."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from pku_aigi import codecs, models
from pku_aigi.bench import images_from_folder, run_sweep
from pku_aigi.bench.sweep import CodecRun

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_payload_bpp_psnr_and_ms_ssim_match_compressai_eval_model(pku_examples, tmp_path):
    from compressai.utils.eval_model.__main__ import main as eval_model

    images = tmp_path / "images"
    images.mkdir()
    # Sizes that are multiples of 64: CompressAI pads with zeros, the codec with edge
    # replication, so only unpadded sizes code the same latents.
    for subset, box in (("sd21b", (0, 0, 256, 192)), ("mj52", (300, 200, 492, 392))):
        with Image.open(pku_examples / subset / "1.png") as image:
            image.convert("RGB").crop(box).save(images / f"{subset}.png")

    torch.manual_seed(0)
    model = models.create("bmshj2018-factorized", quality=1).eval()
    model.update(force=True)
    checkpoint = tmp_path / "bmshj2018-factorized-q1.pth.tar"
    torch.save(model.state_dict(), checkpoint)

    out = tmp_path / "compressai"
    eval_model(["checkpoint", str(images), "-a", "bmshj2018-factorized", "-p", str(checkpoint),
                "-d", str(out), "-o", "result"])  # fmt: skip
    reference = json.loads((out / "result.json").read_text())["results"]

    codec = codecs.from_model(model, device="cpu")
    result = run_sweep(
        images_from_folder(images), [CodecRun("bmshj2018-factorized", (1,), codec=codec)],
        tmp_path / "bench", progress=False,
    )  # fmt: skip
    assert result.failures == [] and len(result.rows) == 2
    rows = result.rows

    def mean(name):
        return sum(r[name] for r in rows) / len(rows)

    assert mean("payload_bpp") == pytest.approx(reference["bpp"][0], rel=1e-3)
    assert mean("psnr") == pytest.approx(reference["psnr-rgb"][0], rel=1e-3)
    assert mean("ms_ssim") == pytest.approx(reference["ms-ssim-rgb"][0], rel=1e-3)
    # the whole .aigic file adds its header (and CRC) on top of the payload
    assert all(r["bytes"] > r["payload_bytes"] > 0 and r["bpp"] > r["payload_bpp"] for r in rows)
