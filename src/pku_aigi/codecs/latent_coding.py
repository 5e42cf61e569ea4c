"""Deterministic entropy coding of CompressAI-style latents, with a desync check.

Learned codecs with a hyperprior (Ballé et al. 2018; Minnen et al. 2018; Cheng et al.
2020) decode only if the decoder recomputes *exactly* the entropy parameters (the scale
index of every latent element and, for mean-scale models, its mean) that the encoder
used. Float noise between devices or convolution algorithms (TF32, cuDNN autotuning)
flips a scale index now and then, and the rANS decoder then silently produces garbage.

This module codes latents so that such noise does not matter in practice, and is
detected when it does:

- the entropy-parameter networks (hyper-synthesis ``h_s``, context model and
  ``entropy_parameters``) run in float64, with TF32 off and cuDNN deterministic, so
  that devices agree to ~1e-15 instead of ~1e-3;
- scale indexes come from one ``torch.bucketize`` against the scale table (the same
  index as CompressAI's ``GaussianConditional.build_indexes``), and means are rounded
  to a fixed grid of 1/1024, so the decoder's latent is bit-identical to the encoder's;
- the encoder stores CRC32s of the scale indexes and quantized means (``params_crc``)
  and of the coded symbols (``symbols_crc``); the decoder recomputes them and raises
  :class:`DesyncError` instead of returning a wrong image.

The autoregressive context model (Minnen et al. 2018, and Cheng et al. 2020) runs in
NumPy float64 on the CPU: the rows above a position are folded into one matrix product
per row, leaving three small products per position (CompressAI recomputes a 5x5
convolution and loops over the 64 scales per position). Models that are not built from
these CompressAI classes (TCM, CATC) use their own ``compress``/``decompress`` under the
same deterministic settings, with the scale indexes and the symbols they code
recorded for ``params_crc`` and ``symbols_crc``.
"""

from __future__ import annotations

import contextlib
import copy
import zlib
from dataclasses import dataclass

import numpy as np
import torch
from compressai.ans import BufferedRansEncoder, RansDecoder
from compressai.entropy_models import EntropyModel, GaussianConditional
from compressai.models import (
    FactorizedPrior,
    JointAutoregressiveHierarchicalPriors,
    MeanScaleHyperprior,
    ScaleHyperprior,
)

from ..errors import CodecError, CorruptStreamError

MEANS_GRID = 1024.0  # means are rounded to multiples of 1 / MEANS_GRID
MEANS_LIMIT = 2.0**20  # |mean| beyond this only comes from garbage: clip, keep int32
# |symbol| beyond this only comes from broken weights; CompressAI's rANS encoder loops
# forever on escape values near the int32 limits (NaN latents round to -2**31).
SYMBOL_LIMIT = 2**22
CONTEXT_KERNEL = 5  # masked 5x5 convolution of Minnen et al. 2018


class DesyncError(CorruptStreamError):
    """The decoder's entropy parameters or symbols differ from the encoder's.

    ``str(error)`` names what differs; the codec adds the devices and models.
    """


@dataclass
class Coded:
    strings: list[list[bytes]]
    shape: tuple[int, ...]
    params_crc: int
    symbols_crc: int | None


@contextlib.contextmanager
def deterministic_torch():
    """TF32 off, cuDNN deterministic and not autotuning, for the duration of coding."""
    cudnn = torch.backends.cudnn
    saved = (cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32)
    saved_matmul = torch.backends.cuda.matmul.allow_tf32
    cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32 = True, False, False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.inference_mode():
            yield
    finally:
        cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32 = saved
        torch.backends.cuda.matmul.allow_tf32 = saved_matmul


def _dequantized(eb, z: torch.Tensor) -> torch.Tensor:
    """What ``eb.decompress(eb.compress(z))`` returns, without running the rANS decoder:
    round(z - medians) + medians, the same float operations as the decoder's."""
    medians = eb._get_medians().detach().reshape(1, -1, 1, 1)
    return torch.round(z - medians) + medians


def _fast(x: torch.Tensor) -> torch.Tensor:
    """Channels-last on the CPU: oneDNN runs the analysis/synthesis convolutions ~1.4x
    faster (same values; these transforms do not feed the entropy parameters)."""
    return x.contiguous(memory_format=torch.channels_last) if x.device.type == "cpu" else x


def _cached(model, name: str, tensors, build):
    """``build()``, cached on ``model`` until one of ``tensors`` changes.

    The key holds each tensor's storage, version counter and sum, so in-place edits of
    the weights (optimizer steps, ``load_state_dict``) invalidate the cache.
    """
    key = tuple((t.data_ptr(), t._version, t.device, float(t.detach().sum())) for t in tensors)
    cache = model.__dict__.setdefault("_pku_aigi_coding_cache", {})
    hit = cache.get(name)
    if hit is not None and hit[0] == key:
        return hit[1]
    value = build()
    cache[name] = (key, value)
    return value


def _float64_copy(model, name: str):
    """A float64 copy of ``model.<name>`` (cached while its weights do not change)."""
    module = getattr(model, name)
    tensors = list(module.state_dict().values())
    return _cached(model, name, tensors, lambda: copy.deepcopy(module).double().eval())


def _crc(*arrays, seed: int = 0) -> int:
    crc = seed
    for array in arrays:
        crc = zlib.crc32(np.ascontiguousarray(array).tobytes(), crc)
    return crc


def _in_range(symbols, what: str = "latent symbols"):
    """``symbols`` (tensor or array), refused if beyond ``SYMBOL_LIMIT``."""
    values = symbols.detach().cpu().numpy() if isinstance(symbols, torch.Tensor) else symbols
    if values.size and int(np.abs(values.astype(np.int64)).max()) >= SYMBOL_LIMIT:
        raise CodecError(
            f"the model produced {what} beyond +-{SYMBOL_LIMIT} (NaN, inf or huge "
            "latents): its weights are broken, the image cannot be coded with it"
        )
    return symbols


@contextlib.contextmanager
def _symbols_checked(model):
    """Check every symbol that the model's entropy models hand to the rANS encoder."""
    patched = []
    for module in model.modules():
        if isinstance(module, EntropyModel) and "quantize" not in module.__dict__:

            def quantize(inputs, mode, *args, _quantize=module.quantize, **kwargs):
                out = _quantize(inputs, mode, *args, **kwargs)
                return _in_range(out) if mode == "symbols" else out

            module.quantize = quantize
            patched.append(module)
    try:
        yield
    finally:
        for module in patched:
            module.__dict__.pop("quantize", None)


def _finite(tensor: torch.Tensor, what: str) -> torch.Tensor:
    if not bool(torch.isfinite(tensor).all()):
        raise CodecError(
            f"the model produced non-finite {what} (NaN or inf): its weights are broken"
        )
    return tensor


class _GaussianTables:
    """The Gaussian conditional's CDF tables, as lists for the rANS coder."""

    def __init__(self, gc):
        if gc.scale_table.numel() == 0 or gc._offset.numel() == 0:
            raise CodecError("the model's entropy coder is not ready: call model.update()")
        self.cdf = gc._quantized_cdf.tolist()
        self.lengths = gc._cdf_length.reshape(-1).int().tolist()
        self.offsets = gc._offset.reshape(-1).int().tolist()
        table = gc.scale_table.detach().double().cpu()
        self.boundaries = table[:-1].contiguous()
        self.bound = float(gc.lower_bound_scale.bound.item())

    def decode_stream(self, decoder, indexes: np.ndarray) -> list[int]:
        """Decode one position's symbols, passing only the CDF rows it uses.

        pybind11 converts every CDF row passed on each call; a position uses a few of
        the 64 rows, and the long rows (large scales) rarely.
        """
        rows, local = np.unique(indexes, return_inverse=True)
        rows = rows.tolist()
        return decoder.decode_stream(
            local.tolist(),
            [self.cdf[r] for r in rows],
            [self.lengths[r] for r in rows],
            [self.offsets[r] for r in rows],
        )

    def indexes(self, scales: torch.Tensor) -> torch.Tensor:
        """Scale-table index per element (as ``GaussianConditional.build_indexes``)."""
        scales = scales.double().cpu().clamp_min(self.bound).contiguous()
        return torch.bucketize(scales, self.boundaries).to(torch.int32)


def _tables(model) -> _GaussianTables:
    gc = model.gaussian_conditional
    tensors = [gc._quantized_cdf, gc._cdf_length, gc._offset, gc.scale_table]
    return _cached(model, "gaussian_tables", tensors, lambda: _GaussianTables(gc))


def _quantize_means(means: torch.Tensor) -> torch.Tensor:
    """Means on the fixed grid, as integers (units of 1 / MEANS_GRID)."""
    means = means.double().cpu().clamp(-MEANS_LIMIT, MEANS_LIMIT)
    return torch.round(means * MEANS_GRID).to(torch.int32)


# --------------------------------------------------------------------- hyperprior models
def _hyper_params(model, z_hat: torch.Tensor, tables: _GaussianTables, with_means: bool):
    h_s = _float64_copy(model, "h_s")
    params = _finite(h_s(z_hat.double()), "entropy parameters")
    if with_means:
        scales, means = params.chunk(2, 1)
        return tables.indexes(scales), _quantize_means(means)
    return tables.indexes(params), torch.zeros(params.shape, dtype=torch.int32)


def _compress_hyper(model, x: torch.Tensor, with_means: bool, seed: int) -> Coded:
    tables = _tables(model)
    y = model.g_a(_fast(x))
    z = model.h_a(y if with_means else torch.abs(y))
    z_strings = model.entropy_bottleneck.compress(z)
    z_hat = _dequantized(model.entropy_bottleneck, z)
    indexes, means_q = _hyper_params(model, z_hat, tables, with_means)
    symbols = torch.round(y.double().cpu() - means_q.double() / MEANS_GRID)
    symbols = _in_range(symbols.clamp(-SYMBOL_LIMIT, SYMBOL_LIMIT).nan_to_num(SYMBOL_LIMIT))
    symbols = symbols.to(torch.int32)
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
        params_crc=_crc(indexes.numpy(), means_q.numpy(), seed=seed),
        symbols_crc=_crc(symbols.numpy(), seed=seed),
    )


def _decompress_hyper(model, coded: Coded, with_means: bool, seed: int) -> torch.Tensor:
    tables = _tables(model)
    z_hat = model.entropy_bottleneck.decompress(coded.strings[1], coded.shape)
    indexes, means_q = _hyper_params(model, z_hat, tables, with_means)
    _check(
        coded.params_crc, _crc(indexes.numpy(), means_q.numpy(), seed=seed), "entropy parameters"
    )
    values = RansDecoder().decode_with_indexes(
        coded.strings[0][0],
        indexes.reshape(-1).tolist(),
        tables.cdf,
        tables.lengths,
        tables.offsets,
    )
    symbols = torch.tensor(values, dtype=torch.int32).reshape(indexes.shape)
    _check(coded.symbols_crc, _crc(symbols.numpy(), seed=seed), "decoded symbols")
    y_hat = symbols.double() + means_q.double() / MEANS_GRID
    device = z_hat.device
    return model.g_s(_fast(y_hat.to(device=device, dtype=torch.float32))).clamp_(0, 1)


# --------------------------------------------------------------------- factorized prior
def _tables_crc(eb, seed: int) -> int:
    """CRC32 of the factorized prior's coding tables and medians: the entropy
    parameters of a factorized model, bound to the header like the others'."""
    tensors = (eb._quantized_cdf, eb._cdf_length, eb._offset, eb._get_medians().detach())
    return _crc(*(t.detach().cpu().contiguous().numpy() for t in tensors), seed=seed)


def _compress_factorized(model, x: torch.Tensor, seed: int) -> Coded:
    eb = model.entropy_bottleneck
    y = model.g_a(_fast(x))
    strings = eb.compress(y)
    medians = eb._get_medians().detach().reshape(1, -1, 1, 1)
    symbols = torch.round(y - medians).to(torch.int32).cpu()
    return Coded(
        [strings],
        tuple(int(s) for s in y.shape[-2:]),
        _tables_crc(eb, seed),
        _crc(symbols.numpy(), seed=seed),
    )


def _decompress_factorized(model, coded: Coded, seed: int) -> torch.Tensor:
    eb = model.entropy_bottleneck
    _check(coded.params_crc, _tables_crc(eb, seed), "entropy parameters")
    y_hat = eb.decompress(coded.strings[0], coded.shape)
    medians = eb._get_medians().detach().reshape(1, -1, 1, 1)
    symbols = torch.round(y_hat - medians).to(torch.int32).cpu()
    _check(coded.symbols_crc, _crc(symbols.numpy(), seed=seed), "decoded symbols")
    return model.g_s(_fast(y_hat)).clamp_(0, 1)


# --------------------------------------------------------------------- autoregressive
class _ContextModel:
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
        weights = _cached(model, "context_model", tensors, lambda: self._fold(model))
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
    tables = _tables(model)
    h_s = _float64_copy(model, "h_s")
    params = _finite(h_s(z_hat.double()), "entropy parameters")
    return tables, _ContextModel(model, params), params.shape[2], params.shape[3]


def _ar_step(tables, scales, means):
    if not (np.isfinite(scales).all() and np.isfinite(means).all()):
        raise CodecError("the model produced non-finite entropy parameters: broken weights")
    indexes = np.searchsorted(tables.boundaries.numpy(), np.maximum(scales, tables.bound))
    means_q = np.round(np.clip(means, -MEANS_LIMIT, MEANS_LIMIT) * MEANS_GRID)
    return indexes.astype(np.int32), means_q.astype(np.int32), means_q / MEANS_GRID


def _compress_ar(model, x: torch.Tensor, seed: int) -> Coded:
    y = model.g_a(_fast(x))
    z = model.h_a(y)
    z_strings = model.entropy_bottleneck.compress(z)
    z_hat = _dequantized(model.entropy_bottleneck, z)
    tables, ctx, height, width = _ar_setup(model, z_hat)
    pad = CONTEXT_KERNEL // 2
    y_np = y[0].double().cpu().numpy().transpose(1, 2, 0)  # (H, W, M)
    y_pad = np.zeros((height + 2 * pad, width + 2 * pad, y_np.shape[2]))
    all_indexes, all_means, all_symbols = [], [], []
    for h in range(height):
        row = ctx.row(y_pad, h)
        for w in range(width):
            indexes, means_q, means = _ar_step(tables, *ctx.position(row, y_pad, h, w))
            symbols = _in_range(np.nan_to_num(np.round(y_np[h, w] - means), nan=SYMBOL_LIMIT))
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
        params_crc=_crc(indexes, np.concatenate(all_means), seed=seed),
        symbols_crc=_crc(symbols, seed=seed),
    )


def _decompress_ar(model, coded: Coded, seed: int) -> torch.Tensor:
    z_hat = model.entropy_bottleneck.decompress(coded.strings[1], coded.shape)
    tables, ctx, height, width = _ar_setup(model, z_hat)
    pad = CONTEXT_KERNEL // 2
    channels = ctx.w_left.shape[0] // 2
    y_pad = np.zeros((height + 2 * pad, width + 2 * pad, channels))
    decoder = RansDecoder()
    decoder.set_stream(coded.strings[0][0])
    all_indexes, all_means, all_symbols = [], [], []
    for h in range(height):
        row = ctx.row(y_pad, h)
        for w in range(width):
            indexes, means_q, means = _ar_step(tables, *ctx.position(row, y_pad, h, w))
            symbols = tables.decode_stream(decoder, indexes)
            y_pad[h + pad, w + pad] = np.asarray(symbols, dtype=np.float64) + means
            all_indexes.append(indexes)
            all_means.append(means_q)
            all_symbols.append(np.asarray(symbols, dtype=np.int32))
    # Indexes depend on every symbol decoded before them: one check covers both.
    _check(
        coded.params_crc,
        _crc(np.concatenate(all_indexes), np.concatenate(all_means), seed=seed),
        "entropy parameters",
    )
    _check(coded.symbols_crc, _crc(np.concatenate(all_symbols), seed=seed), "decoded symbols")
    y_hat = torch.from_numpy(y_pad[pad : pad + height, pad : pad + width].transpose(2, 0, 1))
    y_hat = y_hat[None].to(device=z_hat.device, dtype=torch.float32)
    return model.g_s(_fast(y_hat)).clamp_(0, 1)


# --------------------------------------------------------------------- other models
@contextlib.contextmanager
def _record_coding(model, indexes: list, symbols: list, decoding: bool):
    """Record every scale index the model's Gaussian conditionals build, and every
    symbol its entropy models code (``quantize(..., "symbols")`` when encoding, the
    decoded symbols handed to ``dequantize`` when decoding)."""
    patched = []

    def record(sink, array):
        sink.append(array.detach().to(torch.int32).cpu().numpy())

    for module in model.modules():
        if not isinstance(module, EntropyModel):
            continue
        saved = {k: v for k, v in module.__dict__.items() if k in ("quantize", "dequantize")}
        if isinstance(module, GaussianConditional):

            def build_indexes(scales, _build=module.build_indexes):
                out = _build(scales)
                record(indexes, out)
                return out

            module.build_indexes = build_indexes
        if decoding:

            def dequantize(inputs, *args, _dequantize=module.dequantize, **kwargs):
                record(symbols, inputs)
                return _dequantize(inputs, *args, **kwargs)

            module.dequantize = dequantize
        else:

            def quantize(inputs, mode, *args, _quantize=module.quantize, **kwargs):
                out = _quantize(inputs, mode, *args, **kwargs)
                if mode == "symbols":
                    record(symbols, out)
                return out

            module.quantize = quantize
        patched.append((module, saved))
    try:
        yield
    finally:
        for module, saved in patched:
            for name in ("build_indexes", "dequantize", "quantize"):
                module.__dict__.pop(name, None)
            module.__dict__.update(saved)  # what an enclosing context had patched


def _compress_generic(model, x, text, seed: int) -> Coded:
    indexes: list = []
    symbols: list = []
    with _record_coding(model, indexes, symbols, decoding=False):
        out = model.compress(x, text=text)
    shape = tuple(int(s) for s in out["shape"])
    return Coded(out["strings"], shape, _crc(*indexes, seed=seed), _crc(*symbols, seed=seed))


def _decompress_generic(model, coded: Coded, text, seed: int) -> torch.Tensor:
    indexes: list = []
    symbols: list = []
    with _record_coding(model, indexes, symbols, decoding=True):
        x_hat = model.decompress(coded.strings, coded.shape, text=text)["x_hat"]
    _check(coded.params_crc, _crc(*indexes, seed=seed), "entropy parameters")
    _check(coded.symbols_crc, _crc(*symbols, seed=seed), "decoded symbols")
    return x_hat.clamp(0, 1)


# --------------------------------------------------------------------- dispatch
def coding_path(model) -> str:
    """Which coding path ``model`` uses: "ar", "mean-scale", "scale", "factorized" or
    "generic" (the model's own compress/decompress)."""
    if getattr(model, "text_conditioned", False):
        return "generic"
    if isinstance(model, JointAutoregressiveHierarchicalPriors):
        try:
            _ContextModel(model, torch.zeros(1, 2 * model.M, 1, 1))
        except (TypeError, AttributeError):
            return "generic"
        return "ar"
    if isinstance(model, MeanScaleHyperprior):
        return "mean-scale"
    if isinstance(model, ScaleHyperprior):
        return "scale"
    if isinstance(model, FactorizedPrior):
        return "factorized"
    return "generic"


def compress(model, x: torch.Tensor, text=None, seed: int = 0) -> Coded:
    """Entropy-code one image ``x`` (1, 3, H, W) in [0, 1] deterministically.

    ``seed`` starts the CRC32s of the desync check: the codec derives it from the
    header (size, mode, model) so that the check also binds the strings to it.
    """
    path = coding_path(model)
    with deterministic_torch(), _symbols_checked(model):
        if path == "ar":
            return _compress_ar(model, x, seed)
        if path in ("mean-scale", "scale"):
            return _compress_hyper(model, x, path == "mean-scale", seed)
        if path == "factorized":
            return _compress_factorized(model, x, seed)
        return _compress_generic(model, x, text, seed)


def decompress(model, coded: Coded, text=None, seed: int = 0) -> torch.Tensor:
    """Decode to x_hat (1, 3, H', W'); raise DesyncError if the checks disagree."""
    path = coding_path(model)
    groups = {"ar": 2, "mean-scale": 2, "scale": 2, "factorized": 1}.get(path)
    if groups is not None and (
        len(coded.strings) != groups
        or any(len(group) != 1 for group in coded.strings)
        or len(coded.shape) != 2
    ):
        raise CorruptStreamError(
            f"the coded data does not have the layout of a {path} bitstream "
            f"({len(coded.strings)} string groups, latent shape {coded.shape})"
        )
    with deterministic_torch():
        if path == "ar":
            return _decompress_ar(model, coded, seed)
        if path in ("mean-scale", "scale"):
            return _decompress_hyper(model, coded, path == "mean-scale", seed)
        if path == "factorized":
            return _decompress_factorized(model, coded, seed)
        return _decompress_generic(model, coded, text, seed)


def _check(expected: int | None, actual: int, what: str) -> None:
    if expected != actual:  # a file without the check (None) is never accepted
        raise DesyncError(what)
