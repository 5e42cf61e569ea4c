"""Every codec behind one interface (:class:`Codec`).

Conventional codecs by name (``get("jpeg")`` ... ``get("vvc")``), learned codecs from a
model (``from_model(model)``), and the .aigic container the learned codecs write.
"""

from .base import Codec
from .registry import availability, available, codec_class, get, names, register


def from_model(model, **options):
    """A :class:`Codec` that compresses with a learned model into .aigic bytes."""
    from .learned import LearnedCodec

    return LearnedCodec.from_model(model, **options)


__all__ = [
    "Codec",
    "availability",
    "available",
    "codec_class",
    "from_model",
    "get",
    "names",
    "register",
]
