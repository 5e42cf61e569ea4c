"""Rate-distortion training losses.

The loss of CompressAI's ``examples/train.py`` (Ballé et al., "Variational image
compression with a scale hyperprior", ICLR 2018): ``lambda * 255^2 * MSE + bpp`` for MSE
models and ``lambda * (1 - MS-SSIM) + bpp`` for MS-SSIM models, where bpp is the rate the
entropy models estimate from their likelihoods.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import PkuAigiError
from ..metrics import MS_SSIM_MIN_SIDE
from .config import METRICS


def bpp_from_likelihoods(likelihoods: dict[str, torch.Tensor], num_pixels: int) -> torch.Tensor:
    """Estimated bits per pixel: ``sum(-log2(p)) / pixels`` over every latent."""
    return sum(
        torch.log(likelihood).sum() / (-math.log(2) * num_pixels)
        for likelihood in likelihoods.values()
    )


class RateDistortionLoss(nn.Module):
    """``lambda * distortion + bpp`` (CompressAI's ``RateDistortionLoss``).

    Args:
        lmbda: the Lagrange multiplier (CompressAI's MSE ladder is 0.0018 .. 0.18).
        metric: ``"mse"`` (distortion ``255^2 * MSE``) or ``"ms-ssim"`` (``1 - MS-SSIM``).

    ``forward(output, target)`` returns a dict with ``loss``, ``bpp_loss`` and ``mse_loss``
    (always, for logging PSNR), plus ``ms_ssim_loss`` for the MS-SSIM metric.
    """

    def __init__(self, lmbda: float, metric: str = "mse"):
        super().__init__()
        if metric not in METRICS:
            raise PkuAigiError(f"unknown metric {metric!r}: use one of {', '.join(METRICS)}")
        if not lmbda > 0:
            raise PkuAigiError(f"lambda must be positive, got {lmbda}")
        self.lmbda = float(lmbda)
        self.metric = metric

    def forward(self, output: dict, target: torch.Tensor) -> dict[str, torch.Tensor]:
        n, _, h, w = target.shape
        out = {"bpp_loss": bpp_from_likelihoods(output["likelihoods"], n * h * w)}
        out["mse_loss"] = nn.functional.mse_loss(output["x_hat"], target)
        if self.metric == "ms-ssim":
            out["ms_ssim_loss"] = ms_ssim(output["x_hat"], target)
            distortion = 1 - out["ms_ssim_loss"]
        else:
            distortion = 255**2 * out["mse_loss"]
        out["loss"] = self.lmbda * distortion + out["bpp_loss"]
        return out


def ms_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MS-SSIM of images in [0, 1] (Wang et al. 2003, pytorch_msssim as CompressAI uses)."""
    from pytorch_msssim import ms_ssim as _ms_ssim

    if min(x.shape[-2:]) < MS_SSIM_MIN_SIDE:
        raise PkuAigiError(
            f"MS-SSIM needs images of at least {MS_SSIM_MIN_SIDE}x{MS_SSIM_MIN_SIDE} pixels, "
            f"got {x.shape[-1]}x{x.shape[-2]}: use --patch-size 256 (or at least "
            f"{MS_SSIM_MIN_SIDE}) with --metric ms-ssim"
        )
    return _ms_ssim(x, y, data_range=1.0)


def psnr(mse: float) -> float:
    """PSNR in dB of an MSE measured on [0, 1] images."""
    return float("inf") if mse <= 0 else -10 * math.log10(mse)
