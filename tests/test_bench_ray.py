"""`pku-aigi bench --executor ray` on Ray's multi-node simulation: two nodes of one CPU
on 127.0.0.1 (``ray.cluster_utils.Cluster``), real codecs, the same rows as a local run,
retries of a killed worker's measurement, traffic on loopback only."""

from __future__ import annotations

import csv
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from pku_aigi.bench import images_from_folder, run_sweep
from pku_aigi.bench.sweep import CACHE_FILE, CodecRun
from pku_aigi.cli import main

ray = pytest.importorskip("ray", reason="needs Ray: pip install 'pku-aigi[ray]'")
psutil = pytest.importorskip("psutil")

from pku_aigi.bench.ray_executor import RayExecutor, stop_processes  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src"
TIMES = ("encode_s", "decode_s")  # the only columns that differ between two runs

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Two codecs for the retry test, installed as a plugin (entry points) for the driver
# and the cluster's workers: JPEG whose worker kills itself on the first attempt of each
# measurement, and JPEG that always raises. Each attempt is logged with the worker's
# thread settings.
PLUGIN = """
import hashlib, json, os, signal
from pathlib import Path

import torch

from pku_aigi.codecs.pillow_codecs import JpegCodec
from pku_aigi.codecs.threads import codec_threads
from pku_aigi.errors import CodecError

HERE = Path(__file__).parent


def attempt(codec, image, quality):
    key = f"{codec}-{hashlib.sha256(image.tobytes()).hexdigest()[:12]}-{quality}"
    with open(HERE / "attempts.jsonl", "a") as log:
        log.write(json.dumps({"key": key, "pid": os.getpid(), "torch": torch.get_num_threads(),
                              "codec_threads": codec_threads(),
                              "omp": os.environ.get("OMP_NUM_THREADS")}) + "\\n")
    return HERE / f"{key}.crashed"


class CrashOnce(JpegCodec):
    name = "crash-once"
    aliases = ()
    signatures = ()

    def encode(self, image, quality, *, prompt=None):
        marker = attempt(self.name, image, quality)
        if not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return super().encode(image, quality, prompt=prompt)


class AlwaysFails(JpegCodec):
    name = "always-fails"
    aliases = ()
    signatures = ()

    def encode(self, image, quality, *, prompt=None):
        attempt(self.name, image, quality)
        raise CodecError("always-fails refuses every image")
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site = tmp_path_factory.mktemp("ray-site")
    info = site / "aigi_flaky-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: aigi-flaky\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[pku_aigi.codecs]\ncrash-once = aigi_flaky:CrashOnce\n"
        "always-fails = aigi_flaky:AlwaysFails\n"
    )
    (site / "aigi_flaky.py").write_text(PLUGIN)
    return site


def descendants() -> list:
    return psutil.Process().children(recursive=True)


@pytest.fixture(scope="module")
def cluster(site):
    """Two Ray nodes of one CPU each, on 127.0.0.1, stopped (by pid) after the module."""
    from ray.cluster_utils import Cluster

    before = {p.pid for p in descendants()}
    saved = {name: os.environ.get(name) for name in ("PYTHONPATH", "RAY_USAGE_STATS_ENABLED")}
    # The Ray processes inherit this environment: the workers import this checkout and
    # the plugin above.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(site), str(SRC), *filter(None, [saved["PYTHONPATH"]])]
    )
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    cluster = None
    try:
        cluster = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 1,
                "node_ip_address": "127.0.0.1",
                "include_dashboard": False,
            },
        )
        cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
        yield cluster
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        started = [p for p in descendants() if p.pid not in before]
        if cluster is not None:
            cluster.shutdown()
        stop_processes(started)  # whatever shutdown left, by process id
        assert not [p.pid for p in started if p.is_running() and p.status() != "zombie"]


@pytest.fixture
def on_cluster(cluster, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", cluster.address)
    return cluster


@pytest.fixture(scope="module")
def folder(pku_examples, tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    for subset in ("sd21b", "mod"):
        (root / subset).mkdir()
        with Image.open(pku_examples / subset / "1.png") as image:
            image.convert("RGB").crop((0, 0, 192, 176)).save(root / subset / "1.png")
    return root


def bench_argv(folder, out, *extra):
    return ["bench", "--images", str(folder), "--codecs", "jpeg,webp,hevc", "--anchor", "jpeg",
            "--qualities", "jpeg=20,80", "--qualities", "webp=50", "--qualities", "hevc=37",
            "--out", str(out), "--no-progress", *extra]  # fmt: skip


def csv_rows(out: Path) -> list[dict]:
    with (out / "measurements.csv").open() as file:
        return [{k: v for k, v in row.items() if k not in TIMES} for row in csv.DictReader(file)]


def dry_run_to_make(capsys, argv) -> int:
    assert main([*argv, "--dry-run"]) == 0
    total = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("total:"))
    return int(total.split(", ")[-1].split()[0])  # "total: N measurements, C cached, M to make"


def test_rows_on_two_ray_nodes_equal_a_local_run_and_resume_either_way(
    on_cluster, folder, tmp_path, capsys
):
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    assert main(bench_argv(folder, local, "--workers", "2")) == 0
    assert dry_run_to_make(capsys, bench_argv(folder, on_ray, "--executor", "ray")) == 8
    assert main(bench_argv(folder, on_ray, "--executor", "ray")) == 0
    assert "bench: 8 measurements (8 new)" in capsys.readouterr().out
    rows = csv_rows(on_ray)
    assert len(rows) == 2 * 4 and {r["codec"] for r in rows} == {"jpeg", "webp", "hevc"}
    assert rows == csv_rows(local)  # bytes, PSNR, MS-SSIM, versions: all but the times
    report = (on_ray / "report.md").read_text()
    assert f"executor (conventional codecs)**: Ray at {on_cluster.address}, 2 CPUs on 2 nodes" in (
        report
    )

    # An interrupted Ray run resumes locally, and a local one on Ray.
    cache = on_ray / CACHE_FILE
    lines = cache.read_text().splitlines(keepends=True)
    cache.write_text("".join(lines[:5]))
    assert dry_run_to_make(capsys, bench_argv(folder, on_ray)) == 3
    assert main(bench_argv(folder, on_ray, "--workers", "2")) == 0
    assert "bench: 8 measurements (3 new)" in capsys.readouterr().out
    cache.write_text("".join(lines[:2]))
    assert main(bench_argv(folder, on_ray, "--executor", "ray")) == 0
    assert "bench: 8 measurements (6 new)" in capsys.readouterr().out
    assert csv_rows(on_ray) == csv_rows(local)


def test_a_killed_worker_is_retried_and_a_measurement_failing_twice_is_reported(
    on_cluster, site, folder, tmp_path
):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "pku_aigi.cli", "bench", "--images", str(folder),
               "--codecs", "jpeg,crash-once,always-fails", "--anchor", "jpeg",
               "--qualities", "jpeg=50", "--qualities", "crash-once=50",
               "--qualities", "always-fails=50", "--out", str(out), "--no-progress",
               "--executor", "ray"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{SRC}"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 1, done.stderr  # measurements failed; the run finished
    rows = {(r["codec"], r["image"]): r for r in csv_rows(out)}
    images = ["mod/1.png", "sd21b/1.png"]
    assert sorted(rows) == sorted((c, i) for c in ("jpeg", "crash-once") for i in images)
    for image in images:  # the retried measurement is the one its worker never finished
        crashed, jpeg = rows[("crash-once", image)], rows[("jpeg", image)]
        assert (crashed["bytes"], crashed["psnr"]) == (jpeg["bytes"], jpeg["psnr"])
    notes = [line for line in done.stdout.splitlines() if line.startswith("note: ")]
    for image in images:
        assert any(
            f"retried once after a failure: crash-once q=50 on {image}: WorkerCrashedError" in n
            for n in notes
        ), notes
        assert (
            f"note: failed: always-fails q=50 on {image}: CodecError: always-fails refuses "
            "every image" in notes
        )
    attempts = [json.loads(line) for line in (site / "attempts.jsonl").read_text().splitlines()]
    per_key: dict[str, int] = {}
    for attempt in attempts:
        per_key[attempt["key"]] = per_key.get(attempt["key"], 0) + 1
    assert sorted(per_key.values()) == [2, 2, 2, 2]  # each measurement: tried, tried again
    assert len({a["pid"] for a in attempts if a["key"].startswith("crash-once")}) >= 3
    # every worker ran torch and the codec libraries at one thread
    assert {(a["torch"], a["codec_threads"], a["omp"]) for a in attempts} == {(1, 1, "1")}


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    return ip.is_loopback or bool(getattr(ip, "ipv4_mapped", None) and ip.ipv4_mapped.is_loopback)


def ray_sockets() -> list[tuple[int, str, str]]:
    """(pid, local address, peer address) of every TCP socket of this process and its
    descendants (the cluster's processes and workers), from ``ss -tanp`` (psutil where
    ss is missing); a listening socket's peer is its own address."""
    pids = {os.getpid(), *(p.pid for p in descendants())}
    found = []
    if shutil.which("ss"):
        lines = subprocess.run(["ss", "-tanpH"], capture_output=True, text=True).stdout
        for line in lines.splitlines():
            state, _, _, local, peer, *_ = line.split()
            local, peer = (a.rsplit(":", 1)[0].strip("[]") for a in (local, peer))
            owners = {int(part[4:]) for part in line.split(",") if part.startswith("pid=")}
            found += [(pid, local, local if state == "LISTEN" else peer) for pid in owners & pids]
        return found
    for pid in pids:
        try:
            connections = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.Error:  # ended meanwhile
            continue
        for conn in connections:
            found.append((pid, conn.laddr.ip, conn.raddr.ip if conn.raddr else conn.laddr.ip))
    return found


def test_ray_traffic_stays_on_loopback(on_cluster, folder, tmp_path):
    seen: list = []
    executor = RayExecutor()
    images = images_from_folder(folder)
    runs = [CodecRun("jpeg", (30, 60)), CodecRun("webp", (40,))]

    def during(row):
        if not seen:
            seen.extend(ray_sockets())

    result = run_sweep(images, runs, tmp_path, progress=False, on_row=during, executor=executor)
    assert result.measured == 6 and not result.failures
    assert len(seen) > 4  # the driver, raylets, GCS and workers talking
    assert [s for s in seen if not (is_loopback(s[1]) and is_loopback(s[2]))] == []


def test_a_local_ray_starts_on_loopback_and_its_processes_end(folder, tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    environment = dict(os.environ)
    before = {p.pid for p in descendants()}
    started: list = []
    seen: list = []

    def during(row):
        if not started:
            started.extend(p for p in descendants() if p.pid not in before)
            commands.extend(" ".join(p.cmdline()) for p in started)
            seen.extend(ray_sockets())

    commands: list[str] = []
    executor = RayExecutor(max_in_flight=1)
    images = images_from_folder(folder)
    result = run_sweep(
        images, [CodecRun("jpeg", (40,))], tmp_path, progress=False, on_row=during,
        executor=executor,
    )  # fmt: skip
    assert result.measured == 2 and not result.failures
    assert executor.describe() == "a local Ray, 1 CPU on 1 node"
    assert any("gcs_server" in c for c in commands) and any("raylet" in c for c in commands)
    assert seen and [s for s in seen if not (is_loopback(s[1]) and is_loopback(s[2]))] == []
    alive = [p.pid for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == []  # GCS, raylet, workers: all ended
    assert dict(os.environ) == environment  # Ray's settings undone


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("127.0.0.1:{free}", "cannot reach Ray at 127.0.0.1:{free} (Connection refused)"),
        ("head-node", "RAY_ADDRESS 'head-node': expected HOST:PORT"),
    ],
)
def test_a_ray_address_that_cannot_work_is_one_clear_error(
    folder, tmp_path, capsys, monkeypatch, address, message
):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    monkeypatch.setenv("RAY_ADDRESS", address.format(free=free))
    out = tmp_path / "out"
    assert main(bench_argv(folder, out, "--executor", "ray")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pku-aigi bench: error: " + message.format(free=free))
    assert len(err.splitlines()) == 1 and not out.exists()  # at once, before any work
