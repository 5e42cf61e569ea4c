"""Crafted archives: each ends in a DatasetError naming the file, in bounded
time and memory, never in a MemoryError, an IndexError or silently missing images."""

from __future__ import annotations

import shutil
import struct
import subprocess
import tracemalloc
import zipfile

import pytest

from pku_aigi.data.builder import iter_split
from pku_aigi.data.splitzip import ZipArchive, split_parts
from pku_aigi.errors import DatasetError
from pku_aigi.subsets import get_subset

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def stage(pku_examples, tmp_path_factory):
    """Three real PNGs named like the Hub's, in stage/SD21/."""
    root = tmp_path_factory.mktemp("stage")
    (root / "SD21").mkdir()
    for i, src in enumerate(sorted((pku_examples / "sd21").glob("*.png"))[:3]):
        shutil.copy(src, root / "SD21" / f"{i + 1:06d}_1.png")
    return root


def info_zip(stage, out, *options):
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["zip", "-q", "-X", "-r", *options, str(out), "SD21"], cwd=stage, check=True)
    return out


def load(last_disk):
    """Prepare the archive's examples as the datasets builder does (no Arrow)."""
    parts = tuple(split_parts(last_disk))
    split = iter_split(get_subset("sd21"), "train", (parts,), None, None, None)
    return [example for _, example in split]


def patch(path, offset, fmt, value):
    data = bytearray(path.read_bytes())
    struct.pack_into(fmt, data, offset, value)
    path.write_bytes(bytes(data))


def test_intact_archives_load(stage, tmp_path):
    assert len(load(info_zip(stage, tmp_path / "a" / "SD21.zip", "-fz"))) == 3
    assert len(load(info_zip(stage, tmp_path / "b" / "SD21.zip", "-0", "-s", "1m"))) == 3


def test_zip64_locator_with_four_billion_disks(stage, tmp_path):
    last = info_zip(stage, tmp_path / "SD21.zip", "-fz")
    locator = last.read_bytes().rfind(b"PK\x06\x07")
    patch(last, locator + 16, "<L", 0xFFFF_FFFF)  # "total disks"
    with pytest.raises(DatasetError, match=r"SD21\.z01 of SD21\.zip is missing.*4294967295"):
        split_parts(last)


def test_comment_swallowing_the_next_entry_is_not_a_dropped_image(stage, tmp_path):
    for folder, options in (("single", ()), ("split", ("-0", "-s", "1m"))):
        last = info_zip(stage, tmp_path / folder / "SD21.zip", *options)
        data = last.read_bytes()
        first = data.find(b"PK\x01\x02")
        second = data.find(b"PK\x01\x02", first + 4)
        third = data.find(b"PK\x01\x02", second + 4)
        patch(last, first + 32, "<H", third - second)  # the comment now covers entry 2
        with pytest.raises(DatasetError, match=r"SD21\.zip: .*holds 3 entries.*says 4"):
            load(last)


def test_impossible_end_record_values(stage, tmp_path):
    last = info_zip(stage, tmp_path / "a" / "SD21.zip", "-fz")
    eocd64 = last.read_bytes().rfind(b"PK\x06\x06")
    patch(last, eocd64 + 40, "<Q", 1 << 40)  # cd_size: a terabyte
    with pytest.raises(DatasetError, match=r"SD21\.zip: .*central directory of 1099511627776"):
        load(last)
    last = info_zip(stage, tmp_path / "b" / "SD21.zip", "-0", "-s", "1m")
    eocd = last.read_bytes().rfind(b"PK\x05\x06")
    patch(last, eocd + 6, "<H", 40)  # central directory on disk 41 of 3
    with pytest.raises(DatasetError, match=r"SD21\.zip: .*central directory on disk 41"):
        load(last)


def test_version_9_7_and_names_not_utf8(stage, tmp_path):
    last = info_zip(stage, tmp_path / "a" / "SD21.zip")
    first = last.read_bytes().find(b"PK\x01\x02")
    patch(last, first + 6, "<H", 97)  # version needed to extract: 9.7
    with pytest.raises(DatasetError, match=r"SD21\.zip needs .*version 9\.7"):
        load(last)
    last = info_zip(stage, tmp_path / "b" / "SD21.zip")
    first = last.read_bytes().find(b"PK\x01\x02")
    patch(last, first + 8, "<H", 0x0800)  # the name is UTF-8 ...
    patch(last, first + 47, "B", 0xFF)  # ... but is not
    with pytest.raises(DatasetError, match=r"SD21\.zip is not a readable zip.*utf-8"):
        load(last)


def test_renamed_in_the_directory_only_is_not_a_dropped_image(stage, tmp_path):
    last = info_zip(stage, tmp_path / "SD21.zip")
    data = last.read_bytes()
    name = data.find(b"000001_1.png", data.find(b"PK\x01\x02"))
    patch(last, name + 9, "3s", b"txt")  # the directory says .txt, the local header .png
    with pytest.raises(DatasetError, match=r"000001_1\.txt"):
        load(last)


def one_member_zip(path, name, head, zeros):
    """A Zip64 archive whose one deflated member is ``head`` + ``zeros`` zero bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open(name, "w", force_zip64=True) as member:
            member.write(head)
            block = bytes(1 << 22)
            for _ in range(zeros // len(block)):
                member.write(block)
    return path


def ihdr(width, height):
    body = b"IHDR" + struct.pack(">2I5B", width, height, 8, 0, 0, 0, 0)
    import zlib

    return PNG_SIGNATURE + struct.pack(">I", 13) + body + struct.pack(">I", zlib.crc32(body))


def peak_mib(work) -> float:
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError) as caught:
            work()
        return tracemalloc.get_traced_memory()[1] / 2**20, str(caught.value)
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    "head, message",
    [
        (b"", r"000001_1\.png in SD21\.zip is not a PNG"),
        (ihdr(64, 64), r"is 268,435,489 bytes, more than any PNG of 64x64"),
        (ihdr(30000, 30000), r"declares 30000x30000 pixels"),
    ],
    ids=["zeros", "png-header", "30000x30000"],
)
def test_bombs_are_refused_before_inflating(tmp_path, head, message):
    last = one_member_zip(tmp_path / "SD21.zip", "SD21/000001_1.png", head, 256 << 20)
    peak, error = peak_mib(lambda: load(last))
    assert peak < 32, f"{peak:.0f} MiB held for a refused member"
    assert __import__("re").search(message, error), error


def test_understated_size_stops_inflating_at_the_declared_size(tmp_path):
    last = one_member_zip(tmp_path / "SD21.zip", "SD21/000001_1.png", ihdr(64, 64), 256 << 20)
    with zipfile.ZipFile(last) as archive:
        info = archive.infolist()[0]
    assert info.file_size == (256 << 20) + 33
    patch(last, last.read_bytes().rfind(b"PK\x01\x02") + 24, "<L", 40_000)  # declare 40 KB
    peak, error = peak_mib(lambda: load(last))
    assert peak < 32, f"{peak:.0f} MiB held for a 40 KB member"
    assert "Bad CRC-32" in error and "SD21.zip" in error


def test_archive_read_checks_the_declared_size_first(stage, tmp_path):
    last = info_zip(stage, tmp_path / "SD21.zip")
    with ZipArchive([last]) as archive:
        member = archive.members()[0]
        with pytest.raises(DatasetError, match=r"declares .* bytes, more than the 1,000"):
            archive.read(member, limit=1000)
