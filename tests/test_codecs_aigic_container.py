"""The .aigic container: layout, strict parsing, bounded lengths, payload size."""

from __future__ import annotations

import struct
import zlib

import pytest

from pku_aigi.codecs import container
from pku_aigi.errors import CorruptStreamError


def sample(**changes) -> container.AigicFile:
    fields = dict(
        architecture="mbt2018-mean",
        model_id="org/mbt2018-mean-mse-q3",
        revision="v1.0",
        quality=3,
        width=1408,
        height=640,
        mode="RGB",
        latent_shape=(10, 22),
        strings=[[b"\x01\x02\x03" * 50], [b"zz" * 7]],
        params_crc=0xDEADBEEF,
        symbols_crc=0x01234567,
        device="cuda (NVIDIA H100)",
        prompt="a castle on a hill, 雪",
        fingerprint=bytes.fromhex("0123456789abcdef"),
        coded_width=1408,
        coded_height=640 + 128,
        float_checks=(1.5, 1024.25),
    )
    fields.update(changes)
    return container.AigicFile(**fields)


def refresh_crc(data: bytes) -> bytes:
    return data[:-4] + struct.pack("<I", zlib.crc32(data[:-4]))


def test_round_trip_keeps_every_field():
    original = sample()
    parsed = container.parse(container.pack(original))
    assert parsed == original


def test_layout_matches_the_documented_table():
    data = container.pack(sample(prompt=None))
    assert data[:6] == b"\x89AIGIC"
    assert data[6] == container.FORMAT_VERSION == 2
    assert data[7] == container.FLAG_SYMBOLS_CHECK  # flags: no prompt; the check, always
    assert data[8] == len("mbt2018-mean") and data[9:21] == b"mbt2018-mean"
    at = 21 + 1 + len("v1.0")
    assert struct.unpack("<H", data[at : at + 2])[0] == len("org/mbt2018-mean-mse-q3")
    at += 2 + len("org/mbt2018-mean-mse-q3")
    assert data[at : at + 8] == bytes.fromhex("0123456789abcdef")  # the model fingerprint
    at += 8 + 1 + len("RGB") + 1 + len("cuda (NVIDIA H100)")
    assert struct.unpack("<HIIII", data[at : at + 18]) == (3, 1408, 640, 1408, 768)
    assert data[-13:-4] == struct.pack("<B2f", 2, 1.5, 1024.25)  # the float checks
    assert struct.unpack("<I", data[-4:])[0] == zlib.crc32(data[:-4])
    with_prompt = container.pack(sample())
    assert with_prompt[7] == container.FLAG_PROMPT | container.FLAG_SYMBOLS_CHECK
    assert len(with_prompt) - len(data) == 2 + len("a castle on a hill, 雪".encode())


def test_payload_size_counts_only_the_entropy_coded_strings():
    data = container.pack(sample())
    assert container.payload_size(data) == 150 + 14
    assert container.payload_size(data) < len(data)


def test_optional_fields_absent():
    parsed = container.parse(container.pack(sample(prompt=None)))
    assert parsed.prompt is None and parsed.symbols_crc == 0x01234567


def test_the_desync_check_cannot_be_switched_off():
    with pytest.raises(ValueError, match="symbols_crc must be set"):
        container.pack(sample(symbols_crc=None))
    data = bytearray(container.pack(sample()))
    data[7] &= ~container.FLAG_SYMBOLS_CHECK
    with pytest.raises(CorruptStreamError, match="no desync check"):
        container.parse(refresh_crc(bytes(data)))


def test_every_truncation_is_rejected():
    data = container.pack(sample())
    for n in range(len(data)):
        with pytest.raises(CorruptStreamError):
            container.parse(data[:n])


def test_every_single_bit_flip_is_rejected():
    data = container.pack(sample())
    for i in range(len(data)):
        for bit in (0, 3, 7):
            mutated = bytearray(data)
            mutated[i] ^= 1 << bit
            with pytest.raises(CorruptStreamError):
                container.parse(bytes(mutated))


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "wrong magic"),
        (b"\xff\xd8\xff\xe0 a JPEG file", "wrong magic"),
        (b"\x89AIGIC\x01", "truncated"),
    ],
)
def test_clear_message_for_foreign_or_tiny_input(data, message):
    with pytest.raises(CorruptStreamError, match=message):
        container.parse(data)


def test_crc_mismatch_message():
    data = bytearray(container.pack(sample()))
    data[40] ^= 0xFF
    with pytest.raises(CorruptStreamError, match="CRC32 mismatch"):
        container.parse(bytes(data))


def test_future_version_is_named():
    data = bytearray(container.pack(sample()))
    data[6] = 9
    with pytest.raises(CorruptStreamError, match="version 9 is not supported"):
        container.parse(refresh_crc(bytes(data)))


def test_unknown_flags_and_trailing_bytes_are_rejected():
    data = bytearray(container.pack(sample()))
    data[7] |= 0x80
    with pytest.raises(CorruptStreamError, match="unknown flags"):
        container.parse(refresh_crc(bytes(data)))
    data = container.pack(sample())
    padded = data[:-4] + b"\x00\x00" + data[-4:]
    with pytest.raises(CorruptStreamError, match="unexpected bytes"):
        container.parse(refresh_crc(padded))


def test_huge_lengths_do_not_allocate():
    data = container.pack(sample(strings=[[b"abc"]], prompt=None))
    # Overwrite the length of the only string with 4 GiB - 1, keep the CRC valid.
    at = data.rindex(struct.pack("<I", 3) + b"abc")
    forged = data[:at] + struct.pack("<I", 0xFFFFFFFF) + data[at + 4 :]
    with pytest.raises(CorruptStreamError, match="truncated while reading the entropy-coded"):
        container.parse(refresh_crc(forged))


def test_pixel_limit_of_the_parser():
    data = container.pack(sample())
    with pytest.raises(CorruptStreamError, match="more than the limit"):
        container.parse(data, max_pixels=1000)
    assert container.parse(data, max_pixels=1408 * 640).width == 1408


def test_invalid_fields_are_rejected():
    with pytest.raises(CorruptStreamError, match="image mode"):
        data = container.pack(sample(mode="RGB"))
        container.parse(refresh_crc(data.replace(b"\x03RGB", b"\x03XYZ", 1)))
    with pytest.raises(CorruptStreamError, match="latent shape"):
        container.parse(container.pack(sample(latent_shape=(10, 5000))))
    with pytest.raises(CorruptStreamError, match="string groups"):
        container.parse(container.pack(sample(strings=[])))


def test_reserved_and_unknown_modes_are_refused():
    """Version 1 reserved "RGBA" and never wrote it; no mode outside MODES decodes."""
    data = container.pack(sample(mode="RGB"))
    for mode in (b"\x04RGBA", b"\x04RGBX", b"\x01P"):
        with pytest.raises(CorruptStreamError, match="unknown or reserved"):
            container.parse(refresh_crc(data.replace(b"\x03RGB", mode, 1)))


def test_coded_size_must_hold_the_image_with_bounded_padding():
    for width, coded in ((1408, 1407), (1408, 1408 + container.MAX_PADDING)):
        with pytest.raises(ValueError, match="coded width"):
            container.pack(sample(width=width, coded_width=coded))
        forged = container.pack(sample(width=width, coded_width=width))
        at = forged.index(struct.pack("<IIII", width, 640, width, 768))
        forged = forged[: at + 8] + struct.pack("<I", coded) + forged[at + 12 :]
        with pytest.raises(CorruptStreamError, match=f"coded width {coded} .* must be"):
            container.parse(refresh_crc(forged))
    with pytest.raises(ValueError, match="fingerprint"):
        container.pack(sample(fingerprint=b"\x01"))


def test_float_checks_are_bounded_and_finite():
    with pytest.raises(ValueError, match="at most 8 float checks"):
        container.pack(sample(float_checks=(0.0,) * 9))
    data = container.pack(sample(float_checks=(2.0,)))
    nan = data[:-8] + struct.pack("<f", float("nan")) + data[-4:]
    with pytest.raises(CorruptStreamError, match="not finite"):
        container.parse(refresh_crc(nan))
    many = data[:-9] + struct.pack("<B", 200) + data[-8:]
    with pytest.raises(CorruptStreamError, match="200 float checks"):
        container.parse(refresh_crc(many))


def test_version_1_files_are_still_read(aigic_v1):
    """Genuine files of the previous version: parsed, with the version 2 fields absent."""
    for path in sorted(aigic_v1.glob("*.aigic")):
        header = container.parse(path.read_bytes())
        assert header.version == 1 and header.fingerprint is None
        assert header.coded_size is None and header.float_checks == ()
        assert (header.width, header.height) == (150, 70)


def test_pack_refuses_oversized_text():
    with pytest.raises(ValueError, match="architecture"):
        container.pack(sample(architecture="x" * 300))
    with pytest.raises(ValueError, match="mode"):
        container.pack(sample(mode="CMYK"))
