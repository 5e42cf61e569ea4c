"""The Space's handlers, codec catalog and files, without a browser."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

import pku_aigi
from pku_aigi import metrics
from pku_aigi.codecs import QualityLadder
from pku_aigi.space import register
from pku_aigi.space.catalog import Catalog
from pku_aigi.space.handlers import MODE_BPP, MODE_LEVEL, Handlers

ROOT = Path(__file__).resolve().parents[1]
TINY_REPO = "local/tiny-factorized-q1"


def no_progress(*args, **kwargs):
    return None


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    """A folder laid out like the Hub: one tiny learned model and one broken folder."""
    root = tmp_path_factory.mktemp("models")
    model = pku_aigi.models.create("bmshj2018-factorized", quality=1, N=16, M=16)
    model.save_pretrained(root / TINY_REPO)
    broken = root / "local" / "broken-q2"
    broken.mkdir(parents=True)
    (broken / "config.json").write_text(
        json.dumps({"architecture": "mbt2018-mean", "quality": 2, "metric": "mse"})
    )
    return root


@pytest.fixture(scope="module")
def catalog(models_dir) -> Catalog:
    return Catalog.discover(models_dir)


@pytest.fixture(scope="module")
def handlers(catalog) -> Handlers:
    return Handlers(catalog)


@pytest.fixture(scope="module")
def image_path(pku_examples, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("upload") / "mj52-crop.png"
    with Image.open(pku_examples / "mj52" / "1.png") as image:
        image.convert("RGB").crop((256, 256, 512, 448)).save(path)
    return path


def compress(handlers, path, keys, mode=MODE_LEVEL, level=50, target=None, prompt=""):
    """The Compress handler's last update (it streams one per finished codec)."""
    return streamed(handlers, path, keys, mode, level, target, prompt)[-1]


def streamed(handlers, path, keys, mode=MODE_LEVEL, level=50, target=None, prompt=""):
    """Every update the Compress handler streams."""
    path = str(path) if path else None
    return list(handlers.compress(path, prompt, keys, mode, level, target, progress=no_progress))


def test_catalog_lists_codecs_models_and_reasons(catalog, models_dir):
    assert {"jpeg", "webp"} <= set(catalog.available_keys)
    tiny = catalog.get("bmshj2018-factorized (mse)")
    assert tiny.available and tiny.codec.ladder.steps == (1,)
    assert tiny.codec.sources[1] == TINY_REPO  # the repo id, never the absolute path
    broken = catalog.get("mbt2018-mean (mse)")  # the broken folder and the offline zoo
    assert not broken.available
    assert "local/broken-q2" in broken.reason and "model.safetensors" in broken.reason
    offline = catalog.get("cheng2020-attn (ms-ssim)")
    assert not offline.available and "PKU_AIGI_MODELS_DIR" in offline.reason
    assert "**cheng2020-attn (ms-ssim)**" in Handlers(catalog).unavailable_markdown()


def test_quality_level_maps_onto_each_codec_scale():
    jpeg = QualityLadder.integers(1, 100, sweep=(2, 5, 10, 50, 92))
    assert [jpeg.at_level(x) for x in (0, 50, 100, 150)] == [2, 47, 92, 92]
    qp = QualityLadder.integers(0, 63, sweep=(50, 41, 32, 20), higher_is_better=False)
    assert [qp.at_level(x) for x in (0, 100)] == [50, 20]  # lower QP = higher rate
    learned = QualityLadder.of((1, 2, 3, 6))
    assert [learned.at_level(x) for x in (0, 40, 100)] == [1, 3, 6]
    ratio = QualityLadder.geometric(1, 1000, sweep=(480, 12), higher_is_better=False)
    assert [ratio.at_level(x) for x in (0, 50, 100)] == [480, 246.0, 12]
    assert QualityLadder.integers(0, 10, sweep=range(11)).spread(6) == [0, 2, 4, 6, 8, 10]
    assert pku_aigi.codecs.get("jpeg").ladder.at_level(50) == 47  # its sweep is 2 .. 92


def test_compress_two_codecs_and_a_learned_model(handlers, image_path):
    keys = ["jpeg", "webp", "bmshj2018-factorized (mse)"]
    updates = streamed(handlers, image_path, keys)
    # one update per finished codec, each showing what is finished (in the chosen order)
    assert [len(update[2]) for update in updates] == [1, 2, 3]
    slider, dropdown, rows, notes, files, state = updates[-1]
    for _, _, partial_rows, _, partial_files, _ in updates[:-1]:
        assert all(row in rows for row in partial_rows)
        assert set(partial_files) < set(files)
        assert all(Path(file).is_file() for file in partial_files)  # written when shown
    original = Image.open(image_path).convert("RGB")
    assert dropdown["choices"] == keys and dropdown["value"] == "jpeg"
    assert [row[0] for row in rows] == keys
    assert [Path(f).suffix for f in files] == [".jpg", ".webp", ".aigic"]
    for row, file in zip(rows, files):
        data = Path(file).read_bytes()
        assert row[3] == f"{len(data):,}"
        assert float(row[2]) == pytest.approx(metrics.bpp(len(data), 256, 192), abs=1e-4)
        reconstruction = Image.open(state["reconstructions"][row[0]])
        assert float(row[4]) == pytest.approx(metrics.psnr(original, reconstruction), abs=0.01)
        assert row[5] != "" and row[6] == ""  # MS-SSIM dB shown, no CLIP without a prompt
    assert rows[0][1] == "47" and rows[2][1] == "1"  # level 50 on jpeg's grid; fixed model q
    assert "CLIP score needs a prompt" in notes
    assert slider == (state["image"], state["reconstructions"]["jpeg"])
    assert handlers.show("webp", state) == (state["image"], state["reconstructions"]["webp"])
    decoded = handlers.decode(files[2])  # the .aigic file
    assert np.array_equal(
        np.asarray(Image.open(decoded[0])),
        np.asarray(Image.open(state["reconstructions"][keys[2]])),
    )
    assert "bmshj2018-factorized" in decoded[1] and "quality 1" in decoded[1]

    figures = list(handlers.rd_plot(state, True, progress=no_progress))
    assert len(figures) == 4  # the points at once, then one update per codec's curve
    assert len(figures[0].axes[0].get_lines()) == 3
    lines = {line.get_label(): line for line in figures[-1].axes[0].get_lines()}
    assert len(lines["jpeg"].get_xdata()) == 6 and len(lines["webp"].get_xdata()) == 6
    (figure,) = handlers.rd_plot(state, False, progress=no_progress)
    assert len(figure.axes[0].get_lines()) == 3  # the current points only


def test_target_bpp_stays_within_budget(handlers, image_path):
    _, _, rows, _, files, _ = compress(handlers, image_path, ["jpeg"], mode=MODE_BPP, target=0.8)
    assert 0.5 < float(rows[0][2]) <= 0.8
    with pytest.raises(gr.Error, match="target bpp above 0"):
        compress(handlers, image_path, ["jpeg"], mode=MODE_BPP, target=0)


def test_bad_requests_give_clear_errors(handlers, image_path, tmp_path):
    with pytest.raises(gr.Error, match="Upload, paste or pick"):
        compress(handlers, None, ["jpeg"])
    with pytest.raises(gr.Error, match="at least one codec"):
        compress(handlers, image_path, [])
    text = tmp_path / "readme.txt"
    text.write_text("hello")
    with pytest.raises(gr.Error, match="readme.txt is not an image"):
        compress(handlers, text, ["jpeg"])
    image, markdown = handlers.on_upload(str(text))
    assert image is None and "Cannot use this file" in markdown


def test_upload_replaces_a_converted_image(handlers, image_path, tmp_path):
    gray = tmp_path / "gray.png"
    Image.open(image_path).convert("L").save(gray)
    converted, markdown = handlers.on_upload(str(gray))
    assert Image.open(converted).mode == "RGB" and "grayscale" in markdown
    unchanged, markdown = handlers.on_upload(str(image_path))
    assert unchanged == {"__type__": "update"}  # gr.skip(): the upload stays as it is
    assert markdown == "256x192 RGB image, ready to compress."


def test_decode_tab_recognises_files_and_rejects_corrupt_ones(handlers, image_path, tmp_path):
    _, _, _, _, files, state = compress(handlers, image_path, ["webp", "jpeg"])
    renamed = tmp_path / "no-extension"
    renamed.write_bytes(Path(files[0]).read_bytes())
    decoded, info = handlers.decode(str(renamed))  # found by its magic bytes
    assert info.startswith("Decoded webp file")
    assert np.array_equal(
        np.asarray(Image.open(decoded)), np.asarray(Image.open(state["reconstructions"]["webp"]))
    )
    _, _, _, _, files, _ = compress(handlers, image_path, ["bmshj2018-factorized (mse)"])
    data = bytearray(Path(files[0]).read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt = tmp_path / "corrupt.aigic"
    corrupt.write_bytes(bytes(data))
    with pytest.raises(gr.Error, match="CRC32 mismatch"):
        handlers.decode(str(corrupt))
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(gr.Error, match="not a valid file of any codec"):
        handlers.decode(str(garbage))
    with pytest.raises(gr.Error, match="Upload a compressed file"):
        handlers.decode(None)


def test_empty_prompt_warns_for_text_conditioned_codecs(catalog, image_path, monkeypatch):
    warnings = []
    monkeypatch.setattr(gr, "Warning", lambda message, **kw: warnings.append(message))
    monkeypatch.setattr(catalog.get("webp").codec, "text_conditioned", True)  # as CATC would be
    _, _, _, notes, _, _ = compress(Handlers(catalog), image_path, ["webp"], prompt="   ")
    assert any("no prompt given" in w for w in warnings)
    assert "empty prompt" in notes


def test_cli_and_space_build_the_same_app(catalog, monkeypatch, models_dir, shared_data):
    import argparse

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["demo", "--host", "0.0.0.0", "--port", "7999", "--share"])
    assert (args.host, args.port, args.share) == ("0.0.0.0", 7999, True)
    assert args.func.__module__ == "pku_aigi.space"

    monkeypatch.setenv("PKU_AIGI_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("PKU_AIGI_EXAMPLES_DIR", str(shared_data / "diffusiondb-sample"))
    namespace = runpy.run_path(str(ROOT / "space" / "app.py"))
    demo = namespace["demo"]
    assert isinstance(demo, gr.Blocks)
    config = demo.get_config_file()
    ids = {c["props"].get("elem_id") for c in config["components"]}
    assert {"input-image", "codecs", "slider", "metrics", "rd-plot", "downloads"} <= ids
    codecs = next(c for c in config["components"] if c["props"].get("elem_id") == "codecs")
    labels = [choice[0] for choice in codecs["props"]["choices"]]
    assert "jpeg" in labels and "bmshj2018-factorized (mse)" in labels
    assert any(c["type"] == "dataset" for c in config["components"])  # the examples
    assert demo._queue.default_concurrency_limit == 1


def test_space_metadata_matches_the_package():
    import yaml

    text = (ROOT / "space" / "README.md").read_text(encoding="utf-8")
    header = yaml.safe_load(text.split("---")[1])
    assert header["sdk"] == "gradio" and header["sdk_version"] == gr.__version__
    assert header["app_file"] == "app.py" and (ROOT / "space" / header["app_file"]).is_file()
    assert header["datasets"] == ["Forerunner/PKU-AIGI-500K"]
    zoo = [entry["repo_id"] for entry in pku_aigi.models.zoo.load_zoo()["models"]]
    assert header["models"] == zoo
    requirements = (ROOT / "space" / "requirements.txt").read_text()
    assert "pku-aigi space build" in requirements  # it installs the wheel that build adds


def test_codecs_of_one_request_run_concurrently(catalog, image_path):
    """The codecs of one request overlap in time (as recorded by the engine), results
    come back in the user's order, and a codec that fails is reported on its own."""
    from pku_aigi.space import engine

    image = Image.open(image_path).convert("RGB")
    unavailable = catalog.unavailable[0]
    options = [catalog.get("avif"), unavailable, catalog.get("hevc")]
    done = []
    avif, failed, hevc = engine.compress_many(
        options, image, level=50, on_done=lambda option, count: done.append(count)
    )
    assert avif.key == "avif" and hevc.key == "hevc"
    assert isinstance(failed, pku_aigi.errors.CodecError) and unavailable.key in str(failed)
    assert sorted(done) == [1, 2, 3]
    # concurrent: each started before the other finished (a loop would start hevc after
    # avif has finished)
    assert avif.started < hevc.finished and hevc.started < avif.finished
    expected = catalog.get("hevc").codec.decode(hevc.data).convert("RGB")
    assert hevc.psnr == pytest.approx(metrics.psnr(image, expected), abs=1e-6)


def test_start_up_lists_learned_families_without_importing_model_code():
    """Listing the zoo's families must not import CompressAI and the architectures (seconds
    of imports): a family learns whether it is text-conditioned when first asked."""
    import subprocess
    import sys

    code = (
        "import sys; from pku_aigi.space import build_app, catalog; build_app(); "
        "learned = catalog.learned_options(); "
        "print(len(learned), sorted(m for m in ('compressai', 'torch', "
        "'pku_aigi.models.architectures.compressai_archs') if m in sys.modules))"
    )
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    count, imported = run.stdout.strip().splitlines()[-1].split(" ", 1)
    assert int(count) >= 6  # the zoo's families are listed ...
    assert imported == "[]"  # ... without importing model code


def test_previews_are_the_decoded_images_pixel_exact(handlers, image_path):
    """The slider shows, pixel for pixel, the original that was compressed and what each
    codec's downloadable file decodes to (lossless WebP previews), and the downloads are
    the codecs' own files."""
    keys = ["jpeg", "avif", "bmshj2018-factorized (mse)"]
    slider, _, rows, _, files, state = compress(handlers, image_path, keys)
    original = Image.open(image_path).convert("RGB")
    with Image.open(state["image"]) as preview:
        assert preview.format == "WEBP" and preview.mode == "RGB"
        assert np.array_equal(np.asarray(preview), np.asarray(original))
    for key, file in zip(keys, files, strict=True):
        codec = handlers.catalog.get(key).codec
        data = Path(file).read_bytes()
        assert codec.matches(data)  # the codec's own file, not a re-encoding
        decoded = codec.decode(data).convert("RGB")
        with Image.open(state["reconstructions"][key]) as preview:
            assert preview.format == "WEBP" and preview.size == original.size
            assert np.array_equal(np.asarray(preview.convert("RGB")), np.asarray(decoded)), key
    assert slider[1] == state["reconstructions"]["jpeg"]


def test_an_upload_is_decoded_once_and_reread_when_it_changes(
    catalog, image_path, tmp_path, monkeypatch
):
    """The upload check decodes the file and writes its preview; clicks reuse both. A
    file replaced at the same path is decoded again, an expired preview is written
    again, and the pixel limit still applies."""
    import shutil

    from pku_aigi.space import handlers as handlers_module

    handlers = Handlers(catalog)
    path = tmp_path / "upload.png"
    Image.open(image_path).save(path)
    loads = []
    real_load = handlers_module.load_input_image
    monkeypatch.setattr(
        handlers_module,
        "load_input_image",
        lambda *args, **kwargs: loads.append(args[0]) or real_load(*args, **kwargs),
    )
    assert "ready to compress" in handlers.on_upload(str(path))[1]
    first = compress(handlers, path, ["jpeg"])[5]
    second = compress(handlers, path, ["jpeg"])[5]
    assert len(loads) == 1
    assert first["image"] == second["image"]  # one preview of the original

    Image.open(image_path).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(path)
    os.utime(path, ns=(1, 1))  # a new modification time, whatever the clock's resolution
    third = compress(handlers, path, ["jpeg"])[5]
    assert len(loads) == 2 and third["image"] != first["image"]
    flipped = np.asarray(Image.open(image_path).convert("RGB"))[:, ::-1]
    assert np.array_equal(np.asarray(Image.open(third["image"])), flipped)

    shutil.rmtree(Path(third["image"]).parent)  # its request folder expired
    fourth = compress(handlers, path, ["jpeg"])[5]
    assert len(loads) == 3 and Path(fourth["image"]).is_file()

    monkeypatch.setenv("PKU_AIGI_DEMO_MAX_PIXELS", "1000")
    with pytest.raises(gr.Error, match="megapixels"):
        compress(handlers, path, ["jpeg"])


def test_outputs_run_their_file_writing_in_the_codec_threads(catalog, image_path):
    """``compress_many(then=...)`` runs in each codec's worker thread as soon as it has
    finished; an exception it raises is that codec's outcome, not the request's."""
    import threading

    from pku_aigi.space import engine

    image = Image.open(image_path).convert("RGB")
    threads = {}

    def then(result):
        threads[result.key] = threading.current_thread().name
        if result.key == "webp":
            raise OSError("disk full")

    jpeg, webp = engine.compress_many(
        [catalog.get("jpeg"), catalog.get("webp")], image, level=50, then=then
    )
    assert jpeg.key == "jpeg" and isinstance(webp, OSError)
    assert all(name.startswith("compress") for name in threads.values()), threads


SESSION_PROBE = """
import json, os, stat, sys
from gradio.utils import is_static_file
from pku_aigi.space.catalog import Catalog
from pku_aigi.space.handlers import _session_dir
from pku_aigi.space.ui import build_blocks

build_blocks(Catalog([]))
folder = _session_dir()
root = os.lstat(folder.parent)
json.dump({"folder": str(folder), "mode": stat.S_IMODE(root.st_mode),
           "link": stat.S_ISLNK(root.st_mode), "served": is_static_file(folder / "a.webp")},
          sys.stdout)
"""


def test_session_folder_is_private_and_never_follows_a_planted_link(tmp_path):
    """The folder used to be ``<tmp>/pku-aigi-demo``, followed if a link, and the
    clean-up deleted the link target's folders older than an hour."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    victim = tmp_path / "victim"
    (victim / "old-work").mkdir(parents=True)
    os.utime(victim / "old-work", (1, 1))  # older than an hour
    (temp / "pku-aigi-demo").symlink_to(victim)
    env = {**os.environ, "TMPDIR": str(temp)}
    result = subprocess.run(
        [sys.executable, "-c", SESSION_PROBE], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    probe = json.loads(result.stdout)
    folder = Path(probe["folder"])
    assert (victim / "old-work").is_dir()
    assert folder.parent.parent == temp and folder.parent.name.startswith("pku-aigi-demo-")
    assert probe["mode"] == 0o700 and not probe["link"]
    assert probe["served"]  # gradio serves the request folders as they are
    assert not folder.parent.exists()  # removed when the process exited
