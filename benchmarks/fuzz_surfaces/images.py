"""Fuzz surface ``images``: ``pku-aigi compress`` on crafted image files.

Seeds are small crops of the real PKU-AIGI images saved as PNG (RGB, RGBA, grey,
palette, 16-bit), JPEG, GIF (animated), TIFF (float), BMP and WebP. Cases edit what the
formats define: PNG IHDR sizes and chunk lengths (CRCs recomputed, so the chunk parser
accepts them), text chunks above Pillow's 1 MB limit, IDAT decompression bombs declaring
up to 30000x30000 pixels, JPEG SOF and GIF/BMP header sizes; or truncate, flip bits,
insert bytes, empty the file. ``check`` runs the ``compress`` command in-process
(``pku_aigi.cli.main``) with a conventional codec: exit status 2 (one error line) is
clean; status 0 must have written exactly what the codec's Python API makes of the image
as Pillow reads it, else it is *wrong*. Every third case uses a small learned model
(mbt2018-mean, ``--model DIR``) instead of JPEG or WebP.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import struct
import tempfile
import zlib
from pathlib import Path

from ._bombs import zlib_zeros

SURFACE = "images"
SHARED = Path(
    os.environ.get("PKU_AIGI_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CODECS = (("jpeg", "90"), ("webp", "90"), ("model", None))  # (codec, quality); model: learned


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _chunks(png: bytes) -> list[tuple[int, bytes, bytes]]:
    """(offset, type, body) of each chunk of a well-formed PNG."""
    out, at = [], 8
    while at + 8 <= len(png):
        length = struct.unpack_from(">I", png, at)[0]
        out.append((at, png[at + 4 : at + 8], png[at + 8 : at + 8 + length]))
        at += 12 + length
    return out


def _rebuild(png: bytes, replace: dict[int, tuple[bytes, bytes]], insert_before_idat=b"") -> bytes:
    """The PNG with chunks replaced (index -> (type, body)), CRCs recomputed."""
    out = bytearray(PNG_SIGNATURE)
    for index, (_, kind, body) in enumerate(_chunks(png)):
        if kind == b"IDAT" and insert_before_idat:
            out += insert_before_idat
            insert_before_idat = b""
        kind, body = replace.get(index, (kind, body))
        out += _chunk(kind, body)
    return bytes(out)


def _bomb_png(width: int, height: int) -> bytes:
    """A real 8-bit grey PNG of ``width`` x ``height`` black pixels (IDAT deflated zeros)."""
    idat = zlib_zeros(height * (width + 1))  # each row: filter type 0, then zeros
    ihdr = struct.pack(">2I5B", width, height, 8, 0, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def build_seeds(workdir: Path) -> dict[str, Path]:
    """Seed files of every format, written once into ``workdir/seeds``."""
    import numpy as np
    from PIL import Image

    folder = workdir / "seeds"
    if folder.is_dir():
        return {p.name: p for p in folder.iterdir()}
    folder.mkdir(parents=True)
    source = sorted((SHARED / "pku-examples").glob("*/*.png"))[0]
    with Image.open(source) as image:
        crop = image.convert("RGB").crop((200, 200, 264, 248))  # 64x48
    seeds = {
        "rgb.png": (crop, "PNG", {}),
        "rgba.png": (crop.convert("RGBA"), "PNG", {}),
        "grey.png": (crop.convert("L"), "PNG", {}),
        "palette.png": (crop.convert("P"), "PNG", {}),
        "grey16.png": (Image.fromarray(np.asarray(crop.convert("L"), np.uint16) * 257), "PNG", {}),
        "photo.jpg": (crop, "JPEG", {"quality": 95}),
        "photo.webp": (crop, "WEBP", {"lossless": True}),
        "picture.bmp": (crop, "BMP", {}),
        "float.tif": (Image.fromarray(np.asarray(crop.convert("L"), np.float32)), "TIFF", {}),
    }
    for name, (image, fmt, options) in seeds.items():
        image.save(folder / name, fmt, **options)
    frames = [crop, crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:])
    rgb = (folder / "rgb.png").read_bytes()
    # text chunks: a zTXt inflating past Pillow's MAX_TEXT_CHUNK (1 MB), and 2 MB stored
    ztxt = _chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"A" * (3 << 20), 9))
    (folder / "big-ztxt.png").write_bytes(_rebuild(rgb, {}, ztxt))
    text = _chunk(b"tEXt", b"Comment\x00" + bytes(random.Random(0).randbytes(2 << 20)))
    (folder / "big-text.png").write_bytes(_rebuild(rgb, {}, text))
    (folder / "bomb-30000.png").write_bytes(_bomb_png(30000, 30000))
    (folder / "bomb-9000.png").write_bytes(_bomb_png(9000, 9000))  # 81 MP: above 64 MP
    return {p.name: p for p in folder.iterdir()}


def _png_mutant(rng: random.Random, png: bytes) -> tuple[str, bytes]:
    chunks = _chunks(png)
    roll = rng.random()
    if roll < 0.4:  # IHDR fields at boundary values, CRC recomputed
        index = next(i for i, c in enumerate(chunks) if c[1] == b"IHDR")
        body = bytearray(chunks[index][2])
        field, (at, size) = rng.choice(
            [
                ("width", (0, 4)),
                ("height", (4, 4)),
                ("depth", (8, 1)),
                ("colour", (9, 1)),
                ("compression", (10, 1)),
                ("filter", (11, 1)),
                ("interlace", (12, 1)),
            ]
        )
        top = (1 << (8 * size)) - 1
        value = rng.choice(
            [0, 1, 2, 3, 4, 6, 7, 16, 255, 30000, 65535, 1 << 31, top, rng.randrange(top + 1)]
        )
        body[at : at + size] = (value & top).to_bytes(size, "big")
        return f"png-ihdr-{field}={value & top}", _rebuild(png, {index: (b"IHDR", bytes(body))})
    if roll < 0.6:  # a chunk length field changed (CRC left: the parser meets it first)
        at, _, _ = rng.choice(chunks)
        out = bytearray(png)
        value = rng.choice([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 1 << 30, rng.randrange(1 << 32)])
        struct.pack_into(">I", out, at, value)
        return f"png-chunk-length={value}", bytes(out)
    if roll < 0.8:  # bits flipped inside a chunk body, CRC recomputed
        index = rng.randrange(len(chunks))
        _, kind, body = chunks[index]
        body = bytearray(body)
        for _ in range(rng.randint(1, 4)):
            if body:
                body[rng.randrange(len(body))] ^= 1 << rng.randrange(8)
        return f"png-flip-{kind.decode('latin-1')}", _rebuild(png, {index: (kind, bytes(body))})
    # an extra ancillary chunk of a plausible kind
    kind = rng.choice([b"tEXt", b"zTXt", b"iTXt", b"iCCP", b"sPLT", b"acTL", b"fcTL", b"eXIf"])
    body = rng.randbytes(rng.choice([0, 1, 8, 26, 300]))
    return f"png-extra-{kind.decode()}", _rebuild(png, {}, _chunk(kind, body))


def _header_mutant(rng: random.Random, name: str, data: bytes) -> tuple[str, bytes]:
    """Image sizes in JPEG SOF, GIF and BMP headers set to boundary values."""
    out = bytearray(data)
    if name.endswith(".jpg"):
        at = data.find(b"\xff\xc0") + 5 if b"\xff\xc0" in data else 0
        struct.pack_into(">2H", out, at, rng.choice([0, 1, 65535]), rng.choice([0, 1, 65535]))
        return "jpeg-sof-size", bytes(out)
    if name.endswith(".gif"):
        struct.pack_into("<2H", out, 6, rng.choice([0, 1, 65535]), rng.choice([0, 1, 65535]))
        return "gif-screen-size", bytes(out)
    struct.pack_into(
        "<2i",
        out,
        18,
        rng.choice([0, 1, 1 << 20, 2**31 - 1, -1]),
        rng.choice([0, 1, -(1 << 20), 2**31 - 1, -(2**31)]),
    )
    return "bmp-size", bytes(out)


def _generic_mutant(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    out = bytearray(data)
    roll = rng.random()
    if roll < 0.35:
        return "truncate", bytes(out[: rng.randrange(len(out))])
    if roll < 0.7:
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        return "flip", bytes(out)
    if roll < 0.9:
        at = rng.randrange(len(out))
        out[at:at] = rng.randbytes(rng.choice([1, 4, 100]))
        return "insert", bytes(out)
    return rng.choice([("empty", b""), ("random", rng.randbytes(rng.choice([8, 100, 5000])))])


def build_model(workdir: Path) -> Path:
    """A small seeded mbt2018-mean (N=16, M=16) saved as a model folder."""
    import torch

    from pku_aigi import models

    folder = workdir / "model"
    if not folder.is_dir():
        torch.manual_seed(0)
        models.create("mbt2018-mean", quality=1, N=16, M=16).save_pretrained(folder)
    return folder


def make_cases(rng: random.Random, count: int, workdir: Path) -> list[dict]:
    seeds = build_seeds(workdir)
    model = build_model(workdir)
    made = workdir / "cases"
    made.mkdir(exist_ok=True)
    names = sorted(seeds)
    cases = []
    for i in range(count):
        name = rng.choice(names)
        data = seeds[name].read_bytes()
        roll = rng.random()
        if roll < 0.15 or name.startswith(("big-", "bomb-")):
            kind = f"seed-{name}"
        elif name.endswith(".png") and roll < 0.6:
            kind, data = _png_mutant(rng, data)
        elif name.endswith((".jpg", ".gif", ".bmp")) and roll < 0.35:
            kind, data = _header_mutant(rng, name, data)
        else:
            kind, data = _generic_mutant(rng, data)
        path = seeds[name] if kind.startswith("seed-") else made / f"{i:06d}{Path(name).suffix}"
        if not kind.startswith("seed-"):
            path.write_bytes(data)
        codec, quality = CODECS[i % len(CODECS)]
        if codec == "model":
            codec = str(model)
        cases.append(
            {
                "kind": f"{kind} ({name})",
                "path": str(path),
                "codec": codec,
                "quality": quality,
            }
        )
    return cases


def prepare_worker() -> None:
    import pku_aigi.cli  # noqa: F401 - imported before the memory cap
    from pku_aigi.codecs import get
    from pku_aigi.codecs.learned import LearnedCodec

    for codec, quality in CODECS:
        if quality is not None:
            get(codec)
    import compressai  # noqa: F401 - the learned codecs' libraries, before the memory cap
    import torch  # noqa: F401

    import pku_aigi.models  # noqa: F401

    LearnedCodec  # noqa: B018


def _codec(case: dict):
    from pku_aigi.codecs import get
    from pku_aigi.codecs.learned import LearnedCodec

    if case["quality"] is None:
        return LearnedCodec.from_pretrained(case["codec"], device="cpu")
    return get(case["codec"])


def check(case: dict) -> str:
    from PIL import Image

    from pku_aigi import cli

    with tempfile.TemporaryDirectory(prefix="fuzz-image-") as tmp:
        out = Path(tmp) / "out.bin"
        errors = io.StringIO()
        if case["quality"] is None:  # a learned model folder, at its own quality
            argv = ["compress", case["path"], "-o", str(out), "--model", case["codec"],
                    "--device", "cpu"]  # fmt: skip
        else:
            argv = ["compress", case["path"], "-o", str(out), "--codec", case["codec"],
                    "--quality", case["quality"]]  # fmt: skip
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            status = cli.main(argv)
        if status == cli.EXIT_USER_ERROR:
            lines = errors.getvalue().strip().splitlines()
            if len(lines) != 1 or not lines[0].startswith("pku-aigi compress: error: "):
                raise AssertionError(f"not one error line: {errors.getvalue()[:300]!r}")
            return "clean"
        if status != 0 or not out.is_file():
            raise AssertionError(f"exit status {status} without an error message")
        written = out.read_bytes()
        # from memory: Pillow reading a file allocates a declared chunk length up front
        with Image.open(io.BytesIO(Path(case["path"]).read_bytes())) as image:
            image.load()
            codec = _codec(case)
            quality = None if case["quality"] is None else float(case["quality"])
            expected = codec.encode(image, codec.check_quality(quality))
    # The codecs are deterministic: the command must code exactly the image Pillow reads
    # (each codec then applies the package's input rule, pku_aigi.image_input).
    return "clean" if written == expected else "wrong"
