"""Fuzz surface ``zoo_entries``: mutated zoo entries (``PKU_AIGI_ZOO`` files), fetched.

The base entry names a tiny CompressAI checkpoint (bmshj2018-factorized, N=M=8) served
by the child's server on 127.0.0.1 (``_zoo.py``). Each case mutates it and writes it as
the ``PKU_AIGI_ZOO`` file, then looks its id up and fetches it through the zoo's own
path (``find_entry``, ``fetch_source``: download, sha256, conversion): ``hparams``
(strings, floats, booleans, null, 0, negatives, widths up to 10**30 and 4096, lists,
objects, unknown or reserved keys, not an object), repo ids (spaces, ``..``, ``--``,
three parts, 200 characters, not a string), ``sha256`` (1-63 hex digits of the right
digest, the wrong digest, upper case, not hex, not a string), ``size`` (0, negative,
a string, a float, too small, 10**12, exact), ``source`` (other schemes, malformed URLs,
no file name, a closed port, ``file://`` paths, 10,000 characters, a query string),
architecture, quality, metric, ``trained_on`` and ``license`` of wrong types or values,
keys missing or added, and entries or files that are no JSON object.

A ``PkuAigiError`` is clean where the entry is wrong; an entry that is valid must give a
folder that loads as the entry's model, else *wrong* (so must any success).
"""

from __future__ import annotations

import copy
import hashlib
import random
import sys
from pathlib import Path

from fuzz_surfaces import _zoo

SURFACE = "zoo_entries"
ID = "fuzz/zoo-entry"
KINDS = ("hparams", "repo_id", "sha256", "size", "source", "field", "shape", "valid")
VALUES = (
    "abc", "8", 8.5, True, None, 0, -1, 4096, 5000, 10**30, 2**63, [8], [], {}, {"a": 1},
    "x" * 5000, float("inf"),
)  # fmt: skip
REPO_IDS = (
    "not a repo id", "", "a/b/c", "../x", "org/..", "org/a--b", "org/" + "x" * 200, 5, None,
    ["org/x"], "org/x.", "org//x", "-org/x", "org/x\n",
)  # fmt: skip
SOURCES = (
    "", "ftp://127.0.0.1/x-12345678.pth.tar", "http://[::1", "SERVER/files/", "SERVER/",
    "http://127.0.0.1:1/x-12345678.pth.tar", "file:///dev/zero", "file:///etc/passwd",
    "/nonexistent/x-12345678.pth.tar", "SERVER/files/NAME?a=b", "SERVER/files/NAME#x",
    "http://" + "x" * 10_000 + "/x.pth.tar", 5, None, "SERVER/files/..", "SERVER/files/%2e%2e",
    "javascript:x", "http://127.0.0.1:1/.hidden.pth.tar", "SERVER/files/NAME",
)  # fmt: skip
FIELDS = {
    "architecture": ("nope", "", 5, None, "mbt2018-mean", "x" * 200),
    "quality": ("1", 0, 99, True, 1.5, 2, None, -1),
    "metric": (5, "", "ms-ssim", "x" * 100, None, "psnr"),
    "trained_on": (5, "", "x" * 5000, None, "PKU-AIGI-500K"),
    "license": (5, "mit", None, ["mit"]),
}


def make_cases(rng: random.Random, count: int, workdir: Path) -> list[dict]:
    data = _zoo.checkpoint_bytes()
    good = workdir / _zoo.hashed_name(data)
    good.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    cases = []
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        change: dict = {}
        expect = "error"
        if kind == "hparams":
            choice = rng.randrange(6)
            if choice == 0:
                change["hparams"] = rng.choice(["abc", [1], 5, True])
            elif choice == 1:
                change["hparams"] = {rng.choice(["quality", "metric", "architecture", "name"]): 1}
            elif choice == 2:
                change["hparams"] = {"N": 8, "M": 8, rng.choice(["K", "x", ""]): 3}
            else:
                change["hparams"] = {"N": 8, "M": 8, rng.choice(["N", "M"]): rng.choice(VALUES)}
        elif kind == "repo_id":
            change["repo_id"] = rng.choice(REPO_IDS)
            expect = "any"  # huggingface_hub's rule decides; never a raw error
        elif kind == "sha256":
            choice = rng.randrange(5)
            if choice == 0:
                change["sha256"] = digest[: rng.choice([1, 2, 7, 8, 9, 63])]
            elif choice == 1:
                change["sha256"], expect = digest.upper(), "ok"
            elif choice == 2:
                change["sha256"] = "0" * 64
            else:
                change["sha256"] = rng.choice(["z" * 64, 5, [digest], digest + "0", ""])
        elif kind == "size":
            change["size"] = rng.choice([0, -1, "70000", 1.5, True, 1, 10**12, len(data)])
            expect = "ok" if change["size"] == len(data) else "error"
        elif kind == "source":
            change["source"] = rng.choice(SOURCES)
            if change["source"] == "SERVER/files/NAME":
                expect = "ok"
            elif "NAME" in str(change["source"]):
                expect = "any"
        elif kind == "field":
            key = rng.choice(sorted(FIELDS))
            change[key] = rng.choice(FIELDS[key])
            expect = "any"
        elif kind == "valid":
            expect = "ok"
        case = {"kind": kind, "file": str(good), "change": change, "expect": expect}
        if kind == "shape":
            case["shape"] = rng.choice(["missing", "extra", "list", "string", "models", "empty"])
            case["key"] = rng.choice(["architecture", "quality", "metric", "trained_on", "source"])
            case["expect"] = "ok" if case["shape"] == "extra" else "error"
        cases.append(case)
    return cases


def prepare_worker() -> None:
    _zoo.prepare_worker()


def _zoo_file(case: dict, entry: dict) -> object:
    shape = case.get("shape")
    if shape == "missing":
        del entry[case["key"]]
    elif shape == "extra":
        entry["unknown-key"] = {"nested": [1, 2]}
    elif shape == "list":
        return {"models": [[entry]]}
    elif shape == "string":
        return {"models": "entry"}
    elif shape == "models":
        return [entry]
    elif shape == "empty":
        return {}
    return {"models": [entry]}


def check(case: dict) -> str:
    from pku_aigi.errors import PkuAigiError

    path = Path(case["file"])
    data = path.read_bytes()
    base = _zoo.server().url
    entry = _zoo.entry(ID, f"{base}/files/{path.name}", license="cc-by-4.0")
    for key, value in copy.deepcopy(case["change"]).items():
        if isinstance(value, str) and value.startswith("SERVER"):
            value = value.replace("SERVER", base).replace("NAME", path.name)
        entry[key] = value
    zoo_file = _zoo_file(case, entry)
    wanted = entry.get("repo_id") if isinstance(entry.get("repo_id"), str) else ID
    try:
        folder = _zoo.fetch(wanted, {path.name: data}, zoo_file=zoo_file)
    except PkuAigiError as error:
        if case["expect"] == "ok":
            print(f"zoo_entries: a valid entry was refused: {error}", file=sys.stderr)
            return "wrong"
        return "clean"
    if folder is None:  # not found: right only where the file holds no entry of that id
        return "clean" if zoo_file != {"models": [entry]} else "wrong"
    if case["expect"] == "error" or not _zoo.loads_as(folder, entry):
        return "wrong"
    return "clean"
