"""Review s35 (clinician journey): the dose page, the prescription page and the dose-sheet PDF put the DIN
"X999926000005" and its check character "P" in two columns, where every other screen names the bag as its label
does, "X9999 26 000005 P" (identifiers.din_shown): one column now, the K still boxed. The dose sheet's bedside box
said "Date / time" with no zone: it names the site's zone."""
from __future__ import annotations

import re
from html import unescape

from mscbatch.core.identifiers import din_shown
from mscbatch.lots.models import Bag
from mscbatch.patients import prescriptions
from mscbatch.site import site_config
from tests.conftest import PASSWORD
from tests.integration.patient_factories import donor, lot_with_bags, patient, user
from tests.integration.test_review5_patients_course import _pdf_text


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def _table(page: str, table_id: str) -> tuple[list[str], list[list[str]]]:
    """(the headings, each row's cells as text) of the page's table `table_id`."""
    table = page[page.index(f'<table id="{table_id}"'):]
    table = table[:table.index("</table>")]
    head = [_text(h) for h in re.findall(r"<th>(.*?)</th>", table, re.S)]
    body = table[table.index("<tbody>"):]
    rows = [[_text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]
    return head, rows


def _signed(db_session):  # type: ignore[no-untyped-def]
    tech, clin = user(db_session, "technician"), user(db_session, "clinician")
    lot_with_bags(db_session, tech, donor(db_session, tech), bags=6)
    row = patient(db_session, clin)
    return row.id, prescriptions.prescribe(db_session, clin, PASSWORD, row.id)


def test_the_dose_page_names_each_bag_in_one_din_column_with_its_boxed_k(app, users, db_session, client_as):
    tech, clin = user(db_session, "technician"), user(db_session, "clinician")
    bags = lot_with_bags(db_session, tech, donor(db_session, tech), bags=6)
    pid = patient(db_session, clin).id
    shown = {din_shown(b) for b in bags}
    db_session.commit()
    page = client_as("clinician").get(f"/patients/{pid}/dose").get_data(as_text=True)
    head, rows = _table(page, "draws")
    assert head[0] == "DIN" and "K" not in head, head
    assert rows and all(r[0] in shown for r in rows), rows
    assert all(re.fullmatch(r"X9999 99 \d{6} [0-9A-Z*]", r[0]) for r in rows), rows
    assert page.count('class="k-box"') >= len(rows)  # the K boxed, as on the other pages


def test_the_prescription_page_names_each_bag_in_one_din_column_with_its_boxed_k(app, users, db_session, client_as):
    pid, rx = _signed(db_session)
    shown = [din_shown(db_session.get(Bag, int(d["bag_id"]))) for d in rx.calculation["draws"]]
    rx_id = rx.id
    db_session.commit()
    page = client_as("clinician").get(f"/patients/prescriptions/{rx_id}").get_data(as_text=True)
    head, rows = _table(page, "allocated-bags")
    assert head[:2] == ["DIN", "Product code"] and "K" not in head, head
    assert sorted(r[0] for r in rows) == sorted(shown), rows
    assert 'class="check-char"' not in page and page.count('class="k-box"') == len(rows)


def test_the_dose_sheet_prints_each_din_as_its_label_does_and_names_the_zone_of_the_bedside_time(
        app, users, db_session, client_as):
    pid, rx = _signed(db_session)
    shown = [din_shown(db_session.get(Bag, int(d["bag_id"]))) for d in rx.calculation["draws"]]
    rx_id = rx.id
    db_session.commit()
    sheet = _pdf_text(client_as("clinician").get(f"/patients/prescriptions/{rx_id}/dose-sheet.pdf").data)
    for words in shown:
        assert words in sheet, (words, sheet[sheet.find("Bags"):][:600])
    assert "DIN Product code" in sheet and "DIN K " not in sheet, sheet[sheet.find("Bags"):][:300]
    with app.app_context():
        zone = site_config().tz.key
    assert f"Date / time (local time, {zone})" in sheet, sheet[sheet.find("Bedside"):][:300]
    assert re.search(r"Name Date / time Signature", sheet) is None
