"""How many threads a codec library may start for one encode or decode.

``0`` (the default) leaves each library its own default, usually one thread per core.
The benchmark's worker processes set ``1``: with one worker process per core, codecs
that each start a thread per core oversubscribe the machine (x265's thread pool,
VVenC, the native HEVC/VVC decoders, libaom, dav1d).

The setting never changes a bitstream, so it is not part of ``Codec.version``
(``tests/test_codec_threads.py`` checks it): x265, VVenC and libjxl give the same bytes
for any thread count; libaom does not (its row-based multithreading, enabled by libavif
for more than one thread, codes differently), so AVIF always encodes with at least two
threads, see :class:`~pku_aigi.codecs.pillow_codecs.AvifCodec`.
"""

from __future__ import annotations

_threads = 0


def codec_threads() -> int:
    """Threads per codec call: 0 for each library's default, else that many."""
    return _threads


def set_codec_threads(threads: int) -> None:
    """Set the threads per codec call for this process (0: the libraries' defaults)."""
    global _threads
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ValueError(f"threads must be a whole number >= 0, got {threads!r}")
    _threads = threads
