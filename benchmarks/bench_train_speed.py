"""Training speed: pku-aigi's training step vs a plain CompressAI training loop.

The reference is the loop of CompressAI's ``examples/train.py`` (Adam + aux Adam from
``configure_optimizers``, ``RateDistortionLoss``, ``clip_grad_norm_(1.0)``, two backward
passes, a loss ``.item()`` every 10 iterations as its logging does) on CompressAI's own
``MeanScaleHyperprior``. Ours is the step of ``pku_aigi.train`` (one model per lambda;
on CUDA: channels_last, no host syncs, CUDA graphs, one stream per lambda). Both see the
same real crops (PKU-AIGI sample images) already on the device, so this measures the
training step, not image decoding; the crop pipeline's own rate is printed too.

    python benchmarks/bench_train_speed.py                    # CPU-sized defaults
    python benchmarks/bench_train_speed.py --device cuda      # mbt2018-mean N=128 M=192, 16x256²
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "data" / "pku-examples"
LAMBDAS = (0.0035, 0.0067, 0.013, 0.025)


def real_batches(count: int, batch: int, patch: int, device) -> list[torch.Tensor]:
    """``count`` batches of random crops of the sample images, as floats on ``device``."""
    from pku_aigi.train.data import CropStream, FolderSource

    stream = CropStream([FolderSource(SAMPLES)], patch_size=patch, batch_size=batch, seed=0)
    return [
        torch.from_numpy(stream.batch(i).images).to(device).float().div_(255)
        for i in range(count)
    ]


def pipeline_rate(batch: int, patch: int, workers: int, steps: int) -> float:
    """Batches/s the crop pipeline (PNG decode, crop, flip; DataLoader workers) delivers."""
    from pku_aigi.train.data import CropStream, FolderSource, batch_loader

    stream = CropStream([FolderSource(SAMPLES)], patch_size=patch, batch_size=batch, seed=0)
    loader = batch_loader(stream, 0, steps + 2, workers, pin=False)
    next(loader), next(loader)  # worker start-up
    start = time.perf_counter()
    for _ in loader:
        pass
    return steps / (time.perf_counter() - start)


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def plain_compressai(batches, N, M, lmbda, steps, warmup, device) -> float:
    """Iterations/s of CompressAI's examples/train.py loop."""
    from compressai.losses import RateDistortionLoss
    from compressai.models import MeanScaleHyperprior

    torch.manual_seed(0)
    net = MeanScaleHyperprior(N=N, M=M).to(device).train()
    params = {n: p for n, p in net.named_parameters() if p.requires_grad}
    main = sorted(n for n in params if not n.endswith(".quantiles"))
    aux = sorted(n for n in params if n.endswith(".quantiles"))
    optimizer = torch.optim.Adam((params[n] for n in main), lr=1e-4)
    aux_optimizer = torch.optim.Adam((params[n] for n in aux), lr=1e-3)
    criterion = RateDistortionLoss(lmbda=lmbda)

    def step(i, d):
        optimizer.zero_grad()
        aux_optimizer.zero_grad()
        out_net = net(d)
        out_criterion = criterion(out_net, d)
        out_criterion["loss"].backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        aux_loss = net.aux_loss()
        aux_loss.backward()
        aux_optimizer.step()
        if i % 10 == 0:  # examples/train.py logs every 10 batches
            out_criterion["loss"].item(), aux_loss.item()

    for i in range(warmup):
        step(i, batches[i % len(batches)])
    _sync(device)
    start = time.perf_counter()
    for i in range(steps):
        step(i, batches[i % len(batches)])
    _sync(device)
    return steps / (time.perf_counter() - start)


def ours(batches, N, M, lambdas, steps, warmup, device, graphs="auto", channels_last="auto"):
    """Iterations/s of pku_aigi.train's step for one model per lambda (same batches)."""
    from accelerate import Accelerator

    from pku_aigi.train.config import TrainConfig
    from pku_aigi.train.loop import GRAPH_WARMUP_STEPS, build_runs, capture, step_all

    on_cuda = torch.device(device).type == "cuda"
    use_graphs = on_cuda if graphs == "auto" else graphs == "on"
    use_cl = on_cuda if channels_last == "auto" else channels_last == "on"
    config = TrainConfig(
        arch="mbt2018-mean",
        lmbdas=list(lambdas),
        out=Path(tempfile.gettempdir()) / "unused",
        images=SAMPLES,
        overrides={"N": N, "M": M},
        milestones=[10**9],
    )
    accelerator = Accelerator(cpu=not on_cuda)
    runs = build_runs(config, accelerator, use_graphs, use_cl)
    if use_cl:
        batches = [b.contiguous(memory_format=torch.channels_last) for b in batches]
    for i in range(max(warmup, GRAPH_WARMUP_STEPS if use_graphs else 0)):
        step_all(runs, batches[i % len(batches)], None, use_graphs)
    if use_graphs:
        use_graphs = capture(runs, batches[0], None)
    for i in range(3):
        step_all(runs, batches[i % len(batches)], None, use_graphs)
    _sync(device)
    start = time.perf_counter()
    for i in range(steps):
        step_all(runs, batches[i % len(batches)], None, use_graphs)
        if i % 50 == 49:  # pku_aigi logs every 50 steps: one sync
            for run in runs:
                run.pop_means()
    _sync(device)
    rate = steps / (time.perf_counter() - start)
    return rate, runs


def measure(device, N, M, batch, patch, steps, warmup, extra=()) -> list[tuple[str, float, int]]:
    """Rows (name, iterations/s, models trained per iteration)."""
    batches = real_batches(4, batch, patch, device)
    rows = [("plain CompressAI loop, 1 lambda", plain_compressai(batches, N, M, 0.0067, steps, warmup, device), 1)]
    rate, _ = ours(batches, N, M, [0.0067], steps, warmup, device)
    rows.append(("pku-aigi, 1 lambda", rate, 1))
    rate, _ = ours(batches, N, M, LAMBDAS, steps, warmup, device)
    rows.append((f"pku-aigi, {len(LAMBDAS)} lambdas in one run", rate, len(LAMBDAS)))
    for name, kwargs in extra:
        rate, _ = ours(batches, N, M, [0.0067], steps, warmup, device, **kwargs)
        rows.append((name, rate, 1))
    return rows


def report(rows, batch: int) -> None:
    base = rows[0][1]
    print(f"{'loop':44s} {'it/s':>8s} {'images/s':>9s} {'vs plain':>9s}")
    for name, rate, models in rows:
        images = rate * batch * models  # crops trained on per second, over all models
        print(f"{name:44s} {rate:8.2f} {images:9.1f} {images / (base * batch):8.2f}x")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--N", type=int)
    parser.add_argument("--M", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--patch", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)
    cuda = torch.device(args.device).type == "cuda"
    N = args.N or (128 if cuda else 64)
    M = args.M or (192 if cuda else 96)
    batch = args.batch or (16 if cuda else 4)
    patch = args.patch or (256 if cuda else 128)
    steps = args.steps or (200 if cuda else 10)
    print(f"device {args.device}{' ' + torch.cuda.get_device_name() if cuda else ''}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"mbt2018-mean N={N} M={M}, batch {batch} x {patch}x{patch} real crops, "
          f"{steps} timed iterations")
    rows = measure(args.device, N, M, batch, patch, steps, args.warmup)
    report(rows, batch)
    rate = pipeline_rate(batch, patch, workers=2, steps=10)
    print(f"crop pipeline (PNG decode + crop, 2 workers): {rate:.2f} batches/s "
          f"= {rate * batch:.1f} crops/s")
    assert all(math.isfinite(r[1]) for r in rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
