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

from __future__ import annotations

import logging
import os
import posixpath
import struct
import warnings
import zlib
from dataclasses import dataclass

import datasets

from ..errors import DatasetError
from ..subsets import (
    CITATION,
    CONFIGS,
    HUB_REPO_ID,
    SPLITS,
    VALIDATION_ARCHIVE,
    Subset,
    get_subset,
)
from .prompts import lookup_prompt, parse_prompts, prompt_id
from .splitzip import ZipArchive, open_binary, split_parts

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
