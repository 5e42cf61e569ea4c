# ruff: noqa
# PKU-AIGI-500K loading script for `datasets` < 4 (trust_remote_code=True).
#
# GENERATED from the pku-aigi package (errors.py, subsets.py, data/splitzip.py, data/prompts.py, data/builder.py) by
# `pku-aigi data script`: do not edit, edit the package and regenerate.
# With `datasets` >= 4 use the Parquet configs of this repo, or `pku_aigi.load_dataset`.
"""PKU-AIGI-500K: a neural compression benchmark of AI-generated images (JETCAS 2024)."""

from __future__ import annotations


# ---- pku_aigi/errors.py -------------------------------------------------------------
"""Errors the user can act on.

Every problem caused by input (a bad file, an unknown name, a missing archive part) is
raised as a :class:`PkuAigiError` whose message says what is wrong and what to do. The CLI
prints that one message and exits with status 2; anything else is a bug. Network
failures anywhere become one :class:`NetworkError` line (see :mod:`pku_aigi.network`).

Concatenated into ``dataset_script/PKU-AIGI-500K.py`` (the loading script for
``datasets`` < 4, made by :mod:`pku_aigi.data.script_generator`): import only the
standard library, ``datasets`` and the other copied modules.
"""


class PkuAigiError(Exception):
    """Base class of all user-facing errors of this package.

    ``cause``, when set, is the message without the failing item's name, shared by every
    item that fails for the same reason: a report of many items prints it once
    (:func:`by_cause`).
    """

    cause: str | None = None


def by_cause(failures: dict) -> list[tuple[list, str]]:
    """``{name: error or message}`` as ``[(names, message), ...]``, one entry per cause
    (an error's ``cause``, else its text) in the order first seen; a cause met once
    keeps its full message."""
    groups: dict[str, tuple[list, list]] = {}
    for name, failure in failures.items():
        key = getattr(failure, "cause", None) or str(failure)
        names, messages = groups.setdefault(key, ([], []))
        names.append(name)
        messages.append(str(failure))
    return [
        (names, messages[0] if len(names) == 1 else key)
        for key, (names, messages) in groups.items()
    ]


class DatasetError(PkuAigiError):
    """The dataset files, config or split cannot be used as asked."""


class CodecError(PkuAigiError):
    """A codec cannot encode or decode the given input."""


class CodecUnavailableError(CodecError):
    """A codec is known but cannot run on this machine (missing binary or library)."""


class CorruptStreamError(CodecError):
    """Compressed data is truncated, corrupted, or was made by another codec or model."""


class ImageTooLargeError(CorruptStreamError):
    """Compressed data declares an image above the decoder's pixel limit (``max_pixels``);
    raised from the header, before decoding, wherever the format allows."""


class ModelError(PkuAigiError):
    """A learned model cannot be created, loaded or saved as asked."""


class OutputError(PkuAigiError):
    """An output file or folder cannot be written where the user asked."""


class NetworkError(PkuAigiError):
    """A host (the Hub, a checkpoint server) cannot be reached, or a transfer failed."""


# ---- pku_aigi/subsets.py ------------------------------------------------------------
"""The five subsets of PKU-AIGI-500K in one table.

Everything the package knows about the Hub repo ``Forerunner/PKU-AIGI-500K`` lives here:
config names, the archive and prompt files as published, inner folders, split sizes and
resolutions (see the authors' README, summarised in the dataset card). A new subset is a
new row; nothing else in the package hard-codes file names.

Concatenated into ``dataset_script/PKU-AIGI-500K.py`` (the loading script for
``datasets`` < 4, made by :mod:`pku_aigi.data.script_generator`): import only the
standard library, ``datasets`` and the other copied modules.
"""


from dataclasses import dataclass


HUB_REPO_ID = "Forerunner/PKU-AIGI-500K"
VALIDATION_ARCHIVE = "vaild.zip"  # sic: the Hub file name is misspelt
VALIDATION_FOLDER = "vaild"
SPLITS = ("train", "validation", "test")

CITATION = """@article{duan2024pkuaigi500k,
  title   = {PKU-AIGI-500K: A Neural Compression Benchmark and Model for AI-Generated Images},
  author  = {Duan, Xunxu and Ma, Siwei and Liu, Hongbin and Jia, Chuanmin},
  journal = {IEEE Journal on Emerging and Selected Topics in Circuits and Systems},
  year    = {2024},
  doi     = {10.1109/JETCAS.2024.3385629}
}"""


@dataclass(frozen=True)
class Archive:
    """One zip archive of the Hub repo.

    ``parts`` lists every file of the archive in disk order. A multi-disk split archive
    (Info-ZIP ``zip -s``) has ``name.z01`` .. ``name.zNN`` followed by ``name.zip``, the
    last disk, which holds the central directory.
    """

    parts: tuple[str, ...]

    @property
    def last_disk(self) -> str:
        return self.parts[-1]

    @property
    def is_split(self) -> bool:
        return len(self.parts) > 1


def split_archive(stem: str, disks: int) -> Archive:
    """Archive ``stem.z01`` .. ``stem.z{disks}`` + ``stem.zip``."""
    return Archive(tuple(f"{stem}.z{i:02d}" for i in range(1, disks + 1)) + (f"{stem}.zip",))


@dataclass(frozen=True)
class Subset:
    """One subset (one ``datasets`` config) of PKU-AIGI-500K."""

    config: str  # datasets config name
    title: str  # name used in the paper
    generator: str  # text-to-image model that made the images
    train_archives: tuple[Archive, ...]  # ordinary zips or split zips, in order
    prompt_file: str | None  # Hub prompt file of the train split; None if unpublished
    validation_folder: str  # folder inside vaild.zip: vaild/<folder>/...
    train_size: tuple[int, int]  # (width, height) of train and validation images
    test_size: tuple[int, int]  # (width, height) of the (unpublished) test images
    num_train: int
    num_validation: int
    num_test: int

    @property
    def validation_prompt_file(self) -> str:
        """Prompt file of the validation split, inside vaild.zip (e.g. ``vaild/MJ.txt``)."""
        return f"{VALIDATION_FOLDER}/{self.validation_folder}.txt"

    def hub_files(self, split: str) -> tuple[str, ...]:
        """Hub file names a split of this subset needs (the test split has none)."""
        check_split(split)
        if split == "validation":
            return (VALIDATION_ARCHIVE,)
        if split == "test":
            return ()
        files = [part for archive in self.train_archives for part in archive.parts]
        if self.prompt_file:
            files.append(self.prompt_file)
        return tuple(files)


SUBSETS: dict[str, Subset] = {
    s.config: s
    for s in (
        Subset(
            config="sd21b",
            title="SD2.1B",
            generator="Stable Diffusion 2.1 base",
            train_archives=(
                Archive(("SD-2_1-B-part1.zip",)),
                Archive(("SD-2_1-B-part2.zip",)),
            ),
            prompt_file="SD-2_1-B.txt",
            validation_folder="SD21B",
            train_size=(512, 512),
            test_size=(768, 768),
            num_train=202_265,
            num_validation=40,
            num_test=40,
        ),
        Subset(
            config="sd21",
            title="SD2.1",
            generator="Stable Diffusion 2.1",
            train_archives=(split_archive("SD21", 18),),
            prompt_file="SD21.txt",
            validation_folder="SD21",
            train_size=(768, 768),
            test_size=(1024, 1024),
            num_train=203_242,
            num_validation=40,
            num_test=40,
        ),
        Subset(
            config="sdxl",
            title="SDXL1.0B",
            generator="Stable Diffusion XL 1.0 base",
            train_archives=(split_archive("SD-XL", 15),),
            prompt_file=None,  # no prompt file is published for SDXL
            validation_folder="SDXL",
            train_size=(1024, 1024),
            test_size=(1280, 1280),
            num_train=105_554,
            num_validation=20,
            num_test=80,  # 40 with and 40 without watermark
        ),
        Subset(
            config="mj52",
            title="MJ5.2",
            generator="Midjourney 5.2",
            train_archives=(Archive(("MJ.zip",)),),
            prompt_file="MJ.txt",
            validation_folder="MJ",
            train_size=(1024, 1024),
            test_size=(2048, 1024),
            num_train=13_240,
            num_validation=10,
            num_test=25,
        ),
        Subset(
            config="mod",
            title="MOD",
            generator="MOD",
            train_archives=(Archive(("MOD.zip",)),),
            prompt_file="MOD.txt",
            validation_folder="MOD",
            train_size=(1408, 640),
            test_size=(2112, 960),
            num_train=3_670,
            num_validation=5,
            num_test=25,
        ),
    )
}

CONFIGS = tuple(SUBSETS)


def get_subset(config: str) -> Subset:
    """The subset named ``config``, or a clear error listing the valid names."""
    try:
        return SUBSETS[config]
    except KeyError:
        raise DatasetError(
            f"unknown config {config!r}: PKU-AIGI-500K has the configs {', '.join(CONFIGS)}"
        ) from None


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    return split


# ---- pku_aigi/data/splitzip.py ------------------------------------------------------
"""Zip archives read in place: single zips and Info-ZIP multi-disk split archives.

An Info-ZIP split archive (``zip -s``) is a set of disks ``name.z01`` .. ``name.zNN`` and
``name.zip`` (the last disk, holding the central directory). Entries in the central
directory point at (disk, offset within that disk), which :mod:`zipfile` does not
support. :class:`SpannedFile` presents the disks as one seekable file without joining
them on disk; its tail is a rewritten central directory whose offsets are absolute in
that spanned file, so plain :class:`zipfile.ZipFile` reads the members (stored,
deflated, Zip64) straight out of the parts. Only the central directory (tens of bytes
per member) is held in memory.

Format: PKWARE APPNOTE.TXT 6.3.x, sections 4.3.12 to 4.3.16 (central directory, Zip64
end records) and 8 (splitting and spanning).

Concatenated into ``dataset_script/PKU-AIGI-500K.py`` (the loading script for
``datasets`` < 4, made by :mod:`pku_aigi.data.script_generator`): import only the
standard library, ``datasets`` and the other copied modules.
"""


import bisect
import io
import lzma
import os
import struct
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path


_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
_EOCD64_LOCATOR = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")  # central directory file header
_EOCD_SIG = b"PK\x05\x06"
_EOCD64_LOCATOR_SIG = b"PK\x06\x07"
_EOCD64_SIG = b"PK\x06\x06"
_CENTRAL_SIG = b"PK\x01\x02"
_ZIP64_EXTRA = 0x0001
_U16 = 0xFFFF
_U32 = 0xFFFF_FFFF
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # local file header
_LOCAL_SIG = b"PK\x03\x04"
# Compression methods of the Hub's archives (Info-ZIP's): others are refused, not read
# (zipfile inflates bzip2 and LZMA without bound, whatever size is asked for).
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
_READ_CHUNK = 1 << 20
_MAX_TAIL = _EOCD.size + _U16  # EOCD plus the longest possible comment


def open_binary(path: str | os.PathLike):
    """Open a local path, or a URL through fsspec (e.g. ``hf://`` for streaming)."""
    if "://" in str(path):
        import fsspec

        return fsspec.open(str(path), "rb").open()
    return open(path, "rb")


def _file_size(path: str | os.PathLike) -> int:
    if "://" in str(path):
        import fsspec

        fs, inner = fsspec.core.url_to_fs(str(path))
        return int(fs.size(inner))
    return os.path.getsize(path)


class SpannedFile(io.RawIOBase):
    """A read-only, seekable file made of consecutive segments.

    Each segment is either ``(path, start, length)`` (a byte range of a file, opened on
    first use) or a ``bytes`` object held in memory.
    """

    def __init__(self, segments: Sequence[tuple[str | os.PathLike, int, int] | bytes]):
        super().__init__()
        self._segments = list(segments)
        self._starts: list[int] = []
        total = 0
        for segment in self._segments:
            self._starts.append(total)
            total += len(segment) if isinstance(segment, bytes) else segment[2]
        self._size = total
        self._pos = 0
        self._handles: dict[int, object] = {}

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise OSError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._pos < self._size:
            index = bisect.bisect_right(self._starts, self._pos) - 1
            segment = self._segments[index]
            inner = self._pos - self._starts[index]
            if isinstance(segment, bytes):
                chunk = segment[inner : inner + len(view) - done]
                view[done : done + len(chunk)] = chunk
                n = len(chunk)
            else:
                path, start, length = segment
                handle = self._handles.get(index)
                if handle is None:
                    handle = self._handles[index] = open_binary(path)
                handle.seek(start + inner)
                want = min(len(view) - done, length - inner)
                n = handle.readinto(view[done : done + want])
                if not n:  # the part is shorter than when it was measured
                    raise OSError(f"unexpected end of {os.fspath(path)}")
            done += n
            self._pos += n
        return done

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()
        super().close()


def _find_eocd(tail: bytes) -> int:
    """Offset of the end of central directory record in ``tail``, or -1."""
    index = tail.rfind(_EOCD_SIG)
    while index >= 0:
        if index + _EOCD.size <= len(tail):
            comment_len = _EOCD.unpack_from(tail, index)[7]
            if index + _EOCD.size + comment_len == len(tail):
                return index
        index = tail.rfind(_EOCD_SIG, 0, index)
    return -1


def _end_record(last_disk: str | os.PathLike) -> tuple[int, int, int, int, int]:
    """(disks, cd_disk, cd_offset, cd_size, entries) from the last disk's end records.

    Values are checked against the last disk's size where the format allows; the caller
    checks what depends on the other disks.
    """
    name = Path(str(last_disk)).name
    size = _file_size(last_disk)
    with open_binary(last_disk) as handle:
        start = max(0, size - _MAX_TAIL - _EOCD64_LOCATOR.size)
        handle.seek(start)
        tail = handle.read()
        index = _find_eocd(tail)
        if index < 0:
            raise DatasetError(
                f"{name} is not a zip archive or is truncated (no end of central directory "
                "record): download it again"
            )
        _, this_disk, cd_disk, _, entries, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, index)
        disks = this_disk + 1
        locator_at = index - _EOCD64_LOCATOR.size
        if locator_at >= 0 and tail[locator_at : locator_at + 4] == _EOCD64_LOCATOR_SIG:
            _, _, eocd64_offset, total_disks = _EOCD64_LOCATOR.unpack_from(tail, locator_at)
            disks = total_disks
            # The Zip64 end record is normally on the last disk, right before its locator.
            eocd64_at = locator_at - _EOCD64.size
            record = tail[eocd64_at:locator_at] if eocd64_at >= 0 else b""
            if not record.startswith(_EOCD64_SIG) and eocd64_offset < size:
                handle.seek(eocd64_offset)
                record = handle.read(_EOCD64.size)
            if not record.startswith(_EOCD64_SIG) or len(record) != _EOCD64.size:
                raise DatasetError(f"{name}: the Zip64 end record is missing; the file is corrupt")
            fields = _EOCD64.unpack(record)
            cd_disk, entries, cd_size, cd_offset = fields[5], fields[7], fields[8], fields[9]
    if disks < 1 or cd_disk >= disks:
        raise DatasetError(
            f"{name}: the end record says the archive has {disks} disks with the central "
            f"directory on disk {cd_disk + 1}; the file is corrupt, download it again"
        )
    if cd_size > size * max(1, disks) or cd_size < entries * _CENTRAL.size:
        raise DatasetError(
            f"{name}: the end record gives a central directory of {cd_size} bytes for "
            f"{entries} entries, impossible in this file; it is corrupt, download it again"
        )
    return disks, cd_disk, cd_offset, cd_size, entries


def split_parts(last_disk: str | os.PathLike) -> list[str]:
    """All disks of the archive whose last disk is ``last_disk``, in disk order.

    A single zip is its own only disk; a split archive ``name.zip`` of N disks has
    ``name.z01`` .. ``name.z{N-1}`` next to it (Info-ZIP naming). The disk count of the
    end record is trusted only as far as those files exist: a missing disk is named.
    """
    disks = _end_record(last_disk)[0]
    text = str(last_disk)
    stem = text[: -len(".zip")] if text.lower().endswith(".zip") else text
    parts = []
    for i in range(1, disks):
        part = f"{stem}.z{i:02d}"
        if "://" not in part and not os.path.isfile(part):
            raise DatasetError(
                f"archive part {Path(part).name} of {Path(text).name} is missing (its end "
                f"record announces {disks} disks): download it or put it next to the other "
                "parts"
            )
        parts.append(part)
    return parts + [text]


def _rewrite_central_directory(
    cd: bytes, disk_starts: list[int], archive: str
) -> tuple[bytes, int]:
    """The central directory with every local header offset made absolute (disk 0)."""
    out = bytearray()
    entries = 0
    pos = 0
    while pos < len(cd):
        if cd[pos : pos + 4] != _CENTRAL_SIG:
            raise DatasetError(f"{archive}: bad central directory entry at byte {pos}; corrupt")
        if pos + _CENTRAL.size > len(cd):
            raise DatasetError(f"{archive}: central directory entry at byte {pos} is cut short")
        fields = list(_CENTRAL.unpack_from(cd, pos))
        name_len, extra_len, comment_len = fields[12], fields[13], fields[14]
        body = pos + _CENTRAL.size
        if body + name_len + extra_len + comment_len > len(cd):
            raise DatasetError(f"{archive}: central directory entry at byte {pos} is cut short")
        name = cd[body : body + name_len]
        extra = cd[body + name_len : body + name_len + extra_len]
        comment = cd[body + name_len + extra_len : body + name_len + extra_len + comment_len]
        pos = body + name_len + extra_len + comment_len

        file_size, compress_size = fields[11], fields[10]
        disk, offset = fields[15], fields[18]
        kept = bytearray()
        zip64 = b""
        i = 0
        while i + 4 <= len(extra):
            kind, length = struct.unpack_from("<2H", extra, i)
            if kind == _ZIP64_EXTRA:
                zip64 = extra[i + 4 : i + 4 + length]
            else:
                kept += extra[i : i + 4 + length]
            i += 4 + length
        j = 0
        values = []
        try:
            if file_size == _U32:
                file_size = struct.unpack_from("<Q", zip64, j)[0]
                values.append(file_size)
                j += 8
            if compress_size == _U32:
                compress_size = struct.unpack_from("<Q", zip64, j)[0]
                values.append(compress_size)
                j += 8
            if offset == _U32:
                offset = struct.unpack_from("<Q", zip64, j)[0]
                j += 8
            if disk == _U16:
                disk = struct.unpack_from("<L", zip64, j)[0]
        except struct.error:
            raise DatasetError(
                f"{archive}: central directory entry at byte {pos} lacks its Zip64 sizes"
            ) from None
        if disk >= len(disk_starts):
            raise DatasetError(
                f"{archive}: an entry points at disk {disk + 1} of {len(disk_starts)}"
            )
        absolute = disk_starts[disk] + offset
        if absolute >= _U32:
            values.append(absolute)
            fields[18] = _U32
        else:
            fields[18] = absolute
        fields[15] = 0
        if values:
            kept += struct.pack(f"<2H{len(values)}Q", _ZIP64_EXTRA, 8 * len(values), *values)
        fields[13] = len(kept)
        out += _CENTRAL.pack(*fields) + name + bytes(kept) + comment
        entries += 1
    return bytes(out), entries


def _spanned_file(parts: Sequence[str | os.PathLike]) -> SpannedFile:
    """The disks of a split archive as one file that :class:`zipfile.ZipFile` can read."""
    archive = Path(str(parts[-1])).name
    sizes = [_file_size(part) for part in parts]
    disks, cd_disk, cd_offset, cd_size, expected_entries = _end_record(parts[-1])
    if disks != len(parts):
        raise DatasetError(f"{archive} has {disks} disks but {len(parts)} parts were given")
    if len(set(sizes[:-1])) > 1:  # Info-ZIP cuts every disk but the last at the split size
        usual = max(set(sizes[:-1]), key=sizes[:-1].count)
        odd = [Path(str(p)).name for p, s in zip(parts[:-1], sizes[:-1]) if s != usual]
        raise DatasetError(
            f"archive part {', '.join(odd)} of {archive} has the wrong size (the other parts "
            f"are {usual} bytes): it is truncated or corrupt, download it again"
        )
    disk_starts = [sum(sizes[:i]) for i in range(len(parts))]
    cd_start = disk_starts[cd_disk] + cd_offset
    if cd_start + cd_size > sum(sizes):
        raise DatasetError(f"{archive}: the central directory is truncated; download it again")
    segments = [(part, 0, size) for part, size in zip(parts, sizes)]
    with SpannedFile(segments) as spanned:
        spanned.seek(cd_start)
        cd = spanned.read(cd_size)
    new_cd, entries = _rewrite_central_directory(cd, disk_starts, archive)
    if entries != expected_entries:
        raise DatasetError(
            f"{archive}: the central directory holds {entries} entries but the end record "
            f"says {expected_entries}; it is corrupt, download it again"
        )
    eocd64_at = cd_start + len(new_cd)
    tail = (
        _EOCD64.pack(
            _EOCD64_SIG, _EOCD64.size - 12, 45, 45, 0, 0, entries, entries, len(new_cd), cd_start
        )
        + _EOCD64_LOCATOR.pack(_EOCD64_LOCATOR_SIG, 0, eocd64_at, 1)
        + _EOCD.pack(_EOCD_SIG, 0, 0, _U16, _U16, _U32, _U32, 0)
    )
    body: list = []
    remaining = cd_start
    for part, size in zip(parts, sizes):
        if remaining <= 0:
            break
        body.append((part, 0, min(size, remaining)))
        remaining -= size
    return SpannedFile(body + [new_cd + tail])


def _read_in_chunks(handle) -> bytes:
    # read() without a size inflates up to 2 GiB in one call whatever the declared size;
    # bounded reads stop at the declared size (zipfile then checks the CRC).
    chunks = []
    while chunk := handle.read(_READ_CHUNK):
        chunks.append(chunk)
    return b"".join(chunks)


class ZipArchive:
    """One archive of the Hub repo, opened in place: a single zip or all disks of a split.

    Args:
        parts: the archive's files in disk order (one for a single zip). Missing parts
            and parts of the wrong size raise :class:`DatasetError` naming them.
    """

    def __init__(self, parts: Sequence[str | os.PathLike]):
        self.parts = [str(part) for part in parts]
        self.name = Path(self.parts[-1]).name
        missing = [Path(p).name for p in self.parts if "://" not in p and not os.path.isfile(p)]
        if missing:
            raise DatasetError(
                f"archive part {', '.join(missing)} of {self.name} is missing: download it "
                "or put it next to the other parts"
            )
        self._disk_starts = [0]
        try:
            if len(self.parts) == 1:
                expected_entries = _end_record(self.parts[0])[4]
                self._file = open_binary(self.parts[0])
            else:
                self._file = _spanned_file(self.parts)
                expected_entries = None  # checked while rewriting the central directory
                sizes = [_file_size(p) for p in self.parts]
                self._disk_starts = [sum(sizes[:i]) for i in range(len(sizes))]
            self.zip = zipfile.ZipFile(self._file)
        except NotImplementedError as error:  # e.g. "zip file version 9.7"
            raise DatasetError(
                f"{self.name} needs a zip feature Python's zipfile lacks ({error}): it is "
                "corrupt or was not written by Info-ZIP; download it again"
            ) from None
        except (zipfile.BadZipFile, OSError, struct.error, ValueError) as error:
            # ValueError: UnicodeDecodeError in a name flagged as UTF-8, among others
            raise DatasetError(
                f"{self.name} is not a readable zip archive ({error}): it is truncated or "
                "corrupt, download it again"
            ) from None
        infos = self.zip.infolist()
        if expected_entries is not None and len(infos) != expected_entries:
            raise DatasetError(
                f"{self.name}: the central directory holds {len(infos)} entries but the end "
                f"record says {expected_entries}; it is corrupt, download it again"
            )
        self._check_names(infos)
        self._next: dict[int, tuple[int, str]] = {}  # header offset -> what follows
        self._check_positions(infos)

    def _check_names(self, infos: list[zipfile.ZipInfo]) -> None:
        """Every member has a name of its own, with "/" separators (never silently
        skipped or shadowed by a namesake)."""
        seen: set[str] = set()
        for info in infos:
            name = info.filename
            if not name:
                problem = "a member has an empty name"
            elif "\\" in name:
                problem = f"member {name!r} uses backslashes, not '/', as folder separators"
            elif name in seen:
                problem = f"member {name!r} is in it twice"
            else:
                seen.add(name)
                continue
            raise DatasetError(
                f"{self.name}: {problem}; the dataset's archives have none such: the archive "
                "is corrupt or not of this dataset, download it again"
            )

    def _check_positions(self, infos: list[zipfile.ZipInfo]) -> None:
        """Every member's data lies before the central directory, overlapping no other
        (the local header's own name and extra field are checked when it is opened)."""
        end, following = self.zip.start_dir, "the central directory"
        for info in sorted(infos, key=lambda i: i.header_offset, reverse=True):
            if info.header_offset + _LOCAL_HEADER.size + info.compress_size > end:
                raise DatasetError(
                    f"{self.name}: the central directory places {info.filename!r} at byte "
                    f"{info.header_offset} with {info.compress_size} bytes, overlapping "
                    f"{following}; the archive is corrupt, download it again"
                )
            self._next[info.header_offset] = (end, following)
            end, following = info.header_offset, repr(info.filename)

    def _check_local_header(self, info: zipfile.ZipInfo) -> None:
        """The member's data, after its local header's name and extra field, ends before
        the next member (or the central directory) begins."""
        self._file.seek(info.header_offset)
        header = self._file.read(_LOCAL_HEADER.size)
        if len(header) < _LOCAL_HEADER.size or not header.startswith(_LOCAL_SIG):
            return  # zipfile names the bad header
        name_len, extra_len = _LOCAL_HEADER.unpack(header)[-2:]
        data_end = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
        data_end += info.compress_size
        end, following = self._next[info.header_offset]
        if data_end > end:
            raise DatasetError(
                f"{self.name}: the data of {info.filename!r} (after a local header with a "
                f"{name_len}-byte name and a {extra_len}-byte extra field) ends at byte "
                f"{data_end}, inside {following} at byte {end}: the members overlap; the "
                "archive is corrupt, download it again"
            )

    @classmethod
    def from_last_disk(cls, last_disk: str | os.PathLike) -> ZipArchive:
        """Open an archive given its ``.zip`` file, finding split disks next to it."""
        if "://" not in str(last_disk) and not os.path.isfile(last_disk):
            raise DatasetError(f"archive {Path(str(last_disk)).name} is missing")
        return cls(split_parts(last_disk))

    def members(self) -> list[zipfile.ZipInfo]:
        """All file entries (no directories), in central directory order."""
        return [info for info in self.zip.infolist() if not info.is_dir()]

    def part_of(self, info: zipfile.ZipInfo) -> str:
        """File name of the disk holding the member's local header."""
        disk = bisect.bisect_right(self._disk_starts, info.header_offset) - 1
        return Path(self.parts[disk]).name

    def read(self, info: zipfile.ZipInfo, limit: int | None = None) -> bytes:
        """The member's bytes, CRC-checked; a corrupt part raises an error naming it.

        Args:
            info: the member.
            limit: largest size accepted; the size the central directory declares is
                checked before anything is inflated, and inflating stops there.
        """
        if limit is not None and info.file_size > limit:
            raise DatasetError(
                f"{info.filename} in {self.name} declares {info.file_size:,} bytes, more "
                f"than the {limit:,} accepted: the archive is corrupt or not of this dataset"
            )
        return self._guarded(info, _read_in_chunks)

    def head(self, info: zipfile.ZipInfo, size: int) -> bytes:
        """The first ``size`` bytes of the member (no CRC check: it is not read whole)."""
        return self._guarded(info, lambda handle: handle.read(size))

    def check_header(self, info: zipfile.ZipInfo) -> None:
        """Check the member's local header (signature, name) without reading its data."""
        self._guarded(info, lambda handle: b"")

    def _guarded(self, info: zipfile.ZipInfo, work):
        if info.compress_type not in _METHODS:
            raise DatasetError(
                f"{info.filename} in {self.name} is compressed with method "
                f"{info.compress_type}, not {' or '.join(_METHODS.values())} as in the "
                "dataset's archives: it is not of this dataset; download the archive again"
            )
        try:
            self._check_local_header(info)
            with self.zip.open(info) as handle:
                return work(handle)
        except NotImplementedError as error:  # e.g. Deflate64 (method 9) from Windows tools
            raise DatasetError(
                f"{info.filename} in {self.name} uses a compression method Python's zipfile "
                f"cannot read ({error})"
            ) from None
        except (
            zipfile.BadZipFile,
            zlib.error,
            lzma.LZMAError,
            EOFError,
            OSError,
            struct.error,
            RuntimeError,  # "File ... is encrypted, password required"
            ValueError,  # UnicodeDecodeError in the local header's name, among others
        ) as error:
            raise DatasetError(
                f"cannot read {info.filename} from archive part {self.part_of(info)} "
                f"({error}): the part is corrupt or truncated, download it again"
            ) from None

    def close(self) -> None:
        self.zip.close()
        self._file.close()

    def __enter__(self) -> ZipArchive:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---- pku_aigi/data/prompts.py -------------------------------------------------------
"""Prompt files of PKU-AIGI-500K and the image-name -> prompt-line rule.

One prompt per line, UTF-8; some lines are blank and the last line may lack a newline.
An image ``<N>_<k>.png`` (train, validation) or ``<N>.png`` (test) takes line N, 1-based:
the authors' loader does ``int(name.split('.')[0].split('_')[0]) - 1``.

Concatenated into ``dataset_script/PKU-AIGI-500K.py`` (the loading script for
``datasets`` < 4, made by :mod:`pku_aigi.data.script_generator`): import only the
standard library, ``datasets`` and the other copied modules.
"""


import posixpath
import re


_PROMPT_ID = re.compile(r"(\d+)(?:_[^.]*)?\.png", re.IGNORECASE)
MAX_PROMPT_DIGITS = 9  # prompt numbers fit the int32 prompt_id feature


def parse_prompts(data: bytes, source: str) -> list[str]:
    """Lines of a prompt file, stripped of surrounding whitespace (blank lines kept as "")."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DatasetError(f"prompt file {source} is not UTF-8 (line {line})") from None
    # Split on "\n" only: str.splitlines() also splits on characters such as U+2028
    # that may occur inside a prompt, which would shift every later line.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start a new one
    return [line.strip() for line in lines]


def prompt_id(file_name: str) -> int:
    """The 1-based prompt line of an image, from its name (``0001_1.png`` -> 1)."""
    base = posixpath.basename(file_name)
    match = _PROMPT_ID.fullmatch(base)
    if not match:
        raise DatasetError(
            f"image {file_name}: its name does not start with a prompt number "
            "(expected <N>_<k>.png or <N>.png)"
        )
    digits = match.group(1)
    if len(digits) > MAX_PROMPT_DIGITS:
        raise DatasetError(
            f"image {file_name}: its prompt number has {len(digits)} digits, more than the "
            f"{MAX_PROMPT_DIGITS} any prompt line can need: the file is not of this dataset"
        )
    return int(digits)


def lookup_prompt(prompts: list[str] | None, pid: int, file_name: str, source: str) -> str | None:
    """Line ``pid`` of ``prompts`` (None when the subset has no prompt file)."""
    if prompts is None:
        return None
    if not 1 <= pid <= len(prompts):
        raise DatasetError(
            f"image {file_name} needs line {pid} of the prompt file {source}, which has "
            f"{len(prompts)} lines: the prompt file does not match the images"
        )
    return prompts[pid - 1]


# ---- pku_aigi/data/builder.py -------------------------------------------------------
"""The ``datasets`` builder of PKU-AIGI-500K, reading the Hub repo's archives as published.

One config per subset (``sd21b``, ``sd21``, ``sdxl``, ``mj52``, ``mod``), splits
``train`` (the subset's archives + prompt file), ``validation`` (``vaild.zip``) and
``test`` (not on the Hub: a local folder ``test/<FOLDER>/*.png`` + ``test/<FOLDER>.txt``).
The ``image`` feature holds each PNG file's original bytes, unchanged. Examples come in a
fixed order (archive order, then prompt number, then name) under stable keys.

Concatenated, with the table and the archive reader, into ``dataset_script/PKU-AIGI-500K.py``
(the loading script for ``datasets`` < 4, made by :mod:`pku_aigi.data.script_generator`),
so it only imports ``datasets`` and the standard library besides the other copied modules.
"""


import logging
import os
import posixpath
import struct
import warnings
import zlib
from dataclasses import dataclass

import datasets


logger = logging.getLogger(__name__)

TEST_FOLDER = "test"  # local test split: test/<FOLDER>/*.png and test/<FOLDER>.txt
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_HEAD_SIZE = 33  # signature + IHDR chunk
MAX_IMAGE_PIXELS = 178_956_970  # Pillow refuses more as a DecompressionBombError
MAX_IMAGE_BYTES = 256 << 20  # the dataset's largest PNGs are a few MB
MAX_PROMPT_BYTES = 64 << 20  # the largest prompt file is a few MB
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by colour type (PNG spec, 11.2.2)
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
# Adam7 passes: (first column, first row, column step, row step) (PNG spec, 8.2)
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2))
_ADAM7 += ((0, 1, 1, 2),)
_INFLATE_CHUNK = 1 << 20

FEATURES = datasets.Features(
    {
        "image": datasets.Image(),
        "prompt": datasets.Value("string"),
        "prompt_id": datasets.Value("int32"),
        "file_name": datasets.Value("string"),
        "subset": datasets.Value("string"),
        "width": datasets.Value("int32"),
        "height": datasets.Value("int32"),
    }
)

DESCRIPTION = (
    "PKU-AIGI-500K: 528k+ AI-generated images from five text-to-image models with their "
    "105k+ prompts, a benchmark for image compression (Duan et al., IEEE JETCAS 2024)."
)


def png_size(data: bytes, name: str) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, without decoding the image.

    Raises :class:`DatasetError` for anything but a PNG signature followed by an IHDR
    (PNG specification, section 5), and for sizes of zero or above ``MAX_IMAGE_PIXELS``.
    """
    if data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR" or len(data) < PNG_HEAD_SIZE:
        raise DatasetError(f"{name} is not a PNG file")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if not (0 < width and 0 < height and width * height <= MAX_IMAGE_PIXELS):
        raise DatasetError(
            f"{name} declares {width}x{height} pixels: no image of the dataset is empty or "
            f"above {MAX_IMAGE_PIXELS:,} pixels (Pillow's decompression-bomb limit); the "
            "file is corrupt or not of this dataset"
        )
    return width, height


def check_png_file_size(size: int, width: int, height: int, name: str) -> None:
    """Refuse a PNG far larger than any encoding of its declared pixels (a zip bomb)."""
    # 8 bytes a pixel (16-bit RGBA) plus a filter byte a row, stored uncompressed, plus
    # room for text and other ancillary chunks.
    largest = min(MAX_IMAGE_BYTES, height * (1 + 8 * width) * 11 // 10 + (16 << 20))
    if size > largest:
        raise DatasetError(
            f"{name} is {size:,} bytes, more than any PNG of {width}x{height} pixels can "
            f"need ({largest:,}): the file is corrupt or a decompression bomb"
        )


def check_png_data(data: bytes, name: str) -> None:
    """Refuse a PNG that would not decode, without decoding its pixels.

    Checks every chunk's length and CRC up to IEND, the IHDR fields, and the image data:
    the IDAT chunks' zlib stream is inflated (in chunks, and dropped) and must hold every
    row IHDR declares (Adam7 passes if interlaced), each starting with a filter type 0-4
    (PNG specification, sections 5, 10 and 11). About 60% of the time a full decode takes.
    """
    width, height = png_size(data, name)
    depth, colour, compression, filtering, interlace = data[24:29]
    if depth not in _PNG_DEPTHS.get(colour, ()) or compression or filtering or interlace > 1:
        raise DatasetError(f"{name} is a corrupt PNG file (invalid IHDR)")
    bits = depth * _PNG_CHANNELS[colour]
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    rows = []  # (row bytes with the filter byte, rows) of each pass, last pass first
    for x0, y0, dx, dy in reversed(passes):
        columns, count = (width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy
        if columns > 0 and count > 0:
            rows.append((1 + (columns * bits + 7) // 8, count))
    inflater, skip, pos, last, idat_done = zlib.decompressobj(), 0, 8, b"", False
    view = memoryview(data)
    try:
        while True:
            length, kind = struct.unpack_from(">I4s", data, pos)
            body = pos + 8
            if length > len(data) - body - 4:
                raise DatasetError(f"{name} is a corrupt PNG file (truncated {kind!r} chunk)")
            if zlib.crc32(view[pos + 4 : body + length]) != _u32(data, body + length):
                raise DatasetError(f"{name} is a corrupt PNG file (bad CRC in {kind!r})")
            if kind == b"IDAT":
                if idat_done:
                    raise DatasetError(f"{name} is a corrupt PNG file (IDAT chunks apart)")
                pending = inflater.decompress(view[body : body + length], _INFLATE_CHUNK)
                while rows or skip > 0:  # data after the last row is ignored, as decoders do
                    skip = _check_rows(pending, skip, rows, name)
                    if not inflater.unconsumed_tail and len(pending) < _INFLATE_CHUNK:
                        break
                    pending = inflater.decompress(inflater.unconsumed_tail, _INFLATE_CHUNK)
            elif kind == b"IEND":
                break
            else:
                idat_done = idat_done or last == b"IDAT"
            last, pos = kind, body + length + 4
    except struct.error:
        raise DatasetError(f"{name} is a corrupt PNG file (no IEND chunk)") from None
    except zlib.error as error:
        raise DatasetError(f"{name} is a corrupt PNG file (image data: {error})") from None
    if rows or skip > 0:
        raise DatasetError(f"{name} is a corrupt PNG file (image data cut short)")


def _u32(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 4], "big")


def _check_rows(chunk: bytes, skip: int, rows: list, name: str) -> int:
    """Check the filter bytes of the rows in ``chunk`` of inflated image data, the first
    ``skip`` bytes ending an earlier row; consume ``rows``. Returns the bytes of the
    current row still to come (negative: the data went past the last row)."""
    at = skip
    while at < len(chunk) and rows:
        stride, count = rows[-1]
        n = min(count, (len(chunk) - at - 1) // stride + 1)
        if max(chunk[at : at + (n - 1) * stride + 1 : stride]) > 4:
            raise DatasetError(f"{name} is a corrupt PNG file (invalid row filter type)")
        at += n * stride
        if n == count:
            rows.pop()
        else:
            rows[-1] = (stride, count - n)
    return at - len(chunk)


def read_member_png(archive: ZipArchive, member, name: str) -> bytes:
    """A PNG member's bytes, refused from its header and declared size before inflating,
    and checked whole (:func:`check_png_data`)."""
    width, height = png_size(archive.head(member, PNG_HEAD_SIZE), name)
    check_png_file_size(member.file_size, width, height, name)
    data = archive.read(member, limit=MAX_IMAGE_BYTES)
    check_png_data(data, name)
    return data


def read_png_file(path: str, name: str) -> bytes:
    """A local (or URL) PNG file's bytes, checked like :func:`read_member_png`."""
    with open_binary(path) as handle:
        head = handle.read(PNG_HEAD_SIZE)
        width, height = png_size(head, name)
        handle.seek(0, os.SEEK_END)
        check_png_file_size(handle.tell(), width, height, name)
        handle.seek(0)
        data = handle.read()
    check_png_data(data, name)
    return data


def _sort_key(file_name: str) -> tuple:
    return (prompt_id(file_name), file_name)


def _is_png(name: str) -> bool:
    return name.lower().endswith(".png")


def _in_folder(member: str, folder: str) -> bool:
    """Whether a vaild.zip member lies in the subset's folder (e.g. vaild/MJ/0001_1.png)."""
    parts = member.split("/")[:-1]
    return any(part.lower() == folder.lower() for part in parts)


def _find_member(names: list[str], wanted: str, folder: str) -> str | None:
    """The prompt txt of a subset in vaild.zip: ``vaild/MJ.txt``, else any ``MJ.txt``."""
    if wanted in names:
        return wanted
    matches = [n for n in names if posixpath.basename(n).lower() == f"{folder.lower()}.txt"]
    return sorted(matches)[0] if matches else None


class DataFiles:
    """Where the Hub repo's files are: a local folder, or a ``datasets`` download manager."""

    def __init__(self, data_dir: str | None, dl_manager=None):
        self.data_dir = data_dir
        self.dl_manager = dl_manager

    def has(self, name: str) -> bool:
        if self.data_dir is None:
            return True  # the Hub repo (script mode) has every published file
        return _exists(self._join(name))

    def path(self, name: str) -> str:
        if self.data_dir is None:
            return self.dl_manager.download(name)
        path = self._join(name)
        if not _exists(path):
            raise DatasetError(f"{name} is missing from {self.data_dir}")
        return path

    def _join(self, name: str) -> str:
        if "://" in self.data_dir:  # a URL such as hf://datasets/<repo>@<revision>
            return f"{self.data_dir.rstrip('/')}/{name}"
        return os.path.join(self.data_dir, name)

    def archive_parts(self, archive) -> list[str]:
        if self.data_dir is None:  # script mode: the table lists every disk
            return [self.path(part) for part in archive.parts]
        return split_parts(self.path(archive.last_disk))


def _exists(path: str) -> bool:
    if "://" in path:
        import fsspec

        fs, inner = fsspec.core.url_to_fs(path)
        return fs.exists(inner)
    return os.path.exists(path)


def available_splits(subset: Subset, files: DataFiles) -> tuple[str, ...]:
    """Splits whose files are present (script mode: the two published splits)."""
    if files.data_dir is None:
        return ("train", "validation")
    found = []
    if any(files.has(archive.last_disk) for archive in subset.train_archives):
        found.append("train")
    if files.has(VALIDATION_ARCHIVE):
        found.append("validation")
    if files.has(posixpath.join(TEST_FOLDER, subset.validation_folder)):
        found.append("test")
    if not found:
        raise DatasetError(
            f"{files.data_dir} holds no file of config {subset.config!r}: expected "
            f"{', '.join(subset.hub_files('train'))}, {VALIDATION_ARCHIVE} or "
            f"{TEST_FOLDER}/{subset.validation_folder}/"
        )
    return tuple(found)


def test_split_error(subset: Subset, where: str) -> DatasetError:
    folder = subset.validation_folder
    return DatasetError(
        f"the test split of {subset.config!r} is not on the Hugging Face Hub "
        f"({where}): PKU-AIGI-500K publishes only train and validation. If you have the "
        f"test images, pass data_dir= (--data-dir) a folder holding "
        f"{TEST_FOLDER}/{folder}/<N>.png and optionally the prompts "
        f"{TEST_FOLDER}/{folder}.txt (one per line)"
    )


def split_sources(subset: Subset, split: str, files: DataFiles) -> dict:
    """The generator arguments of one split: archive parts, prompt file, test folder."""
    if split == "train":
        # Tuples, not lists: datasets would shard lists across jobs.
        archives = tuple(tuple(files.archive_parts(a)) for a in subset.train_archives)
        prompt_file = files.path(subset.prompt_file) if subset.prompt_file else None
        return {
            "archives": archives,
            "prompt_file": prompt_file,
            "prompt_name": subset.prompt_file,
            "test_dir": None,
        }
    if split == "validation":
        archives = ((files.path(VALIDATION_ARCHIVE),),)
        return {"archives": archives, "prompt_file": None, "prompt_name": None, "test_dir": None}
    test_dir = posixpath.join(TEST_FOLDER, subset.validation_folder)
    if files.data_dir is None or not files.has(test_dir):
        raise test_split_error(subset, f"{test_dir}/ not found in {files.data_dir or 'the repo'}")
    prompt_name = test_dir + ".txt"
    return {
        "archives": (),
        "prompt_file": files.path(prompt_name) if files.has(prompt_name) else None,
        "prompt_name": prompt_name,
        "test_dir": files.path(test_dir),
    }


def _read_prompt_file(path: str, name: str) -> bytes:
    with open_binary(path) as handle:  # a local path or a URL (streaming from the Hub)
        data = handle.read(MAX_PROMPT_BYTES + 1)
    if len(data) > MAX_PROMPT_BYTES:
        raise DatasetError(
            f"prompt file {name} is larger than {MAX_PROMPT_BYTES:,} bytes (the dataset's "
            "are a few MB): it is corrupt or not of this dataset"
        )
    return data


def _missing_prompts_warning(subset: Subset, split: str, source: str) -> None:
    warnings.warn(
        f"{subset.title} ({subset.config}) has no prompt file for the {split} split "
        f"({source}): prompts are None",
        UserWarning,
        stacklevel=2,
    )


def iter_split(
    subset: Subset, split: str, archives, prompt_file, prompt_name, test_dir, check_only=False
):
    """Yield ``(key, example)`` of one split in a fixed order.

    With ``check_only``, only list the members and check that every prompt line exists,
    warning once when the split has no prompt file (run before anything is written).
    """
    prompts = None
    source = prompt_name
    if prompt_file is not None:
        prompts = parse_prompts(_read_prompt_file(prompt_file, source), source)
    elif check_only and split != "validation":  # validation: looked up inside vaild.zip
        where = "none on the Hub" if split == "train" else f"no {prompt_name}"
        _missing_prompts_warning(subset, split, where)

    if test_dir is not None:
        root = os.path.dirname(os.path.dirname(test_dir))
        names = []
        for folder, _, file_names in os.walk(test_dir):
            names += [os.path.join(folder, n) for n in file_names if _is_png(n)]
        rel = sorted((os.path.relpath(n, root).replace(os.sep, "/") for n in names), key=_sort_key)
        for file_name in rel:
            pid = prompt_id(file_name)
            prompt = lookup_prompt(prompts, pid, file_name, source)
            if check_only:
                continue
            data = read_png_file(os.path.join(root, file_name), file_name)
            yield file_name, _example(subset, data, file_name, pid, prompt)
        return

    for parts in archives:
        with ZipArchive(parts) as archive:
            members = [m for m in archive.members() if _is_png(m.filename)]
            if not check_only:  # a name changed in the directory alone must not hide an image
                for other in archive.zip.infolist():
                    if not _is_png(other.filename):
                        archive.check_header(other)
            if split == "validation":
                names = [m.filename for m in archive.members()]
                wanted = subset.validation_prompt_file
                prompt_member = _find_member(names, wanted, subset.validation_folder)
                if prompt_member is None:
                    if check_only:
                        _missing_prompts_warning(subset, split, f"no {wanted} in {archive.name}")
                else:
                    source = f"{archive.name}:{prompt_member}"
                    info = archive.zip.getinfo(prompt_member)
                    prompts = parse_prompts(archive.read(info, limit=MAX_PROMPT_BYTES), source)
                members = [m for m in members if _in_folder(m.filename, subset.validation_folder)]
                if not members:
                    folders = sorted({posixpath.dirname(n) for n in names if _is_png(n)})
                    raise DatasetError(
                        f"{archive.name} has no images in a folder {subset.validation_folder}/ "
                        f"(it has {', '.join(folders) or 'no images'})"
                    )
            members.sort(key=lambda m: _sort_key(m.filename))
            for member in members:
                pid = prompt_id(member.filename)
                prompt = lookup_prompt(prompts, pid, member.filename, source)
                if check_only:
                    continue
                data = read_member_png(archive, member, f"{member.filename} in {archive.name}")
                key = f"{archive.name}:{member.filename}"
                yield key, _example(subset, data, member.filename, pid, prompt)


def _example(subset: Subset, data: bytes, file_name: str, pid: int, prompt) -> dict:
    width, height = png_size(data, file_name)
    return {
        # path=None: datasets would store a path instead of the bytes if it named a file
        "image": {"bytes": data, "path": None},
        "prompt": prompt,
        "prompt_id": pid,
        "file_name": file_name,
        "subset": subset.config,
        "width": width,
        "height": height,
    }


@dataclass
class PkuAigiConfig(datasets.BuilderConfig):
    """A subset of PKU-AIGI-500K.

    Attributes:
        splits: the splits to prepare; None: every split whose files are present.
        fingerprint: identifies the local files (names, sizes, times) so that the cache
            is rebuilt when they change.
    """

    splits: tuple[str, ...] | None = None
    fingerprint: str = ""


class PkuAigi500K(datasets.GeneratorBasedBuilder):
    """PKU-AIGI-500K read from the archives of the Hub repo ``Forerunner/PKU-AIGI-500K``."""

    BUILDER_CONFIG_CLASS = PkuAigiConfig
    BUILDER_CONFIGS = [
        PkuAigiConfig(name=config, description=get_subset(config).title) for config in CONFIGS
    ]
    DEFAULT_CONFIG_NAME = "mj52"

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=DESCRIPTION,
            features=FEATURES,
            homepage=f"https://huggingface.co/datasets/{HUB_REPO_ID}",
            citation=CITATION,
        )

    def _split_generators(self, dl_manager):
        subset = get_subset(self.config.name)
        files = DataFiles(self.config.data_dir, dl_manager)
        splits = self.config.splits or available_splits(subset, files)
        generators = []
        for split in splits:
            if split not in SPLITS:
                raise DatasetError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
            kwargs = split_sources(subset, split, files)
            for _ in iter_split(subset, split, check_only=True, **kwargs):
                pass
            generators.append(
                datasets.SplitGenerator(name=split, gen_kwargs={"split": split, **kwargs})
            )
        logger.info("%s: preparing %s", subset.config, ", ".join(splits))
        return generators

    def _generate_examples(self, split, archives, prompt_file, prompt_name, test_dir):
        subset = get_subset(self.config.name)
        yield from iter_split(subset, split, archives, prompt_file, prompt_name, test_dir)
