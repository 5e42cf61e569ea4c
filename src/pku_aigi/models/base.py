"""The base class of every learned codec: a ``torch.nn.Module`` that is also a Hub model.

:class:`LearnedCodecModel` follows CompressAI's model convention (``forward``,
``compress``, ``decompress``, ``aux_loss``, ``update``) and implements huggingface_hub's
``PyTorchModelHubMixin`` template methods (``_save_pretrained``, ``_from_pretrained``,
``generate_model_card``), so ``save_pretrained`` is the mixin's; ``from_pretrained``
and ``push_to_hub`` override the mixin's only where its design falls short (each says
why). The folder format is :mod:`.hub.folder`'s, the card :mod:`.hub.card`'s.

Subclasses (one per architecture, registered in :mod:`pku_aigi.models.architectures.specs`):

- set ``architecture`` (the registered name), ``downsampling_factor`` and, if needed,
  ``text_conditioned``;
- take their hyper-parameters (e.g. ``N``, ``M``) as ``__init__`` keyword arguments;
- implement ``forward(x, text=None)``, ``compress(x, text=None)`` and
  ``decompress(strings, shape, text=None)``;
- implement their deterministic entropy coding (:mod:`.coding.entropy_coding`) in
  ``_code_latents`` and ``_decode_latents``;
- describe what an .aigic file stores of them (the coding contract, which the codec
  asks and never works out itself): ``hyperprior`` with ``y_stride`` and ``z_stride``
  (the latent layout), ``latent_channels``, ``decodes_sequentially``; or override
  :meth:`latent_shape`, :meth:`symbol_counts` and :meth:`check_coded` for another
  layout.

Build them with ``Cls.from_config(**config)`` (or :func:`pku_aigi.models.create`), which
fills quality, metric and lambda from the architecture's tables and records
:attr:`config`.
"""

from __future__ import annotations

import hashlib
import inspect
import threading
from pathlib import Path
from typing import Any

import torch
from compressai.models import CompressionModel
from huggingface_hub import ModelCard, PyTorchModelHubMixin
from huggingface_hub.utils import validate_hf_hub_args

from ..errors import CorruptStreamError, ModelError
from .architectures.specs import get_spec
from .coding import rans_guard
from .coding.entropy_coding import Coded, WeightsCache, crc, deterministic_torch
from .coding.pixels import from_pixels, is_pixels, to_pixels
from .hub import folder
from .hub.card import render_model_card
from .hub.lineage import LINEAGE_KEY, check_lineage
from .hub.validation import check_card_info

# Config keys every model records besides its architecture's hyper-parameters.
_COMMON_KEYS = ("architecture", "quality", "metric", "lmbda")
FINGERPRINT_BYTES = 8
_fingerprint_lock = threading.Lock()


class LearnedCodecModel(
    torch.nn.Module,
    PyTorchModelHubMixin,
    library_name="pku-aigi",
    tags=["image-compression", "learned-image-compression", "pku-aigi"],
):
    """A learned image codec that loads from and saves to the Hugging Face Hub."""

    architecture: str = ""
    text_conditioned: bool = False
    # Height and width of the input must be multiples of this (CompressAI's name).
    downsampling_factor: int
    # The latent layout of the coded strings: y (at 1/y_stride of the coded size) and,
    # with a hyperprior, z (at 1/z_stride); the stored shape is z's, else y's.
    hyperprior: bool = True
    y_stride: int = 16
    z_stride: int = 64
    # True for a context model that decodes one latent position at a time (its decoding
    # time grows with the image far faster than the others').
    decodes_sequentially: bool = False

    # CompressAI's implementations work for any module tree: reuse them.
    aux_loss = CompressionModel.aux_loss
    update = CompressionModel.update

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_config(cls, **config: Any) -> LearnedCodecModel:
        """An untrained model built from ``config`` (what ``config.json`` stores).

        Missing hyper-parameters come from the architecture's quality table, a missing
        ``lmbda`` from its lambda ladder for ``metric`` (default ``"mse"``).

        Raises:
            ModelError: unknown architecture, quality, metric or hyper-parameter.
        """
        config = dict(config)
        architecture = config.pop("architecture", None) or cls.architecture
        if not architecture:
            raise ModelError("config has no 'architecture': cannot tell which model to build")
        spec = get_spec(architecture)
        if cls.architecture and architecture != cls.architecture:
            raise ModelError(
                f"config is for architecture {architecture!r}, not {cls.architecture!r}: "
                "load it with pku_aigi.AutoCodec"
            )
        if not cls.architecture:  # called on the base class: dispatch
            return spec.load_model_class().from_config(architecture=architecture, **config)

        quality = config.pop("quality", None)
        if quality is None:
            quality = spec.default_quality or max(spec.qualities)
        if not isinstance(quality, int) or isinstance(quality, bool):
            raise ModelError(f"quality must be an integer, got {quality!r}")
        hparams = spec.hyperparameters(quality)
        metric = config.pop("metric", None) or "mse"
        if spec.lambdas and metric not in spec.lambdas:
            raise ModelError(
                f"{architecture} has no metric {metric!r}: choose one of {sorted(spec.lambdas)}"
            )
        lmbda = config.pop("lmbda", None)
        if lmbda is None:
            lmbda = spec.lambdas.get(metric, {}).get(quality)
        base_model = config.pop(LINEAGE_KEY, None)  # what a fine-tuned model started from
        hparams.update(config)
        _check_hyperparameters(cls, hparams)

        model = cls(**hparams)
        model.config = {
            "architecture": architecture,
            "quality": quality,
            "metric": metric,
            "lmbda": lmbda,
            **hparams,
        }
        if base_model is not None:
            model.config[LINEAGE_KEY] = check_lineage(base_model, "config")
        return model

    # Plain attributes kept out of nn.Module's registries (set lazily: subclasses run
    # CompressAI's __init__, which knows nothing of them).
    @property
    def config(self) -> dict[str, Any]:
        """Architecture, quality, metric, lambda and hyper-parameters (``config.json``)."""
        config = self.__dict__.get("_codec_config")
        if config is None:  # built directly, not through from_config
            config = {key: None for key in _COMMON_KEYS}
            config["architecture"] = self.architecture
            self.__dict__["_codec_config"] = config
        return config

    @config.setter
    def config(self, value: dict[str, Any]) -> None:
        self.__dict__["_codec_config"] = dict(value)

    @property
    def card_info(self) -> dict[str, Any]:
        """What the model card says beyond the config: ``training``, ``rd_points`` and
        ``source`` (see :func:`pku_aigi.models.hub.card.write_model_card`). Saved with the
        weights, so a loaded model writes the same card again."""
        return self.__dict__.setdefault("_card_info", {})

    @card_info.setter
    def card_info(self, value: dict[str, Any]) -> None:
        self.__dict__["_card_info"] = check_card_info(value)

    @property
    def coding_cache(self) -> WeightsCache:
        """Float64 copies and tables the entropy coding derives from the weights."""
        return self.__dict__.setdefault("_coding_cache", WeightsCache())

    def fingerprint(self) -> bytes:
        """8 bytes of SHA-256 over the architecture name and the state dict: every
        weight and the entropy coder's tables (names, dtypes, shapes and values).

        Two models decode each other's .aigic files only when their fingerprints agree;
        the file header carries the encoder's. Computed once, and again only after a
        tensor is replaced or changed in place. A text-conditioned model's frozen text
        encoder is not part of it (config.json names it; the desync checks cover what it
        changes).
        """
        state = self.state_dict(keep_vars=True)
        key = tuple((name, t.data_ptr(), t._version, t.device) for name, t in state.items())
        with _fingerprint_lock:
            cached = self.__dict__.get("_fingerprint")
            if cached is not None and cached[0] == key:
                return cached[1]
            digest = hashlib.sha256(self.architecture.encode())
            for name in sorted(state):
                tensor = state[name].detach().cpu().contiguous()
                header = f"\0{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0"
                digest.update(header.encode())
                digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
            value = digest.digest()[:FINGERPRINT_BYTES]
            self.__dict__["_fingerprint"] = (key, value)
            return value

    def encode_prompts(self, prompts: list[str]) -> torch.Tensor | None:
        """Prompt embeddings for text-conditioned models; ``None`` for the others."""
        return None

    # ---------------------------------------------------------------- state dicts
    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Like ``nn.Module.load_state_dict``, resizing the entropy coder's tables first
        (their shapes depend on the weights), so a fresh model loads any trained ones."""
        folder.resize_entropy_tables(self, state_dict)
        return torch.nn.Module.load_state_dict(self, state_dict, strict=strict, assign=assign)

    def entropy_coder_ready(self) -> bool:
        """True when every entropy model has its tables (``update()`` has run)."""
        state = self.state_dict()
        return all(state[key].numel() > 0 for key in folder.entropy_table_keys(self))

    # ---------------------------------------------------------------- coding contract
    @property
    def latent_channels(self) -> int:
        """Channels of the latent y (``M``; ``N`` for models whose y has N channels)."""
        channels = getattr(self, "M", None) or self.config.get("M") or self.config.get("N")
        if not isinstance(channels, int) or channels < 1:
            raise ModelError(f"{self.architecture} does not say how many channels y has")
        return channels

    def latent_shape(self, height: int, width: int) -> tuple[int, ...]:
        """The latent shape an .aigic file stores for a coded (padded) ``height`` x
        ``width``: z's (H, W) with a hyperprior, else y's."""
        stride = self.z_stride if self.hyperprior else self.y_stride
        return height // stride, width // stride

    def symbol_counts(self, height: int, width: int) -> list[int]:
        """Symbols coded in each string group for a coded ``height`` x ``width``: y's,
        then z's with a hyperprior (its entropy bottleneck's channels)."""
        y = self.latent_channels * (height // self.y_stride) * (width // self.y_stride)
        if not self.hyperprior:
            return [y]
        z_height, z_width = height // self.z_stride, width // self.z_stride
        return [y, int(self.entropy_bottleneck.channels) * z_height * z_width]

    def check_coded(self, coded: Coded, height: int, width: int) -> None:
        """Check what a file holds against what this model codes for a coded (padded)
        ``height`` x ``width``, before any decoding work, and set ``coded.padding``.

        The size must be a multiple of :attr:`downsampling_factor`, the latent shape
        :meth:`latent_shape`, one string per group of :meth:`symbol_counts`; y's string
        must be long enough for its symbols when a Gaussian conditional codes them
        (:mod:`.coding.rans_guard`). Every string gets the zero padding that keeps the rANS
        decoder inside it.

        Raises:
            CorruptStreamError: naming what does not fit.
        """
        factor = int(self.downsampling_factor)
        if height % factor or width % factor:
            raise CorruptStreamError(
                f"not a valid .aigic file: coded size {width}x{height} is not a multiple of "
                f"{factor}, the downsampling factor of {self.architecture}"
            )
        expected = self.latent_shape(height, width)
        if tuple(coded.shape) != tuple(expected):
            raise CorruptStreamError(
                f"not a valid .aigic file: latent shape {tuple(coded.shape)} does not match "
                f"the coded {width}x{height} image ({self.architecture} needs {expected})"
            )
        counts = self.symbol_counts(height, width)
        groups = [len(group) for group in coded.strings]
        if groups != [1] * len(counts):
            raise CorruptStreamError(
                f"not a valid .aigic file: {len(groups)} string groups of sizes {groups}, "
                f"{self.architecture} codes {len(counts)} of 1"
            )
        if self.hyperprior and hasattr(self, "gaussian_conditional"):
            gc = self.gaussian_conditional
            bits = rans_guard.min_bits_per_symbol(gc._quantized_cdf, gc._cdf_length)
            rans_guard.check_string_can_hold(coded.strings[0][0], counts[0], bits, "y string")
        coded.padding = [
            [rans_guard.pad_length(string, count) for string in group]
            for group, count in zip(coded.strings, counts)
        ]

    # ---------------------------------------------------------------- entropy coding
    def code_latents(self, x: torch.Tensor, text=None, seed: int = 0) -> Coded:
        """Entropy-code one image ``x`` (1, 3, H, W) deterministically.

        ``x`` is a float image in [0, 1] or 8-bit pixels (uint8, read as ``x / 255``,
        :mod:`.coding.pixels`); H and W are multiples of :attr:`downsampling_factor`. ``seed``
        starts the CRC32s of the desync check: the codec derives it from the file
        header so that the check also binds the strings to it.
        """
        self.update(force=False)  # a model fresh from create() codes at once
        with deterministic_torch():
            return self._code_latents(x, text, seed)

    def decode_latents(
        self, coded: Coded, text=None, seed: int = 0, *, pixels: bool = False
    ) -> torch.Tensor:
        """Decode to x_hat (1, 3, H, W) in [0, 1], or with ``pixels`` to 8-bit pixels
        (:func:`.coding.pixels.to_pixels`); DesyncError if the desync checks disagree."""
        self.update(force=False)
        with deterministic_torch():
            x_hat = self._decode_latents(coded, text, seed, pixels=pixels)
            return to_pixels(x_hat) if pixels and not is_pixels(x_hat) else x_hat

    def _code_latents(self, x: torch.Tensor, text, seed: int) -> Coded:
        """The model's own ``compress``, without desync check (override to add one)."""
        out = self.compress(from_pixels(x), text=text)
        shape = tuple(int(s) for s in out["shape"])
        return Coded(out["strings"], shape, crc(seed=seed), None)

    def _decode_latents(self, coded: Coded, text, seed: int, pixels: bool) -> torch.Tensor:
        """The model's own ``decompress``. A model that can make 8-bit ``pixels`` with
        less memory than the float image (band by band) returns them; others return
        the float image, which :meth:`decode_latents` converts."""
        x_hat = self.decompress(coded.padded_strings(), coded.shape, text=text)["x_hat"]
        return x_hat.clamp(0, 1)

    # ---------------------------------------------------------------- Hub (mixin hooks)
    def _save_pretrained(self, save_directory: Path) -> None:
        """Write the weights and ``config.json`` (:func:`.hub.folder.save_folder`).

        The mixin then writes the card (:meth:`generate_model_card`) if the folder has
        none: drop a stale one, as the mixin drops a stale ``config.json``.
        """
        folder.save_folder(self, save_directory)
        (save_directory / folder.CARD_NAME).unlink(missing_ok=True)

    def generate_model_card(self, *args, **kwargs) -> ModelCard:
        """The model card (:func:`pku_aigi.models.hub.card.render_model_card`)."""
        return render_model_card(self, **self.card_info)

    def push_to_hub(self, repo_id: str, **kwargs: Any):
        """Upload to Hub repo ``repo_id`` (huggingface_hub's ``push_to_hub``).

        Overridden only to turn the ways an upload fails on the network (unreachable
        Hub, refused upload) into one :class:`NetworkError` line with what to do
        instead: the mixin has no template method around the upload. What is uploaded
        is the mixin's, through :meth:`_save_pretrained` and :meth:`generate_model_card`.

        Raises:
            NetworkError: the Hub cannot be reached, or refuses the upload (one line).
        """
        from .. import network

        with network.guard(
            f"the Hub to push model repo {repo_id}",
            "The model can be saved with save_pretrained(folder) and uploaded later",
            http_errors=True,
        ):
            return super().push_to_hub(repo_id, **kwargs)

    @classmethod
    @validate_hf_hub_args
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | Path,
        *,
        force_download: bool = False,
        token: str | bool | None = None,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
        revision: str | None = None,
        **model_kwargs: Any,
    ):
        """Load a saved model from a local folder or a Hub repo id, strictly.

        huggingface_hub's ``from_pretrained`` (keywords ``revision``, ``cache_dir``,
        ``force_download``, ``token``, ``local_files_only``, ``map_location``), with
        failures to reach or read the model as one :class:`ModelError`. Called on the
        base class (or :class:`AutoCodec`) the class is picked from ``config.json``;
        called on a subclass the folder must hold that architecture. The entropy coder
        is ready. A name that is not a local folder goes to the registered source
        resolvers first (:func:`.hub.folder.resolve_source`): a model zoo id
        (:mod:`pku_aigi.models.zoo`) resolves through the zoo: local folder, cache, Hub
        repo, or its published checkpoint, converted once.

        Why the mixin's public method is overridden, not only its template method
        :meth:`_from_pretrained`: the mixin's reads ``config.json`` itself before it
        calls :meth:`_from_pretrained` (with plain ``json.load``: an untrusted file
        nested too deeply or holding no object fails outside :class:`ModelError`) and
        asks the Hub before anything else (a zoo id may be a local folder or a
        converted checkpoint, and a repo that cannot be reached is not one clear
        error). Here the name is resolved first and the folder module reads and checks
        ``config.json``, once.
        """
        source = folder.resolve_source(
            str(pretrained_model_name_or_path),
            revision=revision,
            token=token,
            force_download=force_download,
        )
        return cls._from_pretrained(
            model_id=source,
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            local_files_only=local_files_only,
            token=token,
            **model_kwargs,
        )

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        map_location: str | torch.device = "cpu",
        **model_kwargs: Any,  # the mixin's config.json values: the folder module reads it
    ) -> LearnedCodecModel:
        """The mixin's template method: :func:`.hub.folder.load_folder` of ``model_id``."""
        return folder.load_folder(
            model_id,
            expected_class=cls if cls.architecture else None,
            map_location=map_location,
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            token=token,
            local_files_only=local_files_only,
        )


class AutoCodec:
    """Loads any registered learned codec; the class comes from ``config.json``.

    Example:
        >>> model = AutoCodec.from_pretrained("org/mbt2018-mean-mse-q3")  # doctest: +SKIP
    """

    def __init__(self) -> None:
        raise TypeError("use AutoCodec.from_pretrained(repo_id_or_dir)")

    @staticmethod
    def from_pretrained(pretrained_model_name_or_path: str | Path, **kwargs) -> LearnedCodecModel:
        """:meth:`LearnedCodecModel.from_pretrained` on the base class."""
        return LearnedCodecModel.from_pretrained(pretrained_model_name_or_path, **kwargs)


def _check_hyperparameters(cls: type, hparams: dict[str, Any]) -> None:
    parameters = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    known = [name for name in parameters if name != "self"]
    unknown = sorted(set(hparams) - set(known))
    if unknown:
        raise ModelError(
            f"{cls.architecture} has no hyper-parameter {', '.join(unknown)}: "
            f"its hyper-parameters are {', '.join(known)}"
        )
