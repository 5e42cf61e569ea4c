"""Crafted input images: `pku-aigi compress` and the demo give one error line,
never a traceback, a DecompressionBombError or a 2 GiB allocation."""

from __future__ import annotations

import io
import os
import resource
import shutil
import struct
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import pytest
from PIL import Image

from pku_aigi.cli import main
from pku_aigi.errors import CodecError
from pku_aigi.image_input import ImageFileError, image_file_size, open_image_file
from pku_aigi.space.upload import InputImageError, load_input_image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def grey_png(width: int, height: int, *extra: bytes, rows: int | None = None) -> bytes:
    """An 8-bit grey PNG of black pixels, with ``extra`` chunks before IDAT; with
    ``rows``, the IDAT holds only that many rows (the rest of the file is cut)."""
    row = bytes(width + 1)
    idat = zlib.compress(row * (height if rows is None else rows), 9)
    ihdr = struct.pack(">2I5B", width, height, 8, 0, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + chunk(b"IHDR", ihdr)
        + b"".join(extra)
        + chunk(b"IDAT", idat)
        + (chunk(b"IEND", b""))
    )


def tiff_with_lost_frame() -> bytes:
    """A 32x32 RGB TIFF whose next-IFD offset points past the end of the file: its first
    frame decodes, and counting its frames makes Pillow raise TypeError ("Missing
    dimensions"), which no opener listing Pillow's usual errors catches."""
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 20, 30)).save(buffer, "TIFF")
    data = bytearray(buffer.getvalue())
    assert data[:4] == b"II*\0"  # little-endian TIFF
    ifd = struct.unpack_from("<I", data, 4)[0]
    entries = struct.unpack_from("<H", data, ifd)[0]
    struct.pack_into("<I", data, ifd + 2 + 12 * entries, len(data) + 1000)
    return bytes(data)


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crafted")
    files = {
        "bomb.png": grey_png(30000, 30000, rows=1),  # 900 million pixels declared
        "text.png": grey_png(
            32, 32, chunk(b"zTXt", b"Comment\0\0" + zlib.compress(b"A" * (2 << 20)))
        ),
        "length.png": grey_png(32, 32),
        "lost-frame.tif": tiff_with_lost_frame(),
    }
    data = bytearray(files["length.png"])
    struct.pack_into(">I", data, data.find(b"IDAT") - 4, 0x7FFF_FFFF)  # IDAT length 2 GiB
    files["length.png"] = bytes(data)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return folder


@pytest.mark.parametrize(
    "name, message",
    [
        ("bomb.png", r"too large to decode safely .*900000000 pixels"),
        ("text.png", r"cannot read .*text\.png as an image: Decompressed data too large"),
    ],
)
def test_compress_refuses_crafted_png_in_one_line(crafted, tmp_path, capsys, name, message):
    out = tmp_path / "out.jpg"
    status = main(
        ["compress", str(crafted / name), "-o", str(out), "--codec", "jpeg", "--quality", "80"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and not out.exists()
    assert len(err) == 1 and err[0].startswith("pku-aigi compress: error: "), err
    assert __import__("re").search(message, err[0]), err[0]


def test_size_is_checked_before_pixels_are_decoded(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(grey_png(300, 200)[:60])  # the file ends inside IDAT
    with pytest.raises(CodecError, match=r"300x200 = 60,000 pixels, more than the limit of 50,000"):
        open_image_file(path, max_pixels=50_000)
    with pytest.raises(CodecError, match=r"big\.png is truncated or corrupt"):
        open_image_file(path, max_pixels=60_000)


def test_declared_chunk_length_does_not_allocate(crafted, tmp_path, capsys):
    """An IDAT length of 2 GiB in a 100-byte file: Pillow reading the file itself would
    allocate 2 GiB (a MemoryError under a memory cap); read from memory it costs nothing."""
    out = tmp_path / "out.jpg"
    tracemalloc.start()
    try:
        status = main(
            [
                "compress",
                str(crafted / "length.png"),
                "-o",
                str(out),
                "--codec",
                "jpeg",
                "--quality",
                "80",
            ]
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, f"{peak / 2**20:.0f} MiB"
    assert status == 0, capsys.readouterr().err
    assert Image.open(out).getextrema() == ((0, 0), (0, 0), (0, 0))  # the 32x32 black image


def test_demo_loader_refuses_a_huge_text_chunk(crafted):
    with pytest.raises(InputImageError, match=r"text\.png cannot be opened: Decompressed data"):
        load_input_image(crafted / "text.png")


def test_valid_image_is_read_as_pillow_reads_it(pku_examples, tmp_path):
    source = sorted((pku_examples / "mj52").glob("*.png"))[0]
    image = open_image_file(source)
    with Image.open(source) as reference:
        assert image.mode == reference.mode and image.tobytes() == reference.tobytes()


@pytest.mark.parametrize("codec, size", [("jpeg", (8, 65536))])
def test_a_side_above_the_format_limit_is_a_codec_error(codec, size):
    """Found by the fuzz run: an IHDR height of 65586 made JPEG's encoder raise OSError."""
    from pku_aigi import codecs

    with pytest.raises(CodecError, match=rf"{codec} cannot code this {size[0]}x{size[1]} image"):
        codecs.get(codec).encode(Image.new("RGB", size), 90)


def test_a_tiff_with_a_lost_frame_is_one_codec_error(crafted):
    with pytest.raises(TypeError, match="Missing dimensions"):  # what Pillow itself does
        with Image.open(crafted / "lost-frame.tif") as image:
            getattr(image, "n_frames", 1)
    with pytest.raises(ImageFileError, match=r"lost-frame\.tif is truncated or corrupt") as info:
        open_image_file(crafted / "lost-frame.tif")
    assert isinstance(info.value, CodecError) and info.value.kind == "pixels"
    assert image_file_size(crafted / "lost-frame.tif") == (32, 32)  # the header is fine


def test_space_upload_of_a_crafted_tiff_gives_the_space_message(crafted, tmp_path):
    """The Space's handlers word the refusal by the upload's name, never a TypeError."""
    import gradio as gr

    from pku_aigi.space.catalog import Catalog, registered_options
    from pku_aigi.space.handlers import MODE_LEVEL, Handlers

    upload = tmp_path / "upload" / "scan.tif"
    upload.parent.mkdir()
    shutil.copy(crafted / "lost-frame.tif", upload)
    expected = r"scan\.tif is truncated or corrupt \(.*\): upload the complete file"
    with pytest.raises(InputImageError, match=expected):
        load_input_image(upload)
    handlers = Handlers(Catalog(registered_options()))
    value, notes = handlers.on_upload(str(upload))
    assert value is None and notes.startswith("**Cannot use this file:** scan.tif is truncated")
    assert str(upload.parent) not in notes  # the server's path is not shown
    with pytest.raises(gr.Error, match=expected):
        list(handlers.compress(str(upload), "", ["jpeg"], MODE_LEVEL, 50, None, progress=print))


def test_bench_and_train_folders_refuse_a_crafted_file_with_a_codec_error(
    crafted, pku_examples, tmp_path
):
    from pku_aigi.bench.images import images_from_folder
    from pku_aigi.train.data import FolderSource

    folder = tmp_path / "images"
    folder.mkdir()
    shutil.copy(sorted((pku_examples / "mj52").glob("*.png"))[0], folder / "a.png")
    shutil.copy(crafted / "lost-frame.tif", folder / "b.tif")
    with pytest.raises(CodecError, match=r"b\.tif is truncated or corrupt"):
        images_from_folder(folder)
    source = FolderSource(folder)
    assert source.image(0).mode == "RGB"
    with pytest.raises(CodecError, match=r"b\.tif is truncated or corrupt"):
        source.image(1)
    (folder / "b.tif").write_bytes(crafted.joinpath("bomb.png").read_bytes())
    with pytest.raises(CodecError, match=r"b\.tif is too large to decode safely"):
        source.size(1)  # the header check of the crop sizes refuses it too


def test_size_is_read_from_the_header_alone(tmp_path):
    path = tmp_path / "cut.png"
    path.write_bytes(grey_png(300, 200)[:60])  # the file ends inside IDAT
    assert image_file_size(path) == (300, 200)
    with pytest.raises(ImageFileError, match=r"300x200 = 60,000 pixels") as info:
        image_file_size(path, max_pixels=50_000)
    assert info.value.kind == "size" and info.value.size == (300, 200)


def _cap_memory():
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))  # /dev/zero used to fill it


@pytest.mark.parametrize("command", ["compress", "decompress"])
def test_inputs_that_are_not_regular_files_are_one_error_line(command, tmp_path):
    """/dev/zero used to be read until MemoryError, a FIFO to block forever, and
    /proc/self/mem to end with an OSError traceback (exit 1)."""
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    zero_link = tmp_path / "zero.png"
    zero_link.symlink_to("/dev/zero")
    sparse = tmp_path / "huge.png"
    with sparse.open("wb") as file:
        file.truncate(1 << 40)  # 1 TiB, no block on disk
    inputs = {
        Path("/dev/zero"): "is a character device",
        zero_link: "is a character device",
        Path("/proc/self/mem"): "cannot read /proc/self/mem",
        tmp_path: "is a folder",
        sparse: "more than the 536,870,912 accepted",
        fifo: "is a named pipe",
    }
    out = tmp_path / "out"
    out.mkdir()
    target = out / ("x.jpg" if command == "compress" else "x.png")
    extra = ["--codec", "jpeg", "--quality", "50"] if command == "compress" else []
    for source, message in inputs.items():
        result = subprocess.run(
            [sys.executable, "-m", "pku_aigi", command, str(source), "-o", str(target), *extra],
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=_cap_memory,
        )
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, (source, result.stderr[-1000:])
        assert lines[0].startswith(f"pku-aigi {command}: error: ") and message in lines[0]
    assert list(out.iterdir()) == []
