"""The model zoo: which trained codec a repo id names, and where its weights come from.

``zoo.json`` is package data (``pku_aigi/models/zoo/zoo.json``); the repository's
``models/zoo.json`` is a symbolic link to it. Each entry names a Hub model repo, what it
holds and a published checkpoint it can be made from::

    {"repo_id": "pku-aigi/mbt2018-mean-mse-q3", "architecture": "mbt2018-mean",
     "quality": 3, "metric": "mse", "trained_on": "Vimeo-90k", "source": "<url>"}

Optional keys: ``sha256`` (the full sha256 of the source file; otherwise the hash prefix
in its name, ``<name>-<first 8 hex of sha256>.pth.tar``, is checked as ``torch.hub``
does), ``size`` (of the source file, in bytes: the bound on its download), ``license``
and ``hparams`` (hyper-parameters other than the quality table's, checked like
``config.json``), ``base_model`` (the repo id of the model it was fine-tuned from:
such an entry is preferred over its base, as weights trained on AI-generated images are).
``PKU_AIGI_ZOO`` names an extra JSON file of the same format whose entries are added to
(and replace, by ``repo_id``) the packaged ones; ``PKU_AIGI_COMPRESSAI_URL`` replaces the
base URL of the packaged CompressAI sources (a mirror).

:func:`resolve` finds a zoo id's model folder, in this order: a local folder
(``$PKU_AIGI_MODELS_DIR/<repo_id>``), the Hugging Face cache (a downloaded Hub repo, or
a converted checkpoint), the Hub repo, and last the entry's source checkpoint, which is
downloaded (resumable), verified, converted with
:func:`~pku_aigi.models.zoo.convert.convert_compressai` and kept in the cache, so that
later loads need no network.

The zoo sits above the model code: :mod:`.manifest` (the manifest and what it says of
each entry), :mod:`.fetch` (where a model's folder comes from) and :mod:`.convert`
(CompressAI checkpoints into model folders). ``AutoCodec.from_pretrained(zoo_id)``
reaches it through the source resolver :func:`.fetch.zoo_folder`, which
``pku_aigi.models`` registers with the folder loader; the loaders never import the zoo.
This package holds no code of its own, only these names; importing it loads no model
code. ``python -m pku_aigi.models.zoo`` regenerates ``zoo.json`` (:mod:`.__main__`).
"""

from .fetch import (
    CACHE_FOLDER,
    MODELS_DIR_ENV,
    SOURCE_RECORD,
    cache_root,
    cached_folder,
    converted_folder,
    download_folder,
    fetch_source,
    hub_cache_folder,
    local_folder,
    resolve,
    where,
    zoo_folder,
)
from .manifest import (
    COMPRESSAI_BASE_URL,
    COMPRESSAI_LICENSE,
    COMPRESSAI_LICENSE_URL,
    ENTRY_KEYS,
    HASH_IN_NAME,
    MIRROR_ENV,
    NAMESPACE,
    VIMEO,
    ZOO_ENV,
    check_entry,
    compressai_zoo_entries,
    default_license,
    entry_for_pushed_model,
    expected_hash,
    file_sha256,
    find_entry,
    find_models,
    load_zoo,
    packaged_compressai_entries,
    preference,
    preferred_entries,
    render_zoo,
    repo_id,
    source_text,
    training_data,
)

__all__ = [
    "CACHE_FOLDER",
    "COMPRESSAI_BASE_URL",
    "COMPRESSAI_LICENSE",
    "COMPRESSAI_LICENSE_URL",
    "ENTRY_KEYS",
    "HASH_IN_NAME",
    "MIRROR_ENV",
    "MODELS_DIR_ENV",
    "NAMESPACE",
    "SOURCE_RECORD",
    "VIMEO",
    "ZOO_ENV",
    "cache_root",
    "cached_folder",
    "check_entry",
    "compressai_zoo_entries",
    "converted_folder",
    "default_license",
    "download_folder",
    "entry_for_pushed_model",
    "expected_hash",
    "fetch_source",
    "file_sha256",
    "find_entry",
    "find_models",
    "hub_cache_folder",
    "load_zoo",
    "local_folder",
    "packaged_compressai_entries",
    "preference",
    "preferred_entries",
    "render_zoo",
    "repo_id",
    "resolve",
    "source_text",
    "training_data",
    "where",
    "zoo_folder",
]
