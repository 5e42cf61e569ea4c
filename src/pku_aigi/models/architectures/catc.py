"""CATC: the Cross-Attention Transformer Codec of PKU-AIGI-500K.

X. Duan, S. Ma, H. Liu, C. Jia. "PKU-AIGI-500K: A Neural Compression Benchmark and Model
for AI-Generated Images." IEEE JETCAS, 2024. doi:10.1109/JETCAS.2024.3385629

A hyperprior codec with a channel-wise autoregressive entropy model, conditioned on the
image's prompt through cross-attention (../shared/docs/paper.md has the description this
follows). The prompt enters as the pooled 512-d embedding of a frozen CLIP ViT-B/32 text
encoder (:mod:`pku_aigi.models.architectures.text_encoder`), which is not part of the weights.

Building block: the CAT block (3x3 conv, a pre-norm transformer layer whose queries are
the pixels and whose 32 keys/values per head are expanded from the gated text vector,
a 4x GELU MLP, a residual block, a skip around it all). The entropy model codes 5 slices
of 64 channels; a convolutional GRU per branch carries the mean and scale states from
slice to slice, each state passes a text-conditioned attention block and a head of 3x3
convs, and latent residual prediction refines each decoded slice.

Where the description leaves a choice open (hyper-transform heads, SE reduction, which
modules are shared between slices), the choices are documented on the classes below.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import (
    AttentionBlock,
    ResidualBlock,
    ResidualBlockUpsample,
    ResidualBlockWithStride,
    conv1x1,
    conv3x3,
    subpel_conv3x3,
)
from torch import Tensor, nn

from ...errors import ModelError
from .channel_slices import ChannelSliceCodec, slice_head
from .text_encoder import DEFAULT_TEXT_ENCODER, DEFAULT_TEXT_ENCODER_REVISION, load_text_encoder


class TextMixer(nn.Module):
    """Text vector -> ``channels // 2`` features, gated by the image.

    An MLP ``text_dim -> channels -> channels // 2`` (GELU) transforms the text; a
    squeeze-and-excitation gate (reduction 4, sigmoid) computed from the globally pooled
    image features, modulated (multiplied) by the MLP's hidden text features, scales it.
    """

    def __init__(self, channels: int, text_dim: int):
        super().__init__()
        self.text_hidden = nn.Linear(text_dim, channels)
        self.text_out = nn.Linear(channels, channels // 2)
        self.gate = nn.Sequential(
            nn.Linear(channels, channels // 4),
            nn.GELU(),
            nn.Linear(channels // 4, channels // 2),
            nn.Sigmoid(),
        )

    def forward(self, features: Tensor, text: Tensor) -> Tensor:
        hidden = F.gelu(self.text_hidden(text))
        gate = self.gate(features.mean(dim=(2, 3)) * hidden)
        return self.text_out(hidden) * gate


class TextCrossAttention(nn.Module):
    """Multi-head attention from every pixel to ``kv_tokens`` text tokens per head.

    The mixed text vector is linearly expanded into ``kv_tokens`` key and value tokens per
    head; there is no pixel-to-pixel attention.
    """

    def __init__(self, channels: int, heads: int, text_dim: int, kv_tokens: int):
        super().__init__()
        if channels % heads:
            raise ModelError(f"{channels} channels cannot be split into {heads} heads")
        self.heads, self.kv_tokens = heads, kv_tokens
        self.mixer = TextMixer(channels, text_dim)
        self.to_q = nn.Linear(channels, channels)
        self.to_kv = nn.Linear(channels // 2, 2 * kv_tokens * channels)
        self.proj = nn.Linear(channels, channels)

    def forward(self, tokens: Tensor, features: Tensor, text: Tensor) -> Tensor:
        """``tokens`` (B, H, W, C) normalised pixels; ``features`` (B, C, H, W) for the gate."""
        batch, height, width, channels = tokens.shape
        head_dim = channels // self.heads
        q = self.to_q(tokens).view(batch, height * width, self.heads, head_dim).transpose(1, 2)
        kv = self.to_kv(self.mixer(features, text))
        k, v = kv.view(batch, 2, self.heads, self.kv_tokens, head_dim).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, HW, head_dim)
        return self.proj(out.transpose(1, 2).reshape(batch, height, width, channels))


class CATBlock(nn.Module):
    """Cross-Attention Transformer block: conv, text cross-attention, MLP, residual block.

    ``x + res(layer(conv3x3(x), text))`` where ``layer`` is a pre-LayerNorm transformer
    layer (text cross-attention, then a 4x GELU MLP).
    """

    uses_text = True

    def __init__(self, channels: int, heads: int, text_dim: int, kv_tokens: int = 32):
        super().__init__()
        self.conv = conv3x3(channels, channels)
        self.norm1 = nn.LayerNorm(channels)
        self.attention = TextCrossAttention(channels, heads, text_dim, kv_tokens)
        self.norm2 = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(
            nn.Linear(channels, 4 * channels), nn.GELU(), nn.Linear(4 * channels, channels)
        )
        self.residual = ResidualBlock(channels, channels)

    def forward(self, x: Tensor, text: Tensor) -> Tensor:
        features = self.conv(x)
        tokens = features.permute(0, 2, 3, 1)
        tokens = tokens + self.attention(self.norm1(tokens), features, text)
        tokens = tokens + self.mlp(self.norm2(tokens))
        return x + self.residual(tokens.permute(0, 3, 1, 2))


class TextSequential(nn.Sequential):
    """``nn.Sequential`` that passes the text embedding to the blocks that use it."""

    def forward(self, x: Tensor, text: Tensor) -> Tensor:
        for module in self:
            x = module(x, text) if getattr(module, "uses_text", False) else module(x)
        return x


class TextAttentionBlock(AttentionBlock):
    """CompressAI's attention block whose non-local branch is a CAT block.

    ``in_channels`` are projected to ``inner`` channels (1x1), the residual units'
    output is gated by the sigmoid of the CAT branch, and projected back.
    """

    uses_text = True

    def __init__(self, in_channels: int, inner: int, heads: int, text_dim: int, kv_tokens: int):
        super().__init__(inner)
        self.project_in = conv1x1(in_channels, inner)
        self.cat = CATBlock(inner, heads, text_dim, kv_tokens)
        self.project_out = conv1x1(inner, in_channels)

    def forward(self, x: Tensor, text: Tensor) -> Tensor:
        x = self.project_in(x)
        out = self.conv_a(x) * torch.sigmoid(self.conv_b(self.cat(x, text))) + x
        return self.project_out(out)


class ConvGRU(nn.Module):
    """Convolutional GRU cell (3x3 convs): the state update ``h' = GRU(x, h)``."""

    def __init__(self, in_channels: int, hidden: int):
        super().__init__()
        self.gates = conv3x3(in_channels + hidden, 2 * hidden)
        self.candidate = conv3x3(in_channels + hidden, hidden)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        update, reset = torch.sigmoid(self.gates(torch.cat([x, h], dim=1))).chunk(2, dim=1)
        candidate = torch.tanh(self.candidate(torch.cat([x, reset * h], dim=1)))
        return (1 - update) * h + update * candidate


def lrp_head(in_channels: int, out_channels: int) -> nn.Sequential:
    """Latent residual prediction net in -> 512 -> 352 -> 192 -> out (GELU, 3x3 convs)."""
    widths = (in_channels, 512, 352, 192)
    layers: list[nn.Module] = []
    for a, b in zip(widths, widths[1:]):
        layers += [conv3x3(a, b), nn.GELU()]
    return nn.Sequential(*layers, conv3x3(widths[-1], out_channels))


class CATC(ChannelSliceCodec):
    """Cross-Attention Transformer Codec (Duan et al., JETCAS 2024).

    Sharing across slices (the paper does not say): the GRUs, the attention blocks and
    the LRP net see fixed-width inputs and are shared by the 5 slices; each slice has its
    own mean and scale heads. This gives 109.3 M parameters without the text encoder,
    the paper's "about 109 M" (one LRP net per slice would give 131.6 M, everything
    shared 101.5 M).

    Args:
        N: width of the analysis, synthesis and hyper transforms (256).
        M: latent channels (320), also the GRU state width.
        z_channels: hyper-latent channels (192).
        encoder_heads, decoder_heads: attention heads of the three CAT blocks of the
            analysis and synthesis transforms.
        hyper_heads: heads of the hyper transforms' CAT blocks (not given by the paper: 8).
        kv_tokens: text key/value tokens per head (32).
        num_slices: latent slices (5 of 64 channels).
        attention_dim, attention_heads: the entropy model's text attention blocks.
        text_dim: size of the prompt embedding (512 for CLIP ViT-B/32).
        text_encoder, text_encoder_revision: the frozen CLIP text encoder (Hub id and
            commit, or a local folder) that :meth:`encode_prompts` uses.
    """

    architecture = "catc"
    text_conditioned = True
    downsampling_factor = 64  # 16x analysis, 4x hyper-analysis

    def __init__(
        self,
        N: int = 256,
        M: int = 320,
        z_channels: int = 192,
        encoder_heads=(32, 16, 8),
        decoder_heads=(8, 16, 32),
        hyper_heads: int = 8,
        kv_tokens: int = 32,
        num_slices: int = 5,
        attention_dim: int = 192,
        attention_heads: int = 8,
        text_dim: int = 512,
        text_encoder: str = DEFAULT_TEXT_ENCODER,
        text_encoder_revision: str | None = DEFAULT_TEXT_ENCODER_REVISION,
    ):
        super().__init__(M, num_slices)
        self.text_dim = text_dim
        self._text_encoder_id = (text_encoder, text_encoder_revision)

        def cat(channels: int, heads: int) -> CATBlock:
            return CATBlock(channels, heads, text_dim, kv_tokens)

        eh, dh = list(encoder_heads), list(decoder_heads)
        self.g_a = TextSequential(
            ResidualBlockWithStride(3, N, stride=2),
            cat(N, eh[0]),
            ResidualBlockWithStride(N, N, stride=2),
            cat(N, eh[1]),
            ResidualBlockWithStride(N, N, stride=2),
            cat(N, eh[2]),
            conv3x3(N, M, stride=2),
        )
        self.g_s = TextSequential(
            ResidualBlockUpsample(M, N, 2),
            cat(N, dh[0]),
            ResidualBlockUpsample(N, N, 2),
            cat(N, dh[1]),
            ResidualBlockUpsample(N, N, 2),
            cat(N, dh[2]),
            subpel_conv3x3(N, 3, 2),
        )
        self.h_a = TextSequential(
            ResidualBlockWithStride(M, N, stride=2),
            cat(N, hyper_heads),
            conv3x3(N, z_channels, stride=2),
        )
        self.h_mean_s, self.h_scale_s = (
            TextSequential(
                ResidualBlockUpsample(z_channels, N, 2),
                cat(N, hyper_heads),
                subpel_conv3x3(N, M, 2),
            )
            for _ in range(2)
        )
        slice_channels = M // num_slices
        self.gru_mean, self.gru_scale = ConvGRU(slice_channels, M), ConvGRU(slice_channels, M)
        self.atten_mean, self.atten_scale = (
            TextAttentionBlock(M, attention_dim, attention_heads, text_dim, kv_tokens)
            for _ in range(2)
        )
        self.mean_heads, self.scale_heads = (
            nn.ModuleList(slice_head(M, slice_channels) for _ in range(num_slices))
            for _ in range(2)
        )
        self.lrp = lrp_head(2 * M + slice_channels, slice_channels)
        self.entropy_bottleneck = EntropyBottleneck(z_channels)
        self.gaussian_conditional = GaussianConditional(None)

    # ------------------------------------------------------------ prompts
    def encode_prompts(self, prompts: list[str]) -> Tensor:
        """Pooled CLIP embeddings (len(prompts), text_dim) on the model's device.

        Raises:
            ModelError: the text encoder cannot be loaded, or its size is not ``text_dim``.
        """
        encoder = load_text_encoder(*self._text_encoder_id)
        if encoder.dim != self.text_dim:
            raise ModelError(
                f"text encoder {encoder.name!r} gives {encoder.dim}-d embeddings but this "
                f"model expects {self.text_dim}: set text_encoder to a matching encoder"
            )
        return encoder.encode(prompts, device=self.entropy_bottleneck.quantiles.device)

    def prepare_text(self, text: Tensor | None, batch: int) -> Tensor:
        """The prompt embeddings checked against the batch; None means the empty prompt."""
        if text is None:
            return self.encode_prompts([""] * batch)
        if not isinstance(text, Tensor) or text.shape != (batch, self.text_dim):
            shape = tuple(text.shape) if isinstance(text, Tensor) else type(text).__name__
            raise ModelError(
                f"text must be a ({batch}, {self.text_dim}) tensor of prompt embeddings from "
                f"model.encode_prompts(prompts), got {shape}"
            )
        return text.to(self.entropy_bottleneck.quantiles)

    # ------------------------------------------------------------ channel-wise context
    def init_state(self, means: Tensor, scales: Tensor, text: Tensor) -> tuple[Tensor, Tensor]:
        return means, scales

    def slice_params(self, i: int, state, text: Tensor):
        mean_state, scale_state = state
        mean_features = self.atten_mean(mean_state, text)
        scale_features = self.atten_scale(scale_state, text)
        mu = self.mean_heads[i](mean_features)
        scale = self.scale_heads[i](scale_features)
        return mu, scale, (mean_features, scale_features)

    def residual_prediction(self, i: int, context, y_hat_slice: Tensor) -> Tensor:
        return self.lrp(torch.cat([*context, y_hat_slice], dim=1))

    def advance(self, i: int, state, y_hat_slice: Tensor):
        mean_state, scale_state = state
        return self.gru_mean(y_hat_slice, mean_state), self.gru_scale(y_hat_slice, scale_state)
