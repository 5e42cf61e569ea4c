"""The same sweep on the local process pool and on a local 2-node Ray cluster.

Runs one sweep (``run_sweep``, as ``pku-aigi bench`` does) four times into fresh
folders: on the process pool with ``--nodes`` worker processes, then through
``RayExecutor`` on a ``ray.cluster_utils.Cluster`` of ``--nodes`` nodes with one CPU
each, twice (a new connection, as the CLI makes, whose workers start and import the
package; and one held across runs, its workers up), then on the pool again (the
order and the load of a shared machine move wall times).
Prints wall time, the encode + decode seconds the measurements took (their sum: on a
shared machine it rises with the load, as the wall time does) and the load average,
the wall ratio of each Ray run to the pool, and what Ray costs per measurement: the extra wall
time per measurement and the round trip of a no-op task that takes an image from the
object store, next to the mean VVC encode of the sweep. Checks that every run gives the
same rows (all but the times). Everything runs on 127.0.0.1 with usage statistics and
the dashboard off; the processes started are ended by id.

    python benchmarks/bench_ray_scaling.py [--crop 256] [--limit 2] [--qualities 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import psutil

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # 127.0.0.1 stays 127.0.0.1

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sweep_parallel import DATA, crop_images, pick  # noqa: E402

from pku_aigi import codecs  # noqa: E402
from pku_aigi.bench import images_from_folder, run_sweep  # noqa: E402
from pku_aigi.bench.ray_executor import RayExecutor, stop_processes  # noqa: E402
from pku_aigi.bench.sweep import CodecRun, ProcessPool  # noqa: E402

TIMES = ("encode_s", "decode_s")


def timed_sweep(images, runs, executor) -> dict:
    with tempfile.TemporaryDirectory() as out:
        load, start = os.getloadavg()[0], time.perf_counter()
        result = run_sweep(images, runs, out, progress=False, executor=executor)
        wall = time.perf_counter() - start
    assert not result.failures, result.failures
    rows = sorted(
        (tuple((k, v) for k, v in row.items() if k not in TIMES) for row in result.rows),
        key=str,
    )
    vvc = [r["encode_s"] for r in result.rows if r["codec"] == "vvc"]
    return {
        "wall": wall,
        "codec": sum(r["encode_s"] + r["decode_s"] for r in result.rows),
        "load": max(load, os.getloadavg()[0]),
        "rows": rows,
        "vvc_encode": sum(vvc) / len(vvc) if vvc else None,
    }


def round_trip(images, tasks: int) -> float:
    """Seconds per no-op Ray task that takes one image from the object store."""
    import ray

    @ray.remote(num_cpus=1)
    def shape(rgb):
        return rgb.shape

    refs = [ray.put(image.rgb) for image in images]
    ray.get([shape.remote(ref) for ref in refs])  # workers up
    start = time.perf_counter()
    ray.get([shape.remote(refs[i % len(refs)]) for i in range(tasks)])
    return (time.perf_counter() - start) / tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA / "pku-examples"))
    parser.add_argument("--crop", type=int, default=256, help="centre crop side in px (0: full)")
    parser.add_argument("--limit", type=int, default=2, help="first N images of each subset")
    parser.add_argument("--qualities", type=int, default=2, help="points per codec")
    parser.add_argument("--codecs", default="jpeg,webp,hevc,vvc")
    parser.add_argument("--nodes", type=int, default=2, help="Ray nodes of one CPU each")
    parser.add_argument("--round-trips", type=int, default=200)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    images = crop_images(images_from_folder(args.data, limit=args.limit), args.crop)
    names = [n.strip() for n in args.codecs.split(",") if n.strip()]
    runs = [
        CodecRun(n, pick(codecs.codec_class(n).default_qualities, args.qualities)) for n in names
    ]
    work = len(images) * sum(len(r.qualities) for r in runs)
    print(f"{len(images)} images ({args.crop}x{args.crop} crops of {args.data}), codecs: "
          + ", ".join(f"{r.name} q={','.join(map(str, r.qualities))}" for r in runs)
          + f"; {work} measurements; {os.cpu_count()} cores; "
          f"load average before: {os.getloadavg()[0]:.1f}")  # fmt: skip

    results = {"pool": timed_sweep(images, runs, ProcessPool(args.nodes))}

    from ray.cluster_utils import Cluster

    before = {p.pid for p in psutil.Process().children(recursive=True)}
    start = time.perf_counter()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False},
    )
    for _ in range(args.nodes - 1):
        cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    started = time.perf_counter() - start
    os.environ["RAY_ADDRESS"] = cluster.address
    try:
        # cold: the executor connects as `pku-aigi bench --executor ray` does, and Ray
        # starts workers for the run (each imports the package)
        results["ray cold"] = timed_sweep(images, runs, RayExecutor())
        # warm: one connection held across runs, its workers already up
        import ray

        ray.init(address=cluster.address, _node_ip_address="127.0.0.1", log_to_driver=False)
        per_task = round_trip(images, args.round_trips)
        timed_sweep(images[:2], runs[:1], RayExecutor())  # the workers import the package
        results["ray warm"] = timed_sweep(images, runs, RayExecutor())
        ray.shutdown()
        results["pool again"] = timed_sweep(images, runs, ProcessPool(args.nodes))
    finally:
        processes = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
        cluster.shutdown()
        stop_processes(processes)

    assert all(r["rows"] == results["pool"]["rows"] for r in results.values()), "rows differ"
    labels = {
        "pool": f"process pool, {args.nodes} workers",
        "pool again": "process pool again (Ray idle)",
        "ray cold": f"Ray, {args.nodes} nodes x 1 CPU, new connection",
        "ray warm": f"Ray, {args.nodes} nodes x 1 CPU, workers up",
    }
    pool = results["pool"]
    print(f"{'':38} {'wall s':>7} {'codec s':>8} {'load':>5}  wall vs pool  extra wall/measurement")
    for name, r in results.items():
        extra = (r["wall"] - pool["wall"]) / work
        print(f"{labels[name]:38} {r['wall']:7.1f} {r['codec']:8.1f} {r['load']:5.1f}"
              f"  {r['wall'] / pool['wall']:11.2f}x  {extra * 1000:+9.0f} ms")  # fmt: skip
    print(f"cluster start (not in the times above): {started:.1f} s; a new connection's "
          f"worker start-up: {results['ray cold']['wall'] - results['ray warm']['wall']:.1f} s "
          "(wall, new connection - workers up)")  # fmt: skip
    vvc = pool["vvc_encode"]
    per_cpu = per_task * args.nodes  # what one task keeps one CPU slot busy
    print(f"Ray round trip of a no-op task taking one image from the object store: "
          f"{per_task * 1000:.1f} ms of wall per task with {args.nodes} CPUs "
          f"({args.round_trips} tasks), {per_cpu * 1000:.1f} ms per task on one CPU")  # fmt: skip
    if vvc:
        print(f"mean VVC encode in this sweep: {vvc:.2f} s; the round trip is "
              f"{100 * per_cpu / vvc:.1f} % of it")  # fmt: skip
    print("rows: identical in all runs (all fields but encode_s/decode_s)")


if __name__ == "__main__":
    main()
