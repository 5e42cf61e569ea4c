"""Seeded fuzzing of the .aigic parser and decoder (issue: reliability).

Thousands of mutated files (bit flips, truncations, insertions, splices, random bytes;
half of them with the CRC32 recomputed so that they reach the field parser and the
decoder) must each give a CorruptStreamError or the exact original image (when only
metadata changed, or bits the rANS decoder never reads): never another exception, a
hang or a wrong image.
"""

from __future__ import annotations

import random
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from pku_aigi import models
from pku_aigi.codecs import container, from_model
from pku_aigi.errors import CorruptStreamError

PARSER_CASES = 1500
DECODER_CASES = {"mbt2018-mean": 120, "mbt2018": 40}


def refresh_crc(data: bytes) -> bytes:
    if len(data) < 4:
        return data
    return data[:-4] + struct.pack("<I", zlib.crc32(data[:-4]))


def mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    kind = rng.randrange(6)
    if kind == 0:  # flip 1-3 bits
        for _ in range(rng.randint(1, 3)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    elif kind == 1:  # truncate
        out = out[: rng.randrange(len(out))]
    elif kind == 2:  # insert random bytes
        at = rng.randrange(len(out))
        out[at:at] = rng.randbytes(rng.randint(1, 8))
    elif kind == 3:  # overwrite a run with random bytes
        at = rng.randrange(len(out))
        out[at : at + 4] = rng.randbytes(4)
    elif kind == 4:  # a plausible but wrong 32-bit length or size somewhere
        at = rng.randrange(max(1, len(out) - 4))
        out[at : at + 4] = struct.pack("<I", rng.choice([0, 1, 255, 65535, 2**31, 2**32 - 1]))
    else:  # delete a run
        at = rng.randrange(len(out))
        del out[at : at + rng.randint(1, 16)]
    return bytes(out)


@pytest.fixture(scope="module")
def crop(pku_examples) -> Image.Image:
    path = sorted((pku_examples / "mj52").iterdir())[0]
    return Image.open(path).convert("RGB").crop((500, 500, 590, 560))


@pytest.fixture(scope="module")
def coded(crop):
    """{arch: (codec, data, reference image)} for two tiny models."""
    out = {}
    for arch in DECODER_CASES:
        torch.manual_seed(0)
        model = models.create(arch, quality=1, N=16, M=16)
        codec = from_model(model, device="cpu", model_id=f"tiny/{arch}", revision="r1")
        data = codec.encode(crop)
        out[arch] = (codec, data, np.asarray(codec.decode(data)))
    return out


def test_parser_survives_mutations(coded):
    rng = random.Random(1234)
    _, data, _ = coded["mbt2018-mean"]
    rejected = accepted = 0
    for i in range(PARSER_CASES):
        mutated = mutate(data, rng)
        if i % 2:
            mutated = refresh_crc(mutated)
        try:
            container.parse(mutated)
            accepted += 1
        except CorruptStreamError:
            rejected += 1
    assert rejected + accepted == PARSER_CASES
    assert rejected > PARSER_CASES * 0.5  # most mutations are caught by the parser alone


def test_parser_survives_random_bytes():
    rng = random.Random(99)
    for n in range(300):
        junk = rng.randbytes(rng.randrange(0, 200))
        if n % 2:  # valid magic and version, garbage after it, valid CRC
            junk = refresh_crc(container.MAGIC + bytes([container.FORMAT_VERSION]) + junk + b"0000")
        with pytest.raises(CorruptStreamError):
            container.parse(junk)


@pytest.mark.parametrize("arch", sorted(DECODER_CASES))
def test_decoder_never_returns_a_wrong_image(arch, coded):
    codec, data, reference = coded[arch]
    rng = random.Random(zlib.crc32(arch.encode()))
    decoded_ok = rejected = 0
    for _ in range(DECODER_CASES[arch]):
        # Mutate until the CRC-fixed file gets past the parser, so the decoder runs.
        for _attempt in range(200):
            mutated = refresh_crc(mutate(data, rng))
            try:
                container.parse(mutated)
                break
            except CorruptStreamError:
                continue
        try:
            image = codec.decode(mutated)
        except CorruptStreamError:
            rejected += 1
            continue
        # Accepted only if it is the original image: metadata changed (model id,
        # revision, device), or rANS slack bits in a string's final state.
        np.testing.assert_array_equal(np.asarray(image), reference)
        decoded_ok += 1
    assert rejected > 0 and rejected + decoded_ok == DECODER_CASES[arch]
