"""Model cards (``README.md``) of saved learned codecs.

The card states what a user needs to judge the weights: architecture and paper, the
metric and lambda of the rate-distortion loss, the training data and recipe, measured
rate-distortion points when known, and where the weights came from (e.g. CompressAI's
zoo, trained on natural images, vs. a model trained on PKU-AIGI-500K). The YAML header
follows the Hub's model-card metadata (``huggingface_hub.ModelCardData``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from ...subsets import HUB_REPO_ID
from .folder import CARD_NAME
from .lineage import LINEAGE_KEY, describe, hub_base_model

DATASET_ID = HUB_REPO_ID
# Licence of weights trained by pku-aigi (the package's own licence).
DEFAULT_LICENSE = "apache-2.0"


def write_model_card(
    model,
    directory: str | Path,
    *,
    training: dict[str, Any] | None = None,
    rd_points: list[dict[str, Any]] | None = None,
    source: str | None = None,
    license: str | None = None,
) -> Path:
    """Write the model card of ``model`` into ``directory/README.md``.

    What is given is also kept on ``model.card_info`` so that a later
    ``save_pretrained`` or ``push_to_hub`` writes the same card.

    Args:
        model: a :class:`~pku_aigi.models.base.LearnedCodecModel`.
        directory: the saved model folder.
        training: recipe and data, e.g. ``{"data": "PKU-AIGI-500K sd21b", "steps":
            200000, "batch_size": 16, "patch_size": 256, "learning_rate": 1e-4,
            "validation": {"bpp": 0.41, "psnr": 33.2}}``; ``"data"`` is shown first.
        rd_points: measured points, e.g. ``[{"dataset": "mj52 validation", "bpp":
            0.31, "psnr": 32.9, "ms_ssim": 0.975}]``.
        source: where the weights came from, e.g. "CompressAI zoo ... (Vimeo-90k)".
        license: the Hub licence id of the weights (default apache-2.0, pku-aigi's own),
            e.g. "bsd-3-clause-clear" for CompressAI's pre-trained weights.

    Returns:
        The path of the card.
    """
    given = {"training": training, "rd_points": rd_points, "source": source}
    given["license"] = license
    model.card_info = {**model.card_info, **{k: v for k, v in given.items() if v is not None}}
    path = Path(directory) / CARD_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    model.generate_model_card().save(path)
    return path


def render_model_card(
    model,
    *,
    training: dict[str, Any] | None = None,
    rd_points: list[dict[str, Any]] | None = None,
    source: str | None = None,
    license: str | None = None,
) -> ModelCard:
    """The model card of ``model`` as a ``huggingface_hub.ModelCard``."""
    from ..architectures.specs import get_spec

    config = model.config
    architecture = config.get("architecture") or model.architecture
    spec = get_spec(architecture)
    hparams = {k: v for k, v in config.items() if k not in ("architecture", "quality", LINEAGE_KEY)}
    lineage = config.get(LINEAGE_KEY)
    trained_on_aigi = bool(training) and DATASET_ID.split("/")[1] in str(training)

    data = ModelCardData(
        library_name="pku-aigi",
        license=license or DEFAULT_LICENSE,
        tags=sorted({"image-compression", "learned-image-compression", "pku-aigi", architecture}),
        datasets=[DATASET_ID] if trained_on_aigi else None,
        # The Hub's fields for a fine-tune: they link the model tree to the base.
        base_model=hub_base_model(lineage),
        base_model_relation="finetune" if hub_base_model(lineage) else None,
    )
    lines = [
        f"# {architecture}, quality {config.get('quality')}, {config.get('metric') or 'mse'}",
        "",
        f"A learned image codec ({architecture}) packaged by "
        f"[pku-aigi](https://huggingface.co/datasets/{DATASET_ID}) as a Hugging "
        "Face Hub model: `config.json`, `model.safetensors` (weights and entropy-coder "
        "tables), and this card.",
        "",
        "## Architecture",
        "",
        f"- Architecture: `{architecture}`"
        + (", text-conditioned" if getattr(model, "text_conditioned", False) else ""),
        f"- Paper: {spec.paper}",
        f"- Quality: {config.get('quality')} (of {', '.join(map(str, sorted(spec.qualities)))})",
        f"- Optimised metric: {config.get('metric') or 'mse'}, lambda = {_fmt(config.get('lmbda'))}",
        "- Hyper-parameters: "
        + ", ".join(f"{k}={_fmt(v)}" for k, v in hparams.items() if k not in ("metric", "lmbda")),
        _parameters_line(model),
        "- Input: RGB in [0, 1], height and width padded to multiples of "
        f"{model.downsampling_factor}",
        "",
        "## Source of the weights",
        "",
        source or "Not recorded (weights saved from a model built with pku-aigi).",
        "",
    ]
    lines += _lineage_lines(lineage)
    lines += ["## Training", ""]
    lines += _training_lines(training)
    lines += ["", "## Rate-distortion points", ""]
    lines += _rd_lines(rd_points)
    lines += [
        "",
        "## Usage",
        "",
        "```python",
        "import pku_aigi",
        'model = pku_aigi.AutoCodec.from_pretrained("REPO_ID_OR_FOLDER")',
        "codec = pku_aigi.codecs.from_model(model)",
        f"data = codec.encode(image, quality={config.get('quality')})  # .aigic bytes",
        "image = codec.decode(data)",
        "```",
        "",
        "or `pku-aigi compress IMAGE -o OUT.aigic --model REPO_ID_OR_FOLDER`.",
        "",
    ]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def _parameters_line(model) -> str:
    """Parameter count of the codec's own weights (a frozen text encoder is not one)."""
    count = sum(p.numel() for p in model.parameters())
    extra = ", without the frozen text encoder" if getattr(model, "text_conditioned", False) else ""
    return f"- Parameters: {count:,} ({count / 1e6:.1f} M{extra})"


def _training_lines(training: dict[str, Any] | None) -> list[str]:
    if not training:
        return ["Not recorded."]
    items = dict(training)
    lines = []
    if "data" in items:
        lines.append(f"- Training data: {_fmt(items.pop('data'))}")
    for key, value in items.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
        lines.append(f"- {key.replace('_', ' ').capitalize()}: {_fmt(value)}")
    return lines


def _lineage_lines(lineage: dict[str, Any] | None) -> list[str]:
    """The card's "Fine-tuned from" section (none for a model trained from scratch)."""
    if not lineage:
        return []
    lines = ["## Fine-tuned from", "", f"- Base model: {describe(lineage)}"]
    if lineage.get("weights_sha256"):
        lines.append(f"- Base weights sha256 (parameters): {lineage['weights_sha256']}")
    if lineage.get("steps") is not None:
        lines.append(f"- Fine-tuning steps: {lineage['steps']}")
    if lineage.get("data"):
        lines.append(f"- Fine-tuning data: {lineage['data']}")
    return lines + [""]


def _rd_lines(rd_points: list[dict[str, Any]] | None) -> list[str]:
    if not rd_points:
        return ["Not measured yet."]
    columns: list[str] = []
    for point in rd_points:
        columns += [key for key in point if key not in columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for point in rd_points:
        lines.append("| " + " | ".join(_fmt(point.get(c, "")) for c in columns) + " |")
    return lines


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "n/a" if value is None else str(value)
