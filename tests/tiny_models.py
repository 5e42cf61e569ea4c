"""Tiny hyper-parameters of the transformer codecs, shared by the tests."""

TINY_CATC = dict(
    N=32, M=40, z_channels=16, encoder_heads=[4, 4, 4], decoder_heads=[4, 4, 4],
    hyper_heads=4, kv_tokens=4, attention_dim=32, attention_heads=4, text_dim=16,
)  # fmt: skip
