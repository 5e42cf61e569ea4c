"""Fuzz surface ``cli_inputs``: hostile input and output paths of ``pku-aigi compress`` and
``pku-aigi decompress``.

Inputs that are not regular files (a FIFO, /dev/zero, /dev/null, /dev/urandom, a folder,
a socket, links to those, a dangling link, a link loop, /proc/self/mem, /proc/self/environ,
a huge sparse file, a name too long) and hostile outputs (a planted link to another file,
a link to a folder, a dangling link, 250- and 256-character names, a read-only folder, a
FIFO, /dev/null, /proc, a file as the parent). Each case builds its own folder (``case/``
with the paths given to the command, ``outside/`` with the files links point to) and runs
the command in a child process (``python -m pku_aigi``, address space capped at 2 GiB,
killed after :data:`TIMEOUT_S`).

Clean: exit status 2 with one ``pku-aigi COMMAND: error: ...`` line and nothing changed,
or (a valid input and output) exit status 0 with exactly the expected file written and
nothing else changed; ``outside/`` must never change. Anything else raises (unclean).
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import resource
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

SURFACE = "cli_inputs"
TIMEOUT_S = 8.0
MEMORY_CAP = 2 << 30
# (input kind, what happens): "refused" (exit 2) or "valid" (exit 0); "permission": refused
# unless run as root, who reads and writes regardless of permission bits.
INPUTS = {
    "valid": "valid",
    "fifo": "refused",
    "dev-zero": "refused",
    "dev-null": "refused",
    "dev-urandom": "refused",
    "folder": "refused",
    "socket": "refused",
    "link-fifo": "refused",
    "link-zero": "refused",
    "link-folder": "refused",
    "link-dangling": "refused",
    "link-loop": "refused",
    "proc-mem": "refused",
    "proc-environ": "refused",
    "sparse-huge": "refused",
    "sparse-zeros": "refused",
    "long-name": "refused",
    "missing": "refused",
    "unreadable": "permission",
}
# Output kinds for a valid input: as above, or as --force decides ("force").
OUTPUTS = {
    "plain": "valid",
    "exists": "force",
    "link-victim": "force",
    "link-dangling": "valid",
    "link-folder": "refused",
    "name-250": "valid",
    "name-256": "refused",
    "readonly-folder": "permission",
    "fifo": "refused",
    "dev-null": "refused",
    "proc": "refused",
    "parent-is-file": "refused",
    "missing-parent": "refused",
}


def make_cases(rng: random.Random, count: int, workdir: Path) -> list[dict]:
    from PIL import Image

    from pku_aigi import codecs

    seeds = workdir / "seeds"
    seeds.mkdir(exist_ok=True)
    image = Image.new("RGB", (64, 48))
    image.putdata([(x * 4, y * 5, (x * y) % 256) for y in range(48) for x in range(64)])
    image.save(seeds / "photo.png")
    jpeg = codecs.get("jpeg")
    (seeds / "photo.jpg").write_bytes(jpeg.encode(image, 50))
    decoded = jpeg.decode((seeds / "photo.jpg").read_bytes())
    (seeds / "decoded.rgb").write_bytes(decoded.tobytes())
    cases = []
    for _ in range(count):
        command = rng.choice(["compress", "decompress"])
        source = rng.choice(sorted(INPUTS))
        output = rng.choice(sorted(OUTPUTS)) if INPUTS[source] != "refused" else "plain"
        cases.append(
            {
                "kind": f"{command} {source} -> {output}",
                "command": command,
                "input": source,
                "output": output,
                "force": rng.random() < 0.5,
                "seeds": str(seeds),
                "workdir": str(workdir),
            }
        )
    return cases


def _make_input(kind: str, case_dir: Path, outside: Path, seed: Path) -> Path:
    path = case_dir / f"in{seed.suffix}"
    if kind in ("valid", "unreadable"):
        shutil.copyfile(seed, path)
        if kind == "unreadable":
            path.chmod(0)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "socket":
        # AF_UNIX paths are limited to 107 bytes: bind by the name, from its folder
        here = os.getcwd()
        os.chdir(path.parent)
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.bind(path.name)
        finally:
            os.chdir(here)
    elif kind.startswith("dev-") or kind.startswith("proc-"):
        return Path({"dev-zero": "/dev/zero", "dev-null": "/dev/null",
                     "dev-urandom": "/dev/urandom", "proc-mem": "/proc/self/mem",
                     "proc-environ": "/proc/self/environ"}[kind])  # fmt: skip
    elif kind == "link-fifo":
        os.mkfifo(outside / "pipe")
        path.symlink_to(outside / "pipe")
    elif kind == "link-zero":
        path.symlink_to("/dev/zero")
    elif kind == "link-folder":
        path.symlink_to(outside / "folder")
    elif kind == "link-dangling":
        path.symlink_to(outside / "nothing-here")
    elif kind == "link-loop":
        path.symlink_to(case_dir / "loop")
        (case_dir / "loop").symlink_to(path)
    elif kind in ("sparse-huge", "sparse-zeros"):
        with path.open("wb") as file:
            file.truncate(1 << 40 if kind == "sparse-huge" else 10 << 20)
    elif kind == "long-name":
        return case_dir / ("n" * 300 + seed.suffix)
    elif kind == "missing":
        pass
    return path


def _make_output(kind: str, case_dir: Path, outside: Path, suffix: str) -> Path:
    out = case_dir / f"out{suffix}"
    if kind == "exists":
        out.write_bytes(b"an older result")
    elif kind == "link-victim":
        out.symlink_to(outside / "precious.txt")
    elif kind == "link-dangling":
        out.symlink_to(outside / f"new{suffix}")
    elif kind == "link-folder":
        out.symlink_to(outside / "folder")
    elif kind == "name-250":
        out = case_dir / ("a" * (250 - len(suffix)) + suffix)
    elif kind == "name-256":
        out = case_dir / ("b" * (256 - len(suffix)) + suffix)
    elif kind == "readonly-folder":
        (case_dir / "ro").mkdir()
        out = case_dir / "ro" / f"out{suffix}"
        (case_dir / "ro").chmod(0o555)
    elif kind == "fifo":
        os.mkfifo(out)
    elif kind == "dev-null":
        out = Path("/dev/null")
    elif kind == "proc":
        out = Path(f"/proc/pku-aigi-fuzz{suffix}")
    elif kind == "parent-is-file":
        (case_dir / "file").write_bytes(b"x")
        out = case_dir / "file" / f"out{suffix}"
    elif kind == "missing-parent":
        out = case_dir / "no" / "such" / f"out{suffix}"
    return out


def snapshot(folder: Path) -> dict[str, tuple]:
    """What is under ``folder``, links not followed: type, and the bytes of each file."""
    found = {}
    for parent, folders, files in os.walk(folder):
        for name in folders + files:
            path = Path(parent) / name
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode):  # sparse files are large: their size only
                digest = None
                if info.st_size <= 1 << 20:
                    os.chmod(path, info.st_mode | stat.S_IRUSR)
                    digest = hashlib.sha256(path.read_bytes()).hexdigest()
                    os.chmod(path, info.st_mode)
                found[str(path.relative_to(folder))] = ("file", info.st_size, digest)
            elif stat.S_ISLNK(info.st_mode):
                found[str(path.relative_to(folder))] = ("link", os.readlink(path))
            else:
                found[str(path.relative_to(folder))] = (stat.S_IFMT(info.st_mode),)
    return found


def _cap_memory() -> None:
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    cap = MEMORY_CAP if hard == resource.RLIM_INFINITY else min(MEMORY_CAP, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def _expected(case: dict, seeds: Path):
    """A check of the written output: its bytes (compress) or its pixels (decompress)."""
    if case["command"] == "compress":
        expected = (seeds / "photo.jpg").read_bytes()
        return lambda data: data == expected
    expected = (seeds / "decoded.rgb").read_bytes()

    def same_pixels(data: bytes) -> bool:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB").tobytes() == expected

    return same_pixels


def check(case: dict) -> str:
    seeds = Path(case["seeds"])
    command = case["command"]
    seed = seeds / ("photo.png" if command == "compress" else "photo.jpg")
    suffix = ".jpg" if command == "compress" else ".png"
    root = Path(tempfile.mkdtemp(prefix="case-", dir=case["workdir"]))
    case_dir, outside = root / "case", root / "outside"
    try:
        case_dir.mkdir()
        (outside / "folder").mkdir(parents=True)
        (outside / "precious.txt").write_bytes(b"mine")
        source = _make_input(case["input"], case_dir, outside, seed)
        out = _make_output(case["output"], case_dir, outside, suffix)
        before = snapshot(case_dir), snapshot(outside)
        argv = [sys.executable, "-m", "pku_aigi", command, str(source), "-o", str(out)]
        argv += ["--codec", "jpeg", "--quality", "50"] if command == "compress" else []
        argv += ["--force"] if case["force"] else []
        try:
            result = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
                preexec_fn=_cap_memory,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{command} did not finish within {TIMEOUT_S:g} s") from None
        after = snapshot(case_dir), snapshot(outside)
        return _verdict(case, result, out, before, after, _expected(case, seeds), case_dir)
    finally:
        for parent, folders, _ in os.walk(root):
            for name in folders:
                path = Path(parent) / name
                if not path.is_symlink():
                    path.chmod(0o755)
        shutil.rmtree(root, ignore_errors=True)


def _resolve(expect: str, case: dict) -> str:
    if expect == "permission":
        return "valid" if os.geteuid() == 0 else "refused"
    if expect == "force":
        return "valid" if case["force"] else "refused"
    return expect


def _verdict(case, result, out, before, after, written_ok, case_dir) -> str:
    if before[1] != after[1]:
        raise AssertionError(f"changed outside the case folder: {before[1]} -> {after[1]}")
    lines = result.stderr.strip().splitlines()
    expect = _resolve(INPUTS[case["input"]], case)
    if expect == "valid":
        expect = _resolve(OUTPUTS[case["output"]], case)
    if result.returncode == 2:
        prefix = f"pku-aigi {case['command']}: error: "
        if len(lines) != 1 or not lines[0].startswith(prefix):
            raise AssertionError(f"exit 2 without one error line: {result.stderr[-500:]!r}")
        if before[0] != after[0]:
            raise AssertionError(f"refused but changed the case folder: {before[0]} -> {after[0]}")
        return "clean" if expect == "refused" else "wrong"
    if result.returncode != 0:
        raise AssertionError(f"exit status {result.returncode}: {result.stderr[-500:]!r}")
    if expect != "valid":
        return "wrong"  # written although it had to be refused
    if lines or not out.is_file() or out.is_symlink():
        return "wrong"
    changed = {k for k in set(before[0]) | set(after[0]) if before[0].get(k) != after[0].get(k)}
    if changed != {str(out.relative_to(case_dir))}:
        raise AssertionError(f"changed besides the output: {sorted(changed)}")
    return "clean" if written_ok(out.read_bytes()) else "wrong"
