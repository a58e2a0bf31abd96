"""Review 5 of the ward: the reason for a volume outside the prescription was kept only in the audit trail (the pages
flagged MORE THAN PRESCRIBED without saying why); "25.001" mL was stored as 25.00; the API's confirm named fields
its body does not have (second_password); a dispatch missing two fields named one."""
from __future__ import annotations

from typing import Any

import pytest

from mscbatch.custody import handover, infusions
from mscbatch.custody.models import Infusion
from mscbatch.errors import ValidationFailed
from tests.conftest import PASSWORD, api_token_for
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, check, checked_and_confirmed, prescribed_bag

pytestmark = pytest.mark.usefixtures("users")


def _running(app: Any, **kwargs: Any) -> tuple[Any, int]:
    with app.extensions["mscbatch.db"].new_session() as session:
        ward = prescribed_bag(session, **kwargs)
        checked_and_confirmed(session, ward)
        infusion = infusions.start_infusion(session, user(session, "nurse"), ward.bag_id, wristband=ward.wristband,
                                            bag_scan=ward.token, label_key=KEY)
        return ward, infusion.id


def test_the_reason_for_more_than_prescribed_is_kept_on_the_infusion_and_shown_where_it_is_flagged(app, client_as):
    ward, infusion_id = _running(app, last=True)  # 12.5 mL prescribed of its 25 mL
    nurse = client_as("nurse")
    asked = nurse.post(f"/ward/infusions/{infusion_id}/end", data={"volume_ml": "25"})
    assert asked.status_code == 422 and "MORE than the 12.5 mL prescribed" in asked.get_data(as_text=True)
    ended = nurse.post(f"/ward/infusions/{infusion_id}/end",
                       data={"volume_ml": "25", "reason": "pump programmed for the whole bag"})
    assert ended.status_code == 302
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.get(Infusion, infusion_id).volume_reason == "pump programmed for the whole bag"
    page = nurse.get(f"/ward/infusions/{infusion_id}").get_data(as_text=True)
    assert 'id="over-prescription"' in page and '>pump programmed for the whole bag</span> <span class="hint">(recorded at the end)' in page
    patient = nurse.get(f"/patients/{ward.patient_id}").get_data(as_text=True)
    assert "MORE THAN PRESCRIBED" in patient and "Why: pump programmed for the whole bag" in patient
    lot = client_as("qa").get(f"/lots/{ward.lot_id}").get_data(as_text=True)
    assert "MORE THAN PRESCRIBED" in lot and "Why: pump programmed for the whole bag" in lot


def test_an_infusion_inside_the_prescription_keeps_no_reason(app, client_as):
    _ward, infusion_id = _running(app)
    assert client_as("nurse").post(f"/ward/infusions/{infusion_id}/end",
                                   data={"volume_ml": "25", "reason": "as planned"}).status_code == 302
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.get(Infusion, infusion_id).volume_reason is None


def test_a_volume_with_more_than_two_decimals_is_refused_not_rounded(app, client_as):
    _ward, infusion_id = _running(app)
    page = client_as("nurse").post(f"/ward/infusions/{infusion_id}/end", data={"volume_ml": "25.001"})
    assert page.status_code == 422 and 'id="volume_ml-error"' in page.get_data(as_text=True)
    assert "at most 2 decimals" in page.get_data(as_text=True)
    answer = app.test_client().post(f"/api/v1/custody/infusions/{infusion_id}/end",
                                    headers={"Authorization": f"Bearer {api_token_for(app, 'nurse')}"},
                                    json={"volume_ml": "24.999"})
    assert answer.status_code == 422 and list(answer.get_json()["errors"]) == ["volume_ml"]
    with app.extensions["mscbatch.db"].new_session() as session:
        assert session.get(Infusion, infusion_id).ended_at is None


def test_the_volume_error_does_not_repeat_the_field_name_in_the_summary(app, client_as):
    _ward, infusion_id = _running(app)
    page = client_as("nurse").post(f"/ward/infusions/{infusion_id}/end", data={"volume_ml": "lots"})
    body = page.get_data(as_text=True)
    assert page.status_code == 422 and "Volume infused: mL</a>: Volume infused" not in body
    assert ">Volume infused: give a number of mL, e.g. 20.5.</a>" in body


def test_the_api_confirm_names_its_own_body_fields(app):
    with app.extensions["mscbatch.db"].new_session() as session:
        ward = prescribed_bag(session)
        check_id = check(session, ward).check_id
    answer = app.test_client().post(f"/api/v1/custody/checks/{check_id}/confirm",
                                    headers={"Authorization": f"Bearer {api_token_for(app, 'nurse')}"},
                                    json={"username": "nurse2", "password": "wrong-one", "checker_password": PASSWORD})
    assert answer.status_code == 401 and list(answer.get_json()["errors"]) == ["password"]
    same = app.test_client().post(f"/api/v1/custody/checks/{check_id}/confirm",
                                  headers={"Authorization": f"Bearer {api_token_for(app, 'nurse')}"},
                                  json={"username": "nurse", "password": PASSWORD, "checker_password": PASSWORD})
    assert same.status_code == 409 and list(same.get_json()["errors"]) == ["username"]


def test_a_dispatch_missing_two_fields_names_each(app):
    with app.extensions["mscbatch.db"].new_session() as session:
        ward = prescribed_bag(session, state="allocated")
        with pytest.raises(ValidationFailed) as refused:
            handover.dispatch(session, user(session, "technician"), ward.bag_id, courier="C", shipper=" ",
                              temperature_logger_id="")
    assert refused.value.errors == {"shipper": ["Give the shipper."],
                                    "temperature_logger_id": ["Give the temperature logger id."]}
