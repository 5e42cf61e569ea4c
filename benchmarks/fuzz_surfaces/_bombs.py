"""Deflate streams of a gigabyte of zeros in a fraction of a second (for the surfaces).

After ``Z_FULL_FLUSH`` a compressor starts afresh on a byte boundary (RFC 1951, 3.2.3),
so the compressed form of one block of zeros can be repeated: the stream is the prefix's
blocks, the zero block ``count // BLOCK`` times, and an empty final block.
"""

from __future__ import annotations

import zlib

BLOCK = 1 << 24
_FINAL_EMPTY_BLOCK = b"\x03\x00"  # a final fixed-Huffman block holding only end-of-block


def _flushed(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush(zlib.Z_FULL_FLUSH)


def deflated_zeros(count: int, prefix: bytes = b"") -> tuple[bytes, int]:
    """(raw deflate stream, CRC-32) of ``prefix`` + ``count`` zero bytes (a multiple of
    :data:`BLOCK` plus any remainder)."""
    blocks, rest = divmod(count, BLOCK)
    zero_block = _flushed(bytes(BLOCK))
    stream = _flushed(prefix) + zero_block * blocks + _flushed(bytes(rest)) + _FINAL_EMPTY_BLOCK
    crc = zlib.crc32(prefix)
    zeros = bytes(BLOCK)
    for _ in range(blocks):
        crc = zlib.crc32(zeros, crc)
    return stream, zlib.crc32(bytes(rest), crc)


def zlib_zeros(count: int) -> bytes:
    """A zlib stream (RFC 1950: header, deflate, Adler-32) of ``count`` zero bytes."""
    stream, _ = deflated_zeros(count)
    adler = (count % 65521) << 16 | 1  # a = 1 + sum of bytes = 1; b = count * a
    return b"\x78\xda" + stream + adler.to_bytes(4, "big")
