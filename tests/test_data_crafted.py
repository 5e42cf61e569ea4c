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


def zip_members(path, members, compress_type=zipfile.ZIP_DEFLATED):
    """An archive written by Python's zipfile: ``members`` is ``[(name, bytes), ...]``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compress_type) as archive:
        for name, data in members:
            archive.writestr(zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0)), data, compress_type)
    return path


def stage_pngs(stage):
    return [(f"SD21/{p.name}", p.read_bytes()) for p in sorted((stage / "SD21").iterdir())]


def load_validation(vaild):
    split = iter_split(get_subset("sd21"), "validation", ((str(vaild),),), None, None, None)
    return [example for _, example in split]


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA], ids=["bzip2", "lzma"])
def test_bzip2_and_lzma_members_are_refused_before_inflating(stage, tmp_path, method):
    """zipfile inflates bzip2 and LZMA without bound: a 1.7 KB vaild.zip took 3.2 GB while
    the first 33 bytes of its PNG were read. The Hub's archives are stored or deflated."""
    bomb = ihdr(64, 64) + bytes(64 << 20)
    last = zip_members(tmp_path / "SD21.zip", [("SD21/000001_1.png", bomb)], method)
    peak, error = peak_mib(lambda: load(last))
    assert peak < 32, f"{peak:.0f} MiB held for a refused member"
    assert f"SD21/000001_1.png in SD21.zip is compressed with method {method}" in error
    last = zip_members(tmp_path / "real" / "SD21.zip", stage_pngs(stage), method)
    with pytest.raises(DatasetError, match=r"SD21/000001_1\.png in SD21\.zip is compressed"):
        load(last)


def test_the_prompt_member_is_read_within_a_limit(stage, tmp_path):
    """510 KB of vaild.zip held a prompt file that grew the loader by 672 MB."""
    images = [(f"vaild/{name}", data) for name, data in stage_pngs(stage)]
    prompts = ("vaild/SD21.txt", b"a prompt\n" * (8 << 20))  # 72 MiB
    vaild = zip_members(tmp_path / "vaild.zip", [prompts, *images])
    peak, error = peak_mib(lambda: load_validation(vaild))
    assert peak < 32, f"{peak:.0f} MiB held for a refused prompt file"
    assert "vaild/SD21.txt in vaild.zip declares 75,497,472 bytes, more than the" in error


def _aliased(stage, tmp_path):
    """Info-ZIP archive whose first member's local extra field grows over the second
    (smaller) member, so that its data is the second's (central sizes and CRC to match)."""
    from PIL import Image

    (tmp_path / "SD21").mkdir()
    with Image.open(stage / "SD21" / "000001_1.png") as image:  # real crops of a few KB
        image.crop((0, 0, 96, 96)).save(tmp_path / "SD21" / "000001_1.png")
        image.crop((0, 0, 48, 48)).save(tmp_path / "SD21" / "000002_1.png")
    last = tmp_path / "SD21.zip"
    files = ["SD21/000001_1.png", "SD21/000002_1.png"]
    subprocess.run(["zip", "-q", "-X", "-0", str(last), *files], cwd=tmp_path, check=True)
    data = last.read_bytes()
    with zipfile.ZipFile(last) as archive:
        first, second = archive.infolist()
    name_len, extra_len = struct.unpack_from("<2H", data, second.header_offset + 26)
    second_data = second.header_offset + 30 + name_len + extra_len
    local = first.header_offset
    patch(last, local + 28, "<H", second_data - (local + 30 + len(first.filename)))
    central = data.find(b"PK\x01\x02")
    for offset, value in ((16, second.CRC), (20, second.compress_size), (24, second.file_size)):
        patch(last, central + offset, "<L", value)
    return last


@pytest.mark.parametrize(
    "case, message",
    [
        ("duplicate-prompt", r"vaild\.zip: member 'vaild/SD21\.txt' is in it twice"),
        ("backslash", r"vaild\.zip: member 'vaild\\\\SD21\\\\000003_1\.png' uses backslashes"),
        ("overlap", r"SD21\.zip: the data of 'SD21/000001_1\.png' .* inside 'SD21/000002_1\.png'"),
    ],
)
def test_ambiguous_members_are_refused_not_misread(stage, tmp_path, case, message):
    """A second prompt file supplied every prompt, a backslash name hid an image, and a
    member whose local extra field reached over the next one read that one's image."""
    images = [(f"vaild/{name}", data) for name, data in stage_pngs(stage)]
    if case == "duplicate-prompt":
        members = [("vaild/SD21.txt", b"one\ntwo\nthree\n"), *images]
        members.append(("vaild/SD21.txt", b"x\ny\nz\n"))
        with pytest.warns(UserWarning, match="Duplicate name"):
            vaild = zip_members(tmp_path / "vaild.zip", members)
        work = lambda: load_validation(vaild)  # noqa: E731
    elif case == "backslash":
        images[2] = (images[2][0].replace("/", "\\"), images[2][1])
        vaild = zip_members(tmp_path / "vaild.zip", images)
        work = lambda: load_validation(vaild)  # noqa: E731
    else:
        last = _aliased(stage, tmp_path)
        work = lambda: load(last)  # noqa: E731
    with pytest.raises(DatasetError, match=message):
        work()


def _truncated_idat(png: bytes) -> bytes:
    """The PNG with its image data cut in half, in one IDAT chunk with a valid CRC."""
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    others, idat, pos = [], b"", 8
    while pos < len(png):
        (length,) = struct.unpack_from(">I", png, pos)
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if kind == b"IDAT":
            idat += body
        elif kind != b"IEND":
            others.append(chunk(kind, body))
        pos += 12 + length
    cut = chunk(b"IDAT", idat[: len(idat) // 2])
    return PNG_SIGNATURE + b"".join(others) + cut + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "case, message",
    [
        ("empty-name", r"SD21\.zip: a member has an empty name"),
        ("5000-digits", r"SD21/1{20}.*prompt number has 5000 digits"),
        ("idat", r"SD21/000001_1\.png in SD21\.zip is a corrupt PNG file \(image data cut"),
    ],
)
def test_bad_names_and_corrupt_image_data_are_refused_while_preparing(
    stage, tmp_path, case, message
):
    """An empty name was an IndexError, a 5000-digit number a ValueError, and a PNG with
    corrupt image data loaded, then failed in Pillow at ds[i]."""
    members = stage_pngs(stage)
    if case == "empty-name":
        members.append(("", b"x"))
    elif case == "5000-digits":
        members.append(("SD21/" + "1" * 5000 + "_1.png", members[0][1]))
    else:
        members[0] = (members[0][0], _truncated_idat(members[0][1]))
    last = zip_members(tmp_path / "SD21.zip", members)
    with pytest.raises(DatasetError, match=message):
        load(last)
