"""Every sentence of the patients package that names a bag names it as its label does, with the check character K
("X9999 99 000101 K", identifiers.din_shown): a nurse or a clinician reads the refusal, the dose page and the dose
sheet against the label in her hand, where the boxed K is part of the number. They said the bare 13 characters."""
from __future__ import annotations

import re
from html import unescape

import pytest
from sqlalchemy import select, update

from mscbatch.core.identifiers import din_shown
from mscbatch.custody.models import Infusion
from mscbatch.errors import Conflict, ValidationFailed
from mscbatch.lots.models import Bag
from mscbatch.patients import prescriptions
from mscbatch.patients.dose_sheet import dose_sheet_data
from mscbatch.patients.inventory import calculate
from tests.conftest import PASSWORD
from tests.integration.patient_factories import donor, lot_with_bags, patient, user
from tests.integration.test_dmso_per_day import _stopped_after_first_bag
from tests.integration.test_review5_patients_course import _pdf_text


def _text(html: str) -> str:
    # the words as read: an inline tag (a DIN kept on one line, <span class="code">) leaves no space before a comma
    return re.sub(r" ([,.:;)])", r"\1", re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))))


def _dry_run(session):  # type: ignore[no-untyped-def]
    """A patient's dry run from a released lot: (clinician, patient id, the bags it chose, the weight id)."""
    tech, clin = user(session, "technician"), user(session, "clinician")
    lot_with_bags(session, tech, donor(session, tech), bags=6)
    row = patient(session, clin)
    result = calculate(session, row.id)
    assert result.allocation is not None, result.refusal
    bag_ids = [int(d.bag_id) for d in result.allocation.draws]
    return clin, row.id, bag_ids, result.weight.id


@pytest.mark.parametrize(("status", "words"), [("on_hold", "can no longer be allocated (the bag is on hold); recalculate"),
                                               ("allocated", "was just allocated to another patient; recalculate")])
def test_a_bag_gone_since_the_dry_run_is_named_with_its_k(app, users, db_session, status: str, words: str) -> None:
    clin, pid, bag_ids, weight_id = _dry_run(db_session)
    db_session.execute(update(Bag).where(Bag.id == bag_ids[0]).values(status=status))
    db_session.commit()
    with pytest.raises(Conflict) as refused:
        prescriptions.prescribe(db_session, clin, PASSWORD, pid, bag_ids=bag_ids, weight_id=weight_id)
    shown = din_shown(db_session.get(Bag, bag_ids[0]))
    assert re.fullmatch(r"X9999 99 \d{6} [0-9A-Z*]", shown), shown
    assert str(refused.value.message) == f"Bag {shown} {words}.", refused.value.message


def test_a_conditionally_released_bag_is_named_with_its_k_on_the_dose_sheet(app, users, db_session) -> None:
    tech, clin = user(db_session, "technician"), user(db_session, "clinician")
    lot_with_bags(db_session, tech, donor(db_session, tech), bags=6, status="conditional_release")
    row = patient(db_session, clin)
    rx = prescriptions.prescribe(db_session, clin, PASSWORD, row.id)
    sheet = dose_sheet_data(db_session, rx)
    bags = [db_session.get(Bag, int(d["bag_id"])) for d in rx.calculation["draws"]]
    for bag in bags:
        assert f"Bag {din_shown(bag)}: lot conditionally released" in " ".join(sheet.warnings), sheet.warnings


def test_a_bag_already_given_is_named_with_its_k_in_the_repeat_course_words_page_and_sheet(
        app, users, db_session, client_as) -> None:
    pid, _at, _started = _stopped_after_first_bag(db_session)
    given = db_session.get(Bag, db_session.scalar(select(Infusion.bag_id).where(Infusion.patient_id == pid)))
    shown = din_shown(given)
    clin = user(db_session, "clinician")
    with pytest.raises(ValidationFailed) as refused:  # the repeat course is refused without its reason
        prescriptions.prescribe(db_session, clin, PASSWORD, pid)
    assert f"(bag {shown} started " in refused.value.message, refused.value.message
    db_session.rollback()

    page = _text(client_as("clinician").get(f"/patients/{pid}/dose").get_data(as_text=True))
    assert f"Bag {shown}, started " in page, page[page.find("already"):][:600]

    stopped = db_session.scalar(select(prescriptions.Prescription.id).where(
        prescriptions.Prescription.patient_id == pid))
    db_session.rollback()
    sheet = _pdf_text(client_as("clinician").get(f"/patients/prescriptions/{stopped}/dose-sheet.pdf").data)
    assert f"bag {shown} (" in sheet, sheet[sheet.find("Delivered"):][:400]


def test_a_bag_not_offered_is_named_with_its_k_on_the_dose_page(app, users, db_session, client_as) -> None:
    tech, clin = user(db_session, "technician"), user(db_session, "clinician")
    lot_with_bags(db_session, tech, donor(db_session, tech), bags=6)
    theirs = lot_with_bags(db_session, tech, donor(db_session, tech, familial_for="SLE-UC-999"), bags=1)
    row = patient(db_session, clin)
    shown, pid = din_shown(theirs[0]), row.id
    db_session.commit()
    page = _text(client_as("clinician").get(f"/patients/{pid}/dose").get_data(as_text=True)).replace(" :", ":")
    assert f"{shown}: for use by another intended recipient only" in page, page[page.find("not offered"):][:400]
