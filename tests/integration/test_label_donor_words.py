"""Why a bag's donor does not clear it, in words true of the donor's history, on both databases: the labels page,
the print refusal, the label verification page (/v/) and the FHIR export of a quarantine lot made from a donor QA
never approved say "the donor's eligibility is not approved yet (QA has not signed it)", never that new information
reopened it; "reopened" stays for a donor QA had approved and new information put back to review; a donor QA signed
ineligible is said so. The bedside check's words for a donor QA never signed do not say "reopened" either."""
from __future__ import annotations

from typing import Any

from mscbatch.audit.context import use_case
from mscbatch.custody.checks import donor_problem, evaluate
from mscbatch.donors import decisions
from mscbatch.donors.models import INELIGIBLE, Donor
from mscbatch.lots.models import Bag, Lot
from tests.conftest import PASSWORD
from tests.integration.lot_factories import (
    approved_adipose_donor,
    ineligible_adipose_donor,
    pending_cord_donor,
)
from tests.integration.patient_factories import lot_with_bags, user
from tests.integration.test_label_print_guards import (
    _page_text,
    _print,
    _refused,
    _verification_reasons,
    _written,
)
from tests.integration.test_recall_review7_exports import fhir

NOT_APPROVED = "the donor's eligibility is not approved yet (QA has not signed it)"
REOPENED = "new information reopened the donor's eligibility"
INELIGIBLE_WORDS = "QA judged the donor not eligible"
ALL_WORDS = (NOT_APPROVED, REOPENED, INELIGIBLE_WORDS)


def _quarantine_lot(app: Any, donor_id: int) -> tuple[int, int, str]:
    """A lot in quarantine made from the donor (as the lot gate allows for a donor QA has not approved), one bag."""
    session = app.extensions["mscbatch.db"].new_session()
    try:
        tech = user(session, "technician")
        [bag] = lot_with_bags(session, tech, session.get(Donor, donor_id), bags=1, status="quarantine",
                              labelled=False)
        with use_case(session, tech, "test set-up: the lot's donor gate was pending when it started"):
            session.get(Lot, bag.lot_id).donor_gate = "pending"
        return bag.lot_id, bag.id, bag.din
    finally:
        session.close()


def _donor(app: Any, make: Any) -> int:
    session = app.extensions["mscbatch.db"].new_session()
    try:
        return int(make(session))
    finally:
        session.close()


def _qa(app: Any, act: Any) -> None:
    session = app.extensions["mscbatch.db"].new_session()
    try:
        act(session, user(session, "qa"))
    finally:
        session.close()


def _said_everywhere(app: Any, client: Any, lot_id: int, bag_id: int, din: str, words: str) -> None:
    """The labels page, the print refusal, the /v/ page and the FHIR export say `words`, and no other donor words."""
    others = [other for other in ALL_WORDS if other != words]
    page = _page_text(client.get(f"/labels/lots/{lot_id}"))
    before = _written(app, bag_id)
    alert = _refused(app, _print(client, lot_id, bag_id), din, words, before, bag_id)
    verification = _verification_reasons(app, bag_id)
    product = fhir(app, f"/api/v1/fhir/BiologicallyDerivedProduct/{bag_id}")
    not_usable = {p["type"]["text"]: p.get("valueString") for p in product["property"]}["not-usable"]
    bundle = fhir(app, f"/api/v1/fhir/Bundle?lot={lot_id}")
    bundled = {p["type"]["text"]: p.get("valueString") for p in bundle["entry"][0]["resource"]["property"]}
    for text in (page, alert, verification, not_usable, bundled["not-usable"]):
        assert words in text, text
        assert not any(other in text for other in others), text
        assert "reopened" not in text or words == REOPENED, text
    assert product["productStatus"]["code"] == "unavailable"


def test_a_quarantine_lot_of_a_donor_qa_never_signed_says_not_approved_yet(app, users, client_as) -> None:  # type: ignore[no-untyped-def]
    donor_id = _donor(app, pending_cord_donor)
    lot_id, bag_id, din = _quarantine_lot(app, donor_id)
    _said_everywhere(app, client_as("technician"), lot_id, bag_id, din, NOT_APPROVED)


def test_a_donor_approved_then_reopened_by_new_information_still_says_reopened(app, users, client_as) -> None:  # type: ignore[no-untyped-def]
    donor_id = _donor(app, approved_adipose_donor)
    lot_id, bag_id, din = _quarantine_lot(app, donor_id)
    _qa(app, lambda session, qa: decisions.reopen_screening(session, qa, donor_id, "Donor reports hepatitis B"))
    _said_everywhere(app, client_as("technician"), lot_id, bag_id, din, REOPENED)


def test_a_donor_signed_ineligible_then_reopened_was_never_approved(app, users, client_as) -> None:  # type: ignore[no-untyped-def]
    donor_id = _donor(app, ineligible_adipose_donor)
    lot_id, bag_id, din = _quarantine_lot(app, donor_id)  # made while the screening waited for QA
    client = client_as("technician")
    _qa(app, lambda session, qa: decisions.decide(session, qa, donor_id, INELIGIBLE, PASSWORD))
    _said_everywhere(app, client, lot_id, bag_id, din, INELIGIBLE_WORDS)
    _qa(app, lambda session, qa: decisions.reopen_screening(session, qa, donor_id, "The HIV result was a lab error"))
    _said_everywhere(app, client, lot_id, bag_id, din, NOT_APPROVED)


def test_the_bedside_says_a_donor_qa_never_signed_is_not_approved_not_reopened() -> None:
    never = donor_problem("D-2026-0007", "not_approved_yet")
    assert never == ("The DONOR of this bag (D-2026-0007) is NOT APPROVED yet: QA has not signed the donor's "
                     "eligibility.")
    reopened = donor_problem("D-2026-0007", "reopened")
    assert reopened is not None and "reopened" in reopened and "UNDER REVIEW" in reopened


def _bedside_donor_words(app: Any, bag_id: int) -> str:
    """The donor's words in the bedside check's findings for the bag (scanned by its DIN and check character)."""
    session = app.extensions["mscbatch.db"].new_session()
    try:
        bag = session.get(Bag, bag_id)
        result = evaluate(session, "NO-SUCH-BAND", bag.din + bag.check_character, app.config["LABEL_KEY"])
        return " ".join(f.message for f in result.failures if f.code == "donor_not_cleared")
    finally:
        session.close()


def test_the_bedside_tells_a_donors_story_as_the_labels_do(app, users) -> None:  # type: ignore[no-untyped-def]
    """The bedside reads the verdict the labels read (donors.clearance): a donor signed ineligible and put back to
    review was never approved, so its bag is NOT APPROVED yet there too, never UNDER REVIEW "again"."""
    donor_id = _donor(app, ineligible_adipose_donor)
    _, bag_id, _ = _quarantine_lot(app, donor_id)
    _qa(app, lambda session, qa: decisions.decide(session, qa, donor_id, INELIGIBLE, PASSWORD))
    assert "NOT ELIGIBLE" in _bedside_donor_words(app, bag_id)
    _qa(app, lambda session, qa: decisions.reopen_screening(session, qa, donor_id, "The HIV result was a lab error"))
    words = _bedside_donor_words(app, bag_id)
    assert "NOT APPROVED yet" in words and "again" not in words and "reopened" not in words, words

    approved_id = _donor(app, approved_adipose_donor)
    _, approved_bag_id, _ = _quarantine_lot(app, approved_id)
    assert _bedside_donor_words(app, approved_bag_id) == ""
    _qa(app, lambda session, qa: decisions.reopen_screening(session, qa, approved_id, "Donor reports hepatitis B"))
    assert "UNDER REVIEW again" in _bedside_donor_words(app, approved_bag_id)
