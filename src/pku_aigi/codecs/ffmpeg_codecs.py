"""HEVC intra (x265, the BPG equivalent) and VVC intra (VVenC) through ffmpeg.

Both run the static ffmpeg of the ``imageio-ffmpeg`` wheel as a subprocess, with the
image on stdin and the bitstream on stdout (no temporary files), and a timeout. The
stored bytes are a raw Annex-B elementary stream of one intra picture, which
``ffmpeg -f hevc -i x.hevc`` / ``ffmpeg -f vvc -i x.266`` decode alone, followed by the
NAL units of :mod:`~pku_aigi.codecs.annexb` (end of bitstream; picture size when padded).

Colour: RGB is converted to full-range BT.601 YCbCr (the JPEG/BPG matrix) by swscale with
accurate rounding, signalled in the VUI, and converted back the same way when decoding.

- ``hevc``: H.265 Main 4:4:4 (RExt), 8 bit, libx265 preset ``slow``, ``tune=psnr``
  (objective, HM-like), constant QP. Like ``bpgenc -f 444``, no chroma subsampling.
- ``vvc``: H.266 Main 10, **4:2:0**, 10 bit internal, libvvenc preset ``fast``,
  ``qpa=0`` (no perceptual QP adaptation, as VTM), constant QP. ffmpeg's libvvenc
  wrapper only accepts ``yuv420p10le``, so 4:4:4 is not possible here; the decoded
  picture is upsampled back to 8-bit RGB.
"""

from __future__ import annotations

import functools
import io
import logging
import re
import subprocess
from typing import ClassVar

import numpy as np
from PIL import Image

from ..errors import CodecError
from . import annexb
from .by_name import register
from .conventional import ConventionalCodec
from .ladder import QualityLadder
from .threads import codec_threads

logger = logging.getLogger(__name__)

MIN_SIDE = 16  # x265 and VVenC refuse smaller pictures: smaller ones are padded
DECODE_TIMEOUT_S = 120.0
# The encode timeout only catches a hung encoder: 60 s plus 120 s per megapixel, times the
# preset's slowdown (``FfmpegCodec.preset_slowdown``) on a machine shared with other jobs.
ENCODE_TIMEOUT_S = 60.0
ENCODE_TIMEOUT_PER_MP_S = 120.0
_SWS = "accurate_rnd+full_chroma_int+full_chroma_inp+bitexact"
# ffmpeg's refusal of a picture above -max_pixels (libavutil's av_image_check_size2)
_TOO_LARGE = re.compile(rb"Picture size (\d+)x(\d+) exceeds specified max pixel count")


@functools.lru_cache(maxsize=1)
def ffmpeg_executable() -> str:
    """Path of the ffmpeg binary of imageio-ffmpeg; RuntimeError if there is none."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.lru_cache(maxsize=8)
def _ffmpeg_lists(what: str) -> str:
    result = subprocess.run(
        [ffmpeg_executable(), "-hide_banner", f"-{what}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout


def _has(what: str, name: str) -> bool:
    return re.search(rf"^\s*\S+\s+{re.escape(name)}\s", _ffmpeg_lists(what), re.M) is not None


@functools.lru_cache(maxsize=1)
def ffmpeg_version() -> str:
    first = _ffmpeg_lists("version").splitlines()[0]
    return first.split(" Copyright")[0].removeprefix("ffmpeg version ").strip()


class PictureTooLarge(Exception):
    """ffmpeg refused a picture above ``-max_pixels`` before decoding it."""

    def __init__(self, width: int, height: int):
        super().__init__(f"{width}x{height}")
        self.size = (width, height)


def _run(args: list[str], data: bytes, timeout: float, what: str) -> bytes:
    command = [ffmpeg_executable(), "-hide_banner", "-nostats", "-loglevel", "error", *args]
    try:
        result = subprocess.run(command, input=data, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise CodecError(f"{what}: ffmpeg did not finish within {timeout:.0f} s") from None
    if result.returncode != 0 or not result.stdout:
        too_large = _TOO_LARGE.findall(result.stderr)
        if too_large:  # the picture's own size comes last (the first may be padded)
            raise PictureTooLarge(*map(int, too_large[-1]))
        message = result.stderr.decode(errors="replace").strip().splitlines()
        reason = message[-1] if message else f"exit status {result.returncode}, no output"
        raise RuntimeError(reason[-300:])
    return result.stdout


class FfmpegCodec(ConventionalCodec):
    """An intra codec run as ``ffmpeg`` subprocesses (encoder library + native decoder).

    Args:
        preset: the encoder's speed preset (it changes the bitstream; in ``version``).
        max_pixels: see :class:`~pku_aigi.codecs.conventional.ConventionalCodec`.
    """

    encoder: ClassVar[str]  # ffmpeg encoder name, e.g. "libx265"
    decoder: ClassVar[str]  # ffmpeg decoder name, e.g. "hevc"
    container: ClassVar[str]  # ffmpeg raw muxer/demuxer name
    pix_fmt: ClassVar[str]  # what the encoder codes
    side_multiple: ClassVar[int]  # picture sides must be multiples of this
    syntax: ClassVar[annexb.NalSyntax]
    default_preset: ClassVar[str]
    presets: ClassVar[tuple[str, ...]]  # the encoder's speed presets, fastest first
    speed_option: ClassVar[str] = "preset"  # the option that trades speed for compression
    # Encode time of a preset relative to the default one, rounded up, for the timeout.
    preset_slowdown: ClassVar[dict[str, float]] = {}

    @classmethod
    def speed_settings(cls) -> tuple[str, ...]:
        """Values of ``speed_option``, fastest first (the last compresses best)."""
        return cls.presets

    def __init__(self, *, preset: str | None = None, **options):
        super().__init__(**options)
        self.preset = preset or self.default_preset
        if self.preset not in self.presets:
            raise CodecError(
                f"{self.name}: unknown preset {self.preset!r}: use one of {', '.join(self.presets)}"
            )

    @classmethod
    def availability(cls) -> str | None:
        try:
            ffmpeg_executable()
        except Exception as error:  # noqa: BLE001 - whatever imageio-ffmpeg raises: unavailable
            return f"no ffmpeg binary from imageio-ffmpeg ({error})"
        try:
            missing = [
                f"{kind[:-1]} {name}"
                for kind, name in (("encoders", cls.encoder), ("decoders", cls.decoder))
                if not _has(kind, name)
            ]
        except (OSError, subprocess.SubprocessError) as error:
            return f"ffmpeg at {ffmpeg_executable()} does not run ({error})"
        if missing:
            return f"ffmpeg {ffmpeg_version()} has no {' and no '.join(missing)}"
        return None

    @property
    def version(self) -> str:
        return (
            f"{self.name} (ffmpeg {ffmpeg_version()}, {self.encoder_version()}; {self.settings()})"
        )

    @classmethod
    def encoder_version(cls) -> str:
        return cls.encoder

    def settings(self) -> str:
        return f"preset={self.preset}, {self.pix_fmt}, full-range BT.601"

    def encoder_args(self, quality: int) -> list[str]:
        """ffmpeg output options selecting the encoder and its settings."""
        raise NotImplementedError

    def encode_timeout(self, width: int, height: int) -> float:
        """Seconds after which an encode of ``width`` x ``height`` counts as hung."""
        slowdown = max(1.0, self.preset_slowdown.get(self.preset, 1.0))
        return ENCODE_TIMEOUT_S + ENCODE_TIMEOUT_PER_MP_S * slowdown * width * height / 1e6

    @staticmethod
    def thread_args() -> list[str]:
        """ffmpeg options capping its filter and codec threads (none: its defaults)."""
        threads = codec_threads()
        return ["-filter_threads", str(threads), "-threads", str(threads)] if threads else []

    def _encode(self, rgb: Image.Image, quality: int) -> bytes:
        array = np.asarray(rgb, dtype=np.uint8)
        padded = even_padded(array, self.side_multiple, MIN_SIDE)
        height, width = padded.shape[:2]
        args = [
            *("-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-i", "pipe:0"),
            "-vf",
            f"scale=out_color_matrix=bt601:out_range=full:flags={_SWS},format={self.pix_fmt}",
            *("-color_range", "pc", "-colorspace", "bt470bg", "-frames:v", "1"),
            *self.thread_args(),
            *self.encoder_args(quality),
            *("-f", self.container, "pipe:1"),
        ]
        timeout = self.encode_timeout(width, height)
        try:
            stream = _run(args, padded.tobytes(), timeout, f"{self.name} encode")
        except RuntimeError as error:
            raise CodecError(f"{self.name}: ffmpeg {self.encoder} failed: {error}") from None
        padded_size = None if padded is array else (rgb.width, rgb.height)
        return annexb.finish(stream, self.syntax, padded_size)

    def _decode(self, data: bytes) -> Image.Image:
        try:
            size = annexb.check(data, self.syntax)
        except ValueError as error:
            raise self.corrupt(str(error)) from None
        args = [
            *("-xerror", "-err_detect", "crccheck+bitstream+buffer+explode"),
            *("-max_pixels", str(self.max_pixels), "-c:v", self.decoder),
            *self.thread_args(),
            *("-f", self.container, "-i", "pipe:0", "-frames:v", "1"),
            "-vf",
            f"scale=in_color_matrix=bt601:in_range=full:flags={_SWS},format=rgb24",
            *("-f", "image2pipe", "-c:v", "ppm", "pipe:1"),
        ]
        try:
            ppm = _run(args, data, DECODE_TIMEOUT_S, f"{self.name} decode")
        except PictureTooLarge as error:
            raise self.too_large(*error.size) from None
        except RuntimeError as error:
            raise self.corrupt(f"ffmpeg {self.decoder} decoder: {error}") from None
        with Image.open(io.BytesIO(ppm), formats=["PPM"]) as decoded:
            decoded.load()
            image = decoded.convert("RGB")
        if size is not None:
            width, height = size
            if not (0 < width <= image.width and 0 < height <= image.height):
                raise self.corrupt(f"its size SEI says {width}x{height} for a {image.size} picture")
            image = image.crop((0, 0, width, height))
        return image


def even_padded(array: np.ndarray, multiple: int, minimum: int) -> np.ndarray:
    """Pad an HxWxC array at the bottom/right by edge replication.

    The result has both sides multiples of ``multiple`` and at least ``minimum``; edge
    replication (as BPG and the HEVC/VVC reference software pad) costs few bits.
    """
    height, width = array.shape[:2]

    def target(size: int) -> int:
        size = max(size, minimum)
        return -(-size // multiple) * multiple

    pad_h, pad_w = target(height) - height, target(width) - width
    if pad_h == 0 and pad_w == 0:
        return array
    return np.pad(array, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")


@functools.lru_cache(maxsize=4)
def _encoder_banner(encoder: str, pix_fmt: str, pattern: str) -> str:
    """The encoder library's version, read from ffmpeg's log of a 16x16 encode."""
    args = [
        *("-f", "rawvideo", "-pix_fmt", "gray", "-s", "16x16", "-i", "pipe:0"),
        *("-pix_fmt", pix_fmt, "-c:v", encoder, "-frames:v", "1", "-f", "null", "-"),
    ]
    try:
        log = subprocess.run(
            [ffmpeg_executable(), "-hide_banner", "-loglevel", "verbose", *args],
            input=bytes(256),
            capture_output=True,
            timeout=60,
        ).stderr.decode(errors="replace")
    except (OSError, subprocess.SubprocessError):
        return f"{encoder} (version unknown)"
    match = re.search(pattern, log)
    return f"{encoder} {match.group(1)}" if match else f"{encoder} (version unknown)"


@register
class HevcCodec(FfmpegCodec):
    name = "hevc"
    aliases = ("h265", "h.265", "x265")
    description = "HEVC intra 4:4:4 8-bit with x265 (the BPG equivalent), via ffmpeg"
    quality_help = "x265 constant QP 0..51, lower is better (+6 doubles the quantiser step)"
    ladder = QualityLadder.integers(
        0, 51, sweep=(50, 47, 44, 41, 38, 35, 32, 29, 26, 23, 20), higher_is_better=False
    )
    file_extension = ".hevc"
    signatures = annexb.signatures(annexb.HEVC)
    encoder = "libx265"
    decoder = "hevc"
    container = "hevc"
    pix_fmt = "yuv444p"
    side_multiple = 1
    syntax = annexb.HEVC
    default_preset = "slow"
    preset_slowdown = {"slower": 4, "veryslow": 8, "placebo": 16}
    presets = (
        *("ultrafast", "superfast", "veryfast", "faster", "fast"),
        *("medium", "slow", "slower", "veryslow", "placebo"),
    )

    @classmethod
    def encoder_version(cls) -> str:
        return _encoder_banner(cls.encoder, cls.pix_fmt, r"HEVC encoder version (\S+)")

    def settings(self) -> str:
        return f"{super().settings()}, tune=psnr, info=0"

    def encoder_args(self, quality: int) -> list[str]:
        params = f"qp={quality}:info=0:log-level=error:keyint=1"
        if codec_threads():  # x265 sizes its own thread pool; ffmpeg's -threads is not used
            params += f":pools={codec_threads()}:frame-threads=1"
        return ["-c:v", "libx265", "-preset", self.preset, "-tune", "psnr", "-x265-params", params]


@register
class VvcCodec(FfmpegCodec):
    name = "vvc"
    aliases = ("h266", "h.266", "vvenc")
    description = "VVC intra 4:2:0 10-bit with VVenC (preset fast, no QPA), via ffmpeg"
    quality_help = "VVenC constant QP 0..63, lower is better (+6 doubles the quantiser step)"
    ladder = QualityLadder.integers(
        0, 63, sweep=(50, 47, 44, 41, 38, 35, 32, 29, 26, 23, 20), higher_is_better=False
    )
    file_extension = ".266"
    signatures = annexb.signatures(annexb.VVC)
    encoder = "libvvenc"
    decoder = "vvc"
    container = "vvc"
    pix_fmt = "yuv420p10le"
    side_multiple = 2  # 4:2:0: the conformance window cannot crop a single pixel
    syntax = annexb.VVC
    default_preset = "fast"
    presets = ("faster", "fast", "medium", "slow", "slower")
    # Measured: medium ~5x, slow ~18x, slower ~30x the encode time of fast (README,
    # "Anchor strength"); 1 MP takes ~3 min with slower on an idle core.
    preset_slowdown = {"medium": 6, "slow": 20, "slower": 32}

    @classmethod
    def encoder_version(cls) -> str:
        return _encoder_banner(cls.encoder, cls.pix_fmt, r"libvvenc version: (\S+)")

    def settings(self) -> str:
        return f"{super().settings()}, qpa=0"

    def encoder_args(self, quality: int) -> list[str]:
        return [
            *("-c:v", "libvvenc", "-preset", self.preset, "-qp", str(quality), "-qpa", "0"),
            *("-vvenc-params", "VideoFullRange=1:IntraPeriod=1"),
        ]
