"""Banded transforms: the same values as one pass, and the same files whatever the bands.

float32 results are compared within float32 rounding (:func:`assert_float32_close`),
never bit for bit: a band of another height may get another oneDNN kernel, which sums
in another order, and which kernel depends on the CPU (a plain strided convolution
differs by 3e-8 on some CPUs, none on others). Exact comparisons are kept for what is
exact by construction: integers (symbols, scale indexes, quantized means), 8-bit
pixels and bytes derived from the same float values, and the same computation done
twice.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from pku_aigi import codecs, models
from pku_aigi.codecs import container
from pku_aigi.errors import CorruptStreamError
from pku_aigi.models.architectures.compressai_archs import COMPRESSAI_ARCHITECTURES
from pku_aigi.models.coding import compressai_coding, entropy_coding, rans_guard
from pku_aigi.models.coding.banding import (
    UnsupportedLayerError,
    output_height,
    row_map,
    run_in_bands,
)
from pku_aigi.models.coding.pixels import to_pixels

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ARCHITECTURES = COMPRESSAI_ARCHITECTURES

# Relative to the largest magnitude of the expected tensor. Summed in another order, a
# float32 sum of K products moves by a few 6e-8 (float32's unit roundoff) of its largest
# terms, sqrt(K) of them typically; the layers here sum up to 5x5x192 products, and the
# stacks compound it (measured: 1.2e-7 of the maximum on cheng2020's g_a, 4e-6 on its
# g_s; 1/255, a pixel level, is 4e-3). A band that saw the wrong rows (a seam, a halo
# too short, a misaligned stride) is off by the order of the values themselves.
FLOAT32_TOLERANCE = 1e-5


def assert_float32_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """``actual`` equals ``expected`` up to float32 rounding (see FLOAT32_TOLERANCE)."""
    assert actual.dtype == expected.dtype == torch.float32
    atol = FLOAT32_TOLERANCE * max(float(expected.abs().max()), 1e-30)
    torch.testing.assert_close(actual, expected, rtol=0, atol=atol)


@pytest.fixture(scope="module")
def trained_like():
    """Seeded models of every architecture, weights perturbed so no layer is trivial."""
    built = {}
    for arch in ARCHITECTURES:
        torch.manual_seed(0)
        model = models.create(arch, quality=1).eval()
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "quantiles" not in name:
                    p.add_(torch.randn_like(p) * 0.01)
            convs = [m for m in model.g_a.modules() if isinstance(m, nn.Conv2d)]
            convs[-1].weight.mul_(10)  # latents that do not all round to 0
        model.update(force=True)
        built[arch] = model
    return built


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_row_maps_give_the_real_output_heights(arch, trained_like):
    model = trained_like[arch]
    with torch.inference_mode():
        for name, height in (("g_a", 80), ("g_a", 77), ("g_s", 5), ("h_s", 3)):
            stack = getattr(model, name, None)
            if stack is None:
                continue
            x = torch.zeros(1, _input_channels(stack), height, 16)
            assert output_height(stack, height) == stack(x).shape[-2]


def _input_channels(stack: nn.Module) -> int:
    for module in stack.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            return module.in_channels
    raise AssertionError("no convolution")


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_banded_transforms_equal_one_pass(arch, trained_like):
    """float32 channels-last analysis and synthesis, in bands of a few rows.

    Every output comes from the same input values; whether the results are the same
    bits depends on the kernels oneDNN picks for the band height on this CPU (measured
    on one Xeon: bit-identical for bmshj2018 and mbt2018; 1.2e-7 on g_a and 4e-6 on g_s
    of cheng2020, whose attention and sub-pixel blocks round differently), so they are
    compared within float32 rounding.
    """
    model = trained_like[arch]
    last = torch.channels_last
    x = torch.rand(1, 3, 384, 256, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        y = model.g_a(x.contiguous(memory_format=last))
        for rows in (3, 6):
            assert_float32_close(run_in_bands(model.g_a, x, band_rows=rows, layout=last), y)
        x_hat = model.g_s(y)
        assert_float32_close(run_in_bands(model.g_s, y, band_rows=96, layout=last), x_hat)


@pytest.mark.parametrize("arch", [a for a in ARCHITECTURES if a != "bmshj2018-factorized"])
def test_banded_hyper_synthesis_gives_the_same_entropy_parameters(arch, trained_like):
    """The float64 h_s: BLAS may round the last bit differently for another band height
    (measured: 5e-17), never enough to move a scale index or a quantized mean."""
    model = trained_like[arch]
    tables = entropy_coding.GaussianTables.of(model)
    x = torch.rand(1, 3, 512, 384, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        y = model.g_a(x)
        z_hat = torch.round(model.h_a(y)).double().contiguous()
        h_s = copy.deepcopy(model.h_s).double()
        params = h_s(z_hat)
        for rows in (4, 8):
            banded = run_in_bands(h_s, z_hat, band_rows=rows)
            torch.testing.assert_close(banded, params, rtol=1e-14, atol=1e-14)
            if params.shape[1] > y.shape[1]:  # scales and means
                (scales, means), (ref_scales, ref_means) = banded.chunk(2, 1), params.chunk(2, 1)
                quantized = entropy_coding.quantize_means
                assert torch.equal(quantized(means), quantized(ref_means))
            else:
                scales, ref_scales = banded, params
            assert torch.equal(tables.indexes(scales), tables.indexes(ref_scales))


@pytest.fixture(scope="module")
def crop(pku_examples):
    with Image.open(pku_examples / "mj52" / "2.png") as image:
        return image.convert("RGB").crop((100, 100, 100 + 384, 100 + 320))


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_files_and_images_do_not_depend_on_the_band_sizes(arch, trained_like, crop, monkeypatch):
    model = trained_like[arch]
    codec = codecs.from_model(model, device="cpu")
    pixels = torch.from_numpy(np.asarray(crop).copy()).permute(2, 0, 1)[None]
    data = codec.encode(crop)  # bands of 2^17 pixels: two
    image = np.asarray(codec.decode(data))
    with torch.inference_mode():
        y = compressai_coding.analysis(model, pixels)
    default_band = compressai_coding.BAND_PIXELS
    # Many small bands: the analysis/synthesis in 64-row bands, the hyper-synthesis in
    # bands of 8 (4 in the autoregressive scan) of the 20 latent rows, the rANS coder a
    # few thousand symbols per call.
    monkeypatch.setattr(compressai_coding, "BAND_PIXELS", 64 * 384)
    monkeypatch.setattr(compressai_coding, "PARAM_BAND_POSITIONS", 8 * 24)
    monkeypatch.setattr(compressai_coding, "AR_PARAM_BAND_POSITIONS", 4 * 24)
    monkeypatch.setattr(compressai_coding, "RANS_CHUNK", 5000)
    # The float32 analysis: the latents within float32 rounding (measured on one Xeon:
    # the same bits). Everything after it is integers, or float64 entropy parameters
    # whose scale indexes and quantized means do not move (test above): from the same
    # latents, the same file byte for byte. Latents that differ in the last bit may
    # round differently near a half, so then only the other bands are changed.
    with torch.inference_mode():
        y_bands = compressai_coding.analysis(model, pixels)
    assert_float32_close(y_bands, y)
    if not torch.equal(y_bands, y):
        monkeypatch.setattr(compressai_coding, "BAND_PIXELS", default_band)
    assert codec.encode(crop) == data
    monkeypatch.setattr(compressai_coding, "BAND_PIXELS", 64 * 384)
    # The decoder checks the CRC of every scale index and mean: decoding at all proves
    # the entropy parameters bit-identical to the encoder's. The float32 synthesis in
    # other bands may round the last bits differently (cheng2020's does, see above): a
    # pixel within that of a half level may move by one level, rarely.
    decoded = np.asarray(codec.decode(data)).astype(int)
    assert np.abs(decoded - image).max() <= 1 and np.mean(decoded != image) < 1e-3


def test_large_images_never_reach_a_layer_whole(trained_like, monkeypatch):
    """The memory bound: no layer of g_a, g_s or h_s sees more than a band."""
    model = trained_like["mbt2018-mean"]
    monkeypatch.setattr(compressai_coding, "BAND_PIXELS", 64 * 256)
    seen: dict[str, int] = {}

    def record(name):
        def hook(module, inputs):
            seen[name] = max(seen.get(name, 0), inputs[0].shape[-2])

        return hook

    handles = [
        layer.register_forward_pre_hook(record(f"{stack}.{i}"))
        for stack in ("g_a", "g_s")
        for i, layer in enumerate(getattr(model, stack))
    ]
    x = torch.rand(1, 3, 1024, 256, generator=torch.Generator().manual_seed(2))
    try:
        with torch.inference_mode():
            y = compressai_coding.analysis(model, x)
            x_hat = compressai_coding.synthesis(model, y)
            heights = [
                hi - lo
                for lo, hi, _ in compressai_coding._param_bands(model, y[:, :128, ::4, ::4], 8 * 16)
            ]
    finally:
        for handle in handles:
            handle.remove()
    assert y.shape[-2] == 64 and x_hat.shape[-2] == 1024
    # Bands of 64 image rows, plus the halo each layer needs: never the whole 1024.
    assert max(seen.values()) <= 2 * 64
    assert heights == [8] * 8


def test_unknown_layers_run_in_one_pass():
    class Global(nn.Module):  # every output row depends on every input row
        def forward(self, x):
            return x - x.mean(dim=-2, keepdim=True)

    with pytest.raises(UnsupportedLayerError, match="Global"):
        row_map(nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), Global()))
    stack = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), Global())
    x = torch.rand(1, 1, 40, 8)
    with torch.inference_mode():  # one pass: the very same call, so the same bits
        assert torch.equal(run_in_bands(stack, x, band_rows=4), stack(x))


def test_alignment_follows_the_strides():
    stack = nn.Sequential(
        nn.Conv2d(1, 1, 5, stride=2, padding=2),
        nn.ConvTranspose2d(1, 1, 5, stride=2, padding=2, output_padding=1),
        nn.Conv2d(1, 1, 3, stride=2, padding=1),
        nn.PixelShuffle(1),
    )
    mapping = row_map(stack)
    # Input band starts must be even for both strided convolutions (the transposed one
    # accepts any phase), and the output rows then start at whole rows.
    assert mapping.alignment == 2 and mapping.scale == 0.5
    x = torch.rand(1, 1, 77, 9, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        for rows in (1, 3, 7):  # rows from other input rows: off by ~0.1, not 1e-6
            assert_float32_close(run_in_bands(stack, x, band_rows=rows), stack(x))


@pytest.mark.parametrize("chunk", [1 << 18, 1000])
def test_factorized_chunks_give_compressais_bytes(trained_like, chunk, monkeypatch):
    """The factorized prior's y string, coded a few channels at a time, is byte for byte
    ``entropy_bottleneck.compress``'s, and decodes to ``decompress``'s latent."""
    model = trained_like["bmshj2018-factorized"]
    monkeypatch.setattr(compressai_coding, "RANS_CHUNK", chunk)
    x = torch.rand(1, 3, 256, 320, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        coded = compressai_coding.code_factorized(model, x, seed=7)
        y = compressai_coding.analysis(model, x)
        reference = model.entropy_bottleneck.compress(y)
        assert coded.strings == [reference]
        y_hat = model.entropy_bottleneck.decompress(reference, y.shape[-2:])
        decoded = compressai_coding.decode_factorized(model, coded, seed=7)
        assert torch.equal(decoded, compressai_coding.synthesis(model, y_hat))


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_pixels_in_and_out_are_the_float_images_values(arch, trained_like, crop, monkeypatch):
    """8-bit pixels converted band by band code and decode exactly as the float image
    converted whole: the same strings and CRCs, and round(255 * x_hat)."""
    model = trained_like[arch]
    monkeypatch.setattr(compressai_coding, "BAND_PIXELS", 64 * 384)  # several bands
    pixels_in = torch.from_numpy(np.asarray(crop).copy()).permute(2, 0, 1)[None]
    assert pixels_in.shape[-2:] == (320, 384)  # multiples of 64: no padding to match
    coded = model.code_latents(pixels_in, seed=5)
    reference = model.code_latents(pixels_in.float() / 255.0, seed=5)
    assert (coded.strings, coded.params_crc, coded.symbols_crc) == (
        reference.strings,
        reference.params_crc,
        reference.symbols_crc,
    )
    x_hat = model.decode_latents(coded, seed=5)
    assert x_hat.dtype == torch.float32 and 0 <= float(x_hat.min()) <= float(x_hat.max()) <= 1
    decoded = model.decode_latents(coded, seed=5, pixels=True)
    assert decoded.dtype == torch.uint8 and decoded.shape == x_hat.shape
    assert torch.equal(decoded, (x_hat * 255).round().to(torch.uint8))


def test_non_finite_decoded_images_are_refused():
    for bad in (float("nan"), float("inf")):
        x_hat = torch.full((1, 3, 4, 4), 0.5)
        x_hat[0, 1, 2, 3] = bad
        with pytest.raises(CorruptStreamError, match="not finite"):
            to_pixels(x_hat)
    assert torch.equal(
        to_pixels(torch.tensor([-0.5, 0.5, 0.999, 2.0])),
        torch.tensor([0, 128, 255, 255], dtype=torch.uint8),
    )


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_decoders_read_every_string_with_the_guards_padding(arch, trained_like, crop, monkeypatch):
    """The rANS guard's zero padding reaches every decoder, made only when a decoder
    takes the string (a padded copy can be 20x the string: it must not live on)."""
    codec = codecs.from_model(trained_like[arch], device="cpu")
    data = codec.encode(crop)
    header = container.parse(data)
    handed = []
    padded = entropy_coding.Coded.padded

    def spy(self, group, index=0):
        out = padded(self, group, index)
        assert out[: len(self.strings[group][index])] == header.strings[group][index]
        handed.append((group, len(out) - len(header.strings[group][index])))
        return out

    monkeypatch.setattr(entropy_coding.Coded, "padded", spy)
    codec.decode(data)
    expected = [(group, pads[0]) for group, pads in enumerate(codec._checked_padding(header))]
    assert sorted(handed) == expected and all(pad > rans_guard.SLACK for _, pad in handed)
