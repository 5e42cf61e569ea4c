"""TCM: mixed Transformer-CNN learned image codec.

J. Liu, H. Sun, J. Katto. "Learned Image Compression with Mixed Transformer-CNN
Architectures." CVPR 2023. https://arxiv.org/abs/2303.14978

Analysis and synthesis transforms alternate residual (down/up)sampling blocks with
Transformer-CNN mixture (TCM) blocks: a 1x1 conv splits the features into a CNN half
(residual block) and a Transformer half (Swin block: window or shifted-window
self-attention), and a second 1x1 conv fuses them. The hyperprior has separate mean and
scale synthesis branches; the latent is coded in 5 channel slices whose parameters come
from the hyperprior and up to 5 earlier slices through Swin-based attention modules
(SWAtten), with latent residual prediction. Three sizes: small, medium and large
(N = 64, 96, 128 with M = 320). Layers and entropy models are CompressAI's; the Swin
blocks are written here.
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


class WindowAttention(nn.Module):
    """Multi-head self-attention inside (shifted) windows with relative position bias.

    Liu et al., "Swin Transformer", ICCV 2021. Input and output are (B, H, W, C); H and W
    are zero-padded to multiples of the window and cropped back.
    """

    def __init__(self, dim: int, head_dim: int, window: int, shifted: bool):
        super().__init__()
        if dim % head_dim:
            raise ModelError(f"width {dim} is not a multiple of the head width {head_dim}")
        self.heads = dim // head_dim
        self.head_dim = head_dim
        self.window = window
        self.shifted = shifted
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_bias = nn.Parameter(torch.zeros(self.heads, (2 * window - 1) ** 2))
        nn.init.trunc_normal_(self.relative_bias, std=0.02)
        coords = torch.stack(
            torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
        ).flatten(1)
        relative = coords[:, :, None] - coords[:, None, :] + window - 1
        index = relative[0] * (2 * window - 1) + relative[1]
        self.register_buffer("relative_index", index, persistent=False)

    def _shift_mask(self, height: int, width: int, device) -> Tensor:
        """-inf between tokens of a shifted window that come from different regions."""
        w, s = self.window, self.window // 2
        regions = torch.zeros(height, width, device=device)
        bounds = (slice(0, -w), slice(-w, -s), slice(-s, None))
        label = 0
        for rows in bounds:
            for cols in bounds:
                regions[rows, cols] = label
                label += 1
        regions = regions.view(height // w, w, width // w, w).transpose(1, 2).reshape(-1, w * w)
        different = regions[:, :, None] != regions[:, None, :]
        return torch.zeros(different.shape, device=device).masked_fill(different, float("-inf"))

    def forward(self, x: Tensor) -> Tensor:
        batch, height, width, channels = x.shape
        w = self.window
        pad_h, pad_w = (-height) % w, (-width) % w
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
        hp, wp = height + pad_h, width + pad_w
        shift = w // 2 if self.shifted and min(hp, wp) > w else 0
        if shift:
            x = torch.roll(x, (-shift, -shift), dims=(1, 2))
        windows = x.view(batch, hp // w, w, wp // w, w, channels).transpose(2, 3)
        windows = windows.reshape(-1, w * w, channels)
        q, k, v = (
            self.qkv(windows)
            .view(windows.size(0), w * w, 3, self.heads, self.head_dim)
            .permute(2, 0, 3, 1, 4)
        )
        bias = self.relative_bias[:, self.relative_index]  # (heads, w*w, w*w)
        if shift:
            mask = self._shift_mask(hp, wp, x.device)  # (windows per image, w*w, w*w)
            bias = (bias[None] + mask[:, None]).repeat(batch, 1, 1, 1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        out = self.proj(out.transpose(1, 2).reshape(-1, w * w, channels))
        out = out.view(batch, hp // w, wp // w, w, w, channels).transpose(2, 3)
        out = out.reshape(batch, hp, wp, channels)
        if shift:
            out = torch.roll(out, (shift, shift), dims=(1, 2))
        return out[:, :height, :width].contiguous()


class SwinLayer(nn.Module):
    """Pre-norm Swin transformer layer on (B, H, W, C): window attention, then a 4x MLP."""

    def __init__(self, dim: int, head_dim: int, window: int, shifted: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = WindowAttention(dim, head_dim, window, shifted)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TCMBlock(nn.Module):
    """Transformer-CNN mixture block on 2*dim channels (residual around the whole block)."""

    def __init__(self, dim: int, head_dim: int, window: int, shifted: bool):
        super().__init__()
        self.dim = dim
        self.split = conv1x1(2 * dim, 2 * dim)
        self.cnn = ResidualBlock(dim, dim)
        self.transformer = SwinLayer(dim, head_dim, window, shifted)
        self.fuse = conv1x1(2 * dim, 2 * dim)

    def forward(self, x: Tensor) -> Tensor:
        local, nonlocal_ = self.split(x).split(self.dim, dim=1)
        local = local + self.cnn(local)
        nonlocal_ = self.transformer(nonlocal_.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return x + self.fuse(torch.cat([local, nonlocal_], dim=1))


def tcm_stage(dim: int, depth: int, head_dim: int, window: int) -> list[nn.Module]:
    """``depth`` TCM blocks alternating window and shifted-window attention."""
    return [TCMBlock(dim, head_dim, window, shifted=bool(i % 2)) for i in range(depth)]


class SwinAttention(AttentionBlock):
    """SWAtten: CompressAI's attention block with a Swin (W + SW) non-local branch.

    Projects ``in_channels`` to ``inner`` channels, gates the residual units' output with
    the sigmoid of the Swin branch, and projects back to ``in_channels``.
    """

    def __init__(self, in_channels: int, inner: int, head_dim: int, window: int):
        super().__init__(inner)
        self.project_in = conv1x1(in_channels, inner)
        self.swin = nn.Sequential(
            SwinLayer(inner, head_dim, window, shifted=False),
            SwinLayer(inner, head_dim, window, shifted=True),
        )
        self.project_out = conv1x1(inner, in_channels)

    def forward(self, x: Tensor) -> Tensor:
        x = self.project_in(x)
        context = self.swin(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        out = self.conv_a(x) * torch.sigmoid(self.conv_b(context)) + x
        return self.project_out(out)


class TCM(ChannelSliceCodec):
    """TCM (Liu, Sun, Katto, CVPR 2023), large configuration by default (N=128, M=320).

    Args:
        N: width of each half (CNN / Transformer) of the mixture blocks.
        M: latent channels.
        depths: TCM blocks per stage (3 analysis, 3 synthesis stages).
        head_dims: attention head width per stage.
        window: Swin window of the main transforms.
        hyper_head_dim, hyper_window: the same for the hyper transforms.
        z_channels: hyper-latent channels.
        num_slices, max_support_slices: channel-wise entropy model.
        atten_dim, atten_head_dim: width and head width of the SWAtten modules.
    """

    architecture = "tcm-large"
    downsampling_factor = 128  # 16x downsampling, then 8x8 windows on the latent

    def __init__(
        self,
        N: int = 128,
        M: int = 320,
        depths=(2, 2, 2, 2, 2, 2),
        head_dims=(8, 16, 32, 32, 16, 8),
        window: int = 8,
        hyper_head_dim: int = 32,
        hyper_window: int = 4,
        z_channels: int = 192,
        num_slices: int = 5,
        max_support_slices: int = 5,
        atten_dim: int = 128,
        atten_head_dim: int = 16,
    ):
        super().__init__(M, num_slices)
        self.max_support_slices = max_support_slices
        d, h = list(depths), list(head_dims)
        wide = 2 * N
        self.g_a = nn.Sequential(
            ResidualBlockWithStride(3, wide, stride=2),
            *tcm_stage(N, d[0], h[0], window),
            ResidualBlockWithStride(wide, wide, stride=2),
            *tcm_stage(N, d[1], h[1], window),
            ResidualBlockWithStride(wide, wide, stride=2),
            *tcm_stage(N, d[2], h[2], window),
            conv3x3(wide, M, stride=2),
        )
        self.g_s = nn.Sequential(
            ResidualBlockUpsample(M, wide, 2),
            *tcm_stage(N, d[3], h[3], window),
            ResidualBlockUpsample(wide, wide, 2),
            *tcm_stage(N, d[4], h[4], window),
            ResidualBlockUpsample(wide, wide, 2),
            *tcm_stage(N, d[5], h[5], window),
            subpel_conv3x3(wide, 3, 2),
        )
        self.h_a = nn.Sequential(
            ResidualBlockWithStride(M, wide, stride=2),
            *tcm_stage(N, d[0], hyper_head_dim, hyper_window),
            conv3x3(wide, z_channels, stride=2),
        )
        self.h_mean_s, self.h_scale_s = (
            nn.Sequential(
                ResidualBlockUpsample(z_channels, wide, 2),
                *tcm_stage(N, d[3], hyper_head_dim, hyper_window),
                subpel_conv3x3(wide, M, 2),
            )
            for _ in range(2)
        )
        slice_channels = M // num_slices
        supports = [M + slice_channels * min(i, max_support_slices) for i in range(num_slices)]
        self.atten_mean, self.atten_scale = (
            nn.ModuleList(SwinAttention(c, atten_dim, atten_head_dim, window) for c in supports)
            for _ in range(2)
        )
        self.cc_mean_transforms, self.cc_scale_transforms = (
            nn.ModuleList(slice_head(c, slice_channels) for c in supports) for _ in range(2)
        )
        self.lrp_transforms = nn.ModuleList(
            slice_head(c + slice_channels, slice_channels) for c in supports
        )
        self.entropy_bottleneck = EntropyBottleneck(z_channels)
        self.gaussian_conditional = GaussianConditional(None)

    # ------------------------------------------------------------ channel-wise context
    def init_state(self, means: Tensor, scales: Tensor, text=None) -> dict:
        return {"means": means, "scales": scales, "slices": []}

    def slice_params(self, i: int, state: dict, text=None):
        support = state["slices"][: self.max_support_slices]
        mean_support = self.atten_mean[i](torch.cat([state["means"], *support], dim=1))
        scale_support = self.atten_scale[i](torch.cat([state["scales"], *support], dim=1))
        mu = self.cc_mean_transforms[i](mean_support)
        scale = self.cc_scale_transforms[i](scale_support)
        return mu, scale, mean_support

    def residual_prediction(self, i: int, context: Tensor, y_hat_slice: Tensor) -> Tensor:
        return self.lrp_transforms[i](torch.cat([context, y_hat_slice], dim=1))

    def advance(self, i: int, state: dict, y_hat_slice: Tensor) -> dict:
        return {**state, "slices": [*state["slices"], y_hat_slice]}


class TCMSmall(TCM):
    """TCM, small configuration (N=64)."""

    architecture = "tcm-small"


class TCMMedium(TCM):
    """TCM, medium configuration (N=96)."""

    architecture = "tcm-medium"
