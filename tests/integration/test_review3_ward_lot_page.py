"""Review 3 (ward): the lot page (any signed-in role) listed the lot's infusions with the patient's code and the
reactions (CTCAE term, grade, free text): technicians and administrators, who read no patient record, saw them.
They now see counts only (infusions; reactions by grade); nurses, clinicians and QA still see the rows."""
from __future__ import annotations

import pytest

from mscbatch.custody import infusions
from mscbatch.patients.models import Patient
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag


def _infused_with_reaction(db_session):  # type: ignore[no-untyped-def]
    ward = prescribed_bag(db_session)
    checked_and_confirmed(db_session, ward)
    nurse = user(db_session, "nurse")
    infusion = infusions.start_infusion(db_session, nurse, ward.bag_id, wristband=ward.wristband, bag_scan=ward.token, label_key=KEY)
    infusions.record_reaction(db_session, nurse, infusion.id, infusions.ReactionDetails(
        "Anaphylaxis", 4, "patient AB, bed 12: adrenaline given, transferred to ICU"))
    code = db_session.get(Patient, ward.patient_id).code
    db_session.rollback()
    return ward, code


@pytest.mark.parametrize("role", ["technician", "admin"])
def test_the_lot_page_shows_other_roles_counts_not_patients_nor_reactions(app, users, db_session, client_as, role):
    ward, code = _infused_with_reaction(db_session)
    page = client_as(role).get(f"/lots/{ward.lot_id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert code not in html, f"{role} sees patient {code} on the lot page"
    assert "adrenaline given" not in html and "Anaphylaxis" not in html and "grade 4" not in html
    assert 'id="infusion-count">Infusions recorded: <strong>1</strong>' in html
    assert "<th scope=\"col\">Grade 4</th>" in html and "<td>0</td><td>0</td><td>0</td><td>1</td><td>0</td>" in html


def test_the_patient_readers_still_see_the_infusions_on_the_lot_page(app, users, db_session, client_as):
    ward, code = _infused_with_reaction(db_session)
    html = client_as("qa").get(f"/lots/{ward.lot_id}").get_data(as_text=True)
    assert code in html and "Anaphylaxis, grade 4" in html and "adrenaline given" in html
