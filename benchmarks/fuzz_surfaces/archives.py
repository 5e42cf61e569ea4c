"""Fuzz surface ``archives``: the dataset loader on mutated zip, Zip64 and split archives.

Base archives are real Info-ZIP archives (``zip``, ``zip -fz`` for Zip64, ``zip -s 64k``
for split disks, stored and deflated, and a ``vaild.zip`` with its prompt file) of small
PNG crops of the real PKU-AIGI images in ../shared/data; archives written by
:mod:`zipfile` with every compression method it has (stored, deflate, bzip2, LZMA); zip
bombs (a deflated member of zeros, one behind a valid PNG header, bzip2 and LZMA members
of a gigabyte of zeros behind one, a PNG declaring 30000x30000 pixels, and a member whose
central directory understates its size); and archives with defective names or images: a
duplicated prompt member, backslash-separated and empty names, 12- and 5000-digit image
numbers, PNGs with corrupt image data (IDAT cut short, garbage with a valid CRC, a bad
filter type, a bad CRC). Each case edits fields the format defines (APPNOTE 4.3.12-4.3.16:
end records, Zip64 locator and end record, central directory entries, local headers,
among them a local extra field or name grown over the next member) with boundary values,
or truncates, deletes, swaps or extends disks, or flips bytes. ``check`` prepares the
split as the ``datasets`` builder does (``split_parts`` + ``iter_split``) and compares
the images and prompts with the originals: the same (any order) are clean, fewer are
*dropped*, others are *wrong*; an archive that must be refused and is not is *wrong*.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import struct
import subprocess
import tempfile
import zipfile
import zlib
from collections import Counter
from pathlib import Path

from ._bombs import deflated_zeros, zlib_zeros

SURFACE = "archives"
SHARED = Path(
    os.environ.get("PKU_AIGI_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# (name, zip options): every base archive holds the same PNGs under SD21/
INFO_ZIP_BASES = {
    "single-deflated": ["-X"],
    "single-stored": ["-X", "-0"],
    "zip64": ["-X", "-fz"],
    "split-stored": ["-X", "-0", "-s", "64k"],
    "split-deflated": ["-X", "-s", "64k"],
    "split-zip64": ["-X", "-fz", "-s", "64k"],
}
BOMB_BYTES = 1 << 30  # what the bombs inflate to
ZIPFILE_METHODS = {
    "stored": zipfile.ZIP_STORED,
    "deflated": zipfile.ZIP_DEFLATED,
    "bzip2": zipfile.ZIP_BZIP2,
    "lzma": zipfile.ZIP_LZMA,
}
PROMPTS = [f"prompt {n}: a crop of a PKU-AIGI image" for n in range(1, 5)]

# Field layouts: (name, offset, size) within each record.
EOCD_FIELDS = [
    ("this_disk", 4, 2),
    ("cd_disk", 6, 2),
    ("entries_here", 8, 2),
    ("entries", 10, 2),
    ("cd_size", 12, 4),
    ("cd_offset", 16, 4),
    ("comment_len", 20, 2),
]
LOCATOR_FIELDS = [("eocd64_disk", 4, 4), ("eocd64_offset", 8, 8), ("total_disks", 16, 4)]
EOCD64_FIELDS = [
    ("record_size", 4, 8),
    ("version_needed", 14, 2),
    ("this_disk", 16, 4),
    ("cd_disk", 20, 4),
    ("entries_here", 24, 8),
    ("entries", 32, 8),
    ("cd_size", 40, 8),
    ("cd_offset", 48, 8),
]
CENTRAL_FIELDS = [
    ("version_made", 4, 2),
    ("version_needed", 6, 2),
    ("flags", 8, 2),
    ("method", 10, 2),
    ("crc", 16, 4),
    ("compressed_size", 20, 4),
    ("file_size", 24, 4),
    ("name_len", 28, 2),
    ("extra_len", 30, 2),
    ("comment_len", 32, 2),
    ("disk", 34, 2),
    ("local_offset", 42, 4),
]
LOCAL_FIELDS = [
    ("version_needed", 4, 2),
    ("flags", 6, 2),
    ("method", 8, 2),
    ("crc", 14, 4),
    ("compressed_size", 18, 4),
    ("file_size", 22, 4),
    ("name_len", 26, 2),
    ("extra_len", 28, 2),
]


# ---------------------------------------------------------------- building the bases


def _crops(folder: Path, count: int = 12) -> list[Path]:
    """PNG crops (96x96) of the real images, named like the Hub's ``<N>_<k>.png``."""
    from PIL import Image

    sources = sorted((SHARED / "pku-examples").glob("*/*.png"))
    folder.mkdir(parents=True)
    out = []
    for i in range(count):
        with Image.open(sources[i % len(sources)]) as image:
            x, y = 64 * (i % 7), 48 * (i % 5)
            crop = image.convert("RGB").crop((x, y, x + 96, y + 96))
        path = folder / f"{i // 3 + 1:06d}_{i % 3 + 1}.png"
        crop.save(path)
        out.append(path)
    return out


def _png(width: int, height: int, idat: bytes) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">2I5B", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _raw_member(path: Path, name: str, stream: bytes, crc: int, declared: int) -> None:
    """A one-member Zip64 archive holding an already-deflated stream, sizes as given."""
    name_bytes = name.encode()
    local = struct.pack(
        "<4s5H3L2H", b"PK\x03\x04", 45, 0, 8, 0, 0x5821, crc, _U32, _U32, len(name_bytes), 20
    )
    extra = struct.pack("<2H2Q", 1, 16, declared, len(stream))
    central = struct.pack(
        "<4s6H3L5H2L",
        b"PK\x01\x02",
        45,
        45,
        0,
        8,
        0,
        0x5821,
        crc,
        _U32,
        _U32,
        len(name_bytes),
        20,
        0,
        0,
        0,
        0,
        0,
    )
    central += name_bytes + struct.pack("<2H2Q", 1, 16, declared, len(stream))
    body = local + name_bytes + extra + stream
    cd_start = len(body)
    eocd64 = struct.pack(
        "<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, 1, 1, len(central), cd_start
    )
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, cd_start + len(central), 1)
    eocd = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central), cd_start, 0)
    path.write_bytes(body + central + eocd64 + locator + eocd)


_U32 = 0xFFFF_FFFF


def build_bases(workdir: Path) -> dict:
    """Write the base archives; returns ``{base: {"parts": [...], "images": {sha: n}}}``."""
    manifest_path = workdir / "bases.json"
    if manifest_path.exists():
        return json.loads(manifest_path.read_text())
    stage = workdir / "stage"
    crops = _crops(stage / "SD21")
    images = Counter(_example_key(p.read_bytes()) for p in crops)
    bases = {}
    for base, options in INFO_ZIP_BASES.items():
        folder = workdir / base
        folder.mkdir()
        subprocess.run(
            ["zip", "-q", "-r", *options, str(folder / "SD21.zip"), "SD21"], cwd=stage, check=True
        )
        parts = sorted(folder.iterdir(), key=lambda p: (p.suffix == ".zip", p.name))
        bases[base] = {"parts": [str(p) for p in parts], "images": dict(images)}
    bases.update(_more_bases(workdir, stage, crops))

    def one_member(base: str, name: str, stream: bytes, crc: int, declared: int):
        folder = workdir / base
        folder.mkdir()
        _raw_member(folder / "SD21.zip", name, stream, crc, declared)
        bases[base] = {"parts": [str(folder / "SD21.zip")], "images": {}}

    stream, crc = deflated_zeros(BOMB_BYTES)
    one_member("bomb-zeros", "SD21/000001_1.png", stream, crc, BOMB_BYTES)
    one_member("bomb-understated", "SD21/000001_1.png", stream, crc, 1 << 20)
    header = _png(64, 64, zlib.compress(bytes(65 * 64)))[:33]  # signature + IHDR
    stream, crc = deflated_zeros(BOMB_BYTES, header)
    one_member("bomb-png-header", "SD21/000001_1.png", stream, crc, BOMB_BYTES + 33)
    side = 30000  # a real PNG of 900 million grey pixels (all black): ~900 KB
    huge = _png(side, side, zlib_zeros(side * (side + 1)))
    packed, crc = zlib.compressobj(9, zlib.DEFLATED, -15), zlib.crc32(huge)
    stream = packed.compress(huge) + packed.flush()
    one_member("png-30000x30000", "SD21/000001_1.png", stream, crc, len(huge))
    for method in ("bzip2", "lzma"):  # zipfile inflated these without bound
        folder = workdir / f"bomb-{method}"
        folder.mkdir()
        with zipfile.ZipFile(folder / "SD21.zip", "w", ZIPFILE_METHODS[method]) as archive:
            with archive.open("SD21/000001_1.png", "w", force_zip64=True) as member:
                member.write(header)
                block = bytes(1 << 24)
                for _ in range(BOMB_BYTES // len(block)):
                    member.write(block)
        bases[f"bomb-{method}"] = {"parts": [str(folder / "SD21.zip")], "images": {}}
    manifest_path.write_text(json.dumps(bases))
    return bases


def _example_key(png: bytes, prompt: str | None = None) -> str:
    """What ``check`` compares of one example: the image's SHA-256 and its prompt."""
    return f"{hashlib.sha256(png).hexdigest()}|{prompt}"


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 8
    while pos + 8 <= len(png):
        (length,) = struct.unpack_from(">I", png, pos)
        out.append((png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def _join_chunks(chunks: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        for kind, data in chunks
    )
    return PNG_SIGNATURE + body


def _corrupt_idat(png: bytes, how: str) -> bytes:
    """``png`` with its image data damaged (chunk CRCs valid unless ``how`` is "crc")."""
    chunks = _chunks(png)
    idat = b"".join(data for kind, data in chunks if kind == b"IDAT")
    others = [(kind, data) for kind, data in chunks if kind not in (b"IDAT", b"IEND")]
    if how == "cut":
        idat = idat[: len(idat) // 2]
    elif how == "garbage":
        middle = len(idat) // 2
        idat = idat[:middle] + bytes(range(200, 256)) * 4 + idat[middle + 224 :]
    elif how == "filter":
        raw = bytearray(zlib.decompress(idat))
        raw[0] = 7  # filter types are 0-4
        idat = zlib.compress(bytes(raw))
    corrupt = _join_chunks([*others, (b"IDAT", idat), (b"IEND", b"")])
    if how == "crc":
        at = corrupt.find(b"IDAT") + 4
        corrupt = corrupt[:at] + bytes([corrupt[at] ^ 0xFF]) + corrupt[at + 1 :]
    return corrupt


def _zipfile_archive(path: Path, members: list[tuple[str, bytes]], method: int) -> None:
    import warnings

    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name" is the point of one base
        with zipfile.ZipFile(path, "w", method) as archive:
            for name, data in members:
                info = zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0))
                archive.writestr(info, data, method)


def _more_bases(workdir: Path, stage: Path, crops: list[Path]) -> dict:
    """Archives written by zipfile with each method, a vaild.zip with prompts, and the
    archives with defective names or images. ``refuse``: only a DatasetError is clean."""
    pngs = [(f"SD21/{p.name}", p.read_bytes()) for p in crops]
    images = dict(Counter(_example_key(data) for _, data in pngs))
    bases = {}

    def add(base, members, examples, method="deflated", split="train", refuse=False):
        name = "vaild.zip" if split == "validation" else "SD21.zip"
        path = workdir / base / name
        _zipfile_archive(path, members, ZIPFILE_METHODS[method])
        bases[base] = {"parts": [str(path)], "images": examples, "split": split}
        bases[base]["refuse"] = refuse

    for method in ZIPFILE_METHODS:
        add(f"zipfile-{method}", pngs, images, method, refuse=method in ("bzip2", "lzma"))

    # validation: vaild/SD21.txt and vaild/SD21/<N>_<k>.png, by Info-ZIP and by zipfile
    prompts = ("\n".join(PROMPTS) + "\n").encode()
    valid = [(f"vaild/{name}", data) for name, data in pngs]
    prompted = dict(
        Counter(_example_key(data, PROMPTS[int(name[-12:-6]) - 1]) for name, data in pngs)
    )
    (stage / "vaild").mkdir()
    (stage / "SD21").rename(stage / "vaild" / "SD21")
    (stage / "vaild" / "SD21.txt").write_bytes(prompts)
    folder = workdir / "vaild-infozip"
    folder.mkdir()
    zipped = folder / "vaild.zip"
    subprocess.run(["zip", "-q", "-r", "-X", str(zipped), "vaild"], cwd=stage, check=True)
    bases["vaild-infozip"] = {"parts": [str(zipped)], "images": prompted, "split": "validation"}
    other = ("\n".join(p.upper() for p in PROMPTS) + "\n").encode()
    add(
        "duplicate-prompt",
        [("vaild/SD21.txt", prompts), *valid, ("vaild/SD21.txt", other)],
        prompted,
        split="validation",
        refuse=True,
    )
    hidden = [*valid[:-1], (valid[-1][0].replace("/", "\\"), valid[-1][1])]
    add("backslash-image", [("vaild/SD21.txt", prompts), *hidden], prompted, "deflated",
        "validation", refuse=True)  # fmt: skip
    add("backslash-train", [*pngs[:-1], ("SD21\\000009_1.png", pngs[-1][1])], images,
        refuse=True)  # fmt: skip
    add("empty-name", [*pngs, ("", b"not an image")], images, refuse=True)
    for digits in (12, 5000):
        extra = ("SD21/" + "7" * digits + "_1.png", pngs[0][1])
        add(f"{digits}-digit-number", [*pngs, extra], images, refuse=True)
    for how in ("cut", "garbage", "filter", "crc"):
        damaged = [(pngs[0][0], _corrupt_idat(pngs[0][1], how)), *pngs[1:]]
        add(f"idat-{how}", damaged, images, refuse=True)
    return bases


# ---------------------------------------------------------------- finding the fields


def _records(data: bytes) -> dict:
    """Offsets of the records in a whole (concatenated) archive."""
    eocd = data.rfind(b"PK\x05\x06")
    found = {"eocd": eocd}
    locator = eocd - 20
    if locator >= 0 and data[locator : locator + 4] == b"PK\x06\x07":
        found["locator"] = locator
        found["eocd64"] = data.rfind(b"PK\x06\x06", 0, locator)
    central = []
    at = data.find(b"PK\x01\x02")
    while 0 <= at < eocd:
        central.append(at)
        name_len, extra_len, comment_len = struct.unpack_from("<3H", data, at + 28)
        at += 46 + name_len + extra_len + comment_len
        if data[at : at + 4] != b"PK\x01\x02":
            break
    found["central"] = central
    found["local"] = [i for i in _find_all(data, b"PK\x03\x04") if i < (central or [eocd])[0]]
    return found


def _find_all(data: bytes, needle: bytes) -> list[int]:
    out, at = [], data.find(needle)
    while at >= 0:
        out.append(at)
        at = data.find(needle, at + 1)
    return out


def _boundary_values(rng: random.Random, size: int, current: int) -> int:
    top = (1 << (8 * size)) - 1
    return (
        rng.choice(
            [
                0,
                1,
                2,
                current - 1,
                current + 1,
                current * 2,
                current + 46,
                top,
                top - 1,
                top >> 1,
                1 << (8 * size - 1),
                0xFFFF,
                97,
                63,
                20,
                45,
                rng.randrange(top + 1),
            ]
        )
        & top
    )


# ---------------------------------------------------------------- making the cases


def make_cases(rng: random.Random, count: int, workdir: Path) -> list[dict]:
    bases = build_bases(workdir)
    layouts = {}
    for base, info in bases.items():
        if base.startswith(("bomb", "png-")) or info.get("refuse"):
            continue
        parts = [Path(p).read_bytes() for p in info["parts"]]
        whole = b"".join(parts)
        starts = [sum(len(p) for p in parts[:i]) for i in range(len(parts))]
        layouts[base] = (whole, starts, [len(p) for p in parts], _records(whole))
    cases = []
    defective = sorted(b for b, info in bases.items() if info.get("refuse"))
    whole = [*defective, "bomb-bzip2", "bomb-lzma"]
    named = _named_cases(layouts) + [{"kind": b, "base": b, "edits": []} for b in whole]
    for i in range(count):
        if i < len(named) and count >= 50:
            cases.append(named[i])
            continue
        roll = rng.random()
        if roll < 0.03:  # the untouched archives must load completely
            cases.append({"kind": "valid", "base": rng.choice(sorted(layouts)), "edits": []})
            continue
        if roll < 0.05:  # the defective archives must be refused, flipped or not
            base = rng.choice(defective)
            edits = []
            if rng.random() < 0.5:
                size = Path(bases[base]["parts"][0]).stat().st_size
                edits = [_flip(rng, 0, size, size)]
            cases.append({"kind": base, "base": base, "edits": edits})
            continue
        if roll < 0.07:
            base = rng.choice([b for b in bases if b.startswith(("bomb", "png-"))])
            edits = []
            if rng.random() < 0.5:
                size = Path(bases[base]["parts"][0]).stat().st_size
                edits = [_flip(rng, 0, max(0, size - 200), size)]
            cases.append({"kind": base, "base": base, "edits": edits})
            continue
        base = rng.choice(sorted(layouts))
        cases.append(_mutant(rng, base, layouts[base]))
    return [dict(case, workdir=str(workdir)) for case in cases]


def _at(starts: list[int], sizes: list[int], offset: int) -> tuple[int, int]:
    """(part, offset in part) of an offset in the concatenated archive."""
    for part in range(len(starts) - 1, -1, -1):
        if offset >= starts[part]:
            return part, min(offset - starts[part], sizes[part])
    return 0, offset


def _set(layout, offset: int, value: int, size: int) -> dict:
    _, starts, sizes, _ = layout
    part, inner = _at(starts, sizes, offset)
    return {"op": "set", "part": part, "at": inner, "hex": value.to_bytes(size, "little").hex()}


def _flip(rng: random.Random, start: int, end: int, size: int, part: int = -1) -> dict:
    at = rng.randrange(max(0, min(start, size - 1)), max(1, min(end, size)))
    return {"op": "xor", "part": part, "at": at, "hex": bytes([1 << rng.randrange(8)]).hex()}


def _field_edit(rng, layout, kind: str) -> dict | None:
    whole, _, _, records = layout
    table = {
        "eocd": EOCD_FIELDS,
        "locator": LOCATOR_FIELDS,
        "eocd64": EOCD64_FIELDS,
        "central": CENTRAL_FIELDS,
        "local": LOCAL_FIELDS,
    }[kind]
    where = records.get(kind)
    if where is None or where == []:
        return None
    start = rng.choice(where) if isinstance(where, list) else where
    name, offset, size = rng.choice(table)
    current = int.from_bytes(whole[start + offset : start + offset + size], "little")
    edit = _set(layout, start + offset, _boundary_values(rng, size, current), size)
    edit["field"] = f"{kind}.{name}"
    return edit


def _mutant(rng: random.Random, base: str, layout) -> dict:
    whole, starts, sizes, records = layout
    parts = len(sizes)
    roll = rng.random()
    edits: list[dict] = []
    if roll < 0.55:  # 1-3 structure fields set to boundary values
        kinds = ["eocd", "central", "central", "central", "local"]
        if "locator" in records:
            kinds += ["locator", "eocd64", "eocd64"]
        for _ in range(rng.randint(1, 3)):
            edit = _field_edit(rng, layout, rng.choice(kinds))
            if edit:
                edits.append(edit)
        kind = "fields:" + ",".join(e["field"] for e in edits)
    elif roll < 0.70:  # bit flips in the central directory and end records
        cd_start = records["central"][0] if records["central"] else records["eocd"]
        for _ in range(rng.randint(1, 4)):
            offset = rng.randrange(cd_start, len(whole))
            part, inner = _at(starts, sizes, offset)
            edits.append(
                {
                    "op": "xor",
                    "part": part,
                    "at": inner,
                    "hex": bytes([1 << rng.randrange(8)]).hex(),
                }
            )
        kind = "flip-directory"
    elif roll < 0.78:  # bit flips anywhere (member data included)
        for _ in range(rng.randint(1, 4)):
            part, inner = _at(starts, sizes, rng.randrange(len(whole)))
            edits.append(
                {
                    "op": "xor",
                    "part": part,
                    "at": inner,
                    "hex": bytes([1 << rng.randrange(8)]).hex(),
                }
            )
        kind = "flip-anywhere"
    elif roll < 0.86:  # truncate a disk
        part = rng.randrange(parts)
        edits.append({"op": "truncate", "part": part, "size": rng.randrange(sizes[part])})
        kind = "truncate"
    elif roll < 0.90:  # append or insert bytes
        part = rng.randrange(parts)
        at = rng.choice([sizes[part], rng.randrange(sizes[part])])
        edits.append(
            {
                "op": "insert",
                "part": part,
                "at": at,
                "hex": rng.randbytes(rng.choice([1, 4, 22, 300])).hex(),
            }
        )
        kind = "insert"
    elif parts > 1 and roll < 0.95:  # lose or reorder disks
        if rng.random() < 0.5:
            edits.append({"op": "delete", "part": rng.randrange(parts - 1)})
            kind = "delete-disk"
        else:
            a, b = rng.sample(range(parts - 1), 2) if parts > 2 else (0, parts - 1)
            edits.append({"op": "swap", "part": a, "with": b})
            kind = "swap-disks"
    else:  # a name made not UTF-8 (with the UTF-8 flag set) or a 'version 9.7' entry
        entry = rng.choice(records["central"])
        if rng.random() < 0.5:
            edits.append(_set(layout, entry + 8, 0x0800, 2))
            edits.append(_set(layout, entry + 46 + rng.randrange(4), 0xFF, 1))
            kind = "name-not-utf8"
        else:
            edits.append(_set(layout, entry + 6, 97, 2))
            kind = "version-9.7"
    return {"kind": kind, "base": base, "edits": edits}


def _named_cases(layouts) -> list[dict]:
    """The cases of the audit, always included in a run of 50 or more."""
    cases = []
    for base in ("zip64", "split-zip64"):
        layout = layouts[base]
        records = layout[3]
        cases.append(
            {
                "kind": "locator.total_disks=0xFFFFFFFF",
                "base": base,
                "edits": [_set(layout, records["locator"] + 16, _U32, 4)],
            }
        )
        cases.append(
            {
                "kind": "eocd64.cd_size=2^40",
                "base": base,
                "edits": [_set(layout, records["eocd64"] + 40, 1 << 40, 8)],
            }
        )
        cases.append(
            {
                "kind": "eocd64.cd_disk=7",
                "base": base,
                "edits": [_set(layout, records["eocd64"] + 20, 7, 4)],
            }
        )
    for base in ("single-stored", "split-stored"):
        layout = layouts[base]
        whole, _, _, records = layout
        first, second = records["central"][0], records["central"][1]
        # the first entry's comment swallows the second entry: one image fewer
        comment_len = struct.unpack_from("<H", whole, first + 32)[0]
        swallow = comment_len + (second - first)
        cases.append(
            {
                "kind": "comment-swallows-entry",
                "base": base,
                "edits": [_set(layout, first + 32, swallow, 2)],
            }
        )
        cases.append(
            {"kind": "version-9.7", "base": base, "edits": [_set(layout, first + 6, 97, 2)]}
        )
        cases += _overlap_cases(base, layout)
        cases.append(
            {
                "kind": "name-not-utf8",
                "base": base,
                "edits": [_set(layout, first + 8, 0x0800, 2), _set(layout, first + 46, 0xFF, 1)],
            }
        )
    return cases


def _overlap_cases(base: str, layout) -> list[dict]:
    """A member whose local extra field (or name) grows over the next member, so that its
    data is the next member's; the central directory's CRC and sizes are made to match."""
    whole, _, _, records = layout
    cases = []
    central, local = records["central"], records["local"]
    for i in range(len(local) - 1):
        entry, here, there = central[i], local[i], local[i + 1]
        name_len, extra_len = struct.unpack_from("<2H", whole, there + 26)
        crc, size, file_size = struct.unpack_from("<3L", whole, central[i + 1] + 16)
        grow = there + 30 + name_len + extra_len - (here + 30)
        own_name = struct.unpack_from("<H", whole, here + 26)[0]
        if grow - own_name > 0xFFFF or here + 30 + size > there:
            continue
        matching = [
            _set(layout, entry + 16, crc, 4),
            _set(layout, entry + 20, size, 4),
            _set(layout, entry + 24, file_size, 4),
        ]
        extra = _set(layout, here + 28, grow - own_name, 2)
        name = _set(layout, here + 26, grow, 2)
        name_edits = [name, _set(layout, here + 28, 0, 2)]
        cases.append({"kind": "overlap-local-extra", "base": base, "edits": [*matching, extra]})
        cases.append({"kind": "overlap-local-name", "base": base, "edits": matching + name_edits})
        break
    return cases


# ---------------------------------------------------------------- checking one case

_manifests: dict[str, dict] = {}


def _materialise(case: dict, into: Path) -> Path:
    """Write the mutated disks into ``into``; returns the last disk (``SD21.zip``)."""
    workdir = case["workdir"]
    if workdir not in _manifests:
        _manifests[workdir] = json.loads((Path(workdir) / "bases.json").read_text())
    sources = [Path(p) for p in _manifests[workdir][case["base"]]["parts"]]
    names = [p.name for p in sources]
    contents: list[bytearray | Path] = list(sources)
    deleted = set()
    for edit in case["edits"]:
        part = edit.get("part", -1) % len(sources)
        if edit["op"] == "delete":
            deleted.add(part)
            continue
        if edit["op"] == "swap":
            other = edit["with"] % len(sources)
            contents[part], contents[other] = contents[other], contents[part]
            continue
        if isinstance(contents[part], Path):
            contents[part] = bytearray(contents[part].read_bytes())
        data = contents[part]
        if edit["op"] == "truncate":
            del data[edit["size"] :]
        elif edit["op"] == "insert":
            data[edit["at"] : edit["at"]] = bytes.fromhex(edit["hex"])
        else:
            value = bytes.fromhex(edit["hex"])
            at = min(edit["at"], max(0, len(data) - len(value)))
            if edit["op"] == "xor":
                value = bytes(a ^ b for a, b in zip(data[at : at + len(value)], value))
            data[at : at + len(value)] = value
    for index, (name, content) in enumerate(zip(names, contents)):
        if index in deleted:
            continue
        target = into / name
        if isinstance(content, Path):
            os.symlink(content, target)
        else:
            target.write_bytes(content)
    return into / names[-1]


def check(case: dict) -> str:
    from pku_aigi.data.builder import iter_split
    from pku_aigi.data.splitzip import split_parts
    from pku_aigi.errors import DatasetError
    from pku_aigi.subsets import get_subset

    base = _manifest(case)
    expected = Counter(base["images"])
    split = base.get("split", "train")
    with tempfile.TemporaryDirectory(prefix="fuzz-archive-") as tmp:
        last_disk = _materialise(case, Path(tmp))
        got = Counter()
        try:
            # the builder opens vaild.zip as one file, the train archives with their disks
            parts = (str(last_disk),) if split == "validation" else tuple(split_parts(last_disk))
            for _, example in iter_split(get_subset("sd21"), split, (parts,), None, None, None):
                got[_example_key(example["image"]["bytes"], example["prompt"])] += 1
        except DatasetError:
            if not case["edits"] and expected and not base.get("refuse"):
                return "wrong"  # an intact archive must not be refused
            raise
    if base.get("refuse") and not case["edits"]:
        return "wrong"  # read, where it must be refused
    if got == expected:
        return "clean"
    if not (got - expected) and sum(got.values()) < sum(expected.values()):
        return "dropped"
    return "wrong"


def _manifest(case: dict) -> dict:
    workdir = case["workdir"]
    if workdir not in _manifests:
        _manifests[workdir] = json.loads((Path(workdir) / "bases.json").read_text())
    return _manifests[workdir][case["base"]]
