"""Bjøntegaard deltas (VCEG-M33) between rate-distortion curves.

Computed with the ``bjontegaard`` package (Herglotz et al., FAU) using **Akima**
interpolation (``INTERPOLATION``), integrated over the overlap of the two curves:
BD-rate in percent (negative = fewer bits than the anchor for the same quality) on PSNR
and on MS-SSIM dB, and BD-PSNR / BD-MS-SSIM dB (positive = better than the anchor at
the same rate). Curves that cannot give a meaningful number (fewer than two points,
non-monotonic, no overlap) return ``None`` with a note saying why, never a guess.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

INTERPOLATION = "akima"
MIN_OVERLAP = 0.5  # below this fraction of the joint range, the number is flagged


@dataclass(frozen=True)
class BDValue:
    """One Bjøntegaard delta, or ``None`` with the reason it cannot be computed."""

    value: float | None
    note: str | None = None

    def format(self, unit: str, digits: int = 2) -> str:
        if self.value is None:
            return "n/a"
        text = f"{self.value:+.{digits}f}{unit}"
        return f"{text} (!)" if self.note else text


def _curve(points: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray] | str:
    """Sorted (rate, quality) arrays, or a note why the curve is unusable."""
    finite = sorted((r, q) for r, q in points if r > 0 and math.isfinite(r) and math.isfinite(q))
    if len(finite) < 2:
        return f"has {len(finite)} usable rate point(s), needs at least 2"
    rates, qualities = np.array(finite).T
    if np.any(np.diff(rates) <= 0) or np.any(np.diff(qualities) <= 0):
        return "quality does not increase strictly with rate"
    return rates, qualities


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    joint = max(a.max(), b.max()) - min(a.min(), b.min())
    common = min(a.max(), b.max()) - max(a.min(), b.min())
    return max(common, 0.0) / joint if joint > 0 else 0.0


def _delta(anchor, test, kind: str, method: str) -> BDValue:
    import bjontegaard

    curves = {"anchor": _curve(anchor), "test": _curve(test)}
    for role, curve in curves.items():
        if isinstance(curve, str):
            return BDValue(None, f"{role} curve {curve}")
    (ra, qa), (rt, qt) = curves["anchor"], curves["test"]
    axis = (qa, qt) if kind == "rate" else (np.log10(ra), np.log10(rt))
    overlap = _overlap(*axis)
    if overlap == 0:
        span = "quality" if kind == "rate" else "rate"
        return BDValue(None, f"the curves do not overlap in {span}")
    function = bjontegaard.bd_rate if kind == "rate" else bjontegaard.bd_psnr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the overlap is reported by us, below
        value = float(
            function(ra, qa, rt, qt, method, require_matching_points=False, min_overlap=0)
        )
    note = (
        None if overlap >= MIN_OVERLAP else f"curves overlap on only {overlap:.0%} of their range"
    )
    return BDValue(value, note)


def bd_rate(anchor, test, method: str = INTERPOLATION) -> BDValue:
    """BD-rate in % of ``test`` vs ``anchor``; each a list of (bpp, quality) points."""
    return _delta(anchor, test, "rate", method)


def bd_quality(anchor, test, method: str = INTERPOLATION) -> BDValue:
    """BD-PSNR (or BD of any quality in dB) of ``test`` vs ``anchor``."""
    return _delta(anchor, test, "quality", method)


def compare(
    anchor: list[dict], test: list[dict], method: str = INTERPOLATION
) -> dict[str, BDValue]:
    """All deltas of one codec vs the anchor from RD points with bpp, psnr, ms_ssim_db."""

    def pairs(points, metric):
        return [(p["bpp"], p[metric]) for p in points]

    return {
        "bd_rate_psnr": bd_rate(pairs(anchor, "psnr"), pairs(test, "psnr"), method),
        "bd_psnr": bd_quality(pairs(anchor, "psnr"), pairs(test, "psnr"), method),
        "bd_rate_ms_ssim_db": bd_rate(
            pairs(anchor, "ms_ssim_db"), pairs(test, "ms_ssim_db"), method
        ),
        "bd_ms_ssim_db": bd_quality(pairs(anchor, "ms_ssim_db"), pairs(test, "ms_ssim_db"), method),
    }
