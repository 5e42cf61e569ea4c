"""``pku-aigi train``: train learned codecs (one per lambda) into Hub model folders."""

from __future__ import annotations

import argparse

EXIT_INTERRUPTED = 130


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a learned codec on PKU-AIGI-500K or a folder of images",
        description=(
            "Train one model per lambda with the paper's recipe (RD loss, Adam + aux "
            "Adam, clipping, random crops and flips, lr milestones); checkpoints every K "
            "steps and on Ctrl-C/SIGTERM, --resume continues exactly. Each model is "
            "written to OUT/<arch>-<metric>-lmbda<L>/ as a Hub model with its card. "
            "--init MODEL fine-tunes a trained model instead (its architecture, sizes, "
            "quality and lambda; lr 1e-5), recording it as the base_model. "
            "Several GPUs or nodes: accelerate launch -m pku_aigi.train ARGS."
        ),
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--arch", help="architecture (see `pku-aigi models`); with --init: the init's"
    )
    parser.add_argument(
        "--init",
        metavar="SOURCE",
        help="fine-tune this trained model: a zoo id, Hub repo id, model folder or "
        "CompressAI checkpoint (.pth.tar; --arch/--quality, or read from its shapes)",
    )
    parser.add_argument("--init-revision", help="revision of an --init Hub repo")
    parser.add_argument(
        "--lmbda",
        type=_floats,
        help="lambda, or several comma-separated (one model each, e.g. 0.0035,0.0067); "
        "with --init: default the init's",
    )
    parser.add_argument(
        "--metric", choices=("mse", "ms-ssim"), help="default mse; with --init: the init's"
    )
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument(
        "--config",
        type=_names,
        help="PKU-AIGI-500K configs, comma-separated (e.g. sd21b,sd21,sdxl,mj52,mod), "
        "interleaved as in the paper",
    )
    data.add_argument("--images", help="a folder of images (recursive) to train on")
    parser.add_argument("--data-dir", help="local folder with the Hub files of the dataset")
    parser.add_argument("--cache-dir", help="datasets cache folder (default: the library's)")
    parser.add_argument("--streaming", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--val-images", help="validation folder for --images (default: hold out a few)"
    )
    parser.add_argument("--out", required=True, help="output folder of the run")
    parser.add_argument("--quality", type=int, help="quality (default: nearest to lambda)")
    parser.add_argument(
        "--arch-override", type=_overrides, default={}, help="hyper-parameters, e.g. N=64,M=96"
    )
    parser.add_argument(
        "--text-encoder",
        metavar="DIR_OR_ID",
        help="CLIP text encoder of text-conditioned models (catc): a local folder or a Hub "
        "id (default: openai/clip-vit-base-patch32 at a pinned revision; offline, a local copy)",
    )
    parser.add_argument("--max-steps", type=int, help="training steps (default: one epoch)")
    parser.add_argument("--batch-size", type=int, default=8, help="crops per step and process")
    parser.add_argument("--patch-size", type=int, default=256, help="side of the random crops")
    parser.add_argument(
        "--lr", type=float, help="Adam learning rate (default 1e-4; fine-tuning 1e-5)"
    )
    parser.add_argument("--aux-lr", type=float, default=5e-4, help="aux (quantiles) lr")
    parser.add_argument("--clip-max-norm", type=float, default=1.0, help="0 disables")
    parser.add_argument(
        "--milestones", type=_ints, help="steps halving the lr (default: 80%%, 95%% of steps)"
    )
    parser.add_argument("--checkpoint-every", type=int, default=1000, metavar="K")
    parser.add_argument("--val-every", type=int, default=0, help="default: at checkpoints")
    parser.add_argument("--val-crop", type=int, default=256, help="validation centre crop side")
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--workers", type=int, default=2, help="data decoding processes")
    parser.add_argument("--cuda-graphs", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--channels-last", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--compile", action="store_true", help="torch.compile the models")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--force", action="store_true", help="overwrite a previous run in --out")
    parser.add_argument("--push-to-hub", metavar="REPO", help="push the model(s) to the Hub")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _floats(text: str) -> list[float]:
    try:
        return [float(part) for part in _split(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not comma-separated numbers: {text!r}") from None


def _ints(text: str) -> list[int]:
    try:
        return [int(part) for part in _split(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not comma-separated integers: {text!r}") from None


def _names(text: str) -> list[str]:
    return _split(text)


def _overrides(text: str) -> dict:
    overrides = {}
    for part in _split(text):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"expected NAME=VALUE pairs, got {part!r}")
        overrides[key.strip()] = _value(value.strip())
    return overrides


def _value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def config_from_args(args):
    from .config import TrainConfig

    return TrainConfig(
        arch=args.arch,
        init=args.init,
        init_revision=args.init_revision,
        lmbdas=args.lmbda or [],
        out=args.out,
        metric=args.metric,
        configs=args.config,
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
        streaming=args.streaming,
        images=args.images,
        val_images=args.val_images,
        quality=args.quality,
        overrides=args.arch_override,
        text_encoder=args.text_encoder,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        patch_size=args.patch_size,
        lr=args.lr,
        aux_lr=args.aux_lr,
        clip_max_norm=args.clip_max_norm,
        milestones=args.milestones,
        checkpoint_every=args.checkpoint_every,
        val_every=args.val_every,
        val_crop=args.val_crop,
        log_every=args.log_every,
        seed=args.seed,
        device=args.device,
        workers=args.workers,
        cuda_graphs=args.cuda_graphs,
        channels_last=args.channels_last,
        compile=args.compile,
        resume=args.resume,
        force=args.force,
        push_to_hub=args.push_to_hub,
        progress=not args.no_progress,
    )


def run(args) -> int:
    from .config import check_names

    config = config_from_args(args)
    check_names(config)  # argument errors before the model code is imported
    from .loop import train

    result = train(config)
    if result.interrupted:
        print(
            f"interrupted at step {result.steps}: checkpoint saved in {result.out}; "
            "continue with the same command and --resume"
        )
        return EXIT_INTERRUPTED
    for folder, point in zip(result.model_dirs, result.rd_points):
        rd = f": {point['bpp']:.4f} bpp, {point['psnr']:.2f} dB PSNR" if point else ""
        print(f"{folder}{rd}")
    return 0
