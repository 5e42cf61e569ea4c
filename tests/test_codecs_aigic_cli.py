"""`pku-aigi compress` / `pku-aigi decompress`: learned (.aigic) and conventional files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pku_aigi import models
from pku_aigi.cli import main
from pku_aigi.codecs import container


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "tiny-mbt2018-mean"
    models.create("mbt2018-mean", quality=1, N=16, M=16).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def png(tmp_path_factory, pku_examples):
    source = sorted((pku_examples / "sd21b").iterdir())[0]
    path = tmp_path_factory.mktemp("images") / "crop.png"
    Image.open(source).convert("RGB").crop((0, 0, 130, 90)).save(path)
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_compress_decompress_with_model_from_header(tmp_path, capsys, model_dir, png, monkeypatch):
    aigic = tmp_path / "a.aigic"
    code, out, _ = run(
        capsys, "compress", png, "-o", aigic, "--model", model_dir, "--device", "cpu"
    )
    assert code == 0 and "mbt2018-mean" in out and "bpp" in out
    data = aigic.read_bytes()
    header = container.parse(data)
    # A portable reference (the folder's name), never the user's absolute path.
    assert header.model_id == "tiny-mbt2018-mean" and header.quality == 1
    assert str(model_dir.parent).encode() not in data and b"/tmp" not in data
    decoded = tmp_path / "a.png"
    code, _, err = run(capsys, "decompress", aigic, "-o", decoded, "--device", "cpu")
    assert code == 2 and "'tiny-mbt2018-mean'" in err and "pass --model" in err
    code, _, _ = run(capsys, "decompress", aigic, "-o", decoded, "--model", model_dir)
    assert code == 0
    image = Image.open(decoded)
    assert image.size == (130, 90) and image.mode == "RGB"
    monkeypatch.chdir(model_dir.parent)  # where the reference resolves, no --model needed
    code, _, _ = run(capsys, "decompress", aigic, "-o", tmp_path / "b.png")
    assert code == 0 and Image.open(tmp_path / "b.png").size == (130, 90)


def test_other_weights_are_refused_by_the_fingerprint(tmp_path, capsys, model_dir, png):
    aigic = tmp_path / "a.aigic"
    assert run(capsys, "compress", png, "-o", aigic, "--model", model_dir)[0] == 0
    torch.manual_seed(1)
    other = tmp_path / "tiny-mbt2018-mean"  # the same name, other weights
    models.create("mbt2018-mean", quality=1, N=16, M=16).save_pretrained(other)
    code, _, err = run(capsys, "decompress", aigic, "-o", tmp_path / "a.png", "--model", other)
    fingerprint = container.parse(aigic.read_bytes()).fingerprint.hex()
    assert code == 2 and f"with fingerprint {fingerprint}" in err and "other weights" in err
    assert not (tmp_path / "a.png").exists()


def test_never_overwrites_without_force(tmp_path, capsys, model_dir, png):
    out = tmp_path / "a.aigic"
    out.write_bytes(b"precious")
    code, _, err = run(capsys, "compress", png, "-o", out, "--model", model_dir)
    assert code == 2 and "already exists: pass --force" in err
    assert out.read_bytes() == b"precious"
    code, _, _ = run(capsys, "compress", png, "-o", out, "--model", model_dir, "--force")
    assert code == 0 and container.is_aigic(out.read_bytes())
    target = tmp_path / "b.png"
    target.write_bytes(b"keep me")
    code, _, err = run(capsys, "decompress", out, "-o", target)
    assert code == 2 and "--force" in err and target.read_bytes() == b"keep me"


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "wrong magic"),
        (b"\x89AIGIC\x01" + bytes(40), "CRC32 mismatch"),
        (bytes(range(256)) * 3, "wrong magic"),
    ],
)
def test_bad_aigic_files_give_one_message(tmp_path, capsys, content, message):
    bad = tmp_path / "bad.aigic"
    bad.write_bytes(content)
    code, _, err = run(capsys, "decompress", bad, "-o", tmp_path / "x.png")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


def test_truncated_and_flipped_files(tmp_path, capsys, model_dir, png):
    good = tmp_path / "good.aigic"
    assert run(capsys, "compress", png, "-o", good, "--model", model_dir)[0] == 0
    data = good.read_bytes()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    for name, content in (("trunc", data[: len(data) - 7]), ("flip", bytes(flipped))):
        path = tmp_path / f"{name}.aigic"
        path.write_bytes(content)
        code, _, err = run(capsys, "decompress", path, "-o", tmp_path / f"{name}.png")
        assert code == 2 and "corrupted or truncated" in err


def test_missing_model_names_the_header_model(tmp_path, capsys, png):
    torch.manual_seed(0)
    gone = tmp_path / "gone-model"
    models.create("mbt2018-mean", quality=1, N=16, M=16).save_pretrained(gone)
    aigic = tmp_path / "a.aigic"
    assert run(capsys, "compress", png, "-o", aigic, "--model", gone)[0] == 0
    gone.rename(tmp_path / "moved-model")
    code, _, err = run(capsys, "decompress", aigic, "-o", tmp_path / "a.png")
    assert code == 2 and "pass --model" in err and "gone-model" in err
    code, _, _ = run(
        capsys, "decompress", aigic, "-o", tmp_path / "a.png", "--model", tmp_path / "moved-model"
    )
    assert code == 0


def test_conventional_codec_round_trip_by_magic_bytes(tmp_path, capsys, png):
    jpg = tmp_path / "a.bin"  # no telling extension: recognised by magic bytes
    code, out, _ = run(capsys, "compress", png, "-o", jpg, "--codec", "jpeg", "--quality", 40)
    assert code == 0 and jpg.read_bytes()[:3] == b"\xff\xd8\xff"
    code, _, _ = run(capsys, "decompress", jpg, "-o", tmp_path / "a.png")
    assert code == 0
    decoded = np.asarray(Image.open(tmp_path / "a.png")).astype(float)
    original = np.asarray(Image.open(png)).astype(float)
    assert 10 * np.log10(255**2 / np.mean((decoded - original) ** 2)) > 25


def test_conventional_codec_needs_quality_and_unknown_files_need_codec(tmp_path, capsys, png):
    code, _, err = run(capsys, "compress", png, "-o", tmp_path / "a.jpg", "--codec", "jpeg")
    assert code == 2 and "--quality is required" in err
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01 nothing known")
    code, _, err = run(capsys, "decompress", junk, "-o", tmp_path / "j.png")
    assert code == 2 and "pass --codec NAME" in err


def test_unreadable_input_image(tmp_path, capsys, model_dir):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    code, _, err = run(capsys, "compress", text, "-o", tmp_path / "a.aigic", "--model", model_dir)
    assert code == 2 and "cannot read" in err
