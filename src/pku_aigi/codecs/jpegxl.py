"""JPEG XL (ISO/IEC 18181) lossy coding with libjxl, through imagecodecs.

``encode`` returns a bare JPEG XL codestream (``.jxl`` files may be a bare codestream or
an ISOBMFF container; the container adds only metadata boxes), VarDCT mode, effort 7
(libjxl's default), quality set by the Butteraugli distance.

imagecodecs decodes a whole file at once, so ``decode`` first reads the size and the
animation flag from the codestream's headers (:func:`read_header`, ISO/IEC 18181-1
SizeHeader and ImageMetadata) and refuses a file above ``max_pixels`` or animated before
libjxl spends any time on it.
"""

from __future__ import annotations

import struct

import numpy as np
from PIL import Image

from .base import signature
from .by_name import register
from .conventional import ConventionalCodec
from .ladder import QualityLadder

EFFORT = 7
CONTAINER = b"\x00\x00\x00\x0cJXL \r\n\x87\n"
_SIZES = ((9, 1), (13, 1), (18, 1), (30, 1))  # U32 distributions: (bits, offset)
_PREVIEW_DIV8 = ((0, 16), (0, 32), (5, 1), (9, 33))
_PREVIEW = ((6, 1), (8, 65), (10, 321), (12, 1345))
_RATIOS = {1: (1, 1), 2: (12, 10), 3: (4, 3), 4: (3, 2), 5: (16, 9), 6: (5, 4), 7: (2, 1)}


class _Bits:
    """Reads the codestream's fields: bits least significant first."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def u(self, count: int) -> int:
        value = 0
        for index in range(count):
            value |= ((self.data[self.pos >> 3] >> (self.pos & 7)) & 1) << index
            self.pos += 1
        return value

    def u32(self, distributions) -> int:
        bits, offset = distributions[self.u(2)]
        return self.u(bits) + offset

    def size(self) -> tuple[int, int]:
        """A SizeHeader: (width, height)."""
        small = self.u(1)
        return self._sides(lambda: (self.u(5) + 1) * 8 if small else self.u32(_SIZES))

    def preview_size(self) -> tuple[int, int]:
        """A PreviewHeader: (width, height)."""
        div8 = self.u(1)
        return self._sides(lambda: self.u32(_PREVIEW_DIV8) * 8 if div8 else self.u32(_PREVIEW))

    def _sides(self, side) -> tuple[int, int]:
        height = side()
        ratio = self.u(3)
        if ratio:
            num, den = _RATIOS[ratio]
            return height * num // den, height
        return side(), height


def _codestream(data: bytes) -> bytes:
    """The start of the codestream: ``data`` itself, or from a container's jxlc/jxlp boxes."""
    if not data.startswith(CONTAINER):
        return data
    parts, at = [], 0
    while at + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, at)
        header = 8
        if size == 1 and at + 16 <= len(data):
            size, header = struct.unpack_from(">Q", data, at + 8)[0], 16
        end = len(data) if size == 0 else at + size
        if end < at + header:
            break
        if kind == b"jxlc":
            return data[at + header : end]
        if kind == b"jxlp":
            parts.append(data[at + header + 4 : end])  # after the part's index
        at = end
    return b"".join(parts)


def read_header(data: bytes) -> tuple[int, int, bool]:
    """(width, height, animated) from the headers of a JPEG XL file (bare or container).

    Raises:
        ValueError: no codestream, or headers cut short.
    """
    stream = _codestream(data)
    if not stream.startswith(b"\xff\x0a"):
        raise ValueError("no JPEG XL codestream signature")
    bits = _Bits(stream[2:])
    try:
        width, height = bits.size()
        animated = False
        if not bits.u(1) and bits.u(1):  # not all_default, extra_fields
            bits.u(3)  # orientation
            if bits.u(1):  # intrinsic size
                bits.size()
            if bits.u(1):  # preview
                bits.preview_size()
            animated = bool(bits.u(1))
    except IndexError:
        raise ValueError("its headers are cut short") from None
    return width, height, animated


@register
class JpegXlCodec(ConventionalCodec):
    name = "jpegxl"
    aliases = ("jxl", "jpeg-xl")
    description = "JPEG XL (ISO/IEC 18181) lossy VarDCT with libjxl, effort 7, via imagecodecs"
    quality_help = (
        "Butteraugli distance 0.05..25, lower is better (1.0 ~ visually lossless, libjxl's default)"
    )
    ladder = QualityLadder.geometric(
        0.05,
        25.0,
        sweep=(25.0, 16.0, 11.0, 8.0, 5.5, 4.0, 2.8, 2.0, 1.4, 1.0, 0.7),
        higher_is_better=False,
    )
    file_extension = ".jxl"
    signatures = (
        signature((0, b"\xff\x0a")),  # bare codestream
        signature((0, b"\x00\x00\x00\x0cJXL \r\n\x87\n")),  # ISOBMFF container
    )

    @classmethod
    def availability(cls) -> str | None:
        try:
            import imagecodecs
        except ImportError as error:
            return f"imagecodecs is not installed ({error})"
        if not getattr(imagecodecs, "JPEGXL", None) or not imagecodecs.JPEGXL.available:
            return f"imagecodecs {imagecodecs.__version__} was built without libjxl"
        return None

    @property
    def version(self) -> str:
        import imagecodecs

        return (
            f"{self.name} ({imagecodecs.jpegxl_version()}, imagecodecs "
            f"{imagecodecs.__version__}; effort={EFFORT}, codestream, VarDCT)"
        )

    def _encode(self, rgb: Image.Image, quality: float) -> bytes:
        import imagecodecs

        array = np.asarray(rgb, dtype=np.uint8)
        return bytes(
            imagecodecs.jpegxl_encode(
                array, effort=EFFORT, distance=quality, lossless=False, usecontainer=False
            )
        )

    def _decode(self, data: bytes) -> Image.Image:
        import imagecodecs

        try:
            width, height, animated = read_header(data)
        except ValueError as error:
            raise self.corrupt(str(error)) from None
        if width * height > self.max_pixels:
            raise self.too_large(width, height)
        if animated:
            raise self.corrupt("it is an animation; the codecs code one still image")
        array = imagecodecs.jpegxl_decode(data)
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
            raise self.corrupt(f"it decodes to {array.dtype} {array.shape}, not 8-bit RGB")
        return Image.fromarray(array, "RGB")
