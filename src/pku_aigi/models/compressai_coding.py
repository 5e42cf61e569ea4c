"""Deterministic entropy coding of CompressAI's architectures (see :mod:`.entropy_coding`).

- factorized prior (Ballé et al. 2018): the entropy bottleneck codes ``y``;
- scale and mean-scale hyperpriors (Ballé et al. 2018; Minnen et al. 2018): the
  hyper-synthesis ``h_s`` runs in float64, scale indexes and means on a fixed grid;
- joint autoregressive priors (Minnen et al. 2018; Cheng et al. 2020): the masked 5x5
  context model and the 1x1 ``entropy_parameters`` layers run in NumPy float64 on the
  CPU. The rows above a position are folded into one matrix product per row, leaving
  three small products per position (CompressAI recomputes a 5x5 convolution and loops
  over the 64 scales per position).

The models of :mod:`.compressai_archs` call these from their ``code_latents`` and
``decode_latents`` methods.
"""

from __future__ import annotations

import numpy as np
import torch
from compressai.ans import BufferedRansEncoder, RansDecoder

from ..errors import CodecError, CorruptStreamError
from .entropy_coding import (
    MEANS_GRID,
    MEANS_LIMIT,
    Coded,
    GaussianTables,
    check_crc,
    crc,
    dequantized,
    fast_layout,
    finite,
    float64_copy,
    quantize_means,
    symbols_in_range,
    tables_crc,
)

CONTEXT_KERNEL = 5  # masked 5x5 convolution of Minnen et al. 2018


# --------------------------------------------------------------------- hyperprior models
def _hyper_params(model, z_hat: torch.Tensor, tables: GaussianTables, with_means: bool):
    h_s = float64_copy(model, "h_s")
    params = finite(h_s(z_hat.double()), "entropy parameters")
    if with_means:
        scales, means = params.chunk(2, 1)
        return tables.indexes(scales), quantize_means(means)
    return tables.indexes(params), torch.zeros(params.shape, dtype=torch.int32)


def code_hyperprior(model, x: torch.Tensor, with_means: bool, seed: int) -> Coded:
    tables = GaussianTables.of(model)
    y = model.g_a(fast_layout(x))
    z = model.h_a(y if with_means else torch.abs(y))
    symbols_in_range(z, model.entropy_bottleneck._get_medians())
    z_strings = model.entropy_bottleneck.compress(z)
    z_hat = dequantized(model.entropy_bottleneck, z)
    indexes, means_q = _hyper_params(model, z_hat, tables, with_means)
    symbols_in_range(y.double().cpu(), means_q.double() / MEANS_GRID)
    symbols = torch.round(y.double().cpu() - means_q.double() / MEANS_GRID).to(torch.int32)
    string = BufferedRansEncoder()
    string.encode_with_indexes(
        symbols.reshape(-1).tolist(),
        indexes.reshape(-1).tolist(),
        tables.cdf,
        tables.lengths,
        tables.offsets,
    )
    return Coded(
        strings=[[string.flush()], z_strings],
        shape=tuple(int(s) for s in z.shape[-2:]),
        params_crc=crc(indexes.numpy(), means_q.numpy(), seed=seed),
        symbols_crc=crc(symbols.numpy(), seed=seed),
    )


def decode_hyperprior(model, coded: Coded, with_means: bool, seed: int) -> torch.Tensor:
    tables = GaussianTables.of(model)
    z_hat = model.entropy_bottleneck.decompress(coded.strings[1], coded.shape)
    indexes, means_q = _hyper_params(model, z_hat, tables, with_means)
    check_crc(
        coded.params_crc, crc(indexes.numpy(), means_q.numpy(), seed=seed), "entropy parameters"
    )
    values = RansDecoder().decode_with_indexes(
        coded.strings[0][0],
        indexes.reshape(-1).tolist(),
        tables.cdf,
        tables.lengths,
        tables.offsets,
    )
    symbols = torch.tensor(values, dtype=torch.int32).reshape(indexes.shape)
    check_crc(coded.symbols_crc, crc(symbols.numpy(), seed=seed), "decoded symbols")
    y_hat = symbols.double() + means_q.double() / MEANS_GRID
    device = z_hat.device
    return model.g_s(fast_layout(y_hat.to(device=device, dtype=torch.float32))).clamp_(0, 1)


# --------------------------------------------------------------------- factorized prior
def code_factorized(model, x: torch.Tensor, seed: int) -> Coded:
    eb = model.entropy_bottleneck
    y = model.g_a(fast_layout(x))
    medians = eb._get_medians().detach().reshape(1, -1, 1, 1)
    symbols_in_range(y, medians)
    strings = eb.compress(y)
    symbols = torch.round(y - medians).to(torch.int32).cpu()
    return Coded(
        [strings],
        tuple(int(s) for s in y.shape[-2:]),
        tables_crc(eb, seed),
        crc(symbols.numpy(), seed=seed),
    )


def decode_factorized(model, coded: Coded, seed: int) -> torch.Tensor:
    eb = model.entropy_bottleneck
    check_crc(coded.params_crc, tables_crc(eb, seed), "entropy parameters")
    y_hat = eb.decompress(coded.strings[0], coded.shape)
    medians = eb._get_medians().detach().reshape(1, -1, 1, 1)
    symbols = torch.round(y_hat - medians).to(torch.int32).cpu()
    check_crc(coded.symbols_crc, crc(symbols.numpy(), seed=seed), "decoded symbols")
    return model.g_s(fast_layout(y_hat)).clamp_(0, 1)


# --------------------------------------------------------------------- autoregressive
class ContextModel:
    """Masked 5x5 context model + 1x1 entropy-parameter layers, in NumPy float64.

    The first 1x1 layer is linear, so it is folded into the context convolution: the
    contribution of the hyperprior and of the two rows above a position is computed a
    whole row at a time; per position only the two left neighbours remain.
    """

    def __init__(self, model, params: torch.Tensor):
        tensors = [
            *model.context_prediction.state_dict().values(),
            *model.entropy_parameters.state_dict().values(),
        ]
        weights = model.coding_cache.get("context_model", tensors, lambda: self._fold(model))
        self.w_up, self.w_left, self.rest, self.slopes, w1_params, bias = weights
        p = params[0].double().cpu().numpy()
        # (H, W, o1): hyperprior part + biases of the first layer and the context conv.
        self.base = np.einsum("oc,chw->hwo", w1_params, p) + bias

    @staticmethod
    def _fold(model):
        cp, layers = model.context_prediction, list(model.entropy_parameters)
        convs = [m for m in layers if isinstance(m, torch.nn.Conv2d)]
        slopes = [m.negative_slope for m in layers if isinstance(m, torch.nn.LeakyReLU)]
        if len(convs) != len(slopes) + 1 or any(c.kernel_size != (1, 1) for c in convs):
            raise TypeError("unsupported entropy_parameters layout")
        weights = [c.weight.detach().double().cpu().numpy()[:, :, 0, 0] for c in convs]
        biases = [c.bias.detach().double().cpu().numpy() for c in convs]
        w_ctx = (cp.weight * cp.mask).detach().double().cpu().numpy()  # (2M, M, 5, 5)
        b_ctx = cp.bias.detach().double().cpu().numpy()
        n_ctx = w_ctx.shape[0]
        w1_params, w1_ctx = weights[0][:, :-n_ctx], weights[0][:, -n_ctx:]
        # Rows above: (2, 5, M) patch -> o1; left neighbours: (2, M) -> o1.
        w_up = np.einsum("oa,acij->ijco", w1_ctx, w_ctx[:, :, :2, :], optimize=True)
        w_left = np.einsum("oa,acj->jco", w1_ctx, w_ctx[:, :, 2, :2], optimize=True)
        rest = [(w.T.copy(), b) for w, b in zip(weights[1:], biases[1:])]
        o1 = w1_ctx.shape[0]
        bias = biases[0] + w1_ctx @ b_ctx
        return w_up.reshape(-1, o1), w_left.reshape(-1, o1), rest, slopes, w1_params, bias

    def row(self, y_pad: np.ndarray, h: int) -> np.ndarray:
        """(W, o1) pre-activations of row ``h`` without the left-neighbour term."""
        width = self.base.shape[1]
        rows = y_pad[h : h + 2]  # (2, W + 4, M), channels last
        patches = np.lib.stride_tricks.sliding_window_view(rows, CONTEXT_KERNEL, axis=1)
        patches = patches[:, :width].transpose(1, 0, 3, 2).reshape(width, -1)
        return self.base[h] + patches @ self.w_up

    def position(self, row: np.ndarray, y_pad: np.ndarray, h: int, w: int):
        """(scales, means) at (h, w) given the decoded neighbours in ``y_pad``."""
        a = row[w] + y_pad[h + 2, w : w + 2].reshape(-1) @ self.w_left
        for (weight, bias), slope in zip(self.rest, self.slopes):
            a = np.where(a >= 0, a, a * slope) @ weight + bias
        half = a.shape[0] // 2
        return a[:half], a[half:]


def _ar_setup(model, z_hat):
    tables = GaussianTables.of(model)
    h_s = float64_copy(model, "h_s")
    params = finite(h_s(z_hat.double()), "entropy parameters")
    return tables, ContextModel(model, params), params.shape[2], params.shape[3]


def _ar_step(tables, scales, means):
    if not (np.isfinite(scales).all() and np.isfinite(means).all()):
        raise CodecError("the model produced non-finite entropy parameters: broken weights")
    indexes = np.searchsorted(tables.boundaries.numpy(), np.maximum(scales, tables.bound))
    means_q = np.round(np.clip(means, -MEANS_LIMIT, MEANS_LIMIT) * MEANS_GRID)
    return indexes.astype(np.int32), means_q.astype(np.int32), means_q / MEANS_GRID


def code_autoregressive(model, x: torch.Tensor, seed: int) -> Coded:
    y = model.g_a(fast_layout(x))
    z = model.h_a(y)
    symbols_in_range(z, model.entropy_bottleneck._get_medians())
    z_strings = model.entropy_bottleneck.compress(z)
    z_hat = dequantized(model.entropy_bottleneck, z)
    tables, ctx, height, width = _ar_setup(model, z_hat)
    pad = CONTEXT_KERNEL // 2
    y_np = y[0].double().cpu().numpy().transpose(1, 2, 0)  # (H, W, M)
    y_pad = np.zeros((height + 2 * pad, width + 2 * pad, y_np.shape[2]))
    all_indexes, all_means, all_symbols = [], [], []
    for h in range(height):
        row = ctx.row(y_pad, h)
        for w in range(width):
            indexes, means_q, means = _ar_step(tables, *ctx.position(row, y_pad, h, w))
            symbols_in_range(torch.from_numpy(y_np[h, w] - means))
            symbols = np.round(y_np[h, w] - means)
            y_pad[h + pad, w + pad] = symbols + means
            all_indexes.append(indexes)
            all_means.append(means_q)
            all_symbols.append(symbols.astype(np.int32))
    indexes, symbols = np.concatenate(all_indexes), np.concatenate(all_symbols)
    encoder = BufferedRansEncoder()
    encoder.encode_with_indexes(
        symbols.tolist(), indexes.tolist(), tables.cdf, tables.lengths, tables.offsets
    )
    return Coded(
        strings=[[encoder.flush()], z_strings],
        shape=tuple(int(s) for s in z.shape[-2:]),
        params_crc=crc(indexes, np.concatenate(all_means), seed=seed),
        symbols_crc=crc(symbols, seed=seed),
    )


def decode_autoregressive(model, coded: Coded, seed: int) -> torch.Tensor:
    z_hat = model.entropy_bottleneck.decompress(coded.strings[1], coded.shape)
    tables, ctx, height, width = _ar_setup(model, z_hat)
    pad = CONTEXT_KERNEL // 2
    channels = ctx.w_left.shape[0] // 2
    y_pad = np.zeros((height + 2 * pad, width + 2 * pad, channels))
    decoder = RansDecoder()
    decoder.set_stream(coded.strings[0][0])
    all_indexes, all_means, all_symbols = [], [], []
    spent, budget = 0.0, coded.y_string_bits
    for h in range(height):
        row = ctx.row(y_pad, h)
        for w in range(width):
            indexes, means_q, means = _ar_step(tables, *ctx.position(row, y_pad, h, w))
            symbols = tables.decode_stream(decoder, indexes)
            if budget is not None:  # stop as soon as the string cannot hold what came out
                spent += tables.information_bits(indexes, symbols)
                if spent - 64 > budget:
                    raise CorruptStreamError(
                        f"the y string ({budget // 8} bytes) ends before the latent does "
                        f"(at row {h} of {height}): a forged image size or a truncated file"
                    )
            y_pad[h + pad, w + pad] = np.asarray(symbols, dtype=np.float64) + means
            all_indexes.append(indexes)
            all_means.append(means_q)
            all_symbols.append(np.asarray(symbols, dtype=np.int32))
    # Indexes depend on every symbol decoded before them: one check covers both.
    check_crc(
        coded.params_crc,
        crc(np.concatenate(all_indexes), np.concatenate(all_means), seed=seed),
        "entropy parameters",
    )
    check_crc(coded.symbols_crc, crc(np.concatenate(all_symbols), seed=seed), "decoded symbols")
    y_hat = torch.from_numpy(y_pad[pad : pad + height, pad : pad + width].transpose(2, 0, 1))
    y_hat = y_hat[None].to(device=z_hat.device, dtype=torch.float32)
    return model.g_s(fast_layout(y_hat)).clamp_(0, 1)
