"""Keeping CompressAI's rANS decoder inside its input, and its work inside the file.

CompressAI's ``RansDecoder`` (Giesen's ``rans64``: 64-bit state, 32-bit words, 16-bit
frequencies) never checks the end of its string: asked for more symbols than were
coded, it reads on past the end of the buffer (a crash, SIGSEGV, once it leaves the
heap). The codec has the decoders read each string followed by :func:`pad_length`
(``Coded.padded``)

    8 + 4 * symbols + 16 * len(string) + SLACK

zero bytes, and with the exact latent shape checked, ``symbols`` is known before
decoding. Why that is enough: the decoder reads the 8-byte state, then a 32-bit word
whenever its state falls below 2**31; a symbol of frequency f lowers the state by
log2(2**16 / f) <= 16 bits, so plain symbols read at most 2 bytes each on average.
Escaped (bypass-coded) values read 4-bit chunks whose count is itself coded in 4-bit
chunks, at most 15 chunks per chunk: within the string that is at most 15 bytes per
byte; past its end the words are zeros, so a count chunk of 15 can only come from the
64-bit state (at most 16 of them, 132 bytes of reads per escape), and an escape needs
the state's low 16 bits to hit the escape symbol's slot (1 of 65536 for CompressAI's
tables), far below the 1 in 66 symbols that the remaining 2 bytes per symbol pay for.
The zeros only ever feed a corrupt file, whose symbols the desync check then refuses.

The same coder bounds how short a string can be: every symbol costs at least
``-log2(f_max / 2**16)`` bits, ``f_max`` the largest frequency in the CDF tables, less
the coder's own rounding gain (at most ``2**16 / 2**31`` of a state per symbol).
:func:`check_string_can_hold` refuses a string too short to hold the symbols that the
header announces before any decoding work starts (a 150-byte file announcing an
8000x8000 image would otherwise keep an autoregressive decoder busy for minutes).
"""

from __future__ import annotations

import math

from ...errors import CorruptStreamError

PRECISION = 16  # CompressAI's CDF precision: every CDF row ends at 2**16
STATE_BYTES = 8  # the rans64 state, read once when decoding starts
BYTES_PER_SYMBOL = 4  # at most one 32-bit word per decoded symbol
BYTES_PER_STRING_BYTE = 16  # bypass escapes: <= 15 chunks per chunk read, 2 chunks a byte
SLACK = 1 << 16
# log2(x') >= log2(x) + log2(2**16 / f) - 1.4427 * f / x with x >= 2**31: the most a
# symbol can cost less than its information content.
_ROUNDING_GAIN_BITS = 1.5 * 2.0**PRECISION / 2.0**31  # 1.4427 plus a margin


def pad_length(string: bytes, symbols: int) -> int:
    """How many zero bytes after ``string`` keep a decoder of ``symbols`` symbols from
    reading past the end (see the module docstring for the bound)."""
    return STATE_BYTES + BYTES_PER_SYMBOL * symbols + BYTES_PER_STRING_BYTE * len(string) + SLACK


def min_bits_per_symbol(quantized_cdf, cdf_length) -> float:
    """The fewest bits any one symbol can cost with these CDF tables (>= 0)."""
    import torch

    cdf = quantized_cdf.detach().to(torch.int64).cpu()
    lengths = cdf_length.detach().reshape(-1).to(torch.int64).cpu()
    columns = torch.arange(cdf.shape[1] - 1)
    freqs = cdf[:, 1:] - cdf[:, :-1]
    freqs = torch.where(columns[None] < (lengths[:, None] - 1), freqs, 0)
    f_max = int(freqs.max()) if freqs.numel() else 0
    if f_max <= 0:
        return 0.0
    bits = -math.log2(min(f_max, 2**PRECISION) / 2**PRECISION)
    return max(0.0, bits - _ROUNDING_GAIN_BITS)


def check_string_can_hold(string: bytes, symbols: int, bits_per_symbol: float, what: str):
    """Raise CorruptStreamError if ``string`` is too short to code ``symbols`` symbols
    that cost at least ``bits_per_symbol`` bits each (the final state holds 64 bits)."""
    needed_bits = symbols * bits_per_symbol - 8 * STATE_BYTES
    if 8 * len(string) < needed_bits:
        raise CorruptStreamError(
            f"not a valid .aigic file: the {what} ({len(string)} bytes) is too short to "
            f"hold the {symbols} symbols its header announces (at least "
            f"{math.ceil(needed_bits / 8)} bytes): a forged or truncated image size"
        )
