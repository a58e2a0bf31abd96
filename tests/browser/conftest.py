"""Browser tests: the real app served on a free local port, driven by Debian's Chromium through Playwright.

Fixtures for every browser test:
  live_server  a fresh SQLite database, users for every role (plus qa2 and nurse2), CSRF on; .url and .app
  browser      one headless Chromium per session
  page         a new context and page per test (tablet-sized); a failing test leaves a screenshot in
               test-artifacts/
  sign_in(page, live_server, username) signs in through the login form and waits for the home page.
"""
from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.conftest import PASSWORD, ROLES, add_user, make_app, missing

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
VIEWPORT = {"width": 1024, "height": 768}  # a ward / lab tablet in landscape
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@dataclass
class LiveServer:
    url: str
    app: Flask


@contextmanager
def serving(app: Flask) -> Iterator[LiveServer]:
    """The app served on a free local port in a thread, stopped and its engine closed at the end."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(url=f"http://127.0.0.1:{server.server_port}", app=app)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        app.extensions["mscbatch.db"].engine.dispose()


@pytest.fixture
def live_server(sqlite_template: Path, tmp_path: Path) -> Iterator[LiveServer]:
    path = tmp_path / "live.sqlite3"
    shutil.copyfile(sqlite_template, path)
    app = make_app(f"sqlite:///{path}", WTF_CSRF_ENABLED=True)
    for role in ROLES:
        add_user(app, role, [role])
    add_user(app, "qa2", ["qa"])
    add_user(app, "nurse2", ["nurse"])
    with serving(app) as server:
        yield server


@pytest.fixture
def demo_server(sqlite_template: Path, tmp_path: Path) -> Iterator[LiveServer]:
    """`make run`'s demo data (`mscbatch seed-demo`), served as live_server is: its users sign in with
    release.demo.DEMO_PASSWORD (sign_in(page, demo_server, "qa", DEMO_PASSWORD))."""
    path = tmp_path / "demo.sqlite3"
    shutil.copyfile(sqlite_template, path)
    app = make_app(f"sqlite:///{path}", WTF_CSRF_ENABLED=True)
    assert app.test_cli_runner().invoke(args=["seed-demo"]).exit_code == 0
    with serving(app) as server:
        yield server


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        missing(f"Chromium ({CHROMIUM}; apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    setattr(item, f"report_{report.when}", report)  # for the page fixture: did this test fail?
    return report


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id="Europe/London")
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    failed = any(getattr(getattr(request.node, f"report_{when}", None), "failed", False)
                 for when in ("setup", "call"))
    if failed:
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
        try:
            page.screenshot(path=str(ARTIFACTS / f"FAILED-{name}.png"), full_page=True)
        except Exception as error:  # noqa: BLE001 - a screenshot must not hide the real failure
            print(f"could not save a failure screenshot: {error}")
    context.close()


def sign_in(page: Any, live_server: LiveServer, username: str, password: str = PASSWORD) -> None:
    """Sign in through the login form and wait for the home page."""
    from playwright.sync_api import expect

    page.goto(f"{live_server.url}/login")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/")
    expect(page.get_by_role("heading", name=re.compile(r"^Welcome, "))).to_be_visible()
