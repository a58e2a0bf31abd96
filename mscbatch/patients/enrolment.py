"""Enrolment: the check of a patient against the protocol's measurable criteria, and enrolment itself as a
clinician's e-signature on an eligible check (DOMAIN.md section 6; 21 CFR 11.50).

A check is recorded with the values entered, the core's verdict per criterion (met / not met / missing) and
the protocol id, version and SHA-256 it was judged with. Only an "eligible" check can be signed; signing it
locks it and moves the patient to "enrolled". A check is never edited: a new check is recorded instead.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mscbatch.audit.context import use_case
from mscbatch.core.enrolment import ELIGIBLE, EnrolmentDecision, Value, evaluate
from mscbatch.core.protocols import Criterion, Protocol
from mscbatch.database import utcnow
from mscbatch.errors import Conflict, NotFound, ValidationFailed
from mscbatch.patients.models import ENROLLED, EnrolmentCheck
from mscbatch.patients.queries import get_patient, lock_patient, protocol_of
from mscbatch.patients.services import require_clinician
from mscbatch.signatures.services import sign
from mscbatch.site import site_today

YES, NO, NEVER = ("yes", "true", True), ("no", "false", False), "never"


def parse_values(protocol: Protocol, raw: Mapping[str, Any]) -> dict[str, Value]:
    """Form or JSON input -> the core's values: Decimal for numbers, bool for yes/no, False for "never"
    (months-since criteria that accept it), None for not measured. Every problem names its field."""
    values: dict[str, Value] = {}
    unknown = sorted(set(raw) - set(protocol.parameters()))
    if unknown:
        raise ValidationFailed(f"Unknown criteria for {protocol.short_name}: {', '.join(unknown)}.", field=unknown[0])
    for criterion in protocol.criteria:
        value = raw.get(criterion.parameter)
        text = value.strip().lower() if isinstance(value, str) else value
        if text in (None, ""):
            values[criterion.parameter] = None
        elif criterion.is_boolean:
            if text not in YES + NO:
                raise ValidationFailed(f"{criterion.text}: answer yes or no.", field=criterion.parameter)
            values[criterion.parameter] = text in YES
        elif text == NEVER and criterion.accepts_never:
            values[criterion.parameter] = False
        else:
            try:
                number = Decimal(str(text).replace(",", "."))
            except InvalidOperation:
                number = Decimal("NaN")
            if isinstance(text, bool) or not number.is_finite() or number < 0:
                hint = " (or 'never')" if criterion.accepts_never else ""
                raise ValidationFailed(f"{criterion.text}: give a number in {criterion.unit}{hint}.",
                                       field=criterion.parameter)
            _refuse_implausible(criterion, number)
            values[criterion.parameter] = number
    return values


def form_values(protocol: Protocol, stored: Mapping[str, Any]) -> dict[str, str]:
    """A check's stored values (values_json) -> the text the enrolment form shows, the inverse of parse_values:
    parse_values(protocol, form_values(protocol, v)) == v. False is "never" for a months-since criterion and
    "no" for a yes/no one; None is empty (not measured); numbers keep the text the core judged."""
    shown: dict[str, str] = {}
    for criterion in protocol.criteria:
        value = stored.get(criterion.parameter)
        if value is None:
            shown[criterion.parameter] = ""
        elif criterion.is_boolean:
            text = value.strip().lower() if isinstance(value, str) else value
            shown[criterion.parameter] = "yes" if text in YES else "no" if text in NO else ""
        elif value is False:
            shown[criterion.parameter] = NEVER
        else:
            shown[criterion.parameter] = str(value)
    return shown


def _refuse_implausible(criterion: Criterion, number: Decimal) -> None:
    """A value outside what the unit allows is most often a unit mix-up; it must not read as a normal value."""
    if criterion.plausible is None:
        return
    low, high = criterion.plausible
    if not low <= number <= high:
        raise ValidationFailed(
            f"{criterion.text}: {number} {criterion.unit} is not a possible value in {criterion.unit} "
            f"(expected {low} to {high}). Check the unit of the lab report.", field=criterion.parameter)


def _value_json(value: Value) -> Any:
    return str(value) if isinstance(value, Decimal) else value


def results_json(decision: EnrolmentDecision, protocol: Protocol) -> str:
    units = {c.id: c.unit for c in protocol.criteria}
    return json.dumps([{"criterion_id": r.criterion_id, "kind": r.kind, "text": r.text, "source": r.source,
                        "unit": units.get(r.criterion_id, "years"),
                        "status": r.status, "value": _value_json(r.value), "required": r.required,
                        "blocks": r.blocks_enrolment} for r in decision.results])


def check_enrolment(session: Session, actor: Any, patient_id: int, raw: Mapping[str, Any],
                    on_date: date | None = None) -> EnrolmentCheck:
    """Record a check: the values entered and the verdict per criterion."""
    require_clinician(actor, "checks enrolment criteria")
    on_date = on_date or site_today()
    if on_date > site_today():
        raise ValidationFailed("The check date cannot be in the future.", field="on_date")
    with use_case(session, actor):
        patient = get_patient(session, patient_id)
        protocol = protocol_of(patient)
        if patient.status == "enrolled":
            raise Conflict(f"Patient {patient.code} is already enrolled.")
        if patient.status == "withdrawn":
            raise Conflict(f"Patient {patient.code} has been withdrawn from the trial: they cannot be enrolled again.")
        if on_date < patient.date_of_birth:  # the core's age judgement raised ValueError on it: a 500 (tests/fuzz)
            raise ValidationFailed("The check date cannot be before the patient's date of birth.", field="on_date")
        values = parse_values(protocol, raw)
        decision = evaluate(protocol, values, patient.date_of_birth, on_date)
        check = EnrolmentCheck(
            patient_id=patient.id, on_date=on_date, status=decision.status,
            values_json=json.dumps({k: _value_json(v) for k, v in values.items()}, sort_keys=True),
            results_json=results_json(decision, protocol), protocol_id=protocol.id, protocol_version=protocol.version,
            protocol_sha256=protocol.sha256, checked_by_id=actor.id, checked_at=utcnow())
        session.add(check)
    return check


def protocol_changed_words(check: EnrolmentCheck, protocol: Protocol, *, refused: bool = False) -> str | None:
    """Why a check judged with another protocol file than the one in force is not signed, or None when it was judged
    with that one. The enrolment page shows these words in place of the signature form; `refused`: the words of a
    signature sent anyway (409). One place for both, so the page and the refusal name the same versions."""
    if check.protocol_sha256 == protocol.sha256:
        return None
    changed = (f"is now version {protocol.version}" if check.protocol_version != protocol.version
               else f"is still version {protocol.version} but its file changed since")
    recorded = (f"This check was recorded under protocol {protocol.short_name} version {check.protocol_version}; "
                f"the protocol {changed}")
    if refused:
        return f"{recorded}: check the criteria again, then sign the new check. Nothing was signed."
    return f"{recorded}. Press “Check the criteria” again (above), then sign the new check."


def enrol(session: Session, signer: Any, check_id: int, password: str,
          patient_id: int | None = None) -> EnrolmentCheck:
    """Sign an eligible check: the patient is enrolled and the check locked. The check must be the patient's
    latest (a later check may have found an exclusion), dated today (age and values are judged on the day of
    enrolment, so an old or back-dated check cannot enrol) and judged with the protocol version in force now.
    `patient_id`: the patient whose page the clinician signs on; a check of another patient is not signed there
    (the signer must be signing what they see)."""
    require_clinician(signer, "enrols patients")
    with use_case(session, signer, ENROLLED):
        check = session.get(EnrolmentCheck, check_id)
        if check is None or (patient_id is not None and check.patient_id != patient_id):
            raise NotFound(f"No enrolment check with id {check_id} for this patient.")
        # the patient's row locked and read afresh, as the withdrawal takes it: an enrolment and a withdrawal (or a
        # double submit) signed at the same moment run one after the other, and the second sees the first
        patient = lock_patient(session, check.patient_id)
        session.refresh(check)
        if check.locked_at is not None:
            raise Conflict(f"This check of patient {patient.code} is signed already.")
        protocol = protocol_of(patient)
        if patient.status == "enrolled":
            raise Conflict(f"Patient {patient.code} is already enrolled.")
        if patient.status == "withdrawn":
            raise Conflict(f"Patient {patient.code} has been withdrawn from the trial: they cannot be enrolled again.")
        latest = session.scalar(select(func.max(EnrolmentCheck.id)).where(EnrolmentCheck.patient_id == patient.id))
        if check.id != latest:
            newer = session.get(EnrolmentCheck, latest)
            raise Conflict(f"A newer check of this patient was recorded after this one (it says "
                           f"{newer.status.replace('_', ' ') if newer else 'something else'}): only the latest check can "
                           "be signed.")
        if check.status != ELIGIBLE:
            raise Conflict(f"This check says {check.status.replace('_', ' ')}: the patient cannot be enrolled on it.")
        if check.on_date != site_today():
            raise Conflict(f"This check is dated {check.on_date}: enrolment is signed on a check of the same day "
                           f"({site_today()}). Record a new check today.")
        changed = protocol_changed_words(check, protocol, refused=True)
        if changed:
            raise Conflict(changed)
        sign(session, signer, password, check, ENROLLED, required_role="clinician")
        patient.status = "enrolled"
    return check
