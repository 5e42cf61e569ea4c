"""Deterministic entropy coding of CompressAI's architectures (see :mod:`.entropy_coding`).

- factorized prior (Ballé et al. 2018): the entropy bottleneck codes ``y``;
- scale and mean-scale hyperpriors (Ballé et al. 2018; Minnen et al. 2018): the
  hyper-synthesis ``h_s`` runs in float64, scale indexes and means on a fixed grid;
- joint autoregressive priors (Minnen et al. 2018; Cheng et al. 2020): the masked 5x5
  context model and the 1x1 ``entropy_parameters`` layers run in NumPy float64 on the
  CPU. The rows above a position are folded into one matrix product per row, leaving
  three small products per position (CompressAI recomputes a 5x5 convolution and loops
  over the 64 scales per position).

The models of :mod:`..architectures.compressai_archs` call these from their ``code_latents`` and
``decode_latents`` methods.

Memory: the analysis and synthesis transforms run in bands of image rows
(:mod:`.banding`, exact), the float64 hyper-synthesis in bands of latent rows whose
partition depends only on the latent's shape, the rANS coder gets the symbols a few
channels (or rows) at a time, and the image comes in and goes out as 8-bit pixels
converted a band at a time (:mod:`.pixels`), so that nothing of the size "channels x
pixels" exists at once: peak memory grows with the image's width, not its area.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from compressai.ans import BufferedRansEncoder, RansDecoder

from ...errors import CodecError, CorruptStreamError
from .banding import bands, output_height, release_free_memory, run_in_bands
from .entropy_coding import (
    MEANS_GRID,
    MEANS_LIMIT,
    SYMBOL_LIMIT,
    Coded,
    GaussianTables,
    check_crc,
    crc,
    dequantized,
    finite,
    float64_copy,
    quantize_means,
    symbols_in_range,
    tables_crc,
)
from .pixels import from_pixels, to_pixels

CONTEXT_KERNEL = 5  # masked 5x5 convolution of Minnen et al. 2018
ANALYSIS_STRIDE = 16  # g_a's total stride in every CompressAI architecture
# The analysis/synthesis run in bands of about BAND_PIXELS image pixels (at least one
# latent row): their widest layer holds 128-192 channels at half resolution, 4-6 MB per
# tensor in float32 for 2^16 pixels against 1.5 GB at 24 MP in one pass. Bands are also
# faster than one pass (at 512x512: 0.6-0.7x the time of g_a and g_s; they stay in
# cache and reuse their buffers).
BAND_PIXELS = 1 << 16
# The float64 hyper-synthesis likewise, in bands of about PARAM_BAND_POSITIONS latent
# positions of its output (one band up to 1024x1024 images): its im2col buffers hold up
# to 2592 float64 per output position (mbt2018's last 3x3 layer, 288 channels), 320 MB
# for a 4 MP image in one pass, 83 MB in a band. The autoregressive scan, which holds
# everything else while it runs, takes bands of AR_PARAM_BAND_POSITIONS (12 MP mbt2018:
# 1.36 GB peak against 1.49). Smaller bands cost time (1024 positions: h_s takes 1.13x
# at 12 MP: a transposed convolution computes rows beyond its band that the next band
# computes again), negligible next to the scan's. The bands are a function of the
# latent's shape only, so encoder and decoder run the same ones.
PARAM_BAND_POSITIONS = 1 << 12
AR_PARAM_BAND_POSITIONS = 1 << 10
# Symbols per call of the rANS coder (it takes Python lists).
RANS_CHUNK = 1 << 18


def _layout(x: torch.Tensor) -> torch.memory_format:
    """Channels-last on the CPU, as :func:`.entropy_coding.fast_layout`."""
    return torch.channels_last if x.device.type == "cpu" else torch.contiguous_format


def _band_rows(width: int, band: int, multiple: int) -> int:
    """Rows per band of about ``band`` elements, a multiple of ``multiple``."""
    return max(multiple, band // max(1, width) // multiple * multiple)


def analysis(model, x: torch.Tensor) -> torch.Tensor:
    """``model.g_a(x)``, in bands of image rows; 8-bit pixels are converted to float a
    band at a time (:mod:`.pixels`)."""
    rows = _band_rows(x.shape[-1], BAND_PIXELS, ANALYSIS_STRIDE)
    return run_in_bands(
        model.g_a,
        x,
        band_rows=rows // ANALYSIS_STRIDE,
        layout=_layout(x),
        prepare=from_pixels,
    )


def synthesis(model, y_hat: torch.Tensor, pixels: bool = False) -> torch.Tensor:
    """``model.g_s(y_hat).clamp(0, 1)``, in bands of image rows; with ``pixels``, as
    8-bit pixels converted band by band (:func:`.pixels.to_pixels`)."""
    width = ANALYSIS_STRIDE * y_hat.shape[-1]
    return run_in_bands(
        model.g_s,
        y_hat,
        band_rows=_band_rows(width, BAND_PIXELS, ANALYSIS_STRIDE),
        layout=_layout(y_hat),
        finish=to_pixels if pixels else lambda band: band.clamp_(0, 1),
    )


def _param_bands(model, z_hat: torch.Tensor, positions: int):
    """``(lo, hi, h_s(z_hat) rows lo..hi-1)`` in float64, in bands of about
    ``positions`` output positions."""
    h_s = float64_copy(model, "h_s")
    rows = _band_rows(4 * z_hat.shape[-1], positions, 4)
    for lo, hi, params in bands(h_s, z_hat.double(), band_rows=rows):
        yield lo, hi, finite(params, "entropy parameters")


def _channel_chunks(shape) -> tuple[range, int]:
    """Channel starts of the rANS calls: about :data:`RANS_CHUNK` symbols each."""
    step = max(1, RANS_CHUNK // max(1, shape[-2] * shape[-1]))
    return range(0, shape[1], step), step


# --------------------------------------------------------------------- hyperprior models
def _hyper_params(model, z_hat: torch.Tensor, tables: GaussianTables, with_means: bool):
    """(scale indexes, quantized means) as int32 (1, M, H, W), from h_s band by band."""
    indexes = means_q = None
    for lo, hi, params in _param_bands(model, z_hat, PARAM_BAND_POSITIONS):
        if indexes is None:
            channels = params.shape[1] // 2 if with_means else params.shape[1]
            height = output_height(model.h_s, z_hat.shape[-2])
            shape = (1, channels, height, params.shape[-1])
            indexes = torch.empty(shape, dtype=torch.int32)
            means_q = torch.zeros(shape, dtype=torch.int32)
        if with_means:
            scales, means = params.chunk(2, 1)
            means_q[..., lo:hi, :] = quantize_means(means)
        else:
            scales = params
        indexes[..., lo:hi, :] = tables.indexes(scales)
    release_free_memory()  # h_s's float64 buffers, before the rANS coder's copies
    return indexes, means_q


def code_hyperprior(model, x: torch.Tensor, with_means: bool, seed: int) -> Coded:
    tables = GaussianTables.of(model)
    y = analysis(model, x)
    z = model.h_a(y if with_means else torch.abs(y))
    symbols_in_range(z, model.entropy_bottleneck._get_medians())
    z_strings = model.entropy_bottleneck.compress(z)
    z_hat = dequantized(model.entropy_bottleneck, z)
    indexes, means_q = _hyper_params(model, z_hat, tables, with_means)
    y = y.cpu()
    symbols = torch.empty(indexes.shape, dtype=torch.int32)
    string = BufferedRansEncoder()
    starts, step = _channel_chunks(indexes.shape)
    for c in starts:  # the same symbol order as one call on the whole (1, M, H, W)
        part = slice(c, c + step)
        means = means_q[:, part].double() / MEANS_GRID
        symbols_in_range(y[:, part], means)
        symbols[:, part] = torch.round(y[:, part].double() - means).to(torch.int32)
        string.encode_with_indexes(
            symbols[:, part].reshape(-1).tolist(),
            indexes[:, part].reshape(-1).tolist(),
            tables.cdf,
            tables.lengths,
            tables.offsets,
        )
    del y
    return Coded(
        strings=[[string.flush()], z_strings],
        shape=tuple(int(s) for s in z.shape[-2:]),
        params_crc=crc(indexes.numpy(), means_q.numpy(), seed=seed),
        symbols_crc=crc(symbols.numpy(), seed=seed),
    )


def decode_hyperprior(
    model, coded: Coded, with_means: bool, seed: int, pixels: bool = False
) -> torch.Tensor:
    tables = GaussianTables.of(model)
    z_hat = model.entropy_bottleneck.decompress([coded.padded(1)], coded.shape)
    indexes, means_q = _hyper_params(model, z_hat, tables, with_means)
    check_crc(
        coded.params_crc, crc(indexes.numpy(), means_q.numpy(), seed=seed), "entropy parameters"
    )
    decoder = RansDecoder()
    decoder.set_stream(coded.padded(0))
    symbols = torch.empty(indexes.shape, dtype=torch.int32)
    starts, step = _channel_chunks(indexes.shape)
    for c in starts:
        part = indexes[:, c : c + step]
        values = decoder.decode_stream(
            part.reshape(-1).tolist(), tables.cdf, tables.lengths, tables.offsets
        )
        symbols[:, c : c + step] = torch.tensor(values, dtype=torch.int32).reshape(part.shape)
    check_crc(coded.symbols_crc, crc(symbols.numpy(), seed=seed), "decoded symbols")
    y_hat = torch.empty(indexes.shape, dtype=torch.float32)
    for c in starts:
        part = slice(c, c + step)
        y_hat[:, part] = symbols[:, part].double() + means_q[:, part].double() / MEANS_GRID
    del symbols, indexes, means_q, decoder  # the decoder: its copy of the padded string
    return synthesis(model, y_hat.to(z_hat.device), pixels)


# --------------------------------------------------------------------- factorized prior
def _bottleneck_lists(eb) -> tuple[list, list, list]:
    """The entropy bottleneck's CDF tables as the rANS coder takes them."""
    lengths, offsets = eb._cdf_length.reshape(-1).int(), eb._offset.reshape(-1).int()
    return eb._quantized_cdf.tolist(), lengths.tolist(), offsets.tolist()


def _channel_indexes(shape, channels: slice) -> list[int]:
    """The CDF index of every element of ``channels`` (the channel's own CDF)."""
    index = torch.arange(channels.start, channels.stop, dtype=torch.int32)
    return index.view(1, -1, 1, 1).expand(shape[0], -1, *shape[2:]).reshape(-1).tolist()


def code_factorized(model, x: torch.Tensor, seed: int) -> Coded:
    """The bytes of ``entropy_bottleneck.compress(y)``, given to the coder a few channels
    at a time (CompressAI converts the whole latent to Python lists: 650 MB at 12 MP)."""
    eb = model.entropy_bottleneck
    y = analysis(model, x)
    medians = eb._get_medians().detach().reshape(1, -1, 1, 1)
    symbols_in_range(y, medians)
    cdf, lengths, offsets = _bottleneck_lists(eb)
    symbols = torch.empty(y.shape, dtype=torch.int32)
    encoder = BufferedRansEncoder()
    starts, step = _channel_chunks(y.shape)
    for c in starts:
        part = slice(c, min(c + step, y.shape[1]))
        symbols[:, part] = torch.round(y[:, part] - medians[:, part]).to(torch.int32).cpu()
        encoder.encode_with_indexes(
            symbols[:, part].reshape(-1).tolist(),
            _channel_indexes(symbols[:, part].shape, part),
            cdf,
            lengths,
            offsets,
        )
    return Coded(
        [[encoder.flush()]],
        tuple(int(s) for s in y.shape[-2:]),
        tables_crc(eb, seed),
        crc(symbols.numpy(), seed=seed),
    )


def decode_factorized(model, coded: Coded, seed: int, pixels: bool = False) -> torch.Tensor:
    """As ``entropy_bottleneck.decompress``, a few channels at a time."""
    eb = model.entropy_bottleneck
    check_crc(coded.params_crc, tables_crc(eb, seed), "entropy parameters")
    cdf, lengths, offsets = _bottleneck_lists(eb)
    shape = (1, len(cdf), *coded.shape)
    decoder = RansDecoder()
    decoder.set_stream(coded.padded(0))
    symbols = torch.empty(shape, dtype=torch.int32)
    starts, step = _channel_chunks(shape)
    for c in starts:
        part = slice(c, min(c + step, shape[1]))
        indexes = _channel_indexes(symbols[:, part].shape, part)
        values = decoder.decode_stream(indexes, cdf, lengths, offsets)
        symbols[:, part] = torch.tensor(values, dtype=torch.int32).reshape(symbols[:, part].shape)
    check_crc(coded.symbols_crc, crc(symbols.numpy(), seed=seed), "decoded symbols")
    medians = eb._get_medians().detach().reshape(1, -1, 1, 1).cpu()
    y_hat = symbols.float().add_(medians)  # EntropyModel.dequantize: float32 + medians
    del symbols, decoder  # the decoder: its copy of the padded string
    return synthesis(model, y_hat.to(eb._quantized_cdf.device), pixels)


# --------------------------------------------------------------------- autoregressive
class ContextModel:
    """Masked 5x5 context model + 1x1 entropy-parameter layers, in NumPy float64.

    The first 1x1 layer is linear, so it is folded into the context convolution: the
    contribution of the hyperprior and of the two rows above a position is computed a
    whole row at a time; per position only the two left neighbours remain.
    """

    def __init__(self, model):
        tensors = [
            *model.context_prediction.state_dict().values(),
            *model.entropy_parameters.state_dict().values(),
        ]
        weights = model.coding_cache.get("context_model", tensors, lambda: self._fold(model))
        self.w_up, self.w_left, self.rest, self.slopes, self.w1_params, self.bias = weights

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

    def base(self, params: torch.Tensor) -> np.ndarray:
        """(rows, W, o1): the hyperprior's part of the first layer, plus its biases and
        the context convolution's, for ``params`` (1, C, rows, W) of h_s."""
        return np.einsum("oc,chw->hwo", self.w1_params, params[0].cpu().numpy()) + self.bias

    def row(self, base: np.ndarray, above: np.ndarray) -> np.ndarray:
        """(W, o1) pre-activations of a row without the left-neighbour term; ``above``
        holds the two rows above it, (2, W + 4, M), channels last, zero-padded."""
        width = base.shape[0]
        patches = np.lib.stride_tricks.sliding_window_view(above, CONTEXT_KERNEL, axis=1)
        patches = patches[:, :width].transpose(1, 0, 3, 2).reshape(width, -1)
        return base + patches @ self.w_up

    def position(self, row: np.ndarray, current: np.ndarray, w: int):
        """(scales, means) at column ``w`` given the decoded left neighbours in
        ``current`` (the row being coded, (W + 4, M), zero-padded)."""
        a = row[w] + current[w : w + 2].reshape(-1) @ self.w_left
        for (weight, bias), slope in zip(self.rest, self.slopes):
            a = np.where(a >= 0, a, a * slope) @ weight + bias
        half = a.shape[0] // 2
        return a[:half], a[half:]


def _ar_step(tables, scales, means):
    if not (np.isfinite(scales).all() and np.isfinite(means).all()):
        raise CodecError("the model produced non-finite entropy parameters: broken weights")
    indexes = np.searchsorted(tables.boundaries.numpy(), np.maximum(scales, tables.bound))
    means_q = np.round(np.clip(means, -MEANS_LIMIT, MEANS_LIMIT) * MEANS_GRID)
    return indexes.astype(np.int32), means_q.astype(np.int32), means_q / MEANS_GRID


class _ArScan:
    """The raster scan shared by the encoder and the decoder of the context model.

    Keeps the two rows above the current one (zero-padded, float64), the band of
    hyper-synthesis output the current row lies in, and the quantized means of every
    position (int32, (H * W, M), position-major: the parameters' CRC covers every scale
    index, then every mean, in the order of the rANS stream). A row's scale indexes and
    symbols live only until the row is finished: their CRCs run row by row, and so do
    the encoder's rANS calls.
    """

    def __init__(self, model, z_hat: torch.Tensor, seed: int):
        self.tables = GaussianTables.of(model)
        self.ctx = ContextModel(model)
        self.params = _param_bands(model, z_hat, AR_PARAM_BAND_POSITIONS)
        self.band, self.band_lo, self.band_hi = None, 0, 0
        self.height = output_height(model.h_s, z_hat.shape[-2])
        self.width = 4 * z_hat.shape[-1]
        self.channels = self.ctx.w_left.shape[0] // 2
        # Two rows above and the current row, each padded by 2 zeros left and right.
        self.window = np.zeros((3, self.width + CONTEXT_KERNEL - 1, self.channels))
        self.means = np.empty((self.height * self.width, self.channels), np.int32)
        self.row_indexes = np.empty((self.width, self.channels), np.int32)
        self.row_symbols = np.empty((self.width, self.channels), np.int32)
        self.indexes_crc = self.symbols_crc = seed

    def rows(self) -> Iterator[int]:
        """Yield each row index; the caller codes its positions with :meth:`position`
        and :meth:`put`, left to right, before asking for the next row."""
        pad = CONTEXT_KERNEL // 2
        for h in range(self.height):
            while h >= self.band_hi:
                self.band_lo, self.band_hi, params = next(self.params)
                self.band = self.ctx.base(params)
                release_free_memory()  # h_s's float64 buffers, for the long scan
            self._row = self.ctx.row(self.band[h - self.band_lo], self.window[:2])
            yield h
            self.indexes_crc = crc(self.row_indexes, seed=self.indexes_crc)
            self.symbols_crc = crc(self.row_symbols, seed=self.symbols_crc)
            self.window[0], self.window[1] = self.window[1], self.window[2]
            self.window[2] = 0.0
            self.finished_row(h, self.window[1, pad : pad + self.width])

    def position(self, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """(scale indexes, means) of position (h, w), recorded for the CRCs."""
        scales, means = self.ctx.position(self._row, self.window[2], w)
        indexes, means_q, means = _ar_step(self.tables, scales, means)
        self.row_indexes[w], self.means[h * self.width + w] = indexes, means_q
        return indexes, means

    def put(self, w: int, symbols: np.ndarray, means: np.ndarray) -> None:
        """Record the symbols of column ``w``; their values are context for what follows."""
        self.window[2, w + CONTEXT_KERNEL // 2] = symbols + means
        self.row_symbols[w] = symbols

    def finished_row(self, h: int, values: np.ndarray) -> None:
        """Hook: row ``h`` of y_hat, (W, M) float64."""

    def params_crc(self) -> int:
        """CRC32 of every scale index, then every quantized mean (after the last row)."""
        return crc(self.means, seed=self.indexes_crc)


def _rounded_symbols(values: np.ndarray) -> np.ndarray:
    if not np.isfinite(values).all() or np.abs(values).max() >= SYMBOL_LIMIT:
        symbols_in_range(torch.from_numpy(values))  # raises its error
    return np.round(values)


def code_autoregressive(model, x: torch.Tensor, seed: int) -> Coded:
    y = analysis(model, x)
    z = model.h_a(y)
    symbols_in_range(z, model.entropy_bottleneck._get_medians())
    z_strings = model.entropy_bottleneck.compress(z)
    z_hat = dequantized(model.entropy_bottleneck, z)
    scan = _ArScan(model, z_hat, seed)
    tables = scan.tables
    y = y.cpu()
    encoder = BufferedRansEncoder()
    for h in scan.rows():
        y_row = y[0, :, h, :].double().numpy().T  # (W, M)
        for w in range(scan.width):
            indexes, means = scan.position(h, w)
            scan.put(w, _rounded_symbols(y_row[w] - means), means)
        encoder.encode_with_indexes(  # row by row: the same symbol order as one call
            scan.row_symbols.reshape(-1).tolist(),
            scan.row_indexes.reshape(-1).tolist(),
            tables.cdf,
            tables.lengths,
            tables.offsets,
        )
    del y
    return Coded(
        strings=[[encoder.flush()], z_strings],
        shape=tuple(int(s) for s in z.shape[-2:]),
        params_crc=scan.params_crc(),
        symbols_crc=scan.symbols_crc,
    )


def decode_autoregressive(model, coded: Coded, seed: int, pixels: bool = False) -> torch.Tensor:
    z_hat = model.entropy_bottleneck.decompress([coded.padded(1)], coded.shape)
    scan = _ArScan(model, z_hat, seed)
    y_hat = torch.empty((1, scan.channels, scan.height, scan.width), dtype=torch.float32)
    scan.finished_row = lambda h, values: y_hat[0, :, h, :].copy_(torch.from_numpy(values.T))
    decoder = RansDecoder()
    decoder.set_stream(coded.padded(0))
    spent, budget = 0.0, coded.y_string_bits
    for h in scan.rows():
        for w in range(scan.width):
            indexes, means = scan.position(h, w)
            symbols = scan.tables.decode_stream(decoder, indexes)
            if budget is not None:  # stop as soon as the string cannot hold what came out
                spent += scan.tables.information_bits(indexes, symbols)
                if spent - 64 > budget:
                    raise CorruptStreamError(
                        f"the y string ({budget // 8} bytes) ends before the latent does "
                        f"(at row {h} of {scan.height}): a forged image size or a truncated "
                        "file"
                    )
            scan.put(w, np.asarray(symbols, dtype=np.float64), means)
    # Indexes depend on every symbol decoded before them: one check covers both.
    check_crc(coded.params_crc, scan.params_crc(), "entropy parameters")
    check_crc(coded.symbols_crc, scan.symbols_crc, "decoded symbols")
    del scan, decoder  # the quantized means and the padded string, before the synthesis
    return synthesis(model, y_hat.to(z_hat.device), pixels)
