"""Validation on centre crops: estimated rate during training, real bitstreams at the end."""

from __future__ import annotations

import math

import numpy as np
import torch

from .losses import MS_SSIM_MIN_SIDE, RateDistortionLoss, bpp_from_likelihoods, ms_ssim, psnr


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
    """The real rate-distortion point: every crop compressed to bytes and decoded.

    Uses the package's learned codec (``pku_aigi.codecs.from_model``, .aigic files) so
    the rate counts every byte a user would store; bpp is total bits over total pixels,
    PSNR and MS-SSIM are averaged over crops, on 8-bit reconstructions.
    """
    from PIL import Image

    from ..codecs import from_model

    model.eval()
    codec = from_model(model, device="cpu")
    bits = pixels = 0
    psnrs, msssims = [], []
    for crop, prompt in crops:
        kwargs = {"prompt": prompt} if getattr(model, "text_conditioned", False) else {}
        data = codec.encode(Image.fromarray(crop), quality=None, **kwargs)
        decoded = np.asarray(codec.decode(data).convert("RGB"), dtype=np.uint8)
        bits += 8 * len(data)
        pixels += crop.shape[0] * crop.shape[1]
        mse = float(np.mean((decoded.astype(np.float64) - crop.astype(np.float64)) ** 2))
        psnrs.append(psnr(mse / 255**2))
        if min(crop.shape[:2]) >= MS_SSIM_MIN_SIDE:
            ref, rec = _to_tensor(crop, "cpu"), _to_tensor(decoded, "cpu")
            msssims.append(float(ms_ssim(rec, ref)))
    point = {"bpp": bits / max(1, pixels), "psnr": float(np.mean(psnrs)), "images": len(crops)}
    if msssims:
        point["ms_ssim"] = float(np.mean(msssims))
    return point
