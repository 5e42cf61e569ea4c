"""Exact execution of a convolutional stack in horizontal bands, for bounded memory.

The analysis and synthesis transforms of learned image codecs (Ballé et al. 2018;
Minnen et al. 2018; Cheng et al. 2020) hold 128-192 channels at half the image's
resolution: 3 GB in float32 for a 24 MP image. Each output row of such a stack depends
on a bounded range of its input rows (its receptive field), so the stack can run on
bands of full-width rows, each extended by a halo of the rows its outputs depend on,
and the bands' outputs concatenated. Every output row is then computed from exactly
the same input values, by the same layers, as in one pass over the whole image.

:func:`row_map` derives the receptive field from the layers themselves (convolutions,
transposed convolutions, pixel shuffles, point-wise layers, and CompressAI's residual
and attention blocks); a layer it does not know raises :class:`UnsupportedLayerError`,
and callers then run the stack in one pass. Band starts are aligned to the stack's
total stride, so a strided layer sees its input at the same phase as in one pass.

Exactness: every output row comes from the same input values as in one pass. Whether
the floating-point results are the same bits depends on the kernels: each band is given
to the layers in the same memory format as one pass would (``layout``), but oneDNN may
pick another kernel, which sums in another order, for another band height, and which
one depends on the CPU: the results are the same up to float32 rounding, not
necessarily the same bits. Measured on one Xeon: the same bits for Ballé's and
Minnen's transforms, the last bits differ in cheng2020's attention and sub-pixel blocks
(1.2e-7 on g_a, 4e-6 on g_s); BLAS's float64 GEMMs may round the last bit of another
band height differently (5e-17). ``tests/test_models_banding.py`` checks each case
within float32 rounding.
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import torch
from torch import nn

# Layers that act on each pixel alone (GDN and IGDN mix channels only).
_POINTWISE = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.PReLU,
    nn.GELU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Identity,
    nn.SiLU,
)
_POINTWISE_NAMES = {"GDN", "GDN1"}


class UnsupportedLayerError(TypeError):
    """The stack holds a layer whose receptive field this module cannot derive."""


@dataclass(frozen=True)
class RowMap:
    """How a stack maps input rows to output rows (along the height only).

    ``needed(lo, hi)`` is the half-open range of input rows that output rows
    ``[lo, hi)`` depend on (it may reach outside the input: those rows are padding);
    ``size(n)`` is the output height for an input of ``n`` rows; ``scale`` is output
    rows per input row; input band starts must be multiples of ``alignment``.
    """

    needed: Callable[[int, int], tuple[int, int]]
    size: Callable[[int], int]
    scale: Fraction
    alignment: int


_IDENTITY = RowMap(lambda lo, hi: (lo, hi), lambda n: n, Fraction(1), 1)


def _conv(layer: nn.Conv2d) -> RowMap:
    k, s, d = layer.kernel_size[0], layer.stride[0], layer.dilation[0]
    p = layer.padding[0]
    if isinstance(p, str) or layer.padding_mode != "zeros":
        raise UnsupportedLayerError(f"{layer}: only zero padding given as a number")
    return RowMap(
        lambda lo, hi: (lo * s - p, (hi - 1) * s - p + d * (k - 1) + 1),
        lambda n: (n + 2 * p - d * (k - 1) - 1) // s + 1,
        Fraction(1, s),
        s,
    )


def _conv_transpose(layer: nn.ConvTranspose2d) -> RowMap:
    k, s, d = layer.kernel_size[0], layer.stride[0], layer.dilation[0]
    p, extra = layer.padding[0], layer.output_padding[0]
    # Output row o receives input row i through kernel tap j when o = i*s - p + j*d.
    return RowMap(
        lambda lo, hi: (-((-(lo + p - d * (k - 1))) // s), (hi - 1 + p) // s + 1),
        lambda n: (n - 1) * s - 2 * p + d * (k - 1) + extra + 1,
        Fraction(s),
        1,
    )


def _pixel_shuffle(r: int) -> RowMap:
    return RowMap(lambda lo, hi: (lo // r, (hi - 1) // r + 1), lambda n: n * r, Fraction(r), 1)


def _pixel_unshuffle(r: int) -> RowMap:
    return RowMap(lambda lo, hi: (lo * r, hi * r), lambda n: n // r, Fraction(1, r), r)


def _chain(maps: list[RowMap]) -> RowMap:
    """``maps`` applied in order (the first one sees the input)."""
    if not maps:
        return _IDENTITY

    def needed(lo: int, hi: int) -> tuple[int, int]:
        for m in reversed(maps):
            lo, hi = m.needed(lo, hi)
        return lo, hi

    def size(n: int) -> int:
        for m in maps:
            n = m.size(n)
        return n

    # A band start a is valid if every layer sees its input start a * S (S: the scale
    # of the layers before it, p/q) at a whole multiple of its alignment A:
    # a * p / q in A * Z  <=>  a in (q * A / gcd(p, q * A)) * Z.
    alignment, scale = 1, Fraction(1)
    for m in maps:
        rows = scale.denominator * m.alignment
        alignment = math.lcm(alignment, rows // math.gcd(scale.numerator, rows))
        scale *= m.scale
    return RowMap(needed, size, scale, math.lcm(alignment, scale.denominator))


def _branches(maps: list[RowMap]) -> RowMap:
    """Branches summed or multiplied pixel by pixel: the union of their fields."""
    if len({m.scale for m in maps}) != 1:
        raise UnsupportedLayerError("branches of a block change the height differently")

    def needed(lo: int, hi: int) -> tuple[int, int]:
        ranges = [m.needed(lo, hi) for m in maps]
        return min(r[0] for r in ranges), max(r[1] for r in ranges)

    alignment = math.lcm(*(m.alignment for m in maps))
    return RowMap(needed, maps[0].size, maps[0].scale, alignment)


def _block_branches(module: nn.Module) -> list[nn.Module] | None:
    """The parallel branches of CompressAI's residual and attention blocks."""
    name = type(module).__name__
    identity = nn.Identity()
    if name == "ResidualBlock":
        return [nn.Sequential(module.conv1, module.conv2), module.skip or identity]
    if name == "ResidualBlockWithStride":
        return [nn.Sequential(module.conv1, module.conv2), module.skip or identity]
    if name == "ResidualBlockUpsample":
        return [nn.Sequential(module.subpel_conv, module.conv), module.upsample]
    if name == "AttentionBlock":
        return [module.conv_a, module.conv_b, identity]
    if name == "ResidualUnit" and set(dict(module.named_children())) == {"conv", "relu"}:
        return [module.conv, identity]
    return None


def row_map(module: nn.Module) -> RowMap:
    """The :class:`RowMap` of ``module``; UnsupportedLayerError if it has unknown layers."""
    if isinstance(module, nn.Conv2d):
        return _conv(module)
    if isinstance(module, nn.ConvTranspose2d):
        return _conv_transpose(module)
    if isinstance(module, nn.PixelShuffle):
        return _pixel_shuffle(module.upscale_factor)
    if isinstance(module, nn.PixelUnshuffle):
        return _pixel_unshuffle(module.downscale_factor)
    if isinstance(module, _POINTWISE) or type(module).__name__ in _POINTWISE_NAMES:
        return _IDENTITY
    if type(module) is nn.Sequential:
        return _chain([row_map(m) for m in module])
    branches = _block_branches(module)
    if branches is not None:
        return _branches([row_map(b) for b in branches])
    raise UnsupportedLayerError(f"no receptive-field rule for {type(module).__name__}")


class _RowStream:
    """Output rows of one layer, computed on request in increasing order.

    It keeps the rows it returned last, so that the next request (which overlaps it by
    the next layer's halo) only computes the rows it lacks: chained over the layers of
    a stack, each layer computes each of its output rows about once.
    """

    def __init__(
        self,
        layer: nn.Module,
        source: Callable[[int, int], torch.Tensor],
        height: int,
        layout: torch.memory_format,
    ):
        self.layer, self.source, self.in_height, self.layout = layer, source, height, layout
        self.map = row_map(layer)
        self.height = self.map.size(height)
        self.kept: torch.Tensor | None = None
        self.kept_lo = 0

    def __call__(self, lo: int, hi: int) -> torch.Tensor:
        lo, hi = max(lo, 0), min(hi, self.height)
        kept_hi = self.kept_lo + (0 if self.kept is None else self.kept.shape[-2])
        if self.kept is not None and self.kept_lo <= lo <= kept_hi:
            if hi > kept_hi:
                new = self._compute(kept_hi, hi)
                self.kept = torch.cat([self.kept[..., lo - self.kept_lo :, :], new], dim=-2)
                self.kept_lo = lo
        else:  # the first request, or one that does not continue the last one
            self.kept, self.kept_lo = self._compute(lo, hi), lo
        return _fresh(self.kept[..., lo - self.kept_lo : hi - self.kept_lo, :], self.layout)

    def _compute(self, lo: int, hi: int) -> torch.Tensor:
        start, stop = self.map.needed(lo, hi)
        start = max(0, start) // self.map.alignment * self.map.alignment
        # The last rows are computed from the input's true end (the same bottom padding).
        stop = self.in_height if hi == self.height else min(self.in_height, max(stop, start + 1))
        out_start = self.map.scale * start
        if out_start.denominator != 1:
            raise AssertionError(f"input row {start} is not aligned for {self.layer}")
        output = self.layer(self.source(start, stop))
        first = lo - int(out_start)
        if first < 0 or first + (hi - lo) > output.shape[-2]:
            raise AssertionError(
                f"{type(self.layer).__name__} on input rows {start}..{stop} gave "
                f"{output.shape[-2]} rows, not output rows {lo}..{hi}"
            )
        return output[..., first : first + hi - lo, :]


def _layers(stack: nn.Module) -> list[nn.Module]:
    """The streamed steps of ``stack``: the top-level layers of a Sequential, each with
    the point-wise layers that follow it (they need no rows of their own: one copy of
    each band fewer), else the module itself."""
    if type(stack) is not nn.Sequential or not len(stack):
        return [stack]
    steps: list[list[nn.Module]] = []
    for layer in stack:
        if steps and row_map(layer) is _IDENTITY:
            steps[-1].append(layer)
        else:
            steps.append([layer])
    return [step[0] if len(step) == 1 else nn.Sequential(*step) for step in steps]


def output_height(stack: nn.Module, height: int) -> int:
    """The output height of ``stack`` for an input of ``height`` rows."""
    return row_map(stack).size(height)


def bands(
    stack: nn.Module,
    rows: Callable[[int, int], torch.Tensor] | torch.Tensor,
    height: int | None = None,
    *,
    band_rows: int,
    layout: torch.memory_format = torch.contiguous_format,
    prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Run ``stack`` band by band; yield ``(lo, hi, output rows lo..hi-1)`` in order.

    Args:
        stack: the layers (see :func:`row_map`); the layers of a Sequential are chained
            as :class:`_RowStream`, so no row is computed twice except inside blocks.
        rows: the input (N, C, H, W) tensor, or ``rows(lo, hi)`` giving input rows
            ``lo..hi-1`` (so that the whole input never needs to exist at once).
        height: the input height (required when ``rows`` is a function).
        band_rows: output rows per band (the last band may be shorter).
        layout: the memory format of every band a layer sees, as in one pass over a
            tensor of that format (oneDNN picks other kernels, with other rounding,
            for other formats).
        prepare: an element-wise map of the input tensor's rows before the first
            layer (e.g. 8-bit pixels to float), so it runs a band at a time.
    """
    if isinstance(rows, torch.Tensor):
        tensor, prepare = rows, prepare or (lambda t: t)
        height = tensor.shape[-2]
        rows = lambda lo, hi: _fresh(prepare(tensor[..., lo:hi, :]), layout)  # noqa: E731
    if height is None:
        raise ValueError("height is required when rows is a function")
    source = rows
    for layer in _layers(stack):
        source = _RowStream(layer, source, height, layout)
        height = source.height
    band_rows = max(1, int(band_rows))
    for lo in range(0, height, band_rows):
        hi = min(height, lo + band_rows)
        yield lo, hi, source(lo, hi)


def release_free_memory() -> None:
    """Return the C heap's free memory to the system (glibc's ``malloc_trim``).

    glibc raises its mmap threshold to the largest block freed (up to 32 MB), so once a
    band's buffers are freed the next bands' come from the heap, whose free memory it
    then keeps: measured, 90 MB more resident memory during the autoregressive scan of
    a 12 MP image. Not after every band of the transforms: the next band faults the
    memory in again (a 4 MP mbt2018-mean encode then took 1.7x the time). Without glibc
    (macOS, Windows, musl) this does nothing.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None


_MALLOC_TRIM = _malloc_trim()


def run_in_bands(
    stack: nn.Module,
    x: torch.Tensor,
    *,
    band_rows: int,
    layout: torch.memory_format = torch.contiguous_format,
    prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
    finish: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """``stack(x)`` in ``layout``, computed band by band (the same values, see the
    module docstring). ``prepare`` maps each input band, ``finish`` each output band
    before it is stored (element-wise maps: an in-place clamp, a conversion to 8-bit
    pixels). A stack with a layer :func:`row_map` does not know runs in one pass.
    """
    prepare, finish = prepare or (lambda t: t), finish or (lambda t: t)
    try:
        height = output_height(stack, x.shape[-2])
    except UnsupportedLayerError:
        return finish(stack(prepare(x).contiguous(memory_format=layout)))
    out = None
    for lo, hi, band in bands(stack, x, band_rows=band_rows, layout=layout, prepare=prepare):
        band = finish(band)
        if out is None:
            out = band.new_empty((*band.shape[:-2], height, band.shape[-1]))
            out = out.contiguous(memory_format=layout)
        out[..., lo:hi, :] = band
        del band
    return out


def _fresh(band: torch.Tensor, layout: torch.memory_format) -> torch.Tensor:
    """A copy of ``band`` in ``layout``: oneDNN picks other kernels, which round
    differently, for another memory format; and a layer that works in place (ReLU)
    must not change rows that the next band or the caller still holds."""
    return band.clone(memory_format=layout)
