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


# --- BD over a rate interval (the learned codecs' range) ---------------------

BENT = [(0.09, 30.0), (0.17, 33.0), (0.3, 36.0), (0.5, 39.0)]  # not a constant factor


def test_full_overlap_is_bjontegaards_own_value():
    import bjontegaard

    rates_a, psnr_a = zip(*ANCHOR, strict=True)
    rates_t, psnr_t = zip(*BENT, strict=True)
    expected = bjontegaard.bd_rate(rates_a, psnr_a, rates_t, psnr_t, "akima", min_overlap=0)
    assert bdrate.bd_rate(ANCHOR, BENT).value == pytest.approx(expected, abs=1e-12)
    expected = bjontegaard.bd_psnr(rates_a, psnr_a, rates_t, psnr_t, "akima", min_overlap=0)
    assert bdrate.bd_quality(ANCHOR, BENT).value == pytest.approx(expected, abs=1e-12)
    # A range wider than both curves changes nothing.
    assert bdrate.bd_rate(ANCHOR, BENT, rate_range=(0.01, 10)).value == pytest.approx(
        bdrate.bd_rate(ANCHOR, BENT).value, abs=1e-12
    )


def test_full_overlap_interval_is_the_anchors_rates_at_the_common_qualities():
    assert bdrate.bd_rate(ANCHOR, BENT).interval == pytest.approx((0.1, 0.8))
    shifted = [(r, q + 1.5) for r, q in ANCHOR]  # common qualities 31.5 .. 39 dB
    assert bdrate.bd_rate(ANCHOR, shifted).interval == pytest.approx((0.1 * 2**0.5, 0.8))
    assert bdrate.bd_quality(ANCHOR, BENT).interval == pytest.approx((0.1, 0.5))


def test_bd_rate_over_a_rate_interval_matches_a_hand_integration():
    from scipy.integrate import quad
    from scipy.interpolate import Akima1DInterpolator

    # ANCHOR is 3 dB per doubling of the rate, which Akima reproduces exactly, so the
    # anchor reaches 0.15 and 0.6 bpp at 30 + 3 log2(1.5) and 30 + 3 log2(6) dB.
    low, high = 30 + 3 * math.log2(1.5), 30 + 3 * math.log2(6)
    rates_t, psnr_t = zip(*BENT, strict=True)
    test_curve = Akima1DInterpolator(psnr_t, [math.log10(r) for r in rates_t])

    def log_ratio(q):
        return test_curve(q) - (math.log10(0.1) + (q - 30) / 3 * math.log10(2))

    mean = quad(log_ratio, low, high)[0] / (high - low)
    result = bdrate.bd_rate(ANCHOR, BENT, rate_range=(0.15, 0.6))
    assert result.value == pytest.approx((10**mean - 1) * 100, abs=1e-6)
    assert result.interval == pytest.approx((0.15, 0.6))
    # BENT saves 10 % of the bits at low rates, 37.5 % at high rates
    assert bdrate.bd_rate(ANCHOR, BENT, rate_range=(0.1, 0.2)).value > -15
    assert bdrate.bd_rate(ANCHOR, BENT, rate_range=(0.4, 0.8)).value < -30


def test_bd_quality_over_a_rate_interval_matches_a_hand_integration():
    from scipy.integrate import quad
    from scipy.interpolate import PchipInterpolator

    # 1 dB better on the lower half, 2 dB on the upper: over 0.1-0.2 bpp about 1 dB.
    test = [(0.1, 31.0), (0.2, 34.0), (0.4, 38.0), (0.8, 41.0)]
    log_rates = [math.log10(r) for r, _ in test]
    test_curve = PchipInterpolator(log_rates, [q for _, q in test])

    def gain(x):  # ANCHOR is 30 dB + 3 dB per doubling
        return test_curve(x) - (30 + 3 * (x - math.log10(0.1)) / math.log10(2))

    low, high = math.log10(0.1), math.log10(0.2)
    narrow = bdrate.bd_quality(ANCHOR, test, "pchip", rate_range=(0.1, 0.2))
    assert narrow.interval == pytest.approx((0.1, 0.2))
    assert narrow.value == pytest.approx(quad(gain, low, high)[0] / (high - low), abs=1e-9)
    assert bdrate.bd_quality(ANCHOR, test, "pchip").value > narrow.value + 0.4


def test_a_constant_rate_factor_is_the_same_on_any_interval():
    test = [(r * 0.8, q) for r, q in ANCHOR]
    for low, high in ((0.1, 0.8), (0.12, 0.3), (0.5, 0.79)):
        result = bdrate.bd_rate(ANCHOR, test, rate_range=(low, high))
        assert result.value == pytest.approx(-20.0, abs=1e-6)
        assert result.interval == pytest.approx((low, high))


def test_a_rate_interval_outside_the_overlap_gives_a_note():
    result = bdrate.bd_rate(ANCHOR, BENT, rate_range=(2.0, 4.0))
    assert result.value is None
    assert "do not overlap within 2.000-4.000 bpp" in result.note
