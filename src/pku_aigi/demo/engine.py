"""What the demo computes, without any UI: compress, measure, sweep, decode.

Everything goes through the package's public API: ``Codec.encode/decode``,
``pku_aigi.metrics`` (PSNR, MS-SSIM in dB, bpp, CLIP score) and
``pku_aigi.codecs.rate_control.encode_to_bpp`` for a target bitrate.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from .. import metrics
from ..errors import CodecError, CorruptStreamError, PkuAigiError
from .catalog import Catalog, CodecOption

log = logging.getLogger(__name__)

CLIP_MODEL_ENV = "PKU_AIGI_CLIP_MODEL"


@dataclass
class CompressResult:
    """One codec's result on the uploaded image."""

    key: str
    quality: float
    data: bytes
    reconstruction: Image.Image
    extension: str
    encode_s: float
    decode_s: float
    psnr: float
    ms_ssim_db: float | None
    clip_score: float | None = None

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def bpp(self) -> float:
        width, height = self.reconstruction.size
        return metrics.bpp(len(self.data), width, height)


@dataclass(frozen=True)
class RDPoint:
    quality: float
    bpp: float
    psnr: float
    ms_ssim_db: float | None


def compress(
    option: CodecOption,
    image: Image.Image,
    *,
    level: float | None = None,
    target_bpp: float | None = None,
    prompt: str | None = None,
) -> CompressResult:
    """Encode ``image`` with ``option`` at a quality level (0..100) or a target bpp.

    Returns the file bytes, the decoded image and its metrics (PSNR and MS-SSIM dB against
    ``image``; the CLIP score is filled in by :func:`add_clip_scores`).
    """
    if not option.available:
        raise CodecError(f"{option.key} is not available here: {option.reason}")
    if target_bpp is not None:
        quality, data, encode_s = _encode_to_bpp(option, image, target_bpp, prompt)
    else:
        quality = option.quality_at(50 if level is None else level)
        start = time.perf_counter()
        data = option.codec_for(quality).encode(image, quality, prompt=prompt)
        encode_s = time.perf_counter() - start
    codec = option.codec_for(quality)
    start = time.perf_counter()
    reconstruction = codec.decode(data).convert("RGB")
    decode_s = time.perf_counter() - start
    if reconstruction.size != image.size:
        raise CodecError(
            f"{option.key} returned a {reconstruction.size} image for a {image.size} input"
        )
    psnr, ms_ssim_db = _quality_metrics(image, reconstruction)
    return CompressResult(
        key=option.key,
        quality=quality,
        data=data,
        reconstruction=reconstruction,
        extension=codec.file_extension,
        encode_s=encode_s,
        decode_s=decode_s,
        psnr=psnr,
        ms_ssim_db=ms_ssim_db,
    )


def _quality_metrics(image: Image.Image, reconstruction: Image.Image) -> tuple[float, float | None]:
    psnr = metrics.psnr(image, reconstruction)
    try:
        ms_ssim_db = metrics.ms_ssim_db(metrics.ms_ssim(image, reconstruction))
    except metrics.ImageTooSmallError:
        ms_ssim_db = None  # the UI says why (images under 161 px)
    return psnr, ms_ssim_db


def _encode_to_bpp(option: CodecOption, image, target_bpp: float, prompt):
    """(quality, data, encode seconds) of the best quality within ``target_bpp``."""
    if target_bpp <= 0:
        raise CodecError(f"target bpp must be positive, got {target_bpp}")
    start = time.perf_counter()
    if option.kind == "conventional":
        from ..codecs.rate_control import encode_to_bpp

        quality, data = encode_to_bpp(option.codec, image, target_bpp, prompt=prompt)
        return quality, data, time.perf_counter() - start
    # Learned: one model per quality; keep the highest rate that fits, else the lowest.
    best = None
    for quality in option.grid:
        data = option.codecs[quality].encode(image, quality, prompt=prompt)
        fits = metrics.bpp(len(data), *image.size) <= target_bpp
        if best is None or fits:
            best = (quality, data)
        if not fits:
            break
    return best[0], best[1], time.perf_counter() - start


# --- RD curves ---------------------------------------------------------------------------

_RD_CACHE: OrderedDict[tuple, list[RDPoint]] = OrderedDict()
_RD_CACHE_SIZE = 64
_RD_LOCK = threading.Lock()


def image_digest(image: Image.Image) -> str:
    return hashlib.sha256(image.tobytes() + repr(image.size).encode()).hexdigest()


def rd_curve(option: CodecOption, image: Image.Image, prompt: str | None = None) -> list[RDPoint]:
    """Rate and PSNR of ``option`` over its RD grid on this image (cached)."""
    key = (image_digest(image), option.key, tuple(option.rd_grid()), prompt or "")
    with _RD_LOCK:
        if key in _RD_CACHE:
            _RD_CACHE.move_to_end(key)
            return _RD_CACHE[key]
    points = []
    for quality in option.rd_grid():
        codec = option.codec_for(quality)
        data = codec.encode(image, quality, prompt=prompt)
        reconstruction = codec.decode(data).convert("RGB")
        # PSNR only: MS-SSIM costs seconds per point on a CPU (the table has it for the
        # current setting).
        psnr = metrics.psnr(image, reconstruction)
        points.append(RDPoint(quality, metrics.bpp(len(data), *image.size), psnr, None))
    with _RD_LOCK:
        _RD_CACHE[key] = points
        while len(_RD_CACHE) > _RD_CACHE_SIZE:
            _RD_CACHE.popitem(last=False)
    return points


# --- CLIP score --------------------------------------------------------------------------

_CLIP: dict[str, object] = {}
_CLIP_LOCK = threading.Lock()


def clip_scorer():
    """The CLIP scorer (``PKU_AIGI_CLIP_MODEL``: a Hub id or a local folder), or the reason
    it is unavailable as a string; loaded once per process."""
    model_id = os.environ.get(CLIP_MODEL_ENV, metrics.DEFAULT_CLIP_MODEL)
    with _CLIP_LOCK:
        if model_id not in _CLIP:
            try:
                _CLIP[model_id] = metrics.ClipScorer(model_id)
            except metrics.MetricUnavailableError as error:
                log.warning("%s", error)
                _CLIP[model_id] = str(error)
        return _CLIP[model_id]


def add_clip_scores(
    results: list[CompressResult], original: Image.Image, prompt: str
) -> tuple[float | None, str | None]:
    """Fill in each result's CLIP score against ``prompt``.

    Returns the original image's CLIP score and, when scores cannot be computed, why.
    """
    if not prompt:
        return None, "CLIP score needs a prompt: type the image's prompt to see it"
    scorer = clip_scorer()
    if isinstance(scorer, str):
        return None, scorer
    for result in results:
        result.clip_score = scorer.score(result.reconstruction, prompt)
    return scorer.score(original, prompt), None


# --- decoding ----------------------------------------------------------------------------

_MAGIC = (  # (prefix test, file extension of the codec that writes it)
    (lambda d: d[:3] == b"\xff\xd8\xff", ".jpg"),
    (lambda d: d[:4] == b"RIFF" and d[8:12] == b"WEBP", ".webp"),
    (lambda d: d[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n" or d[:4] == b"\xffO\xffQ", ".j2k"),
    (lambda d: d[4:8] == b"ftyp" and d[8:12] in (b"avif", b"avis", b"mif1"), ".avif"),
    (lambda d: d[:2] == b"\xff\x0a" or d[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n", ".jxl"),
)


@dataclass
class DecodeResult:
    image: Image.Image
    codec: str
    description: str


def decode_file(path: str | os.PathLike, catalog: Catalog) -> DecodeResult:
    """Decode a file written by any codec of the catalog (or any .aigic whose model loads)."""
    from ..codecs import container

    path = Path(path)
    data = path.read_bytes()
    if not data:
        raise CorruptStreamError(f"{path.name} is empty: upload a compressed file")
    if container.is_aigic(data):
        return _decode_aigic(data, catalog)
    candidates = _conventional_candidates(path, data, catalog)
    if not candidates:
        raise CodecError("no conventional codec is available here to decode files")
    errors = []
    for option in candidates:
        try:
            image = option.codec.decode(data)
        except PkuAigiError as error:
            errors.append(f"{option.key}: {error}")
            continue
        return DecodeResult(image, option.key, f"{option.key} file, {len(data):,} bytes")
    tried = ", ".join(option.key for option in candidates)
    raise CorruptStreamError(
        f"{path.name} is not a valid file of any codec available here (tried {tried}); "
        f"upload a file saved from the Compress tab. First error: {errors[0]}"
    )


def _conventional_candidates(path: Path, data: bytes, catalog: Catalog) -> list[CodecOption]:
    options = [o for o in catalog.options if o.kind == "conventional" and o.available]
    extensions = [path.suffix.lower()]
    extensions += [ext for test, ext in _MAGIC if test(data)]

    def rank(option: CodecOption) -> int:
        ext = option.codec.file_extension.lower()
        return extensions.index(ext) if ext in extensions else len(extensions)

    return sorted(options, key=rank)


def _decode_aigic(data: bytes, catalog: Catalog) -> DecodeResult:
    from ..codecs import container

    header = container.parse(data)
    codec = _find_learned_codec(header, catalog)
    image = codec.decode(data)
    prompt = f', prompt "{header.prompt}"' if header.prompt else ""
    return DecodeResult(
        image,
        header.architecture,
        f".aigic file of {header.architecture} model {header.model_id} "
        f"(quality {header.quality}){prompt}, {len(data):,} bytes",
    )


def _find_learned_codec(header, catalog: Catalog):
    """The codec of the model named in the header: the same model id first, then a model
    of the same architecture and quality (the codec checks the rest), then the Hub."""
    same_model, same_kind = [], []
    for option in catalog.options:
        if option.kind != "learned" or not option.available:
            continue
        for quality, source in option.sources.items():
            if source == header.model_id:
                same_model.append((option, quality))
            elif option.key.startswith(f"{header.architecture} (") and quality == header.quality:
                same_kind.append((option, quality))
    if same_model or same_kind:
        option, quality = (same_model + same_kind)[0]
        return option.codec_for(quality)
    try:
        from ..codecs.learned import LearnedCodec

        return LearnedCodec.from_pretrained(header.model_id)
    except Exception as error:  # noqa: BLE001 - any failure: tell which model is needed
        raise CodecError(
            f"this .aigic file was made by model {header.model_id!r} ({header.architecture}, "
            f"quality {header.quality}), which cannot be loaded here ({error}); put it under "
            f"$PKU_AIGI_MODELS_DIR/<repo id> or run where the Hub is reachable"
        ) from None
