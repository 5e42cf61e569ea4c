"""Images coming in: one file opener, one folder reader, one rule that makes any PIL image RGB.

:func:`open_image_file` opens an image file given by a user with its size checked
before its pixels are decoded: Pillow reads a file's header on ``Image.open`` and its
pixels on ``load()``, and the pixel limit is checked in between, so a file declaring
30000x30000 pixels costs a header read, not gigabytes. Whatever a crafted file makes
Pillow raise (decompression bombs, text chunks above Pillow's ``MAX_TEXT_CHUNK``,
truncated or inconsistent chunks) becomes one :class:`ImageFileError` (a
:class:`~pku_aigi.errors.CodecError`) naming the file. It is the one opener of image
files for ``pku-aigi compress``, the Space's uploads, the benchmark's and training's
folders; :func:`image_file_size` makes the same checks on the header alone.

:func:`read_folder` lists the images of a folder and their prompts (the imagefolder
layout of ``datasets``); the benchmark, training and the Space read folders with it.

Every codec (conventional, learned or plugin) codes one still 8-bit RGB image, and the
benchmark, training and the Space read images the same way; :func:`to_rgb` is the one
documented rule, so distortion is always measured against exactly the image the codec
saw:

============================  ==========================================================
input mode                    becomes
============================  ==========================================================
``RGB``                       itself
``RGBA``, ``LA``, ``PA``      the colour channels; alpha is dropped, not composited
``RGBa``, ``La``              un-premultiplied colour channels; alpha is dropped
``P`` (palette)               the palette colours (a transparency entry is dropped)
``L``, ``1``                  grey replicated into R, G and B
``I;16*``, ``I``              16-bit grey: ``round(v / 257)`` (65535 -> 255), clipped to
                              [0, 65535] first, then replicated into R, G and B
``CMYK``, ``YCbCr``, ``LAB``, Pillow's ``convert("RGB")`` (no ICC colour management)
``HSV``
``F`` (float)                 refused: no scale can be assumed
animated (``n_frames > 1``)   refused: pick a frame with ``image.seek(i)`` and pass
                              ``image.copy()``
============================  ==========================================================

Images with zero pixels, and images with more than ``max_pixels`` pixels (default
:data:`MAX_PIXELS_DEFAULT`), are refused with a :class:`~pku_aigi.errors.CodecError`.
"""

from __future__ import annotations

import io
import json
import os
import stat
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import CodecError, DatasetError

MAX_PIXELS_DEFAULT = 64_000_000  # ~ 8000 x 8000; override per call where a codec allows

_DROP_ALPHA = {"RGBA": "RGB", "LA": "L"}
SIXTEEN_BIT_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def check_pixels(width: int, height: int, max_pixels: int = MAX_PIXELS_DEFAULT) -> None:
    """Raise :class:`CodecError` for an empty image or one above ``max_pixels``."""
    if width < 1 or height < 1:
        raise CodecError(f"the image is empty ({width}x{height}): nothing to compress")
    if width * height > max_pixels:
        raise CodecError(
            f"the image has {width}x{height} = {width * height:,} pixels, more than the "
            f"limit of {max_pixels:,}: downscale it or pass a larger max_pixels"
        )


def to_rgb(image: Image.Image, max_pixels: int = MAX_PIXELS_DEFAULT) -> Image.Image:
    """The 8-bit RGB image every codec codes, by the rule of this module.

    Args:
        image: any PIL image.
        max_pixels: largest accepted ``width * height``.

    Returns:
        A mode ``"RGB"`` image of the same size (``image`` itself if already RGB).

    Raises:
        CodecError: not a PIL image, animated, float, empty or too large.
    """
    if not isinstance(image, Image.Image):
        raise CodecError(f"expected a PIL.Image.Image, got {type(image).__name__}")
    check_pixels(image.width, image.height, max_pixels)
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        raise CodecError(
            f"the image is animated ({frames} frames) but the codecs code one still image: "
            "choose a frame with image.seek(i) and pass image.copy()"
        )
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("RGBa", "La"):  # premultiplied alpha: un-premultiply, then drop alpha
        image = image.convert(mode.upper())
        mode = image.mode
    if mode in _DROP_ALPHA:
        image = image.convert(_DROP_ALPHA[mode])
        mode = image.mode
    if mode == "PA":
        image = image.convert("RGBA").convert("RGB")
    elif mode in SIXTEEN_BIT_GREY:
        grey = np.asarray(image, dtype=np.float64)
        grey = np.rint(np.clip(grey, 0, 65535) / 257.0).astype(np.uint8)
        image = Image.fromarray(grey, "L")
    elif mode == "F":
        raise CodecError(
            "float images (mode 'F') have no defined 8-bit scale: convert to 'L', 'I;16' "
            "or 'RGB' yourself"
        )
    return image.convert("RGB")


# --- image files ---------------------------------------------------------------------------

# The most read from one input file (an image, or a compressed file for `decompress`): an
# 8-bit RGB image at the default pixel limit is ~190 MB raw, and no codec here writes more
# than the raw pixels plus headers.
MAX_FILE_BYTES = 512 << 20

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


class ImageFileError(CodecError):
    """An image file :func:`open_image_file` (or :func:`image_file_size`) refuses.

    The message names the file. ``detail`` is the reason without the file's name and
    ``kind`` says where the file failed, so that a caller can word its own message:

    ``"file"``    missing, not a regular file (a folder, a pipe, a device ...), more
                  than :data:`MAX_FILE_BYTES`, or unreadable
    ``"format"``  no image format Pillow reads
    ``"bomb"``    declares more pixels than Pillow decodes safely (a decompression bomb)
    ``"header"``  a malformed header
    ``"size"``    no pixel, or more than ``max_pixels``; ``size`` is (width, height)
    ``"pixels"``  truncated or corrupt image data (or frame headers)
    """

    def __init__(
        self, message: str, *, kind: str, detail: str, size: tuple[int, int] | None = None
    ):
        super().__init__(message)
        self.kind = kind
        self.detail = detail
        self.size = size


_FILE_TYPES = {
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a named pipe",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def _refuse(path: Path, detail: str) -> ImageFileError:
    return ImageFileError(f"{path} {detail.removeprefix('it ')}", kind="file", detail=detail)


def _check_stat(path: Path, info: os.stat_result, what: str, max_bytes: int) -> None:
    if not stat.S_ISREG(info.st_mode):
        kind = _FILE_TYPES.get(stat.S_IFMT(info.st_mode), "not a regular file")
        raise _refuse(path, f"it is {kind}, not {what}: give a regular file")
    if info.st_size > max_bytes:
        raise _refuse(
            path, f"it is {info.st_size:,} bytes, more than the {max_bytes:,} accepted for {what}"
        )


def open_regular_file(path: str | os.PathLike, *, what: str, max_bytes: int = MAX_FILE_BYTES):
    """``path`` opened for reading (a binary file object) if it is a regular file of at
    most ``max_bytes``.

    Checked with ``os.stat`` before opening (a device is never opened) and with
    ``fstat`` on the opened file (what is read is what was checked); opened with
    ``O_NONBLOCK``, so a named pipe put there meanwhile never blocks.

    Raises:
        ImageFileError: (kind ``"file"``) missing, not a regular file (a folder, a pipe,
            a device ...), larger than ``max_bytes``, or unreadable; ``what`` (e.g.
            ``"an image"``) words the message.
    """
    path = Path(path)
    try:
        _check_stat(path, os.stat(path), what, max_bytes)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise _refuse(path, "it does not exist") from None
    except OSError as error:
        raise _unreadable(path, error) from None
    try:
        _check_stat(path, os.fstat(fd), what, max_bytes)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def read_regular_file(path: str | os.PathLike, *, what: str, max_bytes: int = MAX_FILE_BYTES):
    """The bytes of ``path``, checked by :func:`open_regular_file` and read to at most
    ``max_bytes`` (a file that grows meanwhile, or a /proc file that claims 0 bytes,
    is still bounded).

    Raises:
        ImageFileError: as :func:`open_regular_file`.
    """
    path = Path(path)
    chunks, total = [], 0
    with open_regular_file(path, what=what, max_bytes=max_bytes) as file:
        want = os.fstat(file.fileno()).st_size + 1  # one read, unless it grew or lied
        try:
            while total <= max_bytes:
                chunk = file.read(min(want, max_bytes + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
                want = 1 << 20
        except OSError as error:
            raise _unreadable(path, error) from None
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise _refuse(path, f"it is more than the {max_bytes:,} bytes accepted for {what}")
    return data


def _unreadable(path: Path, error: OSError) -> ImageFileError:
    detail = error.strerror or str(error)
    return ImageFileError(f"cannot read {path}: {detail}", kind="file", detail=detail)


def _open_header(path: Path, file, max_pixels: int) -> Image.Image:
    """``Image.open`` of ``file`` (the contents of ``path``), pixel count checked; no pixel
    is decoded. Call with warnings ignored."""
    try:
        image = Image.open(file)
    except Image.DecompressionBombError as error:
        raise ImageFileError(
            f"{path} is too large to decode safely ({error})", kind="bomb", detail=str(error)
        ) from None
    except UnidentifiedImageError:
        # Pillow's own message names the BytesIO object, not the file
        detail = "not in an image format Pillow reads"
        raise ImageFileError(
            f"cannot read {path} as an image: {detail}", kind="format", detail=detail
        ) from None
    except _MALFORMED as error:
        raise ImageFileError(
            f"cannot read {path} as an image: {error}", kind="header", detail=str(error)
        ) from None
    try:
        check_pixels(image.width, image.height, max_pixels)
    except CodecError as error:
        image.close()
        raise ImageFileError(str(error), kind="size", detail=str(error), size=image.size) from None
    return image


def open_image_file(
    path: str | os.PathLike,
    max_pixels: int = MAX_PIXELS_DEFAULT,
    *,
    before_decode: Callable[[Image.Image], object] | None = None,
) -> Image.Image:
    """The decoded image in ``path`` (its first frame), as Pillow reads it.

    The file is read into memory first by :func:`read_regular_file` (a regular file of
    at most :data:`MAX_FILE_BYTES`; never a pipe or a device): Pillow then
    reads from a ``BytesIO``, where a chunk length of 2 GiB in a 3 KB file allocates
    3 KB, not 2 GiB as a buffered file read does. The frames are counted (which parses
    every frame header) before the first frame is decoded, so the returned image holds
    its pixels and nothing is decoded later outside these checks.

    Args:
        path: the image file.
        max_pixels: largest accepted ``width * height``, checked from the header.
        before_decode: called with the opened image after its size is checked and before
            any pixel is decoded (e.g. to read ``image.tile``, which decoding empties).

    Raises:
        ImageFileError: (a :class:`CodecError`) missing, not a regular file, not an
            image, malformed, empty, or above ``max_pixels``.
    """
    path = Path(path)
    data = read_regular_file(path, what="an image")
    with warnings.catch_warnings():
        # Pillow warns (e.g. "Truncated File Read") and then fails or not: the outcome
        # is what counts, and a warning would add lines to the one-line CLI error.
        warnings.simplefilter("ignore")
        image = _open_header(path, io.BytesIO(data), max_pixels)
        if before_decode is not None:
            before_decode(image)
        try:
            getattr(image, "n_frames", 1)  # counting frames parses every frame header
            image.load()
        except _MALFORMED as error:
            raise ImageFileError(
                f"{path} is truncated or corrupt ({error})", kind="pixels", detail=str(error)
            ) from None
    return image


def image_file_size(
    path: str | os.PathLike, max_pixels: int = MAX_PIXELS_DEFAULT
) -> tuple[int, int]:
    """(width, height) of the image in ``path`` from its header: the checks of
    :func:`open_image_file` up to the pixel count, reading the header only (to check the
    sizes of a whole folder before using it).

    Raises:
        ImageFileError: as :func:`open_image_file`, except for the image data.
    """
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        file = open_regular_file(path, what="an image")
        with file, _open_header(path, file, max_pixels) as image:
            return image.size


# --- image folders ------------------------------------------------------------------------

IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".webp",
    ".avif",
    ".bmp",
    ".tif",
    ".tiff",
    ".ppm",
    ".gif",
)
METADATA_FILE = "metadata.jsonl"  # the imagefolder format of `datasets`


@dataclass(frozen=True)
class FolderImage:
    """One image file of a folder and its prompt (None when the metadata has none)."""

    path: Path
    relative: str  # POSIX path relative to the folder, e.g. "mj52/1.png"
    prompt: str | None = None


def read_folder(folder: str | os.PathLike) -> list[FolderImage]:
    """Every image under ``folder`` (recursive, sorted by path), with its prompt.

    Images are the files whose extension is one of :data:`IMAGE_EXTENSIONS` (any case).
    Prompts come from ``metadata.jsonl`` files anywhere in the folder, as in the
    ``datasets`` imagefolder format: one JSON object per line with ``file_name``
    (relative to that metadata file's folder) and ``prompt`` (stripped of surrounding
    white space, as the dataset's prompt files are).

    Raises:
        DatasetError: the folder does not exist, holds no image, or has a malformed
            metadata line (the error names the file and line).
    """
    root = Path(folder)
    if not root.is_dir():
        why = "" if root.exists() else " (it does not exist)"
        raise DatasetError(f"{folder} is not a folder{why}: pass a folder of images")
    files = sorted(
        p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
    )
    if not files:
        raise DatasetError(
            f"no images found under {folder} (looked for {', '.join(IMAGE_EXTENSIONS)})"
        )
    prompts = _folder_prompts(root)
    return [
        FolderImage(path, path.relative_to(root).as_posix(), prompts.get(path.resolve()))
        for path in files
    ]


def _folder_prompts(root: Path) -> dict[Path, str]:
    prompts: dict[Path, str] = {}
    for metadata in sorted(root.rglob(METADATA_FILE)):
        for number, line in enumerate(metadata.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                path = (metadata.parent / str(row["file_name"])).resolve()
            except (ValueError, KeyError, TypeError) as error:
                raise DatasetError(
                    f"{metadata}, line {number}: not an imagefolder row with file_name "
                    f"({type(error).__name__}: {error})"
                ) from None
            if isinstance(row.get("prompt"), str):
                prompts[path] = row["prompt"].strip()
    return prompts
