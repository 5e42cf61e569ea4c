"""Fuzz surface ``zoo_downloads``: the zoo's source downloads against a hostile server.

Each case fetches one zoo entry through the zoo's own path (download, sha256, conversion:
:func:`pku_aigi.models.zoo.fetch_source`) from a server on 127.0.0.1 in the child
(``tests/zoo_server.py``), with small bounds (1 MB, a deadline of about 2 s, see
``_zoo.py``). The server answers: the file (plain, through 0-8 redirects, cut short and
resumed, after a delay), an endless chunked body, a 10 GB ``Content-Length``, a slow drip
or a stall, a redirect loop or to ``file://``, ``ftp://``, empty or malformed places,
any status (1xx-5xx, 3xx without Location), 416 to every request or to every resume (a
part left by an earlier download), more than the entry's ``size``; and checkpoints that
pass their sha256 but are crafted: truncated, bit-flipped, a zip bomb (a deflated
``data/`` member), a legacy pickle declaring a 1 GiB storage. ``file://`` sources: the
file, ``/dev/zero``, ``/dev/urandom``, a FIFO, a folder, a sparse 2 GB file, a missing path.

A ``PkuAigiError`` is clean where an error is right; a download that should succeed
(the file, fewer than 6 redirects, a resume) must give a folder that loads as the entry's
model, else *wrong*, and so must any success. Whatever a case leaves in its cache counts
towards *over-disk*.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import struct
import zipfile
from pathlib import Path
from urllib.parse import quote

from fuzz_surfaces import _zoo

SURFACE = "zoo_downloads"
KINDS = (
    "file",
    "redirects",
    "cut",
    "endless",
    "huge",
    "drip",
    "stall",
    "loop",
    "redirect-to",
    "status",
    "416",
    "416-on-resume",
    "size",
    "crafted",
    "local",
)
PLACES = (
    "file:///dev/zero", "file:///etc/passwd", "ftp://127.0.0.1/x.pth.tar", "", "http://[::1",
    "javascript:alert(1)", "//127.0.0.1:1/x-12345678.pth.tar", "http://127.0.0.1:1/x.pth.tar",
    "data:,x", "/files/NAME", "http://%00/x", "h" * 3000,
)  # fmt: skip


def make_cases(rng: random.Random, count: int, workdir: Path) -> list[dict]:
    data = _zoo.checkpoint_bytes()
    good = workdir / _zoo.hashed_name(data)
    good.write_bytes(data)
    crafted = _crafted(workdir, data)
    fifo = workdir / "fifo.pth.tar"
    if not fifo.exists():
        os.mkfifo(fifo)
    sparse = workdir / "sparse.pth.tar"
    with open(sparse, "wb") as handle:
        handle.truncate(2 << 30)
    locals_ = [good, "/dev/zero", "/dev/urandom", fifo, workdir, sparse, workdir / "missing"]
    cases = []
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        case = {"kind": kind, "file": str(good), "expect": "error"}
        if kind == "file":
            case["expect"] = "ok"
        elif kind == "redirects":
            hops = rng.randrange(9)
            case.update(hops=hops, expect="ok" if hops <= 5 else "error")
        elif kind == "cut":
            case.update(at=rng.randrange(len(data)), expect="ok")  # the resume completes it
        elif kind == "drip":
            case["seconds"] = rng.choice([0.05, 0.1, 0.3])
        elif kind == "stall":
            case["seconds"] = rng.choice([1.5, 5, 60])
        elif kind == "redirect-to":
            case["place"] = rng.choice(PLACES)
            case["expect"] = "ok" if case["place"] == "/files/NAME" else "any"
        elif kind == "status":
            case["code"] = rng.choice([100, 102, 204, 300, 301, 302, 303, 304, 307, 308, 400, 401,
                                       403, 404, 410, 416, 429, 500, 502, 503, 599])  # fmt: skip
            case["expect"] = "any" if case["code"] == 204 else "error"
        elif kind == "416-on-resume":
            case.update(part=rng.choice([1, len(data) - 1, len(data), len(data) + 9]), expect="ok")
        elif kind == "size":
            case["size"] = rng.choice([1, len(data) - 1, len(data), len(data) + 1, 2 << 20])
            case["expect"] = "ok" if len(data) <= case["size"] <= 1 << 20 else "error"
        elif kind == "crafted":
            case.update(file=str(rng.choice(crafted)), expect="any")
        elif kind == "local":
            case.update(path=str(rng.choice(locals_)))
            case["expect"] = "ok" if case["path"] == str(good) else "error"
        cases.append(case)
    return cases


def _crafted(workdir: Path, data: bytes) -> list[Path]:
    """Checkpoints a sha256 cannot tell from good ones (the entry carries their digest)."""
    import torch

    made = {
        "truncated": data[: len(data) // 2],
        "flipped": bytes(b ^ 0xFF if i % 997 == 5 else b for i, b in enumerate(data)),
        "junk": b"<html>mirror login</html>" * 40,
        "empty": b"",
    }
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(4)}, buffer, _use_new_zipfile_serialization=False)
    big = b"J" + struct.pack("<i", 2**28)
    made["legacy-1gib"] = buffer.getvalue().replace(b"cpuq\x06K\x04", b"cpuq\x06" + big, 1)
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for info in source.infolist():
            member = source.read(info.filename)
            if "/data/" in info.filename:  # what torch.load allocates, from the declared size
                archive.writestr(info.filename, member + bytes(64 << 20), zipfile.ZIP_DEFLATED)
            else:
                archive.writestr(info.filename, member)
    made["zip-bomb"] = out.getvalue()
    paths = []
    for name, content in made.items():
        path = workdir / f"crafted-{name}.pth.tar"
        path.write_bytes(content)
        paths.append(path)
    return paths


def prepare_worker() -> None:
    _zoo.prepare_worker()


def check(case: dict) -> str:
    from pku_aigi.errors import PkuAigiError

    path = Path(case["file"])
    data = path.read_bytes()
    name = path.name
    files = {name: data}
    route = {
        "file": f"files/{name}",
        "redirects": f"redirect/{case.get('hops')}/{name}",
        "cut": f"files/{name}",
        "endless": f"endless/{name}",
        "huge": f"huge/{name}",
        "drip": f"drip/{case.get('seconds')}/1000/{name}",
        "stall": f"drip/{case.get('seconds')}/1/{name}",
        "loop": f"loop/{name}",
        "redirect-to": f"to/{quote(case.get('place', '').replace('NAME', name), safe='')}/{name}",
        "status": f"status/{case.get('code')}/{name}",
        "416": f"416/{name}",
        "416-on-resume": f"416-on-resume/{name}",
        "size": f"files/{name}",
        "crafted": f"files/{name}",
    }.get(case["kind"])
    source = case["path"] if case["kind"] == "local" else f"{_zoo.server().url}/{route}"
    extra = {"sha256": hashlib.sha256(data).hexdigest()}
    if "size" in case:
        extra["size"] = case["size"]
    entry = _zoo.entry("fuzz/zoo-download", source, **extra)
    try:
        folder = _fetch(entry, files, case)
    except PkuAigiError:
        return "wrong" if case["expect"] == "ok" else "clean"
    if case["expect"] == "error" or not _zoo.loads_as(folder, entry):
        return "wrong"
    return "clean"


def _fetch(entry: dict, files: dict, case: dict) -> Path:
    from pku_aigi.errors import ModelError
    from pku_aigi.models import zoo

    if case["kind"] == "416-on-resume":  # a part left by an earlier download

        def leave_part():
            folder = zoo.download_folder(entry["repo_id"])
            folder.mkdir(parents=True, exist_ok=True)
            part = folder / (zoo.manifest.source_name(entry) + ".incomplete")
            part.write_bytes(b"\0" * case["part"])

        return _zoo.fetch(entry, files, before=leave_part)
    if case["kind"] != "cut":
        return _zoo.fetch(entry, files)
    try:
        return _zoo.fetch(entry, files, cut=case["at"])
    except ModelError as error:
        if "again to resume" not in str(error):
            raise
    return _zoo.fetch(entry, files, fresh=False)  # the same command again: it resumes
