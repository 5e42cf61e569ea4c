"""Turn whatever a user uploads into the 8-bit RGB image the codecs compress.

An upload is checked and converted here, once, by the package's one rule
(:func:`pku_aigi.image_input.to_rgb`, the same every codec applies), and each
conversion is reported as a note the UI shows (never a silent change). The file is
opened by the package's one opener, :func:`pku_aigi.image_input.open_image_file` (pixel
count checked from the header before decoding, bytes bounded, every malformed file one
error), and what it refuses is worded here by the upload's name:

- not an image, unreadable, too small or too large: :class:`InputImageError` saying why;
- animated (GIF, APNG, WebP): the first frame is used, with a note (the codecs code one
  still image);
- EXIF orientation: applied, with a note;
- CMYK, YCbCr, LAB, palette, grayscale: converted to RGB, with a note;
- 16-bit samples: reduced to 8 bits per channel, with a note; float samples: refused;
- alpha: dropped, with a note (the codecs and metrics compare RGB; transparent pixels
  keep the colour stored under them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageOps

from ..errors import CodecError, PkuAigiError
from ..image_input import SIXTEEN_BIT_GREY, ImageFileError, open_image_file, to_rgb

#: Default pixel limit of the demo (2048 x 2048): CPU Spaces encode VVC at ~1 MP/s.
DEFAULT_MAX_PIXELS = 2048 * 2048
MIN_SIDE = 16
MAX_PIXELS_ENV = "PKU_AIGI_DEMO_MAX_PIXELS"


class InputImageError(PkuAigiError):
    """An uploaded file cannot be used as an image to compress."""


@dataclass
class InputImage:
    """The image to compress (8-bit RGB) and the notes on how it was obtained."""

    image: Image.Image
    notes: list[str] = field(default_factory=list)
    name: str = "image"


def max_pixels() -> int:
    """The pixel limit: ``PKU_AIGI_DEMO_MAX_PIXELS`` or :data:`DEFAULT_MAX_PIXELS`."""
    value = os.environ.get(MAX_PIXELS_ENV)
    if not value:
        return DEFAULT_MAX_PIXELS
    try:
        return int(value)
    except ValueError:
        raise InputImageError(
            f"{MAX_PIXELS_ENV}={value!r} is not a number of pixels: set it to an integer "
            "such as 4194304 (2048 x 2048)"
        ) from None


def load_input_image(path: str | os.PathLike, limit: int | None = None) -> InputImage:
    """Open ``path`` and return it as 8-bit RGB with notes on every conversion made.

    Args:
        path: the uploaded file.
        limit: largest accepted width x height; defaults to :func:`max_pixels`.

    Raises:
        InputImageError: the file is not a readable image, or its size is out of bounds.
    """
    path = Path(path)
    limit = max_pixels() if limit is None else limit
    sixteen_bit = False

    def inspect(image: Image.Image) -> None:  # before decoding, which empties image.tile
        nonlocal sixteen_bit
        sixteen_bit = _has_16bit_samples(image)

    try:
        image = open_image_file(path, limit, before_decode=inspect)
    except ImageFileError as error:
        raise _input_error(path.name, error, limit) from None
    width, height = image.size
    if min(width, height) < MIN_SIDE:
        raise _size_error(path.name, width, height, limit)

    notes: list[str] = []
    if getattr(image, "n_frames", 1) > 1:
        notes.append(
            f"animated image with {image.n_frames} frames: only the first frame is compressed"
        )

    transposed = ImageOps.exif_transpose(image)
    if transposed.size != image.size or transposed.tobytes() != image.tobytes():
        notes.append("EXIF orientation applied (the image is compressed as it is displayed)")
    image = transposed

    image, conversion_notes = to_rgb8(image, sixteen_bit=sixteen_bit)
    notes.extend(conversion_notes)
    return InputImage(image=image, notes=notes, name=path.stem or "image")


def to_rgb8(image: Image.Image, *, sixteen_bit: bool = False) -> tuple[Image.Image, list[str]]:
    """``image`` converted by :func:`~pku_aigi.image_input.to_rgb`, with one note per change."""
    notes: list[str] = []
    mode = image.mode
    if mode in SIXTEEN_BIT_GREY or sixteen_bit:
        notes.append("16-bit samples reduced to 8 bits (the codecs here take 8-bit RGB)")
    if mode in ("RGBA", "LA", "La", "RGBa", "PA") or "transparency" in image.info:
        notes.append(
            "alpha channel dropped (the codecs and metrics compare RGB only; transparent "
            "pixels keep the colour stored under them)"
        )
    if mode in ("L", "1", "LA", "La", *SIXTEEN_BIT_GREY):
        notes.append("grayscale image converted to RGB (three equal channels)")
    elif mode not in ("RGB", "RGBA", "RGBa"):
        notes.append(f"{mode} image converted to RGB")
    try:
        return to_rgb(image, max_pixels=image.width * image.height), notes
    except CodecError as error:
        raise InputImageError(f"this image cannot be compressed: {error}") from None


def _input_error(name: str, error: ImageFileError, limit: int) -> InputImageError:
    """The demo's wording of what :func:`~pku_aigi.image_input.open_image_file` refused
    (by the upload's name: the server's path is not the user's business)."""
    if error.kind == "format":
        return InputImageError(
            f"{name} is not an image this demo can read: upload a PNG, JPEG, WebP, "
            "AVIF, TIFF, BMP or GIF file (to decompress a codec's file use the Decode tab)"
        )
    if error.kind == "size" and error.size is not None:
        return _size_error(name, *error.size, limit)
    if error.kind == "bomb":
        return InputImageError(
            f"{name} is too large to decode safely ({error.detail}); this demo accepts up to "
            f"{limit / 1e6:.1f} megapixels (e.g. {_square(limit)}): resize or crop it first"
        )
    if error.kind == "pixels":
        return InputImageError(
            f"{name} is truncated or corrupt ({error.detail}): upload the complete file"
        )
    return InputImageError(f"{name} cannot be opened: {error.detail}")


def _size_error(name: str, width: int, height: int, limit: int) -> InputImageError:
    if width * height > limit:
        return InputImageError(
            f"{name} is {width}x{height} = {width * height / 1e6:.1f} megapixels; this demo "
            f"accepts up to {limit / 1e6:.1f} megapixels (e.g. {_square(limit)}): resize or crop "
            f"it first (when running locally, {MAX_PIXELS_ENV} raises the limit)"
        )
    return InputImageError(
        f"{name} is {width}x{height}: both sides must be at least {MIN_SIDE} pixels"
    )


def _has_16bit_samples(image: Image.Image) -> bool:
    """True for 48/64-bit RGB(A) files that Pillow reads as 8-bit RGB(A) (PNG, TIFF)."""
    for tile in (getattr(image, "tile", None) or [])[:1]:
        args = tile.args
        rawmode = args if isinstance(args, str) else (args[0] if args else "")
        return image.mode in ("RGB", "RGBA") and ";16" in str(rawmode)
    return False


def _square(pixels: int) -> str:
    side = int(pixels**0.5)
    return f"{side}x{side}"
