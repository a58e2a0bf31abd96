"""Session 33 (custody): the bag's trace page links each record it names (donor, lot, patient, prescription, the
hand-overs' audit records, the bedside check, the infusion) to its page, and only for a role that page lets in: a
link a nurse cannot open is worse than none."""
from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from mscbatch.custody import infusions
from mscbatch.custody.models import CustodyEvent, Infusion
from mscbatch.lots.models import Lot
from mscbatch.patients.models import Allocation
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import KEY, checked_and_confirmed, prescribed_bag


def _infused(app: Any) -> dict[str, Any]:
    """A bag carried from its lot to a running infusion (every custody step), written and committed."""
    with app.extensions["mscbatch.db"].new_session() as session:
        ward = prescribed_bag(session)
        check_id = checked_and_confirmed(session, ward)
        infusions.start_infusion(session, user(session, "nurse"), ward.bag_id, wristband=ward.wristband,
                                 bag_scan=ward.token, label_key=KEY)
        session.commit()
        return {"bag": ward.bag_id, "check": check_id, "patient": ward.patient_id, "lot": ward.lot_id,
                "donor": session.get(Lot, ward.lot_id).donor_id,
                "infusion": session.scalar(select(Infusion.id).where(Infusion.bag_id == ward.bag_id)),
                "prescription": session.scalar(select(Allocation.prescription_id).where(
                    Allocation.bag_id == ward.bag_id)),
                "dispatched": session.scalar(select(CustodyEvent.id).where(CustodyEvent.bag_id == ward.bag_id,
                                                                           CustodyEvent.kind == "dispatched"))}


def _links(html: str) -> set[str]:
    return set(re.findall(r'href="([^"]+)"', html.replace("&amp;", "&")))


def _page(client_as: Any, role: str, bag_id: int) -> set[str]:
    client = client_as(role)
    answer = client.get(f"/trace/bags/{bag_id}")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    links = _links(answer.get_data(as_text=True))
    for link in links:  # every record the page links to opens for this reader
        if link.startswith(("/donors/", "/lots/", "/patients/", "/ward/", "/audit")):
            assert client.get(link).status_code == 200, (role, link)
    return links


def test_a_nurse_is_led_to_each_record_she_may_open_and_to_none_she_may_not(app, users, client_as):
    made = _infused(app)
    links = _page(client_as, "nurse", made["bag"])
    assert {f"/donors/{made['donor']}", f"/lots/{made['lot']}", f"/patients/{made['patient']}",
            f"/patients/prescriptions/{made['prescription']}", f"/ward/checks/{made['check']}",
            f"/ward/infusions/{made['infusion']}"} <= links, links
    assert not any(link.startswith("/audit") for link in links), links  # the audit trail refuses a nurse


def test_qa_is_led_to_the_hand_overs_audit_records_not_to_the_bedside_check(app, users, client_as):
    made = _infused(app)
    links = _page(client_as, "qa", made["bag"])
    assert f"/audit?entity_type=custody_event&entity_id={made['dispatched']}" in links, links
    assert {f"/ward/infusions/{made['infusion']}", f"/patients/prescriptions/{made['prescription']}",
            f"/donors/{made['donor']}"} <= links, links
    assert f"/ward/checks/{made['check']}" not in links  # a bedside check's page is the bedside roles'
    # the link opens the hand-over's own audit record
    audit = client_as("qa").get(f"/audit?entity_type=custody_event&entity_id={made['dispatched']}")
    assert "custody_event" in audit.get_data(as_text=True) and "Fast Courier" in audit.get_data(as_text=True)


def test_a_technician_is_led_to_the_donor_and_lot_only(app, users, client_as):
    made = _infused(app)
    links = _page(client_as, "technician", made["bag"])
    assert {f"/donors/{made['donor']}", f"/lots/{made['lot']}"} <= links, links
    refused = [link for link in links if link.startswith(("/patients", "/ward/checks", "/ward/infusions", "/audit"))]
    assert not refused, refused
