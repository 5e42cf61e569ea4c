"""The coding and memory engine of the learned codecs.

Deterministic entropy coding and the desync check (:mod:`.entropy_coding`), that of
CompressAI's architectures (:mod:`.compressai_coding`), transforms run in bands of rows
(:mod:`.banding`), 8-bit pixels converted a band at a time (:mod:`.pixels`) and the
bounds that keep the rANS decoder inside its strings (:mod:`.rans_guard`). Nothing here
knows an architecture, a model folder or the zoo.
"""
