"""Validation on centre crops: estimated rate during training, real bitstreams at the end."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..metrics import MS_SSIM_MIN_SIDE
from .losses import RateDistortionLoss, bpp_from_likelihoods, psnr


def _to_tensor(crop: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(crop.transpose(2, 0, 1).copy()).unsqueeze(0).to(device).float() / 255


@torch.no_grad()
def evaluate(model, crops, criterion: RateDistortionLoss, device, embed=None) -> dict[str, float]:
    """Loss, estimated bpp and PSNR of ``model`` (eval mode, rounding) on the crops.

    ``embed(prompts)`` gives the prompt embeddings of text-conditioned models.
    """
    was_training = model.training
    model.eval()
    totals = {"loss": 0.0, "bpp": 0.0, "mse": 0.0}
    for crop, prompt in crops:
        x = _to_tensor(crop, device)
        text = embed([prompt]) if embed else None
        out = model(x, text=text) if text is not None else model(x)
        out["x_hat"] = out["x_hat"].clamp(0, 1)
        losses = criterion(out, x) if _msssim_ok(criterion, x) else None
        totals["loss"] += float(losses["loss"]) if losses else math.nan
        totals["bpp"] += float(bpp_from_likelihoods(out["likelihoods"], x.shape[-1] * x.shape[-2]))
        totals["mse"] += float(torch.nn.functional.mse_loss(out["x_hat"], x))
    model.train(was_training)
    n = max(1, len(crops))
    result = {key: value / n for key, value in totals.items()}
    result["psnr"] = psnr(result["mse"])
    return result


def _msssim_ok(criterion: RateDistortionLoss, x: torch.Tensor) -> bool:
    return criterion.metric != "ms-ssim" or min(x.shape[-2:]) >= MS_SSIM_MIN_SIDE


@torch.no_grad()
def rd_point(model, crops) -> dict[str, float]:
    """The real rate-distortion point: every crop compressed to .aigic bytes and decoded.

    Each crop is measured as the benchmark measures (:func:`pku_aigi.bench.sweep.measure`
    with the package's learned codec), so the rate counts every byte a user would store;
    bpp is total bits over total pixels, PSNR and MS-SSIM (crops of at least
    :data:`pku_aigi.metrics.MS_SSIM_MIN_SIDE` px) are averaged over crops.
    """
    from ..bench.sweep import measure
    from ..codecs import from_model

    model.eval()
    codec = from_model(model, device="cpu")
    bits = pixels = 0
    psnrs, msssims = [], []
    for crop, prompt in crops:
        row = measure(codec, crop, None, prompt=prompt)
        bits += 8 * row["bytes"]
        pixels += crop.shape[0] * crop.shape[1]
        psnrs.append(row["psnr"])
        if min(crop.shape[:2]) >= MS_SSIM_MIN_SIDE:
            msssims.append(row["ms_ssim"])
    point = {"bpp": bits / max(1, pixels), "psnr": float(np.mean(psnrs)), "images": len(crops)}
    if msssims:
        point["ms_ssim"] = float(np.mean(msssims))
    return point
