"""The one interface every codec of the project implements.

A codec turns a PIL image into the exact bytes that would be stored or sent, and those
bytes back into a PIL image. Conventional codecs (JPEG ... VVC) and learned codecs
(wrapped Hub models writing the .aigic container) look the same to the benchmark, the
CLI and the Space.
"""

from __future__ import annotations

import abc
from typing import ClassVar

from PIL import Image

from ..errors import CodecError

MAX_PIXELS_DEFAULT = 64_000_000  # ~ 8000 x 8000; override per call where a codec allows


class Codec(abc.ABC):
    """A lossy image codec.

    Subclasses set the class attributes and implement :meth:`encode` / :meth:`decode`.
    ``quality`` is the codec's own knob in its own units, documented in
    ``quality_help``; ``default_qualities`` is the grid used for rate-distortion sweeps,
    ordered from lowest to highest rate.
    """

    name: ClassVar[str]  # registry name, e.g. "jpeg", "vvc"
    description: ClassVar[str]  # one line for `pku-aigi codecs`
    quality_help: ClassVar[str]  # the quality scale: range, direction, what it maps to
    quality_range: ClassVar[tuple[float, float]]  # inclusive (lowest, highest) value
    higher_quality_is_better: ClassVar[bool] = True  # False for QP-like scales
    default_qualities: ClassVar[tuple[float, ...]]  # RD sweep grid, low rate -> high rate
    file_extension: ClassVar[str]  # e.g. ".jpg", ".aigic"
    text_conditioned: ClassVar[bool] = False  # True if the prompt changes the bitstream

    @classmethod
    def availability(cls) -> str | None:
        """``None`` if the codec runs on this machine, else the reason it cannot."""
        return None

    @property
    def version(self) -> str:
        """Identifies the exact implementation (library versions, settings, weights).

        The benchmark keys cached measurements on it: anything that can change the
        bitstream must change this string.
        """
        return self.name

    @abc.abstractmethod
    def encode(self, image: Image.Image, quality: float, *, prompt: str | None = None) -> bytes:
        """Compress ``image`` at ``quality``; return exactly the bytes to store.

        ``prompt`` is used by text-conditioned codecs and ignored by the others.
        """

    @abc.abstractmethod
    def decode(self, data: bytes) -> Image.Image:
        """Decompress bytes made by :meth:`encode`; raise CorruptStreamError if invalid."""

    def check_quality(self, quality: float) -> float:
        low, high = self.quality_range
        if not low <= quality <= high:
            raise CodecError(
                f"{self.name}: quality {quality} is out of range [{low}, {high}] ({self.quality_help})"
            )
        return quality

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
