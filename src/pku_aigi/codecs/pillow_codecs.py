"""JPEG, WebP, JPEG 2000 and AVIF through Pillow's bundled libraries.

JPEG is ITU-T T.81 (libjpeg-turbo), WebP is VP8 intra (libwebp), JPEG 2000 is ITU-T T.800
Part 1 (OpenJPEG), AVIF is AV1 intra in HEIF (libavif with libaom to encode, dav1d to
decode). Each ``encode`` returns the complete file that Pillow writes; the settings that
shape the bitstream are fixed here and reported by ``version``.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from typing import ClassVar

from PIL import Image, UnidentifiedImageError, features

from ..errors import CodecError
from .base import signature
from .by_name import register
from .conventional import ConventionalCodec
from .ladder import QualityLadder
from .threads import codec_threads


class PillowCodec(ConventionalCodec):
    """A codec whose encoder and decoder are a Pillow plugin (``pil_format``)."""

    pil_format: ClassVar[str]  # Pillow's format name, e.g. "JPEG"
    feature: ClassVar[str]  # PIL.features name of the library, e.g. "jpg"
    library: ClassVar[str]  # human name of the library
    end_marker: ClassVar[bytes | None] = None  # the last bytes of every complete stream

    @classmethod
    def availability(cls) -> str | None:
        if not features.check(cls.feature):
            return f"this Pillow build ({Image.__version__}) has no {cls.library} support"
        return None

    @property
    def version(self) -> str:
        lib = features.version(self.feature)
        if self.feature == "jpg" and features.check("libjpeg_turbo"):
            lib = features.version("libjpeg_turbo")  # "jpg" gives the libjpeg API level
        return f"{self.name} ({self.library} {lib}, Pillow {Image.__version__}; {self.settings()})"

    def settings(self) -> str:
        """The fixed encoder settings, as text for ``version``."""
        return ", ".join(f"{key}={value}" for key, value in self.save_options(None).items())

    def save_options(self, quality: int | float | None, size=(0, 0)) -> dict:
        """Keyword arguments of ``Image.save`` (quality ``None``: the fixed ones only)."""
        return {}

    def encode_options(self, quality: int | float, size) -> dict:
        """``save_options`` plus what does not shape the bitstream (e.g. threads)."""
        return self.save_options(quality, size)

    def _encode(self, rgb: Image.Image, quality: int | float) -> bytes:
        buffer = io.BytesIO()
        try:
            rgb.save(buffer, self.pil_format, **self.encode_options(quality, rgb.size))
        except (OSError, ValueError) as error:  # e.g. JPEG sides above 65535, WebP 16383
            width, height = rgb.size
            raise CodecError(
                f"{self.name} cannot code this {width}x{height} image ({error}): the format "
                "limits the size of a side; crop or downscale it, or use another codec"
            ) from None
        return buffer.getvalue()

    def _decode(self, data: bytes) -> Image.Image:
        if self.end_marker is not None and not data.endswith(self.end_marker):
            # Pillow decodes some truncated streams without complaint; this one cannot be whole.
            raise self.corrupt(f"the stream does not end with the marker {self.end_marker.hex()}")
        try:
            with warnings.catch_warnings():  # the size is checked against max_pixels below
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                opened = Image.open(io.BytesIO(data), formats=[self.pil_format])
        except UnidentifiedImageError:
            raise self.corrupt(
                f"{self.library} does not recognise it as {self.pil_format}"
            ) from None
        with opened as image:
            if image.width * image.height > self.max_pixels:
                raise self.too_large(image.width, image.height)
            image.load()  # the decoded pixels stay usable after the file is closed
            return image


@register
class JpegCodec(PillowCodec):
    name = "jpeg"
    aliases = ("jpg",)
    description = "JPEG (ITU-T T.81) with libjpeg-turbo, 4:2:0, optimised Huffman tables"
    quality_help = "libjpeg quality 1..100, higher is better (IJG quantisation-table scaling)"
    ladder = QualityLadder.integers(1, 100, sweep=(2, 5, 10, 20, 30, 45, 60, 75, 85, 92))
    file_extension = ".jpg"
    signatures = (signature((0, b"\xff\xd8\xff")),)  # SOI + the next marker's 0xFF
    pil_format = "JPEG"
    feature = "jpg"
    library = "libjpeg-turbo"
    end_marker = b"\xff\xd9"  # EOI

    def save_options(self, quality, size=(0, 0)) -> dict:
        options = {"subsampling": "4:2:0", "optimize": True, "progressive": False}
        return options if quality is None else {"quality": int(quality), **options}


@register
class WebpCodec(PillowCodec):
    name = "webp"
    description = "WebP lossy (VP8 intra) with libwebp, 4:2:0, method 6"
    quality_help = "libwebp quality 1..100, higher is better"
    ladder = QualityLadder.integers(1, 100, sweep=(1, 5, 15, 30, 50, 65, 75, 85, 92, 97))
    file_extension = ".webp"
    signatures = (signature((0, b"RIFF"), (8, b"WEBP")),)
    pil_format = "WEBP"
    feature = "webp"
    library = "libwebp"
    max_side = 16383  # the largest width/height of the VP8 bitstream

    def save_options(self, quality, size=(0, 0)) -> dict:
        if max(size) > self.max_side:
            raise CodecError(
                f"webp: {size[0]}x{size[1]} is larger than WebP's limit of "
                f"{self.max_side} pixels per side: use another codec or downscale"
            )
        options = {"method": 6, "lossless": False, "exact": False}
        return options if quality is None else {"quality": int(quality), **options}


@register
class Jpeg2000Codec(PillowCodec):
    name = "jpeg2000"
    aliases = ("j2k", "jp2", "jpeg-2000")
    description = "JPEG 2000 Part 1 codestream (.j2k) with OpenJPEG, 9/7 wavelet, ICT"
    quality_help = (
        "compression ratio 1..1000 against 24-bit RGB (bpp ~ 24 / ratio), lower is "
        "better; 1 means no rate limit"
    )
    ladder = QualityLadder.geometric(
        1, 1000, sweep=(480, 320, 200, 130, 80, 50, 32, 20, 12), higher_is_better=False
    )
    file_extension = ".j2k"
    signatures = (
        signature((0, b"\xff\x4f\xff\x51")),  # codestream: SOC + SIZ markers
        signature((0, b"\x00\x00\x00\x0cjP  \r\n\x87\n")),  # JP2 signature box
    )
    pil_format = "JPEG2000"
    feature = "jpg_2000"
    library = "OpenJPEG"
    end_marker = b"\xff\xd9"  # EOC

    def save_options(self, quality, size=(0, 0)) -> dict:
        # Raw codestream rather than a JP2 box file: the ~100 bytes of JP2 boxes carry
        # nothing the decoder needs and would be counted in the rate.
        options = {"no_jp2": True, "irreversible": True, "mct": 1, "quality_mode": "rates"}
        if quality is None:
            return {**options, "num_resolutions": "min(6, 1 + log2(min side))"}
        # OpenJPEG needs at least 2^(levels) pixels along each side for its levels.
        levels = min(5, int(math.log2(max(1, min(size)))))
        return {**options, "quality_layers": [float(quality)], "num_resolutions": levels + 1}


@register
class AvifCodec(PillowCodec):
    name = "avif"
    description = "AVIF (AV1 intra) with libavif: libaom encoder (speed 6), dav1d decoder, 4:2:0"
    quality_help = "libavif quality 1..100, higher is better (maps to the AV1 quantiser)"
    ladder = QualityLadder.integers(1, 100, sweep=(1, 8, 18, 28, 38, 48, 58, 68, 78, 88))
    file_extension = ".avif"
    # ISOBMFF "ftyp" box with an AVIF major brand (image, or image sequence).
    signatures = (signature((4, b"ftypavif")), signature((4, b"ftypavis")))
    pil_format = "AVIF"
    feature = "avif"
    library = "libavif"
    default_speed = 6
    speeds = tuple(range(11))  # libaom's cpu-used 0 (slowest, best) .. 10 (fastest)
    speed_option = "speed"  # the option that trades speed for compression

    @classmethod
    def speed_settings(cls) -> tuple[int, ...]:
        """Values of ``speed_option``, fastest first (the last compresses best)."""
        return tuple(reversed(cls.speeds))

    def __init__(self, *, speed: int | str | None = None, **options):
        super().__init__(**options)
        self.speed = self.default_speed if speed is None else _speed(speed, self.speeds)

    @classmethod
    def availability(cls) -> str | None:
        reason = super().availability()
        if reason is None:
            from PIL import _avif

            if not _avif.encoder_codec_available("aom"):
                return f"this Pillow's libavif has no libaom encoder ({_avif.codec_versions()})"
        return reason

    @property
    def version(self) -> str:
        from PIL import _avif

        return f"{super().version}; {_avif.codec_versions()}"

    def settings(self) -> str:
        return f"{super().settings()}, row-mt"

    def save_options(self, quality, size=(0, 0)) -> dict:
        options = {"subsampling": "4:2:0", "speed": self.speed, "range": "full", "codec": "aom"}
        return options if quality is None else {"quality": int(quality), **options}

    def encode_options(self, quality, size) -> dict:
        # libavif turns on libaom's row-based multithreading for more than one thread,
        # which codes differently: at least 2 keeps the bytes the same on every machine.
        threads = max(2, codec_threads() or _default_threads())
        return {**self.save_options(quality, size), "max_threads": threads}

    def _decode(self, data: bytes) -> Image.Image:
        from PIL import AvifImagePlugin

        AvifImagePlugin.DEFAULT_MAX_THREADS = codec_threads()  # dav1d; 0: one per core
        return super()._decode(data)


def _speed(value: int | str, speeds: tuple[int, ...]) -> int:
    """An encoder speed option (also given as text on the command line), checked."""
    try:
        speed = int(value)
    except (TypeError, ValueError):
        speed = None
    if speed not in speeds or isinstance(value, bool | float):
        raise CodecError(
            f"avif: unknown speed {value!r}: use a whole number {speeds[0]}..{speeds[-1]} "
            "(lower is slower and compresses better)"
        )
    return speed


def _default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
