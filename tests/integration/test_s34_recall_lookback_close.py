"""A lookback opened while a recall of its donor is in force (a second late result recorded after the donor's recall
started) could not be closed: only the start of a donor recall closes a lookback, and a second recall of the donor is
refused while the first is in force, so it stayed on the QA dashboard and the recalls page for good, saying "Recall
R-1 is active" even of a completed recall. QA now closes it under that recall, with a note saying why the recall
covers it, from the row of the recalls page (recall.close_lookback); audited; the recall's end opens it again."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from mscbatch.audit.models import AuditEvent
from mscbatch.donors import decisions
from mscbatch.donors import services as donor_services
from mscbatch.donors.models import APPROVED, DonorLookback
from mscbatch.recall import services
from mscbatch.recall.models import Recall
from mscbatch.recall.queries import open_lookbacks
from mscbatch.site import site_today
from tests.conftest import PASSWORD
from tests.integration.test_donors import screened_donor, user
from tests.integration.test_recall_lookbacks import _infused_cord_donor, _section

NOTE = "Anti-HIV positive too: recall R-1 already holds every lot of the donor and lists its patients"


def _lookbacks(page: str) -> str:
    return _section(page, 'id="lookbacks"', 'id="recalls"')


def _recalled_on_notice(session: Any, qa: Any) -> tuple[int, int]:
    """An approved cord donor recalled on a collection site's notice, with no lookback open: (donor id, recall id)."""
    donor_id = screened_donor(session, "cord_eu")
    decisions.decide(session, qa, donor_id, APPROVED, PASSWORD)
    return donor_id, services.start_recall(session, qa, scope="donor", target_id=donor_id, password=PASSWORD,
                                           reason="Collection site notice: donor deferred").recall_id


def _recall_then_a_second_late_result(app: Any, client_as: Any) -> dict[str, Any]:
    """The donor's recall started from its lookback (which it closes), then a second positive marker recorded: the
    donor pages open a new lookback, while the recall is in force."""
    scene = _infused_cord_donor(app)
    qa = client_as("qa")
    started = qa.post("/recalls/new", data={"scope": "donor", "target": scene["code"], "password": PASSWORD,
                                            "reason": "Late positive anti-HCV (LATE-HCV-1)"})
    assert started.status_code == 302, started.get_data(as_text=True)[:2000]
    scene["recall_id"] = int(started.headers["Location"].rsplit("/", 1)[-1])
    with app.extensions["mscbatch.db"].new_session() as session:
        donor_services.record_result(session, user(session, "technician"), scene["donor_id"], marker="anti_hiv_1_2",
                                     result="positive", sample_date=site_today(), lab_reference="LATE-HIV-2")
        session.commit()
        found = open_lookbacks(session)
        assert [(o.donor.id, o.recall.id if o.recall else None) for o in found] == [
            (scene["donor_id"], scene["recall_id"])]
        scene["lookback_id"] = found[0].lookback.id
    scene["qa"] = qa
    return scene


def test_qa_closes_a_lookback_opened_during_the_donors_recall_from_the_recalls_page(app, users, client_as):  # type: ignore[no-untyped-def]
    s = _recall_then_a_second_late_result(app, client_as)
    qa, recall_id, lookback_id = s["qa"], s["recall_id"], s["lookback_id"]
    url = f"/recalls/lookbacks/{lookback_id}/close"
    # the way the page offered before, a new recall of the donor, is refused: the recall in force covers the donor
    again = qa.post("/recalls/new", data={"scope": "donor", "target": s["code"], "password": PASSWORD,
                                          "reason": "Late positive anti-HIV (LATE-HIV-2)"})
    assert again.status_code == 409 and "is in force already" in again.get_data(as_text=True)
    row = _lookbacks(qa.get("/recalls").get_data(as_text=True))
    assert "LATE-HIV-2" in row and f"Recall R-{recall_id}</a> (active) covers this donor" in row
    assert f'action="{url}"' in row and f"Close this lookback under R-{recall_id}" in row
    assert f'id="lookback-note-{lookback_id}"' in row
    for role in ("technician", "clinician"):  # the clinician reads the page, without the form
        assert client_as(role).post(url, data={"note": NOTE}).status_code == 403
    assert 'class="close-lookback"' not in _lookbacks(client_as("clinician").get("/recalls").get_data(as_text=True))

    short = qa.post(url, data={"note": "covered"})
    text = short.get_data(as_text=True)
    assert short.status_code == 422 and "at least 20 characters (this one has 7)" in _lookbacks(text)
    assert 'id="lookback-refusal"' in text and 'aria-invalid="true"' in _lookbacks(text)
    assert f'href="#lookback-note-{lookback_id}"' in text  # the summary at the top links to the row's field

    done = qa.post(url, data={"note": NOTE})
    assert done.status_code == 302, done.get_data(as_text=True)[:2000]
    after = qa.get(done.headers["Location"]).get_data(as_text=True)
    assert f"Lookback closed: Covered by recall R-{recall_id} (active): {NOTE}" in after
    assert "None." in _lookbacks(after) and "LATE-HIV-2" not in _lookbacks(after)
    assert "None." in _section(qa.get("/release").get_data(as_text=True), 'id="lookbacks"', 'id="awaiting"')
    with app.extensions["mscbatch.db"].new_session() as session:
        lookback = session.get(DonorLookback, lookback_id)
        assert lookback.closed_at is not None and lookback.closed_by_id == users["qa"].id
        assert lookback.closure_note == f"Covered by recall R-{recall_id} (active): {NOTE}"
        trail = session.scalars(select(AuditEvent).where(AuditEvent.entity_type == "donor_lookback",
                                                         AuditEvent.entity_id == str(lookback_id),
                                                         AuditEvent.field == "closed_at")).all()
        assert len(trail) == 1 and trail[0].actor_name and NOTE in (trail[0].reason or "")
        assert session.get(Recall, recall_id).status == "active"  # the recall itself is untouched

    twice = qa.post(url, data={"note": NOTE})
    assert twice.status_code == 409 and "is closed already" in twice.get_data(as_text=True)


def test_a_lookback_closed_under_a_recall_is_opened_again_when_the_recall_is_ended(app, users, client_as):  # type: ignore[no-untyped-def]
    s = _recall_then_a_second_late_result(app, client_as)
    qa = s["qa"]
    assert qa.post(f"/recalls/lookbacks/{s['lookback_id']}/close", data={"note": NOTE}).status_code == 302
    ended = qa.post(f"/recalls/{s['recall_id']}/end", data={"reason": "Started on the wrong report",
                                                           "password": PASSWORD})
    assert ended.status_code == 302
    with app.extensions["mscbatch.db"].new_session() as session:
        found = open_lookbacks(session)  # the newest news, the anti-HIV, is back before QA: one lookback, not two
        assert [(o.lookback.id, o.recall) for o in found] == [(s["lookback_id"], None)]
    row = _lookbacks(qa.get("/recalls").get_data(as_text=True))
    assert "LATE-HIV-2" in row and f"/recalls/new?scope=donor&amp;target={s['code']}" in row
    assert 'class="close-lookback"' not in row  # no recall in force: the way out is the donor's recall


def test_a_lookback_without_a_recall_in_force_is_not_closed_by_the_form(app, users, client_as):  # type: ignore[no-untyped-def]
    scene = _infused_cord_donor(app)
    with app.extensions["mscbatch.db"].new_session() as session:
        lookback_id = open_lookbacks(session)[0].lookback.id
    refused = client_as("qa").post(f"/recalls/lookbacks/{lookback_id}/close", data={"note": NOTE})
    text = refused.get_data(as_text=True)
    assert refused.status_code == 409 and f"No recall of donor {scene['code']} is in force" in text
    assert client_as("qa").post("/recalls/lookbacks/999999/close", data={"note": NOTE}).status_code == 404
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.get(DonorLookback, lookback_id).closed_at is None


def test_a_lookback_opened_after_the_donors_recall_was_completed_is_closed_under_it(app, users, client_as):  # type: ignore[no-untyped-def]
    """A donor recalled on a supplier's notice (no lookback open), its recall completed (no lot was made), then a late
    positive: the lookback opened then had no way out at all (the completed recall bars a second one for ever)."""
    with app.extensions["mscbatch.db"].new_session() as session:
        qa = user(session, "qa")
        donor_id, recall_id = _recalled_on_notice(session, qa)
        services.complete_recall(session, qa, recall_id, password=PASSWORD,
                                 note="No lot was made from this donor: nothing to recover or destroy.")
        donor_services.record_result(session, user(session, "technician"), donor_id, marker="anti_hcv",
                                     result="positive", sample_date=site_today(), lab_reference="LATE-HCV-9")
        session.commit()
        lookback_id = open_lookbacks(session)[0].lookback.id
    page = client_as("qa")
    row = _lookbacks(page.get("/recalls").get_data(as_text=True))
    assert f"Recall R-{recall_id}</a> (completed) covers this donor" in row and "is active" not in row
    note = "Completed recall R-1 covers the donor: no lot was ever made from it"
    assert page.post(f"/recalls/lookbacks/{lookback_id}/close", data={"note": note}).status_code == 302
    with app.extensions["mscbatch.db"].new_session() as session:
        assert open_lookbacks(session) == []
        assert session.get(DonorLookback, lookback_id).closure_note == f"Covered by recall R-{recall_id} (completed): {note}"


def test_a_lookback_closed_under_a_recall_that_answered_none_is_opened_again_by_its_end(app, users, client_as):  # type: ignore[no-untyped-def]
    """The recall started with no lookback open (recall.lookback_id is None): its end reopened nothing, and the late
    positive closed under it was lost."""
    with app.extensions["mscbatch.db"].new_session() as session:
        qa = user(session, "qa")
        donor_id, recall_id = _recalled_on_notice(session, qa)
        donor_services.record_result(session, user(session, "technician"), donor_id, marker="anti_hcv",
                                     result="positive", sample_date=site_today(), lab_reference="LATE-HCV-9")
        session.commit()
        lookback_id = open_lookbacks(session)[0].lookback.id
    qa_client = client_as("qa")
    assert qa_client.post(f"/recalls/lookbacks/{lookback_id}/close", data={"note": NOTE}).status_code == 302
    assert qa_client.post(f"/recalls/{recall_id}/end", data={"reason": "The notice was for another donor",
                                                            "password": PASSWORD}).status_code == 302
    with app.extensions["mscbatch.db"].new_session() as session:
        assert [o.lookback.id for o in open_lookbacks(session)] == [lookback_id]


def test_a_lookback_closed_while_the_recall_is_ended_stays_before_qa(app, users, client_as, monkeypatch):  # type: ignore[no-untyped-def]
    """Two QA people at once (PostgreSQL: both read the recall active before either wrote), one closing the lookback
    under the recall, the other ending the recall as invalid. Whichever wins, the late result stays before QA: the
    closing waits for the recall's row and is refused once it is ended, or commits first and the end opens the
    lookback again. Had the closing not locked the recall, the end found the lookback open (so reopened nothing), the
    closing found the recall still active, and both committed: no lookback left, the late result lost."""
    from tests.reliability.races import Rendezvous, race

    s = _recall_then_a_second_late_result(app, client_as)
    meet, reopen, in_force = Rendezvous(True), services._reopen_lookback, services.recall_in_force_of

    def reopen_then_meet(session: Any, recall: Any) -> None:  # the end has read whether a lookback is open
        reopen(session, recall)
        meet()

    def in_force_then_meet(session: Any, scope: str, target_id: int) -> Any:
        found = in_force(session, scope, target_id)
        meet()
        return found

    monkeypatch.setattr(services, "_reopen_lookback", reopen_then_meet)
    monkeypatch.setattr(services, "recall_in_force_of", in_force_then_meet)

    def act(session: Any, qa: Any) -> Any:
        if qa.username == "qa":
            return services.close_lookback(session, qa, s["lookback_id"], note=NOTE)
        return services.end_recall(session, qa, s["recall_id"], reason="Started on the wrong report",
                                   password=PASSWORD)

    outcomes = race(app, lambda session, n: user(session, ("qa", "qa2")[n]), act)
    assert outcomes[1][0] == "ok" and outcomes[0][0] in ("ok", "refused"), outcomes
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.get(Recall, s["recall_id"]).status == "ended"
        assert [(o.lookback.id, o.recall) for o in open_lookbacks(session)] == [(s["lookback_id"], None)]
    if outcomes[0][0] == "refused":
        assert f"No recall of donor {s['code']} is in force" in outcomes[0][1].message
