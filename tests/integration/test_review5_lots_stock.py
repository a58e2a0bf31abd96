"""Review 5 (lab QA): a bag frozen but never placed in a box was called "stored" and offered for a patient's dose,
while the lot page said "not placed yet". A bag is in stock only once it has a box position."""
from __future__ import annotations

from mscbatch.lots import storage
from tests.conftest import PASSWORD, api_token_for
from tests.integration.lot_factories import box
from tests.integration.patient_factories import donor, lot_with_bags, patient, user


def test_a_bag_never_placed_in_a_box_is_not_offered_nor_allocated(app, users, db_session):
    tech, clin = user(db_session, "technician"), user(db_session, "clinician")
    made = lot_with_bags(db_session, tech, donor(db_session, tech), bags=3, cells=50_000_000)
    lot_id, bag_ids = made[0].lot_id, [b.id for b in made]
    for bag in made:  # frozen, never placed (whatever the factory's default)
        bag.box_id = bag.position = None
    pid = patient(db_session, clin, weighed_days_ago=0).id
    weight_id = patient_weight(db_session, pid)
    db_session.commit()
    api, headers = app.test_client(), {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}

    dry = api.post(f"/api/v1/patients/{pid}/dose-calculation", headers=headers, json={}).get_json()
    assert not dry.get("allowed"), dry
    assert not (dry.get("calculation") or {}).get("draws"), dry
    forged = api.post(f"/api/v1/patients/{pid}/prescriptions", headers=headers,
                      json={"dose_level_cells_per_kg": "2000000", "weight_id": weight_id, "bag_ids": bag_ids[:3],
                            "password": PASSWORD})
    assert forged.status_code == 409, forged.get_json()
    assert "no usable bag" in forged.get_json()["detail"] and "(no bag in stock)" in forged.get_json()["detail"]

    # the lot page and the bag API say the same thing: not in storage, and why
    page = app.test_client()
    page.post("/login", data={"username": "technician", "password": PASSWORD})
    html = page.get(f"/lots/{lot_id}").get_data(as_text=True)
    assert "not in storage" in html and "not placed yet" in html
    assert "status-stored" not in html
    bag = api.get(f"/api/v1/bags/{bag_ids[0]}", headers={"Authorization": f"Bearer {api_token_for(app, 'technician')}"})
    assert bag.get_json()["effective_status"] == "not_in_storage" and bag.get_json()["usable"] is False

    box_id = box(db_session)
    for position, bag_id in enumerate(bag_ids, start=1):
        storage.store_bag(db_session, tech, bag_id, box_id, position)
    db_session.commit()
    placed = api.post(f"/api/v1/patients/{pid}/dose-calculation", headers=headers, json={}).get_json()
    assert placed.get("allowed"), placed
    assert {int(d["bag_id"]) for d in placed["calculation"]["draws"]} <= set(bag_ids)


def patient_weight(session, pid: int) -> int:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from mscbatch.patients.models import WeightMeasurement
    return session.scalar(select(WeightMeasurement.id).where(WeightMeasurement.patient_id == pid))
