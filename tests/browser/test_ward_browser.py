"""Ward scanning in real Chromium (issue 7): (a) a keyboard-wedge scanner types the wristband and the bag label
code followed by Enter, and the page answers MATCHES (then the second person, and the infusion start on the
wristband and the bag scanned again) or STOP;
(b) Chromium's fake camera is fed a video made from the bag's rendered label PDF, the page decodes the QR code
with the vendored jsQR and runs the bedside check. Screenshots of both answers go to test-artifacts/."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from tests.browser.conftest import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, sign_in
from tests.conftest import PASSWORD
from tests.integration.test_custody_support import prescribed_bag

pytestmark = pytest.mark.browser

PHONE = {"width": 412, "height": 915}  # a ward phone held in portrait


def _prepared(live_server: Any, count: int = 1) -> list[Any]:
    session = live_server.app.extensions["mscbatch.db"].new_session()
    try:
        return [prescribed_bag(session) for _ in range(count)]
    finally:
        session.close()


def _scan(page: Any, text: str) -> None:
    """What a keyboard-wedge scanner does: type the code fast, then Enter."""
    page.locator("#scan").focus()
    page.keyboard.type(text, delay=2)
    page.keyboard.press("Enter")


RESCAN = "Scan the patient's wristband again (on the patient's arm)"
RESCAN_BAG = "Scan the label of the bag in your hand (QR code, or the DIN with its check character)"


def _confirm_as_nurse2(page: Any) -> None:
    page.get_by_label("You, who scanned: your password").fill(PASSWORD)  # both people sign
    page.get_by_label("Second person: user name").fill("nurse2")
    page.get_by_label("Second person: password").fill(PASSWORD)
    page.get_by_role("button", name="Sign: we both checked the bag against the wristband").click()
    expect(page.get_by_role("heading", name="Two-person check confirmed")).to_be_visible()


def test_keyboard_wedge_scans_give_matches_then_stop(browser, live_server):
    ward, other = _prepared(live_server, 2)
    context = browser.new_context(viewport=PHONE, locale="en-GB", timezone_id="Europe/London")
    context.set_default_timeout(10_000)
    page = context.new_page()
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        sign_in(page, live_server, "nurse")
        page.goto(f"{live_server.url}/ward")
        page.screenshot(path=str(ARTIFACTS / "ward-page.png"), full_page=True)
        _scan(page, ward.wristband)
        expect(page.locator("#scan-status")).to_contain_text("Wristband scanned")
        _scan(page, ward.token)
        expect(page.get_by_role("heading", name="MATCHES")).to_be_visible()
        expect(page.get_by_role("alert")).to_contain_text("This bag is for this patient")
        page.screenshot(path=str(ARTIFACTS / "ward-matches.png"), full_page=True)

        _confirm_as_nurse2(page)
        # the start: the scanner reads the wristband on the patient's arm again into the focused field, then Enter,
        # which moves on to the bag field (the start is not sent half scanned); then the bag in hand, then Enter
        expect(page.get_by_label(RESCAN)).to_be_focused()
        page.screenshot(path=str(ARTIFACTS / "ward-confirmed.png"), full_page=True)
        page.keyboard.type(ward.wristband, delay=2)
        page.keyboard.press("Enter")
        expect(page.get_by_label(RESCAN_BAG)).to_be_focused()
        page.keyboard.type(ward.token, delay=2)
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Infusion — patient")).to_be_visible()
        expect(page.locator("#infusion-ended")).to_have_text("running")
        expect(page.locator("#infusion-checkers")).to_have_text("checked by Nurse, confirmed by Nurse2")
        expect(page.locator("#infusion-started-by")).to_have_text("Nurse")

        # the other patient's bag, scanned bag first, for this patient: STOP, in words
        page.goto(f"{live_server.url}/ward")
        _scan(page, other.token)
        expect(page.locator("#scan-status")).to_contain_text("Bag scanned")
        _scan(page, ward.wristband)
        expect(page.get_by_role("heading", name="STOP")).to_be_visible()
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text("WRONG PATIENT")
        expect(page.get_by_role("button", name="Sign: we both checked the bag against the wristband")).to_have_count(0)
        page.screenshot(path=str(ARTIFACTS / "ward-stop.png"), full_page=True)

        # the bag being infused (its infusion running), scanned again for its own patient: STOP as well
        page.goto(f"{live_server.url}/ward")
        _scan(page, ward.wristband)
        _scan(page, ward.token)
        expect(page.get_by_role("alert")).to_contain_text("BEING INFUSED NOW")
    finally:
        context.close()


def test_another_patients_wristband_at_the_start_is_a_full_stop_screen(page, live_server):
    ward, other = _prepared(live_server, 2)
    sign_in(page, live_server, "nurse")
    page.goto(f"{live_server.url}/ward")
    _scan(page, ward.wristband)
    _scan(page, ward.token)
    _confirm_as_nurse2(page)
    page.get_by_role("button", name="Start infusion").click()  # nothing scanned: the field says what to do
    expect(page.get_by_label(RESCAN)).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#wristband-error")).to_contain_text("Scan the patient's wristband again")
    page.get_by_label(RESCAN).fill(other.wristband)  # the bag carried to the next bed
    page.get_by_label(RESCAN_BAG).fill(ward.token)
    page.get_by_role("button", name="Start infusion").click()
    expect(page.get_by_role("heading", name="STOP")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("WRONG PATIENT: this wristband is not the patient of the "
                                                      "confirmed check")
    expect(page.get_by_role("button", name="Start infusion")).to_have_count(0)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ward-start-wrong-patient.png"), full_page=True)


def test_another_bag_in_hand_at_the_start_is_a_full_stop_screen(page, live_server):
    """Two bags on the ward: the start pressed on one bag's confirmed check while the other bag is scanned (the
    one in hand) is refused, naming both bags."""
    ward, other = _prepared(live_server, 2)
    sign_in(page, live_server, "nurse")
    page.goto(f"{live_server.url}/ward")
    _scan(page, ward.wristband)
    _scan(page, ward.token)
    _confirm_as_nurse2(page)
    page.get_by_label(RESCAN).fill(ward.wristband)
    page.get_by_role("button", name="Start infusion").click()  # the bag not scanned: its field says what to do
    expect(page.get_by_label(RESCAN_BAG)).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#start-bag-error")).to_contain_text("Scan the label of the bag in your hand")
    page.get_by_label(RESCAN).fill(ward.wristband)
    page.get_by_label(RESCAN_BAG).fill(other.token)
    page.get_by_role("button", name="Start infusion").click()
    expect(page.get_by_role("heading", name="STOP")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("WRONG BAG: the bag in your hand is")
    expect(page.get_by_role("button", name="Start infusion")).to_have_count(0)


def test_one_tap_receive_and_thaw_after_a_scan(page, live_server):
    session = live_server.app.extensions["mscbatch.db"].new_session()
    try:
        ward = prescribed_bag(session, state="dispatched")
    finally:
        session.close()
    sign_in(page, live_server, "nurse")
    page.goto(f"{live_server.url}/ward")
    _scan(page, ward.token)  # the bag alone: no check runs, the bag field is filled
    expect(page.locator("#bag")).to_have_value(ward.token)
    page.get_by_role("button", name="Thaw", exact=True).click()
    expect(page.get_by_role("alert").first).to_contain_text("receive it first")
    _scan(page, ward.token)
    page.get_by_label("Where (ward, room)").fill("Ward 3, bed 12")
    page.get_by_role("button", name="Receive on the ward").click()
    expect(page.get_by_role("status").filter(has_text="received on the ward")).to_be_visible()
    _scan(page, ward.token)
    page.get_by_role("button", name="Thaw", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="thawed: give it within 60 minutes")).to_be_visible()


def _label_png(live_server: Any, bag_id: int) -> Any:
    """The bag's label as the printer gets it (labelling service + ReportLab renderer), rasterised."""
    import pypdfium2

    from mscbatch.labelling.services import BAG_LAYOUT, label_data
    from mscbatch.labels.layout import load_layout
    from mscbatch.labels.render import render_labels
    from mscbatch.lots.models import Bag, Lot

    session = live_server.app.extensions["mscbatch.db"].new_session()
    try:
        bag = session.get(Bag, bag_id)
        lot = session.get(Lot, bag.lot_id)
        data = label_data(session, bag, lot, base_url=live_server.url, key=live_server.app.config["LABEL_KEY"])
        pdf = render_labels(load_layout(BAG_LAYOUT), [data])
    finally:
        session.close()
    document = pypdfium2.PdfDocument(io.BytesIO(pdf))
    image = document[0].render(scale=300 / 72).to_pil().convert("RGB")
    document.close()
    return image, data.token_url


def _write_y4m(image: Any, path: Path, width: int = 640, height: int = 480, frames: int = 10) -> None:
    """A YUV4MPEG2 video (I420) showing the label, scaled into a white 640 x 480 frame."""
    from PIL import Image

    frame = Image.new("RGB", (width, height), "white")
    label = image.copy()
    label.thumbnail((height - 20, height - 20), Image.LANCZOS)
    frame.paste(label, ((width - label.width) // 2, (height - label.height) // 2))
    y, cb, cr = frame.convert("YCbCr").split()
    half = (width // 2, height // 2)
    planes = y.tobytes() + cb.resize(half, Image.BILINEAR).tobytes() + cr.resize(half, Image.BILINEAR).tobytes()
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode("ascii"))
        for _ in range(frames):
            out.write(b"FRAME\n" + planes)
    frame.save(path.with_suffix(".png"))


def test_the_camera_decodes_the_label_qr_and_runs_the_check(browser, live_server, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("no Chromium")
    (ward,) = _prepared(live_server)
    image, token_url = _label_png(live_server, ward.bag_id)
    video = tmp_path / "label.y4m"
    _write_y4m(image, video)
    camera = browser.browser_type.launch(executable_path=str(CHROMIUM), headless=True, args=[
        *CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}"])
    try:
        context = camera.new_context(viewport=PHONE, locale="en-GB", timezone_id="Europe/London")
        context.set_default_timeout(20_000)
        page = context.new_page()
        sign_in(page, live_server, "nurse")
        page.goto(f"{live_server.url}/ward")
        _scan(page, ward.wristband)  # the wristband by the scanner, the bag by the camera
        page.get_by_role("button", name="Scan with the camera").click()
        expect(page.get_by_role("heading", name="MATCHES")).to_be_visible()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "ward-camera-matches.png"), full_page=True)
        context.close()
    finally:
        camera.close()
    from mscbatch.custody.models import TwoPersonCheck

    session = live_server.app.extensions["mscbatch.db"].new_session()
    try:
        check = session.scalar(select(TwoPersonCheck).order_by(TwoPersonCheck.id.desc()))
        assert check.bag_scan == token_url and check.result == "matches"  # what the camera read: the QR URL
    finally:
        session.close()


def test_a_barcode_scanners_code_128_read_is_taken_as_the_bag(page, live_server):
    """The label's Code 128 read by a wedge scanner ("=" + DIN + "00") fills the bag field and the check runs: the
    scan field took it for a wristband and overwrote the one scanned before (review 4)."""
    from mscbatch.lots.models import Bag

    (ward,) = _prepared(live_server, 1)
    session = live_server.app.extensions["mscbatch.db"].new_session()
    din = session.get(Bag, ward.bag_id).din
    session.close()
    sign_in(page, live_server, "nurse")
    page.goto(f"{live_server.url}/ward")
    _scan(page, ward.wristband)
    expect(page.locator("#scan-status")).to_contain_text("Wristband scanned")
    _scan(page, f"={din}00")
    expect(page.get_by_role("heading", name="MATCHES")).to_be_visible()
