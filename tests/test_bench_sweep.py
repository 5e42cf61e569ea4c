"""The sweep: real codecs in worker processes, exact measurements, a resumable cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pku_aigi import codecs, metrics
from pku_aigi.bench import images_from_folder, run_sweep
from pku_aigi.bench.sweep import CACHE_FILE, CodecRun, MeasurementCache, measure
from pku_aigi.errors import PkuAigiError
from pku_aigi.metrics import ImageTooSmallError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def write_crops(pku_examples, folder, subsets=("sd21b", "mj52"), size=(192, 176)):
    for subset in subsets:
        (folder / subset).mkdir(parents=True)
        with Image.open(pku_examples / subset / "1.png") as image:
            image.convert("RGB").crop((64, 64, 64 + size[0], 64 + size[1])).save(
                folder / subset / "1.png"
            )
    return folder


@pytest.fixture(scope="module")
def crops(pku_examples, tmp_path_factory):
    return write_crops(pku_examples, tmp_path_factory.mktemp("crops"))


@pytest.fixture(scope="module")
def swept(crops, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    images = images_from_folder(crops)
    runs = [CodecRun("jpeg", (20, 80)), CodecRun("webp", (30,))]
    return images, out, run_sweep(images, runs, out, workers=2, progress=False)


def test_folder_images_get_subsets_from_sub_folders_and_a_content_key(crops):
    images = images_from_folder(crops)
    assert [(i.name, i.subset, i.width, i.height) for i in images] == [
        ("mj52/1.png", "mj52", 192, 176),
        ("sd21b/1.png", "sd21b", 192, 176),
    ]
    assert images[0].key != images[1].key and len(images[0].key) == 16
    assert images_from_folder(crops, limit=1)[0].key == images[0].key


def test_prompts_come_from_imagefolder_metadata(diffusiondb):
    images = images_from_folder(diffusiondb, limit=2)
    rows = {json.loads(line)["file_name"]: json.loads(line)["prompt"]
            for line in (diffusiondb / "metadata.jsonl").read_text().splitlines()}  # fmt: skip
    assert all(i.prompt == rows[i.name].strip() for i in images)  # stripped, as the dataset's
    assert images[0].subset == "images"


def test_every_measurement_is_made_from_the_real_bytes(swept):
    images, _, result = swept
    assert result.failures == [] and result.reused == 0
    assert result.measured == len(result.rows) == 2 * 3
    by_image = {i.name: i for i in images}
    jpeg = codecs.get("jpeg")
    for row in result.rows:
        assert row["bpp"] == pytest.approx(row["bytes"] * 8 / (192 * 176))
        assert row["payload_bpp"] is None  # only .aigic files have a payload figure
        assert row["ms_ssim_db"] == pytest.approx(metrics.ms_ssim_db(row["ms_ssim"]))
        assert row["encode_s"] > 0 and row["decode_s"] > 0
        if row["codec"] == "jpeg":  # deterministic codec: the worker's numbers are exact
            image = by_image[row["image"]]
            data = jpeg.encode(Image.fromarray(image.rgb), row["quality"])
            assert len(data) == row["bytes"]
            assert row["psnr"] == pytest.approx(metrics.psnr(image.rgb, jpeg.decode(data)))
    psnr = {(r["image"], r["codec"], r["quality"]): r["psnr"] for r in result.rows}
    assert psnr[("mj52/1.png", "jpeg", 80)] > psnr[("mj52/1.png", "jpeg", 20)]


def test_rerun_reuses_the_cache_and_a_torn_line_is_redone(swept):
    images, out, first = swept
    runs = [CodecRun("jpeg", (20, 80)), CodecRun("webp", (30,))]
    again = run_sweep(images, runs, out, workers=2, progress=False)
    assert (again.measured, again.reused) == (0, 6)
    assert sorted(r["key"] for r in again.rows) == sorted(r["key"] for r in first.rows)

    cache = out / CACHE_FILE
    lines = cache.read_text().splitlines()
    cache.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])  # interrupted
    assert len(MeasurementCache(cache).rows) == 5
    resumed = run_sweep(images, runs, out, workers=1, progress=False)  # in-process
    assert (resumed.measured, resumed.reused) == (1, 5)


def test_the_cache_key_follows_codec_version_and_quality(swept):
    images, out, _ = swept

    class Retuned(type(codecs.get("jpeg"))):
        @property
        def version(self):
            return super().version + " retuned"

    result = run_sweep(images[:1], [CodecRun("jpeg", (20,), codec=Retuned())], out, progress=False)
    assert (result.measured, result.reused) == (1, 0)
    result = run_sweep(images[:1], [CodecRun("jpeg", (21,))], out, workers=1, progress=False)
    assert (result.measured, result.reused) == (1, 0)


def test_a_failing_measurement_is_reported_not_cached(crops, tmp_path):
    images = images_from_folder(crops)

    class Broken(type(codecs.get("jpeg"))):
        def decode(self, data):
            return Image.new("RGB", (8, 8))

    result = run_sweep(images, [CodecRun("jpeg", (50,), codec=Broken())], tmp_path, progress=False)
    assert result.rows == [] and len(result.failures) == 2
    assert "decoded a 8x8 image from a 192x176 input" in result.failures[0].error
    assert not (tmp_path / CACHE_FILE).exists()


def test_images_too_small_for_ms_ssim_fail_before_any_coding(tmp_path):
    Image.fromarray(np.zeros((150, 300, 3), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(ImageTooSmallError, match=r"small.png \(300x150\)"):
        images_from_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PkuAigiError, match="no images found"):
        images_from_folder(tmp_path / "empty")
    with pytest.raises(PkuAigiError, match="not a folder"):
        images_from_folder(tmp_path / "missing")


def test_vvc_and_hevc_measure_in_the_main_process(crops):
    image = images_from_folder(crops)[0]
    for name in ("hevc", "vvc"):
        row = measure(codecs.get(name), image.rgb, 37)
        assert 0 < row["bpp"] < 2 and 25 < row["psnr"] < 50
