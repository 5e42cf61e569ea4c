"""Learned architectures: the registry and the models that register in it.

:mod:`.specs` holds the registry (``available``, ``create``, ``get_spec``,
``register_architecture``, re-exported by :mod:`pku_aigi.models`); the other modules
define the model classes (subclasses of :class:`~pku_aigi.models.base.LearnedCodecModel`)
and register them when imported: :mod:`.compressai_archs` (CompressAI's models),
:mod:`.tcm` and :mod:`.catc` (channel-slice transformers, :mod:`.channel_slices`), with
the frozen text encoder of CATC in :mod:`.text_encoder`.
"""
