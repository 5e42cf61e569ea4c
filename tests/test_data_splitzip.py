"""The in-place reader of Info-ZIP split archives (pku_aigi.data.splitzip)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zipfile

import pytest

from pku_aigi.data.splitzip import ZipArchive, _rewrite_central_directory, split_parts
from pku_aigi.errors import DatasetError


def _make_split(tmp_path, sources, *options):
    work = tmp_path / "work" / "imgs"
    work.mkdir(parents=True)
    for i, src in enumerate(sources):
        os.link(src, work / f"{i + 1:04d}_1.png")
    subprocess.run(
        ["zip", "-q", "-X", "-r", "-s", "64k", *options, str(tmp_path / "A.zip"), "imgs"],
        cwd=work.parent,
        check=True,
    )
    return tmp_path / "A.zip"


@pytest.mark.parametrize("options", [("-0",), ("-9", "-fz")])
def test_tiny_disks_members_cross_disk_boundaries(pku_examples, tmp_path, options):
    sources = sorted((pku_examples / "sd21b").glob("*.png"))[:3]
    last = _make_split(tmp_path, sources, *options)
    parts = split_parts(last)
    assert len(parts) > 20 and parts[0].endswith("A.z01") and parts[-1] == str(last)
    with ZipArchive(parts) as archive:
        members = sorted(archive.members(), key=lambda m: m.filename)
        assert [m.filename for m in members] == [f"imgs/{i:04d}_1.png" for i in (1, 2, 3)]
        method = zipfile.ZIP_STORED if options == ("-0",) else zipfile.ZIP_DEFLATED
        assert {m.compress_type for m in members} == {method}
        for member, src in zip(members, sources):
            assert archive.read(member) == src.read_bytes()
        first = min(members, key=lambda m: m.header_offset)
        last_member = max(members, key=lambda m: m.header_offset)
        assert archive.part_of(first) == "A.z01" and archive.part_of(last_member) != "A.z01"


def test_wrong_number_of_parts_and_not_a_zip(pku_examples, tmp_path):
    sources = sorted((pku_examples / "sd21b").glob("*.png"))[:1]
    last = _make_split(tmp_path, sources, "-0")
    parts = split_parts(last)
    with pytest.raises(DatasetError, match="disks but"):
        ZipArchive(parts[1:])
    shutil.copy(parts[0], tmp_path / "bad.zip")
    with pytest.raises(DatasetError, match=r"bad\.zip is not a zip archive"):
        ZipArchive.from_last_disk(tmp_path / "bad.zip")


def _entries(cd: bytes):
    """(disk, offset field, extra) of each central directory entry."""
    pos, out = 0, []
    while pos < len(cd):
        fields = struct.unpack_from("<4s4B4HL2L5H2L", cd, pos)
        name_len, extra_len, comment_len = fields[12], fields[13], fields[14]
        extra = cd[pos + 46 + name_len : pos + 46 + name_len + extra_len]
        out.append((fields[15], fields[18], extra))
        pos += 46 + name_len + extra_len + comment_len
    return out


def test_offsets_beyond_4_gib_are_written_as_zip64(pku_examples, tmp_path):
    last = _make_split(tmp_path, sorted((pku_examples / "sd21b").glob("*.png"))[:2], "-0")
    data = last.read_bytes()
    eocd = data.rfind(b"PK\x05\x06")
    _, _, _, _, entries, cd_size, _, _ = struct.unpack_from("<4s4H2LH", data, eocd)
    cd = data[eocd - cd_size : eocd]  # small archive: the central directory is on the last disk
    starts = [i * (3 << 30) for i in range(len(split_parts(last)))]  # 3 GiB per disk
    new, count = _rewrite_central_directory(cd, starts, "A.zip")
    assert count == entries == 3  # imgs/ and two images
    big = 0
    for (disk, offset, _), (new_disk, new_offset, extra) in zip(_entries(cd), _entries(new)):
        absolute = starts[disk] + offset
        assert new_disk == 0
        if absolute < 0xFFFF_FFFF:
            assert new_offset == absolute and extra == b""
        else:
            big += 1
            assert new_offset == 0xFFFF_FFFF
            assert struct.unpack("<2HQ", extra) == (1, 8, absolute)
    assert big >= 1  # images that start on a later disk
