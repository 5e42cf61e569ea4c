"""The .aigic container: one learned-codec bitstream, self-describing and checked.

A .aigic file holds everything a decoder needs besides the model weights: which model
made it (architecture, a portable reference, revision, quality, and the fingerprint of
its weights), the original image size and mode, the coded (padded) size, the optional
prompt (text-conditioned codecs such as CATC need it at the decoder, and the
PKU-AIGI-500K paper counts it in the bitrate), the latent shape, the entropy-coded
strings (CompressAI's ``{"strings", "shape"}``), the desync checks and a CRC32 of the
whole file. All integers are little-endian; the byte layout is documented in the README
(section "The .aigic file format"). Version 2 is written; version 1 (no fingerprint, no
coded size, no float checks) is still read.

:func:`parse` is strict: every malformed input raises :class:`CorruptStreamError`, and
every length is bounded (by a constant or by the bytes that are actually there), so a
garbage file can neither allocate large amounts of memory nor hang the parser.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

from ..errors import CorruptStreamError, ImageTooLargeError, PkuAigiError

MAGIC = b"\x89AIGIC"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
FILE_EXTENSION = ".aigic"

FLAG_PROMPT = 0x01  # a prompt section follows
FLAG_SYMBOLS_CHECK = 0x02  # the desync check: required, a file cannot switch it off
_KNOWN_FLAGS = FLAG_PROMPT | FLAG_SYMBOLS_CHECK

MODES = ("RGB", "L", "I;16")  # what decoding returns; any other mode is refused
FINGERPRINT_BYTES = 8
MAX_PADDING = 1024  # coded size - image size, per side (pad_multiple at most 1024)
MAX_FLOAT_CHECKS = 8
MAX_SHORT_TEXT = 255  # architecture, revision, mode, device
MAX_MODEL_ID = 4096  # a Hub id or a local path
MAX_PROMPT_BYTES = 65_535
MAX_LATENT_DIMS = 4
MAX_STRING_GROUPS = 16
MAX_STRINGS_PER_GROUP = 64
MAX_SIDE = 1 << 20


@dataclass
class AigicFile:
    """The decoded fields of one .aigic file (what :func:`pack` writes)."""

    architecture: str
    model_id: str
    revision: str
    quality: int
    width: int
    height: int
    mode: str
    latent_shape: tuple[int, ...]
    strings: list[list[bytes]]
    params_crc: int = 0  # CRC32 of the entropy parameters (scale indexes, quantized means)
    symbols_crc: int | None = None  # CRC32 of the coded symbols (required by pack)
    device: str = "cpu"  # where it was encoded, for the desync message
    prompt: str | None = None
    # Version 2: the 8-byte fingerprint of the model's weights and coding tables, the
    # coded (padded) size, and float checks with a tolerance (a slice model's means and
    # latent residual prediction). None / () in version 1 files.
    fingerprint: bytes | None = None
    coded_width: int | None = None
    coded_height: int | None = None
    float_checks: tuple[float, ...] = ()
    version: int = FORMAT_VERSION

    @property
    def coded_size(self) -> tuple[int, int] | None:
        """(width, height) the model coded, padding included; None in version 1 files."""
        if self.coded_width is None or self.coded_height is None:
            return None
        return self.coded_width, self.coded_height


def _short(text: str, what: str, limit: int = MAX_SHORT_TEXT) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > limit:
        raise ValueError(f".aigic {what} is longer than {limit} bytes: {text[:80]!r}...")
    return raw


def pack(f: AigicFile) -> bytes:
    """Serialise ``f`` into .aigic bytes (see the README for the layout)."""
    if f.mode not in MODES:
        raise ValueError(f".aigic mode must be one of {MODES}, not {f.mode!r}")
    if f.symbols_crc is None:
        raise ValueError(".aigic files carry the desync check: symbols_crc must be set")
    if f.fingerprint is None or len(f.fingerprint) != FINGERPRINT_BYTES:
        raise ValueError(f".aigic files carry the model's {FINGERPRINT_BYTES}-byte fingerprint")
    if f.coded_size is None:
        raise ValueError(".aigic files carry the coded (padded) size")
    _check_coded_size(f.width, f.height, f.coded_width, f.coded_height, ValueError)
    if len(f.float_checks) > MAX_FLOAT_CHECKS:
        raise ValueError(f".aigic files hold at most {MAX_FLOAT_CHECKS} float checks")
    flags = FLAG_SYMBOLS_CHECK | (FLAG_PROMPT if f.prompt is not None else 0)
    out = bytearray(MAGIC)
    out += struct.pack("<BB", FORMAT_VERSION, flags)
    for text, what in ((f.architecture, "architecture"), (f.revision, "revision")):
        raw = _short(text, what)
        out += struct.pack("<B", len(raw)) + raw
    raw = _short(f.model_id, "model id", MAX_MODEL_ID)
    out += struct.pack("<H", len(raw)) + raw + bytes(f.fingerprint)
    raw = _short(f.mode, "mode")
    out += struct.pack("<B", len(raw)) + raw
    raw = _short(f.device, "device")
    out += struct.pack("<B", len(raw)) + raw
    out += struct.pack("<HIIII", f.quality, f.width, f.height, f.coded_width, f.coded_height)
    if f.prompt is not None:
        raw = _short(f.prompt, "prompt", MAX_PROMPT_BYTES)
        out += struct.pack("<H", len(raw)) + raw
    shape = tuple(int(s) for s in f.latent_shape)
    out += struct.pack("<B", len(shape)) + struct.pack(f"<{len(shape)}I", *shape)
    out += struct.pack("<B", len(f.strings))
    for group in f.strings:
        out += struct.pack("<B", len(group))
        for string in group:
            out += struct.pack("<I", len(string)) + bytes(string)
    out += struct.pack("<II", f.params_crc & 0xFFFFFFFF, f.symbols_crc & 0xFFFFFFFF)
    checks = [float(value) for value in f.float_checks]
    out += struct.pack(f"<B{len(checks)}f", len(checks), *checks)
    out += struct.pack("<I", zlib.crc32(out))
    return bytes(out)


class _Reader:
    """Bounds-checked reading; any overrun is a CorruptStreamError."""

    def __init__(self, data: bytes, end: int):
        self.data, self.pos, self.end = data, 0, end

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise CorruptStreamError(
                f"not a valid .aigic file: truncated while reading the {what} "
                f"(needs {n} bytes at offset {self.pos}, {self.end - self.pos} left)"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str, what: str):
        values = struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))
        return values if len(values) > 1 else values[0]

    def text(self, length_fmt: str, what: str, limit: int) -> str:
        n = self.unpack(length_fmt, f"length of the {what}")
        if n > limit:
            raise CorruptStreamError(f"not a valid .aigic file: {what} length {n} > {limit}")
        try:
            return self.take(n, what).decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptStreamError(f"not a valid .aigic file: {what} is not UTF-8") from None


def is_aigic(data: bytes) -> bool:
    """True if ``data`` starts with the .aigic magic bytes."""
    return bytes(data[: len(MAGIC)]) == MAGIC


def peek(data: bytes) -> AigicFile | None:
    """The parsed file, or None when ``data`` is not a valid .aigic file (no error)."""
    if not is_aigic(data):
        return None
    try:
        return parse(data)
    except PkuAigiError:
        return None


def parse(data: bytes, *, max_pixels: int | None = None) -> AigicFile:
    """Parse and verify .aigic bytes; raise CorruptStreamError on any defect.

    Args:
        data: the whole file.
        max_pixels: reject headers announcing more pixels than this (None: no limit
            beyond the format's own bounds).
    """
    data = bytes(data)
    if len(data) < len(MAGIC) or not is_aigic(data):
        raise CorruptStreamError(
            "not an .aigic file (wrong magic bytes): it was not written by a learned codec "
            "of pku-aigi; for a JPEG/WebP/... file use `pku-aigi decompress --codec NAME`"
        )
    if len(data) < len(MAGIC) + 2 + 4:
        raise CorruptStreamError(f"not a valid .aigic file: truncated ({len(data)} bytes)")
    (stored_crc,) = struct.unpack("<I", data[-4:])
    if zlib.crc32(data[:-4]) != stored_crc:
        raise CorruptStreamError(
            "the .aigic file is corrupted or truncated (CRC32 mismatch): it cannot be decoded"
        )
    version = data[len(MAGIC)]
    if version not in READABLE_VERSIONS:
        raise CorruptStreamError(
            f".aigic format version {version} is not supported by this pku-aigi "
            f"(it reads versions {', '.join(map(str, READABLE_VERSIONS))}); upgrade "
            "pku-aigi or re-encode the image"
        )
    r = _Reader(data, len(data) - 4)
    r.pos = len(MAGIC) + 1
    flags = r.unpack("B", "flags")
    if flags & ~_KNOWN_FLAGS:
        raise CorruptStreamError(f"not a valid .aigic file: unknown flags 0x{flags:02x}")
    if not flags & FLAG_SYMBOLS_CHECK:
        # Without it a changed size or flipped bits would decode to a wrong image.
        raise CorruptStreamError(
            "this .aigic file has no desync check (flag cleared: tampered, or written by "
            "an older pku-aigi): it is not decoded; re-encode the image"
        )
    architecture = r.text("B", "architecture", MAX_SHORT_TEXT)
    revision = r.text("B", "revision", MAX_SHORT_TEXT)
    model_id = r.text("H", "model id", MAX_MODEL_ID)
    fingerprint = r.take(FINGERPRINT_BYTES, "model fingerprint") if version >= 2 else None
    mode = r.text("B", "mode", MAX_SHORT_TEXT)
    if mode not in MODES:
        raise CorruptStreamError(
            f"not a valid .aigic file: image mode {mode!r} is unknown or reserved "
            f"(files hold {', '.join(MODES)})"
        )
    device = r.text("B", "device", MAX_SHORT_TEXT)
    quality, width, height = r.unpack("HII", "quality and image size")
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise CorruptStreamError(f"not a valid .aigic file: image size {width}x{height}")
    coded_width = coded_height = None
    if version >= 2:
        coded_width, coded_height = r.unpack("II", "coded size")
        _check_coded_size(width, height, coded_width, coded_height, CorruptStreamError)
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(
            f"the .aigic file announces a {width}x{height} image ({width * height} pixels), "
            f"more than the limit of {max_pixels} pixels; raise max_pixels if it is genuine"
        )
    prompt = r.text("H", "prompt", MAX_PROMPT_BYTES) if flags & FLAG_PROMPT else None
    ndim = r.unpack("B", "latent rank")
    if not 1 <= ndim <= MAX_LATENT_DIMS:
        raise CorruptStreamError(f"not a valid .aigic file: latent rank {ndim}")
    shape = r.unpack(f"{ndim}I", "latent shape")
    shape = (shape,) if ndim == 1 else tuple(shape)
    if any(not 1 <= s <= max(width, height, coded_width or 0, coded_height or 0) for s in shape):
        raise CorruptStreamError(
            f"not a valid .aigic file: latent shape {shape} does not fit a {width}x{height} image"
        )
    n_groups = r.unpack("B", "number of string groups")
    if not 1 <= n_groups <= MAX_STRING_GROUPS:
        raise CorruptStreamError(f"not a valid .aigic file: {n_groups} string groups")
    strings = []
    for g in range(n_groups):
        count = r.unpack("B", f"size of string group {g}")
        if not 1 <= count <= MAX_STRINGS_PER_GROUP:
            raise CorruptStreamError(f"not a valid .aigic file: string group {g} has {count}")
        group = []
        for i in range(count):
            n = r.unpack("I", f"length of string {g}.{i}")
            group.append(r.take(n, f"entropy-coded string {g}.{i}"))
        strings.append(group)
    params_crc, symbols_crc = r.unpack("II", "desync check")
    float_checks: tuple[float, ...] = ()
    if version >= 2:
        count = r.unpack("B", "number of float checks")
        if count > MAX_FLOAT_CHECKS:
            raise CorruptStreamError(f"not a valid .aigic file: {count} float checks")
        float_checks = struct.unpack(f"<{count}f", r.take(4 * count, "float checks"))
        if not all(math.isfinite(value) for value in float_checks):
            raise CorruptStreamError("not a valid .aigic file: a float check is not finite")
    if r.pos != r.end:
        raise CorruptStreamError(
            f"not a valid .aigic file: {r.end - r.pos} unexpected bytes before the CRC32"
        )
    return AigicFile(
        architecture=architecture,
        model_id=model_id,
        revision=revision,
        quality=quality,
        width=width,
        height=height,
        mode=mode,
        latent_shape=shape,
        strings=strings,
        params_crc=params_crc,
        symbols_crc=symbols_crc,
        device=device,
        prompt=prompt,
        fingerprint=fingerprint,
        coded_width=coded_width,
        coded_height=coded_height,
        float_checks=tuple(float_checks),
        version=version,
    )


def _check_coded_size(width, height, coded_width, coded_height, error) -> None:
    """``error`` unless the coded size holds the image with at most MAX_PADDING more."""
    for side, coded, what in ((width, coded_width, "width"), (height, coded_height, "height")):
        if not side <= coded < side + MAX_PADDING:
            raise error(
                f"not a valid .aigic file: coded {what} {coded} for an image {what} of "
                f"{side} (it must be {side} .. {side + MAX_PADDING - 1})"
            )


def payload_size(data: bytes) -> int:
    """Bytes of entropy-coded strings in ``data`` (no header, no prompt, no checks)."""
    return sum(len(s) for group in parse(data).strings for s in group)
