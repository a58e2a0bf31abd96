"""The clinician of every patient a recall reached is recorded as told (DOMAIN.md sections 5 and 8: "notify the
clinician of every patient who received it"; EU GMP Part IV 11), through the pages, on both databases. Before, the
recall's page and report listed "NOTIFY CLINICIAN" and nothing recorded that anyone was told: the clinician's home
page said nothing and the recall could be completed with nobody notified."""
from __future__ import annotations

import html
import io
from datetime import timedelta
from typing import Any

from pypdf import PdfReader
from sqlalchemy import func, select

from mscbatch.audit.models import AuditEvent
from mscbatch.core.identifiers import din_shown
from mscbatch.database import utcnow
from mscbatch.lots.models import Bag
from mscbatch.recall.models import Recall, RecallNotice
from mscbatch.signatures.models import Signature
from mscbatch.site import site_config
from tests.conftest import add_user
from tests.integration.patient_factories import user
from tests.integration.test_recall_completion import complete, discard_all_in_stock, held_bags, start
from tests.integration.test_recall_support import scene


def local_input(instant: Any) -> str:
    """An instant as a datetime-local input sends it (site time)."""
    return instant.astimezone(site_config().tz).strftime("%Y-%m-%dT%H:%M")


def notices(app: Any) -> list[RecallNotice]:
    with app.extensions["mscbatch.db"].new_session() as session:
        rows = list(session.scalars(select(RecallNotice).order_by(RecallNotice.id)))
        session.expunge_all()
        return rows


def signatures(app: Any, recall_id: int) -> int:
    with app.extensions["mscbatch.db"].new_session() as session:
        return session.scalar(select(func.count()).select_from(Signature).where(
            Signature.entity_type == "recall", Signature.entity_id == str(recall_id))) or 0


def notify_row(page: str, code: str) -> str:
    at = page.index(f'data-patient="{code}"')
    return page[at:page.index("</tr>", at)]


def pdf_text(client: Any, recall_id: int) -> str:
    response = client.get(f"/recalls/{recall_id}/report.pdf")
    assert response.status_code == 200
    return " ".join(" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(response.data)).pages)


def test_qa_records_who_was_told_and_completion_waits_for_it(app, users, client_as):
    s = scene(app)
    qa = client_as("qa")
    recall_id = start(qa, "lot", "#" + str(s.released_lot_id))
    url = f"/recalls/{recall_id}/patients/{s.patient_id}/notice"
    page = qa.get(f"/recalls/{recall_id}").get_data(as_text=True)
    assert "Not yet notified" in notify_row(page, s.patient_code)
    assert f'id="notice-form-{s.patient_id}"' in page
    assert "NOT YET NOTIFIED" in pdf_text(qa, recall_id)

    # every bag dealt with: the completion still waits for the clinician, naming the patient; nothing signed
    discard_all_in_stock(app, [bag_id for bag_id, _din, _status in held_bags(app, recall_id)])
    refused = complete(qa, recall_id)
    text = refused.get_data(as_text=True)
    assert refused.status_code == 409
    assert f"the clinician of patient {s.patient_code} is not yet recorded as told" in text
    assert "Nothing was signed" in text
    assert signatures(app, recall_id) == 1  # the start's only
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.get(Recall, recall_id).status == "active"

    # the nurse and the technician may not record it (403), nothing written
    for role in ("nurse", "technician"):
        other = client_as(role)
        assert other.post(url, data={"clinician": "Dr X", "how": "phone",
                                     "told_at": local_input(utcnow())}).status_code == 403
    # bad input: 4xx naming each field, nothing written
    bad = qa.post(url, data={"clinician": "  ", "how": "fax", "told_at": local_input(utcnow() + timedelta(days=2)),
                             "note": "x" * 1001})
    words = bad.get_data(as_text=True)
    assert bad.status_code == 422
    # each said in the form's words, beside its field (re-walk: "Clinician told (clinician)" showed code names)
    for named in ("Clinician told: give the name", "How: one of by phone, in person, by letter, by email, not",
                  "When: ", "Note: at most"):
        assert named in html.unescape(words), named
    for code_words in ("Clinician told (clinician)", "How (how)", "When (told_at)", "Note (note)", "(in_person)"):
        assert code_words not in html.unescape(words), code_words
    assert "is in the future" in words and "fax" in words
    early = qa.post(url, data={"clinician": "Dr Clara Clinician", "how": "phone",
                               "told_at": local_input(utcnow() - timedelta(days=3))})
    assert early.status_code == 422 and "before recall R-" in early.get_data(as_text=True)
    garbled = qa.post(url, data={"clinician": "Dr Clara Clinician", "how": "phone", "told_at": "yesterday noon"})
    assert garbled.status_code == 422 and "When: 'yesterday noon' is not a date and time" in \
        html.unescape(garbled.get_data(as_text=True))
    assert qa.post(f"/recalls/{recall_id}/patients/999999/notice", data={
        "clinician": "Dr X", "how": "phone", "told_at": local_input(utcnow())}).status_code == 404
    assert notices(app) == []

    told_at = utcnow().replace(second=0, microsecond=0)
    done = qa.post(url, data={"clinician": "Dr Clara Clinician", "how": "phone", "told_at": local_input(told_at),
                              "note": "Told by phone; she will see the patient on Monday"})
    assert done.status_code == 302, done.get_data(as_text=True)[:3000]
    [row] = notices(app)
    with app.extensions["mscbatch.db"].new_session() as session:
        qa_user = user(session, "qa")
        assert (row.recall_id, row.patient_id, row.clinician_name, row.how, row.told_at, row.recorded_by_id,
                row.clinician_id) == (recall_id, s.patient_id, "Dr Clara Clinician", "phone", told_at, qa_user.id, None)
        audit = session.scalars(select(AuditEvent).where(AuditEvent.entity_type == "recall_notice",
                                                         AuditEvent.entity_id == str(row.id))).all()
        assert audit and all(e.actor_id == qa_user.id for e in audit)
        assert audit[0].reason.startswith(f"clinician told of recall R-{recall_id}")
    row_words = notify_row(qa.get(f"/recalls/{recall_id}").get_data(as_text=True), s.patient_code)
    assert "Dr Clara Clinician told by phone" in row_words and "recorded by Qa" in row_words
    assert "UTC" in row_words and "Not yet notified" not in row_words
    assert "Dr Clara Clinician told by phone on" in pdf_text(qa, recall_id)
    again = qa.post(url, data={"clinician": "Dr Other", "how": "email", "told_at": local_input(told_at)})
    assert again.status_code == 409 and len(notices(app)) == 1

    finished = complete(qa, recall_id)
    assert finished.status_code == 302, finished.get_data(as_text=True)[:3000]
    assert signatures(app, recall_id) == 2


def test_the_prescribing_clinician_sees_the_recall_on_the_home_page_and_confirms_it(app, users, client_as):
    s = scene(app)
    qa = client_as("qa")
    recall_id = start(qa, "lot", "#" + str(s.released_lot_id))
    with app.extensions["mscbatch.db"].new_session() as session:
        infused = session.get(Bag, s.infused_bag_id)
        din = din_shown(infused)
    add_user(app, "clinician2", ["clinician"])
    clinician = client_as("clinician")
    home = clinician.get("/").get_data(as_text=True)
    # given, or only sent: said per bag (a clinician must not read "received" as "infused")
    assert f"Recall R-{recall_id}: for your patient {s.patient_code}, bag {din} of lot" in home
    assert "was infused" in home and "not infused" not in home
    assert "I have been told" in home
    stranger = client_as("clinician2")  # not the prescriber: nothing on the home page, refused
    assert f"Recall R-{recall_id}" not in stranger.get("/").get_data(as_text=True)
    url = f"/recalls/{recall_id}/patients/{s.patient_id}/acknowledge"
    refused = stranger.post(url)
    assert refused.status_code == 403 and "You did not prescribe" in refused.get_data(as_text=True)
    for role in ("nurse", "technician", "qa"):
        assert client_as(role).post(url).status_code == 403
    assert notices(app) == []

    confirmed = clinician.post(url)
    assert confirmed.status_code == 302
    [row] = notices(app)
    with app.extensions["mscbatch.db"].new_session() as session:
        me = user(session, "clinician")
        assert (row.how, row.clinician_id, row.recorded_by_id, row.clinician_name) == ("in_app", me.id, me.id,
                                                                                       me.full_name)
    assert f"Recall R-{recall_id}" not in clinician.get("/").get_data(as_text=True)
    assert clinician.post(url).status_code == 409 and len(notices(app)) == 1
    row_words = notify_row(qa.get(f"/recalls/{recall_id}").get_data(as_text=True), s.patient_code)
    assert "Clinician acknowledged it in the app" in row_words


def test_after_qa_recorded_it_the_prescriber_is_told_so_a_stranger_only_403_and_the_notice_is_append_only(
        app, users, client_as):
    """Review of the change: a clinician who did not prescribe got the notice's details (a 409 naming who was told)
    before the 403; a notice could be updated in the database; nothing showed a notice refused on a closed recall."""
    s = scene(app)
    qa = client_as("qa")
    recall_id = start(qa, "lot", "#" + str(s.released_lot_id))
    told_at = utcnow().replace(second=0, microsecond=0)
    assert qa.post(f"/recalls/{recall_id}/patients/{s.patient_id}/notice", data={
        "clinician": "Dr Clara Clinician", "how": "phone", "told_at": local_input(told_at)}).status_code == 302
    url = f"/recalls/{recall_id}/patients/{s.patient_id}/acknowledge"
    add_user(app, "clinician2", ["clinician"])
    stranger = client_as("clinician2").post(url)
    words = stranger.get_data(as_text=True)
    assert stranger.status_code == 403 and "Dr Clara Clinician" not in words
    prescriber = client_as("clinician").post(url)
    assert prescriber.status_code == 409 and "recorded as told already" in prescriber.get_data(as_text=True)
    assert len(notices(app)) == 1

    with app.extensions["mscbatch.db"].new_session() as session:  # the database refuses a change of the evidence
        try:
            session.execute(RecallNotice.__table__.update().values(clinician_name="Dr Nobody"))
            session.commit()
            changed = True
        except Exception:  # noqa: BLE001 (the trigger's error: sqlite3 or psycopg)
            session.rollback()
            changed = False
    assert not changed and notices(app)[0].clinician_name == "Dr Clara Clinician"

    discard_all_in_stock(app, [bag_id for bag_id, _din, _status in held_bags(app, recall_id)])
    assert complete(qa, recall_id).status_code == 302
    with app.extensions["mscbatch.db"].new_session() as session:
        other = session.scalar(select(func.count()).select_from(RecallNotice))
    assert other == 1
