"""The Hub model-folder format: what a model folder holds and how it is read.

:mod:`.folder` owns the format (file names, ``config.json``, the weights, loading,
source resolvers), :mod:`.validation` checks what is read before it is trusted, and
:mod:`.card` writes the model card.
"""
