"""The qualities a codec accepts, declared once: :class:`QualityLadder`.

A ladder lists a codec's quality values in order of growing rate (the ``steps``), says
whether values between two steps are accepted too (continuous scales such as a
JPEG 2000 compression ratio), and holds the grid of a rate-distortion sweep. Rate
control bisects over the steps; the Space maps its 0..100 slider onto the sweep grid.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from ..errors import CodecError

GEOMETRIC_STEPS = 256  # steps of a continuous scale: ~2.5 % apart over a 500:1 range


@dataclass(frozen=True)
class QualityLadder:
    """The quality scale of one codec.

    Attributes:
        steps: every searchable value, lowest rate first.
        sweep: the RD sweep grid (``default_qualities``), lowest rate first.
        higher_is_better: True when a larger value means a higher rate.
        continuous: values between the ends are accepted too (not only the steps).
    """

    steps: tuple[float, ...]
    sweep: tuple[float, ...]
    higher_is_better: bool = True
    continuous: bool = False

    @classmethod
    def integers(cls, low: int, high: int, *, sweep, higher_is_better: bool = True):
        """Every whole number from ``low`` to ``high`` (e.g. a JPEG quality or a QP)."""
        steps = tuple(range(int(low), int(high) + 1))
        return cls(steps if higher_is_better else steps[::-1], tuple(sweep), higher_is_better)

    @classmethod
    def geometric(cls, low: float, high: float, *, sweep, higher_is_better: bool = True):
        """Any value from ``low`` to ``high`` (> 0), searched on a geometric grid."""
        ratio = math.log(high / low) / (GEOMETRIC_STEPS - 1)
        steps = [float(low * math.exp(ratio * i)) for i in range(GEOMETRIC_STEPS)]
        steps[0], steps[-1] = float(low), float(high)  # no float noise at the ends
        steps = tuple(steps if higher_is_better else steps[::-1])
        return cls(steps, tuple(sweep), higher_is_better, continuous=True)

    @classmethod
    def of(cls, values):
        """Exactly ``values`` (e.g. the qualities of a family of learned models)."""
        steps = tuple(sorted(values))
        return cls(steps, steps, True)

    def __post_init__(self):
        if not self.steps:
            raise ValueError("a quality ladder needs at least one step")
        outside = [q for q in self.sweep if not self.accepts(q)]
        if outside:
            raise ValueError(f"sweep qualities {outside} are not on the ladder {self.range}")

    @property
    def range(self) -> tuple[float, float]:
        """``(smallest, largest)`` value, whatever the direction."""
        return min(self.steps[0], self.steps[-1]), max(self.steps[0], self.steps[-1])

    @property
    def integer(self) -> bool:
        return not self.continuous and all(float(q).is_integer() for q in self.steps)

    def accepts(self, quality) -> bool:
        if isinstance(quality, bool) or not isinstance(quality, numbers.Real):
            return False
        low, high = self.range
        if self.continuous:
            return low <= quality <= high
        return quality in self.steps

    def check(self, quality, codec: str, help_text: str):
        """``quality`` as the codec takes it (an int on integer ladders), or CodecError."""
        if isinstance(quality, bool) or not isinstance(quality, numbers.Real):
            raise CodecError(f"{codec}: quality must be a number, got {quality!r}")
        low, high = self.range
        if not low <= quality <= high:
            raise CodecError(
                f"{codec}: quality {quality} is out of range [{low}, {high}] ({help_text})"
            )
        if not self.accepts(quality):
            if self.integer and len(self.steps) == high - low + 1:
                raise CodecError(f"{codec}: quality {quality} must be a whole number ({help_text})")
            raise CodecError(
                f"{codec}: quality {quality} is not one of its qualities ({help_text})"
            )
        return int(quality) if self.integer else float(quality)

    def at_level(self, level: float):
        """The value at ``level`` (0: lowest-rate end of the sweep grid, 100: highest).

        Interpolates along the sweep grid's ends and snaps to an accepted value (the
        nearest step; two decimals on continuous scales).
        """
        fraction = min(max(float(level), 0.0), 100.0) / 100.0
        first, last = self.sweep[0], self.sweep[-1]
        value = first + fraction * (last - first)
        if self.continuous:
            low, high = self.range
            return round(min(max(value, low), high), 2)
        return min(self.steps, key=lambda q: (abs(q - value), q))

    def spread(self, count: int) -> list[float]:
        """At most ``count`` qualities of the sweep grid, evenly spread, ends included."""
        grid = list(self.sweep)
        if len(grid) <= count:
            return grid
        step = (len(grid) - 1) / (count - 1)
        return sorted({grid[round(i * step)] for i in range(count)}, key=grid.index)
