"""Review 14, interoperability: a thawed bag past its product's post-thaw limit, which the bedside check refuses
whatever the patient ("post_thaw") and the label verification page calls "too long since thawing", is FHIR
`unavailable` with the reason in `not-usable`, and `usable=false` in the bags CSV; within the limit it stays
available (README, Interoperability)."""
from __future__ import annotations

import csv
import io
from datetime import timedelta

from mscbatch.database import utcnow
from tests.conftest import api_token_for
from tests.integration.test_custody_support import prescribed_bag


def _shown(app, bag_id: int, lot_id: int) -> tuple[dict, dict, dict]:  # type: ignore[no-untyped-def]
    client = app.test_client()
    headers = {"Authorization": f"Bearer {api_token_for(app, 'nurse')}"}
    product = client.get(f"/api/v1/fhir/BiologicallyDerivedProduct/{bag_id}", headers=headers)
    bundle = client.get(f"/api/v1/fhir/Bundle?lot={lot_id}", headers=headers)
    rows = client.get("/api/v1/exports/bags.csv", headers=headers)
    assert product.status_code == bundle.status_code == rows.status_code == 200
    in_bundle = next(e["resource"] for e in bundle.get_json()["entry"] if e["resource"]["id"] == str(bag_id))
    return product.get_json(), in_bundle, list(csv.DictReader(io.StringIO(rows.get_data(as_text=True))))


def _not_usable(resource: dict) -> str | None:  # type: ignore[type-arg]
    return next((p["valueString"] for p in resource["property"] if p["type"]["text"] == "not-usable"), None)


def test_a_bag_thawed_longer_ago_than_its_post_thaw_limit_is_unavailable(app, users, db_session, monkeypatch):
    ward = prescribed_bag(db_session, state="thawed")
    from mscbatch.lots.models import Bag

    din = db_session.get(Bag, ward.bag_id).din
    db_session.commit()

    product, in_bundle, rows = _shown(app, ward.bag_id, ward.lot_id)  # just thawed: within its limit
    assert product["productStatus"]["code"] == in_bundle["productStatus"]["code"] == "available"
    assert next(r for r in rows if r["din"] == din)["usable"] == "true"

    later = utcnow() + timedelta(minutes=61)  # UC-MSC: 60 minutes after thawing (config/products.toml)
    monkeypatch.setattr("mscbatch.interop.fhir.utcnow", lambda: later)
    monkeypatch.setattr("mscbatch.interop.csv_exports.utcnow", lambda: later)
    product, in_bundle, rows = _shown(app, ward.bag_id, ward.lot_id)
    for resource in (product, in_bundle):
        assert resource["productStatus"]["code"] == "unavailable"
        assert "too long since thawing: it had to be given within 60 minutes" in (_not_usable(resource) or "")
    assert next(r for r in rows if r["din"] == din)["usable"] == "false"
