"""Review 3, labels (both databases unless said): what a bag label says and when it may be printed.

1. A bag leaves the unit only with its released label: each print item records the lot's release state at print
   time (migration 0014) and labelling.services.dispatch_label_problem says why a bag may not be dispatched as
   labelled (never labelled, last label printed in quarantine). Custody dispatch asks it (mscbatch/custody).
2. An exceptionally released lot's label says "For use by intended recipient only" and names the one patient.
3. Two first prints of one bag at the same moment (PostgreSQL): one original, the other is a reprint (the bag
   rows are locked before printed_before reads).
4. The public page and the verification API for roles that read no patients flag an exceptional release without
   its patient.
5. A collection site (and the site's facility name) the label cannot print is refused where it is entered, with
   the label's own rule (mscbatch.labels.field_problem).
6. A DIN typed without its check character K names no bag (page 422, API valid false, K not given away).
7. No label is printed for a bag on the ward (custody.services.STATELESS_FROM["labelled"]).
8. products.toml refuses collection_type "1" (autologous products are not modelled).
"""
from __future__ import annotations

import html
import re
import threading
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from mscbatch.audit.context import use_case
from mscbatch.core.configfiles import ConfigError
from mscbatch.core.identifiers import din_shown
from mscbatch.core.site_config import load_products, load_site_config
from mscbatch.errors import Conflict, ValidationFailed
from mscbatch.labelling import services
from mscbatch.labelling.models import LabelPrint, LabelPrintItem
from mscbatch.labels import field_problem, printable
from mscbatch.lots import services as lots
from mscbatch.lots.models import Bag, Lot
from mscbatch.paths import config_dir
from mscbatch.release import release
from mscbatch.release.demo import enter_panel
from tests.conftest import PASSWORD, api_token_for
from tests.integration.lot_factories import TODAY, approved_adipose_donor, at
from tests.integration.patient_factories import user
from tests.integration.test_custody_support import prescribed_bag
from tests.integration.test_labelling import make_lot, pdf_text, qr_codes
from tests.integration.test_release_support import (
    cord_quarantine_lot,
    lupus_patient_code,
    seed_quarantine_lot,
)


def _session(app: Any) -> Any:
    return app.extensions["mscbatch.db"].new_session()


def _print(client: Any, lot_id: int, **data: Any) -> Any:
    return client.post(f"/labels/lots/{lot_id}/print", data={"print_format": "lot", **data})


def _release(app: Any, lot_id: int, status: str = "released") -> None:
    with _session(app) as session, use_case(session, user(session, "qa"), "test: QA released the lot"):
        session.get(Lot, lot_id).status = status
        session.commit()


def _items(app: Any, bag_id: int) -> list[tuple[str | None, bool, bool]]:
    with _session(app) as session:
        return [(i.lot_status, i.released, i.reprint) for i in session.scalars(
            select(LabelPrintItem).where(LabelPrintItem.bag_id == bag_id).order_by(LabelPrintItem.id))]


def _problem(app: Any, bag_id: int) -> str | None:
    with _session(app) as session:
        return services.dispatch_label_problem(session, session.get(Bag, bag_id))


# ---- 1. the released label before dispatch --------------------------------------------------------------------------

def test_a_bag_labelled_only_in_quarantine_or_never_may_not_be_dispatched_until_its_released_label_is_printed(
        app, users, client_as):  # type: ignore[no-untyped-def]
    lot_id, [(first, _), (second, _)] = make_lot(app, status="quarantine", bags=2)
    tech = client_as("technician")
    assert _print(tech, lot_id, print_format="bag", bag_id=first).status_code == 200
    assert "QUARANTINE" in pdf_text(_print(tech, lot_id, print_format="bag", bag_id=first, reason="smudged").data)
    _release(app, lot_id)
    assert _items(app, first) == [("quarantine", False, False), ("quarantine", False, True)]
    assert _problem(app, first) == "Print the bag's released label first: its last label was printed in quarantine"
    assert _problem(app, second) == "Print the bag's released label first: it was never labelled"
    page = tech.get(f"/labels/lots/{lot_id}").get_data(as_text=True)
    assert "printed: QUARANTINE label" in page and page.count('class="flag flag-stop label-dispatch"') == 2

    printed = _print(tech, lot_id, reason="released: the released label replaces the quarantine one")
    assert printed.status_code == 200 and "QUARANTINE" not in pdf_text(printed.data)
    assert _items(app, first)[-1] == ("released", True, True) and _items(app, second) == [("released", True, False)]
    assert _problem(app, first) is None and _problem(app, second) is None
    page = tech.get(f"/labels/lots/{lot_id}").get_data(as_text=True)
    assert "printed: released label" in page and "label-dispatch" not in page


def test_a_conditional_release_label_counts_as_the_released_one(app, users, client_as):  # type: ignore[no-untyped-def]
    lot_id, [(bag_id, _)] = make_lot(app, status="conditional_release", bags=1)
    printed = _print(client_as("technician"), lot_id)
    assert printed.status_code == 200 and "CONDITIONAL RELEASE" in pdf_text(printed.data)
    assert _items(app, bag_id) == [("conditional_release", True, False)] and _problem(app, bag_id) is None


def test_a_label_printed_before_the_release_state_was_recorded_is_not_the_released_one():  # type: ignore[no-untyped-def]
    """Print items from before migration 0014 have lot_status NULL and released false."""
    assert services.label_problem_of(LabelPrintItem(lot_status=None, released=False)) == (
        "Print the bag's released label first: its last label was printed before labels recorded the lot's "
        "release state (reprint it)")
    assert services.label_problem_of(LabelPrintItem(lot_status="released", released=True)) is None
    assert services.label_problem_of(None) == "Print the bag's released label first: it was never labelled"


# ---- 2 and 4. an exceptional release: the label names the patient, the public page does not ------------------------

def _exceptionally_released(app: Any, monkeypatch: Any, patient_code: str = "SLE-UC-007") -> int:
    seed_quarantine_lot(app, monkeypatch)
    with _session(app) as session:  # a UC-MSC lot and a registered lupus patient (release.patient_refusal)
        lot_id = cord_quarantine_lot(session)
        lupus_patient_code(session, code=patient_code)
        enter_panel(session, user(session, "technician"), lot_id, {"viability": ("65", "%")})
        release.request_exceptional_release(session, user(session, "clinician"), lot_id, patient_code,
                                            "No alternative therapy; life-threatening flare, benefit outweighs risk",
                                            PASSWORD)
        release.approve_exceptional_release(session, user(session, "qa"), lot_id, PASSWORD)
        assert session.get(Lot, lot_id).status == "released"
    return lot_id


def test_an_exceptionally_released_bag_label_names_its_one_patient_and_counts_as_released(
        app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id = _exceptionally_released(app, monkeypatch)
    answer = _print(client_as("technician"), lot_id)
    assert answer.status_code == 200, answer.get_data(as_text=True)[:2000]
    text = pdf_text(answer.data)
    assert "EXCEPTIONAL RELEASE" in text and "For use by intended recipient only" in text
    assert "Recipient: SLE-UC-007" in text
    urls = [page[0] for page in qr_codes(answer.data)]
    assert urls and all("/v/" in url for url in urls)
    with _session(app) as session:
        bags = list(session.scalars(select(Bag).where(Bag.lot_id == lot_id)))
        assert all(services.dispatch_label_problem(session, bag) is None for bag in bags)
        assert {(i.lot_status, i.released) for i in session.scalars(select(LabelPrintItem))} == {("released", True)}


def test_the_public_page_and_non_patient_readers_see_the_exceptional_flag_without_the_patient(
        app, users, monkeypatch, client_as):  # type: ignore[no-untyped-def]
    lot_id = _exceptionally_released(app, monkeypatch)
    url = qr_codes(_print(client_as("technician"), lot_id).data)[0][0]
    page = html.unescape(app.test_client().get(url[len("http://localhost"):]).get_data(as_text=True))
    assert "EXCEPTIONAL RELEASE: for one named patient only" in page and "SLE-UC-007" not in page
    signed_in = html.unescape(client_as("qa").get(url[len("http://localhost"):]).get_data(as_text=True))
    assert "SLE-UC-007" not in signed_in  # the page is the public one, whoever opens it

    def flag(role: str) -> str:
        answer = app.test_client().get("/api/v1/labels/verify", query_string={"token": url},
                                       headers={"Authorization": f"Bearer {api_token_for(app, role)}"})
        assert answer.status_code == 200, answer.get_json()
        return str(answer.get_json()["release_flag"])

    for role in ("technician", "admin"):
        assert flag(role) == "EXCEPTIONAL RELEASE: for one named patient only", role
    for role in ("qa", "clinician", "nurse"):  # the roles that read patients
        assert "SLE-UC-007" in flag(role), role


def test_a_directed_lot_exceptionally_released_for_another_patient_gets_no_label(app, users):  # type: ignore[no-untyped-def]
    lot_id, [(bag_id, _)] = make_lot(app, bags=1, familial_for="SSC-BM-0042", product="BM-MSC")
    with _session(app) as session:
        lot, bag = session.get(Lot, lot_id), session.get(Bag, bag_id)
        other = SimpleNamespace(exceptional=True, patient_code="SSC-BM-0099")
        with pytest.raises(Conflict, match="a label names one recipient"):
            services.intended_recipient(session, lot, bag, other)
        same = SimpleNamespace(exceptional=True, patient_code="SSC-BM-0042")
        assert services.intended_recipient(session, lot, bag, same).startswith("SSC-BM-0042")


# ---- 3. two first prints at the same moment (PostgreSQL) ------------------------------------------------------------

def test_two_simultaneous_first_prints_of_one_bag_give_one_original(app, users, monkeypatch):  # type: ignore[no-untyped-def]
    from tests.reliability.races import race

    if app.extensions["mscbatch.db"].engine.dialect.name != "postgresql":
        pytest.skip("READ COMMITTED interleaving exists on PostgreSQL only (SQLite serialises writers)")
    lot_id, _bags = make_lot(app, bags=1)
    barrier = threading.Barrier(2)
    original = services.printed_before

    def printed_before_then_meet(session: Any, bag_ids: Any) -> Any:  # both read, then both write (unguarded)
        found = original(session, bag_ids)
        try:
            barrier.wait(2)
        except threading.BrokenBarrierError:
            pass
        return found

    monkeypatch.setattr(services, "printed_before", printed_before_then_meet)

    def attempt(session: Any, n: int) -> bool:
        printed = services.print_labels(session, user(session, ("technician", "qa")[n]), lot_id, print_format="lot",
                                        base_url="https://mscbatch.example.org", key="k")
        session.commit()
        return printed.reprint

    outcomes = race(app, lambda session, n: n, attempt)
    with _session(app) as session:
        jobs = list(session.scalars(select(LabelPrint)))
    assert sorted(kind for kind, _ in outcomes) == ["ok", "refused"], outcomes
    refusal = next(value for kind, value in outcomes if kind == "refused")
    assert isinstance(refusal, ValidationFailed) and "a reprint needs a reason" in str(refusal)
    assert [job.reprint for job in jobs] == [False]


# ---- 5. a collection site the label cannot print is refused at entry -----------------------------------------------

def test_a_collection_site_the_label_cannot_print_is_refused_when_the_lot_is_started(app, users, client_as):  # type: ignore[no-untyped-def]
    with _session(app) as session:
        donor_id = approved_adipose_donor(session)
        session.commit()
    form = {"donor_id": donor_id, "product_id": "AT-MSC", "collection_at": (TODAY - timedelta(days=3)).isoformat()
            + "T09:00", "tissue_amount": "40", "tissue_unit": "g"}
    client = client_as("technician")
    for site, words in (("Szpital \u0141\u00f3d\u017a, blok 3", "cannot print ('\u0141', '\u017a')"),
                        ("Klinikum" + "x" * 60, "too long for its 45 x 11 mm box")):
        answer = client.post("/lots/new", data={**form, "collection_site": site})
        page = html.unescape(answer.get_data(as_text=True))
        assert answer.status_code == 422 and words in page and "Collection site" in page, page[:200]
        with _session(app) as session:
            assert session.scalars(select(Lot)).first() is None
    answer = client.post("/lots/new", data={**form, "collection_site": "Szpital Lodz, blok 3"})
    assert answer.status_code == 302
    with _session(app) as session:
        assert session.scalar(select(Lot.collection_site)) == "Szpital Lodz, blok 3"


def test_the_service_refuses_it_too_naming_the_field(app, users):  # type: ignore[no-untyped-def]
    with _session(app) as session:
        donor_id = approved_adipose_donor(session)
        with pytest.raises(ValidationFailed, match="label fonts cannot print") as refused:
            lots.create_lot(session, user(session, "technician"), lots.LotDetails(
                donor_id=donor_id, product_id="AT-MSC", collection_at=at(TODAY),
                collection_site="Szpital \u0141\u00f3d\u017a", tissue_amount="50", tissue_unit="g"))
        assert refused.value.field == "collection_site"


def test_the_label_rule_for_any_text_is_one_function():  # type: ignore[no-untyped-def]
    assert printable("Ch\u00e2teau-d'\u00d6x, S\u00e3o Paulo") is None  # Latin-1 accents print
    assert "('\u0141')" in (printable("\u0141K") or "") and "('\\x00')" in (printable("a\x00") or "")
    assert field_problem("collection_facility", "Maternity, delivery room 2") is None
    assert field_problem("intended_recipient", "SLE-UC-007 AB born 1970-01-01") is None
    assert "too long" in (field_problem("intended_recipient", "SSC-BM-2024-PARIS-SAINT-LOUIS-0042 AB born 1970-01-01")
                          or "")


def test_a_facility_name_the_label_cannot_print_is_refused_when_the_site_configuration_loads(tmp_path):  # type: ignore[no-untyped-def]
    text = (config_dir() / "site.toml").read_text()
    name = re.search(r'^facility_name = "([^"]*)"', text, re.M)
    assert name is not None
    (tmp_path / "site.toml").write_text(text.replace(name.group(0), 'facility_name = "Szpital \u0141\u00f3d\u017a"'))
    with pytest.raises(ConfigError, match="facility_name.*cannot print"):
        load_site_config(tmp_path / "site.toml")


# ---- 6. a DIN without its check character names no bag -------------------------------------------------------------

def test_a_din_typed_without_its_check_character_names_no_bag(app, users, client_as):  # type: ignore[no-untyped-def]
    lot_id, [(first_id, first), (second_id, second)] = make_lot(app, bags=2)
    mistyped = second[:13]  # the technician meant bag 1 and slipped on the last digit; no K typed
    headers = {"Authorization": f"Bearer {api_token_for(app, 'technician')}"}
    body = app.test_client().post("/api/v1/identifiers/parse", json={"text": mistyped}, headers=headers).get_json()
    assert body["valid"] is False and body["bag_id"] is None and "type the check character" in body["message"]
    assert "check_character" not in body["parts"] and "display" not in body["parts"]  # K is not given away
    page = client_as("technician").get("/identifiers", query_string={"text": mistyped})
    shown = html.unescape(page.get_data(as_text=True))
    assert page.status_code == 422 and "This is <a" not in shown
    message = shown[shown.index('id="identifier-message"'):][:600]
    assert "Not valid" in message and "type the check character" in message and "(field text)" in message
    assert f"K should be {second[13]}" not in shown  # K is not given away: typing it back would check nothing
    body = app.test_client().post("/api/v1/identifiers/parse", json={"text": first}, headers=headers).get_json()
    assert body["valid"] is True and body["bag_id"] == first_id  # with K: checked, and the bag named
    assert "This is <a" in client_as("technician").get("/identifiers", query_string={"text": second}).get_data(
        as_text=True)


# ---- 7. no label for a bag on the ward ------------------------------------------------------------------------------

@pytest.mark.parametrize("state", ["dispatched", "thawed"])
def test_a_bag_on_the_ward_gets_no_label_printed_in_the_unit(app, users, client_as, state):  # type: ignore[no-untyped-def]
    with _session(app) as session:
        ward = prescribed_bag(session, state=state)
        din = din_shown(session.get(Bag, ward.bag_id))  # as its label names it, with K
        session.commit()
    client = client_as("technician")
    carried = _items(app, ward.bag_id)  # the released label it left the unit with
    assert len(carried) == 1
    printed = client.post(f"/labels/lots/{ward.lot_id}/print", data={"print_format": "bag", "bag_id": ward.bag_id,
                                                                      "reason": "wet label"})
    page = html.unescape(printed.get_data(as_text=True))
    assert printed.status_code == 409 and f"Bag {din}" in page and f"is {state}, out of the unit" in page
    assert _items(app, ward.bag_id) == carried
    # the lot's other bags, in the unit, are labelled again; the ward's bag is not
    whole = _print(client, ward.lot_id, reason="labels damaged in the freezer")
    assert whole.status_code == 200 and _items(app, ward.bag_id) == carried
    with _session(app) as session:
        in_unit = session.scalars(select(Bag.id).where(Bag.lot_id == ward.lot_id, Bag.id != ward.bag_id)).all()
        newest = session.scalar(select(LabelPrint).order_by(LabelPrint.id.desc()).limit(1))
        assert newest.bag_count == len(in_unit) > 0


# ---- 8. autologous products are refused by the configuration ------------------------------------------------------

def test_an_autologous_product_is_refused_when_products_toml_loads(tmp_path):  # type: ignore[no-untyped-def]
    text = (config_dir() / "products.toml").read_text()
    changed = text.replace('collection_type = "V"                 # allogeneic\ntrial = "NCT03562065"',
                           'collection_type = "1"\ntrial = "NCT03562065"', 1)
    assert changed != text
    (tmp_path / "products.toml").write_text(changed)
    with pytest.raises(ConfigError) as refused:
        load_products(tmp_path / "products.toml")
    words = str(refused.value)
    assert "products.toml" in words and "products[0].collection_type" in words and "autologous" in words


# ---- odd input (review reproduction): never a 500 -------------------------------------------------------------------

ODD = ["", ".", "..", "A.B", "X9999260000017.", "x" * 600, "\x00", "%00", "X9999260000017.%00", "\u017f.\u017f",
       "http:x", "https://h/v/", "X9999260000017." + "A" * 26, "0" * 40 + "." + "A" * 26, "*.AAAA",
       "X999926000001*." + "A" * 26, "%ED%A0%80", "X9999260000017.AAAAAAAAAAAAAAAAAAAAAAAAAA%0A"]


def test_odd_tokens_and_ids_never_500(app, users, client_as):  # type: ignore[no-untyped-def]
    lot_id, _bags = make_lot(app, bags=1)
    anonymous, token = app.test_client(), api_token_for(app, "nurse")
    bad = []
    for text in ODD:
        if anonymous.get("/v/" + text).status_code >= 500:
            bad.append(("page", text))
        if anonymous.get("/api/v1/labels/verify", query_string={"token": text},
                         headers={"Authorization": f"Bearer {token}"}).status_code >= 500:
            bad.append(("api", text))
    tech = client_as("technician")
    for path, data in [(f"/labels/lots/{2**63}", None), (f"/labels/lots/{2**31}", None),
                       (f"/labels/lots/{lot_id}/print", {"print_format": "bag", "bag_id": str(2**31 - 1)}),
                       (f"/labels/lots/{lot_id}/print", {"print_format": "sheet", "bag_id": "-1"}),
                       (f"/labels/lots/{lot_id}/print", {"print_format": "lot", "reason": "\x00"}),
                       (f"/labels/lots/{lot_id}/print", {"print_format": "lot", "reason": "x" * 200000}),
                       (f"/labels/lots/{lot_id}/print", {"print_format": "zzz"})]:
        answer = tech.get(path) if data is None else tech.post(path, data=data)
        if answer.status_code >= 500:
            bad.append((path, str(data)[:40]))
    assert not bad
