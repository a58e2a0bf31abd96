"""A supplier lot is registered once whatever the case of its letters in any alphabet (session 44 API review): on
SQLite, whose lower() folds ASCII only, "LOT-É9" and "lot-é9", or "Lönza" and "LÖNZA", were two reagent lots, so a
recall or a correction of one did not see the other. SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import timedelta

import pytest

from mscbatch.site import site_today
from tests.conftest import api_token_for

pytestmark = pytest.mark.usefixtures("users")


@pytest.mark.parametrize(("first", "second"), [
    (("Gibco", "LOT-É9"), ("Gibco", "lot-é9")),
    (("Lönza", "Q1"), ("LÖNZA", "q 1")),
    (("Ωmega Bio", "ΣΑ-12"), ("ωMEGA bio", "σα-12")),
])
def test_a_supplier_lot_differing_only_in_the_case_of_a_non_ascii_letter_is_refused_as_registered(
        app, first, second):
    client = app.test_client()
    tech = {"Authorization": f"Bearer {api_token_for(app, 'technician')}"}
    expiry = (site_today() + timedelta(days=200)).isoformat()

    def register(supplier: str, lot_number: str):  # type: ignore[no-untyped-def]
        return client.post("/api/v1/reagent-lots", headers=tech, json={
            "reagent_type": "medium", "name": "MEM", "supplier": supplier, "lot_number": lot_number,
            "expiry_date": expiry})

    made = register(*first)
    assert made.status_code == 201, made.get_json()
    again = register(*second)
    assert again.status_code == 409, again.get_json()
    assert "already registered" in again.get_json()["detail"]
    assert len([r for r in client.get("/api/v1/reagent-lots", headers=tech).get_json()
                if r["name"] == "MEM"]) == 1  # nothing written by the refusal
