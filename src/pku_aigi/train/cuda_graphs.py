"""CUDA graphs for training small codecs, which are launch-bound: no host syncs, one launch.

CompressAI's ``EntropyBottleneck.forward`` builds its permutation as a CUDA tensor and
unpacks it, a device-to-host sync per call; :func:`remove_host_syncs` swaps in the same
computation with a Python tuple. :class:`GraphedStep` then captures a whole training step
(forward, backward, clipping, both optimizer steps) into one CUDA graph
(``torch.cuda.graphs``), replayed with one launch per step.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Callable

import torch

from .config import TrainingError

logger = logging.getLogger(__name__)

GRAPH_WARMUP_STEPS = 3  # eager steps before capture (optimizer state, cuDNN autotuning)


def _entropy_bottleneck_forward(self, x, training=None):
    # CompressAI 1.2's EntropyBottleneck.forward with the permutation as a Python tuple.
    if training is None:
        training = self.training
    perm = (1, 0, *range(2, x.ndim))
    x = x.permute(*perm).contiguous()
    shape = x.size()
    values = x.reshape(x.size(0), 1, -1)
    outputs = self.quantize(values, "noise" if training else "dequantize", self._get_medians())
    likelihood, _, _ = self._likelihood(outputs)
    if self.use_likelihood_bound:
        likelihood = self.likelihood_lower_bound(likelihood)
    outputs = outputs.reshape(shape).permute(*perm).contiguous()
    likelihood = likelihood.reshape(shape).permute(*perm).contiguous()
    return outputs, likelihood


def remove_host_syncs(model: torch.nn.Module) -> int:
    """Patch CompressAI entropy bottlenecks of ``model`` to avoid host syncs; returns count.

    Only modules whose class uses CompressAI's own ``forward`` are patched; the result is
    numerically identical.
    """
    from compressai.entropy_models import EntropyBottleneck

    patched = 0
    for module in model.modules():
        if type(module).forward is EntropyBottleneck.forward:
            module.forward = types.MethodType(_entropy_bottleneck_forward, module)
            patched += 1
    return patched


class GraphedStep:
    """A training step captured into a CUDA graph and replayed on new batches.

    Args:
        step: ``step(x, text) -> Tensor`` doing forward, backward and the
            optimizer steps (no ``zero_grad``: grads are overwritten by the replay).
        x: the first batch (its shape and dtype fix the static input).
        text: the first prompt embeddings, or None.

    Capturing does not run the step: call :meth:`__call__` for every batch, the first
    included. Optimizers must be built with ``capturable=True`` and a tensor learning rate.
    """

    def __init__(
        self,
        step: Callable,
        x: torch.Tensor,
        text: torch.Tensor | None,
        optimizers: list,
        stream: torch.cuda.Stream | None = None,
    ):
        self.static_x = x.clone()
        self.static_text = None if text is None else text.clone()
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        self.graph = torch.cuda.CUDAGraph()
        capture_stream = stream or torch.cuda.Stream()
        capture_stream.wait_stream(torch.cuda.current_stream())
        # thread_local: the DataLoader's pin-memory thread keeps making CUDA calls while we
        # capture; in the default "global" mode those invalidate the capture.
        with torch.cuda.graph(self.graph, stream=capture_stream, capture_error_mode="thread_local"):
            self.static_out = step(self.static_x, self.static_text)
        torch.cuda.current_stream().wait_stream(capture_stream)

    def __call__(self, x: torch.Tensor, text: torch.Tensor | None) -> torch.Tensor:
        self.static_x.copy_(x, non_blocking=True)
        if text is not None:
            self.static_text.copy_(text, non_blocking=True)
        self.graph.replay()
        return self.static_out


def capture(runs: list, x: torch.Tensor, text: torch.Tensor | None) -> bool:
    """Capture each run's training step into a CUDA graph (TrainingError if that fails)."""
    try:
        torch.cuda.synchronize()
        for run in runs:
            run.capture(x, text)
        torch.cuda.synchronize()
        logger.info("training steps captured into CUDA graphs")
        return True
    except Exception as error:
        # A failed capture leaves the CUDA RNG in capture mode: eager steps after it fail
        # too, so stop with the fix instead of a cryptic error a step later.
        raise TrainingError(
            f"CUDA graph capture failed ({str(error).splitlines()[0]}): rerun with "
            "--cuda-graphs off (add --resume to continue from the last checkpoint)"
        ) from error
