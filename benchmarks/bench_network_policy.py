"""What an unreachable network costs: huggingface_hub's own backoff vs pku-aigi's policy.

Measured side by side, each case in a fresh process (the policy is per process):

1. ``hf_hub_download`` of a repo with the Hub unreachable (a closed port on 127.0.0.1):
   huggingface_hub alone (the reference: 5 retries with backoff) vs after
   ``pku_aigi.network.install()`` (one attempt, then at once).
2. Loading four cached zoo models (mbt2018-mean q1-q4, CompressAI's sizes, random
   weights fetched and converted from a local server first) with ``HF_HUB_OFFLINE=1``
   vs without it and the Hub unreachable.
3. A fully cached ``pku-aigi bench`` (those four models and JPEG on 2 images) with
   ``HF_HUB_OFFLINE=1`` vs without it.
4. Building the demo app (``pku_aigi.space.build_app()``, every zoo family listed) with
   ``HF_HUB_OFFLINE=1`` vs without it.

Run: ``python benchmarks/bench_network_policy.py`` (about 2 minutes). Nothing but
127.0.0.1 is contacted. The machine may be shared: compare the ratios, not the seconds.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from zoo_server import ZooServer  # noqa: E402

IMAGES = ROOT.parent / "shared" / "data" / "pku-examples" / "mj52"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(code_or_argv, env: dict, label: str) -> float:
    argv = code_or_argv if isinstance(code_or_argv, list) else [sys.executable, "-c", code_or_argv]
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 2):
        print(done.stderr[-2000:])
    print(f"  {label:<58} {seconds:6.1f} s  (exit {done.returncode})")
    return seconds


def checkpoints(server: ZooServer, extra_zoo: Path) -> list[str]:
    import torch
    from compressai.models import MeanScaleHyperprior

    entries = []
    for quality in (1, 2, 3, 4):
        torch.manual_seed(quality)
        net = MeanScaleHyperprior(128, 192)
        net.update()
        buffer = io.BytesIO()
        torch.save(net.state_dict(), buffer)
        data = buffer.getvalue()
        name = f"mbt2018-mean-{quality}-{hashlib.sha256(data).hexdigest()[:8]}.pth.tar"
        server.files[name] = data
        entries.append(
            {
                "repo_id": f"bench/mbt2018-mean-mse-q{quality}",
                "architecture": "mbt2018-mean",
                "quality": quality,
                "metric": "mse",
                "trained_on": "random weights (benchmark)",
                "source": f"{server.url}/files/{name}",
            }
        )
    extra_zoo.write_text(json.dumps({"models": entries}))
    return [entry["repo_id"] for entry in entries]


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-network-"))
    base = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE",)}
    base.update(HF_HOME=str(work / "hf"), PKU_AIGI_ZOO=str(work / "zoo.json"))
    base["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + base.get("PYTHONPATH", "")
    unreachable = {**base, "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}"}
    offline = {**unreachable, "HF_HUB_OFFLINE": "1"}

    print("1. hf_hub_download of an uncached repo, Hub unreachable")
    fetch = "from huggingface_hub import hf_hub_download\ntry: hf_hub_download('a/b', 'config.json')\nexcept Exception: pass\n"
    reference = run(fetch, unreachable, "huggingface_hub alone (reference)")
    policy = run(
        "from pku_aigi import network; network.install()\n" + fetch * 3,
        unreachable,
        "with pku_aigi.network.install(), three lookups",
    )
    print(f"  -> {reference / policy:.1f}x faster (the reference sleeps 1+2+4+8+8 s)")

    with ZooServer(lifetime=900) as server:
        ids = checkpoints(server, work / "zoo.json")
        print("2. four zoo models: fetch and convert once, then load from the cache")
        served = {**base, "HF_ENDPOINT": server.url}
        run(
            [sys.executable, "-m", "pku_aigi", "models", "pull", *ids],
            served,
            "models pull (local server)",
        )
    load = "import pku_aigi\n" + "".join(
        f"pku_aigi.AutoCodec.from_pretrained({i!r})\n" for i in ids
    )
    a = run(load, offline, "load 4 cached models, HF_HUB_OFFLINE=1")
    b = run(load, unreachable, "load 4 cached models, online, Hub unreachable")
    print(f"  -> ratio {b / a:.2f}")

    print("3. pku-aigi bench, fully cached (2 images, JPEG + 4 zoo models)")
    models = [arg for repo in ids for arg in ("--model", repo)]
    bench = [
        sys.executable,
        "-m",
        "pku_aigi",
        "bench",
        "--images",
        str(IMAGES),
        "--limit",
        "2",
        "--codecs",
        "jpeg",
        *models,
        "--anchor",
        "jpeg",
        "--no-progress",
        "--force",
    ]
    a = run(bench + ["--out", str(work / "b1")], offline, "bench, HF_HUB_OFFLINE=1")
    b = run(bench + ["--out", str(work / "b2")], unreachable, "bench, online, Hub unreachable")
    print(f"  -> ratio {b / a:.2f}")

    print("4. the demo app (every zoo family listed), built")
    demo = "import time; t = time.perf_counter(); import pku_aigi.space as d; d.build_app(); print(time.perf_counter() - t)"
    a = run(demo, offline, "build_app, HF_HUB_OFFLINE=1")
    b = run(demo, unreachable, "build_app, online, Hub unreachable")
    print(f"  -> ratio {b / a:.2f}")


if __name__ == "__main__":
    main()
