"""Session 42, the lot page's PD plot: on one frame with two axes the viability (95 % on the right axis) was drawn on
the product's PD limit line (25 on the left) and read against it, and neither the PD warning nor any viability limit
was drawn. Each series now has its own panel and its own lines: cumulative PD against the product's PD warning and
limit (config/products.toml culture), viability against the release specification's minimum (config/release_specs),
each line named in words and in the SVG's <desc>. Read back from the page: each line's position, turned into a value
on its own panel's scale (given by the plotted points and the axis labels), is that limit."""
from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from typing import Any

from tests.integration.lot_factories import M, approved_adipose_donor, passages, start_lot
from tests.integration.test_donors import db_session  # noqa: F401 (fixture)

SVG = "{http://www.w3.org/2000/svg}"


def _svg(client: Any, lot_id: int) -> tuple[ET.Element, str]:
    response = client.get(f"/lots/{lot_id}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    found = re.search(r"<svg[^>]*class=\"pd-plot\".*?</svg>", page, re.S)
    assert found, "no PD plot on the lot page"
    source = found.group(0).replace("<svg ", f"<svg xmlns=\"{SVG[1:-1]}\" ", 1)
    return ET.fromstring(source), html.unescape(page)


def _line(svg: ET.Element, series: str, kind: str) -> float:
    lines = [e for e in svg.iter(f"{SVG}line") if e.get("data-series") == series and e.get("data-line") == kind]
    assert len(lines) == 1, (series, kind, len(lines))
    assert lines[0].get("y1") == lines[0].get("y2")  # a horizontal line
    return float(lines[0].get("y1") or "nan")


def _scale(y1: float, v1: float, y2: float, v2: float):  # type: ignore[no-untyped-def]
    """The value at a height, from two known heights of the same panel."""
    return lambda y: v1 + (y - y1) * (v2 - v1) / (y2 - y1)


def _texts(svg: ET.Element) -> list[tuple[str, float]]:
    return [(t.text or "", float(t.get("y") or "nan")) for t in svg.iter(f"{SVG}text")]


def test_each_series_is_drawn_against_its_own_limit_and_warning(app, users, db_session, client_as):  # noqa: F811
    lot_id = start_lot(db_session, approved_adipose_donor(db_session))  # AT-MSC: PD limit 25, warning 20
    passages(db_session, lot_id, [(2 * M, 16 * M), (14 * M, 110 * M), (10 * M, 70 * M)])  # PD 3.00, 5.97, 8.78
    db_session.commit()
    svg, page = _svg(client_as("technician"), lot_id)

    # cumulative PD: its scale from its own plotted points (P0 3.00 and P2 8.78, as the table says)
    dots = [(float(c.get("cy") or "nan"), c.find(f"{SVG}title").text) for c in svg.iter(f"{SVG}circle")]
    assert [title for _y, title in dots] == ["P0: cumulative PD 3.00", "P1: cumulative PD 5.97",
                                             "P2: cumulative PD 8.78"]
    pd_at = _scale(dots[0][0], 3.00, dots[2][0], 8.78)
    assert abs(pd_at(_line(svg, "pd", "limit")) - 25.0) < 0.05
    assert abs(pd_at(_line(svg, "pd", "warning")) - 20.0) < 0.05

    # viability: its scale from its own axis labels (a label sits 4 px below its height), its line at 70 %
    ticks = {text: y - 4 for text, y in _texts(svg) if text.endswith("%") and text[:-1].isdigit()}
    viability_at = _scale(ticks["0%"], 0, ticks["100%"], 100)
    viability_y = _line(svg, "viability", "limit")
    assert abs(viability_at(viability_y) - 70) < 0.05
    squares = [float(r.get("y") or "nan") + 4 for r in svg.iter(f"{SVG}rect")]
    assert squares and all(abs(viability_at(y) - 95) < 0.05 for y in squares)  # the points on their own scale
    # each in its own panel: the viability line above the PD panel, not on the PD limit line
    assert viability_y < ticks["0%"] < min(y for y, _t in dots) and ticks["0%"] < _line(svg, "pd", "limit")

    # named in words at the line (not by colour alone), and in the text alternative
    words = [text for text, _y in _texts(svg)]
    assert "PD limit 25.0" in words and "PD warning 20.0" in words
    assert "Viability minimum: at least 70\u00a0%" in words
    desc = svg.find(f"{SVG}desc")
    assert desc is not None and desc.text is not None
    for named in ("limit 25.0", "warning at 20.0", "release minimum at least 70\u00a0%"):
        assert named in desc.text, (named, desc.text)
    assert "Cumulative PD: warning at 20.0 (dashed amber line), limit 25.0" in page  # the caption, for everyone


def test_a_strict_viability_minimum_is_said_as_above(app, users, db_session, client_as):  # noqa: F811
    """The UC-MSC specification wants a viability above 80 % (strict): the line is at 80, said "above 80 %"."""
    from tests.integration.test_donors import approved_donor

    lot_id = start_lot(db_session, approved_donor(db_session, "cord_eu"), product_id="UC-MSC")
    passages(db_session, lot_id, [(2 * M, 16 * M), (14 * M, 110 * M)])
    db_session.commit()
    svg, _page = _svg(client_as("technician"), lot_id)
    ticks = {text: y - 4 for text, y in _texts(svg) if text.endswith("%") and text[:-1].isdigit()}
    viability_at = _scale(ticks["0%"], 0, ticks["100%"], 100)
    assert abs(viability_at(_line(svg, "viability", "limit")) - 80) < 0.05
    assert "Viability minimum: above 80\u00a0%" in [text for text, _y in _texts(svg)]
