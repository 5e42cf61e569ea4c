"""The columns of a results dataset: one Parquet row per measurement, one per BD value.

``MEASUREMENT_COLUMNS`` is the schema of ``data/measurements.parquet`` (the ``measurements``
config of the dataset card), ``BD_COLUMNS`` that of ``data/bd.parquet`` (the ``bd``
config): name, Arrow type and meaning, the meaning printed in the card's column table.
Readers need only ``REQUIRED`` of them; the others may be null (a metric not measured).
"""

from __future__ import annotations

MEASURED = "measured"
REFERENCE = "reference"

MEASUREMENT_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("run", "string", "name of the benchmark run (`pku-aigi results publish --name`)"),
    ("source", "string", f"`{MEASURED}` (a bench run); `{REFERENCE}` rows live apart"),
    ("codec", "string", "codec name in the run (a learned codec: architecture, e.g. mbt2018)"),
    ("codec_version", "string", "the codec's version string: library versions and settings"),
    (
        "codec_settings",
        "string",
        "options given to the codec (`--codec-option`), k=v; null: its defaults",
    ),  # fmt: skip
    ("learned", "bool", "a learned codec (Hub model) rather than a conventional one"),
    ("model_repo", "string", "learned codecs: the model's Hub repo id (or folder name)"),
    ("model_revision", "string", "learned codecs: the model's Hub revision, when known"),
    ("image", "string", "the image's name in the run's input"),
    (
        "image_key",
        "string",
        "the image's id: SHA-256 of its size and RGB pixels (16 hex "
        "digits), the same in every run on that image",
    ),  # fmt: skip
    ("subset", "string", "dataset config (sd21b, sd21, sdxl, mj52, mod) or input sub-folder"),
    ("width", "int64", "image width in pixels"),
    ("height", "int64", "image height in pixels"),
    ("prompt_chars", "int64", "characters of the prompt given to the codec"),
    ("quality", "float64", "the codec's quality parameter (its own scale, `pku-aigi codecs`)"),
    ("bytes", "int64", "bytes of the whole stored file"),
    ("payload_bytes", "int64", "learned codecs: bytes of the entropy-coded strings alone"),
    ("bpp", "float64", "bits per pixel: bytes x 8 / (width x height)"),
    ("payload_bpp", "float64", "learned codecs: payload bytes x 8 / pixels"),
    ("psnr", "float64", "PSNR in dB on RGB 8-bit"),
    ("ms_ssim", "float64", "MS-SSIM (pytorch_msssim, data_range 255) on RGB 8-bit"),
    ("ms_ssim_db", "float64", "MS-SSIM in dB: -10 log10(1 - MS-SSIM)"),
    (
        "clip_score",
        "float64",
        "CLIP score of the reconstruction against the prompt "
        "(`bench --clip`; null when not measured)",
    ),  # fmt: skip
    ("clip_score_original", "float64", "CLIP score of the original against the prompt"),
    ("lpips", "float64", "LPIPS distance (`bench --lpips`; null when not measured)"),
    ("encode_s", "float64", "encode seconds"),
    ("decode_s", "float64", "decode seconds"),
    ("device", "string", "device of the learned codecs (cpu, cuda)"),
    ("package_version", "string", "pku-aigi version that measured the row"),
    ("protocol", "string", "the run's protocol (`bench --protocol`) or custom"),
    ("prompt_mode", "string", "prompt given to the codecs (`bench --prompt-mode`)"),
)

BD_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("run", "string", "name of the benchmark run"),
    ("subset", "string", "group: `all` images or one subset"),
    ("codec", "string", "codec compared with the anchor"),
    ("anchor", "string", "the run's anchor codec"),
    ("bd_rate_psnr", "float64", "BD-rate on PSNR, % (< 0: fewer bits than the anchor)"),
    ("bd_psnr", "float64", "BD-PSNR, dB"),
    ("bd_rate_ms_ssim_db", "float64", "BD-rate on MS-SSIM dB, %"),
    ("bd_ms_ssim_db", "float64", "BD-MS-SSIM dB, dB"),
    ("bd_rate_psnr_full", "float64", "BD-rate on PSNR over the full overlap of the curves"),
    ("bd_rate_ms_ssim_db_full", "float64", "BD-rate on MS-SSIM dB over the full overlap"),
    ("bpp_low", "float64", "low end of the bpp range of the BD values (null: full overlap)"),
    ("bpp_high", "float64", "high end of that range"),
    ("range_chosen", "string", "why that range"),
    ("note", "string", "why a value is missing or flagged"),
)

# What compare and the leaderboard read: a dataset without them is refused.
REQUIRED = (
    "run", "codec", "codec_version", "image_key", "subset", "quality", "bpp", "psnr",
    "ms_ssim", "ms_ssim_db",
)  # fmt: skip


def arrow_schema(columns=MEASUREMENT_COLUMNS):
    """The ``pyarrow.Schema`` of ``columns``."""
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "bool": pa.bool_(),
        "int64": pa.int64(),
        "float64": pa.float64(),
    }
    return pa.schema([(name, types[kind]) for name, kind, _ in columns])


def convert(value, kind: str):
    """A CSV cell (or JSON value) as a value of column type ``kind``; "" and None are null."""
    if value is None or value == "":
        return None
    if kind == "string":
        return str(value)
    if kind == "bool":
        return value if isinstance(value, bool) else str(value).lower() == "true"
    if kind == "int64":
        return int(float(value))
    return float(value)
