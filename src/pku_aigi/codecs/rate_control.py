"""Encode an image at a target rate (bits per pixel) by searching the quality ladder.

Used to compare codecs at equal rate (the Space's "same bpp" view). The search is a
bisection over the steps of the codec's :class:`~pku_aigi.codecs.ladder.QualityLadder`
(ordered by growing rate), assuming the rate grows monotonically along them (true up to
small wiggles for every codec here): ``log2(steps)`` encodes, exact on the ladder.
"""

from __future__ import annotations

import logging
import math
import numbers

from PIL import Image

from ..errors import CodecError
from .base import Codec

logger = logging.getLogger(__name__)


def bits_per_pixel(data: bytes, image: Image.Image) -> float:
    """Rate of ``data`` for ``image``: 8 * bytes / (width * height)."""
    return 8.0 * len(data) / (image.width * image.height)


def encode_to_bpp(
    codec: Codec,
    image: Image.Image,
    target_bpp: float,
    prompt: str | None = None,
) -> tuple[float, bytes]:
    """The highest-rate encoding of ``image`` whose rate is at most ``target_bpp``.

    If even the lowest-rate step of the ladder is above the target, that lowest
    encoding is returned (check its size: the target cannot be met).

    Args:
        codec: any codec; its ``ladder`` says which qualities to try, in rate order.
        image: the image to encode.
        target_bpp: the rate budget in bits per pixel (> 0).
        prompt: passed to ``codec.encode`` (text-conditioned codecs).

    Returns:
        ``(quality, data)``: the quality used and exactly the bytes ``encode`` returned.
    """
    if not (isinstance(target_bpp, numbers.Real) and target_bpp > 0 and math.isfinite(target_bpp)):
        raise CodecError(f"target bpp must be a positive number, got {target_bpp!r}")
    steps = codec.ladder.steps
    results: dict[int, bytes] = {}

    def rate(position: int) -> float:
        if position not in results:
            results[position] = codec.encode(image, steps[position], prompt=prompt)
        return bits_per_pixel(results[position], image)

    below, above = 0, len(steps) - 1
    if rate(below) > target_bpp:
        logger.info(
            "%s cannot reach %.4f bpp: its lowest rate is %.4f bpp",
            codec.name,
            target_bpp,
            rate(below),
        )
        return steps[below], results[below]
    if rate(above) <= target_bpp:
        return steps[above], results[above]
    # Invariant: rate(below) <= target < rate(above).
    while above - below > 1:
        middle = (below + above) // 2
        if rate(middle) <= target_bpp:
            below = middle
        else:
            above = middle
    logger.debug(
        "%s: %.4f bpp at quality %s (target %.4f, %d encodes)",
        codec.name,
        rate(below),
        steps[below],
        target_bpp,
        len(results),
    )
    return steps[below], results[below]
