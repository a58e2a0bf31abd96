"""A wristband is one identity whatever its case and spacing (review: two patients registered as "WB-SLE-UC-050" and
"wb-sle-uc-050", and at the bedside the one band typed in capitals MATCHED the other patient's bag)."""
from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from mscbatch.database import normalise_url, utcnow
from mscbatch.errors import Conflict
from mscbatch.migrate import upgrade
from mscbatch.patients import services
from mscbatch.patients.models import Patient
from mscbatch.patients.queries import patient_by_wristband, wristband_identity
from tests.conftest import api_token_for
from tests.integration.patient_factories import SLE, user
from tests.integration.test_custody_support import check, prescribed_bag
from tests.reliability.support import empty_database


def _details(code: str, wristband: str) -> services.PatientDetails:
    return services.PatientDetails(protocol_id=SLE, code=code, initials="CD", date_of_birth=date(1975, 5, 5),
                                   sex="male", ward="Ward 3", wristband_id=wristband)


def test_wristband_identity_drops_every_space_and_reads_capitals():
    assert wristband_identity("  wb-sle uc-050\t") == "WB-SLEUC-050"
    assert wristband_identity(" WB ABC100 ") == wristband_identity("wbabc100") == "WBABC100"
    assert wristband_identity(None) == wristband_identity("   ") == ""


@pytest.mark.parametrize("variant", ["wb-sle-uc-050", " WB-SLE-UC-050 ", "WB-SLE-UC -050", "Wb-Sle-Uc-050"])
def test_a_wristband_differing_only_in_case_or_spaces_is_refused_naming_its_patient(app, users, db_session, variant):
    ward = prescribed_bag(db_session, code="SLE-UC-050")  # wears WB-SLE-UC-050
    with pytest.raises(Conflict) as refused:
        services.register_patient(db_session, user(db_session, "clinician"), _details("SLE-UC-051", variant))
    assert refused.value.field == "wristband_id"
    assert "already worn by patient SLE-UC-050" in refused.value.message
    db_session.rollback()
    assert db_session.scalar(sa.select(Patient.id).where(Patient.code == "SLE-UC-051")) is None
    # at the bed the band typed in any case and spacing names its own patient
    result = check(db_session, ward, wristband=variant)
    assert result.matches and result.patient.code == "SLE-UC-050"


def test_a_wristband_is_stored_in_its_one_spelling_and_found_in_any(app, users, db_session):
    row = services.register_patient(db_session, user(db_session, "clinician"), _details("SLE-UC-060", " wb abc100 "))
    assert row.wristband_id == "WBABC100"
    assert patient_by_wristband(db_session, "WB ABC100").id == row.id
    assert patient_by_wristband(db_session, "wbabc100").id == row.id


def test_the_api_refuses_a_case_variant_wristband_with_the_field_and_the_patient(app, users):
    headers = {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}
    client = app.test_client()
    body = {"protocol_id": SLE, "initials": "RT", "date_of_birth": "1972-03-02", "sex": "male", "ward": "W4"}
    assert client.post("/api/v1/patients", headers=headers,
                       json={**body, "code": "SLE-UC-070", "wristband_id": "WB-777"}).status_code == 201
    refused = client.post("/api/v1/patients", headers=headers, json={**body, "code": "SLE-UC-071",
                                                                      "wristband_id": "wb-777"})
    assert 400 <= refused.status_code < 500, refused.get_json()
    text = str(refused.get_json())
    assert "wristband_id" in text and "SLE-UC-070" in text


def test_the_database_refuses_a_case_variant_written_past_the_services(app, users, db_session):
    services.register_patient(db_session, user(db_session, "clinician"), _details("SLE-UC-080", "WB-880"))
    twin = db_session.get(Patient, db_session.scalar(sa.select(Patient.id).where(Patient.code == "SLE-UC-080")))
    columns = {c.name: getattr(twin, c.name) for c in Patient.__table__.columns if c.name != "id"}
    with pytest.raises(IntegrityError):
        db_session.execute(sa.insert(Patient.__table__).values({**columns, "code": "SLE-UC-081",
                                                                "wristband_id": "wb-880"}))
        db_session.flush()
    db_session.rollback()


_PATIENTS = sa.table("patient", sa.column("id", sa.Integer()), sa.column("code", sa.String()),
                     sa.column("protocol_id", sa.String()), sa.column("initials", sa.String()),
                     sa.column("date_of_birth", sa.Date()), sa.column("sex", sa.String()),
                     sa.column("ward", sa.String()), sa.column("wristband_id", sa.String()),
                     sa.column("status", sa.String()), sa.column("registered_by_id", sa.Integer()),
                     sa.column("registered_at", sa.DateTime()))
_USERS = sa.table("user_account", sa.column("id", sa.Integer()), sa.column("username", sa.String()),
                  sa.column("full_name", sa.String()), sa.column("password_hash", sa.String()),
                  sa.column("is_enabled", sa.Boolean()), sa.column("failed_logins", sa.Integer()),
                  sa.column("password_changed_at", sa.DateTime()), sa.column("created_at", sa.DateTime()))


def _old_patient(connection, patient_id: int, code: str, wristband: str) -> None:  # type: ignore[no-untyped-def]
    connection.execute(sa.insert(_PATIENTS).values(
        id=patient_id, code=code, protocol_id=SLE, initials="AB", date_of_birth=date(1980, 1, 1), sex="female",
        ward="W", wristband_id=wristband, status="registered", registered_by_id=1, registered_at=utcnow()))


def test_migration_0017_stops_on_two_wristbands_the_bedside_cannot_tell_apart_and_names_them(database_url, tmp_path):
    with empty_database(database_url, tmp_path) as url:
        upgrade(url, "0016")
        engine = sa.create_engine(normalise_url(url))
        try:
            with engine.begin() as connection:
                connection.execute(sa.insert(_USERS).values(id=1, username="c", full_name="C", password_hash="x",
                                                            is_enabled=True, failed_logins=0,
                                                            password_changed_at=utcnow(), created_at=utcnow()))
                _old_patient(connection, 1, "SLE-UC-001", "WB-100")
                _old_patient(connection, 2, "SLE-UC-002", "wb-100")
                _old_patient(connection, 3, "SLE-UC-003", "wb 200")  # kept as spelled, found in any spelling
            with pytest.raises(RuntimeError, match=r"SLE-UC-001 \(WB-100\) and SLE-UC-002 \(wb-100\)"):
                upgrade(url)
            with engine.begin() as connection:  # another band for one of them: the upgrade goes through
                connection.execute(sa.update(_PATIENTS).where(_PATIENTS.c.id == 2).values(wristband_id="WB-101"))
            upgrade(url)
            with pytest.raises(IntegrityError), engine.begin() as connection:
                _old_patient(connection, 4, "SLE-UC-004", "Wb-101")
            with engine.connect() as connection:
                assert connection.execute(sa.select(_PATIENTS.c.wristband_id).where(_PATIENTS.c.id == 3)).scalar() \
                    == "wb 200"
        finally:
            engine.dispose()


def test_a_band_registered_before_the_rule_is_found_at_the_bedside_in_any_spelling(app, users, db_session):
    ward = prescribed_bag(db_session, code="SLE-UC-090")
    # as a band registered before migration 0017 would be stored: its own spelling
    db_session.execute(sa.update(Patient.__table__).where(Patient.id == ward.patient_id)
                       .values(wristband_id="wb-sle-uc 090"))
    db_session.commit()
    result = check(db_session, ward, wristband="WB-SLE-UC090")
    assert result.matches and result.patient.code == "SLE-UC-090"
    assert patient_by_wristband(db_session, "wb-sle-uc 0 9 0").id == ward.patient_id
