"""The codecs the demo offers: one :class:`CodecOption` (a label and a Codec) per checkbox.

Registered codecs (conventional and plugins) come from ``pku_aigi.codecs``; learned
codecs are the zoo's families (:func:`pku_aigi.codecs.families.discover_families`: the
zoo manifest plus model folders under ``PKU_AIGI_MODELS_DIR``), one option per
(architecture, metric). An option that cannot run here keeps the reason instead of a
codec, never an exception.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..codecs.base import Codec
from ..errors import PkuAigiError

MAX_RD_POINTS = 6  # points of an RD curve: enough for a curve, affordable on a CPU Space


@dataclass
class CodecOption:
    """One codec the user can choose: its label and its codec, or why it cannot run."""

    key: str  # the checkbox label, unique
    codec: Codec | None = None
    reason: str | None = None

    @property
    def available(self) -> bool:
        return self.codec is not None


def registered_options() -> list[CodecOption]:
    """One option per registered codec, available or with its reason; each decodes at
    most the Space's pixel limit (:func:`registered_codec`)."""
    from .. import codecs

    options = []
    for name, reason in codecs.availability().items():
        if reason is None:
            try:
                options.append(CodecOption(name, registered_codec(name)))
                continue
            except PkuAigiError as error:
                reason = str(error)
        options.append(CodecOption(name, reason=reason))
    return options


def registered_codec(name: str) -> Codec:
    """The registered codec ``name`` with the Space's pixel limit (``max_pixels``), which
    every codec of this package checks from the stream's header before decoding; a plugin
    that takes no ``max_pixels`` is made without it (the Decode tab then checks what
    Pillow reads of the header, and the decoded size).

    Raises:
        CodecError: the codec is unavailable here.
    """
    from .. import codecs
    from .upload import max_pixels

    try:
        return codecs.get(name, max_pixels=max_pixels())
    except TypeError:  # a plugin's own constructor
        return codecs.get(name)


def learned_options(models_dir: str | os.PathLike | None = None) -> list[CodecOption]:
    """One option per learned-codec family of the zoo and the local models folder, with
    the Space's limits on what one request may decode."""
    from ..codecs.families import discover_families
    from .limits import MAX_SEQUENTIAL_PIXELS
    from .upload import max_pixels

    limits = {"max_pixels": max_pixels(), "max_sequential_pixels": MAX_SEQUENTIAL_PIXELS}
    return [
        CodecOption(label, reason=found) if isinstance(found, str) else CodecOption(label, found)
        for label, found in discover_families(models_dir, **limits).items()
    ]


@dataclass
class Catalog:
    """Every codec option of the demo, in UI order (registered codecs first)."""

    options: list[CodecOption]

    @classmethod
    def discover(cls, models_dir: str | os.PathLike | None = None) -> Catalog:
        return cls(registered_options() + learned_options(models_dir))

    def get(self, key: str) -> CodecOption:
        for option in self.options:
            if option.key == key:
                return option
        raise PkuAigiError(f"unknown codec {key!r}: choose one of {', '.join(self.available_keys)}")

    @property
    def available_keys(self) -> list[str]:
        return [option.key for option in self.options if option.available]

    @property
    def unavailable(self) -> list[CodecOption]:
        return [option for option in self.options if not option.available]
