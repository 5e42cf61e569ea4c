"""Deterministic entropy coding of latents, with a desync check: what every model shares.

Learned codecs with a hyperprior (Ballé et al. 2018; Minnen et al. 2018; Cheng et al.
2020) decode only if the decoder recomputes *exactly* the entropy parameters (the scale
index of every latent element and, for mean-scale models, its mean) that the encoder
used. Float noise between devices or convolution algorithms (TF32, cuDNN autotuning)
flips a scale index now and then, and the rANS decoder then silently produces garbage.

Each architecture codes its latents in its own ``LearnedCodecModel.code_latents`` /
``decode_latents`` methods, built from the parts here, so that such noise does not
matter in practice and is detected when it does:

- the entropy-parameter networks run in float64 (:func:`float64_copy`) with TF32 off and
  cuDNN deterministic (:func:`deterministic_torch`), so that devices agree to ~1e-15
  instead of ~1e-3;
- scale indexes come from one ``torch.bucketize`` against the scale table
  (:class:`GaussianTables`, the same index as CompressAI's ``build_indexes``), and means
  are rounded to a fixed grid of 1/1024 (:func:`quantize_means`), so the decoder's latent
  is bit-identical to the encoder's;
- the encoder stores CRC32s of the scale indexes and quantized means (``params_crc``)
  and of the coded symbols (``symbols_crc``); the decoder recomputes them and raises
  :class:`DesyncError` (:func:`check_crc`) instead of returning a wrong image.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import zlib
from dataclasses import dataclass

import numpy as np
import torch

from ...errors import CodecError, CorruptStreamError

MEANS_GRID = 1024.0  # means are rounded to multiples of 1 / MEANS_GRID
MEANS_LIMIT = 2.0**20  # |mean| beyond this only comes from garbage: clip, keep int32
# |symbol| beyond this only comes from broken weights; CompressAI's rANS encoder loops
# forever on escape values near the int32 limits (NaN latents round to -2**31).
SYMBOL_LIMIT = 2**22
# The most a rANS step (64-bit state >= 2**31, 16-bit frequencies) can cost less than
# the symbol's information content: 1.4427 * 2**16 / 2**31 bits, with a margin.
ROUNDING_GAIN_BITS = 1.5 * 2.0**16 / 2.0**31


class DesyncError(CorruptStreamError):
    """The decoder's entropy parameters or symbols differ from the encoder's.

    ``str(error)`` names what differs; the codec adds the devices and models.
    """


@dataclass
class Coded:
    """One image's entropy-coded latents: what an .aigic file stores of them."""

    strings: list[list[bytes]]
    shape: tuple[int, ...]
    params_crc: int
    symbols_crc: int | None
    # Bits of y's string as stored (before the rANS guard's zero padding): a decoder that
    # has decoded more information than that is past the end of a forged string.
    y_string_bits: int | None = None
    # Zero bytes a rANS decoder needs after each string so that it cannot read past it
    # (rans_guard; the model's check_coded sets them), None for none. Decoders take
    # the strings through padded(): the padding can be 20x the string.
    padding: list[list[int]] | None = None
    # Float sums checked with a tolerance (FloatChecks): the means and latent residual
    # prediction of slice models, which run in float32. None: the file has none (v1).
    float_checks: tuple[float, ...] | None = ()

    def padded(self, group: int, index: int = 0) -> bytes:
        """String ``index`` of ``group`` followed by its padding. Hand it to the rANS
        decoder at once, so that the padded copy lives only as long as that call (the
        decoder keeps its own)."""
        string = self.strings[group][index]
        pad = self.padding[group][index] if self.padding is not None else 0
        return bytes(string) + bytes(pad) if pad else string

    def padded_strings(self) -> list[list[bytes]]:
        """Every string, padded (for CompressAI's own ``decompress``)."""
        return [[self.padded(g, i) for i in range(len(s))] for g, s in enumerate(self.strings)]


_deterministic_lock = threading.Lock()
_deterministic_users = 0
_saved_settings: tuple = ()


@contextlib.contextmanager
def deterministic_torch():
    """TF32 off, cuDNN deterministic and not autotuning, for the duration of coding.

    The settings are process-wide: with several threads coding at once, the first to
    enter sets them and the last to leave restores them, so that no thread codes with
    another's restored settings.
    """
    global _deterministic_users, _saved_settings
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    with _deterministic_lock:
        if _deterministic_users == 0:
            _saved_settings = (
                cudnn.deterministic,
                cudnn.benchmark,
                cudnn.allow_tf32,
                matmul.allow_tf32,
            )
            cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32 = True, False, False
            matmul.allow_tf32 = False
        _deterministic_users += 1
    try:
        with torch.inference_mode():
            yield
    finally:
        with _deterministic_lock:
            _deterministic_users -= 1
            if _deterministic_users == 0:
                (
                    cudnn.deterministic,
                    cudnn.benchmark,
                    cudnn.allow_tf32,
                    matmul.allow_tf32,
                ) = _saved_settings


class WeightsCache:
    """Values derived from a model's weights, rebuilt when those weights change.

    The key holds each tensor's storage, version counter and sum, so in-place edits of
    the weights (optimizer steps, ``load_state_dict``) invalidate an entry.
    """

    def __init__(self):
        self._entries: dict[str, tuple] = {}

    def get(self, name: str, tensors, build):
        key = tuple((t.data_ptr(), t._version, t.device, float(t.detach().sum())) for t in tensors)
        hit = self._entries.get(name)
        if hit is not None and hit[0] == key:
            return hit[1]
        value = build()
        self._entries[name] = (key, value)
        return value


def float64_copy(model, name: str):
    """A float64 copy of ``model.<name>`` (cached while its weights do not change)."""
    module = getattr(model, name)
    tensors = list(module.state_dict().values())
    return model.coding_cache.get(name, tensors, lambda: copy.deepcopy(module).double().eval())


def fast_layout(x: torch.Tensor) -> torch.Tensor:
    """Channels-last on the CPU: oneDNN runs the analysis/synthesis convolutions ~1.4x
    faster (same values; these transforms do not feed the entropy parameters)."""
    return x.contiguous(memory_format=torch.channels_last) if x.device.type == "cpu" else x


def crc(*arrays, seed: int = 0) -> int:
    """CRC32 of the arrays' bytes, one after another, starting from ``seed``."""
    value = seed
    for array in arrays:
        value = zlib.crc32(np.ascontiguousarray(array), value)  # no copy to bytes
    return value


def check_crc(expected: int | None, actual: int, what: str) -> None:
    """Raise DesyncError naming ``what`` when a stored CRC differs; a missing one (None)
    never matches: a file cannot switch its checks off."""
    if expected != actual:
        raise DesyncError(what)


class FloatChecks:
    """Sums of float values that the decoder must recompute, compared with a tolerance.

    Exact CRCs cover what is exact (scale indexes, symbols, means on a grid); values that
    a model computes in float32 and uses unrounded, such as the means and the latent
    residual prediction (LRP) of channel-slice models (Minnen & Singh 2020), differ by
    ~1e-7 between devices but by far more when the weights differ. Each kind keeps
    ``sum(|v|)`` in float64; a decoder sum further than ``RELATIVE * sum + ABSOLUTE *
    count`` from the stored float32 one is a desync.
    """

    RELATIVE = 1e-5
    ABSOLUTE = 1e-6

    def __init__(self, kinds: tuple[str, ...]):
        self.kinds = kinds
        self.sums = [0.0] * len(kinds)
        self.counts = [0] * len(kinds)

    def add(self, kind: str, values: torch.Tensor) -> None:
        index = self.kinds.index(kind)
        self.sums[index] += float(values.detach().double().abs().sum())
        self.counts[index] += values.numel()

    def values(self) -> tuple[float, ...]:
        """The sums as stored (float32)."""
        return tuple(float(np.float32(value)) for value in self.sums)

    def check(self, stored: tuple[float, ...] | None) -> None:
        """DesyncError unless ``stored`` (None: a file without float checks) matches."""
        if stored is None:
            return
        if len(stored) != len(self.kinds):
            raise DesyncError(f"{' and '.join(self.kinds)} (the file has no float checks)")
        for kind, mine, count, theirs in zip(self.kinds, self.sums, self.counts, stored):
            if abs(mine - theirs) > self.RELATIVE * abs(theirs) + self.ABSOLUTE * count:
                raise DesyncError(kind)


def symbols_in_range(latent: torch.Tensor, centers: torch.Tensor | None = None) -> None:
    """CodecError unless ``round(latent - centers)`` can be handed to the rANS encoder."""
    values = latent.detach().double()
    if centers is not None:
        values = values - centers.detach().double().to(values.device)
    if not bool(torch.isfinite(values).all()) or float(values.abs().max()) >= SYMBOL_LIMIT:
        raise CodecError(
            f"the model produced latents that are NaN, inf or beyond +-{SYMBOL_LIMIT}: its "
            "weights are broken, the image cannot be coded with it"
        )


def tables_crc(eb, seed: int) -> int:
    """CRC32 of an entropy bottleneck's coding tables and medians: the entropy
    parameters of a factorized model, bound to the header like the others'."""
    tensors = (eb._quantized_cdf, eb._cdf_length, eb._offset, eb._get_medians().detach())
    return crc(*(t.detach().cpu().contiguous().numpy() for t in tensors), seed=seed)


def check_layout(coded: Coded, groups: int, what: str) -> None:
    """CorruptStreamError unless ``coded`` has ``groups`` groups of one string, 2-d shape."""
    if (
        len(coded.strings) != groups
        or any(len(group) != 1 for group in coded.strings)
        or len(coded.shape) != 2
    ):
        raise CorruptStreamError(
            f"the coded data does not have the layout of a {what} bitstream "
            f"({len(coded.strings)} string groups, latent shape {coded.shape})"
        )


def finite(tensor: torch.Tensor, what: str) -> torch.Tensor:
    if not bool(torch.isfinite(tensor).all()):
        raise CodecError(
            f"the model produced non-finite {what} (NaN or inf): its weights are broken"
        )
    return tensor


def dequantized(eb, z: torch.Tensor) -> torch.Tensor:
    """What ``eb.decompress(eb.compress(z))`` returns, without running the rANS decoder:
    round(z - medians) + medians, the same float operations as the decoder's."""
    medians = eb._get_medians().detach().reshape(1, -1, 1, 1)
    return torch.round(z - medians) + medians


class GaussianTables:
    """A ``GaussianConditional``'s CDF tables, as lists for the rANS coder."""

    def __init__(self, gc):
        if gc.scale_table.numel() == 0 or gc._offset.numel() == 0:
            raise CodecError("the model's entropy coder is not ready: call model.update()")
        self.cdf = gc._quantized_cdf.tolist()
        self.lengths = gc._cdf_length.reshape(-1).int().tolist()
        self.offsets = gc._offset.reshape(-1).int().tolist()
        table = gc.scale_table.detach().double().cpu()
        self.boundaries = table[:-1].contiguous()
        self.bound = float(gc.lower_bound_scale.bound.item())

    @classmethod
    def of(cls, model) -> GaussianTables:
        """The tables of ``model.gaussian_conditional`` (cached while they do not change)."""
        gc = model.gaussian_conditional
        tensors = [gc._quantized_cdf, gc._cdf_length, gc._offset, gc.scale_table]
        return model.coding_cache.get("gaussian_tables", tensors, lambda: cls(gc))

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

    def information_bits(self, indexes: np.ndarray, symbols) -> float:
        """The fewest bits the rANS coder can have spent on ``symbols`` coded with the
        CDF rows ``indexes``: -log2(frequency / 2**16) each (an escaped value at least
        its escape symbol's), less the coder's rounding gain (see codecs.rans_guard)."""
        tables = self.__dict__.get("_bit_tables")
        if tables is None:  # built once; one assignment, so threads see all or nothing
            cdf = np.asarray(self.cdf, dtype=np.float64)
            freqs = np.maximum(np.diff(cdf, axis=1), 1.0)
            tables = self._bit_tables = (
                np.maximum(16.0 - np.log2(freqs) - ROUNDING_GAIN_BITS, 0.0),
                np.asarray(self.lengths, dtype=np.int64),
                np.asarray(self.offsets, dtype=np.int64),
            )
        bits, lengths, offsets = tables
        rows = np.asarray(indexes, dtype=np.int64)
        values = np.asarray(symbols, dtype=np.int64) - offsets[rows]
        escape = lengths[rows] - 2
        values = np.where((values >= 0) & (values < escape), values, escape)
        return float(bits[rows, values].sum())

    def indexes(self, scales: torch.Tensor) -> torch.Tensor:
        """Scale-table index per element (as ``GaussianConditional.build_indexes``)."""
        scales = scales.double().cpu().clamp_min(self.bound).contiguous()
        return torch.bucketize(scales, self.boundaries).to(torch.int32)


def quantize_means(means: torch.Tensor) -> torch.Tensor:
    """Means on the fixed grid, as integers (units of 1 / MEANS_GRID)."""
    means = means.double().cpu().clamp(-MEANS_LIMIT, MEANS_LIMIT)
    return torch.round(means * MEANS_GRID).to(torch.int32)
