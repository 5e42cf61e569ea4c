"""One folder reader and one RGB rule, shared by the benchmark, training, the Space and
every codec."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from pku_aigi import codecs, metrics, models
from pku_aigi.bench import images_from_folder
from pku_aigi.errors import CodecError, DatasetError
from pku_aigi.image_input import read_folder, to_rgb
from pku_aigi.space.examples import folder_examples
from pku_aigi.train.data import FolderSource


@pytest.fixture(scope="module")
def folder(pku_examples, tmp_path_factory):
    """Nested images, upper-case and AVIF extensions, metadata files at two levels."""
    root = tmp_path_factory.mktemp("folder")
    with Image.open(pku_examples / "sd21b" / "1.png") as image:
        crop = image.convert("RGB").crop((0, 0, 192, 176))
    (root / "mj52").mkdir()
    crop.save(root / "a.PNG")
    crop.save(root / "mj52" / "b.avif", quality=90)
    crop.save(root / "mj52" / "c.jpg")
    (root / "notes.txt").write_text("not an image")
    (root / "metadata.jsonl").write_text(
        json.dumps({"file_name": "a.PNG", "prompt": " a cat "}) + "\n"
    )
    (root / "mj52" / "metadata.jsonl").write_text(
        json.dumps({"file_name": "b.avif", "prompt": "a dog"}) + "\n\n"
    )
    return root


def test_bench_train_and_space_read_a_folder_alike(folder):
    found = read_folder(folder)
    assert [(i.relative, i.prompt) for i in found] == [
        ("a.PNG", "a cat"),
        ("mj52/b.avif", "a dog"),
        ("mj52/c.jpg", None),
    ]
    bench = images_from_folder(folder)
    assert [(i.name, i.prompt) for i in bench] == [(i.relative, i.prompt) for i in found]
    train = FolderSource(folder)
    assert [train.prompt(n) for n in range(len(train))] == ["a cat", "a dog", ""]
    assert folder_examples(folder) == [[str(i.path), i.prompt or ""] for i in found]


def test_folder_errors_name_the_problem(folder, tmp_path):
    with pytest.raises(
        DatasetError, match=r"missing is not a folder \(it does not exist\): pass a folder"
    ):
        read_folder(tmp_path / "missing")
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(DatasetError, match="file.png is not a folder"):
        read_folder(tmp_path / "file.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images found.*\\.png"):
        FolderSource(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    Image.new("RGB", (4, 4)).save(bad / "x.png")
    (bad / "metadata.jsonl").write_text('{"file_name": "x.png"}\n{"prompt": "no file name"}\n')
    with pytest.raises(DatasetError, match=r"metadata.jsonl, line 2: not an imagefolder row"):
        images_from_folder(bad)


def test_learned_codecs_refuse_what_conventional_codecs_refuse():
    model = models.create("bmshj2018-factorized", quality=1, N=8, M=8)
    learned = codecs.from_model(model, device="cpu")
    jpeg = codecs.get("jpeg")
    floats = Image.fromarray(np.zeros((64, 64), np.float32))
    frames = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(
        frames, "GIF", save_all=True, append_images=[Image.new("RGB", (64, 64), "blue")]
    )
    for codec, quality in ((learned, 1), (jpeg, 80)):
        with pytest.raises(CodecError, match="float images"):
            codec.encode(floats, quality)
        with Image.open(io.BytesIO(frames.getvalue())) as animated:
            with pytest.raises(CodecError, match=r"animated \(2 frames\).*image.seek"):
                codec.encode(animated, quality)


def test_metrics_read_16_bit_grey_by_the_same_rule():
    grey = Image.fromarray(np.array([[0, 257, 65535, 32896]], dtype=np.uint16))
    assert metrics.to_rgb_array(grey)[0, :, 0].tolist() == [0, 1, 255, 128]
    assert np.array_equal(metrics.to_rgb_array(grey), np.asarray(to_rgb(grey)))
