"""Release use cases at service level, on SQLite and PostgreSQL (issue 5)."""
from __future__ import annotations

import io
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from mscbatch.core.verdicts import VerdictStatus, judge_endotoxin_dose
from mscbatch.errors import AuthenticationFailed, Conflict, ValidationFailed
from mscbatch.release import oos, release, results
from mscbatch.release.demo import PASSING_PANEL, enter_panel
from mscbatch.release.models import OosInvestigation, ReleaseResult
from mscbatch.release.queries import bag_release, involvement, release_state
from mscbatch.release.specs import lot_verdict, spec_for_lot
from mscbatch.site import site_today
from tests.conftest import PASSWORD
from tests.integration.test_release_support import (
    cord_quarantine_lot,
    lupus_patient_code,
    seed_quarantine_lot,
    user,
)


@pytest.fixture
def lot_id(app, users, monkeypatch):  # type: ignore[no-untyped-def]
    return seed_quarantine_lot(app, monkeypatch)


@pytest.fixture
def session(app):  # type: ignore[no-untyped-def]
    s = app.extensions["mscbatch.db"].new_session()
    yield s
    s.close()


def _lot(session, lot_id):  # type: ignore[no-untyped-def]
    from mscbatch.lots.models import Lot

    session.expire_all()
    return session.get(Lot, lot_id)


def test_a_full_passing_panel_makes_the_lot_ready_and_qa_releases_it_with_a_signature(session, lot_id):
    enter_panel(session, user(session, "technician"), lot_id)
    lot = _lot(session, lot_id)
    assert lot_verdict(session, lot).status == "ready"
    disposition = release.release_lot(session, user(session, "qa"), lot_id, PASSWORD)
    lot = _lot(session, lot_id)
    assert lot.status == "released" and lot.locked_at is not None
    assert disposition.meaning == "Released for clinical use"
    state = release_state(session, lot)
    assert state.released and not state.conditional and not state.exceptional
    # releasing (status, lock) does not make QA the lot's maker after the fact
    assert involvement(session, lot, user(session, "qa").id) == (False, False)
    assert involvement(session, lot, user(session, "technician").id)[0]  # the technician entered the results


def test_cd105_at_94_6_percent_fails_and_opens_an_oos_that_blocks_release(session, lot_id):
    enter_panel(session, user(session, "technician"), lot_id, {"cd105": ("94.6", "%")})
    lot = _lot(session, lot_id)
    verdict = {v.test_id: v for v in lot_verdict(session, lot).verdicts}
    assert verdict["cd105"].status is VerdictStatus.FAIL
    assert len(oos.open_oos_of(session, lot_id)) == 1
    reasons = release.refusals(session, lot, user(session, "qa"))
    assert any("CD105 failed" in r for r in reasons) and "an OOS is open" in reasons
    with pytest.raises(Conflict):
        release.release_lot(session, user(session, "qa"), lot_id, PASSWORD)
    assert _lot(session, lot_id).status == "quarantine"


def test_viability_69_9_percent_fails_at_a_70_percent_minimum(session, lot_id):
    enter_panel(session, user(session, "technician"), lot_id, {"viability": ("69.9", "%")})
    verdict = {v.test_id: v for v in lot_verdict(session, _lot(session, lot_id)).verdicts}
    assert verdict["viability"].status is VerdictStatus.FAIL


def test_hla_dr_3_percent_fails_when_blocking_and_is_informative_in_the_informative_variant(session, lot_id, tmp_path):
    from mscbatch.core.release_spec import load_release_spec

    enter_panel(session, user(session, "technician"), lot_id, {"hla_dr": ("3", "%")})
    lot = _lot(session, lot_id)
    assert {v.test_id: v for v in lot_verdict(session, lot).verdicts}["hla_dr"].status is VerdictStatus.FAIL
    source = spec_for_lot(lot).path.read_text().replace('variant = "blocking"', 'variant = "informative"')
    (tmp_path / "informative.toml").write_text(source)
    informative = load_release_spec(tmp_path / "informative.toml")
    verdict = {v.test_id: v for v in lot_verdict(session, lot, informative).verdicts}["hla_dr"]
    assert verdict.status is VerdictStatus.INFORMATIVE and verdict.meets_limit is True


def test_endotoxin_4_eu_per_ml_fails_the_k_over_m_limit_for_70_kg_100_ml_in_1_h(session, lot_id):
    test = spec_for_lot(_lot(session, lot_id)).test("endotoxin")
    verdict = judge_endotoxin_dose(test, "4", "EU/mL", Decimal(70), Decimal(100), Decimal(1))
    assert verdict.status is VerdictStatus.FAIL and "3.5" in verdict.limit_text


@pytest.mark.parametrize("raw, unit, field", [("104", "%", "value"), ("-5", "cells", "value"), ("95", "cells", "unit")])
def test_impossible_values_and_wrong_units_are_refused_naming_the_field_and_nothing_is_written(
        session, lot_id, raw, unit, field):
    test_id = "viable_cell_count" if unit == "cells" and raw.startswith("-") else "cd105"
    with pytest.raises(ValidationFailed) as refused:
        results.enter_result(session, user(session, "technician"), lot_id, results.ResultEntry(
            test_id=test_id, value=raw, unit=unit, analyst="A. Analyst", tested_on=site_today()))
    assert refused.value.field == field
    assert session.scalar(select(func.count()).select_from(ReleaseResult)) == 0


def test_release_is_refused_while_a_blocking_test_is_pending_and_for_the_qa_who_entered_a_result(session, lot_id, app):
    from tests.conftest import add_user

    add_user(app, "labqa", ["technician", "qa"])
    enter_panel(session, user(session, "technician"), lot_id, skip=("sterility",))
    reasons = release.refusals(session, _lot(session, lot_id), user(session, "qa"))
    assert any("Sterility pending" in r for r in reasons)
    results.enter_result(session, user(session, "labqa"), lot_id, results.ResultEntry(
        test_id="sterility", value="negative", unit="", analyst="Lab QA", tested_on=site_today()))
    assert release.refusals(session, _lot(session, lot_id), user(session, "qa")) == []
    with pytest.raises(Conflict, match="you entered results"):
        release.release_lot(session, user(session, "labqa"), lot_id, PASSWORD)


def test_release_is_refused_for_the_qa_whose_correction_a_colleague_corrected_again(session, lot_id, app):
    """The result row keeps only its last corrector; the audit trail keeps everyone who changed it."""
    from tests.conftest import add_user

    add_user(app, "labqa", ["technician", "qa"])
    enter_panel(session, user(session, "technician"), lot_id)
    viability = session.scalar(select(ReleaseResult).where(ReleaseResult.lot_id == lot_id,
                                                           ReleaseResult.test_id == "viability"))
    results.correct_result(session, user(session, "labqa"), viability.id, "91.0", "%", "transcription check")
    results.correct_result(session, user(session, "technician"), viability.id, "91.5", "%", "digit typed wrong")
    session.expire_all()
    assert session.get(ReleaseResult, viability.id).corrected_by_id == user(session, "technician").id
    assert involvement(session, _lot(session, lot_id), user(session, "labqa").id)[0]
    with pytest.raises(Conflict, match="you entered results"):
        release.release_lot(session, user(session, "labqa"), lot_id, PASSWORD)
    release.release_lot(session, user(session, "qa"), lot_id, PASSWORD)  # another QA person may


def test_release_is_refused_when_the_donor_is_not_approved(session, lot_id, monkeypatch):
    from mscbatch.release import release as module

    enter_panel(session, user(session, "technician"), lot_id)
    monkeypatch.setattr(module, "current_gate", lambda _s, _lot: "pending")
    with pytest.raises(Conflict, match="donor eligibility not approved"):
        release.release_lot(session, user(session, "qa"), lot_id, PASSWORD)


def test_a_wrong_password_signs_nothing(session, lot_id):
    enter_panel(session, user(session, "technician"), lot_id)
    with pytest.raises(AuthenticationFailed):
        release.release_lot(session, user(session, "qa"), lot_id, "wrong")
    assert _lot(session, lot_id).status == "quarantine"


def test_an_oos_invalidated_by_a_passing_retest_lets_the_lot_be_released(session, lot_id):
    tech = user(session, "technician")
    enter_panel(session, tech, lot_id, {"viability": ("65", "%")})
    [investigation] = oos.open_oos_of(session, lot_id)
    retest = results.enter_result(session, tech, lot_id, results.ResultEntry(
        test_id="viability", value="88", unit="%", analyst="A", tested_on=site_today()))
    assert lot_verdict(session, _lot(session, lot_id)).status == "fail"  # no testing into compliance
    oos.invalidate_oos(session, user(session, "qa"), investigation.id, retest.id,
                       "Counting chamber error documented in deviation DV-12", PASSWORD,
                       assignable_cause="instrument")
    assert lot_verdict(session, _lot(session, lot_id)).status == "ready"
    release.release_lot(session, user(session, "qa"), lot_id, PASSWORD)


def test_an_oos_is_not_invalidated_by_someone_who_entered_the_lots_results(app, session, lot_id):
    """Review finding: a user holding technician and QA could enter a passing retest and invalidate the OOS."""
    from tests.conftest import add_user

    add_user(app, "tech-qa", ["technician", "qa"])
    both = user(session, "tech-qa")
    enter_panel(session, user(session, "technician"), lot_id, {"viability": ("65", "%")})
    [investigation] = oos.open_oos_of(session, lot_id)
    retest = results.enter_result(session, both, lot_id, results.ResultEntry(
        test_id="viability", value="88", unit="%", analyst="A", tested_on=site_today()))
    with pytest.raises(Conflict, match="another QA person must judge its OOS"):
        oos.invalidate_oos(session, both, investigation.id, retest.id, "Counting chamber error, see DV-12", PASSWORD,
                           assignable_cause="instrument")
    assert session.get(OosInvestigation, investigation.id).status == "open"
    oos.invalidate_oos(session, user(session, "qa"), investigation.id, retest.id, "Counting chamber error, see DV-12",
                       PASSWORD, assignable_cause="instrument")
    assert session.get(OosInvestigation, investigation.id).status == "invalidated"


def test_an_oos_is_not_invalidated_by_someone_who_recorded_the_lots_manufacture(app, session, lot_id):
    from mscbatch.lots import steps
    from mscbatch.lots.models import ProcessStep
    from tests.conftest import add_user

    add_user(app, "maker-qa", ["technician", "qa"])
    both, tech = user(session, "maker-qa"), user(session, "technician")
    step_id = session.scalar(select(ProcessStep.id).where(ProcessStep.lot_id == lot_id).limit(1))
    steps.record_deviation(session, both, lot_id, step_id, severity="minor", description="Late medium change")
    enter_panel(session, tech, lot_id, {"viability": ("65", "%")})
    [investigation] = oos.open_oos_of(session, lot_id)
    retest = results.enter_result(session, tech, lot_id, results.ResultEntry(
        test_id="viability", value="88", unit="%", analyst="A", tested_on=site_today()))
    with pytest.raises(Conflict, match="recorded the manufacture of this lot; another QA person must"):
        oos.invalidate_oos(session, both, investigation.id, retest.id, "Counting chamber error, see DV-12", PASSWORD,
                           assignable_cause="instrument")


def test_a_confirmed_oos_rejects_the_lot(session, lot_id):
    enter_panel(session, user(session, "technician"), lot_id, {"cd105": ("94.6", "%")})
    [investigation] = oos.open_oos_of(session, lot_id)
    oos.confirm_oos(session, user(session, "qa"), investigation.id, "No lab error found: identity failure", PASSWORD)
    assert _lot(session, lot_id).status == "rejected"
    assert session.get(OosInvestigation, investigation.id).status == "confirmed"


def test_conditional_release_before_sterility_then_a_late_fail_opens_a_late_oos(session, lot_id):
    tech, qa = user(session, "technician"), user(session, "qa")
    enter_panel(session, tech, lot_id, skip=("sterility",))
    release.release_lot(session, qa, lot_id, PASSWORD, conditional_tests=["sterility"],
                        justification="Patient cannot wait 14 days for BacT/ALERT")
    lot = _lot(session, lot_id)
    assert lot.status == "conditional_release"
    bag_id = __import__("mscbatch.lots.queries", fromlist=["bags_of"]).bags_of(session, lot_id)[0].id
    assert bag_release(session, bag_id).conditional
    with pytest.raises(Conflict):
        results.enter_result(session, tech, lot_id, results.ResultEntry(
            test_id="cd90", value="99", unit="%", analyst="A", tested_on=site_today()))
    results.enter_result(session, tech, lot_id, results.ResultEntry(
        test_id="sterility", value="positive", unit="", analyst="A", tested_on=site_today()))
    [late] = oos.open_oos_of(session, lot_id)
    assert late.late and late.patients == []


def test_conditional_release_is_completed_by_a_second_signature_when_sterility_passes(session, lot_id):
    tech, qa = user(session, "technician"), user(session, "qa")
    enter_panel(session, tech, lot_id, skip=("sterility",))
    release.release_lot(session, qa, lot_id, PASSWORD, conditional_tests=["sterility"],
                        justification="Patient cannot wait 14 days for BacT/ALERT")
    results.enter_result(session, tech, lot_id, results.ResultEntry(
        test_id="sterility", value=PASSING_PANEL["sterility"][0], unit="", analyst="A",
        tested_on=site_today()))
    release.complete_conditional_release(session, user(session, "qa2"), lot_id, PASSWORD)
    assert _lot(session, lot_id).status == "released"


def test_exceptional_release_of_an_oos_batch_needs_a_clinician_and_qa_and_names_the_patient(session, lot_id):
    # a registered lupus patient and a UC-MSC lot, which the lupus protocol takes (release.patient_refusal)
    uc_id, code = cord_quarantine_lot(session), lupus_patient_code(session)
    enter_panel(session, user(session, "technician"), uc_id, {"viability": ("66", "%")})
    release.request_exceptional_release(session, user(session, "clinician"), uc_id, f" {code.lower()} ",
                                        "No alternative therapy; life-threatening flare, benefit outweighs risk",
                                        PASSWORD)
    release.approve_exceptional_release(session, user(session, "qa"), uc_id, PASSWORD)
    state = release_state(session, _lot(session, uc_id))
    assert state.exceptional and state.patient_code == code and "EXCEPTIONAL" in state.flag


def _move_bag(session, actor, bag_id, target):  # type: ignore[no-untyped-def]
    """A custody move through the bag state machine (sequence and role checked), with its reason."""
    from mscbatch.audit.context import use_case
    from mscbatch.core.states import BAG
    from mscbatch.lots.models import Bag

    with use_case(session, actor, f"demo custody: {target}"):
        bag = session.get(Bag, bag_id)
        BAG.check(bag.status, target, actor.role_names, subject=f"bag {bag.din}")
        bag.status = target


def test_a_late_oos_after_conditional_release_lists_every_patient_who_received_the_lot_with_dates(session, lot_id):
    from mscbatch.lots.demo import chain_lot
    from mscbatch.lots.models import Bag
    from mscbatch.lots.services import transition_lot
    from mscbatch.patients import prescriptions
    from mscbatch.patients import services as patient_services
    from mscbatch.patients.queries import allocations_of
    from mscbatch.release.coa import certificate_pdf
    from mscbatch.release.review import review_of
    from tests.integration.patient_factories import patient

    tech, qa, clinician = user(session, "technician"), user(session, "qa"), user(session, "clinician")
    uc = chain_lot(session)  # the demo UC-MSC lot (4 bags of 50 x10^6 viable cells), cryopreserved
    transition_lot(session, user(session, "tech"), uc.id, "quarantine", "Cryopreserved: awaiting QC")
    enter_panel(session, tech, uc.id, skip=("sterility",))
    release.release_lot(session, qa, uc.id, PASSWORD, conditional_tests=["sterility"],
                        justification="Patient cannot wait 14 days for BacT/ALERT")
    infused_patient = patient(session, clinician)  # 62.5 kg: 3 bags
    # 20 kg (40 x10^6 cells: the 4th bag alone, never dispatched) is below an adult's plausible weights: a weight the
    # clinician confirms having checked, as the page asks for one
    waiting_patient = patient(session, clinician, weight=None)
    patient_services.record_weight(session, clinician, waiting_patient.id, weight_kg="20",
                                   measured_on=site_today() - timedelta(days=1), weight_confirmed=True)
    first = prescriptions.prescribe(session, clinician, PASSWORD, infused_patient.id)
    prescriptions.prescribe(session, clinician, PASSWORD, waiting_patient.id)
    [infused, *_rest] = [a.bag_id for a in allocations_of(session, first.id)]
    for actor, target in ((tech, "dispatched"), (user(session, "nurse"), "received"),
                          (user(session, "nurse"), "thawed"), (user(session, "nurse"), "infused")):
        _move_bag(session, actor, infused, target)
    assert oos.patients_who_received(session, lot_id) == []  # the adipose lot: nobody received it

    results.enter_result(session, tech, uc.id, results.ResultEntry(
        test_id="sterility", value="positive", unit="", analyst="A", tested_on=site_today()))
    [late] = oos.open_oos_of(session, uc.id)
    assert late.late and "LATE OOS" in late.description
    [entry] = late.patients
    assert entry["patient_code"] == infused_patient.code and entry["clinician"] == clinician.full_name
    [bag] = entry["bags"]
    assert bag["din"] == session.get(Bag, infused).din and bag["status"] == "infused"
    assert bag["status_since"] and bag["allocated_at"]
    assert entry["prescriptions"][0]["id"] == first.id and entry["prescriptions"][0]["signed_at"]
    assert infused_patient.code in entry["summary"] and "infused" in entry["summary"]
    assert waiting_patient.code not in json.dumps(late.patients)

    from pypdf import PdfReader

    pdf = certificate_pdf(review_of(session, uc.id))
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    # the certificate travels with the lot: it counts the patients to notify, the review page names them
    assert "Patients to notify: 1" in text and infused_patient.code not in text


def test_the_certificate_prints_cell_counts_as_x10_6_cells(session, lot_id):
    from pypdf import PdfReader

    from mscbatch.release.coa import certificate_pdf
    from mscbatch.release.review import review_of

    enter_panel(session, user(session, "technician"), lot_id)  # viable cell count 120000000
    release.release_lot(session, user(session, "qa"), lot_id, PASSWORD)
    pdf = certificate_pdf(review_of(session, lot_id))
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "120 x10^6 cells" in " ".join(text.split())
    assert "120000000" not in text


def test_a_released_lot_stays_judged_against_the_specification_version_qa_signed(app, session, lot_id, monkeypatch,
                                                                                   tmp_path):
    """A stricter version 2 installed after the release: the released lot's review and certificate keep version 1
    (what the signature vouches for); a lot still in quarantine is judged against version 2."""
    import io

    from pypdf import PdfReader

    from mscbatch.core.release_spec import load_release_spec
    from mscbatch.release import coa, review, specs
    from mscbatch.release.specs import SpecificationUnusable

    enter_panel(session, user(session, "technician"), lot_id)  # viability 92.5 %
    release.release_lot(session, user(session, "qa"), lot_id, PASSWORD)
    v1 = specs.spec_for_lot(_lot(session, lot_id))
    stricter = tmp_path / "v2.toml"
    stricter.write_text(v1.path.read_text().replace('version = "1"', 'version = "2"').replace("min = 70", "min = 95"))
    installed = (*specs.load_release_specs(v1.path.parent), load_release_spec(stricter))
    monkeypatch.setattr(specs, "all_specs", lambda: installed)
    assert specs.spec_for_lot(_lot(session, lot_id)).version == "2"  # the active version for new lots

    shown = review.review_of(session, lot_id)
    assert (shown.spec.version, str(shown.verdict.status)) == ("1", "ready")
    words = " ".join(" ".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(coa.certificate_pdf(shown))).pages).split())
    assert "version 1" in words and "version 2" not in words and "OUT OF SPECIFICATION" not in words

    changed = tmp_path / "v1-edited.toml"
    changed.write_text(v1.path.read_text().replace("min = 70", "min = 71"))  # same version, another text
    monkeypatch.setattr(specs, "all_specs", lambda: (load_release_spec(changed),))
    with pytest.raises(SpecificationUnusable, match="has changed since"):
        review.review_of(session, lot_id)
    monkeypatch.setattr(specs, "all_specs", lambda: (load_release_spec(stricter),))
    with pytest.raises(SpecificationUnusable, match="no longer in config/release_specs"):
        review.review_of(session, lot_id)
