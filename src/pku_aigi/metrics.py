"""Image quality and rate metrics of the benchmark.

- PSNR on RGB 8-bit: ``10 log10(255² / MSE)`` over all pixels and channels.
- MS-SSIM (Wang, Simoncelli, Bovik, 2003) from ``pytorch_msssim`` — the implementation
  ``compressai.utils.eval_model`` uses — on 8-bit RGB values with ``data_range=255``
  and the standard 5 scales and 11×11 Gaussian window. Its four down-samplings need
  both sides larger than 160 px; smaller images raise :class:`ImageTooSmallError`
  (no fallback: a different window would give numbers not comparable with the paper's).
- MS-SSIM in dB: ``-10 log10(1 - MS-SSIM)``, as the paper and ``compressai.utils.plot``
  plot it.
- bpp: stored bytes × 8 / pixels.
- Optional: CLIP score (Hessel et al., 2021, ``100 · max(cos, 0)`` of CLIP image and text
  embeddings, as torchmetrics' ``CLIPScore``) and LPIPS (Zhang et al., 2018; needs the
  ``lpips`` package and its weights). Both raise :class:`MetricUnavailableError` when
  their weights cannot be loaded; the benchmark then skips them with a note.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from .errors import PkuAigiError
from .image_input import to_rgb

MS_SSIM_MIN_SIDE = 161  # pytorch_msssim: smaller side must be > (11 - 1) * 2**4
DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"


class ImageTooSmallError(PkuAigiError):
    """An image is too small for a metric (MS-SSIM needs both sides >= MS_SSIM_MIN_SIDE)."""


class MetricUnavailableError(PkuAigiError):
    """An optional metric (CLIP score, LPIPS) cannot run here: package or weights missing."""


def to_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """``image`` as an ``(H, W, 3)`` uint8 array (RGB, 8 bits per channel).

    PIL images become RGB by the codecs' own rule (:func:`pku_aigi.image_input.to_rgb`),
    so a metric compares exactly what a codec coded.
    """
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) uint8 array, got {image.dtype} {image.shape}")
        return image
    return np.asarray(to_rgb(image), dtype=np.uint8)


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = to_rgb_array(a), to_rgb_array(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in size: {a.shape[1::-1]} vs {b.shape[1::-1]}")
    return a, b


def mse(original, reconstruction) -> float:
    """Mean squared error over all RGB 8-bit values."""
    a, b = _pair(original, reconstruction)
    diff = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(diff * diff))


def psnr(original, reconstruction) -> float:
    """PSNR in dB on RGB 8-bit (``inf`` for identical images)."""
    error = mse(original, reconstruction)
    return math.inf if error == 0 else 10 * math.log10(255.0**2 / error)


def ms_ssim(original, reconstruction) -> float:
    """MS-SSIM of two RGB 8-bit images (pytorch_msssim, ``data_range=255``)."""
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    a, b = _pair(original, reconstruction)
    height, width = a.shape[:2]
    if min(height, width) < MS_SSIM_MIN_SIDE:
        raise ImageTooSmallError(
            f"MS-SSIM needs images of at least {MS_SSIM_MIN_SIDE}x{MS_SSIM_MIN_SIDE} px "
            f"(5 scales, 11x11 window), got {width}x{height}: use larger images"
        )

    def tensor(array: np.ndarray):
        # float32 like compressai.utils.eval_model, so the numbers match it exactly
        return torch.from_numpy(np.array(array, np.float32)).permute(2, 0, 1).unsqueeze(0)

    with torch.no_grad():
        return float(_ms_ssim(tensor(a), tensor(b), data_range=255))


def ms_ssim_db(value: float) -> float:
    """MS-SSIM in dB, ``-10 log10(1 - value)`` (``inf`` for 1)."""
    return math.inf if value >= 1 else -10 * math.log10(1 - value)


def bpp(num_bytes: int, width: int, height: int) -> float:
    """Bits per pixel of ``num_bytes`` stored bytes for a ``width`` × ``height`` image."""
    return num_bytes * 8 / (width * height)


class ClipScorer:
    """CLIP score of an image against its prompt (transformers CLIP).

    Raises :class:`MetricUnavailableError` at construction when the weights cannot be
    loaded (offline without a cached copy, unknown id), so a caller can skip it.
    """

    def __init__(self, model_id: str = DEFAULT_CLIP_MODEL, device: str | None = None):
        import torch
        from transformers import CLIPModel, CLIPProcessor

        self.model_id = model_id
        from . import network

        network.install()
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            self.model = CLIPModel.from_pretrained(model_id).to(self.device).eval()
            self.processor = CLIPProcessor.from_pretrained(model_id)
        except Exception as error:  # any load failure means "unavailable" (re-raised as such)
            raise MetricUnavailableError(
                f"CLIP score skipped: cannot load {model_id!r} ({type(error).__name__}: "
                f"{str(error).splitlines()[0] if str(error) else ''})"
            ) from error

    def score(self, image, prompt: str) -> float:
        """``100 · max(cos(image, text), 0)``; the prompt is truncated to 77 tokens."""
        import torch

        rgb = Image.fromarray(to_rgb_array(image))
        inputs = self.processor(
            text=[prompt], images=rgb, return_tensors="pt", padding=True, truncation=True
        ).to(self.device)
        with torch.no_grad():
            out = self.model(**inputs)
        image_embeds = torch.nn.functional.normalize(out.image_embeds, dim=-1)
        text_embeds = torch.nn.functional.normalize(out.text_embeds, dim=-1)
        cosine = float((image_embeds * text_embeds).sum())
        return 100 * max(cosine, 0.0)


class LpipsScorer:
    """LPIPS distance (AlexNet variant) from the ``lpips`` package.

    Raises :class:`MetricUnavailableError` when the package or its weights are missing.
    """

    def __init__(self, net: str = "alex", device: str | None = None):
        import torch

        try:
            import lpips
        except ImportError as error:
            raise MetricUnavailableError(
                "LPIPS skipped: the `lpips` package is not installed (pip install lpips)"
            ) from error
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            self.model = lpips.LPIPS(net=net, verbose=False).to(self.device).eval()
        except Exception as error:  # weights not downloadable, or any load failure: unavailable
            raise MetricUnavailableError(
                f"LPIPS skipped: cannot load its {net} weights ({type(error).__name__})"
            ) from error

    def distance(self, original, reconstruction) -> float:
        import torch

        a, b = _pair(original, reconstruction)

        def tensor(array):  # lpips expects [-1, 1]
            t = torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).float()
            return (t / 127.5 - 1).to(self.device)

        with torch.no_grad():
            return float(self.model(tensor(a), tensor(b)))
