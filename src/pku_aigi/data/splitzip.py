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

from __future__ import annotations

import bisect
import io
import lzma
import os
import struct
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

from ..errors import DatasetError

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
