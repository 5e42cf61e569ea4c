"""The shared frame of the conventional codecs (JPEG ... VVC).

A conventional codec codes one 8-bit RGB image (:func:`~pku_aigi.image_input.to_rgb`
says how other modes get there) and decodes to mode ``"RGB"``. Subclasses implement
``_encode(rgb, quality) -> bytes`` and ``_decode(data) -> Image``; this class checks the
quality, the input and the decoded result, and turns every decoder failure into one
:class:`~pku_aigi.errors.CorruptStreamError`.
"""

from __future__ import annotations

import abc
import logging

from PIL import Image

from ..errors import CodecError, CorruptStreamError, ImageTooLargeError, PkuAigiError
from ..image_input import MAX_PIXELS_DEFAULT, check_pixels, to_rgb
from .base import Codec

logger = logging.getLogger(__name__)


class ConventionalCodec(Codec):
    """Base of the codecs that code 8-bit RGB with a standard bitstream.

    Args:
        max_pixels: largest ``width * height`` accepted by :meth:`encode` and produced
            by :meth:`decode` (a guard against decompression bombs). Every decoder checks
            it from the stream's header before decoding: Pillow's formats by
            ``Image.open`` (which reads the header only), JPEG XL by parsing its
            SizeHeader, HEVC and VVC by ffmpeg's ``-max_pixels`` (checked when the SPS
            is activated, before any slice is decoded).
    """

    def __init__(self, *, max_pixels: int = MAX_PIXELS_DEFAULT):
        self.max_pixels = int(max_pixels)

    def encode(self, image: Image.Image, quality: float, *, prompt: str | None = None) -> bytes:
        """Compress ``image`` (converted by the :mod:`~pku_aigi.image_input` rule).

        ``prompt`` is ignored: conventional codecs are not text-conditioned.
        """
        value = self.check_quality(quality)
        rgb = to_rgb(image, self.max_pixels)
        data = self._encode(rgb, value)
        logger.debug("%s q=%s %dx%d -> %d bytes", self.name, value, *rgb.size, len(data))
        return data

    def decode(self, data: bytes) -> Image.Image:
        """Decompress bytes made by :meth:`encode` into an RGB image.

        Raises:
            CorruptStreamError: the bytes are empty, truncated, corrupted or of
                another format.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise CodecError(f"{self.name}: expected bytes to decode, got {type(data).__name__}")
        data = bytes(data)
        if not data:
            raise CorruptStreamError(f"{self.name}: no data to decode (0 bytes)")
        try:
            image = self._decode(data)
        except PkuAigiError:
            raise
        except Exception as error:  # any decoder failure is a bad stream, said once
            raise self.corrupt(f"{type(error).__name__}: {error}") from error
        check_pixels(image.width, image.height, self.max_pixels)
        return image if image.mode == "RGB" else to_rgb(image, self.max_pixels)

    def too_large(self, width: int, height: int) -> ImageTooLargeError:
        """The error for a stream whose header declares more than ``max_pixels``."""
        return ImageTooLargeError(
            f"{self.name}: the stream declares a {width}x{height} image ({width * height:,} "
            f"pixels), more than this decoder's limit of {self.max_pixels:,} pixels"
        )

    def corrupt(self, reason: str) -> CorruptStreamError:
        """The error for undecodable input, naming the codec and what to check."""
        return CorruptStreamError(
            f"{self.name}: cannot decode the data ({reason}); it is truncated, corrupted, "
            f"or not a {self.file_extension} stream made by the {self.name!r} codec"
        )

    @abc.abstractmethod
    def _encode(self, rgb: Image.Image, quality: int | float) -> bytes:
        """Code the RGB image at a checked quality value."""

    @abc.abstractmethod
    def _decode(self, data: bytes) -> Image.Image:
        """Decode non-empty bytes; may raise anything on bad input."""
