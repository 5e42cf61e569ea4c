"""The package's own architectures, declared without importing their model code.

Listing architectures, checking a name or a quality and reading a lambda ladder must not
import torch or CompressAI (seconds on a small machine): each spec names its class as
``"module:Class"``, imported when a model is first built. The tables are CompressAI's
(``compressai.zoo.image.cfgs`` and the lambdas its zoo was trained with,
https://interdigitalinc.github.io/CompressAI/zoo.html); ``tests/test_models_archs.py``
compares them with CompressAI's own.
"""

from __future__ import annotations

from .specs import ArchitectureSpec, register_architecture

# Lambdas of CompressAI's zoo (quality 1..8): MSE loss lambda * 255^2 * MSE + bpp, and
# MS-SSIM loss lambda * (1 - MS-SSIM) + bpp.
MSE_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)
MS_SSIM_LAMBDAS = (2.40, 4.58, 8.73, 16.64, 31.73, 60.50, 115.37, 220.00)
# Lambdas of the TCM paper (MSE, 6 rate points); MS-SSIM uses CompressAI's ladder.
TCM_MSE_LAMBDAS = (0.0025, 0.0035, 0.0067, 0.0130, 0.0250, 0.0500)
SLICE_QUALITIES = range(1, 7)  # six rate points, as TCM's paper

DEFAULT_TEXT_ENCODER = "openai/clip-vit-base-patch32"
DEFAULT_TEXT_ENCODER_REVISION = "3d74acf9a28c67741b2f4f2ea7635f0aaf6f0268"

PAPERS = {
    "bmshj2018": 'J. Ballé, D. Minnen, S. Singh, S. J. Hwang, N. Johnston. "Variational '
    'image compression with a scale hyperprior." ICLR 2018. https://arxiv.org/abs/1802.01436',
    "mbt2018": 'D. Minnen, J. Ballé, G. D. Toderici. "Joint autoregressive and hierarchical '
    'priors for learned image compression." NeurIPS 2018. https://arxiv.org/abs/1809.02736',
    "cheng2020": 'Z. Cheng, H. Sun, M. Takeuchi, J. Katto. "Learned image compression with '
    'discretized Gaussian mixture likelihoods and attention modules." CVPR 2020. '
    "https://arxiv.org/abs/2001.01568",
    "tcm": 'J. Liu, H. Sun, J. Katto. "Learned Image Compression with Mixed Transformer-CNN '
    'Architectures." CVPR 2023. https://arxiv.org/abs/2303.14978',
    "catc": 'X. Duan, S. Ma, H. Liu, C. Jia. "PKU-AIGI-500K: A Neural Compression Benchmark '
    'and Model for AI-Generated Images." IEEE JETCAS, 2024. doi:10.1109/JETCAS.2024.3385629',
}

_SMALL, _LARGE = (128, 192), (192, 320)
# compressai.zoo.image.cfgs: quality -> (N, M), or (N,) for Cheng et al.
COMPRESSAI_CFGS = {
    "bmshj2018-factorized": {q: _SMALL if q <= 5 else _LARGE for q in range(1, 9)},
    "bmshj2018-hyperprior": {q: _SMALL if q <= 5 else _LARGE for q in range(1, 9)},
    "mbt2018-mean": {q: _SMALL if q <= 4 else _LARGE for q in range(1, 9)},
    "mbt2018": {q: (192, 192) if q <= 4 else _LARGE for q in range(1, 9)},
    "cheng2020-anchor": {q: (128,) if q <= 3 else (192,) for q in range(1, 7)},
    "cheng2020-attn": {q: (128,) if q <= 3 else (192,) for q in range(1, 7)},
}

_COMPRESSAI_MODULE = "pku_aigi.models.architectures.compressai_archs"
_COMPRESSAI_CLASSES = {  # name -> (class in _COMPRESSAI_MODULE, paper)
    "bmshj2018-factorized": ("Bmshj2018Factorized", "bmshj2018"),
    "bmshj2018-hyperprior": ("Bmshj2018Hyperprior", "bmshj2018"),
    "mbt2018-mean": ("Mbt2018Mean", "mbt2018"),
    "mbt2018": ("Mbt2018", "mbt2018"),
    "cheng2020-anchor": ("Cheng2020AnchorModel", "cheng2020"),
    "cheng2020-attn": ("Cheng2020AttnModel", "cheng2020"),
}
# Their registered names, in the order above (tests and benchmarks sweep them all).
COMPRESSAI_ARCHITECTURES = tuple(_COMPRESSAI_CLASSES)


def _compressai_spec(name: str) -> ArchitectureSpec:
    class_name, paper = _COMPRESSAI_CLASSES[name]
    qualities = {
        q: dict(zip(("N", "M"), sizes, strict=False)) for q, sizes in COMPRESSAI_CFGS[name].items()
    }
    return ArchitectureSpec(
        name=name,
        model_class=f"{_COMPRESSAI_MODULE}:{class_name}",
        paper=PAPERS[paper],
        qualities=qualities,
        lambdas={
            "mse": {q: MSE_LAMBDAS[q - 1] for q in qualities},
            "ms-ssim": {q: MS_SSIM_LAMBDAS[q - 1] for q in qualities},
        },
        default_quality=3,
    )


def slice_codec_spec(
    name: str, model_class: type | str, paper: str, hparams: dict, mse_lambdas, **options
) -> ArchitectureSpec:
    """A channel-slice architecture with qualities 1..6 of ``hparams``, ``mse_lambdas``
    and CompressAI's MS-SSIM ladder."""
    return ArchitectureSpec(
        name=name,
        model_class=model_class,
        paper=paper,
        qualities={q: dict(hparams) for q in SLICE_QUALITIES},
        lambdas={
            "mse": dict(zip(SLICE_QUALITIES, mse_lambdas, strict=False)),
            "ms-ssim": dict(zip(SLICE_QUALITIES, MS_SSIM_LAMBDAS, strict=False)),
        },
        default_quality=3,
        **options,
    )


for _name in COMPRESSAI_ARCHITECTURES:
    register_architecture(_compressai_spec(_name))
for _name, _class, _width in (("tcm-small", "TCMSmall", 64), ("tcm-medium", "TCMMedium", 96)) + (
    ("tcm-large", "TCM", 128),
):
    register_architecture(
        slice_codec_spec(
            _name,
            f"pku_aigi.models.architectures.tcm:{_class}",
            PAPERS["tcm"],
            {"N": _width, "M": 320},
            TCM_MSE_LAMBDAS,
        )
    )
register_architecture(
    slice_codec_spec(
        "catc",
        "pku_aigi.models.architectures.catc:CATC",
        PAPERS["catc"],
        {
            "N": 256,
            "M": 320,
            "text_encoder": DEFAULT_TEXT_ENCODER,
            "text_encoder_revision": DEFAULT_TEXT_ENCODER_REVISION,
        },
        MSE_LAMBDAS,
        text_conditioned=True,
    )
)
