"""The few Annex-B NAL units the HEVC and VVC codecs add to the encoder's bitstream.

Both codecs store a plain Annex-B elementary stream (ITU-T H.265 / H.266 Annex B) that
ffmpeg or any conformant decoder reads alone, with two standard NAL units appended:

- a suffix SEI ``user_data_unregistered`` message (payload type 5) carrying the original
  width and height, only when the picture was padded (VVC 4:2:0 needs even sides; both
  encoders need at least 16 pixels per side). A decoder that ignores it shows the padded
  picture; ours crops it away.
- an end-of-bitstream NAL unit. Annex-B has no length field, so a stream that does not
  end with it is truncated: the check costs 5 bytes per image.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from .base import Signature, signature

START_CODE = b"\x00\x00\x01"
SIZE_SEI_UUID = bytes.fromhex("8a1c5e7f3b2d4c69a1f0e7d6c5b4a392")  # "pku-aigi original size"
USER_DATA_UNREGISTERED = 5


@dataclass(frozen=True)
class NalSyntax:
    """NAL unit header bytes of one standard for the units we write."""

    suffix_sei_header: bytes
    end_of_bitstream: bytes  # start code + header: the whole NAL unit


# H.265 7.3.1.2: forbidden(1) type(6) layer(6) tid+1(3); SUFFIX_SEI_NUT 40, EOB_NUT 37.
HEVC = NalSyntax(bytes([40 << 1, 1]), START_CODE + bytes([37 << 1, 1]))
# H.266 7.3.1.2: forbidden(1) reserved(1) layer(6) type(5) tid+1(3); SUFFIX_SEI 24, EOB 21.
VVC = NalSyntax(bytes([0, (24 << 3) | 1]), START_CODE + bytes([0, (21 << 3) | 1]))


def signatures(syntax: NalSyntax) -> tuple[Signature, ...]:
    """The streams written here: a start code first, the standard's end of bitstream last.

    The end-of-bitstream NAL unit header differs between H.265 and H.266, so a stream
    saved under any extension tells which standard it is.
    """
    end = (-len(syntax.end_of_bitstream), syntax.end_of_bitstream)
    return (signature((0, START_CODE), end), signature((0, b"\x00" + START_CODE), end))


def escape(rbsp: bytes) -> bytes:
    """Insert emulation-prevention bytes (0x03 after 00 00 before 00..03)."""
    return re.sub(rb"\x00\x00(?=[\x00-\x03])", b"\x00\x00\x03", rbsp)


def unescape(payload: bytes) -> bytes:
    return payload.replace(b"\x00\x00\x03", b"\x00\x00")


def size_sei(syntax: NalSyntax, width: int, height: int) -> bytes:
    """A suffix SEI NAL unit holding the original picture size."""
    body = SIZE_SEI_UUID + struct.pack(">II", width, height)
    rbsp = bytes([USER_DATA_UNREGISTERED, len(body)]) + body + b"\x80"  # + trailing bits
    return START_CODE + syntax.suffix_sei_header + escape(rbsp)


def nal_units(stream: bytes) -> list[bytes]:
    """The NAL units (header + escaped payload) of an Annex-B stream."""
    units = stream.split(START_CODE)
    return [unit.rstrip(b"\x00") for unit in units[1:] if unit]


def finish(stream: bytes, syntax: NalSyntax, size: tuple[int, int] | None) -> bytes:
    """Append the size SEI (if ``size``: the picture was padded) and end of bitstream."""
    extra = size_sei(syntax, *size) if size else b""
    return stream + extra + syntax.end_of_bitstream


def check(stream: bytes, syntax: NalSyntax) -> tuple[int, int] | None:
    """Check the stream is complete; return the original size if a size SEI is present.

    Raises:
        ValueError: the stream is not Annex-B, lacks its end-of-bitstream unit
            (truncated) or has a malformed size SEI.
    """
    if not stream.startswith((START_CODE, b"\x00" + START_CODE)):
        raise ValueError("it does not start with an Annex-B start code")
    if not stream.endswith(syntax.end_of_bitstream):
        raise ValueError("it does not end with the end-of-bitstream NAL unit, so it is truncated")
    marker = syntax.suffix_sei_header + bytes([USER_DATA_UNREGISTERED])
    for unit in nal_units(stream):
        if unit.startswith(marker) and SIZE_SEI_UUID in unit[:24]:
            rbsp = unescape(unit[len(syntax.suffix_sei_header) :])
            if len(rbsp) != 2 + 24 + 1 or rbsp[1] != 24 or rbsp[2:18] != SIZE_SEI_UUID:
                raise ValueError("its picture-size SEI message is malformed")
            width, height = struct.unpack(">II", rbsp[18:26])
            return width, height
    return None
