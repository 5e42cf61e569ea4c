"""The Space's event handlers: UI values in, UI values out, errors as gr.Error/gr.Warning.

Each handler is a plain method that tests call directly; :mod:`pku_aigi.space.ui` wires them
to the components. Files shown or offered for download are written into a fresh folder
per request inside :func:`session_root`, a folder private to this process
(``<tmp>/pku-aigi-demo-<random>/``, mode 0700, removed at exit), which the app serves as
it is (a gradio static path: no copy, no hashing); request folders older than an hour
are removed, and nothing outside it ever is.

Previews (the slider's images) are lossless WebP at the fastest setting: the exact
pixels of the original and of each decoded image, half the time of PNG to write; the
downloads are the codecs' own bytes. An upload is decoded, checked and previewed once
(when it arrives), not again on every click.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import stat
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from PIL import Image

from ..errors import PkuAigiError
from ..metrics import MS_SSIM_MIN_SIDE
from . import engine
from .catalog import Catalog
from .engine import RDPoint
from .plot import rd_figure
from .upload import InputImage, InputImageError, load_input_image, max_pixels

logger = logging.getLogger(__name__)

MODE_LEVEL = "Quality level"
MODE_BPP = "Target bpp"
METRIC_HEADERS = [
    "codec",
    "quality",
    "bpp",
    "bytes",
    "PSNR dB",
    "MS-SSIM dB",
    "CLIP",
    "encode s",
    "decode s",
]
SESSION_PREFIX = "pku-aigi-demo-"
SESSION_MAX_AGE_S = 3600
PREVIEW_SUFFIX = ".webp"
UPLOADS_KEPT = 4  # decoded uploads kept in memory (at most 12 MB each at 2048x2048)


def write_preview(image: Image.Image, path: Path) -> Path:
    """Write ``image`` as lossless WebP at the fastest method (``method=0``).

    The same pixels as ``image`` (RGB), written in half the time of PNG at
    ``compress_level=1`` and 20 % smaller (0.03 s, 1.4 MB against 0.07 s, 1.8 MB for a
    1024x1024 image).
    """
    image.save(path, format="WEBP", lossless=True, method=0, quality=0)
    return path


@dataclass
class Upload:
    """An upload, decoded and checked, and the preview of what will be compressed."""

    loaded: InputImage
    preview: Path


class Handlers:
    """The handlers of one app, over one :class:`Catalog`."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self._uploads: OrderedDict[tuple, Upload] = OrderedDict()
        self._uploads_lock = threading.Lock()

    def upload(self, path: str | os.PathLike) -> Upload:
        """``path`` loaded by :func:`load_input_image` and its preview written, once per
        file: the last :data:`UPLOADS_KEPT` uploads are kept, keyed by path, size,
        modification time and pixel limit.

        Raises:
            InputImageError: as :func:`load_input_image`.
        """
        try:
            stat = os.stat(path)
            key = (os.fspath(path), stat.st_size, stat.st_mtime_ns, max_pixels())
        except OSError:
            key = None  # load_input_image says what is wrong
        with self._uploads_lock:
            cached = self._uploads.get(key)
            if (
                cached is not None
                and _keep(cached.preview.parent)  # request folders expire after an hour
                and cached.preview.exists()
            ):
                self._uploads.move_to_end(key)
                return cached
        loaded = load_input_image(path)
        upload = Upload(loaded, write_preview(loaded.image, _session_dir() / "original.webp"))
        if key is not None:
            with self._uploads_lock:
                self._uploads[key] = upload
                while len(self._uploads) > UPLOADS_KEPT:
                    self._uploads.popitem(last=False)
        return upload

    # --- upload -----------------------------------------------------------------------

    def on_upload(self, path: str | None):
        """Check an upload at once: (image value, notes markdown).

        A file that cannot be used is cleared, with a warning saying why; a converted
        image (CMYK, 16-bit, alpha, animated ...) is replaced by what will be compressed.
        """
        if not path:
            return gr.skip(), ""
        try:
            loaded = self.upload(path).loaded  # decoded and previewed before the click
        except InputImageError as error:
            gr.Warning(str(error), title="Cannot use this file")
            return None, f"**Cannot use this file:** {error}"
        if not loaded.notes:
            width, height = loaded.image.size
            return gr.skip(), f"{width}x{height} RGB image, ready to compress."
        for note in loaded.notes:
            gr.Warning(note, title="Image converted")
        converted = _session_dir() / f"{loaded.name}.png"
        loaded.image.save(converted, compress_level=1)
        return str(converted), _notes_markdown(loaded.image, loaded.notes)

    # --- compress ---------------------------------------------------------------------

    def compress(
        self,
        path: str | None,
        prompt: str | None,
        keys: list[str] | None,
        mode: str,
        level: float,
        target_bpp: float | None,
        progress=gr.Progress(),  # noqa: B008 - gradio injects the tracker this way
    ):
        """Compress with every chosen codec, streaming: each codec's row, reconstruction
        and file appear as soon as it finishes; the last update adds the CLIP scores.

        Yields (slider value, shown-codec dropdown, metrics rows, notes markdown, files,
        state for the RD plot).
        """
        if not path:
            raise gr.Error("Upload, paste or pick an example image first.", title="No image")
        if not keys:
            raise gr.Error("Choose at least one codec.", title="No codec")
        if mode == MODE_BPP and (target_bpp is None or target_bpp <= 0):
            raise gr.Error("Set a target bpp above 0, e.g. 0.5.", title="Bad target bpp")
        watch = _Stopwatch()
        try:
            upload = self.upload(path)
        except InputImageError as error:
            raise gr.Error(str(error), title="Cannot use this file") from None
        loaded, image = upload.loaded, upload.loaded.image
        prompt = (prompt or "").strip()
        notes = list(loaded.notes)
        options = [self.catalog.get(key) for key in keys]
        if not prompt and any(
            option.available and option.codec.text_conditioned for option in options
        ):
            message = (
                "no prompt given: text-conditioned codecs compress with an empty prompt; "
                "type the image's prompt for their best rate"
            )
            gr.Warning(message, title="Empty prompt")
            notes.append(message)

        session = _session_dir()
        watch.lap("input")
        progress(0, desc="encoding and decoding (a learned model loads on first use)")

        def write_outputs(result: engine.CompressResult):  # in the codec's thread
            start = time.perf_counter()
            preview, download = _output_paths(session, loaded.name, result)
            write_preview(result.reconstruction, preview)
            download.write_bytes(result.data)
            watch.add("outputs, in the codec threads", time.perf_counter() - start)

        finished: dict[int, engine.CompressResult] = {}  # option index -> result
        outcomes = engine.compress_as_completed(
            options,
            image,
            level=level if mode != MODE_BPP else None,
            target_bpp=target_bpp if mode == MODE_BPP else None,
            prompt=prompt or None,
            then=write_outputs,
        )
        for count, (index, outcome) in enumerate(outcomes, start=1):
            option = options[index]
            progress(count / len(options), desc=f"{option.key} done ({count}/{len(options)})")
            if isinstance(outcome, PkuAigiError):
                gr.Warning(f"{option.key}: {outcome}", title="Codec failed")
                notes.append(f"{option.key} failed: {outcome}")
            elif isinstance(outcome, Exception):  # a bug in one codec must not hide the others
                logger.error("%s failed", option.key, exc_info=outcome)
                message = f"{type(outcome).__name__}: {outcome}"
                gr.Warning(f"{option.key}: {message}", title="Codec failed")
                notes.append(f"{option.key} failed: {message}")
            else:
                finished[index] = outcome
                if count < len(options):  # the last update comes with the CLIP scores
                    results = [finished[i] for i in sorted(finished)]
                    yield self._outputs(upload, session, results, notes, prompt)
        watch.lap("codecs")
        results = [finished[i] for i in sorted(finished)]
        if not results:
            raise gr.Error("Every chosen codec failed: " + "; ".join(notes), title="No result")

        if prompt:
            progress(0.95, desc="CLIP score")
        original_clip, clip_note = engine.add_clip_scores(results, image, prompt)
        watch.lap("clip")
        if clip_note:
            notes.append(clip_note)
        elif original_clip is not None:
            notes.append(f"CLIP score of the original: {original_clip:.2f}")
        if any(result.ms_ssim_db is None for result in results):
            notes.append(
                f"MS-SSIM needs both sides >= {MS_SSIM_MIN_SIDE} px: left empty for this image"
            )
        outputs = self._outputs(upload, session, results, notes, prompt)
        watch.lap("outputs")
        logger.debug(
            "compress phases: %s", watch, extra={"phases": watch.laps, "within": watch.within}
        )
        yield outputs

    def _outputs(self, upload: Upload, session: Path, results, notes: list[str], prompt: str):
        """The Compress tab's outputs for the codecs finished so far."""
        state = {
            "image": str(upload.preview),
            "prompt": prompt,
            "reconstructions": {},
            "current": {},
        }
        files = []
        for result in results:
            preview, download = _output_paths(session, upload.loaded.name, result)
            files.append(str(download))
            state["reconstructions"][result.key] = str(preview)
            state["current"][result.key] = [
                result.quality,
                result.bpp,
                result.psnr,
                result.ms_ssim_db,
            ]
        first = results[0].key
        slider = (state["image"], state["reconstructions"][first])
        dropdown = gr.update(choices=[r.key for r in results], value=first)
        rows = [_metric_row(result) for result in results]
        notes_text = _notes_markdown(upload.loaded.image, notes)
        return slider, dropdown, rows, notes_text, files, state

    def show(self, key: str | None, state: dict | None):
        """The slider value for the reconstruction of ``key``."""
        if not state or not key or key not in state.get("reconstructions", {}):
            return gr.skip()
        return (state["image"], state["reconstructions"][key])

    def rd_plot(self, state: dict | None, draw_curves: bool, progress=gr.Progress()):  # noqa: B008
        """The RD figure of the last compression, streaming: its points at once, then each
        codec's curve over its grid (if asked) as soon as it is computed."""
        if not state or not state.get("current"):
            yield None
            return
        current = {key: RDPoint(*values) for key, values in state["current"].items()}
        curves = {}
        yield rd_figure(curves, current)
        if not draw_curves:
            return
        with Image.open(state["image"]) as image:
            image = image.convert("RGB")
        for index, key in enumerate(current):
            progress(index / len(current), desc=f"{key}: RD curve")
            try:
                curves[key] = engine.rd_curve(self.catalog.get(key), image, state["prompt"] or None)
            except PkuAigiError as error:
                gr.Warning(f"{key}: no RD curve ({error})", title="RD curve")
                continue
            yield rd_figure(curves, current)

    # --- decode -----------------------------------------------------------------------

    def decode(self, path: str | None):
        """(decoded image path, description markdown) of an uploaded compressed file."""
        if not path:
            raise gr.Error(
                "Upload a compressed file first (.aigic, .jpg, .webp, ...).", title="No file"
            )
        try:
            result = engine.decode_file(path, self.catalog)
        except PkuAigiError as error:
            raise gr.Error(str(error), title="Cannot decode this file") from None
        out = _session_dir() / f"decoded-{_slug(Path(path).stem)}.png"
        result.image.save(out, compress_level=1)
        width, height = result.image.size
        return str(out), f"Decoded {result.description}: {width}x{height} {result.image.mode}."

    # --- static text ------------------------------------------------------------------

    def unavailable_markdown(self) -> str:
        missing = self.catalog.unavailable
        if not missing:
            return "Every codec of this package runs here."
        return "\n".join(f"- **{option.key}**: {option.reason}" for option in missing)


class _Stopwatch:
    """Seconds spent in each named phase of a handler, one after the other (``laps``), and
    in work done within a phase by other threads (``within``); logged at DEBUG level."""

    def __init__(self):
        self.laps: dict[str, float] = {}
        self.within: dict[str, float] = {}
        self._last = time.perf_counter()
        self._lock = threading.Lock()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = now - self._last
        self._last = now

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.within[name] = self.within.get(name, 0.0) + seconds

    def __str__(self) -> str:
        times = {**self.laps, **{f"({name})": value for name, value in self.within.items()}}
        return ", ".join(f"{name} {seconds:.3f} s" for name, seconds in times.items())


def _metric_row(result: engine.CompressResult) -> list:
    def number(value, digits):
        return "" if value is None else f"{value:.{digits}f}"

    return [
        result.key,
        _fmt_q(result.quality),
        number(result.bpp, 4),
        f"{result.size:,}",
        number(result.psnr, 2),
        number(result.ms_ssim_db, 2),
        number(result.clip_score, 2),
        number(result.encode_s, 3),
        number(result.decode_s, 3),
    ]


def _output_paths(session: Path, name: str, result: engine.CompressResult) -> tuple[Path, Path]:
    """(preview, download) of one codec's result: the decoded image and the codec's file."""
    slug = _slug(result.key)
    preview = session / f"reconstruction-{slug}{PREVIEW_SUFFIX}"
    download = session / f"{_slug(name)}-{slug}-q{_fmt_q(result.quality)}{result.extension}"
    return preview, download


def _notes_markdown(image: Image.Image, notes: list[str]) -> str:
    width, height = image.size
    lines = [f"{width}x{height} RGB image."] + [f"- {note}" for note in notes]
    return "\n".join(lines)


def _fmt_q(quality: float) -> str:
    return str(int(quality)) if float(quality).is_integer() else f"{quality:g}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "file"


def _keep(folder: Path) -> bool:
    """Mark a request folder as used now (so that it is not removed as expired); False if
    it is gone already."""
    try:
        os.utime(folder)
    except OSError:
        return False
    return True


_session_root: Path | None = None
_session_root_lock = threading.Lock()


def session_root() -> Path:
    """This process's folder of request folders, registered as a gradio static path.

    Made by ``tempfile.mkdtemp`` (a new random name under the temp folder, mode 0700,
    never an existing folder or a link), removed when the process exits, and made anew
    if something removed it meanwhile.
    """
    global _session_root
    with _session_root_lock:
        if _session_root is None or not _is_own_folder(_session_root):
            _session_root = Path(tempfile.mkdtemp(prefix=SESSION_PREFIX))
            gr.set_static_paths([_session_root])
            atexit.register(shutil.rmtree, _session_root, ignore_errors=True)
        return _session_root


def _is_own_folder(path: Path) -> bool:
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()


def _session_dir() -> Path:
    """A fresh request folder in :func:`session_root`, after removing the request folders
    there unused for :data:`SESSION_MAX_AGE_S`."""
    root = session_root()
    cutoff = time.time() - SESSION_MAX_AGE_S
    for old in root.iterdir():
        try:
            info = os.lstat(old)
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_mtime < cutoff:
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=root))
