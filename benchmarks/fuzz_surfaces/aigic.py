"""Fuzz surface ``aigic``: the learned codecs' decoder on mutated .aigic files.

Base files are real encodings of crops of the PKU-AIGI images in ../shared/data by five
small seeded models, one per coding path: factorized (bmshj2018-factorized), scale and
mean-scale hyperpriors (bmshj2018-hyperprior, mbt2018-mean), the autoregressive context
model (mbt2018, M=192 as CompressAI's mbt2018 q1-q4) and the channel-wise slice coder
(tcm-small). Mutations know the format (README "The .aigic file format"): header fields
set to boundary or forged values (an enlarged image size with the matching latent shape
and, for the factorized model, a forged ``params_crc``: what made CompressAI's rANS
decoder read past its string), latent shapes, string groups and strings truncated,
extended, replaced, swapped or spliced from another model's file, cleared or unknown
flags, flipped checks, coded sizes, model fingerprints and float checks (slice models'
means and LRP), bit flips, insertions and deletions, with the CRC32 recomputed
for most (valid-CRC mutants reach the decoder) and kept for some.

``check`` decodes the mutant with the model that made the base file, with the Space's
limit on autoregressive decoding: a ``PkuAigiError`` or exactly the base file's image is
clean; any other image is *wrong*.
"""

from __future__ import annotations

import dataclasses
import os
import random
import struct
import zlib
from functools import cache
from pathlib import Path

SURFACE = "aigic"
SHARED = Path(
    os.environ.get("PKU_AIGI_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")
)
TINY_TCM = dict(
    N=16, M=40, z_channels=16, head_dims=[8] * 6, hyper_head_dim=8, atten_dim=32,
    atten_head_dim=8,
)  # fmt: skip
MODELS = {
    "bmshj2018-factorized": {"N": 16, "M": 16},
    "bmshj2018-hyperprior": {"N": 16, "M": 16},
    "mbt2018-mean": {"N": 16, "M": 24},
    "mbt2018": {"N": 16, "M": 192},
    "tcm-small": TINY_TCM,
}
CROPS = ((500, 500, 590, 560), (100, 40, 229, 111))  # 90x60 and 129x71 (odd sizes)
# The Space's limits (pku_aigi.space.limits, PKU_AIGI_DEMO_MAX_PIXELS): the hostile setting.
MAX_PIXELS = 2048 * 2048
SEQUENTIAL_PIXELS = 1024 * 1024
KINDS = (
    "flip",
    "flip-keep-crc",
    "truncate",
    "insert",
    "delete",
    "size",
    "size+shape",
    "size+shape+params",
    "shape",
    "string",
    "groups",
    "checks",
    "flags",
    "meta",
    "splice",
    "coded",
    "fingerprint",
    "float-checks",
    "garbage",
)


@cache
def codec(arch: str):
    """The seeded tiny model of ``arch`` as a codec (the same weights in every process)."""
    import torch

    from pku_aigi import models
    from pku_aigi.codecs import from_model

    torch.manual_seed(0)
    model = models.create(arch, quality=1, **MODELS[arch])
    with torch.no_grad():  # untrained latents round to zeros; a trained model's do not
        convs = [m for m in model.g_a.modules() if isinstance(m, torch.nn.Conv2d)]
        convs[-1].weight.mul_(10)
    model.update(force=True)
    return from_model(
        model,
        device="cpu",
        model_id=f"fuzz/{arch}",
        max_pixels=MAX_PIXELS,
        max_sequential_pixels=SEQUENTIAL_PIXELS,
    )


@cache
def reference(arch: str, base: str):
    import numpy as np

    image = codec(arch).decode(Path(base).read_bytes())
    return image.mode, image.size, np.asarray(image)


def _crops():
    from PIL import Image

    path = sorted((SHARED / "pku-examples" / "mj52").iterdir())[0]
    source = Image.open(path).convert("RGB")
    return [source.crop(box) for box in CROPS]


def refresh_crc(data: bytes) -> bytes:
    return data[:-4] + struct.pack("<I", zlib.crc32(data[:-4])) if len(data) >= 4 else data


def _randomized(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if out:
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def _string_edit(rng: random.Random, s: bytes) -> bytes:
    choice = rng.randrange(7)
    if choice == 0:
        return s[: rng.randrange(len(s) + 1)]
    if choice == 1:
        return s + rng.randbytes(rng.choice([1, 4, 8, 64, 4096]))
    if choice == 2:
        return rng.randbytes(len(s))
    if choice == 3:
        return _randomized(rng, s)
    if choice == 4:
        return b""
    if choice == 5:
        return bytes(len(s)) if rng.random() < 0.5 else b"\xff" * max(1, len(s))
    return s[::-1]


def mutate(rng: random.Random, kind: str, data: bytes, files: dict, arch: str) -> bytes:
    """One mutant of the .aigic file ``data`` (made by ``arch``)."""
    from pku_aigi.codecs import container
    from pku_aigi.codecs.learned import _binding
    from pku_aigi.models.coding.entropy_coding import tables_crc

    header = container.parse(data)

    def repack(**fields) -> bytes:
        return container.pack(dataclasses.replace(header, **fields))

    if kind in ("flip", "flip-keep-crc"):
        out = _randomized(rng, data)
        return refresh_crc(out) if kind == "flip" else out
    if kind == "truncate":
        return data[: rng.randrange(len(data))]
    if kind == "insert":
        at = rng.randrange(len(data))
        return refresh_crc(data[:at] + rng.randbytes(rng.randint(1, 16)) + data[at:])
    if kind == "delete":
        at = rng.randrange(len(data) - 4)
        return refresh_crc(data[:at] + data[at + rng.randint(1, 16) :])
    sides = [0, 1, 2, 63, 64, 65, 127, 128, 1000, 8000, 65535, 1 << 20, 1 << 24, 2**32 - 1]
    if kind == "size":
        width = rng.choice([header.width + rng.choice([-1, 1, 64]), rng.choice(sides)])
        height = rng.choice([header.height, header.height + 1, rng.choice(sides)])
        return _raw_size(container, header, repack(), max(0, width), max(0, height))
    if kind.startswith("size+shape"):
        stride = 16 if arch == "bmshj2018-factorized" else 64
        multiple = codec(arch).pad_multiple
        side = rng.choice([640, 1000, 2048, 4000, 8000, 16000])
        width, height = (side, side) if rng.random() < 0.5 else (side, header.height)
        shape = (
            -(-height // multiple) * multiple // stride,
            -(-width // multiple) * multiple // stride,
        )
        fields = {
            "width": width,
            "height": height,
            "coded_width": -(-width // multiple) * multiple,
            "coded_height": -(-height // multiple) * multiple,
            "latent_shape": shape,
        }
        if kind.endswith("params") and arch == "bmshj2018-factorized":
            seed = _binding(dataclasses.replace(header, **fields))
            eb = codec(arch).model.entropy_bottleneck
            fields["params_crc"] = tables_crc(eb, seed)
        return repack(**fields)
    if kind == "shape":
        h, w = header.latent_shape
        shape = rng.choice(
            [(h + 1, w), (h, w + 1), (h - 1 or 2, w), (w, h), (h * 8, w * 8), (h,), (h, w, 1)]
        )
        return repack(latent_shape=shape)
    if kind == "string":
        strings = [list(group) for group in header.strings]
        g = rng.randrange(len(strings))
        strings[g][0] = _string_edit(rng, strings[g][0])
        return repack(strings=strings)
    if kind == "groups":
        strings = [list(group) for group in header.strings]
        choice = rng.randrange(4)
        if choice == 0:
            strings = strings[::-1]
        elif choice == 1:
            strings = strings + [strings[-1]]
        elif choice == 2 and len(strings) > 1:
            strings = strings[:1]
        else:
            strings[0] = strings[0] * rng.randint(2, 3)
        return repack(strings=strings)
    if kind == "checks":
        which = rng.choice(["params_crc", "symbols_crc"])
        return repack(**{which: getattr(header, which) ^ (1 << rng.randrange(32))})
    if kind == "flags":
        raw = bytearray(data)
        raw[7] = rng.choice([raw[7] & ~container.FLAG_SYMBOLS_CHECK, raw[7] | 0x80, 0, 0xFF])
        return refresh_crc(bytes(raw))
    if kind == "meta":
        choice = rng.randrange(6)
        if choice == 0:
            return repack(model_id=rng.choice(["", "other/model", "/etc", "x" * 4000]))
        if choice == 1:
            return repack(quality=rng.choice([0, 2, 65535]))
        if choice == 2:
            mode = rng.choice(["L", "I;16", "RGBA", "P", ""])
            if mode in container.MODES:
                return repack(mode=mode)
            # A reserved or unknown mode, which pack refuses to write: set it in the bytes.
            field = header.fingerprint + bytes([len(header.mode)]) + header.mode.encode()
            at = data.index(field) + len(header.fingerprint)
            raw = bytes([len(mode)]) + mode.encode()
            return refresh_crc(data[:at] + raw + data[at + 1 + len(header.mode) :])
        if choice == 3:
            return repack(prompt=rng.choice(["", "a cat", "x" * 60000]))
        if choice == 4:
            return repack(architecture=rng.choice(sorted(MODELS)))
        return repack(device="cuda (forged)", revision="r2")
    if kind == "splice":
        other = container.parse(files[rng.choice(sorted(files))])
        fields = rng.choice([{"strings": other.strings}, {"latent_shape": other.latent_shape}, {}])
        return repack(**fields, params_crc=other.params_crc, symbols_crc=other.symbols_crc)
    if kind == "coded":  # any u32 coded size, CRC recomputed
        old = struct.pack("<II", header.coded_width, header.coded_height)
        at = data.index(struct.pack("<II", header.width, header.height) + old) + 8
        width = rng.choice([header.coded_width + rng.choice([-64, -1, 1, 64, 128]), *sides])
        height = rng.choice([header.coded_height, header.coded_height + 64, *sides])
        new = struct.pack("<II", max(0, width) & 0xFFFFFFFF, max(0, height) & 0xFFFFFFFF)
        return refresh_crc(data[:at] + new + data[at + 8 :])
    if kind == "fingerprint":
        fingerprint = bytearray(header.fingerprint)
        fingerprint[rng.randrange(len(fingerprint))] ^= 1 << rng.randrange(8)
        return repack(fingerprint=bytes(fingerprint))
    if kind == "float-checks":
        checks = list(header.float_checks)
        choice = rng.randrange(3)
        if choice == 0 or not checks:
            checks = [] if checks else [rng.choice([0.0, 1.0, 1e30])]
        elif choice == 1:
            i = rng.randrange(len(checks))
            checks[i] *= rng.choice([0.999, 1.001, 0.5, 2.0, -1.0])
        else:
            checks = checks + [0.0]
        return repack(float_checks=tuple(checks))
    # garbage after a valid magic and version, valid CRC32
    body = container.MAGIC + bytes([container.FORMAT_VERSION]) + rng.randbytes(rng.randrange(300))
    return refresh_crc(body + b"\0\0\0\0")


def _raw_size(container, header, data: bytes, width: int, height: int) -> bytes:
    """``data`` with the width and height fields overwritten (any u32, CRC recomputed)."""
    old = struct.pack("<HII", header.quality, header.width, header.height)
    at = data.index(old)
    new = struct.pack("<HII", header.quality, width & 0xFFFFFFFF, height & 0xFFFFFFFF)
    return refresh_crc(data[:at] + new + data[at + len(old) :])


def make_cases(rng: random.Random, count: int, workdir: Path) -> list[dict]:
    bases: dict[str, bytes] = {}
    paths: dict[str, str] = {}
    for arch in MODELS:
        for index, crop in enumerate(_crops()):
            data = codec(arch).encode(crop)
            path = workdir / f"base-{arch}-{index}.aigic"
            path.write_bytes(data)
            bases[str(path)] = data
            paths[str(path)] = arch
    cases = []
    for i in range(count):
        base = rng.choice(sorted(bases))
        arch, kind = paths[base], KINDS[i % len(KINDS)]
        data = mutate(rng, kind, bases[base], bases, arch)
        path = workdir / f"{i:05d}-{kind}.aigic"
        path.write_bytes(data)
        cases.append({"kind": kind, "arch": arch, "base": base, "file": str(path)})
    return cases


def prepare_worker() -> None:
    """Import torch and build every model before the harness caps the address space."""
    for arch in MODELS:
        codec(arch)


def check(case: dict) -> str:
    import numpy as np

    from pku_aigi.errors import PkuAigiError

    mode, size, pixels = reference(case["arch"], case["base"])
    try:
        image = codec(case["arch"]).decode(Path(case["file"]).read_bytes())
    except PkuAigiError:
        return "clean"
    same = image.mode == mode and image.size == size and np.array_equal(np.asarray(image), pixels)
    return "clean" if same else "wrong"
