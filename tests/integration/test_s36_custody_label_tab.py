"""Session 36 (labels): the print form posts in the labels page's own tab, so a refusal (a reprint without a
reason, a reason too long) shows there, on its field, instead of a copy of the page opening in a new tab at every
refusal; a printed PDF comes as a download (one click, the labels page stays)."""
from __future__ import annotations

import re

from tests.integration.test_labelling import make_lot


def _print_form(html: str) -> str:
    return re.search(r'<form[^>]*action="/labels/lots/\d+/print"[^>]*>', html).group(0)  # type: ignore[union-attr]


def test_the_print_form_opens_no_new_tab_and_the_pdf_downloads(app, users, client_as):
    lot_id, bags = make_lot(app, bags=1)
    client = client_as("technician")
    assert "target=" not in _print_form(client.get(f"/labels/lots/{lot_id}").get_data(as_text=True))
    printed = client.post(f"/labels/lots/{lot_id}/print", data={"print_format": "bag", "bag_id": bags[0][0]})
    assert printed.status_code == 200 and printed.mimetype == "application/pdf"
    assert printed.headers["Content-Disposition"].startswith("attachment;"), printed.headers["Content-Disposition"]
    assert printed.data.startswith(b"%PDF")


def test_a_refused_reprint_is_said_on_the_reason_field_of_the_same_page(app, users, client_as):
    lot_id, bags = make_lot(app, bags=1)
    client = client_as("technician")
    assert client.post(f"/labels/lots/{lot_id}/print", data={"print_format": "lot"}).status_code == 200
    for reason, words in (("", "a reprint needs a reason"), ("x" * 2001, "at most 2000 characters")):
        refused = client.post(f"/labels/lots/{lot_id}/print", data={"print_format": "lot", "reason": reason})
        html = refused.get_data(as_text=True)
        assert refused.status_code == 422 and refused.mimetype == "text/html"
        error = html[html.index('id="reason-error"'):]
        assert words in error[:error.index("</")], error[:300]
        assert "target=" not in _print_form(html)  # the corrected form posts in this tab too
