"""JPEG XL (ISO/IEC 18181) lossy coding with libjxl, through imagecodecs.

``encode`` returns a bare JPEG XL codestream (``.jxl`` files may be a bare codestream or
an ISOBMFF container; the container adds only metadata boxes), VarDCT mode, effort 7
(libjxl's default), quality set by the Butteraugli distance.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .base import signature
from .by_name import register
from .conventional import ConventionalCodec
from .ladder import QualityLadder

EFFORT = 7


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

        array = imagecodecs.jpegxl_decode(data)
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
            raise self.corrupt(f"it decodes to {array.dtype} {array.shape}, not 8-bit RGB")
        return Image.fromarray(array, "RGB")
