"""Metrics of the benchmark: PSNR, MS-SSIM (and dB), bpp, optional CLIP / LPIPS."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from pku_aigi import metrics

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def crop(pku_examples) -> np.ndarray:
    with Image.open(pku_examples / "sd21b" / "1.png") as image:
        return np.asarray(image.convert("RGB"))[:192, :224].copy()


def test_psnr_of_a_constant_error_is_exact(crop):
    shifted = np.clip(crop.astype(int) + 4, 0, 255).astype(np.uint8)
    error = np.mean((shifted.astype(float) - crop.astype(float)) ** 2)
    assert metrics.psnr(crop, shifted) == pytest.approx(10 * math.log10(255**2 / error), abs=1e-9)
    flat = np.full((200, 200, 3), 100, np.uint8)
    assert metrics.psnr(flat, flat + 5) == pytest.approx(10 * math.log10(255**2 / 25))
    assert metrics.psnr(crop, crop) == math.inf


def test_psnr_accepts_pil_and_converts_to_rgb(crop):
    image = Image.fromarray(crop)
    assert metrics.psnr(image, image.convert("RGBA")) == math.inf
    with pytest.raises(ValueError, match="differ in size"):
        metrics.psnr(crop, crop[:100])


def test_ms_ssim_orders_distortions_and_matches_compressai_convention(crop):
    import torch
    from pytorch_msssim import ms_ssim as reference

    rng = np.random.default_rng(0)
    noisy = [
        np.clip(crop + rng.normal(0, s, crop.shape), 0, 255).astype(np.uint8) for s in (2, 8, 32)
    ]
    values = [metrics.ms_ssim(crop, n) for n in noisy]
    assert metrics.ms_ssim(crop, crop) == pytest.approx(1.0)
    assert 1 > values[0] > values[1] > values[2] > 0
    # compressai.utils.eval_model: float tensors of 8-bit values, data_range 255
    t = [torch.from_numpy(a).permute(2, 0, 1)[None].float() for a in (crop, noisy[1])]
    assert values[1] == pytest.approx(float(reference(*t, data_range=255)), abs=1e-5)


def test_ms_ssim_db_and_bpp():
    assert metrics.ms_ssim_db(0.99) == pytest.approx(20.0)
    assert metrics.ms_ssim_db(0.9) == pytest.approx(10.0)
    assert metrics.ms_ssim_db(1.0) == math.inf
    assert metrics.bpp(1000, 100, 80) == pytest.approx(1.0)


def test_ms_ssim_rejects_images_below_161_px(crop):
    with pytest.raises(metrics.ImageTooSmallError, match="at least 161x161 px.*224x160"):
        metrics.ms_ssim(crop[:160], crop[:160])
    assert 0 < metrics.ms_ssim(crop[:161, :161], crop[:161, :161][::-1].copy()) < 1


def test_clip_score_without_weights_is_skipped_with_a_reason(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(metrics.MetricUnavailableError, match="CLIP score skipped: cannot load"):
        metrics.ClipScorer("openai/clip-vit-base-patch32", device="cpu")


def test_lpips_is_skipped_when_the_package_is_missing():
    try:
        import lpips  # noqa: F401
    except ImportError:
        with pytest.raises(metrics.MetricUnavailableError, match="pip install lpips"):
            metrics.LpipsScorer(device="cpu")
    else:  # pragma: no cover - only where lpips and its weights are installed
        pytest.skip("lpips is installed here")
