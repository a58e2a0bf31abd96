"""Which release specification a lot is judged against, and the lot's verdicts from its results.

Spec files list products by ISCT / ISBT 128 class ("MSC(M)", "MSC(WJ)"); a lot carries its product's class
(config/products.toml), so the mapping is through the class. Several versions of one spec: the highest
version is the active one (a new version is a new file; old results keep the version they were entered under).
"""
from __future__ import annotations

from functools import cache

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.core.configfiles import ConfigError
from mscbatch.core.release_spec import (
    ReleaseSpec,
    ResultValueError,
    load_release_specs,
    specs_for_product,
)
from mscbatch.core.verdicts import LabResult, LotVerdict, judge_lot
from mscbatch.errors import Conflict, NotFound
from mscbatch.lots.models import Lot
from mscbatch.paths import config_dir
from mscbatch.release.models import ReleaseResult

#: the flow-cytometry panel entered in one form: (form field, test id, label)
FLOW_PANEL = (("cd73", "cd73", "CD73"), ("cd90", "cd90", "CD90"), ("cd105", "cd105", "CD105"),
              ("cd45", "cd45", "CD45"), ("cd34", "cd34", "CD34"), ("cd14", "cd14_or_cd11b", "CD14"),
              ("cd79a", "cd79a_or_cd19", "CD79a"), ("hla_dr", "hla_dr", "HLA-DR"))


class SpecificationUnusable(Conflict):
    """The installed specification files cannot be used (an administrator must fix config/release_specs/)."""

    title = "Release specification cannot be used"


@cache
def all_specs() -> tuple[ReleaseSpec, ...]:
    """Every installed specification, read once. A file the loader refuses is said in plain words, naming the file
    and the key, on every page that needs a specification, rather than as a server error (a refusal is not cached:
    the fixed file is read at the next request)."""
    try:
        return load_release_specs(config_dir() / "release_specs")
    except ConfigError as error:
        raise SpecificationUnusable(
            f"The release specifications cannot be used until an administrator fixes this file: {error}. No lot can "
            "be judged, released or given a certificate meanwhile; nothing was saved.") from None


def spec_for_lot(lot: Lot) -> ReleaseSpec:
    """The active release specification for the lot's product class: the highest version of the one specification
    id that names it (load_release_specs refuses two ids naming one class)."""
    specs = specs_for_product(all_specs(), lot.product_class)
    if not specs:
        raise NotFound(f"No release specification in config/release_specs/ names product class {lot.product_class} "
                       f"(lot {lot.lot_number}).")
    return specs[0]


def spec_of_lot(session: Session, lot: Lot) -> ReleaseSpec:
    """The specification the lot is judged against: once QA has signed a disposition of the lot (a release, full,
    conditional or exceptional, or a rejection), the version its first signed disposition was bound to, for good
    (its certificate, a late result, the completion of a conditional release); before, the active version. A signed
    version no longer installed, or changed since, is a configuration error said in plain words (409, as the other
    unusable specifications: the lot exists, its specification cannot be used): judging a signed lot against
    another text would certify what nobody signed. (A clinician's request for exceptional use is not
    QA's signature: it binds nothing until QA countersigns it.)"""
    from mscbatch.release.models import LotDisposition

    signed = session.execute(select(LotDisposition.kind, LotDisposition.spec_id, LotDisposition.spec_version,
                                    LotDisposition.spec_sha256)
                             .where(LotDisposition.lot_id == lot.id, LotDisposition.signed_at.is_not(None))
                             .order_by(LotDisposition.id).limit(1)).first()
    if signed is None:
        return _unchanged_since_results(session, lot, spec_for_lot(lot))
    kind, spec_id, version, sha256 = signed
    done = "rejected" if kind == "rejection" else "released"
    for spec in all_specs():
        if (spec.id, spec.version) == (spec_id, version):
            if spec.sha256 != sha256:
                raise SpecificationUnusable(
                    f"Lot {lot.lot_number} was {done} against specification {spec_id} version {version}, but that file "
                    "in config/release_specs/ has changed since (its SHA-256 differs): put back the signed text; a "
                    "change needs a new version.")
            return spec
    raise SpecificationUnusable(f"Lot {lot.lot_number} was {done} against specification {spec_id} version {version}, "
                                "which is no longer in config/release_specs/: put the file back (old versions stay "
                                "installed).")


def _unchanged_since_results(session: Session, lot: Lot, spec: ReleaseSpec) -> ReleaseSpec:
    """The active version, refused (409, as a changed signed version) if a result of the lot was entered under the
    same id and version with another text: a limit edited in place would judge the results QC entered under the old
    text by the new one, with nothing in the record to say so (a change of a rule needs a new version)."""
    changed = list(session.scalars(select(ReleaseResult.test_id).distinct().where(
        ReleaseResult.lot_id == lot.id, ReleaseResult.spec_id == spec.id, ReleaseResult.spec_version == spec.version,
        ReleaseResult.spec_sha256 != spec.sha256)))
    if changed:
        names = {test.id: test.name for test in spec.tests}
        tests = ", ".join(sorted(names.get(test_id, test_id) for test_id in changed))
        raise SpecificationUnusable(
            f"Results of lot {lot.lot_number} ({tests}) were entered under specification {spec.id} version "
            f"{spec.version}, but {spec.path.name} was changed after the results were entered (its SHA-256 differs): "
            "an administrator must put back the text the results were entered under; a change needs a new version.")
    return spec


def results_of(session: Session, lot_id: int) -> list[ReleaseResult]:
    return list(session.scalars(select(ReleaseResult).where(ReleaseResult.lot_id == lot_id)
                                .order_by(ReleaseResult.entered_at, ReleaseResult.id)))


def lab_results(results: list[ReleaseResult]) -> list[LabResult]:
    return [LabResult(test_id=r.test_id, value=r.value, unit=r.unit, entered_at=r.entered_at,
                      invalidated=r.invalidated_at is not None, result_id=r.id) for r in results]


def unreadable(lot: Lot, spec: ReleaseSpec, error: ResultValueError) -> SpecificationUnusable:
    """A stored result the spec cannot read: load_release_specs keeps units and words across versions, so the file
    in force was edited in place (the same version, another text) after results were entered under it."""
    return SpecificationUnusable(
        f"A {error.test_name} result of lot {lot.lot_number} cannot be read under specification {spec.id} version "
        f"{spec.version} ({error.rule}): {spec.path.name} was changed after the result was entered. An administrator "
        "must put back the text the results were entered under; a change needs a new version.")


def lot_verdict(session: Session, lot: Lot, spec: ReleaseSpec | None = None) -> LotVerdict:
    """Judge every test of the spec (by default the lot's own: spec_of_lot) from every result of the lot."""
    spec = spec or spec_of_lot(session, lot)
    known = {t.id for t in spec.tests}
    try:
        return judge_lot(spec, [r for r in lab_results(results_of(session, lot.id)) if r.test_id in known])
    except ResultValueError as error:
        raise unreadable(lot, spec, error) from None
