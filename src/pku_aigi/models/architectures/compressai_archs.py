"""CompressAI's image codecs as Hub models.

Each class subclasses CompressAI's own model (layers, entropy models and rANS coder are
CompressAI's, state-dict keys identical to its zoo) and :class:`LearnedCodecModel`, which
adds the ``text=None`` argument, ``config`` and the Hub methods. Their specs
(quality -> (N, M) tables of ``compressai.zoo.image.cfgs``, the lambda ladders CompressAI
trained its zoo with) are declared in :mod:`.builtin`.

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

from ..base import LearnedCodecModel
from ..coding import compressai_coding as coding
from ..coding.entropy_coding import check_layout
from .builtin import COMPRESSAI_ARCHITECTURES  # noqa: F401 - where tests sweep them


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
