"""A weight recorded while an infusion is being started (found by review). The start runs the bedside check again
and judges the prescribed dose against the patient's latest weight (DOMAIN.md 6 and 8: a dose outside the
prescription's band is a hard stop). On PostgreSQL a clinician's new weight could commit between the start's
read of the weights and its commit: the bag was then started on a dose the latest weight puts out of its band,
with the weight older in the trail than the start. Both the start and the weight now lock the patient's row: the
weight lands before the start reads it (the start says STOP) or after the start has committed.

Without the lock (patched to a plain read) the defect appears on PostgreSQL; on SQLite, without BEGIN IMMEDIATE,
the start fails with "database is locked" (a 500) instead."""
from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from mscbatch.audit.models import AuditEvent
from mscbatch.custody import infusions
from mscbatch.custody.models import Infusion
from mscbatch.patients import queries
from mscbatch.patients import services as patients
from mscbatch.patients.models import WeightMeasurement
from mscbatch.site import site_today
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag
from tests.reliability.races import Rendezvous, expected, guard_removed, kinds, race

OUT_OF_BAND_KG = "55"  # the factory's prescription is 62.5 kg at 2 x10^6/kg, +/- 10 %: 55 kg gives 2.27


def _inserted(session: Any, table: str, row_id: int) -> int:
    """The trail's position of the row's insert: the order in which the two transactions committed."""
    return session.scalar(select(AuditEvent.seq).where(AuditEvent.action == "insert", AuditEvent.entity_type == table,
                                                       AuditEvent.entity_id == str(row_id)))


@pytest.mark.parametrize("guarded", [True, False], ids=["guarded", "unguarded"])
def test_a_weight_recorded_during_the_start_lands_before_the_check_or_after_the_start(app, users, monkeypatch,
                                                                                     guarded):
    dialect = app.extensions["mscbatch.db"].engine.dialect.name
    with app.extensions["mscbatch.db"].new_session() as session:
        ward = prescribed_bag(session)
        checked_and_confirmed(session, ward)
    meet, weighed = Rendezvous(guarded), threading.Event()
    judge = infusions.evaluate

    def judged_then_wait(*args: Any) -> Any:  # the start has read the weights; the clinician weighs now
        result = judge(*args)
        meet()
        weighed.wait(1.5)  # guarded, the weight waits for the start's commit: the start goes on alone
        return result

    def start(session: Any) -> Any:
        return infusions.start_infusion(session, user(session, "nurse"), ward.bag_id, wristband=ward.wristband, bag_scan=ward.token,
                                        label_key=KEY)

    def weigh(session: Any) -> Any:
        meet()
        try:
            return patients.record_weight(session, user(session, "clinician"), ward.patient_id,
                                          weight_kg=OUT_OF_BAND_KG, measured_on=site_today(),
                                          weight_confirmed=True)  # 55 after 62.5 kg: checked by the clinician
        finally:
            weighed.set()

    monkeypatch.setattr(infusions, "evaluate", judged_then_wait)
    if not guarded:
        plain = queries.get_patient
        monkeypatch.setattr(infusions, "lock_patient", plain)
        monkeypatch.setattr(patients, "lock_patient", plain)
    with guard_removed(app, guarded):
        outcomes = race(app, lambda session, n: n, lambda session, n: (start, weigh)[n](session))

    if not guarded:
        if dialect == "sqlite":
            assert outcomes[0][0] == "crashed" and kinds(outcomes) == expected(False, dialect), outcomes
            return
        assert kinds(outcomes) == ["ok", "ok"], outcomes
    else:
        assert kinds(outcomes) == ["ok", "ok"], outcomes  # nobody refused: the two happened one after the other
    with app.extensions["mscbatch.db"].new_session() as session:
        latest = session.scalars(select(WeightMeasurement).where(WeightMeasurement.patient_id == ward.patient_id)
                                 .order_by(WeightMeasurement.id.desc())).first()
        assert latest.weight_kg == Decimal(OUT_OF_BAND_KG)
        infusion = session.scalar(select(Infusion).where(Infusion.bag_id == ward.bag_id))
        started, weighed_at = _inserted(session, "infusion", infusion.id), _inserted(session, "patient_weight", latest.id)
    if guarded:
        assert weighed_at > started  # the weight came after the start, which judged the weight it saw
    else:
        assert weighed_at < started  # the defect: started on a weight that was no longer the latest
