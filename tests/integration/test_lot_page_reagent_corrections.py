"""The cell lot's page lists the corrections of the reagent lots the lot used, as QA's release review does
(lots.record_corrections): a trypsin's lot number and expiry date corrected on its reagent lot page while the demo
lot that used it at P0 is in quarantine shows on that lot's page to the technician, under the reagent lots used: the
reagent lot as registered now with the step it was used at, each value old -> new, who, when (site time with UTC),
why, and a link to the reagent lot's page. It was listed only on QA's pages and the reagent lot's own page, and the
technician's record said nothing of it. A lot that did not use that reagent lot shows none of it."""
from __future__ import annotations

import html
from typing import Any

from sqlalchemy import select

from mscbatch.lots.models import Lot, ReagentLot, ReagentUse
from mscbatch.lots.reagent_corrections import correct_reagent_use
from tests.integration.test_reagent_correction_in_record import CORRECTED, REASON, _corrected, _trypsin
from tests.integration.test_release_support import seed_quarantine_lot, user


def _section(page: str) -> str:
    """The reagent lot corrections listed on the lot page, unescaped."""
    assert 'id="reagent-lot-corrections"' in page, page[:3000]
    return html.unescape(page.split('id="reagent-lot-corrections"')[1].split("</ul>")[0])


def _moved_off(app: Any, trypsin: int) -> int:
    """The demo's cord lot in process, its P0 trypsin use corrected from TR-7781 to the second trypsin lot
    TR-7790 (every demo lot records TR-7781): a lot that does not use the trypsin corrected afterwards."""
    with app.extensions["mscbatch.db"].new_session() as session:
        use = session.scalar(select(ReagentUse).join(Lot, Lot.id == ReagentUse.lot_id).where(
            Lot.status == "in_process", ReagentUse.reagent_lot_id == trypsin).order_by(ReagentUse.id))
        assert use is not None, "the demo has a lot in process that used the trypsin"
        other = session.scalar(select(ReagentLot.id).where(ReagentLot.lot_number == "TR-7790"))
        correct_reagent_use(session, user(session, "technician"), use.lot_id, use.id, reagent_lot_id=other,
                            used_on=use.used_on, reason="picked the old box of trypsin in error")
        session.commit()
        assert trypsin not in set(session.scalars(select(ReagentUse.reagent_lot_id)
                                                  .where(ReagentUse.lot_id == use.lot_id)))
        return use.lot_id


def test_the_lot_page_lists_the_correction_of_a_reagent_lot_it_used(  # type: ignore[no-untyped-def]
        app, users, monkeypatch, client_as):
    lot_id = seed_quarantine_lot(app, monkeypatch)
    trypsin, _expiry = _trypsin(app, lot_id)
    other = _moved_off(app, trypsin)
    technician = client_as("technician")
    before = technician.get(f"/lots/{lot_id}")
    assert before.status_code == 200
    assert 'id="reagent-lot-corrections"' not in before.get_data(as_text=True)

    old, new = _corrected(app, client_as, lot_id)

    page = technician.get(f"/lots/{lot_id}")
    assert page.status_code == 200
    raw = page.get_data(as_text=True)
    assert "<not the bottle>" not in raw  # the reason is escaped
    section = _section(raw)
    assert f"{CORRECTED}</a> corrected by Technician" in section, section
    assert REASON in section, section
    assert f"supplier's lot number TR-7781 → TR-7718; expiry date {old} → {new}" in section, section
    assert "UTC" in section, section  # site time with UTC, as the rest of the page
    assert f'href="/reagents/{trypsin}#reagent-lot-corrections"' in section, section
    # the link leads to the reagent lot's page, which lists the same correction
    linked = html.unescape(technician.get(f"/reagents/{trypsin}").get_data(as_text=True))
    assert REASON in linked and "TR-7781 → TR-7718" in linked, linked[:3000]

    untouched = technician.get(f"/lots/{other}")
    assert untouched.status_code == 200
    text = html.unescape(untouched.get_data(as_text=True))
    assert 'id="reagent-lot-corrections"' not in text
    # its record's own correction names the trypsin as registered now (its old value), not its correction
    assert REASON not in text and "corrected by Technician" in text, text[:3000]
