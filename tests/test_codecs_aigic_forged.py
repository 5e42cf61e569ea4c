""".aigic files forged with a valid CRC32: no crash, no wrong image, no
unbounded work. Cases that used to crash the interpreter run in a child process."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap

import pytest
import torch
from compressai.ans import BufferedRansEncoder, RansDecoder
from PIL import Image

from pku_aigi import models
from pku_aigi.codecs import container, from_model
from pku_aigi.codecs.learned import _binding
from pku_aigi.errors import CorruptStreamError
from pku_aigi.models.coding import rans_guard
from pku_aigi.models.coding.entropy_coding import Coded, tables_crc

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def crop(pku_examples) -> Image.Image:
    path = sorted((pku_examples / "mj52").iterdir())[0]
    return Image.open(path).convert("RGB").crop((500, 500, 590, 560))


def tiny_codec(arch: str, **hparams):
    torch.manual_seed(0)
    model = models.create(arch, quality=1, **(hparams or {"N": 16, "M": 16}))
    return from_model(model, device="cpu")


def forged(data: bytes, **fields) -> bytes:
    """``data`` with header fields replaced (the CRC32 recomputed by pack)."""
    return container.pack(dataclasses.replace(container.parse(data), **fields))


def enlarged_fields(side: int, stride: int) -> dict:
    """Header fields of a ``side`` x ``side`` image (coded at a multiple of 64)."""
    coded = -(-side // 64) * 64
    return dict(
        width=side,
        height=side,
        coded_width=coded,
        coded_height=coded,
        latent_shape=(coded // stride,) * 2,
    )


def enlarged(data: bytes, side: int, stride: int) -> bytes:
    return forged(data, **enlarged_fields(side, stride))


def test_enlarged_factorized_file_with_forged_checks_is_refused_without_a_crash(tmp_path, crop):
    """An 8000x8000 header on a 90x60 factorized file, its latent shape and params_crc
    forged to match: CompressAI's rANS decoder used to read past the string (SIGSEGV)."""
    codec = tiny_codec("bmshj2018-factorized")
    header = container.parse(codec.encode(crop))
    seed = _binding(dataclasses.replace(header, **enlarged_fields(8000, 16)))
    params_crc = tables_crc(codec.model.entropy_bottleneck, seed)
    bad = enlarged(container.pack(header), 8000, 16)
    bad = forged(bad, params_crc=params_crc)
    path = tmp_path / "forged.aigic"
    path.write_bytes(bad)
    script = textwrap.dedent(
        f"""
        import torch
        from pku_aigi import models
        from pku_aigi.codecs import from_model
        from pku_aigi.errors import CorruptStreamError
        torch.set_num_threads(1)
        torch.manual_seed(0)
        codec = from_model(models.create("bmshj2018-factorized", quality=1, N=16, M=16),
                           device="cpu")
        try:
            codec.decode(open({str(path)!r}, "rb").read())
        except CorruptStreamError as error:
            print("REFUSED", error)
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "REFUSED decoder desync: the decoded symbols" in run.stdout


def test_rans_decoder_never_reads_past_a_padded_string():
    """Ten coded symbols, four million asked for: the padding holds every read."""
    cdf = [[0, 1, 65535, 65536]]
    encoder = BufferedRansEncoder()
    encoder.encode_with_indexes([0] * 10, [0] * 10, cdf, [4], [0])
    string = encoder.flush()
    count = 4_000_000
    coded = Coded([[string]], (1, 1), 0, None, padding=[[rans_guard.pad_length(string, count)]])
    padded = coded.padded(0)
    assert padded.startswith(string) and len(padded) >= 4 * count
    values = RansDecoder().decode_with_indexes(padded, [0] * count, cdf, [4], [0])
    assert values[:10] == [0] * 10 and len(values) == count


@pytest.mark.parametrize(
    "arch, stride",
    [("bmshj2018-factorized", 16), ("bmshj2018-hyperprior", 64), ("mbt2018-mean", 64)],
)
def test_latent_shape_must_be_the_one_the_image_size_implies(arch, stride, crop):
    codec = tiny_codec(arch)
    data = codec.encode(crop)
    header = container.parse(data)
    assert header.latent_shape == (-(-60 // 64) * 64 // stride, -(-90 // 64) * 64 // stride)
    h, w = header.latent_shape
    for shape in [(h, w + 1), (h + 1, w), (1, 1) if (h, w) != (1, 1) else (2, 2)]:
        with pytest.raises(CorruptStreamError, match="does not match the coded 128x64 image"):
            codec.decode(forged(data, latent_shape=shape))


def test_files_without_the_desync_check_are_refused(crop):
    """Clearing FLAG_SYMBOLS_CHECK used to switch the check off: a changed width then
    decoded to a wrong image."""
    codec = tiny_codec("mbt2018-mean")
    data = bytearray(codec.encode(crop))
    assert data[7] & container.FLAG_SYMBOLS_CHECK
    data[7] &= ~container.FLAG_SYMBOLS_CHECK
    data[-4:] = container.struct.pack("<I", container.zlib.crc32(bytes(data[:-4])))
    with pytest.raises(CorruptStreamError, match="no desync check"):
        codec.decode(bytes(data))
    with pytest.raises(ValueError, match="symbols_crc must be set"):
        container.pack(dataclasses.replace(container.parse(codec.encode(crop)), symbols_crc=None))


def test_factorized_files_verify_params_crc(crop):
    codec = tiny_codec("bmshj2018-factorized")
    data = codec.encode(crop)
    header = container.parse(data)
    with pytest.raises(CorruptStreamError, match="decoder desync: the entropy parameters"):
        codec.decode(forged(data, params_crc=header.params_crc ^ 1))


def tiny_tcm_codec():
    """A seeded tiny tcm-small whose latents are large enough to need real y strings."""
    torch.manual_seed(0)
    tiny = dict(N=16, M=40, z_channels=16, head_dims=[8] * 6, hyper_head_dim=8)
    model = models.create("tcm-small", atten_dim=32, atten_head_dim=8, **tiny)
    with torch.no_grad():
        model.g_a[-1].weight.mul_(10)
    return from_model(model, device="cpu")


def test_transformer_codecs_carry_the_symbols_check(crop):
    """TCM codes with its own slice coder; its files carry symbols_crc too, and a
    flipped bit in the y string is a desync, never an image."""
    codec = tiny_tcm_codec()
    data = codec.encode(crop)
    header = container.parse(data)
    reference = codec.decode(data)
    assert reference.size == crop.size
    y = bytearray(header.strings[0][0])
    y[len(y) // 2] ^= 0x10
    with pytest.raises(CorruptStreamError, match="decoder desync"):
        codec.decode(forged(data, strings=[[bytes(y)], header.strings[1]]))


def test_autoregressive_work_is_bounded_by_what_the_file_holds(crop):
    """A ~150-byte mbt2018 file announcing 8000x8000 used to keep the context model busy
    for minutes; its y string cannot hold 12 million symbols."""
    codec = tiny_codec("mbt2018", N=16, M=48)
    data = enlarged(codec.encode(crop), 8000, 64)
    assert len(data) < 200
    with pytest.raises(CorruptStreamError, match="y string .* is too short to hold"):
        codec.decode(data)


def test_sequential_pixel_limit(crop):
    codec = tiny_codec("mbt2018", N=16, M=16)
    data = codec.encode(crop)
    codec.max_sequential_pixels = 90 * 60 - 1
    with pytest.raises(CorruptStreamError, match="decodes autoregressively"):
        codec.decode(data)
    codec.max_sequential_pixels = 90 * 60
    assert codec.decode(data).size == (90, 60)


def test_genuine_flat_images_pass_the_length_bound():
    """The cheapest genuine file: a flat image, whose y string is nearly empty."""
    codec = tiny_codec("mbt2018-mean", N=16, M=192)
    image = Image.new("RGB", (512, 512), (128, 128, 128))
    assert codec.decode(codec.encode(image)).size == (512, 512)


def test_autoregressive_decoding_stops_where_the_string_ends(crop):
    """An enlarged size whose y string passes the length bound: the context model used to
    decode every position (minutes for a few megapixels) before the desync check; it now
    stops at the first position past the information the string holds."""
    codec = tiny_codec("mbt2018", N=16, M=16)
    data = enlarged(codec.encode(crop), 1000, 64)
    with pytest.raises(CorruptStreamError, match=r"y string \(\d+ bytes\) ends before .* row 0 of"):
        codec.decode(data)


def test_slice_decoding_stops_where_the_string_ends(crop):
    """TCM/CATC: a forged size stops after the first slice that the y string cannot
    hold, before the other slices' attention modules and the synthesis run."""
    codec = tiny_tcm_codec()
    data = enlarged(codec.encode(crop), 1024, 64)
    with pytest.raises(CorruptStreamError, match=r"ends before the latent does \(slice 0 of 5"):
        codec.decode(data)
