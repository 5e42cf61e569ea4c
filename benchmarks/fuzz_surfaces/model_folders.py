"""Fuzz surface ``model_folders``: loading tampered model folders, then coding with them.

Base folders are small seeded models saved with ``save_pretrained`` (mbt2018-mean,
bmshj2018-factorized, mbt2018: ``config.json``, ``model.safetensors`` with the entropy
coder's tables and the card metadata, ``README.md``). Each case names one tampering,
applied in the child to a fresh copy: ``config.json`` values of the wrong type or range
(strings, floats, booleans, null, negative, NaN, Infinity, 5,000-digit numbers, lists,
objects, 100k nested brackets, huge widths), a malformed ``config.json`` as a whole;
keys that are not hyper-parameters (``from_pretrained``'s keywords such as ``model_id``,
``token``, ``cls``, ``map_location``) with values of any type; entropy tables
(``_cdf_length``, ``_offset``, ``_quantized_cdf``, ``quantiles``, ``scale_table``)
filled with boundary values, garbage, reversed, truncated, retyped or with one entry
changed; weights with NaN, wrong shapes or dtypes, missing or extra; zero-size and
odd-shape tensors (an extra (4096, 0) or (4096, 1) tensor beside widths raised to
match, a weight with a zero dimension, flattened or scalar); the safetensors file
truncated, its header length or JSON damaged, its card metadata nested 100k deep,
unreadable, or of the wrong types (``training``, ``rd_points``, ``source``, ``license``);
files missing or a pickle in place of the weights.

``check`` loads the folder with ``AutoCodec.from_pretrained`` and, if it loads, saves it
again (card included) and encodes and decodes a real image crop with it: a
``PkuAigiError`` or an image of the right size and mode is clean, another image is
*wrong*; crashes and hangs in the rANS coder are what the entropy-table checks prevent,
a model built larger than its weights is *over-memory*.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import tempfile
from functools import lru_cache
from pathlib import Path

SURFACE = "model_folders"
SHARED = Path(
    os.environ.get("PKU_AIGI_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")
)
MODELS = {
    "mbt2018-mean": {"N": 16, "M": 24},
    "bmshj2018-factorized": {"N": 16, "M": 16},
    "mbt2018": {"N": 16, "M": 16},
}
BAD_VALUES = (
    '"16"', "16.5", "true", "false", "null", "-1", "0", "[16]", "{}", '{"a": 1}', "NaN",
    "Infinity", "-Infinity", "1e400", "9" * 5000, "3000", "100000", "2147483648",
    '"' + "x" * 100_000 + '"', "[" * 100_000 + "]" * 100_000, '""',
)  # fmt: skip
CONFIG_KEYS = ("N", "M", "quality", "metric", "lmbda", "architecture", "K")
# from_pretrained's and _from_pretrained's keywords, and other names that are no
# hyper-parameter: they must never reach a function as keyword arguments
FORWARDED_KEYS = (
    "model_id", "revision", "token", "cache_dir", "force_download", "local_files_only",
    "cls", "self", "map_location", "proxies", "resume_download", "config", "kwargs", "",
)  # fmt: skip
KEY_VALUES = ("1", '"x"', "null", "true", "[]", "{}", '"/tmp"', "1e400")
CARD_VALUES = (
    "[" * 100_000 + "]" * 100_000, "{not json", "9" * 5000, '"text"', "[]", "{}" * 10,
    '{"training": 5}', '{"training": [1, 2]}', '{"training": "data"}', '{"rd_points": 3}',
    '{"rd_points": [1]}', '{"rd_points": {"bpp": 1}}', '{"rd_points": [null]}',
    '{"source": 5}', '{"source": ["a"]}', '{"license": [1]}', '{"license": {"id": 1}}',
    '{"extra": 1}', '{"training": {"data": [1, {"a": null}]}, "rd_points": [{"bpp": "x"}]}',
    '{"training": null, "rd_points": null, "source": null, "license": null}',
)  # fmt: skip
TABLE_KEYS = (
    "entropy_bottleneck._cdf_length",
    "entropy_bottleneck._offset",
    "entropy_bottleneck._quantized_cdf",
    "entropy_bottleneck.quantiles",
    "gaussian_conditional._cdf_length",
    "gaussian_conditional._offset",
    "gaussian_conditional._quantized_cdf",
    "gaussian_conditional.scale_table",
)
FILL_VALUES = (-5, -1, 0, 1, 2, 3, 65535, 65536, 65537, 2**30, -(2**31), 2**31 - 1)
KINDS = (
    "config-value",
    "config-file",
    "table-fill",
    "table-garbage",
    "table-one",
    "table-shape",
    "weights",
    "config-key",
    "tensor-shape",
    "safetensors",
    "card",
    "files",
)


def _crop():
    from PIL import Image

    path = sorted((SHARED / "pku-examples" / "sdxl").iterdir())[0]
    return Image.open(path).convert("RGB").crop((300, 200, 397, 261))


def make_cases(rng: random.Random, count: int, workdir: Path) -> list[dict]:
    import torch

    from pku_aigi import models

    bases = {}
    for arch, hparams in MODELS.items():
        torch.manual_seed(0)
        model = models.create(arch, quality=1, **hparams).eval()
        folder = workdir / f"base-{arch}"
        model.save_pretrained(folder)
        bases[arch] = str(folder)
    cases = []
    for i in range(count):
        arch = rng.choice(sorted(bases))
        kind = KINDS[i % len(KINDS)]
        case = {"kind": kind, "base": bases[arch], "seed": rng.randrange(2**32)}
        if kind == "config-value":
            case["key"] = rng.choice(CONFIG_KEYS)
            case["raw"] = rng.choice(BAD_VALUES)
        elif kind == "config-key":
            case["key"] = rng.choice(FORWARDED_KEYS)
            case["raw"] = rng.choice(KEY_VALUES)
        elif kind.startswith("table"):
            keys = [k for k in TABLE_KEYS if arch != "bmshj2018-factorized" or "gaussian" not in k]
            case["key"] = rng.choice(keys)
            case["value"] = rng.choice(FILL_VALUES)
        cases.append(case)
    return cases


def _edit_tensors(folder: Path, edit) -> None:
    from safetensors.torch import load_file, save_file

    path = folder / "model.safetensors"
    tensors = load_file(path)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    edit(tensors)
    save_file(tensors, path, metadata=metadata)


def tamper(case: dict, folder: Path) -> None:
    """Apply ``case``'s tampering to the model folder ``folder`` (a copy)."""
    import torch

    rng = random.Random(case["seed"])
    kind = case["kind"]
    config_path = folder / "config.json"
    if kind in ("config-value", "config-key"):
        config = json.loads(config_path.read_text())
        config[case["key"]] = "@@"
        config_path.write_text(json.dumps(config).replace('"@@"', case["raw"]))
    elif kind == "tensor-shape":
        _odd_shapes(rng, folder)
    elif kind == "config-file":
        choice = rng.randrange(7)
        text = config_path.read_text()
        config_path.write_bytes(
            [
                ("[" * 100_000 + "]" * 100_000).encode(),
                b"{not json",
                b"",
                b"[1, 2]",
                b"\xff\xfe{}",
                text[: rng.randrange(len(text))].encode(),
                text.replace('"architecture"', '"architecture": 1, "x"').encode(),
            ][choice]
        )
    elif kind.startswith("table"):
        key, value = case["key"], case["value"]

        def edit(tensors):
            if key not in tensors:
                return
            t = tensors[key].clone()
            if kind == "table-fill":
                tensors[key] = t.fill_(value if t.dtype != torch.float32 else float(value))
            elif kind == "table-garbage":
                g = torch.Generator().manual_seed(case["seed"] % 2**31)
                if t.dtype.is_floating_point:
                    choice = rng.randrange(3)
                    bad = [float("nan"), float("inf"), -1e30][choice]
                    flat = t.reshape(-1)
                    flat[
                        torch.randint(0, flat.numel(), (max(1, flat.numel() // 4),), generator=g)
                    ] = bad
                    tensors[key] = flat.reshape(t.shape)
                else:
                    tensors[key] = torch.randint(
                        -(2**31), 2**31 - 1, t.shape, generator=g, dtype=t.dtype
                    )
            elif kind == "table-one":
                flat = t.reshape(-1)
                if flat.numel():
                    at = rng.randrange(flat.numel())
                    flat[at] = flat[at] + rng.choice([-1, 1, value])
                tensors[key] = flat.reshape(t.shape)
            else:  # table-shape
                choice = rng.randrange(4)
                if choice == 0:
                    tensors[key] = t[: max(0, t.shape[0] - 1)]
                elif choice == 1:
                    tensors[key] = torch.cat([t, t[:1]])
                elif choice == 2:
                    tensors[key] = t.to(
                        torch.float32 if not t.dtype.is_floating_point else torch.int32
                    )
                else:
                    tensors[key] = t.flip(-1)

        _edit_tensors(folder, edit)
    elif kind == "weights":

        def edit(tensors):
            key = rng.choice(sorted(k for k in tensors if k.endswith("weight")))
            choice = rng.randrange(5)
            if choice == 0:
                tensors[key] = torch.full_like(tensors[key], float("nan"))
            elif choice == 1:
                tensors[key] = tensors[key][:1]
            elif choice == 2:
                tensors[key] = tensors[key].to(torch.float64)
            elif choice == 3:
                del tensors[key]
            else:
                tensors["extra.weight"] = torch.zeros(3)

        _edit_tensors(folder, edit)
    elif kind == "safetensors":
        path = folder / "model.safetensors"
        data = bytearray(path.read_bytes())
        (length,) = struct.unpack("<Q", data[:8])
        choice = rng.randrange(5)
        if choice == 0:
            data = data[: rng.randrange(len(data))]
        elif choice == 1:
            data[:8] = struct.pack("<Q", rng.choice([0, 1, 2**40, 2**64 - 1, len(data)]))
        elif choice == 2:
            for _ in range(rng.randint(1, 8)):
                data[8 + rng.randrange(length)] = rng.randrange(256)
        elif choice == 3:
            header = data[8 : 8 + length].replace(
                b'"data_offsets":[', b'"data_offsets":[9999999,', 1
            )
            data = data[:8] + header + data[8 + length :]
            data[:8] = struct.pack("<Q", len(header))
        else:
            at = 8 + length + rng.randrange(max(1, len(data) - 8 - length))
            data[at : at + 64] = rng.randbytes(64)
        path.write_bytes(bytes(data))
    elif kind == "card":
        from pku_aigi.models.hub.folder import CARD_METADATA_KEY

        value = rng.choice(CARD_VALUES)
        from safetensors.torch import load_file, save_file

        path = folder / "model.safetensors"
        save_file(load_file(path), path, metadata={"format": "pt", CARD_METADATA_KEY: value})
    else:  # files
        choice = rng.randrange(4)
        if choice == 0:
            (folder / "config.json").unlink()
        elif choice == 1:
            (folder / "model.safetensors").unlink()
        elif choice == 2:
            (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
        else:
            (folder / "model.safetensors").write_bytes(b"")


def _odd_shapes(rng: random.Random, folder: Path) -> None:
    """Zero-size and odd-shape tensors, with the widths in config.json raised to match."""
    import torch

    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    choice = rng.randrange(6)
    width = rng.choice([4096, 2048, 513, 256])

    def edit(tensors):
        key = rng.choice(sorted(k for k in tensors if k.endswith("weight")))
        shape = list(tensors[key].shape)
        if choice == 0:  # no bytes, yet a dimension of ``width``
            tensors[rng.choice(["pad", key])] = torch.zeros(width, 0)
        elif choice == 1:  # 4 bytes a row
            tensors["pad"] = torch.zeros(width, 1)
        elif choice == 2:  # a real weight with one dimension made 0 or ``width``
            shape[rng.randrange(len(shape))] = rng.choice([0, width])
            tensors[key] = torch.zeros(shape)
        elif choice == 3:
            tensors[key] = tensors[key].reshape(-1)
        elif choice == 4:
            tensors[key] = torch.tensor(1.0)
        else:
            tensors[key] = tensors[key].reshape(1, *shape, 1)

    _edit_tensors(folder, edit)
    if choice < 3 or rng.random() < 0.5:
        for key in ("N", "M"):
            if key in config:
                config[key] = width
        config_path.write_text(json.dumps(config))


@lru_cache(maxsize=1)
def crop():
    return _crop()


def prepare_worker() -> None:
    """Import torch, safetensors and the models before the harness caps the address
    space; build each architecture once (first-use caches)."""
    import safetensors.torch  # noqa: F401
    import torch

    from pku_aigi import models
    from pku_aigi.codecs import from_model

    for arch, hparams in MODELS.items():
        torch.manual_seed(0)
        codec = from_model(models.create(arch, quality=1, **hparams).eval(), device="cpu")
        codec.decode(codec.encode(crop()))


def check(case: dict) -> str:
    from pku_aigi import AutoCodec
    from pku_aigi.codecs import from_model
    from pku_aigi.errors import PkuAigiError

    with tempfile.TemporaryDirectory(prefix="fuzz-model-") as tmp:
        folder = Path(tmp) / "model"
        shutil.copytree(case["base"], folder)
        tamper(case, folder)
        try:
            model = AutoCodec.from_pretrained(folder)
            model.save_pretrained(Path(tmp) / "saved")  # the card of what was loaded
            codec = from_model(model, device="cpu")
            image = crop()
            decoded = codec.decode(codec.encode(image))
        except PkuAigiError:
            return "clean"
    return "clean" if decoded.size == image.size and decoded.mode == image.mode else "wrong"
