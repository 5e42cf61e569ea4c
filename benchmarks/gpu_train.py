"""GPU training checks and speed: ``python benchmarks/gpu_train.py`` (< 90 s on an H100).

1. Speed: mbt2018-mean (N=128, M=192), batch 16 of 256x256 real crops: the plain
   CompressAI loop (examples/train.py) vs pku-aigi's step with one lambda and with four
   lambdas in one run (CUDA graphs, one stream per lambda), plus pku-aigi without graphs
   and without channels_last to show where the gain comes from. images/s counts crops
   trained on per second over all models; the ratio is against the plain loop.
2. Correctness: the CUDA-graph step and the eager step, from the same weights on the
   same batches, reach the same losses (the training noise differs, so close, not equal).
3. The whole ``pku_aigi.train.train`` on CUDA: 20 steps, checkpoint, resume to 30 steps,
   real-bitstream validation and a Hub model folder.

Without CUDA it runs the same on CPU at toy sizes (a smoke test, not a measurement).
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train_speed import SAMPLES, Ours, measure, real_batches, report  # noqa: E402


def check_graphs_match_eager(device, N, M, batch, patch, steps=30) -> None:
    batches = real_batches(4, batch, patch, device)
    losses = {}
    for graphs in ("on", "off"):
        loop = Ours(batches, N, M, [0.0067], device, graphs=graphs)
        loop.run(steps)
        # the first steps were eager for both; compare the means of the last 10
        loop.runs[0].pop_means()
        loop.run(10)
        losses[graphs] = loop.runs[0].pop_means()
    a, b = losses["on"], losses["off"]
    rel = abs(a["loss"] - b["loss"]) / abs(b["loss"])
    verdict = "PASS" if rel < 0.05 and abs(a["psnr"] - b["psnr"]) < 0.5 else "FAIL"
    print(
        f"graphs vs eager after {steps + 10} steps: loss {a['loss']:.4f} vs {b['loss']:.4f} "
        f"(rel. diff {rel:.2%}), PSNR {a['psnr']:.2f} vs {b['psnr']:.2f} dB, "
        f"bpp {a['bpp']:.4f} vs {b['bpp']:.4f}: {verdict}"
    )


def check_full_run(device, N, M, batch, patch) -> None:
    from pku_aigi.train import TrainConfig, train

    with tempfile.TemporaryDirectory() as tmp:
        settings = dict(
            arch="mbt2018-mean",
            lmbdas=[0.0067, 0.013],
            images=SAMPLES,
            out=Path(tmp) / "run",
            overrides={"N": N, "M": M},
            batch_size=batch,
            patch_size=patch,
            val_crop=patch,
            val_holdout=2,
            workers=4,
            device=device,
            log_every=10,
            progress=False,
        )
        start = time.perf_counter()
        first = train(TrainConfig(max_steps=20, **settings))
        second = train(TrainConfig(max_steps=30, resume=True, **settings))
        elapsed = time.perf_counter() - start
        ok = second.steps == 30 and len(second.model_dirs) == 2
        for folder, point in zip(second.model_dirs, second.rd_points):
            print(
                f"  {folder.name}: {point['bpp']:.4f} bpp, {point['psnr']:.2f} dB (real bitstreams)"
            )
        print(
            f"train() on {device}: 20 steps + resume to 30, 2 lambdas, export: {elapsed:.1f} s, "
            f"{first.steps_per_second:.1f} steps/s in the first run (incl. PNG decoding): "
            f"{'PASS' if ok else 'FAIL'}"
        )


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    N, M, batch, patch, steps = (128, 192, 16, 256, 100) if cuda else (32, 48, 2, 64, 3)
    print(f"device: {torch.cuda.get_device_name() if cuda else 'CPU (no CUDA: smoke test)'}")
    print(f"torch {torch.__version__}")
    start = time.perf_counter()
    print(f"\n1. speed: mbt2018-mean N={N} M={M}, batch {batch} x {patch}x{patch}")
    extra = [
        ("pku-aigi, 1 lambda, no CUDA graphs", {"graphs": "off"}),
        (
            "pku-aigi, 1 lambda, no graphs, no channels_last",
            {"graphs": "off", "channels_last": "off"},
        ),
    ]
    rows = measure(device, N, M, batch, patch, steps, warmup=5, extra=extra if cuda else ())
    report(rows, batch)
    print(f"   ({time.perf_counter() - start:.0f} s)")
    print("\n2. correctness")
    if cuda:
        check_graphs_match_eager(device, N, M, batch, patch)
    else:
        print("skipped: no CUDA")
    print("\n3. full run")
    check_full_run(device, N, M, min(batch, 8), patch)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
