"""Fuzz surface ``space_http``: the Space's HTTP API, as any client on the network sees it.

Each worker launches the real app (``pku_aigi.space.build_app``, the launch options of
``space/app.py``) in a child process bound to 127.0.0.1 on a free port, with a models
folder holding one tiny learned model (bmshj2018-factorized, N=M=16), its uploads and
request folders under the fuzz run's folder; the server is stopped by its process id
when the worker ends (and dies with the worker: ``PR_SET_PDEATHSIG``).

Cases upload files through ``/gradio_api/upload`` under hostile names (path traversal,
250 characters, control characters, empty) and call the endpoints through
``/gradio_api/call/<name>``: the Decode tab with valid streams of every codec, streams
declaring huge images (a 5 KB JPEG 2000 of 8000x8000, a JPEG XL header of 8000x8000,
HEVC and VVC of 4000x3000, a JPEG of 8000x8000, WebP and AVIF headers patched to
8000x8000) and mutants (truncated, flipped, spliced); the upload check and Compress with
crafted images (a 30000x30000 PNG bomb, 9 MP, text, empty) and with wrong values for
each field; and raw requests: a body above the upload limit, invalid JSON, missing
fields, wrong types, server paths, ``/gradio_api/file=`` of files outside the app.

Clean: an HTTP 4xx with a message, an ``event: error`` with a message (never ``null``),
or the right result (a valid stream decodes to exactly its pixels, served at the URL
the answer gives; an upload lands inside gradio's upload folder); and the server still
answers afterwards. Decoding an image above the Space's limit, or serving a file outside
the app, is *wrong*; a 5xx, a silent error, a dead server or an answer over
:data:`REQUEST_TIMEOUT_S` raises (unclean).
"""

from __future__ import annotations

import atexit
import hashlib
import io
import json
import logging
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from ._bombs import zlib_zeros

SURFACE = "space_http"
DIR_ENV = "PKU_AIGI_FUZZ_SPACE_DIR"  # set by make_cases: the workers' servers live there
MODEL_REPO = "local/tiny-factorized-q1"
MAX_PIXELS = 2048 * 2048  # the Space's default limit
REQUEST_TIMEOUT_S = 8.0
STARTUP_TIMEOUT_S = 240.0
FILE_META = {"_type": "gradio.FileData"}
LAUNCH = """
import os, signal, sys
from pku_aigi.space import build_app
from pku_aigi.space.limits import launch_options
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # exit: the session folder goes too
demo = build_app()
demo.launch(server_name="127.0.0.1", server_port=int(sys.argv[1]), prevent_thread_lock=True,
            quiet=True, **launch_options())
with open(sys.argv[2] + ".part", "w") as file:
    file.write(demo.local_url)
os.replace(sys.argv[2] + ".part", sys.argv[2])
demo.block_thread()
"""
HOSTILE_NAMES = (
    "../../../../tmp/evil{ext}",
    "..\\..\\evil{ext}",
    "a/b/../../../evil{ext}",
    "%2e%2e%2fevil{ext}",
    "/etc/evil{ext}",
    "x" * 246 + "{ext}",
    "line\nbreak{ext}",
    "nul\x00byte{ext}",
    "ünï日本{ext}",
    "{ext}",
    "",
)


# ---------------------------------------------------------------- seeds (parent process)


def _image(width: int = 64, height: int = 48):
    from PIL import Image

    image = Image.new("RGB", (width, height))
    image.putdata(
        [(x * 4 % 256, y * 5 % 256, (x * y) % 256) for y in range(height) for x in range(width)]
    )
    return image


def _rgb_digest(image) -> str:
    return hashlib.sha256(image.convert("RGB").tobytes() + repr(image.size).encode()).hexdigest()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    import zlib

    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _grey_png(width: int, height: int) -> bytes:
    """A real 8-bit grey PNG of black pixels (IDAT: deflated zeros)."""
    ihdr = struct.pack(">2I5B", width, height, 8, 0, 0, 0, 0)
    idat = zlib_zeros(height * (width + 1))
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _jxl_declaring(data: bytes, width: int, height: int) -> bytes:
    """A bare JPEG XL codestream whose SizeHeader (ISO/IEC 18181-1) is replaced by one
    declaring ``width`` x ``height``, the bits after it shifted along."""
    bits = [(byte >> i) & 1 for byte in data[2:] for i in range(8)]  # least significant first

    def number(at: int, count: int) -> int:
        return sum(bit << i for i, bit in enumerate(bits[at : at + count]))

    at = 1
    small = bits[0]
    for side in range(2):
        if small:
            at += 5
        else:
            at += 2 + (9, 13, 18, 30)[number(at, 2)]
        if side == 0:
            ratio = number(at, 3)
            at += 3
            if ratio:
                break

    def u32(value: int) -> list[int]:  # selector 3: 30 bits of value - 1
        return [1, 1] + [((value - 1) >> i) & 1 for i in range(30)]

    stream = [0] + u32(height) + [0, 0, 0] + u32(width) + bits[at:]  # not small, ratio 0
    return b"\xff\x0a" + bytes(
        sum(bit << i for i, bit in enumerate(stream[k : k + 8])) for k in range(0, len(stream), 8)
    )


def build_seeds(workdir: Path) -> dict:
    """Files and expectations, made once: ``{name: {"path", "expect", "digest"?}}``."""
    index = workdir / "seeds" / "index.json"
    if index.is_file():
        return json.loads(index.read_text())
    import numpy as np
    import torch
    from PIL import Image

    from pku_aigi import codecs, models
    from pku_aigi.codecs.families import discover_families

    folder = workdir / "seeds"
    folder.mkdir(parents=True, exist_ok=True)
    seeds = {}

    def add(name: str, data: bytes, expect: str, digest: str | None = None) -> None:
        (folder / name).write_bytes(data)
        seeds[name] = {"path": str(folder / name), "expect": expect, "digest": digest}

    image = _image()
    for name in ("jpeg", "webp", "jpeg2000", "avif", "jpegxl", "hevc", "vvc"):
        codec = codecs.get(name, **({"preset": "faster"} if name == "vvc" else {}))
        data = codec.encode(image, codec.ladder.at_level(50))
        add(f"valid{codec.file_extension}", data, "image", _rgb_digest(codec.decode(data)))
    torch.manual_seed(0)
    models.create("bmshj2018-factorized", quality=1, N=16, M=16).save_pretrained(
        workdir / "models" / MODEL_REPO
    )
    logging.disable(logging.WARNING)  # the zoo's models missing offline: expected
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script in CompressAI
            family = discover_families(workdir / "models")["bmshj2018-factorized (mse)"]
    finally:
        logging.disable(logging.NOTSET)
    data = family.encode(image, 1)
    add("valid.aigic", data, "image", _rgb_digest(family.decode(data)))

    # huge declared sizes: refused from the header, in milliseconds
    buffer = io.BytesIO()
    Image.new("L", (8000, 8000)).save(
        buffer, "JPEG2000", no_jp2=True, irreversible=True, quality_mode="rates",
        quality_layers=[5000.0], num_resolutions=6, tile_size=(1024, 1024),
    )  # fmt: skip
    add("big-8000.j2k", buffer.getvalue(), "too-large")
    buffer = io.BytesIO()
    Image.new("L", (8000, 8000)).save(buffer, "JPEG", quality=1)
    add("big-8000.jpg", buffer.getvalue(), "too-large")
    small_jxl = (folder / "valid.jxl").read_bytes()
    add("big-8000.jxl", _jxl_declaring(small_jxl, 8000, 8000), "too-large")
    for name, preset in (("hevc", "ultrafast"), ("vvc", "faster")):
        codec = codecs.get(name, preset=preset)
        add(f"big-4000x3000{codec.file_extension}", codec.encode(
            Image.new("RGB", (4000, 3000), (30, 60, 90)), codec.ladder.spread(2)[0]
        ), "too-large")  # fmt: skip
    webp = bytearray((folder / "valid.webp").read_bytes())
    struct.pack_into("<2H", webp, 26, 8000, 8000)  # VP8 frame header: 14-bit sizes
    add("big-8000.webp", bytes(webp), "refused")
    avif = bytearray((folder / "valid.avif").read_bytes())
    at = avif.find(b"ispe")
    struct.pack_into(">2I", avif, at + 8, 8000, 8000)
    add("big-8000.avif", bytes(avif), "refused")
    # uploads for the Compress tab
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    add("photo.png", buffer.getvalue(), "image", _rgb_digest(image))
    add("bomb-30000.png", _grey_png(30000, 30000), "refused")
    add("big-3000.png", _grey_png(3000, 3000), "refused")  # 9 MP: above the limit
    add("text.png", b"not an image at all\n" * 20, "refused")
    add("empty.jpg", b"", "refused")
    add("random.bin", np.random.default_rng(0).bytes(3000), "refused")
    index.write_text(json.dumps(seeds))
    return seeds


def _mutant(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    out = bytearray(data)
    roll = rng.random()
    if roll < 0.35 and out:
        return "truncate", bytes(out[: rng.randrange(len(out))])
    if roll < 0.75 and out:
        for _ in range(rng.randint(1, 6)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        return "flip", bytes(out)
    at = rng.randrange(len(out) + 1)
    out[at:at] = rng.randbytes(rng.choice([1, 8, 100]))
    return "insert", bytes(out)


def make_cases(rng: random.Random, count: int, workdir: Path) -> list[dict]:
    seeds = build_seeds(workdir)
    os.environ[DIR_ENV] = str(workdir)  # inherited by the workers (started after this)
    made = workdir / "cases"
    made.mkdir(exist_ok=True)
    streams = sorted(n for n in seeds if n.startswith(("valid", "big-8000", "big-4000")))
    uploads = ["photo.png", "bomb-30000.png", "big-3000.png", "text.png", "empty.jpg"]
    cases = []
    for i in range(count):
        roll = rng.random()
        name_roll = rng.random()
        case: dict = {"workdir": str(workdir)}
        if roll < 0.45:  # the Decode tab
            name = rng.choice(streams + ["text.png", "random.bin", "empty.jpg"])
            seed = seeds[name]
            path, expect, digest = seed["path"], seed["expect"], seed["digest"]
            kind = f"decode {name}"
            if name.startswith("valid") and rng.random() < 0.5:
                mutation, data = _mutant(rng, Path(path).read_bytes())
                path = str(made / f"{i:05d}{Path(name).suffix}")
                Path(path).write_bytes(data)
                expect, digest, kind = "any", None, f"decode {mutation} {name}"
            case.update(action="decode", file=path, expect=expect, digest=digest)
        elif roll < 0.6:  # the upload check
            name = rng.choice(uploads)
            case.update(action="on_upload", file=seeds[name]["path"], expect=seeds[name]["expect"])
            kind = f"on_upload {name}"
        elif roll < 0.75:  # Compress, with good or bad values
            name = rng.choice(uploads[:2] + ["photo.png"] * 3)
            keys = rng.sample(["jpeg", "webp", "jpeg2000", "avif", "jpegxl", "hevc"], 2)
            keys += ["bmshj2018-factorized (mse)"] if rng.random() < 0.3 else []
            fields = {"keys": keys, "mode": "Quality level", "level": rng.choice([0, 50, 100])}
            field = rng.choice(["none", "none", "keys", "mode", "level", "target", "prompt"])
            bad = {
                "none": {},
                "keys": {"keys": rng.choice([[], ["nope"], "jpeg", [1], None])},
                "mode": {"mode": rng.choice(["", "Target bpp", 7, None])},
                "level": {"level": rng.choice([-1, 1e9, "abc", None, float("nan")])},
                "target": {"mode": "Target bpp", "target": rng.choice([0, -1, 1e-9, "x", None])},
                "prompt": {"prompt": rng.choice(["x" * 100_000, 5, "\x00\ud800"])},
            }[field]
            fields.update(bad)
            expect = "any" if field != "none" or name != "photo.png" else "rows"
            case.update(action="compress", file=seeds[name]["path"], fields=fields, expect=expect)
            kind = f"compress {name} {field}"
        else:  # raw requests
            raw = rng.choice(
                ["oversized", "bad-json", "no-data", "wrong-type", "server-path", "file-url",
                 "unknown-endpoint", "no-files", "too-many-values", "traversal-url"]
            )  # fmt: skip
            case.update(action="raw", raw=raw, pick=rng.randrange(1 << 16))
            kind = f"raw {raw}"
        if case["action"] != "raw" and name_roll < 0.3:
            hostile = rng.choice(HOSTILE_NAMES)
            case["upload_name"] = hostile.format(ext=Path(case["file"]).suffix)
            kind += " (hostile name)"
        case["kind"] = kind
        cases.append(case)
    return cases


# ---------------------------------------------------------------- the server (worker)

_server: dict = {}


def _die_with_parent() -> None:
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server() -> None:
    """Launch the Space app in a child process and wait until it answers."""
    base = Path(os.environ.get(DIR_ENV) or tempfile.gettempdir())
    home = Path(tempfile.mkdtemp(prefix="server-", dir=base))
    (home / "gradio").mkdir()
    models = base / "models"
    env = {
        **os.environ,
        "TMPDIR": str(home),  # the Space's session folder lands here
        "GRADIO_TEMP_DIR": str(home / "gradio"),  # and the uploads here
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "PKU_AIGI_MODELS_DIR": str(models if models.is_dir() else home),
        "PKU_AIGI_CLIP_MODEL": str(home / "no-clip-model"),
        "OMP_NUM_THREADS": "1",
    }
    url_file = home / "url"
    process = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, str(_free_port()), str(url_file)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not url_file.is_file():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the Space did not start (exit status {process.poll()})")
        time.sleep(0.2)
    import httpx

    _server.update(
        process=process,
        home=home,
        uploads=os.path.realpath(home / "gradio"),
        client=httpx.Client(
            base_url=url_file.read_text().rstrip("/"),
            timeout=REQUEST_TIMEOUT_S,
            limits=httpx.Limits(max_keepalive_connections=0),  # never a connection uvicorn closed
        ),
    )


def stop_server() -> None:
    """Stop the server by its process id (SIGTERM, then SIGKILL)."""
    process = _server.pop("process", None)
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def prepare_worker() -> None:
    import httpx  # noqa: F401 - before the memory cap
    from PIL import Image  # noqa: F401

    start_server()
    atexit.register(stop_server)


# ---------------------------------------------------------------- requests


def _message(text: str) -> str:
    text = (text or "").strip()
    if not text or text in ("null", "None", "{}"):
        raise AssertionError(f"an error without a message: {text!r}")
    if "root:x:0:0" in text:
        raise AssertionError("the answer holds /etc/passwd")
    return text


def _answer(response) -> tuple[str, object]:
    """("refused", message) for a 4xx, or raise for a 5xx."""
    if response.status_code >= 500:
        raise AssertionError(f"HTTP {response.status_code}: {response.text[:300]}")
    return "refused", _message(response.text)


def _call(api: str, data) -> tuple[str, object]:
    """("done", output values) or ("refused", message) of one API call."""
    client = _server["client"]
    body = json.dumps({"data": data}).encode()  # also NaN and lone surrogates, escaped
    headers = {"content-type": "application/json"}
    response = client.post(f"/gradio_api/call/{api}", content=body, headers=headers)
    if response.status_code != 200:
        return _answer(response)
    event = response.json()["event_id"]
    stream = client.get(f"/gradio_api/call/{api}/{event}")
    if stream.status_code != 200:
        return _answer(stream)
    kind = payload = None
    for line in stream.text.splitlines():
        if line.startswith("event: "):
            kind = line[7:].strip()
        elif line.startswith("data: ") and kind in ("complete", "error"):
            payload = line[6:]
    if kind == "complete":
        return "done", json.loads(payload)
    if kind == "error":
        error = json.loads(payload)
        return "refused", _message(error.get("error") if isinstance(error, dict) else str(error))
    raise AssertionError(f"{api}: no result or error in {stream.text[-300:]!r}")


def _upload(path: str, name: str | None) -> tuple[str, object]:
    """("done", server path) or ("refused", message); the server path must lie in the
    upload folder."""
    data = Path(path).read_bytes()
    response = _server["client"].post(
        "/gradio_api/upload", files={"files": (name if name is not None else Path(path).name, data)}
    )
    if response.status_code != 200:
        return _answer(response)
    server_path = response.json()[0]
    if not os.path.realpath(server_path).startswith(_server["uploads"] + os.sep):
        raise AssertionError(f"an upload named {name!r} was stored at {server_path}")
    return "done", server_path


def _fetch_image(value):
    """The image a FileData answer points to, fetched by its URL (as a browser would)."""
    from PIL import Image

    response = _server["client"].get(value["url"])
    if response.status_code != 200:
        raise AssertionError(f"the result {value['url']} is not served: {response.status_code}")
    with Image.open(io.BytesIO(response.content)) as image:
        image.load()
        return image.copy()


def _raw(kind: str, pick: int) -> tuple[str, object]:
    client = _server["client"]
    if kind == "oversized":  # above PKU_AIGI_DEMO_MAX_UPLOAD (25 MB)
        response = client.post("/gradio_api/upload", files={"files": ("big.bin", bytes(26 << 20))})
    elif kind == "bad-json":
        headers = {"content-type": "application/json"}
        response = client.post("/gradio_api/call/decode", content=b"{not json", headers=headers)
    elif kind == "no-data":
        response = client.post("/gradio_api/call/decode", json={})
    elif kind == "no-files":
        response = client.post("/gradio_api/upload", files={"other": ("a.png", b"x")})
    elif kind == "wrong-type":
        values = [123, "text", [1, 2], {"path": 5}, {"path": "x", "meta": {"_type": "other"}}]
        return _call("decode", [values[pick % len(values)]])
    elif kind == "too-many-values":
        return _call("decode", [None, None, None])
    elif kind == "server-path":
        paths = ["/etc/passwd", "/proc/self/environ", os.path.abspath(__file__), "../../x"]
        path = paths[pick % len(paths)]
        return _call("decode", [{"path": path, "meta": FILE_META}])
    elif kind == "unknown-endpoint":
        return _call("no_such_endpoint", [])
    elif kind in ("file-url", "traversal-url"):
        target = "/etc/passwd" if kind == "file-url" else "../../../../../../etc/passwd"
        response = client.get(f"/gradio_api/file={target}")
        if response.status_code == 200:
            return "leak", response.text
    return _answer(response) if response.status_code != 200 else ("done", response.text)


def _alive() -> None:
    process = _server["process"]
    if process.poll() is not None:
        raise AssertionError(f"the Space died (exit status {process.returncode})")
    if _server["client"].get("/gradio_api/info").status_code != 200:
        raise AssertionError("the Space no longer answers")


def check(case: dict) -> str:
    import httpx

    if _server.get("process") is None or _server["process"].poll() is not None:
        start_server()  # after a crash reported by the previous case
    try:
        verdict = _run(case)
    except httpx.TimeoutException:
        raise AssertionError(f"no answer within {REQUEST_TIMEOUT_S:g} s") from None
    _alive()
    return verdict


def _run(case: dict) -> str:
    action = case["action"]
    if action == "raw":
        outcome, value = _raw(case["raw"], case["pick"])
        if outcome == "leak":
            return "wrong"
        return "clean"  # refused with a message, or a harmless answer
    outcome, server_path = _upload(case["file"], case.get("upload_name"))
    if outcome == "refused":
        return "clean"
    file = {"path": server_path, "meta": FILE_META}
    expect = case["expect"]
    if action == "decode":
        outcome, value = _call("decode", [file])
        if outcome == "refused":
            if expect == "too-large" and "megapixels" not in value:
                raise AssertionError(f"refused without naming the limit: {value[:300]}")
            return "clean" if expect != "image" else "wrong"
        if expect in ("too-large", "refused"):
            return "wrong"
        image = _fetch_image(value[0])
        if image.width * image.height > MAX_PIXELS:
            return "wrong"
        return "clean" if expect == "any" or _rgb_digest(image) == case["digest"] else "wrong"
    if action == "on_upload":
        outcome, value = _call("check_image", [file])
        if outcome == "refused":
            return "clean" if expect != "image" else "wrong"
        notes = value[1]
        if expect == "image":
            return "clean" if "ready to compress" in notes else "wrong"
        return "clean" if notes.startswith("**Cannot use this file:**") else "wrong"
    fields = case["fields"]
    data = [file, fields.get("prompt", ""), fields["keys"], fields["mode"], fields["level"],
            fields.get("target")]  # fmt: skip
    outcome, value = _call("compress", data)
    if outcome == "refused":
        return "clean" if expect != "rows" else "wrong"
    rows = value[2]["data"] if isinstance(value[2], dict) else value[2]
    if expect == "rows" and not {row[0] for row in rows} <= set(fields["keys"]):
        return "wrong"
    _fetch_image(value[0][1])  # the reconstruction is served
    return "clean"
