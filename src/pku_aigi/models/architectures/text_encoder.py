"""The frozen CLIP text encoder that conditions CATC on the prompt.

CATC (Duan et al., JETCAS 2024) sees the prompt only as the pooled, projected 512-d
embedding of OpenAI's CLIP ViT-B/32 text tower, computed from at most 77 tokens. The
encoder is loaded with ``transformers`` from the Hub (pinned revision) or from a local
folder, kept frozen, shared between models through a small cache, and never stored in a
codec's weights: config.json names it instead.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import torch

from ...errors import ModelError
from .builtin import DEFAULT_TEXT_ENCODER, DEFAULT_TEXT_ENCODER_REVISION

logger = logging.getLogger(__name__)

MAX_TOKENS = 77  # CLIP's context length; longer prompts are truncated

_cache: dict[tuple[str, str | None], FrozenTextEncoder] = {}
_cache_lock = threading.Lock()


class FrozenTextEncoder:
    """A CLIP text tower and its tokenizer, in eval mode without gradients.

    Args:
        model: a ``transformers.CLIPTextModelWithProjection``.
        tokenizer: the matching CLIP tokenizer.
        name: the Hub id or local folder it was loaded from.
        revision: the Hub revision (None for a local folder).
    """

    def __init__(self, model, tokenizer, name: str, revision: str | None):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.name = name
        self.revision = revision
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        """Size of the embedding (512 for CLIP ViT-B/32)."""
        return int(self.model.config.projection_dim)

    @torch.no_grad()
    def encode(self, prompts: list[str], device: torch.device | str = "cpu") -> torch.Tensor:
        """Embeddings (len(prompts), dim), float32 on ``device``; "" is the empty prompt."""
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise ModelError("prompts must be a list of strings (use '' for no prompt)")
        tokens = self.tokenizer(
            list(prompts),
            padding=True,
            truncation=True,
            max_length=MAX_TOKENS,
            return_tensors="pt",
        )
        with self._lock:  # the encoder may move between devices; one user at a time
            self.model.to(device)
            output = self.model(
                input_ids=tokens["input_ids"].to(device),
                attention_mask=tokens["attention_mask"].to(device),
            )
        return output.text_embeds.float()


def load_text_encoder(
    name: str = DEFAULT_TEXT_ENCODER,
    revision: str | None = DEFAULT_TEXT_ENCODER_REVISION,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> FrozenTextEncoder:
    """Load (once per process) the CLIP text encoder ``name`` at ``revision``.

    Args:
        name: a Hub id such as ``openai/clip-vit-base-patch32`` or a local folder holding
            a ``CLIPTextModelWithProjection`` (or ``CLIPModel``) and its tokenizer.
        revision: Hub commit; ignored for a local folder.
        cache_dir: Hugging Face cache folder.
        local_files_only: only use the cache, never the network.

    Raises:
        ModelError: the encoder or tokenizer cannot be loaded (e.g. offline and not cached).
    """
    local = Path(name).expanduser().is_dir()
    key = (str(Path(name).expanduser().resolve()) if local else name, None if local else revision)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        from transformers import AutoTokenizer, CLIPTextModelWithProjection

        from ... import network

        network.install()
        kwargs = {"revision": revision, "cache_dir": cache_dir}
        kwargs = {} if local else {**kwargs, "local_files_only": local_files_only}
        logger.info("loading text encoder %s%s", name, "" if local else f"@{revision}")
        try:
            tokenizer = AutoTokenizer.from_pretrained(name, **kwargs)
            model = CLIPTextModelWithProjection.from_pretrained(name, **kwargs)
        except (OSError, ValueError) as error:
            where = f"folder {name}" if local else f"{name!r} at revision {revision}"
            reason = str(error).strip().splitlines()[0].rstrip(".") if str(error).strip() else ""
            if not local and network.is_network_error(error):
                reason = f"it is not in the local cache and {network.why_offline(error)}"
            raise ModelError(
                f"cannot load the CLIP text encoder {where}: {reason}. CATC needs it to "
                f"embed prompts: download it once while online (`hf download {name}`), or "
                "set the model's text_encoder to a local folder holding a CLIP text model "
                "and its tokenizer"
            ) from error
        encoder = FrozenTextEncoder(model, tokenizer, name, None if local else revision)
        _cache[key] = encoder
        return encoder


def save_tiny_text_encoder(
    directory: str | Path,
    dim: int = 32,
    width: int = 32,
    layers: int = 2,
    heads: int = 2,
    mlp_ratio: int = 2,
    seed: int = 0,
) -> Path:
    """Write a small, randomly initialised CLIP text encoder and tokenizer to ``directory``.

    For tests, benchmarks and offline demos only: the architecture and tokenizer are
    CLIP's (byte-level BPE with CLIP's pre-tokenizer), the vocabulary is the 256 byte
    symbols plus a few merges, and the weights are random, so embeddings carry no meaning
    but are deterministic. Point a CATC model's ``text_encoder`` at the folder.
    ``dim=512, width=512, layers=12, heads=8, mlp_ratio=4`` has the compute of CLIP
    ViT-B/32's text tower.
    """
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    vocab = {symbol: i for i, symbol in enumerate(symbols)}
    vocab.update({symbol + "</w>": len(symbols) + i for i, symbol in enumerate(symbols)})
    merges = [("t", "h"), ("th", "e</w>"), ("a", "n"), ("an", "d</w>"), ("o", "f</w>")]
    for left, right in merges:
        vocab[left + right] = len(vocab)
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges)
    config = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=width,
        intermediate_size=mlp_ratio * width,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        projection_dim=dim,
        max_position_embeddings=MAX_TOKENS,
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
    )
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = CLIPTextModelWithProjection(config)
    finally:
        torch.random.set_rng_state(generator_state)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(directory)
    model.save_pretrained(directory)
    return directory
