"""What a training run is asked to do (the ``pku-aigi train`` arguments, validated)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PkuAigiError

METRICS = ("mse", "ms-ssim")  # the distortion terms of the rate-distortion loss

# Without --milestones the learning rate is multiplied by gamma (halved) at these
# fractions of the run's steps: the paper's recipe, 80 % and 95 %.
LR_DECAY_FRACTIONS = (0.8, 0.95)
# Adam learning rates: from scratch, the paper's and CompressAI's 1e-4. Fine-tuning
# (--init) starts at 1e-5, where the published schedules of the pretrained weights end
# (CompressAI's examples/train.py lowers 1e-4 tenfold on plateaus; TCM's train.py,
# Liu et al. CVPR 2023, by 0.1 at its last milestones): a converged model continues
# from its minimum instead of being thrown out of it. The aux (quantile) rate stays,
# since the quantiles must follow the new data's latents.
SCRATCH_LR = 1e-4
FINETUNE_LR = 1e-5


class TrainingError(PkuAigiError):
    """A training run cannot start or resume as asked."""


@dataclass
class TrainConfig:
    """One training run: one model per lambda, all trained on the same batches.

    Defaults follow the paper's recipe (Adam lr 1e-4, aux lr 5e-4, clipping at 1.0,
    batch 8, 256x256 crops, learning rate halved at the milestones). With ``init`` (a
    zoo id, Hub repo, model folder or CompressAI checkpoint) the run fine-tunes: the
    architecture, hyper-parameters, quality, metric and lambda default to the init's
    (:mod:`.init`), and the learning rate to ``FINETUNE_LR``.
    """

    out: Path
    arch: str | None = None  # from the init when fine-tuning
    lmbdas: list[float] = field(default_factory=list)  # default: the init's lambda
    metric: str | None = None  # default: the init's, else "mse"
    init: str | None = None  # fine-tune from this model
    init_revision: str | None = None  # of a Hub repo init
    configs: list[str] | None = None  # PKU-AIGI-500K configs, interleaved as in the paper
    data_dir: str | None = None
    cache_dir: str | None = None  # the datasets cache (default: the library's)
    streaming: bool = False
    images: Path | None = None  # or a folder of images
    val_images: Path | None = None
    val_holdout: int = 4  # images of --images kept for validation without --val-images
    quality: int | None = None
    overrides: dict = field(default_factory=dict)  # hyper-parameters, e.g. {"N": 64}
    text_encoder: str | None = None  # text-conditioned models: a local folder or Hub id
    max_steps: int | None = None  # default: one epoch
    batch_size: int = 8
    patch_size: int = 256
    lr: float | None = None  # default SCRATCH_LR, or FINETUNE_LR with init
    aux_lr: float = 5e-4
    clip_max_norm: float = 1.0
    milestones: list[int] | None = None  # steps; default LR_DECAY_FRACTIONS of max_steps
    gamma: float = 0.5
    checkpoint_every: int = 1000
    val_every: int = 0  # 0: validate at each checkpoint
    val_crop: int = 256
    val_max_images: int = 0  # 0: every validation image
    log_every: int = 50
    seed: int = 0
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    workers: int = 2
    cuda_graphs: str = "auto"  # auto (on for CUDA), on, off
    channels_last: str = "auto"
    compile: bool = False
    resume: bool = False
    force: bool = False
    push_to_hub: str | None = None
    progress: bool = True

    def __post_init__(self):
        self.out = Path(self.out)
        self.images = Path(self.images) if self.images else None
        self.val_images = Path(self.val_images) if self.val_images else None
        self.lmbdas = [float(x) for x in self.lmbdas or []]
        if not self.init:
            if not self.arch:
                raise TrainingError(
                    "give --arch (an architecture, see `pku-aigi models`) to train from "
                    "scratch, or --init MODEL to fine-tune a trained one"
                )
            if not self.lmbdas:
                raise TrainingError("give at least one lambda (--lmbda 0.0067 or 0.0035,0.0067)")
            self.metric = self.metric or "mse"
        if self.init_revision and not self.init:
            raise TrainingError(
                "--init-revision is the revision of an --init Hub repo: give --init"
            )
        if self.lr is None:
            self.lr = FINETUNE_LR if self.init else SCRATCH_LR
        if any(not x > 0 for x in self.lmbdas):
            raise TrainingError(f"lambdas must be positive, got {self.lmbdas}")
        if len(set(self.lmbdas)) != len(self.lmbdas):
            raise TrainingError(f"the lambdas {self.lmbdas} repeat a value")
        if self.metric is not None and self.metric not in METRICS:
            raise TrainingError(f"unknown metric {self.metric!r}: use {' or '.join(METRICS)}")
        if bool(self.configs) == bool(self.images):
            raise TrainingError("give either --config (PKU-AIGI-500K configs) or --images DIR")
        for name, value in (("batch size", self.batch_size), ("patch size", self.patch_size)):
            if value < 1:
                raise TrainingError(f"the {name} must be at least 1, got {value}")
        if self.max_steps is not None and self.max_steps < 1:
            raise TrainingError(f"--max-steps must be at least 1, got {self.max_steps}")
        if self.checkpoint_every < 1:
            raise TrainingError("--checkpoint-every must be at least 1")
        if self.text_encoder and "text_encoder" in self.overrides:
            raise TrainingError(
                "give the text encoder once: --text-encoder or --arch-override text_encoder="
            )
        for name in ("cuda_graphs", "channels_last"):
            if getattr(self, name) not in ("auto", "on", "off"):
                raise TrainingError(f"--{name.replace('_', '-')} must be auto, on or off")

    def lr_milestones(self, max_steps: int) -> list[int]:
        """The steps at which the learning rate decays: ``milestones`` or the default."""
        if self.milestones is not None:
            return list(self.milestones)
        return sorted({max(1, int(max_steps * f)) for f in LR_DECAY_FRACTIONS})

    def model_options(self) -> dict:
        """Keyword arguments of ``pku_aigi.models.create`` besides quality and lambda."""
        options = dict(self.overrides)
        if self.text_encoder:  # a folder, or a Hub id at its latest revision
            options.update(text_encoder=self.text_encoder, text_encoder_revision=None)
        return options

    def to_json(self) -> dict:
        """JSON-friendly dict (what ``train_args.json`` records)."""
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, Path):
                out[key] = str(value)
        return out

    # Settings that must not change between an interrupted run and its --resume.
    RESUME_KEYS = (
        "init",
        "init_revision",
        "arch",
        "lmbdas",
        "metric",
        "configs",
        "images",
        "quality",
        "overrides",
        "text_encoder",
        "batch_size",
        "patch_size",
        "seed",
    )


def check_names(config: TrainConfig) -> None:
    """Unknown architecture, quality or config: one clear error before anything starts."""
    from ..models import get_spec
    from ..subsets import get_subset

    for name in config.configs or []:
        get_subset(name)
    if config.arch is None:  # fine-tuning: the init names it (checked when loaded)
        return
    spec = get_spec(config.arch)
    if config.quality is not None:
        spec.hyperparameters(config.quality)
    if config.text_encoder and not spec.text_conditioned:
        raise TrainingError(
            f"--text-encoder is for text-conditioned architectures (catc), not {config.arch}"
        )
