"""Demo release for `make run`: the demo technician enters a full panel for the quarantined adipose lot, whose
first endotoxin fails (QA invalidates its OOS with an assignable laboratory cause and a passing retest), and QA
(qa, who took no part in it) releases it with a signature; the UC-MSC lot of the approved cord donor goes
to quarantine, QC (tech2) enters its full panel and a second QA person (qa2, who entered nothing about the lot
or its donor) releases it, so its bags can be dosed to the lupus demo patient (issue 6), and a second UC-MSC lot
the same way, whose bags are left to prescribe; the cord lot of the donor still awaiting QA gets a failing CD105,
so an open OOS waits for QA on the dashboard, and a major deviation that QA assesses before any release of that
lot."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.auth.models import User
from mscbatch.lots.models import Lot
from mscbatch.release import release, results
from mscbatch.release.models import OosInvestigation, ReleaseResult
from mscbatch.release.specs import FLOW_PANEL, spec_for_lot
from mscbatch.site import site_today

DEMO_PASSWORD = "mscbatch-demo"

#: a passing result for every test of the default MSC specification: test id -> (value, unit)
PASSING_PANEL: dict[str, tuple[str, str]] = {
    "cd73": ("99.1", "%"), "cd90": ("98.7", "%"), "cd105": ("97.9", "%"), "cd45": ("0.4", "%"),
    "cd34": ("0.3", "%"), "cd14_or_cd11b": ("0.6", "%"), "cd79a_or_cd19": ("0.2", "%"), "hla_dr": ("0.9", "%"),
    "plastic_adherence": ("pass", ""), "trilineage_osteo": ("pass", ""), "trilineage_adipo": ("pass", ""),
    "trilineage_chondro": ("pass", ""), "viability": ("92.5", "%"), "viable_cell_count": ("120000000", "cells"),
    "sterility": ("negative", ""), "gram_stain": ("no organisms", ""), "mycoplasma": ("not detected", ""),
    "endotoxin": ("0.12", "EU/mL"), "karyotype": ("normal", ""), "potency_pbmc": ("48", "%"),
}


def enter_panel(session: Session, tech: User, lot_id: int, values: dict[str, tuple[str, str]] | None = None,
                skip: tuple[str, ...] = ()) -> None:
    """Enter every test (flow panel at once, the rest one by one) as `tech`, dated yesterday."""
    values = {**PASSING_PANEL, **(values or {})}
    common = results.ResultEntry(test_id="", value="", unit="", analyst=tech.full_name,
                                 tested_on=site_today() - timedelta(days=1), instrument="Demo cytometer FC-1",
                                 reagent_lot="AB-PANEL-2291")
    flow_ids = {test_id for _f, test_id, _l in FLOW_PANEL}
    if not flow_ids & set(skip):
        results.enter_flow_panel(session, tech, lot_id, {f: values[t][0] for f, t, _l in FLOW_PANEL}, common)
    for test_id, (value, unit) in values.items():
        if test_id in flow_ids or test_id in skip:
            continue
        results.enter_result(session, tech, lot_id, results.ResultEntry(
            test_id=test_id, value=value, unit=unit, analyst=tech.full_name, tested_on=common.tested_on))


def _has_results(session: Session, lot_id: int) -> bool:
    return session.scalar(select(ReleaseResult.id).where(ReleaseResult.lot_id == lot_id).limit(1)) is not None


def _covered(lot: Lot) -> bool:
    """Whether PASSING_PANEL has a value for every test of the lot's active specification."""
    return {t.id for t in spec_for_lot(lot).tests} <= set(PASSING_PANEL)


def _release_adipose(session: Session, tech: User, qa: User) -> list[str]:
    """The adipose lot: panel entered by tech, released by qa (neither entered the other's data)."""
    lot = session.scalar(select(Lot).where(Lot.product_id == "AT-MSC").order_by(Lot.id))
    if lot is None:
        return ["  (skipped: no demo adipose lot)"]
    if lot.status != "quarantine" or _has_results(session, lot.id):
        return [f"  {lot.lot_number}: {lot.status.replace('_', ' ')}"]
    if not _covered(lot):
        return [f"  (skipped: the demo panel does not cover the specification of lot {lot.lot_number})"]
    enter_panel(session, tech, lot.id, {"endotoxin": DEMO_FAILED_ENDOTOXIN})
    _invalidated_endotoxin(session, tech, qa, lot)
    release.release_lot(session, qa, lot.id, DEMO_PASSWORD)
    return [f"  {lot.lot_number}: full panel entered by {tech.username}, released by {qa.username} (signed); "
            "its bags are released for dosing and labelling",
            f"  {lot.lot_number}: its first endotoxin {DEMO_FAILED_ENDOTOXIN[0]} EU/mL (> 0.5) was invalidated by "
            f"{qa.username} with an assignable laboratory cause (analyst error) and a passing retest (signed)"]


#: the adipose lot's first endotoxin result, out of specification: its OOS is invalidated with an assignable
#: laboratory cause (core.oos_causes) and a passing retest before the release, so the certificate shows both
DEMO_FAILED_ENDOTOXIN = ("0.8", "EU/mL")
DEMO_ENDOTOXIN_INVESTIGATION = (
    "Phase I laboratory investigation: the worksheet shows the sample diluted 1:10 instead of the method's 1:40 "
    "(maximum valid dilution), confirmed by the analyst and the pipette log; the positive product control "
    "recovered 210 %, outside 50-200 %. Assignable analyst error: the result is invalid. Retest of the retained "
    "sample at 1:40 by a second analyst: 0.12 EU/mL, controls within limits.")


def _invalidated_endotoxin(session: Session, tech: User, qa: User, lot: Lot) -> None:
    """The failing endotoxin's OOS: the technician enters the retest, QA (who entered nothing) invalidates it with
    its assignable cause, signed."""
    from mscbatch.release import oos

    opened = session.scalar(select(OosInvestigation).where(OosInvestigation.lot_id == lot.id,
                                                           OosInvestigation.test_id == "endotoxin"))
    if opened is None:
        return
    retest = results.enter_result(session, tech, lot.id, results.ResultEntry(
        test_id="endotoxin", value=PASSING_PANEL["endotoxin"][0], unit="EU/mL", analyst=tech.full_name,
        tested_on=site_today() - timedelta(days=1)))
    oos.invalidate_oos(session, qa, opened.id, retest.id, DEMO_ENDOTOXIN_INVESTIGATION, DEMO_PASSWORD,
                       assignable_cause="analyst_error")


def _release_chain(session: Session, tech: User, qc: User, releaser: User, initials: str, use: str) -> list[str]:
    """The UC-MSC lot of an approved cord donor (mscbatch.lots.demo.chain_lot): the technician who made it sends
    it to quarantine, QC (qc) enters the full panel against the UC-MSC specification (viable count = the
    harvest's), and a QA person who entered nothing about the lot or its donor (releaser) signs the release."""
    from mscbatch.lots.demo import chain_lot
    from mscbatch.lots.queries import bags_of
    from mscbatch.lots.services import transition_lot

    lot = chain_lot(session, initials)
    if lot is None:
        return [f"  (skipped: no demo UC-MSC lot from the approved cord donor {initials})"]
    if lot.status == "in_process" and bags_of(session, lot.id):
        transition_lot(session, tech, lot.id, "quarantine", "Cryopreserved and stored: awaiting QC and release")
        lot = chain_lot(session, initials)
        assert lot is not None
    if lot.status != "quarantine" or _has_results(session, lot.id):
        return [f"  {lot.lot_number}: {lot.status.replace('_', ' ')}"]
    if not _covered(lot):
        return [f"  (skipped: the demo panel does not cover the specification of lot {lot.lot_number})"]
    count = lot.harvest_viable_cells or int(PASSING_PANEL["viable_cell_count"][0])
    enter_panel(session, qc, lot.id, {"viable_cell_count": (str(count), "cells")})
    release.release_lot(session, releaser, lot.id, DEMO_PASSWORD)
    spec = spec_for_lot(lot)
    return [f"  {lot.lot_number}: UC-MSC, full panel ({spec.id} v{spec.version}) entered by {qc.username}, released "
            f"by {releaser.username} (signed); {use}"]


def _open_oos(session: Session, tech: User) -> list[str]:
    """The cord lot of the donor still awaiting QA: a failing CD105, so an open OOS waits for QA."""
    from mscbatch.donors.demo import PENDING_CORD_INITIALS, demo_cord_donor

    donor = demo_cord_donor(session, PENDING_CORD_INITIALS)
    lot = None if donor is None else session.scalar(select(Lot).where(Lot.donor_id == donor.id).order_by(Lot.id))
    if lot is None:
        return []
    if session.scalar(select(OosInvestigation.id).where(OosInvestigation.lot_id == lot.id).limit(1)) is not None:
        return [f"  {lot.lot_number}: {lot.status.replace('_', ' ')}, OOS recorded (see the QA dashboard)"]
    if lot.status not in ("in_process", "quarantine"):
        return [f"  {lot.lot_number}: {lot.status.replace('_', ' ')}"]
    results.enter_result(session, tech, lot.id, results.ResultEntry(
        test_id="cd105", value="94.6", unit="%", analyst=tech.full_name, tested_on=site_today(),
        method="flow cytometry", instrument="Demo cytometer FC-1"))
    return [f"  {lot.lot_number}: CD105 94.6 % (< 95 %) entered: an OOS is open for QA to investigate"]


DEMO_LATE_DEVIATION = "LN2 level alarm on tank 1 for 20 minutes, found at the weekly review; the temperature log stayed below -150 C"


def _deviation_after_release(session: Session, tech: User) -> list[str]:
    """A minor deviation the technician records on the released adipose lot: QA's dashboard asks for its assessment."""
    from mscbatch.lots import steps
    from mscbatch.lots.models import Deviation, ProcessStep

    lot = session.scalar(select(Lot).where(Lot.product_id == "AT-MSC", Lot.status == "released").order_by(Lot.id))
    if lot is None or session.scalar(select(Deviation.id).where(Deviation.lot_id == lot.id,
                                                                Deviation.description == DEMO_LATE_DEVIATION)):
        return []
    step_id = session.scalar(select(ProcessStep.id).where(ProcessStep.lot_id == lot.id).order_by(ProcessStep.id.desc()))
    steps.record_deviation(session, tech, lot.id, step_id, severity="minor", description=DEMO_LATE_DEVIATION)
    return [f"  {lot.lot_number}: a deviation recorded after its release waits for QA's assessment (dashboard)"]


DEMO_MAJOR_DEVIATION = ("P0 flask found with its cap loosened at the day-5 check; a sterility sample was taken and "
                        "the culture went on")


def _deviation_to_assess(session: Session, tech: User) -> list[str]:
    """A major deviation on the cord lot of the donor still awaiting QA: it waits for QA's own signed assessment
    before that lot can be released (the dashboard's "Deviations to assess before release")."""
    from mscbatch.donors.demo import PENDING_CORD_INITIALS, demo_cord_donor
    from mscbatch.lots import steps
    from mscbatch.lots.models import Deviation, ProcessStep

    donor = demo_cord_donor(session, PENDING_CORD_INITIALS)
    lot = None if donor is None else session.scalar(select(Lot).where(Lot.donor_id == donor.id).order_by(Lot.id))
    if lot is None or lot.status not in ("in_process", "quarantine") or session.scalar(
            select(Deviation.id).where(Deviation.lot_id == lot.id, Deviation.description == DEMO_MAJOR_DEVIATION)):
        return []
    step_id = session.scalar(select(ProcessStep.id).where(ProcessStep.lot_id == lot.id).order_by(ProcessStep.id.desc()))
    if step_id is None:
        return []
    steps.record_deviation(session, tech, lot.id, step_id, severity="major", description=DEMO_MAJOR_DEVIATION)
    return [f"  {lot.lot_number}: a major deviation waits for QA's signed assessment before any release (dashboard)"]


def seed_release(session: Session) -> list[str]:
    """Idempotent: each lot is tested and released only when it is in quarantine with no result yet."""
    tech, tech2, qa, qa2 = (session.scalar(select(User).where(User.username == name))
                            for name in ("tech", "tech2", "qa", "qa2"))
    if tech is None or qa is None:
        return ["  (skipped: the demo users tech / qa are missing)"]
    lines = _release_adipose(session, tech, qa)
    if tech2 is not None and qa2 is not None:
        from mscbatch.donors.demo import CHAIN_CORD_INITIALS, SECOND_CHAIN_CORD_INITIALS

        lines += _release_chain(session, tech, tech2, qa2, CHAIN_CORD_INITIALS,
                                "its bags are ready for the lupus demo patient")
        lines += _release_chain(session, tech, tech2, qa2, SECOND_CHAIN_CORD_INITIALS,
                                "its bags are free to prescribe")
    else:
        lines.append("  (UC-MSC release skipped: the demo users tech2 / qa2 are missing)")
    return lines + _open_oos(session, tech) + _deviation_to_assess(session, tech) + _deviation_after_release(session, tech)
