"""CompressAI's image codecs as Hub models.

Each class subclasses CompressAI's own model (layers, entropy models and rANS coder are
CompressAI's, state-dict keys identical to its zoo) and :class:`LearnedCodecModel`, which
adds the ``text=None`` argument, ``config`` and the Hub methods. Quality -> (N, M)
tables come from ``compressai.zoo.image.cfgs``; the lambda ladders are those CompressAI
trained its zoo with (https://interdigitalinc.github.io/CompressAI/zoo.html).

Papers:
- Ballé, Minnen, Singh, Hwang, Johnston. "Variational image compression with a scale
  hyperprior." ICLR 2018 (bmshj2018-factorized, bmshj2018-hyperprior).
- Minnen, Ballé, Toderici. "Joint autoregressive and hierarchical priors for learned
  image compression." NeurIPS 2018 (mbt2018-mean, mbt2018).
- Cheng, Sun, Takeuchi, Katto. "Learned image compression with discretized Gaussian
  mixture likelihoods and attention modules." CVPR 2020 (cheng2020-anchor, -attn).
"""

from __future__ import annotations

from compressai.models import (
    Cheng2020Anchor,
    Cheng2020Attention,
    FactorizedPrior,
    JointAutoregressiveHierarchicalPriors,
    MeanScaleHyperprior,
    ScaleHyperprior,
)
from compressai.zoo.image import cfgs as COMPRESSAI_CFGS

from ..base import LearnedCodecModel
from ..coding import compressai_coding as coding
from ..coding.entropy_coding import check_layout
from .specs import ArchitectureSpec, register_architecture

# Lambdas of CompressAI's zoo (quality 1..8): MSE loss lambda * 255^2 * MSE + bpp, and
# MS-SSIM loss lambda * (1 - MS-SSIM) + bpp.
MSE_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)
MS_SSIM_LAMBDAS = (2.40, 4.58, 8.73, 16.64, 31.73, 60.50, 115.37, 220.00)

PAPERS = {
    "bmshj2018": 'J. Ballé, D. Minnen, S. Singh, S. J. Hwang, N. Johnston. "Variational '
    'image compression with a scale hyperprior." ICLR 2018. https://arxiv.org/abs/1802.01436',
    "mbt2018": 'D. Minnen, J. Ballé, G. D. Toderici. "Joint autoregressive and hierarchical '
    'priors for learned image compression." NeurIPS 2018. https://arxiv.org/abs/1809.02736',
    "cheng2020": 'Z. Cheng, H. Sun, M. Takeuchi, J. Katto. "Learned image compression with '
    'discretized Gaussian mixture likelihoods and attention modules." CVPR 2020. '
    "https://arxiv.org/abs/2001.01568",
}


class CompressAIModel(LearnedCodecModel):
    """Adapts a CompressAI ``CompressionModel`` subclass to :class:`LearnedCodecModel`.

    Put it first in the bases (``class X(CompressAIModel, CompressAIClass)``) so that its
    methods wrap CompressAI's; ``text`` is accepted and ignored. ``compress`` and
    ``decompress`` compute missing entropy tables first, so a new model codes at once.
    """

    # CompressAI's evaluation (compressai.utils.eval_model) pads every image to a
    # multiple of 64 (the hyperprior's stride); the factorized prior (stride 16) too,
    # so that its bitstreams and RD points are CompressAI's.
    downsampling_factor = 64
    # .aigic string groups of the deterministic coding: [y], or [y, z] with a hyperprior.
    string_groups = 2

    def forward(self, x, text=None):
        return super().forward(x)

    def compress(self, x, text=None):
        self.update(force=False)
        out = super().compress(x)
        return {"strings": out["strings"], "shape": tuple(int(s) for s in out["shape"])}

    def decompress(self, strings, shape, text=None):
        self.update(force=False)
        return super().decompress(strings, tuple(shape))

    def decode_latents(self, coded, text=None, seed: int = 0, *, pixels: bool = False):
        check_layout(coded, self.string_groups, self.architecture)
        return super().decode_latents(coded, text, seed, pixels=pixels)


class Bmshj2018Factorized(CompressAIModel, FactorizedPrior):
    """Factorized prior (Ballé et al., ICLR 2018), CompressAI's ``FactorizedPrior``."""

    architecture = "bmshj2018-factorized"
    string_groups = 1
    hyperprior = False  # y alone, at 1/16, its shape stored

    def __init__(self, N: int, M: int):
        super().__init__(N=N, M=M)

    def _code_latents(self, x, text, seed):
        return coding.code_factorized(self, x, seed)

    def _decode_latents(self, coded, text, seed, pixels):
        return coding.decode_factorized(self, coded, seed, pixels)


class Bmshj2018Hyperprior(CompressAIModel, ScaleHyperprior):
    """Scale hyperprior (Ballé et al., ICLR 2018), CompressAI's ``ScaleHyperprior``."""

    architecture = "bmshj2018-hyperprior"

    def __init__(self, N: int, M: int):
        super().__init__(N=N, M=M)

    def _code_latents(self, x, text, seed):
        return coding.code_hyperprior(self, x, False, seed)

    def _decode_latents(self, coded, text, seed, pixels):
        return coding.decode_hyperprior(self, coded, False, seed, pixels)


class Mbt2018Mean(CompressAIModel, MeanScaleHyperprior):
    """Mean-scale hyperprior (Minnen et al., NeurIPS 2018), ``MeanScaleHyperprior``."""

    architecture = "mbt2018-mean"

    def __init__(self, N: int, M: int):
        super().__init__(N=N, M=M)

    def _code_latents(self, x, text, seed):
        return coding.code_hyperprior(self, x, True, seed)

    def _decode_latents(self, coded, text, seed, pixels):
        return coding.decode_hyperprior(self, coded, True, seed, pixels)


class AutoregressiveModel(CompressAIModel):
    """Codes with the masked context model of Minnen et al. 2018 (mbt2018, cheng2020)."""

    decodes_sequentially = True

    def _code_latents(self, x, text, seed):
        return coding.code_autoregressive(self, x, seed)

    def _decode_latents(self, coded, text, seed, pixels):
        return coding.decode_autoregressive(self, coded, seed, pixels)


class Mbt2018(AutoregressiveModel, JointAutoregressiveHierarchicalPriors):
    """Joint autoregressive + hierarchical priors (Minnen et al., NeurIPS 2018)."""

    architecture = "mbt2018"

    def __init__(self, N: int, M: int):
        super().__init__(N=N, M=M)


class Cheng2020AnchorModel(AutoregressiveModel, Cheng2020Anchor):
    """Residual-block anchor of Cheng et al. (CVPR 2020), CompressAI's ``Cheng2020Anchor``."""

    architecture = "cheng2020-anchor"

    def __init__(self, N: int):
        super().__init__(N=N)


class Cheng2020AttnModel(AutoregressiveModel, Cheng2020Attention):
    """Cheng et al. (CVPR 2020) with attention modules, ``Cheng2020Attention``."""

    architecture = "cheng2020-attn"

    def __init__(self, N: int):
        super().__init__(N=N)


def _qualities(name: str) -> dict[int, dict[str, int]]:
    names = ("N", "M")
    return {q: dict(zip(names, sizes)) for q, sizes in COMPRESSAI_CFGS[name].items()}


def _lambdas(qualities) -> dict[str, dict[int, float]]:
    return {
        "mse": {q: MSE_LAMBDAS[q - 1] for q in qualities},
        "ms-ssim": {q: MS_SSIM_LAMBDAS[q - 1] for q in qualities},
    }


_ARCHITECTURES = (
    (Bmshj2018Factorized, "bmshj2018"),
    (Bmshj2018Hyperprior, "bmshj2018"),
    (Mbt2018Mean, "mbt2018"),
    (Mbt2018, "mbt2018"),
    (Cheng2020AnchorModel, "cheng2020"),
    (Cheng2020AttnModel, "cheng2020"),
)

# Their registered names, in the order above (tests and benchmarks sweep them all).
COMPRESSAI_ARCHITECTURES = tuple(cls.architecture for cls, _ in _ARCHITECTURES)

for _cls, _paper in _ARCHITECTURES:
    _table = _qualities(_cls.architecture)
    register_architecture(
        ArchitectureSpec(
            name=_cls.architecture,
            model_class=_cls,
            paper=PAPERS[_paper],
            qualities=_table,
            lambdas=_lambdas(_table),
            default_quality=3,
        )
    )
