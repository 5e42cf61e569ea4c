"""Learned codecs behind the :class:`~pku_aigi.codecs.base.Codec` interface.

:class:`LearnedCodec` wraps one :class:`~pku_aigi.models.base.LearnedCodecModel` (one
architecture at one quality) and writes .aigic files (:mod:`.container`), coding the
latents with the model's deterministic entropy coding and desync check
(:mod:`pku_aigi.models.coding.entropy_coding`).

Images of any size are padded (replicate) to a multiple of the model's
``downsampling_factor`` (or a larger ``pad_multiple`` given here: the PKU-AIGI-500K
paper pads to 128) and cropped after decoding. The input becomes RGB by the one rule of
:func:`pku_aigi.image_input.to_rgb` (alpha dropped, float and animated images refused,
as for every codec); the header records the input's kind so that ``decode`` returns
grey images as grey:

=================  ===========================
input mode         decoded as
=================  ===========================
L, 1, LA, La       L (ITU-R 601 luma)
I;16*, I           I;16 (v * 257)
any other          RGB
=================  ===========================

:class:`LearnedCodecFamily` is one codec over several models of one architecture, one per
quality, loaded on first use (``LearnedCodec.family``); :mod:`.families` groups the zoo
into families.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import threading
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..errors import CodecError, CorruptStreamError, ModelError, PkuAigiError
from ..image_input import to_rgb
from . import container
from .base import MAX_PIXELS_DEFAULT, Codec

if TYPE_CHECKING:
    import torch
from .ladder import QualityLadder

logger = logging.getLogger(__name__)


def default_device() -> str:
    """``"cuda"`` when a GPU is available, else ``"cpu"``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _device_label(device) -> str:
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


_GREY_MODES = {"L": "L", "1": "L", "LA": "L", "La": "L"}
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _decoded_mode(mode: str) -> str:
    """The mode ``decode`` returns for an input of ``mode`` (see the module table)."""
    return "I;16" if mode in _SIXTEEN_BIT_MODES else _GREY_MODES.get(mode, "RGB")


# Image rows read at a time from PIL (a writable copy of a few rows, not of the image).
CONVERT_ROWS = 256


def _padded_input(rgb: Image.Image, multiple: int, device) -> torch.Tensor:
    """(1, 3, H', W') 8-bit pixels, H' and W' padded up to ``multiple`` by repeating the
    last row and column (``F.pad(mode="replicate")``). The model converts them to float
    a band at a time (:mod:`pku_aigi.models.coding.pixels`): a 24 MP image is 288 MB in float32."""
    import torch

    width, height = rgb.size
    x = torch.empty(
        (1, 3, height + -height % multiple, width + -width % multiple),
        dtype=torch.uint8,
        device=device,
    )
    for top in range(0, height, CONVERT_ROWS):
        bottom = min(height, top + CONVERT_ROWS)
        rows = torch.from_numpy(np.array(rgb.crop((0, top, width, bottom)), dtype=np.uint8))
        x[0, :, top:bottom, :width] = rows.permute(2, 0, 1).to(device)
    x[..., :height, width:] = x[..., :height, width - 1 : width]
    x[..., height:, :] = x[..., height - 1 : height, :]
    return x


def _from_rgb(rgb: np.ndarray, mode: str) -> Image.Image:
    image = Image.fromarray(rgb, "RGB")
    if mode == "RGB":
        return image
    gray = image.convert("L")
    if mode == "L":
        return gray
    values = np.asarray(gray, dtype=np.uint16) * 257
    return Image.fromarray(values.astype("<u2"), "I;16")


def _binding(header: container.AigicFile) -> int:
    """CRC32 of the header fields that change the image: seeds the desync check (from
    version 2 on, the coded size and the model fingerprint too)."""
    h = header
    fields = f"{h.architecture}\0{h.quality}\0{h.width}x{h.height}\0{h.mode}\0{h.prompt or ''}"
    value = zlib.crc32(fields.encode("utf-8"))
    if h.version >= 2:
        value = zlib.crc32(f"\0{h.coded_width}x{h.coded_height}\0".encode() + h.fingerprint, value)
    return value


class LearnedCodec(Codec):
    """A learned model as a :class:`Codec` writing .aigic bytes.

    Args:
        model: a ``LearnedCodecModel`` (CompressAI conventions: ``compress``,
            ``decompress``, ``update``, ``config``).
        model_id: the model's portable reference recorded in the header: its Hub repo
            id, or a folder's name, never an absolute path (default: the architecture
            and quality). The model's fingerprint, also in the header, identifies the
            weights.
        revision: the model's revision recorded in the header.
        device: "cpu", "cuda", ... (default: cuda when available). The model is moved
            there.
        pad_multiple: pad to a multiple of this (at least the model's own, at most
            1024); the header records the padded size, so any decoder reads the file.
        max_pixels: largest image (width x height) accepted by encode and decode.
        max_sequential_pixels: largest image decoded by an autoregressive model (mbt2018,
            cheng2020), whose context model decodes one latent position at a time
            (None: max_pixels); a server sets it low so one file cannot block it.
    """

    file_extension = container.FILE_EXTENSION

    def __init__(
        self,
        model,
        *,
        model_id: str | None = None,
        revision: str | None = None,
        device=None,
        pad_multiple: int | None = None,
        max_pixels: int = MAX_PIXELS_DEFAULT,
        max_sequential_pixels: int | None = None,
    ):
        import torch

        config = dict(getattr(model, "config", {}) or {})
        architecture = config.get("architecture") or getattr(model, "architecture", "")
        if not architecture:
            raise ModelError("the model has no architecture name: it is not a LearnedCodecModel")
        self.model = model
        self.name = architecture
        self.model_quality = int(config.get("quality") or 0)
        self.model_id = model_id or f"{architecture}-q{self.model_quality}"
        self.revision = revision or ""
        self.device = torch.device(device or default_device())
        own = int(model.downsampling_factor)
        wanted = int(pad_multiple or own)
        if wanted % own or wanted > container.MAX_PADDING:
            raise CodecError(
                f"pad_multiple {wanted} must be a multiple of the model's {own}, at most "
                f"{container.MAX_PADDING}"
            )
        self.pad_multiple = wanted
        self.max_pixels = int(max_pixels)
        self.max_sequential_pixels = max_sequential_pixels
        self.text_conditioned = bool(getattr(model, "text_conditioned", False))
        self.description = f"learned codec {architecture}, quality {self.model_quality}"
        self.quality_help = (
            f"fixed by the model: {self.model_quality} (load another model for another rate)"
        )
        self.ladder = QualityLadder.of((self.model_quality,))
        model.to(self.device).eval()
        model.update(force=False)  # no-op when the entropy coder is ready

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_model(cls, model, **options) -> LearnedCodec:
        """Wrap an in-memory model (e.g. ``pku_aigi.models.create(...)``)."""
        return cls(model, **options)

    @classmethod
    def from_pretrained(cls, repo_or_dir, revision: str | None = None, **options) -> LearnedCodec:
        """Load a saved model (local folder or Hub repo id) and wrap it."""
        from ..models.base import LearnedCodecModel
        from ..models.hub.folder import portable_reference

        model = LearnedCodecModel.from_pretrained(str(repo_or_dir), revision=revision)
        model_id = str(repo_or_dir)
        if Path(model_id).is_dir():  # never an absolute path in the files it writes
            model_id, snapshot = portable_reference(model_id)
            revision = revision or snapshot
        options.setdefault("model_id", model_id)
        return cls(model, revision=revision, **options)

    @staticmethod
    def family(name: str, members: dict, **options) -> LearnedCodecFamily:
        """One codec over several models, ``{quality: repo_or_dir_or_model}`` (RD sweeps)."""
        return LearnedCodecFamily(name, members, **options)

    def matches(self, data: bytes) -> bool:
        """True for .aigic bytes of this architecture and quality."""
        header = container.peek(data)
        return header is not None and (header.architecture, header.quality) == (
            self.name,
            self.model_quality,
        )

    # ------------------------------------------------------------------ Codec API
    @property
    def fingerprint(self) -> bytes:
        """The model's fingerprint (:meth:`LearnedCodecModel.fingerprint`), as in headers."""
        return self.model.fingerprint()

    @property
    def version(self) -> str:
        rev = f"@{self.revision}" if self.revision else ""
        return (
            f"{self.name}-q{self.model_quality}:{self.model_id}{rev}:"
            f"{self.fingerprint.hex()}:aigic{container.FORMAT_VERSION}"
        )

    def check_quality(self, quality) -> int:
        if quality is not None and quality != self.model_quality:
            raise CodecError(
                f"{self.model_id} codes at quality {self.model_quality} only, not {quality}: "
                "load the model trained for that quality (or use LearnedCodec.family)"
            )
        return self.model_quality

    def encode(self, image: Image.Image, quality=None, *, prompt: str | None = None) -> bytes:
        """Compress ``image`` into .aigic bytes (see the module docstring for modes)."""
        self.check_quality(quality)
        rgb = to_rgb(image, self.max_pixels)
        prompt = prompt if self.text_conditioned else None  # others ignore it
        x = _padded_input(rgb, self.pad_multiple, self.device)
        header = container.AigicFile(
            architecture=self.name,
            model_id=self.model_id,
            revision=self.revision,
            quality=self.model_quality,
            width=image.width,
            height=image.height,
            mode=_decoded_mode(image.mode),
            latent_shape=(),
            strings=[],
            device=_device_label(self.device),
            prompt=prompt,  # None for models that ignore prompts
            fingerprint=self.fingerprint,
            coded_width=int(x.shape[-1]),
            coded_height=int(x.shape[-2]),
        )
        coded = self.model.code_latents(x, self._text(prompt), _binding(header))
        return container.pack(
            dataclasses.replace(
                header,
                latent_shape=coded.shape,
                strings=coded.strings,
                params_crc=coded.params_crc,
                symbols_crc=coded.symbols_crc,
                float_checks=tuple(coded.float_checks or ()),
            )
        )

    def decode(self, data: bytes) -> Image.Image:
        """Decode .aigic bytes made with this model; CorruptStreamError otherwise.

        Before any decoding work the header must name this architecture and quality and
        (version 2) carry this model's fingerprint, and its coded size and latent shape
        must be the ones the model implies.
        """
        from ..models.coding.entropy_coding import Coded, DesyncError

        header = container.parse(data, max_pixels=self.max_pixels)
        self._check_header(header)
        coded = Coded(header.strings, header.latent_shape, header.params_crc, header.symbols_crc)
        coded.padding = self._checked_padding(header)
        coded.y_string_bits = 8 * len(header.strings[0][0])
        coded.float_checks = header.float_checks if header.version >= 2 else None
        try:
            text = self._text(header.prompt)
            x_hat = self.model.decode_latents(coded, text, _binding(header), pixels=True)
        except DesyncError as error:
            raise CorruptStreamError(self._desync_message(header, str(error))) from None
        except (RuntimeError, ValueError, IndexError, TypeError, AssertionError) as error:
            # The model cannot run on these strings/shape: a malformed or foreign file.
            raise CorruptStreamError(
                f"cannot decode this .aigic file with {self.model_id}: {error}"
            ) from None
        if x_hat.shape[-2] < header.height or x_hat.shape[-1] < header.width:
            raise CorruptStreamError(
                f"decoded {tuple(x_hat.shape[-2:])} is smaller than the stored "
                f"{header.height}x{header.width}: the file does not match the model"
            )
        rgb = x_hat[0, :, : header.height, : header.width].permute(1, 2, 0).cpu()
        return _from_rgb(np.ascontiguousarray(rgb.numpy()), header.mode)

    # ------------------------------------------------------------------ helpers
    def _checked_padding(self, header: container.AigicFile) -> list[list[int]]:
        """The model's checks of the header's latent shape and strings against the coded
        size (:meth:`LearnedCodecModel.check_coded`), and the rANS padding they give."""
        limit = self.max_sequential_pixels
        pixels = header.width * header.height
        if self.model.decodes_sequentially and limit is not None and pixels > limit:
            raise CorruptStreamError(
                f"{self.model_id} decodes autoregressively (one latent position at a time): "
                f"a {header.width}x{header.height} image is more than the {limit} pixels "
                "allowed here; decode it locally with `pku-aigi decompress`"
            )
        from ..models.coding.entropy_coding import Coded

        width, height = self._coded_size(header)
        coded = Coded(header.strings, header.latent_shape, 0, 0)
        self.model.check_coded(coded, height, width)
        return coded.padding

    def _coded_size(self, header: container.AigicFile) -> tuple[int, int]:
        """The (width, height) the encoder coded: the header's (version 2), else the
        padding to a multiple of the model's factor (up to 1024) whose latent shape is
        the header's (version 1 files do not record it)."""
        if header.coded_size is not None:
            return header.coded_size
        own = int(self.model.downsampling_factor)
        for multiple in range(own, container.MAX_PADDING + 1, own):
            width = -(-header.width // multiple) * multiple
            height = -(-header.height // multiple) * multiple
            if self.model.latent_shape(height, width) == tuple(header.latent_shape):
                return width, height
        m = self.pad_multiple
        return -(-header.width // m) * m, -(-header.height // m) * m  # the model refuses it

    def _text(self, prompt: str | None):
        if not self.text_conditioned:
            return None
        embedding = self.model.encode_prompts([prompt or ""])
        return embedding.to(self.device) if embedding is not None else None

    def _check_header(self, header: container.AigicFile) -> None:
        made_by = f"{header.model_id}" + (f"@{header.revision}" if header.revision else "")
        if header.architecture != self.name or header.quality != self.model_quality:
            raise CorruptStreamError(
                f"this .aigic file was made by {made_by} ({header.architecture}, quality "
                f"{header.quality}), not by {self.model_id} ({self.name}, quality "
                f"{self.model_quality}): decode it with that model"
            )
        if header.fingerprint is not None:
            if header.fingerprint != self.fingerprint:
                raise CorruptStreamError(
                    f"this .aigic file needs the model {made_by} with fingerprint "
                    f"{header.fingerprint.hex()}; {self.model_id} has other weights "
                    f"(fingerprint {self.fingerprint.hex()}): decode it with that model "
                    "(`pku-aigi decompress --model REPO_OR_DIR`)"
                )
        elif header.model_id != self.model_id or header.revision != self.revision:
            logger.warning(
                "file made by %s, decoding with %s (same architecture and quality); "
                "the desync check will tell if the weights differ",
                made_by,
                self.model_id,
            )

    def _desync_message(self, header: container.AigicFile, what: str) -> str:
        return (
            f"decoder desync: the {what} computed while decoding differ from the encoder's "
            f"(encoded on {header.device} with {header.model_id}, decoding on "
            f"{_device_label(self.device)} with {self.model_id}). The file was made by "
            "other weights, or corrupted; no image is returned rather than a wrong one"
        )


class LearnedCodecFamily(Codec):
    """Several models of one architecture, one per quality, as one :class:`Codec`.

    Args:
        name: the codec's name (e.g. ``"mbt2018-mean (mse)"``).
        members: ``{quality: model}`` where a model is a :class:`LearnedCodec`, a
            ``LearnedCodecModel``, or a Hub repo id / folder loaded on first use.
        architecture: the models' architecture (default: ``name``); it tells whether
            the family is text-conditioned before any model is loaded.
        **options: passed to :class:`LearnedCodec` (``device``, ``pad_multiple`` ...).
    """

    file_extension = container.FILE_EXTENSION

    def __init__(self, name: str, members: dict, *, architecture: str | None = None, **options):
        if not members:
            raise CodecError(f"learned codec family {name!r} needs at least one model")
        self.name = name
        self.architecture = architecture or name
        self.options = options
        self._members = {int(quality): member for quality, member in sorted(members.items())}
        self._codecs: dict[int, LearnedCodec] = {}
        self._lock = threading.Lock()
        qualities = tuple(self._members)
        self.ladder = QualityLadder.of(qualities)
        self.quality_help = f"one model per quality: {', '.join(map(str, qualities))}"
        self.description = f"learned codec family {name} ({len(qualities)} models)"

    @functools.cached_property
    def text_conditioned(self) -> bool:
        """Whether the prompt changes the bitstream; asked when first needed, so that
        listing families (the Space at start-up) imports no model code."""
        return _text_conditioned(self.architecture, self._members.values())

    @property
    def sources(self) -> dict[int, str]:
        """``{quality: repo id or folder}`` of the members (as recorded in .aigic headers)."""
        return {
            quality: member.model_id if isinstance(member, LearnedCodec) else str(member)
            for quality, member in self._members.items()
            if isinstance(member, LearnedCodec | str | os.PathLike)
        }

    def codec(self, quality) -> LearnedCodec:
        """The member coding at ``quality``, loaded now if it was not yet."""
        try:
            quality = int(quality)
            member = self._members[quality]
        except (KeyError, TypeError, ValueError):
            raise CodecError(
                f"{self.name} has no model for quality {quality}: {self.quality_help}"
            ) from None
        with self._lock:
            if quality not in self._codecs:
                self._codecs[quality] = self._load(member)
            return self._codecs[quality]

    def _load(self, member) -> LearnedCodec:
        if isinstance(member, LearnedCodec):
            return member
        if isinstance(member, str | os.PathLike):
            logger.info("loading learned codec %s", member)
            try:
                return LearnedCodec.from_pretrained(member, **self.options)
            except PkuAigiError as error:
                wrapped = ModelError(f"{self.name}: model {member} cannot be loaded: {error}")
                wrapped.cause = error.cause  # the same reason for every family it stops
                raise wrapped from None
        return LearnedCodec.from_model(member, **self.options)

    def load(self) -> LearnedCodecFamily:
        """Load every member now (a benchmark uses them all; errors surface at once)."""
        for quality in self._members:
            self.codec(quality)
        return self

    @property
    def version(self) -> str:
        return "|".join(self.codec(quality).version for quality in self._members)

    def matches(self, data: bytes) -> bool:
        """True for .aigic bytes of this architecture at one of the family's qualities."""
        header = container.peek(data)
        if header is None:
            return False
        if header.model_id in self.sources.values():
            return True
        return header.architecture == self.architecture and header.quality in self._members

    def encode(self, image: Image.Image, quality, *, prompt: str | None = None) -> bytes:
        return self.codec(quality).encode(image, None, prompt=prompt)

    def decode(self, data: bytes) -> Image.Image:
        header = container.parse(data)
        if header.quality not in self._members:
            raise CorruptStreamError(
                f"this .aigic file is at quality {header.quality}; {self.name} has "
                f"{self.quality_help}"
            )
        return self.codec(header.quality).decode(data)


def _text_conditioned(architecture: str, members) -> bool:
    for member in members:
        if not isinstance(member, str | os.PathLike):  # a model or a LearnedCodec
            return bool(getattr(member, "text_conditioned", False))
    from .. import models

    try:
        return bool(models.get_spec(architecture).text_conditioned)
    except ModelError:  # an architecture this package does not know: it cannot load anyway
        return False
