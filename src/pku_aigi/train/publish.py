"""Publishing trained models: real-bitstream validation, the model card, the Hub folder
and the push."""

from __future__ import annotations

import logging

import torch

from ..models.hub.lineage import LINEAGE_KEY, describe
from .config import TrainConfig
from .validate import rd_point

logger = logging.getLogger(__name__)


def publish(config: TrainConfig, runs: list, val_crops, descriptions, step, writer, result):
    """Each model: entropy tables, real-bitstream validation, Hub folder with a card,
    pushed when ``config.push_to_hub`` names a repo."""
    data_description, val_description = descriptions
    for run in runs:
        model = run.raw
        model.to("cpu", memory_format=torch.contiguous_format)  # portable bitstreams
        model.update(force=True)
        model.eval()
        folder = config.out / run.name
        point = rd_point(model, val_crops) if val_crops else {}
        if point:
            point = {
                "dataset": f"{val_description}, centre crops up to {config.val_crop} px",
                **point,
            }
            writer.add_scalar(f"{run.name}/validation/real_bpp", point["bpp"], step)
            writer.add_scalar(f"{run.name}/validation/real_psnr", point["psnr"], step)
            logger.info(
                "%s: %.4f bpp, %.2f dB PSNR on %d validation crops (real bitstreams)",
                run.name,
                point["bpp"],
                point["psnr"],
                point["images"],
            )
        card = {"training": training_summary(config, run, data_description, step)}
        lineage = model.config.get(LINEAGE_KEY)
        if lineage is not None:  # fine-tuned: the base, the steps and the data
            lineage.update(steps=step, data=data_description)
            card["source"] = (
                f"Fine-tuned by pku-aigi from {describe(lineage)} for {step} steps on "
                f"{data_description} (see Fine-tuned from)."
            )
        if point:
            card["rd_points"] = [point]
        model.card_info = {**model.card_info, **card}
        model.save_pretrained(folder)
        result.model_dirs.append(folder)
        result.rd_points.append(point)
        logger.info("model written to %s", folder)
        if config.push_to_hub:
            push(model, hub_repo_id(config.push_to_hub, run, len(runs)), data_description)


def push(model, repo_id: str, trained_on: str) -> None:
    """Upload ``model`` to Hub repo ``repo_id``, then print the zoo entry that names it."""
    import json

    from ..models import zoo

    model.push_to_hub(repo_id, commit_message="pku-aigi train")
    logger.info("pushed the model to the Hub as %s", repo_id)
    entry = zoo.entry_for_pushed_model(repo_id, model.config, trained_on)
    print(
        f"Pushed {repo_id}. To make it the zoo's {entry['architecture']} quality "
        f"{entry['quality']} {entry['metric']} model (preferred over CompressAI's Vimeo-90k "
        "weights), add this entry to the file named by PKU_AIGI_ZOO (or to models/zoo.json):\n"
        + json.dumps(entry)
    )


def training_summary(config: TrainConfig, run, data: str, steps: int) -> dict:
    """The card's training section: recipe, data and steps."""
    distortion = "255^2 * MSE" if config.metric == "mse" else "(1 - MS-SSIM)"
    lineage = run.raw.config.get(LINEAGE_KEY)
    start = {"init": describe(lineage)} if lineage else {}
    return {
        **start,
        "recipe": {
            "loss": f"{run.lmbda:g} * {distortion} + bpp",
            "lmbda": run.lmbda,
            "metric": config.metric,
            "optimizer": f"Adam, lr {config.lr:g}; aux Adam (quantiles), lr {config.aux_lr:g}",
            "lr_milestones": list(run.milestones),
            "lr_gamma": config.gamma,
            "gradient_clipping": config.clip_max_norm,
            "batch_size": config.batch_size,
            "patch_size": config.patch_size,
            "augmentation": "random crops, horizontal and vertical flips",
            "seed": config.seed,
        },
        "data": data,
        "steps": steps,
        "images_seen": steps * config.batch_size,
    }


def hub_repo_id(template: str, run, count: int) -> str:
    """``--push-to-hub`` for one run: ``{lmbda}``/``{name}`` filled in, or ``-lmbda<L>``
    added when there are several lambdas."""
    if "{" in template:
        return template.format(lmbda=f"{run.lmbda:g}", name=run.name)
    return template if count == 1 else f"{template}-lmbda{run.lmbda:g}"
