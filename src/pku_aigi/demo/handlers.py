"""The Space's event handlers: UI values in, UI values out, errors as gr.Error/gr.Warning.

Each handler is a plain method that tests call directly; :mod:`pku_aigi.demo.ui` wires them
to the components. Files shown or offered for download are written into a fresh folder
under ``<tmp>/pku-aigi-demo/`` per request (gradio copies them into its cache); folders
older than an hour are removed.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import time
from pathlib import Path

import gradio as gr
from PIL import Image

from ..errors import PkuAigiError
from ..metrics import MS_SSIM_MIN_SIDE
from . import engine
from .catalog import Catalog
from .engine import RDPoint
from .plot import rd_figure
from .upload import InputImageError, load_input_image

log = logging.getLogger(__name__)

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
SESSION_ROOT = Path(tempfile.gettempdir()) / "pku-aigi-demo"
SESSION_MAX_AGE_S = 3600


class Handlers:
    """The handlers of one app, over one :class:`Catalog`."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog

    # --- upload -----------------------------------------------------------------------

    def on_upload(self, path: str | None):
        """Check an upload at once: (image value, notes markdown).

        A file that cannot be used is cleared, with a warning saying why; a converted
        image (CMYK, 16-bit, alpha, animated ...) is replaced by what will be compressed.
        """
        if not path:
            return gr.skip(), ""
        try:
            loaded = load_input_image(path)
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
        """Compress with every chosen codec.

        Returns (slider value, shown-codec dropdown, metrics rows, notes markdown, files,
        state for the RD plot).
        """
        if not path:
            raise gr.Error("Upload, paste or pick an example image first.", title="No image")
        if not keys:
            raise gr.Error("Choose at least one codec.", title="No codec")
        if mode == MODE_BPP and (target_bpp is None or target_bpp <= 0):
            raise gr.Error("Set a target bpp above 0, e.g. 0.5.", title="Bad target bpp")
        try:
            loaded = load_input_image(path)
        except InputImageError as error:
            raise gr.Error(str(error), title="Cannot use this file") from None
        image = loaded.image
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
        original_path = session / "original.png"
        image.save(original_path, compress_level=1)
        progress(0, desc="encoding and decoding (a learned model loads on first use)")

        def done(option, count):
            progress(count / len(options), desc=f"{option.key} done ({count}/{len(options)})")

        outcomes = engine.compress_many(
            options,
            image,
            level=level if mode != MODE_BPP else None,
            target_bpp=target_bpp if mode == MODE_BPP else None,
            prompt=prompt or None,
            on_done=done,
        )
        results = []
        for option, outcome in zip(options, outcomes, strict=True):
            if isinstance(outcome, PkuAigiError):
                gr.Warning(f"{option.key}: {outcome}", title="Codec failed")
                notes.append(f"{option.key} failed: {outcome}")
            elif isinstance(outcome, Exception):  # a bug in one codec must not hide the others
                log.error("%s failed", option.key, exc_info=outcome)
                message = f"{type(outcome).__name__}: {outcome}"
                gr.Warning(f"{option.key}: {message}", title="Codec failed")
                notes.append(f"{option.key} failed: {message}")
            else:
                results.append(outcome)
        if not results:
            raise gr.Error("Every chosen codec failed: " + "; ".join(notes), title="No result")

        if prompt:
            progress(0.95, desc="CLIP score")
        original_clip, clip_note = engine.add_clip_scores(results, image, prompt)
        if clip_note:
            notes.append(clip_note)
        elif original_clip is not None:
            notes.append(f"CLIP score of the original: {original_clip:.2f}")
        if any(result.ms_ssim_db is None for result in results):
            notes.append(
                f"MS-SSIM needs both sides >= {MS_SSIM_MIN_SIDE} px: left empty for this image"
            )

        state = {
            "image": str(original_path),
            "prompt": prompt,
            "reconstructions": {},
            "current": {},
        }
        files = []
        for result in results:
            slug = _slug(result.key)
            reconstruction_path = session / f"reconstruction-{slug}.png"
            result.reconstruction.save(reconstruction_path, compress_level=1)
            file_path = (
                session / f"{_slug(loaded.name)}-{slug}-q{_fmt_q(result.quality)}{result.extension}"
            )
            file_path.write_bytes(result.data)
            files.append(str(file_path))
            state["reconstructions"][result.key] = str(reconstruction_path)
            state["current"][result.key] = [
                result.quality,
                result.bpp,
                result.psnr,
                result.ms_ssim_db,
            ]
        first = results[0].key
        slider = (str(original_path), state["reconstructions"][first])
        dropdown = gr.update(choices=[r.key for r in results], value=first)
        rows = [_metric_row(result) for result in results]
        return slider, dropdown, rows, _notes_markdown(image, notes), files, state

    def show(self, key: str | None, state: dict | None):
        """The slider value for the reconstruction of ``key``."""
        if not state or not key or key not in state.get("reconstructions", {}):
            return gr.skip()
        return (state["image"], state["reconstructions"][key])

    def rd_plot(self, state: dict | None, draw_curves: bool, progress=gr.Progress()):  # noqa: B008
        """The RD figure of the last compression: curves over each codec's grid (if asked)."""
        if not state or not state.get("current"):
            return None
        current = {key: RDPoint(*values) for key, values in state["current"].items()}
        curves = {}
        if draw_curves:
            with Image.open(state["image"]) as image:
                image = image.convert("RGB")
            for index, key in enumerate(current):
                progress(index / len(current), desc=f"{key}: RD curve")
                try:
                    curves[key] = engine.rd_curve(
                        self.catalog.get(key), image, state["prompt"] or None
                    )
                except PkuAigiError as error:
                    gr.Warning(f"{key}: no RD curve ({error})", title="RD curve")
        return rd_figure(curves, current)

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


def _notes_markdown(image: Image.Image, notes: list[str]) -> str:
    width, height = image.size
    lines = [f"{width}x{height} RGB image."] + [f"- {note}" for note in notes]
    return "\n".join(lines)


def _fmt_q(quality: float) -> str:
    return str(int(quality)) if float(quality).is_integer() else f"{quality:g}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "file"


def _session_dir() -> Path:
    SESSION_ROOT.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - SESSION_MAX_AGE_S
    for old in SESSION_ROOT.iterdir():
        try:
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    return Path(tempfile.mkdtemp(dir=SESSION_ROOT))
