"""Encode an image at a target rate (bits per pixel) by searching the quality scale.

Used to compare codecs at equal rate (the Space's "same bpp" view). The search is a
bisection over the codec's own quality scale, assuming the rate grows monotonically with
quality (true up to small wiggles for every codec here): integer scales are searched
exactly, continuous scales in log space to a relative precision of ~0.5 %.
"""

from __future__ import annotations

import functools
import logging
import math
import numbers

from PIL import Image

from ..errors import CodecError
from .base import Codec

logger = logging.getLogger(__name__)

CONTINUOUS_STEPS = 16  # bisection steps (enough for 2**16 integer qualities too)


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

    If even the lowest-rate end of the quality scale is above the target, that lowest
    encoding is returned (check its size: the target cannot be met).

    Args:
        codec: any codec; its ``quality_range`` and ``higher_quality_is_better`` say
            how to search.
        image: the image to encode.
        target_bpp: the rate budget in bits per pixel (> 0).
        prompt: passed to ``codec.encode`` (text-conditioned codecs).

    Returns:
        ``(quality, data)``: the quality used and exactly the bytes ``encode`` returned.
    """
    if not (isinstance(target_bpp, numbers.Real) and target_bpp > 0 and math.isfinite(target_bpp)):
        raise CodecError(f"target bpp must be a positive number, got {target_bpp!r}")
    low, high = codec.quality_range
    results: dict[float, bytes] = {}

    def rate(quality: float) -> float:
        if quality not in results:
            results[quality] = codec.encode(image, quality, prompt=prompt)
        return bits_per_pixel(results[quality], image)

    # Qualities ordered by growing rate: an explicit list on integer scales, a map from
    # t in [0, 1] on continuous ones; bisect for the last one still within the budget.
    integer = getattr(
        codec, "integer_quality", float(low).is_integer() and float(high).is_integer()
    )
    if integer:
        ladder = list(range(int(low), int(high) + 1))
        if not codec.higher_quality_is_better:
            ladder.reverse()
        below, above = 0, len(ladder) - 1
        at = ladder.__getitem__
    else:
        below, above = 0.0, 1.0
        at = functools.partial(_continuous, low, high, codec.higher_quality_is_better)

    if rate(at(below)) > target_bpp:
        logger.info(
            "%s cannot reach %.4f bpp: its lowest rate is %.4f bpp",
            codec.name,
            target_bpp,
            rate(at(below)),
        )
        return at(below), results[at(below)]
    if rate(at(above)) <= target_bpp:
        return at(above), results[at(above)]
    # Invariant: rate(at(below)) <= target < rate(at(above)).
    for _ in range(CONTINUOUS_STEPS):
        if integer and above - below <= 1:
            break
        middle = (below + above) // 2 if integer else (below + above) / 2
        if rate(at(middle)) <= target_bpp:
            below = middle
        else:
            above = middle
    quality = at(below)
    logger.debug(
        "%s: %.4f bpp at quality %s (target %.4f, %d encodes)",
        codec.name,
        rate(quality),
        quality,
        target_bpp,
        len(results),
    )
    return quality, results[quality]


def _continuous(low: float, high: float, higher_is_better: bool, t: float) -> float:
    """Quality at position ``t`` (0: lowest rate, 1: highest), in log space if low > 0."""
    if not higher_is_better:
        t = 1.0 - t
    if low > 0:
        value = math.exp(math.log(low) + t * (math.log(high) - math.log(low)))
    else:
        value = low + t * (high - low)
    return float(min(max(value, low), high))  # no float noise outside the range
