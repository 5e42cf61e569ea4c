"""Every codec gives the same bytes when called from several threads at once on one
image object as when called alone: conventional, learned, and plugin codecs (which
inherit the guarantee from the ``Codec`` base), and the Space's concurrent path."""

from __future__ import annotations

import io
import threading

import pytest
from PIL import Image, UnidentifiedImageError
from tiny_models import tiny_model

from pku_aigi import codecs
from pku_aigi.codecs import Codec, QualityLadder, signature
from pku_aigi.codecs.learned import LearnedCodec
from pku_aigi.errors import CorruptStreamError
from pku_aigi.image_input import to_rgb
from pku_aigi.models.architectures.text_encoder import save_tiny_text_encoder
from pku_aigi.space import engine
from pku_aigi.space.catalog import CodecOption

ROUNDS = 2


class PngBitsCodec(Codec):
    """The README's plugin example: it saves its input through Pillow, as plugins do."""

    name = "png-bits"
    description = "PNG of the top 1..8 bits of each sample"
    quality_help = "bits kept per sample 1..8, higher is better"
    ladder = QualityLadder.integers(1, 8, sweep=(2, 3, 4, 6))
    file_extension = ".png"
    signatures = (signature((0, b"\x89PNG\r\n\x1a\n")),)

    def encode(self, image, quality, *, prompt=None):
        mask = (0xFF << (8 - self.check_quality(quality))) & 0xFF
        buffer = io.BytesIO()
        # Pillow's own per-image state: the settings of this save live on the object.
        to_rgb(image).save(buffer, "PNG", optimize=quality > 4, compress_level=quality)
        return bytes(buffer.getvalue()) + bytes([mask])

    def decode(self, data):
        try:
            with Image.open(io.BytesIO(data[:-1]), formats=["PNG"]) as image:
                return image.convert("RGB")
        except (UnidentifiedImageError, OSError) as error:
            raise CorruptStreamError(f"png-bits: {error}") from None


@pytest.fixture(scope="module")
def png_path(pku_examples, tmp_path_factory):
    path = tmp_path_factory.mktemp("concurrency") / "crop.png"
    with Image.open(pku_examples / "mj52" / "1.png") as image:
        image.convert("RGB").crop((300, 300, 396, 364)).save(path)
    return path


def shared_image(path) -> Image.Image:
    """One image object, opened lazily: its first use loads it (a race of its own)."""
    return Image.open(path)


def run_at_once(jobs, image) -> dict:
    """Each ``(key, codec, quality)`` of ``jobs`` encodes ``image`` in its own thread,
    all released together; returns {key: bytes}."""
    barrier = threading.Barrier(len(jobs))
    results, errors = {}, []

    def work(key, codec, quality):
        try:
            barrier.wait()
            results[key] = codec.encode(image, quality, prompt="a cat")
        except Exception as error:  # noqa: BLE001 - reported below with its job
            errors.append((key, error))

    threads = [threading.Thread(target=work, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return results


def conventional_jobs():
    jobs = []
    for name in codecs.available():
        codec = codecs.get(name)
        sweep = codec.ladder.sweep
        for quality in sorted({sweep[0], sweep[len(sweep) // 2], sweep[-1]}):
            jobs.append(((name, quality), codec, quality))
    return jobs


def test_conventional_and_plugin_codecs_give_the_same_bytes_concurrently(png_path):
    jobs = conventional_jobs()
    plugin = PngBitsCodec()
    jobs += [(("png-bits", q), plugin, q) for q in (2, 3, 6, 8)]
    assert {key[0] for key, _, _ in jobs} >= {"jpeg", "webp", "png-bits"}
    with Image.open(png_path) as alone:
        alone.load()
        expected = {key: codec.encode(alone, quality) for key, codec, quality in jobs}
    for _ in range(ROUNDS):
        with shared_image(png_path) as image:
            got = run_at_once(jobs, image)
        differ = sorted(key for key in expected if got[key] != expected[key])
        assert differ == []


def test_learned_codecs_give_the_same_bytes_concurrently(png_path, tmp_path):
    clip = save_tiny_text_encoder(tmp_path / "tiny-clip", dim=16)
    archs = ("bmshj2018-factorized", "mbt2018-mean", "mbt2018", "tcm-small", "catc")
    learned = {
        arch: LearnedCodec(tiny_model(arch, text_encoder=clip), device="cpu") for arch in archs
    }
    # Two threads per model: one model object coding two images' worth at once.
    jobs = [((arch, n), codec, None) for arch, codec in learned.items() for n in range(2)]
    with Image.open(png_path) as alone:
        alone.load()
        expected = {arch: codec.encode(alone, prompt="a cat") for arch, codec in learned.items()}
    for _ in range(ROUNDS):
        with shared_image(png_path) as image:
            got = run_at_once(jobs, image)
        assert sorted(key for key in got if got[key] != expected[key[0]]) == []
    for arch, codec in learned.items():
        assert codec.decode(expected[arch]).size == (96, 64)


@pytest.mark.parametrize("target_bpp", [None, 1.0])
def test_the_space_gives_the_same_results_concurrently_and_in_sequence(
    png_path, target_bpp, monkeypatch
):
    """The Space codes one upload with all chosen codecs in threads: its Target-bpp mode
    used to report another codec's quality and rate."""
    names = [n for n in ("jpeg", "webp", "avif", "jpeg2000", "jpegxl") if n in codecs.available()]
    options = [CodecOption(key=n, codec=codecs.get(n)) for n in names]

    def outcome(workers):
        monkeypatch.setattr(engine, "MAX_WORKERS", workers)
        with shared_image(png_path) as image:
            results = engine.compress_many(options, image, level=30, target_bpp=target_bpp)
        return [(r.key, r.quality, r.data, round(r.psnr, 6)) for r in results]

    sequential = outcome(1)
    for _ in range(ROUNDS):
        assert outcome(len(options)) == sequential
