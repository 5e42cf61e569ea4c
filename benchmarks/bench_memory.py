"""Peak memory and s/MP on large images: our learned codecs vs CompressAI's own functions.

For each architecture and image size, four fresh child processes each do one thing
and report their own peak RSS (``ru_maxrss``: the whole process, Python and torch
included) and the seconds of that one call:

- ours: ``LearnedCodec.encode`` (PIL image in, .aigic bytes out) and ``decode``;
- CompressAI: the model's ``compress`` (padded float tensor in, as
  ``compressai.utils.eval_model`` feeds it) and ``decompress``.

The image is a real PKU-AIGI-500K sample tiled to the size (so the latents look like
a real image's), models seeded and untrained with the analysis output scaled x10 as in
``bench_codecs_learned.py``. The "idle" column is the RSS of a child that loaded
everything and did nothing (what every row includes).

    python benchmarks/bench_memory.py [--sizes 4,12,24] [--arch mbt2018-mean ...]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pku_aigi.models.architectures.compressai_archs import COMPRESSAI_ARCHITECTURES  # noqa: E402

SAMPLE = ROOT.parent / "shared" / "data" / "pku-examples" / "sdxl" / "1.png"
ARCHITECTURES = COMPRESSAI_ARCHITECTURES
SIZES = {4: (2304, 1728), 12: (4000, 3000), 24: (6000, 4000)}
OPERATIONS = ("idle", "ours_enc", "ours_dec", "cai_enc", "cai_dec")


# ------------------------------------------------------------------ child side
def _image(megapixels: int):
    import numpy as np
    from PIL import Image

    width, height = SIZES[megapixels]
    tile = np.asarray(Image.open(SAMPLE).convert("RGB"))
    reps = (-(-height // tile.shape[0]), -(-width // tile.shape[1]), 1)
    return Image.fromarray(np.ascontiguousarray(np.tile(tile, reps)[:height, :width]))


def _model(arch: str, quality: int):
    import torch

    from pku_aigi import models

    torch.manual_seed(0)
    model = models.create(arch, quality=quality)
    convs = [m for m in model.g_a.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        convs[-1].weight.mul_(10)  # untrained latents round to ~0; a trained model's do not
    model.update(force=True)
    return model.eval()


def child(operation: str, arch: str, quality: int, megapixels: int, store: Path) -> dict:
    """Run one operation in this process; return its seconds and the peak RSS."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from pku_aigi.codecs import from_model

    torch.set_grad_enabled(False)
    model = _model(arch, quality)
    codec = from_model(model, device="cpu")
    seconds = 0.0
    if operation in ("idle", "ours_enc", "cai_enc"):
        image = _image(megapixels)
    if operation == "cai_enc":
        x = torch.from_numpy(np.asarray(image)).permute(2, 0, 1)[None].float().div_(255)
        del image
        m = codec.pad_multiple
        x = F.pad(x, (0, -x.shape[-1] % m, 0, -x.shape[-2] % m), mode="replicate")
    start, cpu = time.perf_counter(), time.process_time()
    if operation == "ours_enc":
        (store / "ours").write_bytes(codec.encode(image))
    elif operation == "ours_dec":
        data = (store / "ours").read_bytes()
        start, cpu = time.perf_counter(), time.process_time()
        codec.decode(data)
    elif operation == "cai_enc":
        out = model.compress(x)
        (store / "cai").write_bytes(pickle.dumps((out["strings"], out["shape"])))
    elif operation == "cai_dec":
        strings, shape = pickle.loads((store / "cai").read_bytes())
        start, cpu = time.perf_counter(), time.process_time()
        model.decompress(strings, shape)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "cpu": cpu, "peak_gb": peak_kib * 1024 / 1e9}


# ------------------------------------------------------------------ parent side
def measure(operation: str, arch: str, quality: int, megapixels: int, store: Path) -> dict:
    command = [sys.executable, __file__, "--child", operation, arch, str(quality),
               str(megapixels), str(store)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        return {"error": tail[0]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="4,12,24", help="megapixels, of 4, 12, 24")
    parser.add_argument("--arch", nargs="*", default=list(ARCHITECTURES))
    parser.add_argument("--quality", type=int, default=3)
    parser.add_argument("--no-compressai", action="store_true", help="ours only")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        operation, arch, quality, megapixels, store = args.child
        result = child(operation, arch, int(quality), int(megapixels), Path(store))
        print(json.dumps(result))
        return 0

    import torch

    operations = [op for op in OPERATIONS if not (args.no_compressai and op.startswith("cai"))]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} "
          f"CPUs, load average {os.getloadavg()[0]:.1f} at the start, quality {args.quality}. "
          "Peak RSS (GB) of a fresh process per call; s/MP wall (CPU) of the call.\n")  # fmt: skip
    header = ["MP", "architecture", "idle GB"]
    for side in ("ours",) if args.no_compressai else ("ours", "CompressAI"):
        header += [f"{side} enc GB", "s/MP", f"{side} dec GB", "s/MP"]
    if not args.no_compressai:
        header += ["enc GB ratio", "dec GB ratio"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for megapixels in (int(s) for s in args.sizes.split(",")):
        pixels = SIZES[megapixels][0] * SIZES[megapixels][1] / 1e6
        for arch in args.arch:
            with tempfile.TemporaryDirectory() as store:
                r = {op: measure(op, arch, args.quality, megapixels, Path(store))
                     for op in operations}  # fmt: skip
            cells = [str(megapixels), arch, _gb(r["idle"])]
            for op in operations[1:]:
                if "error" in r[op]:
                    print(f"  {arch} {op}: {r[op]['error']}", file=sys.stderr)
                seconds = r[op].get("seconds", float("nan")) / pixels
                cpu = r[op].get("cpu", float("nan")) / pixels
                cells += [_gb(r[op]), f"{seconds:.2f} ({cpu:.2f})"]
            if not args.no_compressai:
                for ours, theirs in (("ours_enc", "cai_enc"), ("ours_dec", "cai_dec")):
                    ratio = r[ours].get("peak_gb", float("nan")) / r[theirs].get("peak_gb", 1)
                    cells.append(f"{ratio:.2f}")
            print("| " + " | ".join(cells) + " |", flush=True)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")
    return 0


def _gb(result: dict) -> str:
    return "failed" if "error" in result else f"{result['peak_gb']:.2f}"


if __name__ == "__main__":
    sys.exit(main())
