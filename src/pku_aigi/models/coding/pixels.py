"""8-bit pixels and the float images in [0, 1] that the learned transforms take.

The codecs hand the models 8-bit pixels (uint8, (N, 3, H, W)) and get 8-bit pixels
back, so that a model whose transforms run in bands (:mod:`.banding`) converts a band
at a time and a float copy of the whole image (4 bytes a sample: 288 MB at 24 MP)
never exists. Both conversions are element-wise: a band converts to exactly the values
that the whole image would.
"""

from __future__ import annotations

import torch

from ...errors import CorruptStreamError


def is_pixels(x: torch.Tensor) -> bool:
    return x.dtype == torch.uint8


def from_pixels(x: torch.Tensor) -> torch.Tensor:
    """float32 ``x / 255`` of 8-bit pixels; a float image is returned as it is."""
    return x.to(torch.float32) / 255.0 if is_pixels(x) else x


def to_pixels(x_hat: torch.Tensor) -> torch.Tensor:
    """8-bit pixels ``round(255 * clamp(x_hat, 0, 1))``, computed in place in ``x_hat``.

    CorruptStreamError if any value is NaN or infinite (a sum is, without a mask of the
    image's size): a decoder that lost sync, never an image to return.
    """
    if not bool(torch.isfinite(x_hat.sum())):
        raise CorruptStreamError("the decoded image is not finite: decoder desync")
    return x_hat.clamp_(0, 1).mul_(255).round_().to(torch.uint8)
