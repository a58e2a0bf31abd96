"""S40, QA's donor review: the donor page's audit link listed the donor row alone (its registration); the results,
their corrections, the questionnaire, QA's decisions and their signatures were not in it. The audit page now takes
"Whole trail of donor" (a code or id), on the page and its CSV, as it takes a lot's, and names nothing of other
donors; a donor nobody has is refused beside the field."""
from __future__ import annotations

import html

from sqlalchemy import select

from mscbatch.donors.models import Donor, EligibilityDecision, ScreeningResult
from tests.integration.test_s38_audit_review_filters import _csv, _qa, _seqs, demo  # noqa: F401 - the fixture


def test_a_donors_whole_trail_gathers_its_records_and_no_other_donors(app, demo):  # type: ignore[no-untyped-def]  # noqa: F811
    with app.extensions["mscbatch.db"].new_session() as session:
        results = set(session.scalars(select(ScreeningResult.id).where(ScreeningResult.donor_id == demo["donor_id"])))
        decisions = set(session.scalars(select(EligibilityDecision.id)
                                        .where(EligibilityDecision.donor_id == demo["donor_id"])))
        others = set(session.scalars(select(ScreeningResult.id).where(ScreeningResult.donor_id != demo["donor_id"])))
        other_donor = session.scalar(select(Donor.id).where(Donor.id != demo["donor_id"]).limit(1))
    assert results and decisions and others
    qa = _qa(app)
    rows = _csv(qa, donor=demo["donor_code"])
    by_type: dict[str, set[int]] = {}
    for row in rows:
        by_type.setdefault(row["record_type"], set()).add(int(row["record_id"]))
    assert by_type["donor"] == {demo["donor_id"]}
    assert by_type["donor_screening_result"] == results  # every result of the donor, and no other donor's
    assert by_type["donor_eligibility_decision"] == decisions
    assert "signature" in by_type  # QA's signed decision
    assert "donor_questionnaire_answer" in by_type
    assert not by_type.get("donor_screening_result", set()) & others
    assert other_donor not in by_type["donor"]
    assert "lot" not in by_type  # its lots have their own whole trail
    page = qa.get("/audit", query_string={"donor": demo["donor_code"]})
    assert _seqs(page)
    text = page.get_data(as_text=True)
    assert f'donor={demo["donor_code"]}' in text  # the CSV and Older links keep the filter
    assert 'name="donor"' in text and "Whole trail of donor" in text
    assert _csv(qa, donor=str(demo["donor_id"])) == rows  # its id finds it too
    answer = qa.get("/audit", query_string={"donor": "D-2099-0404"})
    said = html.unescape(answer.get_data(as_text=True))
    assert answer.status_code == 422 and "Whole trail of donor: no donor has the code D-2099-0404." in said
    assert 'id="donor-error"' in said
    assert qa.get("/audit/events.csv", query_string={"donor": "9" * 5000}).status_code == 422


def test_the_donor_pages_audit_link_opens_its_whole_trail(app, demo):  # type: ignore[no-untyped-def]  # noqa: F811
    qa = _qa(app)
    page = qa.get(f"/donors/{demo['donor_id']}").get_data(as_text=True)
    link = f'<a href="/audit?donor={demo["donor_code"]}" id="donor-audit-trail">Audit trail</a>'
    assert link in page
    assert len(_seqs(qa.get("/audit", query_string={"donor": demo["donor_code"]}))) > 1  # not the donor row alone
