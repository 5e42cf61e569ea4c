"""The training loop: CompressAI's recipe, resumable, on CPU, one GPU or many (accelerate).

:mod:`.setup` prepares the run (device, accelerator, CUDA graphs, output folder, data),
this module trains, :mod:`.publish` validates and writes (and pushes) the models.

Per model (one per lambda, all on the same batches): the rate-distortion loss, Adam on
every parameter but the entropy bottleneck quantiles, a separate Adam on the quantiles
for the auxiliary loss (CompressAI's ``configure_optimizers`` split), gradient clipping,
MultiStepLR. Checkpoints every K steps and on SIGINT/SIGTERM; ``resume`` restores models,
optimizers, schedulers, RNG states and the data position, so a resumed run ends with the
same weights as an uninterrupted one (bit-exact on CPU). At the end each model is
validated with real bitstreams and written as a Hub model folder with its card.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..models.hub.lineage import LINEAGE_KEY
from . import checkpoint as ckpt
from .config import TrainConfig, check_names
from .cuda_graphs import GRAPH_WARMUP_STEPS, GraphedStep, capture, remove_host_syncs
from .data import batch_loader, validation_crops
from .init import load_init
from .losses import RateDistortionLoss, psnr
from .publish import publish
from .setup import (
    ARGS_FILE,
    LOGS_DIR,
    Runtime,
    build_data,
    make_runtime,
    prepare_out_dir,
)
from .validate import evaluate

logger = logging.getLogger(__name__)

METRICS = ("loss", "bpp", "mse", "aux")  # what a training step reports, in order


@dataclass
class TrainResult:
    """What a run produced: model folders (empty if interrupted), metrics, speed."""

    out: Path
    steps: int
    interrupted: bool = False
    model_dirs: list[Path] = field(default_factory=list)
    rd_points: list[dict] = field(default_factory=list)
    steps_per_second: float = 0.0


def split_parameters(model: torch.nn.Module) -> tuple[list, list]:
    """CompressAI's ``configure_optimizers``: (main parameters, entropy bottleneck quantiles)."""
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    aux = sorted(n for n in named if n.endswith(".quantiles"))
    main = sorted(n for n in named if not n.endswith(".quantiles"))
    return [named[n] for n in main], [named[n] for n in aux]


def run_name(config: TrainConfig, lmbda: float) -> str:
    return f"{config.arch}-{config.metric}-lmbda{lmbda:g}"


def pick_quality(arch: str, metric: str, lmbda: float, quality: int | None) -> int | None:
    """``quality``, or the quality of the architecture whose lambda is nearest ``lmbda``
    (so the model gets the width CompressAI uses at that rate)."""
    from ..models import get_spec

    spec = get_spec(arch)
    if quality is not None:
        spec.hyperparameters(quality)  # a clear error for an unknown quality
        return quality
    ladder = spec.lambdas.get(metric) or spec.lambdas.get("mse") or {}
    if not ladder:
        return spec.default_quality
    return min(ladder, key=lambda q: abs(math.log(ladder[q] / lmbda)))


class ModelRun:
    """One model trained at one lambda: the model, its loss, optimizers and scheduler."""

    def __init__(
        self,
        model,
        name: str,
        lmbda: float,
        config: TrainConfig,
        accelerator,
        graphs: bool,
        milestones: list[int],
    ):
        self.raw = model
        self.name = name
        self.lmbda = lmbda
        self.device = accelerator.device
        self.criterion = RateDistortionLoss(lmbda, config.metric)
        self.clip_max_norm = config.clip_max_norm
        self.uses_graphs = graphs
        main, aux = split_parameters(model)
        self.main_params = main
        self.optimizer = torch.optim.Adam(main, lr=self._lr(config.lr), capturable=graphs)
        self.aux_optimizer = (
            torch.optim.Adam(aux, lr=self._lr(config.aux_lr), capturable=graphs) if aux else None
        )
        self.milestones = list(milestones)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.optimizer, milestones=self.milestones, gamma=config.gamma
        )
        if accelerator.num_processes > 1 and aux:
            # The quantiles only get gradients from the aux loss, outside DDP's forward;
            # their updates are identical on every process, so DDP leaves them alone.
            names = [n for n, p in model.named_parameters() if n.endswith(".quantiles")]
            torch.nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
                model, names
            )
        self.model = accelerator.prepare_model(model)
        self.stream = torch.cuda.Stream() if graphs else None
        self.graphed: GraphedStep | None = None
        self._sum: torch.Tensor | None = None
        self._count = 0

    def _lr(self, value: float):
        # CUDA graphs replay a tensor learning rate that the scheduler updates in place.
        return torch.tensor(value, device=self.device) if self.uses_graphs else value

    @property
    def optimizers(self) -> list:
        return [o for o in (self.optimizer, self.aux_optimizer) if o is not None]

    def train_step(self, x: torch.Tensor, text: torch.Tensor | None) -> torch.Tensor:
        """Forward, backward, clipping and both optimizer steps (grads must be cleared).

        Returns the step's metrics, ``METRICS`` in order."""
        out = self.model(x) if text is None else self.model(x, text=text)
        losses = self.criterion(out, x)
        aux = self.raw.aux_loss() if self.aux_optimizer else torch.zeros((), device=x.device)
        # One backward: the RD loss gives no gradient to the quantiles and the aux loss
        # only to them, so this equals CompressAI's two backward passes.
        (losses["loss"] + aux).backward()
        if self.clip_max_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.main_params, self.clip_max_norm)
        for optimizer in self.optimizers:
            optimizer.step()
        # one tensor: logging costs one kernel per step and one sync per log line
        parts = (losses["loss"], losses["bpp_loss"], losses["mse_loss"], aux)
        return torch.stack([p.detach().float() for p in parts])

    def step(self, x: torch.Tensor, text: torch.Tensor | None) -> None:
        if self.graphed is not None:
            out = self.graphed(x, text)
        else:
            for optimizer in self.optimizers:
                optimizer.zero_grad(set_to_none=True)
            out = self.train_step(x, text)
        self.scheduler.step()
        self._sum = out.clone() if self._sum is None else self._sum.add_(out)
        self._count += 1

    def capture(self, x: torch.Tensor, text: torch.Tensor | None) -> None:
        self.graphed = GraphedStep(self.train_step, x, text, self.optimizers, self.stream)

    def pop_means(self, reduce=None) -> dict[str, float]:
        """Mean training metrics since the last call (one device sync); ``reduce``
        averages them over processes."""
        if not self._count:
            return {}
        values = self._sum / self._count
        values = (reduce(values) if reduce else values).tolist()
        self._sum, self._count = None, 0
        means = dict(zip(METRICS, values))
        means["psnr"] = psnr(means["mse"])
        means["lr"] = float(self.optimizer.param_groups[0]["lr"])
        return means

    def state_dict(self) -> dict:
        return {
            "name": self.name,
            "model": self.raw.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "aux_optimizer": self.aux_optimizer.state_dict() if self.aux_optimizer else {},
            "scheduler": self.scheduler.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.raw.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.aux_optimizer:
            self.aux_optimizer.load_state_dict(state["aux_optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        for optimizer in self.optimizers:  # lr as this run needs it (tensor for graphs)
            for group in optimizer.param_groups:
                group["lr"] = self._lr(float(group["lr"]))


class PromptEmbedder:
    """Prompt embeddings of a text-conditioned model, computed once per distinct prompt."""

    def __init__(self, model, device):
        self.model = model
        self.device = device
        self.cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def __call__(self, prompts: list[str]) -> torch.Tensor:
        missing = list(dict.fromkeys(p for p in prompts if p not in self.cache))
        if missing:
            for prompt, vector in zip(missing, self.model.encode_prompts(missing)):
                self.cache[prompt] = vector.detach().float().cpu()
        return torch.stack([self.cache[p] for p in prompts]).to(self.device, non_blocking=True)


class StopSignals:
    """SIGINT/SIGTERM ask the loop to checkpoint and stop; a second SIGINT stops at once."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        logger.warning("%s received: checkpointing, then stopping", signal.Signals(signum).name)
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def train(config: TrainConfig, callback=None) -> TrainResult:
    """Run (or resume) the training described by ``config``.

    ``callback(step, runs)`` is called after every step (tests use it to interrupt).
    """
    check_names(config)
    runtime = make_runtime(config)
    accelerator, device, is_main = runtime.accelerator, runtime.device, runtime.is_main
    init = None
    if config.init:  # fine-tuning: the init fills the architecture, sizes and lambda
        with accelerator.main_process_first():  # a zoo download happens once
            init = load_init(config)
        check_names(config)
    rank, world = runtime.rank, runtime.world
    graphs = runtime.graphs

    names = [run_name(config, lmbda) for lmbda in config.lmbdas]
    if is_main:
        prepare_out_dir(config, names)
    accelerator.wait_for_everyone()

    stream, val_sources, data_description, val_description = build_data(config, rank, world)
    max_steps = config.max_steps or stream.steps_per_epoch()
    runs = build_runs(config, runtime, config.lr_milestones(max_steps), init)
    torch.manual_seed(config.seed + 1 + rank)  # training noise differs per process

    start = 0
    if config.resume:
        state = ckpt.load_checkpoint(config.out, config)
        for run, run_state in zip(runs, state["runs"]):
            run.load_state_dict(run_state)
        start = state["step"]
        ckpt.restore_rng(config.out, rank)
        logger.info("resumed from step %d", start)
    elif is_main:
        (config.out / ARGS_FILE).write_text(json.dumps(config.to_json(), indent=2) + "\n")

    embed = None
    if runs[0].raw.text_conditioned:
        embed = PromptEmbedder(runs[0].raw, device)
    val_crops = []
    if is_main:
        val_crops = validation_crops(val_sources, config.val_crop, runs[0].raw.downsampling_factor)
        if config.val_max_images:
            val_crops = val_crops[: config.val_max_images]
    writer = _summary_writer(config.out / LOGS_DIR) if is_main else None
    log = logger.info if is_main else logger.debug
    log(
        "training %s (%s) on %s: steps %d..%d, batch %d x %d processes, %s",
        config.arch,
        ", ".join(f"lambda {r.lmbda:g}" for r in runs),
        data_description,
        start,
        max_steps,
        config.batch_size,
        world,
        device,
    )

    step, interrupted = start, False
    started = time.perf_counter()
    batches = batch_loader(stream, start, max_steps, config.workers, pin=device.type == "cuda")
    from tqdm.auto import tqdm

    progress = tqdm(
        total=max_steps, initial=start, disable=not (is_main and config.progress), unit="step"
    )
    with StopSignals() as stop:
        for images, prompts in batches:
            x = images.to(device, non_blocking=True).float().div_(255)
            if runtime.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            text = embed(prompts) if embed else None
            if graphs and runs[0].graphed is None and step - start >= GRAPH_WARMUP_STEPS:
                graphs = capture(runs, x, text)
            step_all(runs, x, text, graphs)
            step += 1
            progress.update(1)
            if callback:
                callback(step, runs)
            if step % config.log_every == 0 or step == max_steps:
                _log_train(runs, step, writer, progress, accelerator)
            val_every = config.val_every or config.checkpoint_every
            if is_main and val_crops and step % val_every == 0 and step < max_steps:
                _log_validation(runs, val_crops, step, writer, device, embed)
            if _agree(accelerator, stop.requested, step):
                interrupted = True
                break
            if step % config.checkpoint_every == 0 and step < max_steps:
                _checkpoint(accelerator, config, step, runs)
    progress.close()
    elapsed = time.perf_counter() - started
    _checkpoint(accelerator, config, step, runs)
    result = TrainResult(
        config.out, step, interrupted, steps_per_second=(step - start) / max(elapsed, 1e-9)
    )
    if interrupted:
        logger.warning("stopped at step %d; continue with --resume", step)
    elif is_main:
        descriptions = (data_description, val_description)
        publish(config, runs, val_crops, descriptions, step, writer, result)
    if writer:
        writer.close()
    accelerator.wait_for_everyone()
    return result


def build_runs(config: TrainConfig, runtime: Runtime, milestones: list[int], init=None) -> list:
    """One :class:`ModelRun` per lambda, each model initialised from ``config.seed``, or
    with every weight and entropy table of ``init`` (an :class:`.init.InitModel`); the
    learning rate decays at the steps ``milestones``."""
    from .. import models

    runs = []
    for lmbda in config.lmbdas:
        quality = pick_quality(config.arch, config.metric, lmbda, config.quality)
        torch.manual_seed(config.seed)  # same initial weights on every process
        model = models.create(
            config.arch,
            quality=quality,
            metric=config.metric,
            lmbda=lmbda,
            **config.model_options(),
        )
        if init is not None:
            model.load_state_dict(init.model.state_dict())
            model.config[LINEAGE_KEY] = dict(init.lineage)
        remove_host_syncs(model)
        model.to(runtime.device)
        if runtime.channels_last:
            model.to(memory_format=torch.channels_last)
        if config.compile:
            model.forward = torch.compile(model.forward)
        name = run_name(config, lmbda)
        runs.append(
            ModelRun(model, name, lmbda, config, runtime.accelerator, runtime.graphs, milestones)
        )
    return runs


def _summary_writer(path: Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(path))


def step_all(runs: list[ModelRun], x, text, graphs: bool) -> None:
    if not graphs:
        for run in runs:
            run.step(x, text)
        return
    # Each model on its own stream: the graphs of several lambdas run concurrently.
    current = torch.cuda.current_stream()
    for run in runs:
        run.stream.wait_stream(current)
        with torch.cuda.stream(run.stream):
            run.step(x, text)
    for run in runs:
        current.wait_stream(run.stream)


def _agree(accelerator, requested: bool, step: int) -> bool:
    """Whether every process stops now (processes compare their flags every 10 steps)."""
    if accelerator.num_processes == 1:
        return requested
    if step % 10:
        return False
    flag = torch.tensor([1.0 if requested else 0.0], device=accelerator.device)
    return bool(accelerator.reduce(flag, reduction="sum").item() > 0)


def _checkpoint(accelerator, config: TrainConfig, step: int, runs: list[ModelRun]) -> None:
    accelerator.wait_for_everyone()
    ckpt.save_rng(config.out, accelerator.process_index)
    if accelerator.is_main_process:
        ckpt.save_checkpoint(config.out, step, runs, config)
    accelerator.wait_for_everyone()


def _log_train(runs, step, writer, progress, accelerator) -> None:
    summary = {}
    reduce = None
    if accelerator.num_processes > 1:
        reduce = lambda values: accelerator.reduce(values, reduction="mean")  # noqa: E731
    for run in runs:
        means = run.pop_means(reduce)
        if not accelerator.is_main_process:
            continue
        for key, value in means.items():
            if writer:
                writer.add_scalar(f"{run.name}/train/{key}", value, step)
        summary[run.name] = means
        logger.info(
            "step %d %s: loss %.4f, bpp %.4f, PSNR %.2f dB, aux %.1f",
            step,
            run.name,
            means["loss"],
            means["bpp"],
            means["psnr"],
            means["aux"],
        )
    if len(runs) == 1 and summary:
        means = summary[runs[0].name]
        progress.set_postfix(loss=f"{means['loss']:.4f}", bpp=f"{means['bpp']:.3f}")


def _log_validation(runs, crops, step, writer, device, embed) -> None:
    for run in runs:
        metrics = evaluate(run.raw, crops, run.criterion, device, embed)
        for key, value in metrics.items():
            writer.add_scalar(f"{run.name}/validation/{key}", value, step)
        logger.info(
            "step %d %s validation: loss %.4f, bpp %.4f, PSNR %.2f dB",
            step,
            run.name,
            metrics["loss"],
            metrics["bpp"],
            metrics["psnr"],
        )
