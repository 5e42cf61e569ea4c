"""What the demo computes, without any UI: compress, measure, sweep, decode.

Everything goes through the package's public API: ``Codec.encode/decode`` and its
quality ladder, ``pku_aigi.metrics`` (PSNR, MS-SSIM in dB, bpp, CLIP score),
``pku_aigi.codecs.rate_control.encode_to_bpp`` for a target bitrate and
``pku_aigi.codecs.identify`` for files no option recognises.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from .. import metrics
from ..codecs.rate_control import encode_to_bpp
from ..errors import CodecError, CorruptStreamError, ImageTooLargeError, PkuAigiError
from .catalog import MAX_RD_POINTS, Catalog, CodecOption

logger = logging.getLogger(__name__)

CLIP_MODEL_ENV = "PKU_AIGI_CLIP_MODEL"
# Threads of one request's codecs (compress_many); None: one per core. 1 runs them one
# after the other (the latency benchmark compares both).
MAX_WORKERS: int | None = None


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
    # perf_counter() when this codec's work began and ended (shows the overlap of codecs
    # that ran concurrently)
    started: float = field(default=0.0, repr=False)
    finished: float = field(default=0.0, repr=False)

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
    codec = option.codec
    started = start = time.perf_counter()
    if target_bpp is not None:
        quality, data = encode_to_bpp(codec, image, target_bpp, prompt=prompt)
    else:
        quality = codec.ladder.at_level(50 if level is None else level)
        data = codec.encode(image, quality, prompt=prompt)
    encode_s = time.perf_counter() - start
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
        started=started,
        finished=time.perf_counter(),
    )


def compress_many(
    options: list[CodecOption],
    image: Image.Image,
    *,
    level: float | None = None,
    target_bpp: float | None = None,
    prompt: str | None = None,
    on_done: Callable[[CodecOption, int], None] | None = None,
    then: Callable[[CompressResult], None] | None = None,
) -> list[CompressResult | Exception]:
    """:func:`compress_as_completed`, gathered: each option's result or the exception it
    raised, in the order of ``options``. ``on_done(option, count)`` is called in the
    caller's thread as each codec finishes (``count`` finished so far)."""
    outcomes: dict[int, CompressResult | Exception] = {}
    for index, outcome in compress_as_completed(
        options, image, level=level, target_bpp=target_bpp, prompt=prompt, then=then
    ):
        outcomes[index] = outcome
        if on_done is not None:
            on_done(options[index], len(outcomes))
    return [outcomes[index] for index in range(len(options))]


def compress_as_completed(
    options: list[CodecOption],
    image: Image.Image,
    *,
    level: float | None = None,
    target_bpp: float | None = None,
    prompt: str | None = None,
    then: Callable[[CompressResult], None] | None = None,
) -> Iterator[tuple[int, CompressResult | Exception]]:
    """:func:`compress` with each option, concurrently (one thread per option, at most one
    per core: subprocess codecs, torch and NumPy release the GIL), yielding ``(index of
    the option, its result or the exception it raised)`` as each finishes, so that a
    caller can show each codec at once and one failing codec never hides the others.
    ``then(result)`` runs in the codec's own thread as soon as it has finished (e.g. to
    write its files while the other codecs still run); an exception it raises is that
    codec's outcome."""
    if not options:
        return
    workers = min(len(options), MAX_WORKERS or os.cpu_count() or 1)

    def run(option: CodecOption) -> CompressResult:
        result = compress(option, image, level=level, target_bpp=target_bpp, prompt=prompt)
        if then is not None:
            then(result)
        return result

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="compress") as pool:
        futures = {pool.submit(run, option): index for index, option in enumerate(options)}
        for future in as_completed(futures):
            try:
                outcome = future.result()
            except Exception as error:  # noqa: BLE001 - its outcome: a bug in one never hides the others
                outcome = error
            yield futures[future], outcome


def _quality_metrics(image: Image.Image, reconstruction: Image.Image) -> tuple[float, float | None]:
    psnr = metrics.psnr(image, reconstruction)
    try:
        ms_ssim_db = metrics.ms_ssim_db(metrics.ms_ssim(image, reconstruction))
    except metrics.ImageTooSmallError:
        ms_ssim_db = None  # the UI says why (images under MS_SSIM_MIN_SIDE px)
    return psnr, ms_ssim_db


# --- RD curves ---------------------------------------------------------------------------

_RD_CACHE: OrderedDict[tuple, list[RDPoint]] = OrderedDict()
_RD_CACHE_SIZE = 64
_RD_LOCK = threading.Lock()


def image_digest(image: Image.Image) -> str:
    return hashlib.sha256(image.tobytes() + repr(image.size).encode()).hexdigest()


def rd_curve(option: CodecOption, image: Image.Image, prompt: str | None = None) -> list[RDPoint]:
    """Rate and PSNR of ``option`` over its RD grid on this image (cached)."""
    grid = option.codec.ladder.spread(MAX_RD_POINTS)
    key = (image_digest(image), option.key, tuple(grid), prompt or "")
    with _RD_LOCK:
        if key in _RD_CACHE:
            _RD_CACHE.move_to_end(key)
            return _RD_CACHE[key]
    points = []
    for quality in grid:
        data = option.codec.encode(image, quality, prompt=prompt)
        reconstruction = option.codec.decode(data).convert("RGB")
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
                logger.warning("%s", error)
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


@dataclass
class DecodeResult:
    image: Image.Image
    codec: str
    description: str


def decode_file(path: str | os.PathLike, catalog: Catalog) -> DecodeResult:
    """Decode a file written by any codec of the catalog.

    The options whose codec recognises the bytes (file signature) are tried first, then
    those whose file extension matches; a file none of them takes goes to the registered
    codec that recognises it (:func:`pku_aigi.codecs.identify`) unless it is an .aigic
    file: those decode only with the models the Space lists, never with a folder or Hub
    repo the file names. Every codec decodes at most the Space's pixel limit, checked
    from the file's header before decoding.
    """
    from ..codecs import container, identify
    from .catalog import registered_codec
    from .limits import MAX_DECODE_BYTES
    from .upload import max_pixels

    path = Path(path)
    if path.stat().st_size > MAX_DECODE_BYTES:
        raise CorruptStreamError(
            f"{path.name} is {path.stat().st_size:,} bytes, more than the "
            f"{MAX_DECODE_BYTES:,} this Space decodes: decode it locally with pku-aigi"
        )
    data = path.read_bytes()
    if not data:
        raise CorruptStreamError(f"{path.name} is empty: upload a compressed file")
    available = [option for option in catalog.options if option.available]
    by_bytes = [option for option in available if option.codec.matches(data)]
    suffix = path.suffix.lower()
    by_name = [
        option
        for option in available
        if option not in by_bytes and option.codec.file_extension.lower() == suffix
    ]
    candidates = by_bytes + by_name
    if container.is_aigic(data):  # only a listed model whose header fits may decode it
        candidates = by_bytes
    if not candidates and container.is_aigic(data):
        header = container.parse(data)  # a damaged file: the format's own message
        made_by = f"model {header.model_id!r} ({header.architecture})"
        raise CorruptStreamError(
            f"{path.name} was made by {made_by}, which this Space does not offer: it decodes "
            "only with the models it lists; decode it locally with `pku-aigi decompress`"
        )
    if not candidates:
        names = identify(data, path)
        if not names:
            raise CorruptStreamError(
                f"{path.name} is not a file of any codec available here: upload a file "
                "saved from the Compress tab (no known file signature or extension)"
            )
        try:
            candidates = [CodecOption(names[0], registered_codec(names[0]))]
        except PkuAigiError as error:
            raise CorruptStreamError(
                f"{path.name} is not a file of any codec available here: upload a file "
                f"saved from the Compress tab ({error})"
            ) from None
    errors = []
    limit = max_pixels()
    for option in candidates:
        try:
            if getattr(option.codec, "max_pixels", None) is None:  # a plugin's codec
                _check_header_size(data, limit)
            image = option.codec.decode(data)
            if image.width * image.height > limit:
                raise ImageTooLargeError(
                    f"{option.key} decoded a {image.width}x{image.height} image"
                )
        except ImageTooLargeError as error:
            raise ImageTooLargeError(
                f"{path.name}: {error}; this Space decodes images up to "
                f"{limit / 1e6:.1f} megapixels: decode it locally with "
                "`pku-aigi decompress`"
            ) from None
        except PkuAigiError as error:
            errors.append(f"{option.key}: {error}")
            continue
        return DecodeResult(
            image, option.key, f"{_describe(option.key, data)}, {len(data):,} bytes"
        )
    tried = ", ".join(option.key for option in candidates)
    raise CorruptStreamError(
        f"{path.name} is not a valid file of any codec available here (tried {tried}); "
        f"upload a file saved from the Compress tab. First error: {errors[0]}"
    )


def _check_header_size(data: bytes, limit: int) -> None:
    """For codecs without ``max_pixels`` (plugins): the size in the header, where Pillow
    reads one, must fit ``limit``; nothing is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(f"the file's header declares a huge image ({error})") from None
    except Exception:  # noqa: BLE001 - no header Pillow reads: the codec's own checks
        return
    if width * height > limit:
        raise ImageTooLargeError(
            f"the file's header declares a {width}x{height} image ({width * height:,} pixels)"
        )


def _describe(key: str, data: bytes) -> str:
    """What the file is: its codec, and for .aigic files the model and prompt it names."""
    from ..codecs import container

    header = container.peek(data)
    if header is None:
        return f"{key} file"
    prompt = f', prompt "{header.prompt}"' if header.prompt else ""
    return (
        f".aigic file of {header.architecture} model {header.model_id} "
        f"(quality {header.quality}){prompt}"
    )
