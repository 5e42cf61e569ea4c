"""Channel-wise autoregressive coding of the latent in slices: the base of TCM and CATC.

Minnen & Singh, "Channel-wise autoregressive entropy models for learned image
compression", ICIP 2020: the latent ``y`` is split into channel slices coded one after
another; each slice's Gaussian mean and scale are predicted from the hyperprior and the
slices already decoded, and a latent residual prediction (LRP) refines each decoded slice.

:class:`ChannelSliceCodec` holds what TCM and CATC share: the hyperprior codec around
the slices (``forward``, ``compress``, ``decompress``), the input checks, the
deterministic entropy coding with the scale-index desync check, and the registration
with a six-rate lambda ladder. A subclass provides the transforms and the entropy model:

- the transforms as modules ``g_a``, ``g_s``, ``h_a``, ``h_mean_s`` and ``h_scale_s``
  (called with the text when ``prepare_text`` gives one);
- ``init_state(means, scales, text)``: state before the first slice;
- ``slice_params(i, state, text) -> (mu, scale, context)``;
- ``residual_prediction(i, context, y_hat_slice)``: the LRP before its tanh;
- ``advance(i, state, y_hat_slice) -> state``;
- ``prepare_text(text, batch)``: the text argument checked (None for unconditioned).

The decoder repeats the encoder's computation on the same dequantized values
(``round(y - mu) + mu``), so the reconstruction of ``decompress`` equals the one of an
eval-mode ``forward``.
"""

from __future__ import annotations

import torch
from compressai.ans import BufferedRansEncoder, RansDecoder
from compressai.layers import conv3x3
from torch import Tensor, nn

from ...errors import CorruptStreamError, ModelError
from ..base import LearnedCodecModel
from ..coding.entropy_coding import (
    Coded,
    FloatChecks,
    GaussianTables,
    check_crc,
    crc,
    symbols_in_range,
)
from ..coding.pixels import from_pixels

LRP_SCALE = 0.5  # the refinement is LRP_SCALE * tanh(LRP) (Minnen & Singh 2020)
FLOAT_CHECKS = ("slice means", "latent residual prediction")


def _slice_checks(checks: FloatChecks | None, mu: Tensor, y_hat: Tensor, refined: Tensor):
    """Add a decoded slice's means and refinement (refined - y_hat) to ``checks``."""
    if checks is not None:
        checks.add(FLOAT_CHECKS[0], mu)
        checks.add(FLOAT_CHECKS[1], refined - y_hat)


def slice_head(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 convs in -> 224 -> 128 -> out with GELU: a slice's mean, scale (or TCM's LRP)."""
    return nn.Sequential(
        conv3x3(in_channels, 224),
        nn.GELU(),
        conv3x3(224, 128),
        nn.GELU(),
        conv3x3(128, out_channels),
    )


def ste_round(x: Tensor) -> Tensor:
    """Round with a straight-through gradient."""
    return (torch.round(x) - x).detach() + x


def quantize_around(y: Tensor, mu: Tensor, training: bool) -> Tensor:
    """``round(y - mu) + mu``; straight-through gradient while training."""
    if training:
        return ste_round(y - mu) + mu
    return torch.round(y - mu) + mu


def forward_slices(model, y: Tensor, means: Tensor, scales: Tensor, text):
    """Training/eval pass: (y_hat, y_likelihoods) with the Gaussian conditional's noise."""
    state = model.init_state(means, scales, text)
    y_hats, likelihoods = [], []
    for i, y_slice in enumerate(y.chunk(model.num_slices, dim=1)):
        mu, scale, context = model.slice_params(i, state, text)
        _, slice_likelihoods = model.gaussian_conditional(y_slice, scale, mu)
        likelihoods.append(slice_likelihoods)
        y_hat_slice = model.refine(i, context, quantize_around(y_slice, mu, model.training), text)
        y_hats.append(y_hat_slice)
        state = model.advance(i, state, y_hat_slice)
    return torch.cat(y_hats, dim=1), torch.cat(likelihoods, dim=1)


def compress_slices(
    model,
    y: Tensor,
    means: Tensor,
    scales: Tensor,
    text,
    indexes_seen: list | None = None,
    symbols_seen: list | None = None,
    float_checks: FloatChecks | None = None,
) -> list[bytes]:
    """One rANS string per image holding all slices of ``y``.

    The scale indexes and the symbols of each slice are appended to ``indexes_seen`` and
    ``symbols_seen``, its means and refinement added to ``float_checks`` (for the desync
    check)."""
    conditional = model.gaussian_conditional
    cdf = conditional.quantized_cdf.tolist()
    cdf_lengths = conditional.cdf_length.reshape(-1).int().tolist()
    offsets = conditional.offset.reshape(-1).int().tolist()
    encoders = [BufferedRansEncoder() for _ in range(y.size(0))]
    state = model.init_state(means, scales, text)
    for i, y_slice in enumerate(y.chunk(model.num_slices, dim=1)):
        mu, scale, context = model.slice_params(i, state, text)
        indexes = conditional.build_indexes(scale)
        if indexes_seen is not None:
            indexes_seen.append(indexes.detach().to(torch.int32).cpu().numpy())
        symbols_in_range(y_slice, mu)
        symbols = conditional.quantize(y_slice, "symbols", mu)
        if symbols_seen is not None:
            symbols_seen.append(symbols.detach().to(torch.int32).cpu().numpy())
        for b, encoder in enumerate(encoders):
            encoder.encode_with_indexes(
                symbols[b].reshape(-1).tolist(),
                indexes[b].reshape(-1).tolist(),
                cdf,
                cdf_lengths,
                offsets,
            )
        dequantized = symbols.to(mu.dtype) + mu
        y_hat_slice = model.refine(i, context, dequantized, text)
        _slice_checks(float_checks, mu, dequantized, y_hat_slice)
        state = model.advance(i, state, y_hat_slice)
    return [encoder.flush() for encoder in encoders]


def decompress_slices(
    model,
    strings: list[bytes],
    means: Tensor,
    scales: Tensor,
    text,
    indexes_seen=None,
    symbols_seen=None,
    float_checks: FloatChecks | None = None,
) -> Tensor:
    """Inverse of :func:`compress_slices`: the dequantized, refined latent ``y_hat``."""
    conditional = model.gaussian_conditional
    cdf = conditional.quantized_cdf.tolist()
    cdf_lengths = conditional.cdf_length.reshape(-1).int().tolist()
    offsets = conditional.offset.reshape(-1).int().tolist()
    decoders = []
    for string in strings:
        decoder = RansDecoder()
        decoder.set_stream(string)
        decoders.append(decoder)
    state = model.init_state(means, scales, text)
    y_hats = []
    for i in range(model.num_slices):
        mu, scale, context = model.slice_params(i, state, text)
        indexes = conditional.build_indexes(scale)
        if indexes_seen is not None:
            indexes_seen.append(indexes.detach().to(torch.int32).cpu().numpy())
        symbols = torch.stack(
            [
                torch.tensor(
                    decoder.decode_stream(
                        indexes[b].reshape(-1).tolist(), cdf, cdf_lengths, offsets
                    ),
                    dtype=torch.int32,
                ).reshape(indexes.shape[1:])
                for b, decoder in enumerate(decoders)
            ]
        ).to(mu.device)
        if symbols_seen is not None:
            symbols_seen.append(symbols.detach().cpu().numpy())
            if isinstance(symbols_seen, _CheckedSymbols):
                symbols_seen.within_string(model, indexes, symbols, i)
        dequantized = conditional.dequantize(symbols, mu)
        y_hat_slice = model.refine(i, context, dequantized, text)
        _slice_checks(float_checks, mu, dequantized, y_hat_slice)
        y_hats.append(y_hat_slice)
        state = model.advance(i, state, y_hat_slice)
    return torch.cat(y_hats, dim=1)


class ChannelSliceCodec(LearnedCodecModel):
    """A hyperprior codec whose latent is coded in channel slices (TCM, CATC).

    Subclasses call ``super().__init__(M, num_slices)``, set ``entropy_bottleneck`` (of
    ``z``), ``gaussian_conditional`` (of the slices) and what the module docstring lists.
    """

    def __init__(self, M: int, num_slices: int):
        super().__init__()
        if M % num_slices:
            raise ModelError(f"M={M} must be a multiple of num_slices={num_slices}")
        self.num_slices = num_slices

    # ------------------------------------------------------------ transforms
    @staticmethod
    def _transform(module, x: Tensor, text) -> Tensor:
        return module(x) if text is None else module(x, text)

    def analysis(self, x: Tensor, text) -> Tensor:
        return self._transform(self.g_a, x, text)

    def hyper_analysis(self, y: Tensor, text) -> Tensor:
        return self._transform(self.h_a, y, text)

    def hyper_synthesis(self, z_hat: Tensor, text) -> tuple[Tensor, Tensor]:
        return self._transform(self.h_mean_s, z_hat, text), self._transform(
            self.h_scale_s, z_hat, text
        )

    def synthesis(self, y_hat: Tensor, text) -> Tensor:
        return self._transform(self.g_s, y_hat, text)

    def refine(self, i: int, context, y_hat_slice: Tensor, text) -> Tensor:
        """The decoded slice plus its latent residual prediction."""
        lrp = self.residual_prediction(i, context, y_hat_slice)
        return y_hat_slice + LRP_SCALE * torch.tanh(lrp)

    def prepare_text(self, text, batch: int):
        """The text argument as the transforms take it; unconditioned models ignore it."""
        return None

    def check_input(self, x: Tensor) -> None:
        """ModelError unless ``x`` is (B, 3, H, W) with H, W multiples of the factor."""
        multiple, name = self.downsampling_factor, self.architecture
        if x.dim() != 4 or x.size(1) != 3:
            raise ModelError(
                f"{name} expects images as a (B, 3, H, W) tensor, got {tuple(x.shape)}"
            )
        if x.size(2) % multiple or x.size(3) % multiple:
            raise ModelError(
                f"{name} needs H and W to be multiples of {multiple}, got "
                f"{x.size(2)}x{x.size(3)}: pad the image first "
                "(pku_aigi.codecs.from_model(model) pads and crops for you)"
            )

    def forward(self, x: Tensor, text=None) -> dict:
        self.check_input(x)
        text = self.prepare_text(text, x.size(0))
        y = self.analysis(x, text)
        z = self.hyper_analysis(y, text)
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        if self.training:  # code with rounding around the medians, as compress() does
            medians = self.entropy_bottleneck._get_medians()
            z_hat = ste_round(z - medians) + medians
        means, scales = self.hyper_synthesis(z_hat, text)
        y_hat, y_likelihoods = forward_slices(self, y, means, scales, text)
        return {
            "x_hat": self.synthesis(y_hat, text),
            "likelihoods": {"y": y_likelihoods, "z": z_likelihoods},
        }

    def compress(
        self,
        x: Tensor,
        text=None,
        indexes_seen: list | None = None,
        symbols_seen=None,
        float_checks: FloatChecks | None = None,
    ) -> dict:
        """{"strings": [y_strings, z_strings], "shape": z's (H, W)}; the scale indexes
        and y's symbols are appended to ``indexes_seen`` and ``symbols_seen``, the means
        and refinements added to ``float_checks``, when given."""
        self.check_input(x)
        self.update(force=False)  # a new model codes at once
        text = self.prepare_text(text, x.size(0))
        y = self.analysis(x, text)
        z = self.hyper_analysis(y, text)
        symbols_in_range(z, self.entropy_bottleneck._get_medians())
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.shape[-2:])
        means, scales = self.hyper_synthesis(z_hat, text)
        y_strings = compress_slices(
            self, y, means, scales, text, indexes_seen, symbols_seen, float_checks
        )
        return {"strings": [y_strings, z_strings], "shape": tuple(int(s) for s in z.shape[-2:])}

    def decompress(
        self,
        strings,
        shape,
        text=None,
        indexes_seen: list | None = None,
        symbols_seen=None,
        float_checks: FloatChecks | None = None,
    ) -> dict:
        self.update(force=False)
        y_strings, z_strings = strings
        text = self.prepare_text(text, len(z_strings))
        z_hat = self.entropy_bottleneck.decompress(z_strings, tuple(shape))
        means, scales = self.hyper_synthesis(z_hat, text)
        y_hat = decompress_slices(
            self, y_strings, means, scales, text, indexes_seen, symbols_seen, float_checks
        )
        if isinstance(symbols_seen, _CheckedSymbols):  # the desync check, before synthesis
            symbols_seen.check(float_checks)
        return {"x_hat": self.synthesis(y_hat, text).clamp_(0, 1)}

    # The desync check: CRCs of the scale indexes and symbols of every slice, and float
    # checks of the means and LRP (not on a grid: the slice transforms run in the
    # model's own precision).
    def _code_latents(self, x: Tensor, text, seed: int) -> Coded:
        indexes: list = []
        symbols: list = []
        checks = FloatChecks(FLOAT_CHECKS)
        out = self.compress(
            from_pixels(x),
            text=text,
            indexes_seen=indexes,
            symbols_seen=symbols,
            float_checks=checks,
        )
        coded = Coded(
            out["strings"], out["shape"], crc(*indexes, seed=seed), crc(*symbols, seed=seed)
        )
        coded.float_checks = checks.values()
        return coded

    def _decode_latents(self, coded: Coded, text, seed: int, pixels: bool) -> Tensor:
        indexes: list = []
        symbols = _CheckedSymbols(coded, indexes, seed)
        x_hat = self.decompress(
            coded.padded_strings(),
            coded.shape,
            text=text,
            indexes_seen=indexes,
            symbols_seen=symbols,
            float_checks=FloatChecks(FLOAT_CHECKS),
        )
        return x_hat["x_hat"].clamp(0, 1)


class _CheckedSymbols(list):
    """The decoded symbols, checked (with the scale indexes) before the synthesis runs:
    a forged or corrupt file costs no synthesis transform."""

    def __init__(self, coded: Coded, indexes: list, seed: int):
        super().__init__()
        self.coded, self.indexes, self.seed = coded, indexes, seed
        self.spent = 0.0

    def within_string(self, model, indexes, symbols, index: int) -> None:
        """Stop after slice ``index`` if the y string cannot hold what it decoded (a
        forged image size: the remaining slices would cost minutes)."""
        budget = self.coded.y_string_bits
        if budget is None:
            return
        tables = GaussianTables.of(model)
        rows = indexes.detach().cpu().numpy().reshape(-1)
        self.spent += tables.information_bits(rows, symbols.detach().cpu().numpy().reshape(-1))
        if self.spent - 64 > budget:
            raise CorruptStreamError(
                f"the y string ({budget // 8} bytes) ends before the latent does (slice "
                f"{index} of {model.num_slices}): a forged image size or a truncated file"
            )

    def check(self, float_checks: FloatChecks | None = None) -> None:
        check_crc(self.coded.params_crc, crc(*self.indexes, seed=self.seed), "entropy parameters")
        check_crc(self.coded.symbols_crc, crc(*self, seed=self.seed), "decoded symbols")
        if float_checks is not None:
            float_checks.check(self.coded.float_checks)
