"""The review of the reagent lot correction (session 42), on SQLite and PostgreSQL:
- a correction typed on a page opened before a colleague's correction is refused (nothing changed; the page is shown
  again as it is now): it used to send the old values back with its own change, silently restoring a wrong lot
  number that hides its cell lots from a recall of the real one;
- an expiry moved later is refused when it would clear a use marked "EXPIRED when used" (QA's to weigh);
- a name, supplier or lot number holding a character that shows nothing (a zero-width space) is refused, at
  registration and at correction."""
from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from mscbatch.lots import reagents
from mscbatch.lots.models import ReagentUse
from mscbatch.lots.reagent_corrections import correct_reagent_use
from tests.integration.lot_factories import user
from tests.integration.test_donors import db_session  # noqa: F401 (fixture)
from tests.integration.test_s42_lots_reagent_lot_correction import (
    REASON,
    _api,
    _correct,
    _errors,
    _form,
    _scene,
    _state,
    _text,
)


def test_a_page_opened_before_another_correction_cannot_undo_it(app, users, db_session, client_as):  # noqa: F811
    s = _scene(db_session)
    first = client_as("technician")
    stale_page = first.get(f"/reagents/{s.trypsin}").get_data(as_text=True)
    stale = re.search(r'<input id="fix-shown" name="fix-shown" type="hidden" value="([^"]*)"', stale_page).group(1)

    # a colleague corrects the lot number (the page they post from is fresh)
    assert _correct(first, s.trypsin, _form(name="TrypLE Selct", lot_number="TR-2291")).status_code == 302
    corrected, events = _state(db_session, s.trypsin)
    assert corrected[2] == "TR-2291"

    # the page opened before it corrects the name only, and would carry the old lot number back
    refused = first.post(f"/reagents/{s.trypsin}/correction", follow_redirects=True,
                         data={**_form(name="TrypLE Select", lot_number="TR-2219"), "fix-shown": stale})
    text = _text(refused)
    assert "Correction refused: DemoBio lot TR-2291 was changed since you opened this page (another correction). " \
           "Look at it again as it is now, then correct what is still wrong. Nothing was changed." in text, text
    assert _state(db_session, s.trypsin) == (corrected, events)  # TR-2291 kept, nothing audited
    # the page is shown again as it is now: its form carries the new values and what it shows
    assert 'value="TR-2291"' in text and f'value="{stale}"' not in text
    # a form without what it showed is refused the same way
    bare = first.post(f"/reagents/{s.trypsin}/correction", data=_form(name="TrypLE Select", lot_number="TR-2291"))
    assert bare.status_code == 302 and _state(db_session, s.trypsin) == (corrected, events)
    # typed on the fresh page, the name is corrected and the lot number stays
    assert _correct(first, s.trypsin, _form(name="TrypLE Select", lot_number="TR-2291")).status_code == 302
    assert _state(db_session, s.trypsin)[0][:3] == ("TrypLE Select", "DemoBio", "TR-2291")


def test_a_later_expiry_cannot_clear_a_use_marked_expired_when_used(app, users, db_session, client_as):  # noqa: F811
    s = _scene(db_session)
    tech = user(db_session, "technician")
    use = db_session.scalar(select(ReagentUse).where(ReagentUse.reagent_lot_id == s.trypsin))
    # the lot really used had expired the day before its use: recorded by a correction, with its warning
    expired = reagents.register_reagent_lot(db_session, tech, reagent_type="trypsin", name="TrypLE Select",
                                            supplier="DemoBio", lot_number="TR-1999",
                                            expiry_date=s.used_on - timedelta(days=1)).id
    db_session.commit()
    correct_reagent_use(db_session, tech, s.lot_id, use.id, reagent_lot_id=expired, used_on=s.used_on,
                        reason="the bottle used was TR-1999")
    db_session.commit()
    client, (api, headers) = client_as("technician"), _api(app)  # signing in and a token are audited: before
    assert "EXPIRED when used" in client.get(f"/lots/{s.lot_id}").get_data(as_text=True)
    before = _state(db_session, expired)

    refused = _correct(client, expired, _form(name="TrypLE Select", lot_number="TR-1999", expiry=s.used_on))
    assert refused.status_code == 409
    words = (f"Expiry date: DemoBio lot TR-1999 is recorded as expired on {s.used_on - timedelta(days=1)}, and these "
             f"uses are marked EXPIRED when used: lot {s.lot_number} on {s.used_on} (P0). A later expiry would clear "
             "that mark without QA. If the recorded expiry was typed wrong, record a deviation against the step of "
             "each use and ask QA. Nothing was changed.")
    assert _errors(_text(refused), "fix-expiry_date") == [words], _text(refused)
    answer = api.post(f"/api/v1/reagent-lots/{expired}/corrections", headers=headers,
                      json={"expiry_date": (s.used_on + timedelta(days=30)).isoformat(), "reason": REASON})
    assert answer.status_code == 409 and "would clear that mark without QA" in answer.get_json()["detail"]
    assert _state(db_session, expired) == before
    assert "EXPIRED when used" in client.get(f"/lots/{s.lot_id}").get_data(as_text=True)


def test_a_character_that_shows_nothing_is_refused(app, users, db_session, client_as):  # noqa: F811
    s = _scene(db_session)
    client, (api, headers) = client_as("technician"), _api(app)  # signing in and a token are audited: before
    before = _state(db_session, s.trypsin)
    refused = _correct(client, s.trypsin, _form(lot_number="TR-2291\u200b"))
    assert refused.status_code == 422
    assert _errors(_text(refused), "fix-lot_number") == [
        "The supplier's lot number holds an invisible character (U+200B): type it again, with the letters and "
        "digits printed on the reagent only."], _text(refused)
    answer = api.post(f"/api/v1/reagent-lots/{s.trypsin}/corrections", headers=headers,
                      json={"name": "\u200b", "reason": REASON})
    assert answer.status_code == 422 and "U+200B" in answer.get_json()["detail"]
    assert _state(db_session, s.trypsin) == before
    registered = api.post("/api/v1/reagent-lots", headers=headers,
                          json={"reagent_type": "medium", "name": "alpha-MEM", "supplier": "Demo\ufeffBio",
                                "lot_number": "M-78", "expiry_date": "2027-06-30"})
    assert registered.status_code == 422 and "U+FEFF" in registered.get_json()["detail"], registered.get_json()
