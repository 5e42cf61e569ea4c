"""Bjøntegaard deltas: exact values on constructed curves, clear notes on bad curves."""

from __future__ import annotations

import math

import pytest

from pku_aigi.bench import bdrate

ANCHOR = [(0.1, 30.0), (0.2, 33.0), (0.4, 36.0), (0.8, 39.0)]


def test_identical_curves_give_zero():
    assert bdrate.bd_rate(ANCHOR, ANCHOR).value == pytest.approx(0, abs=1e-9)
    assert bdrate.bd_quality(ANCHOR, ANCHOR).value == pytest.approx(0, abs=1e-9)


def test_fewer_bits_at_equal_quality_is_a_negative_bd_rate():
    test = [(r * 0.8, q) for r, q in ANCHOR]  # 20 % fewer bits everywhere
    result = bdrate.bd_rate(ANCHOR, test)
    assert result.value == pytest.approx(-20.0, abs=1e-6)
    assert result.note is None


def test_better_quality_at_equal_rate_is_a_positive_bd_psnr():
    test = [(r, q + 1.0) for r, q in ANCHOR]
    assert bdrate.bd_quality(ANCHOR, test).value == pytest.approx(1.0, abs=1e-9)
    # 1 dB at 3 dB per doubling of the rate: 2**(-1/3) - 1 = -20.6 % bits
    assert bdrate.bd_rate(ANCHOR, test).value == pytest.approx((2 ** (-1 / 3) - 1) * 100, abs=1e-6)


def test_point_order_does_not_matter():
    test = [(r * 0.5, q) for r, q in reversed(ANCHOR)]
    assert bdrate.bd_rate(ANCHOR, test).value == pytest.approx(-50.0, abs=1e-6)


def test_curves_without_overlap_give_no_number_and_a_reason():
    far = [(r * 100, q + 30) for r, q in ANCHOR]
    result = bdrate.bd_rate(ANCHOR, far)
    assert result.value is None and "do not overlap in quality" in result.note
    assert result.format(" %") == "n/a"


def test_partial_overlap_is_flagged():
    shifted = [(r, q + 7.5) for r, q in ANCHOR]  # overlaps 1.5 of 16.5 dB
    result = bdrate.bd_rate(ANCHOR, shifted)
    assert result.value is not None and "overlap on only" in result.note
    assert result.format(" %").endswith("(!)")


def test_too_few_and_non_monotonic_points_are_explained():
    assert "needs at least 2" in bdrate.bd_rate(ANCHOR, [(0.3, 34.0)]).note
    assert "needs at least 2" in bdrate.bd_rate(ANCHOR, [(0.3, math.nan), (0.5, 35)]).note
    bumpy = [(0.1, 30.0), (0.2, 35.0), (0.4, 34.0)]
    assert "does not increase strictly" in bdrate.bd_rate(ANCHOR, bumpy).note


def test_compare_gives_all_four_deltas():
    anchor = [{"bpp": r, "psnr": q, "ms_ssim_db": q / 2} for r, q in ANCHOR]
    test = [{"bpp": r * 0.9, "psnr": q, "ms_ssim_db": q / 2 + 0.5} for r, q in ANCHOR]
    deltas = bdrate.compare(anchor, test)
    assert deltas["bd_rate_psnr"].value == pytest.approx(-10.0, abs=1e-6)
    assert deltas["bd_psnr"].value > 0
    assert deltas["bd_rate_ms_ssim_db"].value < -10.0
    assert deltas["bd_ms_ssim_db"].value > 0.5
