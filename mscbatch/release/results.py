"""Entering, correcting and attaching release-test results (issue 5 point 2; DOMAIN.md sections 5 and 9).

Only a technician (QC) enters results; QA releases (segregation of duties). A value is checked against its
test's unit by the core (104 %, a negative count or a wrong unit are refused with the test named, nothing
written). A failing blocking result opens an OOS investigation in the same transaction (oos.open_oos). A
correction needs a reason (audit hook), keeps the old value in the audit trail and marks the value as changed
after first entry (EU GMP Annex 11 8.2). Each writer locks the lot row first (lots.services.lock_lot, as the
release does) and judges the lot's status after the lock: a result entered while QA signs the release is either
seen by the signature or refused on the released lot, never added behind it. A number the method only bounds is
entered as the lab reports it, "< 0.05" (below the detection limit), kept as typed and judged honestly
(core.release_spec.Censored): the technician never types a number that is not the raw data. "> X" only where a lower
limit alone applies (_refuse_above_range).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.audit.context import use_case
from mscbatch.core.numbers import is_plain_number
from mscbatch.core.release_spec import (
    CENSORED_SIGNS,
    MILLION_CELLS,
    UNITS,
    Censored,
    ReleaseSpec,
    ReleaseTest,
    ResultValueError,
    judge_value,
    parse_result_value,
)
from mscbatch.database import utcnow
from mscbatch.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from mscbatch.lots.models import Lot
from mscbatch.lots.services import lock_lot
from mscbatch.release.models import OOS_OPEN, OosInvestigation, ReleaseResult, ResultAttachment
from mscbatch.release.oos import open_oos, pending_at_conditional_release
from mscbatch.release.queries import ENDOTOXIN_UNIT
from mscbatch.release.specs import FLOW_PANEL, spec_of_lot, unreadable
from mscbatch.release.texts import too_long
from mscbatch.site import site_config, site_today

ENTRY_ROLE = "technician"
MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024
VALUE_MAX_CHARS = 60  # ReleaseResult.value and first_value
ANALYST_MAX_CHARS = 120  # the ReleaseResult columns: longer is refused naming the field, never cut
METHOD_MAX_CHARS = 200
INSTRUMENT_MAX_CHARS = 120
REAGENT_LOT_MAX_CHARS = 120
#: extension -> (content type, how the bytes must start; None = UTF-8 text)
ATTACHMENT_TYPES: dict[str, tuple[str, bytes | None]] = {
    "pdf": ("application/pdf", b"%PDF"), "png": ("image/png", b"\x89PNG"), "jpg": ("image/jpeg", b"\xff\xd8"),
    "jpeg": ("image/jpeg", b"\xff\xd8"), "fcs": ("application/vnd.isac.fcs", b"FCS"), "csv": ("text/csv", None),
    "txt": ("text/plain", None),
}


@dataclass(frozen=True)
class ResultEntry:
    """One result as typed: the value and its unit as text, with how, by whom and when it was measured."""

    test_id: str
    value: str
    unit: str
    analyst: str
    tested_on: date | None
    method: str = ""
    instrument: str = ""
    reagent_lot: str = ""


def _require_technician(actor: Any) -> None:
    if actor is None or not actor.has_role(ENTRY_ROLE):
        raise PermissionDenied("Only QC (a technician) enters release-test results.")


def accepts_results(session: Session, lot: Lot, test_id: str) -> bool:
    """Whether a result of this test may still be entered, corrected or given a file on the lot: before release,
    and after a conditional release for the tests it named pending (the review page offers "correct" only then),
    also once the conditionally released lot was recalled before they came in (oos.pending_at_conditional_release):
    a late positive sterility is documented, and its late OOS lists the patients to notify."""
    if lot.status in ("in_process", "quarantine"):
        return True
    if lot.status in ("conditional_release", "recalled"):
        return test_id in pending_at_conditional_release(session, lot)
    return False


def _check_lot_accepts(session: Session, lot: Lot, test: ReleaseTest) -> None:
    if accepts_results(session, lot, test.id):
        return
    if lot.status == "conditional_release":
        raise Conflict(f"Lot {lot.lot_number} is conditionally released: only the pending "
                       "test(s) named at conditional release can still be entered or corrected.", field="test_id")
    pending = pending_at_conditional_release(session, lot)
    if pending:  # recalled from its conditional release: the tests it still waits for are entered
        spec = spec_of_lot(session, lot)
        names = ", ".join(_name_of(spec, t) for t in pending)
        raise Conflict(f"Lot {lot.lot_number} is recalled: only the test(s) named pending at its conditional release "
                       f"({names}) can still be entered or corrected; {test.name} cannot.", field="test_id")
    raise Conflict(f"Lot {lot.lot_number} is {lot.status.replace('_', ' ')}: results can no longer be entered or "
                   "corrected.")


def _name_of(spec: ReleaseSpec, test_id: str) -> str:
    try:
        return spec.test(test_id).name
    except KeyError:
        return test_id


#: what an empty value is asked for, by the test's unit (core.release_spec.UNITS)
_VALUE_WANTED = {"percent": "a number, in %", "cells": f"a number of cells, in millions ({MILLION_CELLS})",
                 "EU/mL": "a number, in EU/mL"}


def _empty_value(test: ReleaseTest) -> str:
    """The refusal of an empty value, naming the test and what it is reported as ("CD73: give a value (a number, in
    %)"), not "'' is not a number"."""
    wanted = _VALUE_WANTED.get(test.unit)
    if wanted is None:  # a result word
        wanted = ("the result as reported" if test.kind == "informative" else
                  f"{test.pass_result} or {test.fail_result}")
    return f"{test.name}: give a value ({wanted}). Nothing was recorded."


def _refuse_unplain(test: ReleaseTest, raw: str, field: str) -> None:
    """A number written other than plainly ("1e2", "1_0", full-width or Arabic-Indic digits) is refused as the lot
    record, the patient and the ward refuse it (the one rule: core.numbers.is_plain_number, as api.plain_numbers):
    Decimal() would read "1e2" % as 100 %. The core's own words stay for what it explains better: a comma, or "<="
    for a censored value."""
    if not UNITS[test.unit].numeric:
        return
    text = raw.strip()
    number = text[1:].strip() if text.startswith(CENSORED_SIGNS) else text
    if not number or number.startswith("=") or "," in number or is_plain_number(number, signed=True):
        return
    raise ValidationFailed(f"{test.name}: {text[:40]!r} is not a plain number; write it with digits 0-9 and at most "
                           "one decimal point, such as 92.5 (no exponent such as 1e2, no underscore, no other "
                           "characters). Nothing was recorded.", field=field)


def _parse(test: ReleaseTest, raw: str, unit: str, field: str) -> str:
    if not (raw or "").strip():
        raise ValidationFailed(_empty_value(test), field=field)
    _refuse_unplain(test, raw, field)
    try:
        value = parse_result_value(test, (raw or "").strip(), unit or "")
    except ResultValueError as error:
        target = field if error.field == "value" else ("unit" if field == "value" else field)
        raise ValidationFailed(str(error), field=target) from None
    if isinstance(value, Censored) and value.relation == ">":
        _refuse_above_range(test, value, field)
    # "1e80" cells or 70 decimals: refused naming the field, not a database error; the size is checked before the
    # value is written out ("1e999999999" EU/mL would be a billion digits). A censored value ("< 0.05") is kept as
    # typed (ALCOA+ original), its limit held to the same size (the dose multiplies by it)
    number = value.bound if isinstance(value, Censored) else value
    too_many = isinstance(number, Decimal) and (abs(number.adjusted()) >= VALUE_MAX_CHARS
                                                or -int(number.as_tuple().exponent) >= VALUE_MAX_CHARS)
    text = "" if too_many else (value.text if isinstance(value, Censored) else
                                f"{value:f}" if isinstance(value, Decimal) else value)
    if too_many or len(text) > VALUE_MAX_CHARS:
        raise ValidationFailed(f"{test.name}: the value has more digits than a result can keep (at most "
                               f"{VALUE_MAX_CHARS} characters once written out); enter it as reported.", field=field)
    return text


def _refuse_above_range(test: ReleaseTest, value: Censored, field: str) -> None:
    """"> X" is entered only where it can mean something: against a lower limit alone ("> 90 %" potency, above the
    top of the assay) it passes when X reaches the limit. Against an upper limit it shows nothing, and an endotoxin
    result needs an upper bound for the dose's K/M check: above the standard curve the sample is diluted and tested
    again (Ph. Eur. 2.6.14), and the measured value is the result."""
    if test.max is None and test.unit != ENDOTOXIN_UNIT:
        return
    why = (f"it cannot show the upper limit ({test.limit_text}) is met" if test.max is not None else
           "the dose's endotoxin check (K/M) needs the most it can be")
    again = ("Dilute the sample and test it again" if test.unit == ENDOTOXIN_UNIT else
             "Test it again with a method whose range covers it")
    raise ValidationFailed(f"{test.name}: {value.text!r} is above the range of the test, and {why}. {again}, then "
                           "enter the measured value (attach the first run to it); nothing was recorded.", field=field)


def _common(entry: ResultEntry, test: ReleaseTest, lot: Lot) -> dict[str, Any]:
    analyst = (entry.analyst or "").strip()
    if not analyst:
        raise ValidationFailed("Analyst: give the name of the person who performed the test.", field="analyst")
    if len(analyst) > ANALYST_MAX_CHARS:  # said as it is: a name was given, too long to keep (never cut)
        raise ValidationFailed(f"Analyst: at most {ANALYST_MAX_CHARS} characters ({len(analyst)} given); shorten it, "
                               "nothing was recorded.", field="analyst")
    if entry.tested_on is None:
        raise ValidationFailed("Test date: give the date the test was performed.", field="tested_on")
    if entry.tested_on > site_today():
        raise ValidationFailed("Test date: a test cannot be dated in the future.", field="tested_on")
    collected = lot.collection_at.astimezone(site_config().tz).date()
    if entry.tested_on < collected:  # a result of another lot, or a mistyped year: never one of this lot's tests
        raise ValidationFailed(f"Test date: {entry.tested_on.isoformat()} is before lot {lot.lot_number} was collected "
                               f"({collected.isoformat()}); a test of this lot cannot be dated before it.",
                               field="tested_on")
    method = (entry.method or "").strip() or test.method
    instrument, reagent_lot = (entry.instrument or "").strip(), (entry.reagent_lot or "").strip()
    # refused, never cut: the record keeps the text QC sent or nothing (ALCOA: accurate, original)
    for field, label, text, limit in (("method", "Method", method, METHOD_MAX_CHARS),
                                      ("instrument", "Instrument", instrument, INSTRUMENT_MAX_CHARS),
                                      ("reagent_lot", "Reagent lot", reagent_lot, REAGENT_LOT_MAX_CHARS)):
        if len(text) > limit:
            raise ValidationFailed(f"{label}: at most {limit} characters ({len(text)} given); shorten it, nothing "
                                   "was recorded.", field=field)
    return dict(method=method, analyst=analyst, tested_on=entry.tested_on, instrument=instrument,
                reagent_lot=reagent_lot)


def _test_of(spec: ReleaseSpec, test_id: str) -> ReleaseTest:
    try:
        return spec.test(test_id)
    except KeyError:
        raise ValidationFailed(f"Choose a test of specification {spec.id} v{spec.version}.", field="test_id") from None


def uninvestigated_failures(session: Session, lot: Lot, spec: ReleaseSpec, test: ReleaseTest) -> list[ReleaseResult]:
    """The lot's valid results of a blocking test that fail under `spec` (the version the lot is judged against) and
    have no OOS investigation: results that passed the version they were entered under, judged against a later
    version in force (a raised limit, a test made blocking). Each is a fail like any other (DOMAIN.md section 5: an
    investigation record is required), and it stands until an investigation invalidates it (core.verdicts)."""
    if not test.blocking:
        return []
    investigated = select(OosInvestigation.result_id).where(OosInvestigation.lot_id == lot.id)
    rows = session.scalars(select(ReleaseResult).where(
        ReleaseResult.lot_id == lot.id, ReleaseResult.test_id == test.id, ReleaseResult.invalidated_at.is_(None),
        ReleaseResult.id.not_in(investigated)).order_by(ReleaseResult.id))
    try:
        return [r for r in rows if judge_value(test, parse_result_value(test, r.value, r.unit)).meets is False]
    except ResultValueError as error:  # the file in force edited in place: said in words, as on the pages
        raise unreadable(lot, spec, error) from None


def _open_missing_oos(session: Session, lot: Lot, spec: ReleaseSpec, test: ReleaseTest) -> None:
    """Open the investigation of each earlier result of this test that fails only under the version in force,
    before a new result of the test is added: without it the retest could never count (a failing result stands
    until its investigation invalidates it) and the lot stayed failing with nothing for QA to close."""
    for earlier in uninvestigated_failures(session, lot, spec, test):
        comparison = judge_value(test, parse_result_value(test, earlier.value, earlier.unit)).comparison
        open_oos(session, lot, earlier, f"{test.name} failed under specification {spec.id} version {spec.version} "
                 f"({comparison}); the result was entered under version {earlier.spec_version}, which opened no OOS for it")


def _add(session: Session, actor: Any, lot: Lot, spec: ReleaseSpec, test: ReleaseTest, value: str, unit: str,
         common: dict[str, Any]) -> ReleaseResult:
    _open_missing_oos(session, lot, spec, test)
    result = ReleaseResult(lot_id=lot.id, test_id=test.id, spec_id=spec.id, spec_version=spec.version,
                           spec_sha256=spec.sha256, value=value, first_value=value, unit=test.unit,
                           entered_by_id=actor.id, entered_at=utcnow(), **common)
    session.add(result)
    session.flush()
    judgement = judge_value(test, parse_result_value(test, value, test.unit))  # `value` is kept in the test's unit
    if test.blocking and judgement.meets is False:
        open_oos(session, lot, result, f"{test.name} failed ({judgement.comparison})")
    return result


def _locked_result(session: Session, result_id: int) -> tuple[ReleaseResult, Lot]:
    """The result and its lot, the lot row locked first (as release_lot locks it) and both read afresh after the
    lock: a correction or an attachment made while QA signs lands before the signature, or is refused after."""
    lot_id = session.scalar(select(ReleaseResult.lot_id).where(ReleaseResult.id == result_id))
    if lot_id is None:
        raise NotFound(f"No release result with id {result_id}.")
    lot = lock_lot(session, lot_id)
    result = session.get(ReleaseResult, result_id, populate_existing=True)
    assert result is not None  # results are never deleted
    return result, lot


def enter_result(session: Session, actor: Any, lot_id: int, entry: ResultEntry,
                 attachment: Upload | None = None) -> ReleaseResult:
    """QC enters one result; a failing blocking value opens an OOS in the same transaction. `attachment`: a file
    kept with it in the same transaction (checked first: a refused file writes nothing, the result neither)."""
    _require_technician(actor)
    checked = _checked(attachment)
    with use_case(session, actor):
        lot = lock_lot(session, lot_id)  # a release signing now waits for this result, or this sees it released
        spec = spec_of_lot(session, lot)
        test = _test_of(spec, entry.test_id)
        _check_lot_accepts(session, lot, test)
        value = _parse(test, entry.value, entry.unit, "value")
        result = _add(session, actor, lot, spec, test, value, entry.unit, _common(entry, test, lot))
        if checked is not None:
            _add_attachment(session, actor, result, checked)
    return result


def enter_flow_panel(session: Session, actor: Any, lot_id: int, values: dict[str, str], common: ResultEntry,
                     unit: str = "%", attachment: Upload | None = None) -> list[ReleaseResult]:
    """The flow-cytometry panel at once (CD73/CD90/CD105/CD45/CD34/CD14/CD79a/HLA-DR): all or nothing; a bad
    value is refused naming its marker (the form field). `attachment`: kept with the panel's first result in the
    same transaction (a refused file writes nothing)."""
    _require_technician(actor)
    checked = _checked(attachment)
    with use_case(session, actor):
        lot = lock_lot(session, lot_id)
        spec = spec_of_lot(session, lot)
        panel = []
        for field, test_id, _label in FLOW_PANEL:
            test = _test_of(spec, test_id)
            _check_lot_accepts(session, lot, test)
            panel.append((field, test))
        # every empty marker named at once, each beside its own field: not one per try
        missing = [(field, test) for field, test in panel if not (values.get(field) or "").strip()]
        if missing:
            names = ", ".join(test.name for _field, test in missing)
            raise ValidationFailed(f"{names}: give the percentage of positive cells.",
                                   errors={field: [f"{test.name}: give the percentage of positive cells."]
                                           for field, test in missing})
        parsed = [(test, _parse(test, values[field], unit, field)) for field, test in panel]
        shared = _common(common, parsed[0][0], lot)
        made = [_add(session, actor, lot, spec, test, value, unit, shared) for test, value in parsed]
        if checked is not None:
            _add_attachment(session, actor, made[0], checked)
    return made


def _refuse_under_investigation(session: Session, result: ReleaseResult) -> None:
    """A result whose OOS investigation is open is the investigation's evidence: changing it outside the
    investigation would be testing (or typing) into compliance (FDA OOS guidance 2006; EU GMP ch. 6). The way out
    is a retest, and QA's signed conclusion. Read after the lot lock, so an OOS opened a moment ago counts."""
    oos_id = session.scalar(select(OosInvestigation.id).where(OosInvestigation.result_id == result.id,
                                                              OosInvestigation.status == OOS_OPEN).limit(1))
    if oos_id is not None:
        raise Conflict(f"This result is under OOS investigation {oos_id}: it cannot be corrected. Enter a retest, "
                       "and QA closes the investigation.", field="value")
    # the retest QA's signed conclusion rests on is locked with it (21 CFR 11.70): a new value would change the
    # evidence under a signature that never saw it
    closed_id = session.scalar(select(OosInvestigation.id).where(OosInvestigation.retest_result_id == result.id)
                               .limit(1))
    if closed_id is not None:
        raise Conflict(f"This result is the retest OOS investigation {closed_id} was closed with, under QA's "
                       "signature: it cannot be corrected. If it is wrong, tell QA: enter a new result of the test.",
                       field="value")


def correct_result(session: Session, actor: Any, result_id: int, value: str, unit: str, reason: str) -> ReleaseResult:
    """Change an entered value with a reason: the old value stays in the audit trail, the result is marked as
    changed after first entry, and a correction to a failing value opens its OOS (a fail is never hidden). A
    result under an open OOS investigation is not corrected: it is settled by a retest and QA's conclusion; nor is
    the retest an investigation was closed with."""
    _require_technician(actor)
    if not (reason or "").strip():
        raise ValidationFailed("Give the reason for the correction: it goes into the audit trail.", field="reason")
    # refused, never cut: the audit trail keeps the reason as written
    too_long(reason.strip(), "Reason for the correction", "reason", "Nothing was recorded.")
    with use_case(session, actor, reason):
        result, lot = _locked_result(session, result_id)
        spec = spec_of_lot(session, lot)
        if result.test_id not in {t.id for t in spec.tests}:  # a later version reports it under another test id
            raise Conflict(f"Test {result.test_id!r} is no longer in specification {spec.id} version {spec.version}, "
                           "the version the lot is judged against: its results no longer count and are not "
                           "corrected. Enter the result of the test as the specification now names it.",
                           field="value")
        test = _test_of(spec, result.test_id)
        _check_lot_accepts(session, lot, test)
        if result.invalidated_at is not None:
            raise Conflict("This result was invalidated by an OOS investigation; enter a retest instead.")
        _refuse_under_investigation(session, result)
        if result in uninvestigated_failures(session, lot, spec, test):
            # it failed only under the version in force, so no OOS was opened when it was entered: still a fail,
            # settled as any other by a retest and QA's investigation, not typed over
            raise Conflict(f"This result fails {test.name} under specification {spec.id} version {spec.version} "
                           f"({test.name} {test.limit_text}), the version the lot is judged against: it cannot be "
                           "corrected. Enter a retest: that opens its OOS investigation, which QA closes.",
                           field="value")
        new_value = _parse(test, value, unit, "value")
        if new_value == result.value:
            raise ValidationFailed("The corrected value is the same as the recorded one.", field="value")
        result.value = new_value
        result.corrected_count += 1
        result.corrected_by_id = actor.id
        result.corrected_at = utcnow()
        session.flush()
        judgement = judge_value(test, parse_result_value(test, new_value, test.unit))
        if test.blocking and judgement.meets is False:
            open_oos(session, lot, result, f"{test.name} failed after correction ({judgement.comparison})")
    return result


@dataclass(frozen=True)
class Upload:
    """A file sent with a result (the cytometer export...): as received, or as kept once checked
    (check_attachment: the name without its path, the content type its bytes prove)."""

    filename: str
    content_type: str
    content: bytes


def check_attachment(filename: str, content_type: str, content: bytes) -> Upload:
    """The file's checks, with nothing written: size-limited, type checked against its bytes. Refused with
    ValidationFailed(field="attachment")."""
    name = (filename or "").strip().replace("\\", "/").rsplit("/", 1)[-1][:200]
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if extension not in ATTACHMENT_TYPES:
        raise ValidationFailed("Attachment: accepted files are " + ", ".join(sorted(ATTACHMENT_TYPES)) + ".",
                               field="attachment")
    if not content:
        raise ValidationFailed("Attachment: the file is empty.", field="attachment")
    if len(content) > MAX_ATTACHMENT_BYTES:
        raise ValidationFailed(f"Attachment: the file is larger than {MAX_ATTACHMENT_BYTES // (1024 * 1024)} MB.",
                               field="attachment")
    expected_type, magic = ATTACHMENT_TYPES[extension]
    declared = (content_type or "").split(";")[0].strip().lower()
    if declared not in (expected_type, "application/octet-stream", ""):
        raise ValidationFailed(f"Attachment: a .{extension} file should be {expected_type}, not {declared}.",
                               field="attachment")
    if magic is not None and not content.startswith(magic):
        raise ValidationFailed(f"Attachment: the file content is not a {extension.upper()} file.", field="attachment")
    if magic is None:
        try:
            content.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationFailed("Attachment: a text file must be UTF-8 text.", field="attachment") from None
    return Upload(filename=name, content_type=expected_type, content=content)


def _checked(upload: Upload | None) -> Upload | None:
    return None if upload is None else check_attachment(upload.filename, upload.content_type, upload.content)


def _add_attachment(session: Session, actor: Any, result: ReleaseResult, checked: Upload) -> ResultAttachment:
    attachment = ResultAttachment(result_id=result.id, filename=checked.filename, content_type=checked.content_type,
                                  size_bytes=len(checked.content), sha256=hashlib.sha256(checked.content).hexdigest(),
                                  content=checked.content, uploaded_by_id=actor.id)
    session.add(attachment)
    return attachment


def attach_file(session: Session, actor: Any, result_id: int, filename: str, content_type: str,
                content: bytes) -> ResultAttachment:
    """Keep a file with a result (the cytometer export...): size-limited, type checked against its bytes."""
    _require_technician(actor)
    checked = check_attachment(filename, content_type, content)
    with use_case(session, actor, "attachment added to a release result"):
        result, lot = _locked_result(session, result_id)
        # a released record is signed: its evidence can no longer grow (a pending conditional test still can)
        _check_lot_accepts(session, lot, spec_of_lot(session, lot).test(result.test_id))
        attachment = _add_attachment(session, actor, result, checked)
    return attachment
