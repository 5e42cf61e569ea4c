"""``pku-aigi compress`` and ``pku-aigi decompress``: one image to a file and back.

Learned codecs (``--model REPO_OR_DIR``) write .aigic files; their header names the
model portably (repo id or folder name) with the fingerprint of its weights, so
``decompress`` loads it from the header, or from ``--model`` when the copy is elsewhere,
and refuses weights whose fingerprint differs. Conventional codecs (``--codec NAME``)
write their own format (JPEG, WebP, ...), which ``decompress`` recognises by each
codec's file signature (:func:`pku_aigi.codecs.identify`; HEVC and VVC streams by their
end-of-bitstream unit), else by the file extension. Existing outputs are never
overwritten without ``--force``. Inputs must be regular files of at most
:data:`~pku_aigi.image_input.MAX_FILE_BYTES` (512 MiB); a pipe, a device or a folder is
refused before anything is read.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..errors import CodecError, ModelError, PkuAigiError
from ..outputs import check_output_file, write_file_atomically

logger = logging.getLogger(__name__)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compress",
        help="compress one image with a learned model (.aigic) or a conventional codec",
        description="Compress IN into OUT. A learned model (--model) writes an .aigic file; "
        "a conventional codec (--codec) writes its own format.",
    )
    p.add_argument("input", type=Path, metavar="IN", help="image to compress (PNG, JPEG, ...)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--codec", metavar="NAME", help="conventional codec (`pku-aigi codecs`)")
    which.add_argument("--model", metavar="REPO_OR_DIR", help="learned model: Hub id or folder")
    p.add_argument(
        "--quality",
        type=float,
        help="the codec's quality (required with --codec; with --model it must equal the "
        "model's quality, which is the default)",
    )
    p.add_argument("--prompt", help="text prompt (used by text-conditioned models, e.g. CATC)")
    p.add_argument("--revision", help="model revision (branch, tag or commit) on the Hub")
    p.add_argument("--device", help="torch device for learned models (default: cuda if any)")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    p.set_defaults(func=compress_command)

    d = subparsers.add_parser(
        "decompress",
        help="decompress an .aigic file (or a conventional codec's file) to an image",
        description="Decompress IN to OUT (format from its extension, e.g. .png). For .aigic "
        "files the model is taken from the header unless --model is given.",
    )
    d.add_argument("input", type=Path, metavar="IN")
    d.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.png")
    d.add_argument("--model", metavar="REPO_OR_DIR", help="learned model (default: from header)")
    d.add_argument("--revision", help="model revision (default: from the header)")
    d.add_argument("--codec", metavar="NAME", help="conventional codec that wrote IN")
    d.add_argument("--device", help="torch device for learned models (default: cuda if any)")
    d.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    d.set_defaults(func=decompress_command)


def _read_image(path: Path):
    from ..image_input import open_image_file

    return open_image_file(path)


def _read_bytes(path: Path) -> bytes:
    """The compressed file ``path``: a regular file of at most
    :data:`~pku_aigi.image_input.MAX_FILE_BYTES` (never a pipe or a device)."""
    from ..image_input import read_regular_file

    return read_regular_file(path, what="a compressed file")


def compress_command(args: argparse.Namespace) -> int:
    check_output_file(args.output, force=args.force)
    image = _read_image(args.input)
    if args.model:
        from .learned import LearnedCodec

        codec = LearnedCodec.from_pretrained(args.model, args.revision, device=args.device)
        quality = args.quality
    else:
        from .by_name import get

        codec = get(args.codec)
        if args.quality is None:
            raise CodecError(f"--quality is required with --codec ({codec.quality_help})")
        quality = codec.check_quality(args.quality)
    data = codec.encode(image, quality, prompt=args.prompt)
    write_file_atomically(args.output, data)
    width, height = image.size
    print(
        f"{args.input} -> {args.output}: {codec.name}, {len(data)} bytes, "
        f"{8 * len(data) / (width * height):.4f} bpp"
    )
    return 0


def decompress_command(args: argparse.Namespace) -> int:

    check_output_file(args.output, force=args.force)
    output_format = _output_format(args.output)
    data = _read_bytes(args.input)
    if args.codec:
        from .by_name import get

        codec = get(args.codec)
    elif args.model:
        from .learned import LearnedCodec

        codec = LearnedCodec.from_pretrained(args.model, args.revision, device=args.device)
    else:
        codec = _decoder_for(args, data)
    image = codec.decode(data)
    try:
        import io

        buffer = io.BytesIO()
        image.save(buffer, format=output_format)
    except (ValueError, OSError, KeyError) as error:
        raise CodecError(f"cannot write {args.output}: {error}") from None
    write_file_atomically(args.output, buffer.getvalue())
    print(f"{args.input} -> {args.output}: {codec.name}, {image.size[0]}x{image.size[1]}")
    return 0


def _decoder_for(args: argparse.Namespace, data: bytes):
    """The codec named by the file's bytes; for .aigic, the model in its header."""
    from . import container, decoder_for
    from .learned import LearnedCodec

    header = container.peek(data)
    try:
        if header is not None and args.revision:
            return LearnedCodec.from_pretrained(header.model_id, args.revision, device=args.device)
        return decoder_for(data, args.input, device=args.device)
    except ModelError as error:
        if header is None:
            raise
        raise ModelError(
            f"{error}. {args.input} was made by the model {header.model_id!r}; "
            "pass --model REPO_OR_DIR to decode it with a copy of that model"
        ) from None


def _output_format(path: Path) -> str:
    from PIL import Image

    Image.init()
    fmt = Image.EXTENSION.get(path.suffix.lower())
    if fmt is None:
        raise PkuAigiError(f"unknown image extension {path.suffix!r} for {path}: use .png")
    return fmt
