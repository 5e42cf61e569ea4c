"""The benchmark's "fine-tuned vs base" section: each fine-tuned family against the
models it was fine-tuned from, when they are in the same run.

A model fine-tuned by ``pku-aigi train --init`` names its base in ``config.json``
(:mod:`pku_aigi.models.hub.lineage`). Here every learned model of the run is identified
by the sha256 of its parameters and by the repo id or folder it was loaded from; a
fine-tuned model is paired with the run's model that matches its base (the parameters
first, the repo id else). The pairs of one fine-tuned family and one base family give
two curves on the same images, and their Bjøntegaard deltas (:mod:`.bdrate`) per subset
and overall: the paper's domain-shift experiment, what fine-tuning on AI-generated
images gains over the natural-image weights.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from . import bdrate


@dataclass(frozen=True)
class Member:
    """One learned model of the run: where its points are and what it is."""

    codec: str  # the family's name in the report
    quality: float
    digest: str  # sha256 of its parameters
    source: str  # repo id or folder it was loaded from
    base: dict | None  # its lineage, when fine-tuned


@dataclass
class Pairing:
    """A fine-tuned family and the base family its members started from."""

    tuned: str
    base: str
    qualities: list[tuple[float, float]] = field(default_factory=list)  # (tuned q, base q)


def run_members(runs) -> list[Member]:
    """The learned models of ``runs`` (sweep :class:`~.sweep.CodecRun`), loaded."""
    from ..codecs.learned import LearnedCodecFamily
    from ..models.hub.lineage import LINEAGE_KEY, weights_digest

    members = []
    for run in runs:
        if not isinstance(run.codec, LearnedCodecFamily):
            continue
        for quality in run.qualities:
            codec = run.codec.codec(quality)
            model = codec.model
            members.append(
                Member(
                    run.display_name,
                    float(quality),
                    weights_digest(model),
                    str(codec.model_id),
                    model.config.get(LINEAGE_KEY),
                )
            )
    return members


def pair_members(members: list[Member]) -> tuple[list[Pairing], list[str]]:
    """Fine-tuned members matched with their bases in the run, and a note for each
    fine-tuned member whose base is not in it."""
    by_digest = {m.digest: m for m in members}
    by_source = {m.source: m for m in members}
    pairings: dict[tuple[str, str], Pairing] = {}
    notes = []
    for member in members:
        if not member.base:
            continue
        base = by_digest.get(member.base.get("weights_sha256") or "")
        if base is None:
            base = by_source.get(member.base.get("repo_id") or "")
        if base is None or base is member:
            from ..models.hub.lineage import describe

            notes.append(
                f"{member.codec} q={member.quality:g} was fine-tuned from "
                f"{describe(member.base)}, which is not in this run (add it with --model "
                "to compare)"
            )
            continue
        key = (member.codec, base.codec)
        pairing = pairings.setdefault(key, Pairing(*key))
        pairing.qualities.append((member.quality, base.quality))
    for pairing in pairings.values():
        pairing.qualities.sort()
    return list(pairings.values()), notes


def compare(points: dict, pairings: list[Pairing], method: str = bdrate.INTERPOLATION) -> dict:
    """``{group: {tuned: {"base", "pairs", deltas...}}}``: the BD values of each
    fine-tuned family against its base family over the qualities paired, on each group
    of :func:`.report.aggregate`'s points (full overlap of the two curves)."""
    tables: dict[str, dict] = defaultdict(dict)
    for group, codecs in points.items():
        for pairing in pairings:
            tuned = {p["quality"]: p for p in codecs.get(pairing.tuned, [])}
            base = {p["quality"]: p for p in codecs.get(pairing.base, [])}
            pairs = [(t, b) for t, b in pairing.qualities if t in tuned and b in base]
            if not pairs:
                continue
            deltas = bdrate.compare(
                [base[b] for _, b in pairs], [tuned[t] for t, _ in pairs], method
            )
            tables[group][pairing.tuned] = {"base": pairing.base, "pairs": pairs, **deltas}
    return dict(tables)
