"""The demo (`make run`) shows the recall clinician notices (mscbatch.recall.demo_notices): a lot conditionally
released pending sterility, given to two patients, recalled when sterility came back positive (a late OOS confirmed by
QA); QA recorded one clinician told by phone, the other patient is "Not yet notified", so the prescribing clinician's
home page offers "I have been told" and the recall cannot be completed until then. Before, the demo's only recall
(R-1) reached no patient: a newcomer never saw a notice. Seeded as tests/integration/test_demo.py does, checked
through the pages."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from mscbatch.audit.models import AuditEvent
from mscbatch.auth.models import User
from mscbatch.core.identifiers import din_shown
from mscbatch.custody.models import Infusion
from mscbatch.demo import seed_demo
from mscbatch.lots.models import Bag
from mscbatch.patients.demo import LATE_OOS_WRISTBANDS
from mscbatch.patients.models import Patient
from mscbatch.recall.demo import demo_recall
from mscbatch.recall.demo_notices import NOTICE_NOTE, late_oos_lot, late_oos_recall
from mscbatch.recall.models import Recall, RecallNotice
from mscbatch.release.demo import DEMO_PASSWORD
from mscbatch.release.models import OosInvestigation
from tests.conftest import login

CLOSING_NOTE = "Both clinicians told; 2 bags delivered and infused, none left to recover or destroy."


def _as(app: Any, username: str) -> Any:
    client = app.test_client()
    assert login(client, username, DEMO_PASSWORD).status_code == 302
    return client


def _item(home: str, recall_id: int, code: str) -> str:
    """The home page's item asking the clinician to confirm being told of the recall for that patient."""
    at = home.index(f'<li data-recall="{recall_id}" data-patient="{code}">')
    return home[at:home.index("</li>", at)]


def _row(page: str, code: str) -> str:
    at = page.index(f'class="notify-row" data-patient="{code}"')
    return page[at:page.index("</tr>", at)]


def test_the_demo_recall_reaches_two_infused_patients_one_told_and_the_clinician_confirms_the_other(app):
    session = app.extensions["mscbatch.db"].new_session()
    try:
        lines = "\n".join(seed_demo(session, hash_profile="fast"))
        session.rollback()
        recall, lot = late_oos_recall(session), late_oos_lot(session)
        assert recall is not None and lot is not None and recall.status == "active" and recall.scope == "lot"
        assert lot.status == "recalled" and recall.id > demo_recall(session).id  # R-1 stays the donor recall
        [late] = session.scalars(select(OosInvestigation).where(OosInvestigation.lot_id == lot.id))
        assert late.late and late.status == "confirmed" and late.test_id == "sterility"
        told, waiting = (session.scalar(select(Patient).where(Patient.wristband_id == w)) for w in LATE_OOS_WRISTBANDS)
        bags = list(session.scalars(select(Bag).where(Bag.lot_id == lot.id).order_by(Bag.id)))
        assert [b.status for b in bags] == ["infused", "infused"]
        assert {i.patient_id for i in session.scalars(select(Infusion).where(
            Infusion.bag_id.in_([b.id for b in bags]), Infusion.ended_at.is_not(None)))} == {told.id, waiting.id}
        [notice] = session.scalars(select(RecallNotice).where(RecallNotice.recall_id == recall.id))
        assert (notice.patient_id, notice.how, notice.note) == (told.id, "phone", NOTICE_NOTE)
        audit = session.scalars(select(AuditEvent).where(AuditEvent.entity_type == "recall_notice",
                                                         AuditEvent.entity_id == str(notice.id))).all()
        assert audit and {e.actor_id for e in audit} == {notice.recorded_by_id}
        assert notice.recorded_by_id == session.scalar(select(User.id).where(User.username == "qa"))
        recall_id, told_code, code, patient_id = recall.id, told.code, waiting.code, waiting.id
        din, lot_number = din_shown(bags[1]), lot.lot_number
        session.rollback()  # the SQLite write lock: released before the client's requests
        assert (f"next, as clinician: Home: Recall R-{recall_id} for your patient {code} (bag {din} of lot "
                f"{lot_number}, infused): press I have been told") in lines, lines

        # QA's page of the recall: one notice recorded (by qa, by phone, with its note), one "Not yet notified"
        qa = _as(app, "qa")
        page = qa.get(f"/recalls/{recall_id}").get_data(as_text=True)
        assert page.count('class="notify-row"') == 2
        assert "Dr Clara Clinician told by phone" in _row(page, told_code) and NOTICE_NOTE in _row(page, told_code)
        assert "recorded by Quentin QA" in _row(page, told_code)
        assert "Not yet notified" in _row(page, code) and "Not yet notified" not in _row(page, told_code)

        # completion is refused naming the patient whose clinician is not yet recorded as told
        refused = qa.post(f"/recalls/{recall_id}/complete", data={"note": CLOSING_NOTE, "password": DEMO_PASSWORD})
        assert refused.status_code == 409
        assert f"the clinician of patient {code} is not yet recorded as told" in refused.get_data(as_text=True)

        # the prescribing clinician's home page: the item for the patient not yet notified, and only for them
        clinician = _as(app, "clinician")
        home = clinician.get("/").get_data(as_text=True)
        item = _item(home, recall_id, code)
        for words in (f"Recall R-{recall_id}", code, din, lot_number, f"I have been told (patient {code}, R-{recall_id})"):
            assert words in item, (words, item)
        assert f'data-patient="{told_code}"' not in home
        confirmed = clinician.post(f"/recalls/{recall_id}/patients/{patient_id}/acknowledge")
        assert confirmed.status_code == 302
        assert f"Recall R-{recall_id}" not in clinician.get("/").get_data(as_text=True)
        page = qa.get(f"/recalls/{recall_id}").get_data(as_text=True)
        assert "Clinician acknowledged it in the app" in _row(page, code) and "Not yet notified" not in page

        # now QA completes it (nothing else holds it: both bags were infused)
        done = qa.post(f"/recalls/{recall_id}/complete", data={"note": CLOSING_NOTE, "password": DEMO_PASSWORD})
        assert done.status_code == 302, done.get_data(as_text=True)[:3000]
        assert session.get(Recall, recall_id).status == "completed"
        again = "\n".join(seed_demo(session, hash_profile="fast"))
        session.rollback()
        assert f"R-{recall_id}, lot {lot_number} (late sterility OOS): completed" in again, again
    finally:
        session.close()
