"""Session 45 review: lists that stopped without a word. The ward list "Bags out of the unit now" stopped at
ward_list.MOST (259 bags on their way never listed, nothing said so); /patients and GET /api/v1/patients showed the 50
newest patients with no paging, no total and no note, and a search by wristband id found no one."""
from __future__ import annotations

import re
from typing import Any

import pytest

from mscbatch.custody import handover
from mscbatch.lots.models import Bag
from tests.conftest import api_token_for
from tests.integration.patient_factories import patient, user
from tests.integration.test_custody_support import token_of, ward_bag

pytestmark = pytest.mark.usefixtures("users")


def _thaw(app: Any, bag_id: int) -> None:
    with app.extensions["mscbatch.db"].new_session() as session:
        handover.thaw(session, user(session, "nurse"), bag_id, location="Ward 3",
                      scan=token_of(session.get(Bag, bag_id)))


def _text(page: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


# ---- the ward list ------------------------------------------------------------------------------------------------

def test_a_ward_list_cut_at_its_bound_says_so_with_the_counts_and_the_way_to_the_rest(app, client_as, monkeypatch):
    monkeypatch.setattr("mscbatch.custody.ward_list.MOST", 2)
    dispatched = [ward_bag(app, state="dispatched").bag_id for _ in range(2)]
    received = ward_bag(app, state="received").bag_id
    thawed = [ward_bag(app, state="received").bag_id for _ in range(2)]
    for bag_id in thawed:
        _thaw(app, bag_id)
    nurse = client_as("nurse")
    answer = nurse.get("/ward")
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    text = _text(page)
    # the thawed first: never left off for the others
    assert all(f'id="on-ward-{b}"' in page for b in thawed)
    assert not any(f'id="on-ward-{b}"' in page for b in [received, *dispatched])
    assert "Showing 2 of 5 bags out of the unit" in text
    assert "2 thawed, 1 received (still frozen), 2 dispatched (on their way)" in text
    assert "Not on this page: 1 received, 2 dispatched" in text
    assert 'href="/ward?state=dispatched#h-on-ward"' in page and 'href="/ward?page=2#h-on-ward"' in page

    second = _text(nurse.get("/ward?page=2").get_data(as_text=True))
    assert "bags 3–4 of 5" in second or "3–4 of 5" in second
    only = nurse.get("/ward?state=dispatched").get_data(as_text=True)
    assert all(f'id="on-ward-{b}"' in only for b in dispatched)
    assert not any(f'id="on-ward-{b}"' in only for b in [received, *thawed])
    assert "only the dispatched bags, 1–2 of 2" in _text(only)


def test_the_thawed_come_first_even_when_they_alone_fill_the_page(app, client_as, monkeypatch):
    monkeypatch.setattr("mscbatch.custody.ward_list.MOST", 1)
    waiting = ward_bag(app, state="dispatched").bag_id
    thawed = ward_bag(app, state="received").bag_id
    _thaw(app, thawed)
    page = client_as("nurse").get("/ward").get_data(as_text=True)
    assert f'id="on-ward-{thawed}"' in page and f'id="on-ward-{waiting}"' not in page
    assert "Showing 1 of 2 bags out of the unit" in _text(page)


def test_a_complete_ward_list_says_it_is_complete(app, client_as):
    bag_id = ward_bag(app, state="received").bag_id
    page = client_as("nurse").get("/ward").get_data(as_text=True)
    assert f'id="on-ward-{bag_id}"' in page
    assert "1 bag out of the unit, all listed" in _text(page) and "Showing" not in _text(page)


@pytest.mark.parametrize(("query", "name"), [("state=frozen", "state"), ("page=0", "page"), ("page=abc", "page"),
                                              ("page=99999999999999999999", "page")])
def test_a_bad_ward_list_view_is_refused_by_name(app, client_as, query, name):
    answer = client_as("nurse").get(f"/ward?{query}")
    assert answer.status_code == 422
    assert f"{name}: " in _text(answer.get_data(as_text=True))


# ---- the patients list ----------------------------------------------------------------------------------------

def _sixty(app: Any) -> list[Any]:
    with app.extensions["mscbatch.db"].new_session() as session:
        clin = user(session, "clinician")
        made = [patient(session, clin, weight=None, enrol=False) for _ in range(60)]
        session.commit()
        return [(p.id, p.code, p.wristband_id) for p in made]


def test_sixty_patients_are_two_pages_said_so(app, client_as):
    made = _sixty(app)
    clinician = client_as("clinician")
    first = clinician.get("/patients")
    assert first.status_code == 200
    page = first.get_data(as_text=True)
    assert "Showing 1–50 of 60 patients" in _text(page)
    newest, oldest = made[-1], made[0]
    assert f">{newest[1]}<" in page and f">{oldest[1]}<" not in page
    link = re.search(r'id="patients-next" href="([^"]+)"', page)
    assert link is not None
    second = clinician.get(link.group(1).replace("&amp;", "&"))
    assert second.status_code == 200
    rest = second.get_data(as_text=True)
    assert "Showing 51–60 of 60 patients" in _text(rest)
    assert all(f">{code}<" in rest for _id, code, _band in made[:10])
    assert f">{made[10][1]}<" not in rest and 'id="patients-next"' not in rest


def test_the_api_pages_with_a_total_and_the_lots_keyset(app):
    made = _sixty(app)
    api = app.test_client()
    headers = {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}
    first = api.get("/api/v1/patients", headers=headers)
    assert first.status_code == 200
    body = first.get_json()
    assert body["total"] == 60 and len(body["items"]) == 50 and body["next_before"] is not None
    rest = api.get(f"/api/v1/patients?before={body['next_before']}", headers=headers).get_json()
    assert rest["total"] == 60 and rest["next_before"] is None
    assert {p["id"] for p in rest["items"]} == {pid for pid, _code, _band in made[:10]}
    for bad in ("before=abc", "before=0", "before=1.5", "protocol=nope"):
        refused = api.get(f"/api/v1/patients?{bad}", headers=headers)
        assert refused.status_code == 422, bad
        assert bad.split("=")[0] in refused.get_data(as_text=True), bad


def test_a_search_by_wristband_finds_the_patient(app, client_as):
    made = _sixty(app)
    pid, code, band = made[3]
    assert band
    page = client_as("clinician").get("/patients", query_string={"q": band.lower()}).get_data(as_text=True)
    assert f">{code}<" in page and "1 patient matches, all listed" in _text(page)
    api = app.test_client()
    headers = {"Authorization": f"Bearer {api_token_for(app, 'clinician')}"}
    found = api.get("/api/v1/patients", query_string={"q": band}, headers=headers).get_json()
    assert [p["id"] for p in found["items"]] == [pid] and found["total"] == 1


def test_a_search_with_more_matches_than_a_page_says_how_many(app, client_as):
    _sixty(app)
    page = _text(client_as("clinician").get("/patients?q=SLE-UC-0").get_data(as_text=True))
    assert "Showing 1–50 of 60 patients matching" in page


@pytest.mark.parametrize(("query", "name"), [("before=abc", "before"), ("before=0", "before"),
                                              ("protocol=nope", "protocol")])
def test_a_bad_patients_page_is_refused_by_name(app, client_as, query, name):
    answer = client_as("clinician").get(f"/patients?{query}")
    assert answer.status_code == 422
    assert f"{name}: " in _text(answer.get_data(as_text=True))
