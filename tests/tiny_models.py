"""Tiny hyper-parameters of every architecture, shared by the tests."""

TINY_COMPRESSAI = {
    "bmshj2018-factorized": {"N": 16, "M": 16},
    "bmshj2018-hyperprior": {"N": 16, "M": 16},
    "mbt2018-mean": {"N": 16, "M": 16},
    "mbt2018": {"N": 16, "M": 24},
    "cheng2020-anchor": {"N": 16},
    "cheng2020-attn": {"N": 16},
}

TINY_TCM = dict(
    N=16, M=40, z_channels=16, head_dims=[8] * 6, hyper_head_dim=8, atten_dim=32,
    atten_head_dim=8,
)  # fmt: skip

TINY_CATC = dict(
    N=32, M=40, z_channels=16, encoder_heads=[4, 4, 4], decoder_heads=[4, 4, 4],
    hyper_heads=4, kv_tokens=4, attention_dim=32, attention_heads=4, text_dim=16,
)  # fmt: skip

# Every registered architecture (CATC also needs a text encoder of width text_dim).
TINY_EVERY_ARCH = {
    **TINY_COMPRESSAI,
    **{f"tcm-{size}": TINY_TCM for size in ("small", "medium", "large")},
    "catc": TINY_CATC,
}


def tiny_model(arch: str, seed: int = 0, text_encoder=None):
    """An untrained tiny model of ``arch`` whose last analysis layer is scaled up, so
    that its latents hold real symbols as a trained model's do (CATC needs
    ``text_encoder``, a folder from ``save_tiny_text_encoder(..., dim=16)``)."""
    import torch

    from pku_aigi import models

    torch.manual_seed(seed)
    extra = {"text_encoder": str(text_encoder), "text_encoder_revision": None}
    hparams = {**TINY_EVERY_ARCH[arch], **(extra if arch == "catc" else {})}
    model = models.create(arch, quality=1, **hparams)
    convs = [m for m in model.g_a.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        convs[-1].weight.mul_(10)
    model.update(force=True)
    return model
