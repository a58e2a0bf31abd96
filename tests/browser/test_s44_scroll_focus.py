"""A region that scrolls sideways on a tablet can be reached with the keyboard (WCAG 2.1.1; axe's rule
scrollable-region-focusable, session 44's audit): the donor's screening results, a clinician's release review and a
box map scrolled at 768 px with nothing inside them to focus, so a keyboard user could not read their right side.

On `make run`'s demo data, served as `make run` serves it, read by Chromium at a portrait tablet's width."""
from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from mscbatch.lots.models import Lot, StorageLocation
from mscbatch.release.demo import DEMO_PASSWORD
from tests.browser.conftest import LiveServer
from tests.conftest import make_app

#: every element of the page's main that scrolls sideways now, and whether a keyboard can reach it (focusable
#: itself, or holding something focusable)
UNREACHABLE_SCROLLERS = """() => [...document.querySelectorAll('main *')].filter(el => {
    const style = getComputedStyle(el);
    if (!['auto', 'scroll'].includes(style.overflowX) || el.scrollWidth <= el.clientWidth + 1) return false;
    if (el.tabIndex >= 0) return false;
    return !el.querySelector('a[href], button, input, select, textarea, [tabindex]:not([tabindex="-1"])');
}).map(el => el.outerHTML.slice(0, 120))"""


@pytest.fixture
def demo_server(sqlite_template: Path, tmp_path: Path) -> Iterator[LiveServer]:
    path = tmp_path / "demo.sqlite3"
    shutil.copyfile(sqlite_template, path)
    app = make_app(f"sqlite:///{path}", WTF_CSRF_ENABLED=True)
    assert app.test_cli_runner().invoke(args=["seed-demo"]).exit_code == 0
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LiveServer(url=f"http://127.0.0.1:{server.server_port}", app=app)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        app.extensions["mscbatch.db"].engine.dispose()


def _sign_in(page: Any, server: LiveServer, username: str) -> None:
    page.goto(f"{server.url}/login")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.url}/")


def test_what_scrolls_sideways_on_a_tablet_can_be_reached_with_the_keyboard(page: Any, demo_server: LiveServer) -> None:
    with demo_server.app.extensions["mscbatch.db"].new_session() as session:
        donors = sorted({lot.donor_id for lot in session.scalars(select(Lot))})
        lots = list(session.scalars(select(Lot.id)))
        boxes = list(session.scalars(select(StorageLocation.id).where(StorageLocation.kind == "box")))
    page.set_viewport_size({"width": 768, "height": 1024})
    _sign_in(page, demo_server, "clinician")
    pages = [f"/donors/{d}" for d in donors] + [f"/release/lots/{lot}" for lot in lots]
    pages += [f"/storage/{box}" for box in boxes]
    scrolled = 0
    for path in pages:
        page.goto(demo_server.url + path)
        assert page.evaluate(UNREACHABLE_SCROLLERS) == [], path
        scrolled += page.evaluate("() => [...document.querySelectorAll('main *')].filter(el => "
                                  "['auto', 'scroll'].includes(getComputedStyle(el).overflowX) && "
                                  "el.scrollWidth > el.clientWidth + 1).length")
    assert scrolled, "nothing scrolled sideways at 768 px: the case under test did not arise"
