"""Every command that writes user files: a bad target is one error line, exit 2, no leftovers.

Targets: an existing folder where a file is expected (also with --force), a file where a
folder is expected, a folder under /proc (cannot hold files), a missing parent folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from PIL import Image

from pku_aigi.cli import main
from pku_aigi.errors import OutputError
from pku_aigi.outputs import check_output_file, check_output_folder, write_file_atomically

UNWRITABLE = Path("/proc/pku-aigi-test")  # procfs: no regular files can be created there


@pytest.fixture(scope="module")
def png(tmp_path_factory, diffusiondb):
    path = tmp_path_factory.mktemp("in") / "crop.png"
    Image.open(diffusiondb / "images" / "0003.png").convert("RGB").crop((0, 0, 96, 64)).save(path)
    return path


@pytest.fixture(scope="module")
def jpg(tmp_path_factory, png):
    path = tmp_path_factory.mktemp("jpg") / "crop.jpg"
    assert main(["compress", str(png), "-o", str(path), "--codec", "jpeg", "--quality", "50"]) == 0
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, err


def listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def one_error(code, err, *fragments):
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


@pytest.mark.parametrize("command", ["compress", "decompress"])
def test_output_that_is_a_folder_is_refused_even_with_force(command, tmp_path, capsys, png, jpg):
    source = png if command == "compress" else jpg
    extra = ["--codec", "jpeg", "--quality", "50"] if command == "compress" else []
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    before = listing(tmp_path)
    code, err = run(capsys, command, source, "-o", folder, *extra, "--force")
    one_error(code, err, "is a folder", "file's name")
    assert listing(tmp_path) == before  # no .tmp file beside it
    assert listing(folder) == {"keep.txt"}


@pytest.mark.parametrize("command", ["compress", "decompress"])
def test_unwritable_or_missing_place_is_one_error(command, tmp_path, capsys, png, jpg):
    source = png if command == "compress" else jpg
    extra = ["--codec", "jpeg", "--quality", "50"] if command == "compress" else []
    name = "x.jpg" if command == "compress" else "x.png"
    code, err = run(capsys, command, source, "-o", UNWRITABLE.parent / name, *extra)
    one_error(code, err, f"cannot write /proc/{name}", "cannot create files in /proc")
    code, err = run(capsys, command, source, "-o", tmp_path / "nope" / name, *extra)
    one_error(code, err, "does not exist")
    (tmp_path / "file").write_text("x")
    code, err = run(capsys, command, source, "-o", tmp_path / "file" / name, *extra)
    one_error(code, err, "is not a folder")
    assert listing(tmp_path) == {"file"}


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    target = tmp_path / "out.bin"

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OutputError, match="No space left on device"):
        write_file_atomically(target, b"data")
    assert list(tmp_path.iterdir()) == []


def test_checks_accept_good_targets(tmp_path):
    assert check_output_file(tmp_path / "a.jpg", force=False) == tmp_path / "a.jpg"
    (tmp_path / "a.jpg").write_bytes(b"x")
    check_output_file(tmp_path / "a.jpg", force=True)
    assert check_output_folder(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # checking creates nothing
    assert listing(tmp_path) == {"a.jpg"}  # the probe file is gone


def test_bench_out(tmp_path, capsys, png):
    images = png.parent
    argv = ["bench", "--images", images, "--codecs", "jpeg", "--qualities", "jpeg=50"]
    code, err = run(capsys, *argv, "--out", UNWRITABLE, "--no-progress")
    one_error(code, err, "cannot create files in /proc")
    (tmp_path / "file").write_text("x")
    code, err = run(capsys, *argv, "--out", tmp_path / "file" / "results", "--no-progress")
    one_error(code, err, "is a file, not a folder")
    assert listing(tmp_path) == {"file"}


def test_data_export_and_script_out(tmp_path, capsys, hub_replica):
    root = getattr(hub_replica, "root", hub_replica)
    (tmp_path / "file").write_text("x")
    for out in (UNWRITABLE, tmp_path / "file"):
        code, err = run(capsys, "data", "export", "--config", "mod", "--data-dir", root,
                        "--split", "validation", "--out", out)  # fmt: skip
        one_error(code, err, "--out" if out.name == "file" else "/proc")
        code, err = run(capsys, "data", "script", "--out", out)
        one_error(code, err)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "README.md").write_text("my notes")
    code, err = run(capsys, "data", "script", "--out", mine)
    one_error(code, err, "not written by `pku-aigi data script`", "--force")
    assert (mine / "README.md").read_text() == "my notes" and listing(mine) == {"README.md"}
    assert main(["data", "script", "--out", str(mine), "--force"]) == 0
    assert listing(mine) == {"README.md", "PKU-AIGI-500K.py"}
    assert main(["data", "script", "--out", str(mine)]) == 0  # its own files: rewritten


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from compressai.models import FactorizedPrior

    torch.manual_seed(0)
    net = FactorizedPrior(128, 192)
    path = tmp_path_factory.mktemp("ckpt") / "bmshj2018-factorized-prior-1.pth.tar"
    torch.save({"state_dict": net.state_dict()}, path)
    return path


def test_models_convert_out(tmp_path, capsys, checkpoint):
    argv = ["models", "convert-compressai", "bmshj2018-factorized", "--quality", "1", checkpoint]
    code, err = run(capsys, *argv, "--out", UNWRITABLE)
    one_error(code, err, "cannot create files in /proc")
    (tmp_path / "file").write_text("x")
    code, err = run(capsys, *argv, "--out", tmp_path / "file", "--force")
    one_error(code, err, "is a file, not a folder")
    assert listing(tmp_path) == {"file"}


def test_train_out(tmp_path, capsys, png):
    (tmp_path / "file").write_text("x")
    argv = ["train", "--arch", "mbt2018-mean", "--lmbda", "0.01", "--images", png.parent]
    for out, message in ((tmp_path / "file", "is a file"), (UNWRITABLE, "/proc")):
        code, err = run(capsys, *argv, "--out", out, "--max-steps", "1")
        one_error(code, err, message)
    assert listing(tmp_path) == {"file"}


def test_temporary_files_are_exclusive_and_long_names_are_checked_first(
    tmp_path, capsys, png, monkeypatch
):
    """The temporary name used to be ``.<name>.<pid>.tmp``, written through a planted
    link, and too long for a valid 250-character output name (after the encoding)."""
    from pku_aigi.codecs.pillow_codecs import JpegCodec

    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    out = tmp_path / "out"
    out.mkdir()
    (out / f".x.jpg.{os.getpid()}.tmp").symlink_to(victim)
    code, err = run(
        capsys, "compress", png, "-o", out / "x.jpg", "--codec", "jpeg", "--quality", 50
    )
    assert code == 0, err
    assert victim.read_bytes() == b"mine" and Image.open(out / "x.jpg").size == (96, 64)
    long_name = out / ("a" * 246 + ".jpg")  # 250 characters: the file system takes it
    code, err = run(capsys, "compress", png, "-o", long_name, "--codec", "jpeg", "--quality", 50)
    assert code == 0, err
    assert listing(out) == {"x.jpg", long_name.name, f".x.jpg.{os.getpid()}.tmp"}

    def no_encoding(*args):
        raise AssertionError("encoded before checking the output")

    monkeypatch.setattr(JpegCodec, "_encode", no_encoding)
    too_long = out / ("b" * 300 + ".jpg")
    code, err = run(capsys, "compress", png, "-o", too_long, "--codec", "jpeg", "--quality", 50)
    one_error(code, err, "its name is 304 bytes", "choose a shorter name")
    assert len(listing(out)) == 3
