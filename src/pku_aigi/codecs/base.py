"""The one interface every codec of the project implements.

A codec turns a PIL image into the exact bytes that would be stored or sent, and those
bytes back into a PIL image. Conventional codecs (JPEG ... VVC), learned codecs (wrapped
Hub models writing the .aigic container) and plugin codecs look the same to the
benchmark, the CLI and the Space: each declares its quality ladder
(:class:`~pku_aigi.codecs.ladder.QualityLadder`) and the file signature of its bytes.
"""

from __future__ import annotations

import abc
import functools
import threading
from dataclasses import dataclass
from typing import ClassVar

from PIL import Image

from ..image_input import MAX_PIXELS_DEFAULT  # noqa: F401 - re-exported for codecs
from .ladder import QualityLadder


@dataclass(frozen=True)
class Signature:
    """Bytes that every file of a format holds at fixed offsets.

    ``parts`` are ``(offset, bytes)`` pairs that must all match; a negative offset counts
    from the end of the file (an end marker).
    """

    parts: tuple[tuple[int, bytes], ...]

    def matches(self, data: bytes) -> bool:
        for offset, expected in self.parts:
            start = offset if offset >= 0 else len(data) + offset
            if start < 0 or data[start : start + len(expected)] != expected:
                return False
        return True


def signature(*parts: tuple[int, bytes]) -> Signature:
    return Signature(tuple(parts))


_load_lock = threading.Lock()
_PRIVATE = "_pku_aigi_private"  # set on the Image objects made by private_image


def private_image(image):
    """A new ``PIL.Image`` object over the pixels of ``image``, for one call alone.

    Pillow keeps per-call state on the image object (``Image.save`` stores its encoder
    settings in ``encoderinfo``; a lazily opened file loads on first use, moving its file
    pointer), so calls that share one object mix their settings. The pixels themselves
    are only read: the new object shares them (no copy), with its own ``info`` and
    palette. The image is loaded first, once, under a lock. Anything that is not a PIL
    image, and an animated image, is returned as it is (the codecs refuse both).
    """
    if not isinstance(image, Image.Image) or getattr(image, _PRIVATE, False):
        return image
    if getattr(image, "n_frames", 1) > 1:
        return image  # animated: every codec refuses it, naming the frame count
    with _load_lock:
        image.load()
    private = image._new(image.im)
    setattr(private, _PRIVATE, True)
    return private


def _with_private_image(encode):
    """Wrap a codec's ``encode`` so that it gets :func:`private_image` of its input."""

    @functools.wraps(encode)
    def wrapper(self, image, *args, **kwargs):
        return encode(self, private_image(image), *args, **kwargs)

    wrapper.__wrapped_private__ = True
    return wrapper


class _FromLadder:
    """A read-only attribute derived from the (class or instance) ``ladder``."""

    def __init__(self, read):
        self.read = read

    def __get__(self, instance, owner):
        return self.read((instance or owner).ladder)


class Codec(abc.ABC):
    """A lossy image codec.

    Subclasses set the class attributes and implement :meth:`encode` / :meth:`decode`.
    Calls may come from several threads at once, on one image object: ``encode`` is
    handed a private image object (see :meth:`__init_subclass__`); keep any other
    per-call state out of the codec instance.
    ``quality`` is the codec's own knob in its own units, documented in
    ``quality_help`` and declared by ``ladder``.
    """

    name: ClassVar[str]  # registry name, e.g. "jpeg", "vvc"
    aliases: ClassVar[tuple[str, ...]] = ()  # other names accepted by codecs.get
    description: ClassVar[str]  # one line for `pku-aigi codecs`
    quality_help: ClassVar[str]  # the quality scale: range, direction, what it maps to
    ladder: ClassVar[QualityLadder]  # accepted qualities, RD sweep grid, direction
    file_extension: ClassVar[str]  # e.g. ".jpg", ".aigic"
    signatures: ClassVar[tuple[Signature, ...]] = ()  # any one identifies the codec's files
    text_conditioned: ClassVar[bool] = False  # True if the prompt changes the bitstream

    # Views of the ladder under the names callers used before it existed.
    quality_range = _FromLadder(lambda ladder: ladder.range)  # (lowest, highest) value
    higher_quality_is_better = _FromLadder(lambda ladder: ladder.higher_is_better)
    default_qualities = _FromLadder(lambda ladder: ladder.sweep)  # low rate -> high rate

    def __init_subclass__(cls, **kwargs):
        """Every subclass's ``encode`` (plugins' too) works on its own image object, so
        that one image can be coded by several codecs or threads at once and each gives
        the bytes it gives alone (:func:`private_image`)."""
        super().__init_subclass__(**kwargs)
        encode = cls.__dict__.get("encode")
        if callable(encode) and not getattr(encode, "__wrapped_private__", False):
            cls.encode = _with_private_image(encode)

    @classmethod
    def availability(cls) -> str | None:
        """``None`` if the codec runs on this machine, else the reason it cannot."""
        return None

    @classmethod
    def matches(cls, data: bytes) -> bool:
        """True if ``data`` starts (or ends) like a file this codec writes."""
        return any(sig.matches(data) for sig in cls.signatures)

    @property
    def version(self) -> str:
        """Identifies the exact implementation (library versions, settings, weights).

        The benchmark keys cached measurements on it: anything that can change the
        bitstream must change this string.
        """
        return self.name

    @abc.abstractmethod
    def encode(self, image: Image.Image, quality: float, *, prompt: str | None = None) -> bytes:
        """Compress ``image`` at ``quality``; return exactly the bytes to store.

        ``prompt`` is used by text-conditioned codecs and ignored by the others.
        """

    @abc.abstractmethod
    def decode(self, data: bytes) -> Image.Image:
        """Decompress bytes made by :meth:`encode`; raise CorruptStreamError if invalid."""

    def check_quality(self, quality: float) -> float:
        """``quality`` if the ladder accepts it (an int on integer ladders), else CodecError."""
        return self.ladder.check(quality, self.name, self.quality_help)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
