"""Opening an image file given by a user, with its size checked before it is decoded.

Pillow reads a file's header on ``Image.open`` and its pixels on ``load()``; the pixel
limit is checked in between, so a file declaring 30000x30000 pixels costs a header read,
not gigabytes. Whatever a crafted file makes Pillow raise (decompression bombs, text
chunks above Pillow's ``MAX_TEXT_CHUNK``, truncated or inconsistent chunks) becomes one
:class:`~pku_aigi.errors.CodecError` naming the file.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from pathlib import Path

from PIL import Image

from ..errors import CodecError
from ..image_input import MAX_PIXELS_DEFAULT, check_pixels

MAX_FILE_BYTES = 512 << 20  # an 8-bit RGB image at the default pixel limit is ~190 MB raw

# What Pillow's decoders raise on a malformed file besides OSError (each seen in fuzzing):
# ValueError (a text chunk above MAX_TEXT_CHUNK, tiles outside the image), SyntaxError
# ("broken PNG file"), struct.error and EOFError (cut headers), IndexError, KeyError,
# TypeError and ZeroDivisionError (inconsistent TIFF/BMP/GIF fields).
_MALFORMED = (
    OSError,
    ValueError,
    SyntaxError,
    struct.error,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
)


def open_image_file(path: str | os.PathLike, max_pixels: int = MAX_PIXELS_DEFAULT) -> Image.Image:
    """The decoded image in ``path`` (its first frame), as Pillow reads it.

    The file is read into memory first (at most :data:`MAX_FILE_BYTES`): Pillow then
    reads from a ``BytesIO``, where a chunk length of 2 GiB in a 3 KB file allocates
    3 KB, not 2 GiB as a buffered file read does.

    Raises:
        CodecError: missing, not an image, malformed, empty, or above ``max_pixels``.
    """
    path = Path(path)
    if not path.exists():
        raise CodecError(f"{path} does not exist")
    if path.is_dir():
        raise CodecError(f"{path} is a folder, not an image")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise CodecError(
            f"{path} is {size:,} bytes, more than the {MAX_FILE_BYTES:,} accepted for an image"
        )
    data = path.read_bytes()
    with warnings.catch_warnings():
        # Pillow warns (e.g. "Truncated File Read") and then fails or not: the outcome
        # is what counts, and a warning would add lines to the one-line CLI error.
        warnings.simplefilter("ignore")
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as error:
            raise CodecError(f"{path} is too large to decode safely ({error})") from None
        except _MALFORMED as error:
            raise CodecError(f"cannot read {path} as an image: {error}") from None
        check_pixels(image.width, image.height, max_pixels)
        try:
            image.load()
            getattr(image, "n_frames", 1)  # counting frames parses every frame header
        except _MALFORMED as error:
            raise CodecError(f"{path} is truncated or corrupt ({error})") from None
    return image
