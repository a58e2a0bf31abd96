"""Demo release for `make run`: the demo technician enters a full passing panel for the quarantined demo lot and
QA (qa, who took no part in it) releases it with a signature, so its bags can be dosed and labelled (issue 6);
a second quarantined lot gets a failing CD105, so an open OOS waits for QA on the dashboard."""
from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.auth.models import User
from mscbatch.lots.models import Lot
from mscbatch.release import release, results
from mscbatch.release.specs import FLOW_PANEL

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
                                 tested_on=date.today() - timedelta(days=1), instrument="Demo cytometer FC-1",
                                 reagent_lot="AB-PANEL-2291")
    flow_ids = {test_id for _f, test_id, _l in FLOW_PANEL}
    if not flow_ids & set(skip):
        results.enter_flow_panel(session, tech, lot_id, {f: values[t][0] for f, t, _l in FLOW_PANEL}, common)
    for test_id, (value, unit) in values.items():
        if test_id in flow_ids or test_id in skip:
            continue
        results.enter_result(session, tech, lot_id, results.ResultEntry(
            test_id=test_id, value=value, unit=unit, analyst=tech.full_name, tested_on=common.tested_on))


def seed_release(session: Session) -> list[str]:
    tech = session.scalar(select(User).where(User.username == "tech"))
    qa = session.scalar(select(User).where(User.username == "qa"))
    lot = session.scalar(select(Lot).where(Lot.status == "quarantine").order_by(Lot.id))
    if tech is None or qa is None or lot is None:
        return ["  (skipped: no quarantined demo lot, or the demo users tech / qa are missing)"]
    if lot.product_class not in ("MSC(M)", "MSC(AT)"):
        return [f"  (skipped: lot {lot.lot_number} is not judged by the default MSC specification)"]
    enter_panel(session, tech, lot.id)
    release.release_lot(session, qa, lot.id, DEMO_PASSWORD)
    lines = [f"  {lot.lot_number}: full panel entered by {tech.username}, released by {qa.username} (signed); "
             "its bags are released for dosing and labelling"]
    other = session.scalar(select(Lot).where(Lot.status.in_(("in_process", "quarantine")), Lot.id != lot.id)
                           .order_by(Lot.id))
    if other is not None:
        results.enter_result(session, tech, other.id, results.ResultEntry(
            test_id="cd105", value="94.6", unit="%", analyst=tech.full_name, tested_on=date.today(),
            method="flow cytometry", instrument="Demo cytometer FC-1"))
        lines.append(f"  {other.lot_number}: CD105 94.6 % (< 95 %) entered: an OOS is open for QA to investigate")
    return lines
