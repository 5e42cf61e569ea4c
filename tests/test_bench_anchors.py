"""Anchor strength: protocol presets, the measured cost table, BD intervals."""

from __future__ import annotations

import json

import pytest

from pku_aigi import codecs
from pku_aigi.bench import presets, report
from pku_aigi.errors import CodecError, PkuAigiError


def test_protocol_runs_vvc_and_hevc_at_their_strongest_presets_plain_bench_fast(monkeypatch):
    monkeypatch.setattr(presets, "zoo_runs", lambda *a, **k: ([], {}))  # learned: elsewhere
    strongest = presets.protocol_selection("cpu")
    options = {r.name: r.options for r in strongest.runs if r.parallel}
    assert options == {"vvc": {"preset": "slower"}, "hevc": {"preset": "veryslow"}}
    assert "preset=slower" in next(r for r in strongest.runs if r.name == "vvc").version()

    quick = presets.protocol_selection("cpu", strongest=False)
    assert {r.name: r.options for r in quick.runs if r.parallel} == {"vvc": {}, "hevc": {}}
    assert "preset=fast," in next(r for r in quick.runs if r.name == "vvc").version()

    chosen = presets.protocol_selection("cpu", options={"vvc": {"preset": "medium"}})
    options = {r.name: r.options for r in chosen.runs if r.parallel}
    assert options == {"vvc": {"preset": "medium"}, "hevc": {"preset": "veryslow"}}


def test_codec_options_are_parsed_and_checked():
    assert presets.parse_codec_options(["vvc:preset=slower", "avif:speed=2", "vvc:x=1"]) == {
        "vvc": {"preset": "slower", "x": "1"},
        "avif": {"speed": "2"},
    }
    for bad in ("vvc", "vvc:preset", "vvc:=slow", ":preset=slow", "vvc:preset="):
        with pytest.raises(PkuAigiError, match="expected CODEC:OPTION=VALUE"):
            presets.parse_codec_options([bad])
    with pytest.raises(
        PkuAigiError, match="'vvc' has no option 'speed' .its speed option is 'preset'"
    ):
        presets.conventional_runs(["vvc"], {}, {"vvc": {"speed": "1"}})
    with pytest.raises(PkuAigiError, match="'jpeg' has no option 'preset' .it has no speed option"):
        presets.conventional_runs(["jpeg"], {}, {"jpeg": {"preset": "slow"}})
    with pytest.raises(CodecError, match="unknown preset 'slowest'"):
        presets.conventional_runs(["hevc"], {}, {"hevc": {"preset": "slowest"}})
    (run,), _ = presets.conventional_runs(["avif"], {}, {"avif": {"speed": "2"}})
    assert run.options == {"speed": "2"} and "speed=2" in run.version()


def test_the_cost_table_covers_every_speed_setting_against_the_slowest():
    table = json.loads(presets.ANCHOR_COSTS_FILE.read_text())
    assert table == presets.anchor_costs()
    for name in ("vvc", "hevc", "avif"):
        cls = codecs.codec_class(name)
        rows = table["codecs"][name]
        settings = [row[cls.speed_option] for row in rows]
        assert set(settings) <= set(cls.speed_settings())
        slowest = rows[-1]
        assert settings[-1] == cls.speed_settings()[-1]
        assert slowest["bd_rate_psnr"] == pytest.approx(0, abs=1e-9)
        assert slowest["time_vs_slowest"] == pytest.approx(1)
    # the fastest setting of each codec is cheaper and weaker than the slowest
    for name in ("vvc", "hevc", "avif"):
        fastest = table["codecs"][name][0]
        assert fastest["bd_rate_psnr"] > 0 and fastest["time_vs_slowest"] < 1


def test_the_protocol_presets_are_within_one_percent_of_the_strongest():
    table = presets.anchor_costs()["codecs"]
    for name, options in presets.PROTOCOL_OPTIONS.items():
        ((option, value),) = options.items()
        row = next(r for r in table[name] if r[option] == value)
        assert row["bd_rate_psnr_protocol"] < 1.0, (name, row)
        assert row["bd_rate_psnr"] < 1.0, (name, row)


def test_anchor_strength_states_the_preset_and_its_measured_cost():
    assert presets.anchor_strength("vvc", {"preset": "slower"}) == "preset slower (the strongest)"
    assert presets.anchor_strength("jpeg", {}) is None
    row = next(r for r in presets.anchor_costs()["codecs"]["vvc"] if r["preset"] == "fast")
    line = presets.anchor_strength("vvc", {})
    assert line.startswith("preset fast, not the strongest (slower): it needs ")
    assert f"{row['bd_rate_psnr_protocol']:+.1f} % bits" in line
    assert "at the protocol's rates {:.2f}-{:.2f} bpp".format(*row["bpp_protocol"]) in line
    assert "--anchor-preset slower" in line
    avif = next(r for r in presets.anchor_costs()["codecs"]["avif"] if r["speed"] == 6)
    line = presets.anchor_strength("avif", {})
    assert f"speed 6, not the strongest (0): it needs {avif['bd_rate_psnr']:+.1f} %" in line
    assert "over the full overlap" in line


# --- the BD interval of the report --------------------------------------------------


def curve(*points):
    return [{"quality": q, "bpp": r, "psnr": p, "ms_ssim_db": p - 20} for q, r, p in points]


ANCHOR = curve((47, 0.05, 27.0), (42, 0.1, 30.0), (37, 0.2, 33.0), (32, 0.4, 36.0),
               (27, 0.8, 39.0), (22, 1.6, 42.0))  # fmt: skip
LEARNED = curve((1, 0.12, 31.0), (2, 0.2, 33.5), (3, 0.35, 36.0), (4, 0.55, 38.5))
WIDE = curve(*((q, r * 0.9, p) for q, r, p in ((1, 0.04, 26.0), (2, 0.3, 34.5), (3, 2.0, 42.5))))


def test_the_bd_range_is_the_learned_codecs_rates_else_the_anchors_protocol_points():
    group = {"vvc": ANCHOR, "mbt2018": LEARNED, "jpeg": WIDE}
    assert report.choose_bd_range(group, "vvc", "learned", ["mbt2018"]) == (
        (0.12, 0.55),
        "the rates of the learned codecs (mbt2018)",
    )
    rate_range, chosen = report.choose_bd_range(group, "vvc", "learned", [])
    assert rate_range == (0.1, 0.8) and "protocol points (q=42,37,32,27" in chosen
    assert report.choose_bd_range(group, "jpeg", "learned", [])[0] is None  # no protocol grid
    assert report.choose_bd_range(group, "vvc", "full", ["mbt2018"])[0] is None
    assert report.choose_bd_range(group, "vvc", (0.2, 0.3), ["mbt2018"])[0] == (0.2, 0.3)


def test_report_gives_each_bd_interval_and_the_full_overlap_beside_it(tmp_path):
    points = {"all": {"vvc": ANCHOR, "mbt2018": LEARNED, "jpeg": WIDE}}
    tables = report.bd_tables(points, "vvc", request="learned", learned=["mbt2018"])
    table = tables["all"]
    ranged, full = table["codecs"]["jpeg"]["bd_rate_psnr"]
    assert ranged.value != pytest.approx(full.value)
    assert ranged.interval == pytest.approx((0.12, 0.55))
    assert full.interval == pytest.approx((0.05, 1.6))  # common qualities 27-42 dB
    lines = report.bd_table_lines(table)
    assert lines[0] == (
        "BD values over 0.120-0.550 bpp: the rates of the learned codecs (mbt2018)."
    )
    assert "| BD-rate (PSNR) | BD-rate (PSNR), full overlap |" in lines[2]
    jpeg = next(line for line in lines if line.startswith("| jpeg |"))
    assert f"{ranged.value:+.2f} % over 0.120-0.550 bpp" in jpeg
    assert f"{full.value:+.2f} % over {full.interval[0]:.3f}-{full.interval[1]:.3f} bpp" in jpeg

    same = report.bd_tables(points, "vvc", request="full")["all"]
    assert "full overlap" not in report.bd_table_lines(same)[2]  # one column when nothing differs
