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
        torch.from_numpy(stream.batch(i).images).to(device).float().div_(255) for i in range(count)
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


class PlainCompressAI:
    """CompressAI's examples/train.py loop on its ``MeanScaleHyperprior``."""

    def __init__(self, batches, N, M, lmbda, device):
        from compressai.losses import RateDistortionLoss
        from compressai.models import MeanScaleHyperprior

        torch.manual_seed(0)
        self.batches, self.device, self.i = batches, device, 0
        self.net = net = MeanScaleHyperprior(N=N, M=M).to(device).train()
        params = {n: p for n, p in net.named_parameters() if p.requires_grad}
        main = sorted(n for n in params if not n.endswith(".quantiles"))
        aux = sorted(n for n in params if n.endswith(".quantiles"))
        self.optimizer = torch.optim.Adam((params[n] for n in main), lr=1e-4)
        self.aux_optimizer = torch.optim.Adam((params[n] for n in aux), lr=1e-3)
        self.criterion = RateDistortionLoss(lmbda=lmbda)

    def run(self, steps: int) -> None:
        for _ in range(steps):
            d = self.batches[self.i % len(self.batches)]
            self.optimizer.zero_grad()
            self.aux_optimizer.zero_grad()
            out_net = self.net(d)
            out_criterion = self.criterion(out_net, d)
            out_criterion["loss"].backward()
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
            self.optimizer.step()
            aux_loss = self.net.aux_loss()
            aux_loss.backward()
            self.aux_optimizer.step()
            if self.i % 10 == 0:  # examples/train.py logs every 10 batches
                out_criterion["loss"].item(), aux_loss.item()
            self.i += 1


class Ours:
    """pku_aigi.train's step, one model per lambda on the same batches."""

    def __init__(self, batches, N, M, lambdas, device, graphs="auto", channels_last="auto"):
        from accelerate import Accelerator

        from pku_aigi.train.config import TrainConfig
        from pku_aigi.train.cuda_graphs import GRAPH_WARMUP_STEPS, capture
        from pku_aigi.train.loop import build_runs
        from pku_aigi.train.setup import Runtime

        on_cuda = torch.device(device).type == "cuda"
        self.graphs = on_cuda if graphs == "auto" else graphs == "on"
        use_cl = on_cuda if channels_last == "auto" else channels_last == "on"
        config = TrainConfig(
            arch="mbt2018-mean",
            lmbdas=list(lambdas),
            out=Path(tempfile.gettempdir()) / "unused",
            images=SAMPLES,
            overrides={"N": N, "M": M},
        )
        runtime = Runtime(Accelerator(cpu=not on_cuda), self.graphs, use_cl)
        self.runs = build_runs(config, runtime, milestones=[10**9])
        if use_cl:
            batches = [b.contiguous(memory_format=torch.channels_last) for b in batches]
        self.batches, self.i = batches, 0
        if self.graphs:  # eager warm-up steps on the runs' own streams, then capture
            self.run(GRAPH_WARMUP_STEPS)
            self.graphs = capture(self.runs, batches[0], None)

    def run(self, steps: int) -> None:
        from pku_aigi.train.loop import step_all

        for _ in range(steps):
            step_all(self.runs, self.batches[self.i % len(self.batches)], None, self.graphs)
            self.i += 1
            if self.i % 50 == 0:  # pku_aigi logs every 50 steps: one sync
                for run in self.runs:
                    run.pop_means()


def timed(loop, steps: int, device) -> float:
    _sync(device)
    start = time.perf_counter()
    loop.run(steps)
    _sync(device)
    return steps / (time.perf_counter() - start)


def measure(device, N, M, batch, patch, steps, warmup, rounds=3, extra=()):
    """Rows (name, iterations/s, models trained per iteration): best of ``rounds``, the
    loops taking turns so that load on the machine hits them alike."""
    if torch.device(device).type == "cuda":
        torch.backends.cudnn.benchmark = True  # pku_aigi.train sets it; give it to all
    batches = real_batches(4, batch, patch, device)
    loops = [
        ("plain CompressAI loop, 1 lambda", PlainCompressAI(batches, N, M, 0.0067, device), 1),
        ("pku-aigi, 1 lambda", Ours(batches, N, M, [0.0067], device), 1),
        (f"pku-aigi, {len(LAMBDAS)} lambdas in one run", Ours(batches, N, M, LAMBDAS, device), 4),
    ]
    loops += [(name, Ours(batches, N, M, [0.0067], device, **kw), 1) for name, kw in extra]
    for _, loop, _ in loops:
        loop.run(warmup)
    best = [0.0] * len(loops)
    for _ in range(rounds):
        for k, (_, loop, _) in enumerate(loops):
            best[k] = max(best[k], timed(loop, steps, device))
    return [(name, rate, models) for (name, _, models), rate in zip(loops, best)]


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
    N = args.N or (128 if cuda else 32)
    M = args.M or (192 if cuda else 48)
    batch = args.batch or (16 if cuda else 4)
    patch = args.patch or (256 if cuda else 64)
    steps = args.steps or (100 if cuda else 5)
    print(
        f"device {args.device}{' ' + torch.cuda.get_device_name() if cuda else ''}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(
        f"mbt2018-mean N={N} M={M}, batch {batch} x {patch}x{patch} real crops, "
        f"best of 3 rounds of {steps} iterations"
    )
    rows = measure(args.device, N, M, batch, patch, steps, args.warmup)
    report(rows, batch)
    rate = pipeline_rate(batch, patch, workers=2, steps=10)
    print(
        f"crop pipeline (PNG decode + crop, 2 workers): {rate:.2f} batches/s "
        f"= {rate * batch:.1f} crops/s"
    )
    assert all(math.isfinite(r[1]) for r in rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
