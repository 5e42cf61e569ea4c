"""Channel-wise autoregressive coding of the latent in slices, shared by TCM and CATC.

Minnen & Singh, "Channel-wise autoregressive entropy models for learned image
compression", ICIP 2020: the latent ``y`` is split into channel slices coded one after
another; each slice's Gaussian mean and scale are predicted from the hyperprior and the
slices already decoded, and a latent residual prediction (LRP) refines each decoded slice.

An entropy model plugs in through four methods (TCM concatenates earlier slices, CATC
updates GRU states):

- ``init_state(means, scales, text)``: state before the first slice;
- ``slice_params(i, state, text) -> (mu, scale, context)``;
- ``refine(i, context, y_hat_slice, text) -> y_hat_slice`` (adds the LRP);
- ``advance(i, state, y_hat_slice) -> state``.

The decoder repeats the encoder's computation on the same dequantized values
(``round(y - mu) + mu``), so the reconstruction of ``decompress`` equals the one of an
eval-mode ``forward``.
"""

from __future__ import annotations

import torch
from compressai.ans import BufferedRansEncoder, RansDecoder
from torch import Tensor


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


def compress_slices(model, y: Tensor, means: Tensor, scales: Tensor, text) -> list[bytes]:
    """One rANS string per image holding all slices of ``y``."""
    conditional = model.gaussian_conditional
    cdf = conditional.quantized_cdf.tolist()
    cdf_lengths = conditional.cdf_length.reshape(-1).int().tolist()
    offsets = conditional.offset.reshape(-1).int().tolist()
    encoders = [BufferedRansEncoder() for _ in range(y.size(0))]
    state = model.init_state(means, scales, text)
    for i, y_slice in enumerate(y.chunk(model.num_slices, dim=1)):
        mu, scale, context = model.slice_params(i, state, text)
        indexes = conditional.build_indexes(scale)
        symbols = conditional.quantize(y_slice, "symbols", mu)
        for b, encoder in enumerate(encoders):
            encoder.encode_with_indexes(
                symbols[b].reshape(-1).tolist(),
                indexes[b].reshape(-1).tolist(),
                cdf,
                cdf_lengths,
                offsets,
            )
        y_hat_slice = model.refine(i, context, symbols.to(mu.dtype) + mu, text)
        state = model.advance(i, state, y_hat_slice)
    return [encoder.flush() for encoder in encoders]


def decompress_slices(model, strings: list[bytes], means: Tensor, scales: Tensor, text) -> Tensor:
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
        y_hat_slice = model.refine(i, context, conditional.dequantize(symbols, mu), text)
        y_hats.append(y_hat_slice)
        state = model.advance(i, state, y_hat_slice)
    return torch.cat(y_hats, dim=1)
