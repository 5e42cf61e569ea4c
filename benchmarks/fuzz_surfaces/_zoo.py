"""What the zoo surfaces share: a tiny CompressAI checkpoint, a hostile server, a fetch.

Each child runs its own server on 127.0.0.1 (``tests/zoo_server.py``: hostile routes),
and each case fetches through the zoo's own path (:func:`pku_aigi.models.zoo.fetch_source`)
into a fresh Hugging Face cache in the child's temporary folder, which the harness
measures (*over-disk*) and empties after the case. During a fetch, downloads are bounded
small (``PKU_AIGI_MAX_DOWNLOAD_MB=1``, a deadline of 1 s plus 1 s per 100 kB, 1 s read
timeout), so that every case ends within a few seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY = {"N": 8, "M": 8}
ARCH = "bmshj2018-factorized"
# A server without a bound sends this much, above the harness's default --disk-mb.
ENDLESS_CAP = 512 << 20

_server = None
_cache: str | None = None  # the last fetch's cache


def checkpoint_bytes(seed: int = 0) -> bytes:
    """A CompressAI bmshj2018-factorized state dict (N=M=8), as its zoo publishes them."""
    import torch
    from compressai.models import FactorizedPrior

    torch.manual_seed(seed)
    net = FactorizedPrior(**TINY)
    net.update()
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    return buffer.getvalue()


def hashed_name(data: bytes, stem: str = "tiny-prior-1") -> str:
    """``<stem>-<first 8 hex of sha256>.pth.tar``, as CompressAI names its checkpoints."""
    return f"{stem}-{hashlib.sha256(data).hexdigest()[:8]}.pth.tar"


def entry(repo_id: str, source: str, **extra) -> dict:
    return {
        "repo_id": repo_id,
        "architecture": ARCH,
        "quality": 1,
        "metric": "mse",
        "trained_on": "Vimeo-90k",
        "source": source,
        "hparams": dict(TINY),
        **extra,
    }


def prepare_worker() -> None:
    """Import the zoo and the converter, start the server (once per child)."""
    global _server
    if _server is not None:
        return
    import compressai.zoo  # noqa: F401
    import safetensors.torch  # noqa: F401
    import torch  # noqa: F401

    from pku_aigi import models
    from pku_aigi.models.zoo import convert  # noqa: F401

    if str(ROOT / "tests") not in sys.path:
        sys.path.insert(0, str(ROOT / "tests"))
    from zoo_server import ZooServer

    models.create(ARCH, quality=1, **TINY)  # first-use caches
    _server = ZooServer(lifetime=24 * 3600, endless_cap=ENDLESS_CAP).__enter__()


def server():
    return _server


@contextlib.contextmanager
def _bounded(cache: str, zoo_file: Path | None):
    """Small download bounds, ``cache`` as the Hugging Face cache and ``zoo_file`` as
    ``PKU_AIGI_ZOO``, for one fetch (the other surfaces of the child see none of it)."""
    from huggingface_hub import constants

    from pku_aigi import network

    names = ("DEADLINE_BASE_S", "READ_TIMEOUT", "CONNECT_TIMEOUT")
    saved = [getattr(network, name) for name in names], constants.HF_HUB_CACHE
    environ = {"PKU_AIGI_MAX_DOWNLOAD_MB": "1", "PKU_AIGI_ZOO": str(zoo_file or "")}
    saved_environ = {name: os.environ.get(name) for name in environ}
    for name in names:
        setattr(network, name, 1.0)
    constants.HF_HUB_CACHE = cache
    os.environ.update(environ)
    try:
        yield
    finally:
        for name, value in zip(names, saved[0]):
            setattr(network, name, value)
        constants.HF_HUB_CACHE = saved[1]
        for name, value in saved_environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def fetch(
    entry_or_id,
    files: dict[str, bytes],
    *,
    zoo_file: object | None = None,
    cut: int | None = None,
    fresh: bool = True,
    before=None,
) -> Path | None:
    """Fetch a zoo model with the server serving ``files``; the converted folder.

    ``zoo_file``: the PKU_AIGI_ZOO to look ``entry_or_id`` (then a repo id) up in;
    ``cut``: the server cuts the file's next answer after that many bytes; ``fresh``: a
    new cache (else the last one, to resume); ``before``: called once the cache is set.
    """
    import json

    from pku_aigi import network
    from pku_aigi.models import zoo

    global _cache
    _server.files = dict(files)
    _server.cut.clear()
    if cut is not None:
        _server.cut.update({name: cut for name in files})
    network.forget_unreachable()
    if fresh or _cache is None:
        _cache = tempfile.mkdtemp(prefix="zoo-case-")
    path = None
    if zoo_file is not None:
        path = Path(_cache) / "zoo.json"
        path.write_text(json.dumps(zoo_file))
    with _bounded(str(Path(_cache) / "hub"), path):
        if before is not None:
            before()
        if path is None:
            return zoo.fetch_source(entry_or_id)
        found = zoo.find_entry(entry_or_id)
        return None if found is None else zoo.fetch_source(found)


def loads_as(folder: Path, entry: dict) -> bool:
    """Whether ``folder`` loads and holds the architecture and quality ``entry`` names."""
    from pku_aigi import AutoCodec

    model = AutoCodec.from_pretrained(str(folder))
    config = model.config
    return config["architecture"] == entry["architecture"] and config["quality"] == entry["quality"]
