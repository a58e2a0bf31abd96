"""Roles are checked by the services themselves, not only by the pages (review finding: account administration
and label printing relied on the view's access rule alone)."""
from __future__ import annotations

import pytest

from mscbatch.auth import services as accounts
from mscbatch.errors import PermissionDenied
from mscbatch.labelling.services import print_labels
from tests.integration.patient_factories import donor, lot_with_bags, user


@pytest.mark.parametrize("role", ["qa", "technician", "clinician", "nurse"])
def test_only_an_administrator_manages_accounts(db_session, users, role: str) -> None:
    actor, other = user(db_session, role), user(db_session, "nurse2")
    with pytest.raises(PermissionDenied, match="Only an administrator manages user accounts"):
        accounts.create_user(db_session, actor, username="newqa", full_name="New QA", password="Correct-horse-42",
                             roles=["qa"])
    with pytest.raises(PermissionDenied):
        accounts.set_roles(db_session, actor, other.id, ["nurse", "qa"], "needs QA")
    with pytest.raises(PermissionDenied):
        accounts.set_enabled(db_session, actor, other.id, False, "left")
    with pytest.raises(PermissionDenied):
        accounts.unlock(db_session, actor, other.id, "phoned")
    db_session.rollback()
    assert user(db_session, "newqa") is None and user(db_session, "nurse2").role_names == {"nurse"}


def test_an_administrator_still_manages_accounts(db_session, users) -> None:
    admin = user(db_session, "admin")
    made = accounts.create_user(db_session, admin, username="newnurse", full_name="New Nurse",
                                password="Correct-horse-42", roles=["nurse"], hash_profile="fast",
                                reason="new nurse")
    assert made.role_names == {"nurse"}


@pytest.mark.parametrize("role", ["nurse", "clinician", "admin"])
def test_only_a_technician_or_qa_prints_labels(db_session, users, role: str) -> None:
    tech = user(db_session, "technician")
    lot_id = lot_with_bags(db_session, tech, donor(db_session, tech))[0].lot_id
    with pytest.raises(PermissionDenied, match="Only a technician or QA prints bag labels"):
        print_labels(db_session, user(db_session, role), lot_id, print_format="sheet",
                     base_url="https://ward.example/", key="k" * 32)
