"""Every codec behind one interface (:class:`Codec`).

Conventional and plugin codecs by name (``get("jpeg")`` ... ``get("vvc")``), learned
codecs from a model (``from_model(model)``) or as zoo families (:mod:`.families`), the
.aigic container the learned codecs write, and :func:`decoder_for` for bytes of unknown
origin.
"""

from ..errors import CodecError
from .base import Codec, Signature, signature
from .by_name import (
    availability,
    available,
    canonical_name,
    codec_class,
    get,
    identify,
    names,
    register,
)
from .ladder import QualityLadder


def from_model(model, **options):
    """A :class:`Codec` that compresses with a learned model into .aigic bytes."""
    from .learned import LearnedCodec

    return LearnedCodec.from_model(model, **options)


def decoder_for(data: bytes, path=None, **options) -> Codec:
    """The codec that decodes ``data`` (``path``: its file name, a hint).

    An .aigic file names its model: that model is loaded (``options`` go to
    :class:`~pku_aigi.codecs.learned.LearnedCodec`, e.g. ``device``). Other bytes are
    matched against every registered codec's file signature, then the extension of
    ``path``.

    Raises:
        CorruptStreamError: an .aigic file with a damaged header.
        CodecError: no registered codec recognises the bytes.
    """
    from pathlib import PurePath

    from . import container

    named_aigic = path is not None and PurePath(path).suffix.lower() == container.FILE_EXTENSION
    if container.is_aigic(data) or named_aigic:  # parse says what is wrong with a bad one
        from .learned import LearnedCodec

        header = container.parse(data)
        return LearnedCodec.from_pretrained(header.model_id, header.revision or None, **options)
    candidates = identify(data, path)
    if not candidates:
        what = f"{path}" if path is not None else "the data"
        raise CodecError(
            f"cannot tell which codec wrote {what} (not .aigic, no known file signature "
            "or extension): pass --codec NAME"
        )
    return get(candidates[0])


__all__ = [
    "Codec",
    "QualityLadder",
    "Signature",
    "availability",
    "available",
    "canonical_name",
    "codec_class",
    "decoder_for",
    "from_model",
    "get",
    "identify",
    "names",
    "register",
    "signature",
]
