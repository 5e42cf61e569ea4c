"""Bjøntegaard deltas (VCEG-M33) between rate-distortion curves.

Computed with the ``bjontegaard`` package (Herglotz et al., FAU) using **Akima**
interpolation (``INTERPOLATION``), integrated over the overlap of the two curves or over
a narrower bpp interval (``rate_range``: the benchmark uses the learned codecs' rates,
where the paper compares them):
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
    """One Bjøntegaard delta, or ``None`` with the reason it cannot be computed.

    ``interval`` is the anchor's bpp interval the delta was integrated over.
    """

    value: float | None
    note: str | None = None
    interval: tuple[float, float] | None = None

    def format(self, unit: str, digits: int = 2) -> str:
        if self.value is None:
            return "n/a"
        text = f"{self.value:+.{digits}f}{unit}"
        return f"{text} (!)" if self.note else text

    def format_interval(self) -> str:
        return "" if self.interval is None else f"{self.interval[0]:.3f}-{self.interval[1]:.3f} bpp"


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


def _quality_at(f_anchor, qualities: np.ndarray, log_rate: float) -> float:
    """Inverse of the anchor's quality -> log-rate interpolation (clipped to its range)."""
    from scipy.optimize import brentq

    low, high = float(qualities.min()), float(qualities.max())
    log_rate = float(np.clip(log_rate, f_anchor(low), f_anchor(high)))
    if log_rate <= f_anchor(low):
        return low
    if log_rate >= f_anchor(high):
        return high
    return brentq(lambda q: float(f_anchor(q)) - log_rate, low, high, xtol=1e-12)


def _delta(anchor, test, kind: str, method: str, rate_range=None) -> BDValue:
    """BD-rate (``kind="rate"``) or BD-quality; over ``rate_range`` (bpp) if given.

    The full-overlap value is ``bjontegaard``'s own; a rate range narrows the integral of
    the same interpolators: for BD-quality to the log-rates inside it, for BD-rate to the
    qualities the anchor reaches at its ends (the anchor's curve maps rate to quality).
    """
    import bjontegaard

    curves = {"anchor": _curve(anchor), "test": _curve(test)}
    for role, curve in curves.items():
        if isinstance(curve, str):
            return BDValue(None, f"{role} curve {curve}")
    (ra, qa), (rt, qt) = curves["anchor"], curves["test"]
    base = (qa, qt) if kind == "rate" else (np.log10(ra), np.log10(rt))
    overlap = _overlap(*base)
    if overlap == 0:
        span = "quality" if kind == "rate" else "rate"
        return BDValue(None, f"the curves do not overlap in {span}")
    function = bjontegaard.bd_rate if kind == "rate" else bjontegaard.bd_psnr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the overlap is reported by us, below
        value, f_anchor, f_test = function(
            ra, qa, rt, qt, method, require_matching_points=False, interpolators=True,
            min_overlap=0,
        )  # fmt: skip
    value = float(value)
    low = max(base[0].min(), base[1].min())
    high = min(base[0].max(), base[1].max())
    if rate_range is not None:
        log_low, log_high = np.log10(rate_range[0]), np.log10(rate_range[1])
        if kind == "rate":
            log_low, log_high = (_quality_at(f_anchor, qa, r) for r in (log_low, log_high))
        low, high = max(low, log_low), min(high, log_high)
        if high <= low:
            return BDValue(
                None,
                f"the curves do not overlap within {rate_range[0]:.3f}-{rate_range[1]:.3f} bpp",
            )
        mean = (f_test.integrate(low, high) - f_anchor.integrate(low, high)) / (high - low)
        value = float((10**mean - 1) * 100 if kind == "rate" else mean)
    if kind == "rate":  # the anchor's rates at the ends of the quality interval
        interval = (float(10 ** f_anchor(low)), float(10 ** f_anchor(high)))
    else:
        interval = (float(10**low), float(10**high))
    note = (
        None if overlap >= MIN_OVERLAP else f"curves overlap on only {overlap:.0%} of their range"
    )
    return BDValue(value, note, interval)


def bd_rate(anchor, test, method: str = INTERPOLATION, rate_range=None) -> BDValue:
    """BD-rate in % of ``test`` vs ``anchor``; each a list of (bpp, quality) points.

    ``rate_range``: ``(low, high)`` bpp to integrate over (within the overlap); ``None``
    for the whole overlap.
    """
    return _delta(anchor, test, "rate", method, rate_range)


def bd_quality(anchor, test, method: str = INTERPOLATION, rate_range=None) -> BDValue:
    """BD-PSNR (or BD of any quality in dB) of ``test`` vs ``anchor``."""
    return _delta(anchor, test, "quality", method, rate_range)


def compare(
    anchor: list[dict], test: list[dict], method: str = INTERPOLATION, rate_range=None
) -> dict[str, BDValue]:
    """All deltas of one codec vs the anchor from RD points with bpp, psnr, ms_ssim_db."""

    def pairs(points, metric):
        return [(p["bpp"], p[metric]) for p in points]

    deltas = {}
    for metric, rate_name, quality_name in (
        ("psnr", "bd_rate_psnr", "bd_psnr"),
        ("ms_ssim_db", "bd_rate_ms_ssim_db", "bd_ms_ssim_db"),
    ):
        a, t = pairs(anchor, metric), pairs(test, metric)
        deltas[rate_name] = bd_rate(a, t, method, rate_range)
        deltas[quality_name] = bd_quality(a, t, method, rate_range)
    return {
        k: deltas[k] for k in ("bd_rate_psnr", "bd_psnr", "bd_rate_ms_ssim_db", "bd_ms_ssim_db")
    }
