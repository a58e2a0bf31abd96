"""Registering trial patients and recording their weights: one function per use case, each one audited
transaction (DOMAIN.md sections 1 and 6).

- only a clinician registers trial patients and records weights;
- the trial patient code is pseudonymised: generated per protocol (SLE-UC-001...) unless the trial's own
  inclusion number is given; a familial donor (SSc-BM) names its intended recipient by this code, which is
  how the patient is linked to the donor whose bags only this patient may receive (DOMAIN.md section 2).
  A generated code never takes a code a donor names (that code belongs to the donor's relative, who may not be
  registered yet), so a familial donor is linked only to a patient whose code the clinician typed;
- what the bag label prints of the patient (a directed product's recipient box: code, initials, date of birth)
  is checked here, at entry: letters the label fonts can print, a code that fits the box;
- a weight is a number of kg with the date it was measured (not in the future); one more than the protocol's
  weight_check_percent from ANY weight measured within weight_check_days (a weight typed in pounds; a weight walked
  up a little at a time) needs the clinician's confirmation, kept as the audit reason of its record. With no weight
  within those days it is compared with the patient's weight nearest in time, however old, by the same percent, AND
  needs the confirmation when it lies outside the protocol's plausible_weight_kg for an adult (a slipped decimal
  point; the first weight).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mscbatch.api.plain_numbers import ASCII_SPACES, is_plain_number, rule_words
from mscbatch.audit.context import use_case
from mscbatch.core.numbers import plain
from mscbatch.core.protocols import RECORDABLE_WEIGHT_KG
from mscbatch.database import reading
from mscbatch.donors.models import Donor
from mscbatch.errors import Conflict, PermissionDenied, ValidationFailed
from mscbatch.labels import field_problem, printable, recipient_words
from mscbatch.patients.models import SEX_LABELS, Patient, WeightMeasurement
from mscbatch.patients.queries import (
    age_on,
    familial_donor_of,
    get_patient,
    lock_patient,
    patient_by_wristband,
    protocol_of,
    protocols,
    weights_of,
    wristband_identity,
)
from mscbatch.site import site_today

CLINICIAN = "clinician"
CODE_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9-]{2,39}$")
#: the confirmation a weight far from a recent one, or implausible for an adult with none to compare it with, needs
#: (web form checkbox; API: weight_confirmed true)
WEIGHT_CHECKED = "I have checked this weight"
POUNDS_PER_KG = Decimal("2.20462")
ADULT_YEARS = 18  # the plausible weights are an adult's: a younger patient's age is said with them


def require_clinician(actor: Any, what: str = "registers trial patients") -> None:
    if actor is None or not actor.has_role(CLINICIAN):
        raise PermissionDenied(f"Only a clinician {what}.")


@dataclass(frozen=True)
class PatientDetails:
    protocol_id: str
    initials: str
    date_of_birth: date | None
    sex: str
    ward: str
    wristband_id: str = ""
    code: str = ""  # the trial's inclusion number, if it has one; generated otherwise
    familial_donor_code: str = ""  # SSc-BM: the donor code (D-...) of the patient's familial donor


def _clean(details: PatientDetails) -> dict[str, Any]:
    if details.protocol_id not in protocols():
        raise ValidationFailed("Choose the patient's trial protocol.", field="protocol_id")
    initials = (details.initials or "").strip().upper()
    if not initials or len(initials) > 10 or not initials.replace("-", "").replace(".", "").isalpha():
        raise ValidationFailed("Initials: letters only, at most 10 (e.g. J-P.M).", field="initials")
    unprintable = [letter for letter in initials if printable(letter)]  # labels.printable: the renderer's rule
    if unprintable:
        raise ValidationFailed(f"Initials: {initials} holds a letter the bag label cannot print "
                               f"({unprintable[0]!r}). Use letters the label can print: A-Z and the accented "
                               "letters of Western European languages (É, Ü, Ø...); write Ł as L, Ş as S.",
                               field="initials")
    if details.date_of_birth is None or not date(1900, 1, 1) <= details.date_of_birth <= site_today():
        raise ValidationFailed("Give the date of birth (a real date in the past).", field="date_of_birth")
    if details.sex not in SEX_LABELS:
        raise ValidationFailed("Sex: female or male.", field="sex")
    ward = (details.ward or "").strip()
    if not ward or len(ward) > 80:
        raise ValidationFailed("Give the ward (at most 80 characters).", field="ward")
    wristband = wristband_identity(details.wristband_id)  # one spelling whatever the case and spaces: see there
    if len(wristband) > 60:
        raise ValidationFailed("The wristband identifier has at most 60 characters.", field="wristband_id")
    # an invisible character (a zero-width space or byte-order mark pasted with the band) would make a second
    # identity of a band that reads, prints and is typed at the bed exactly as another patient's
    hidden = next((letter for letter in wristband if unicodedata.category(letter).startswith("C")), None)
    if hidden is not None:
        raise ValidationFailed(f"The wristband identifier holds an invisible character (U+{ord(hidden):04X}): type it "
                               "again, with the letters, digits and dashes printed on the band only.",
                               field="wristband_id")
    code = (details.code or "").strip().upper()
    if code and not CODE_PATTERN.match(code):
        raise ValidationFailed("Trial patient code: 3-40 capital letters, digits and dashes (e.g. SSC-BM-007).",
                               field="code")
    # the recipient box of a directed product's bag label prints the code with the initials and the birth date
    if code and field_problem("intended_recipient", recipient_words(code, initials, details.date_of_birth)):
        raise ValidationFailed(f"Trial patient code: {code} ({len(code)} characters) is too long for the recipient box "
                               "of the bag label, which prints the code with the initials and the date of birth. "
                               "Use a shorter code (the trial's inclusion number without site names, e.g. "
                               "SSC-BM-0042).", field="code")
    return dict(protocol_id=details.protocol_id, initials=initials, date_of_birth=details.date_of_birth,
                sex=details.sex, ward=ward, wristband_id=wristband, code=code)


def _next_code(session: Session, short_name: str) -> str:
    """<PROTOCOL>-<sequence>: says nothing about the person. Writers are serialised (SQLite BEGIN IMMEDIATE;
    an advisory transaction lock on PostgreSQL) so two registrations never draw the same code. A code that a
    donor names as its intended recipient is skipped: it belongs to that donor's relative (registered later, under
    that code typed), never to whoever happens to be registered next."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(727006)"))
    prefix = f"{short_name.upper()}-"
    count = session.scalar(select(func.count(Patient.id)).where(Patient.code.like(prefix + "%"))) or 0
    named = {code.strip().upper() for code in session.scalars(select(Donor.recipient_code).where(
        func.upper(Donor.recipient_code).like(prefix + "%")))}
    number = count + 1
    while (f"{prefix}{number:03d}" in named
           or session.scalar(select(Patient.id).where(Patient.code == f"{prefix}{number:03d}")) is not None):
        number += 1
    return f"{prefix}{number:03d}"


def _familial_donor(session: Session, patient: Patient, donor_code: str, *, generated: bool = False) -> Donor | None:
    code = (donor_code or "").strip().upper()
    if not code:
        return None if generated else familial_donor_of(session, patient)
    donor = session.scalar(select(Donor).where(Donor.code == code))
    if donor is None:
        raise ValidationFailed(f"No donor with code {code}.", field="familial_donor_code")
    if donor.donor_type == "familial" and generated and donor.recipient_code:
        raise Conflict(f"Donor {donor.code} is a familial donor for the patient coded {donor.recipient_code}. If this "
                       f"patient is that person, type {donor.recipient_code} as the trial patient code; a generated "
                       "code never links a familial donor.", field="familial_donor_code")
    if donor.donor_type != "familial" or (donor.recipient_code or "") != patient.code:
        raise Conflict(f"Donor {donor.code} is not a familial donor registered for {patient.code} "
                       f"(intended recipient: {donor.recipient_code or 'none'}).", field="familial_donor_code")
    return donor


def register_patient(session: Session, actor: Any, details: PatientDetails) -> Patient:
    require_clinician(actor)
    values = _clean(details)
    protocol = protocols()[values["protocol_id"]]
    typed = values.pop("code")
    try:
        with use_case(session, actor):
            code = typed or _next_code(session, protocol.short_name)
            if session.scalar(select(Patient.id).where(Patient.code == code)) is not None:
                raise Conflict(f"Trial patient code {code} is already used.", field="code")
            values["wristband_id"] = values["wristband_id"] or wristband_identity(f"WB-{code}")
            _refuse_worn_wristband(session, values["wristband_id"])
            patient = Patient(code=code, status="registered", registered_by_id=actor.id, **values)
            if protocol.directed or details.familial_donor_code:
                donor = _familial_donor(session, patient, details.familial_donor_code, generated=not typed)
                patient.familial_donor_id = donor.id if donor is not None else None
            session.add(patient)
    except IntegrityError:  # the same band registered meanwhile by another clinician: the unique index said so
        with reading(session):
            _refuse_worn_wristband(session, values["wristband_id"])
        raise
    return patient


def _refuse_worn_wristband(session: Session, wristband: str) -> None:
    """A wristband worn by a patient, whatever its case and spacing, is never given to another: at the bed the
    nurse could not tell the two bands apart (queries.wristband_identity)."""
    wearer = patient_by_wristband(session, wristband)
    if wearer is not None:
        spelled = "" if wearer.wristband_id == wristband else f" (registered as {wearer.wristband_id})"
        raise Conflict(f"Wristband {wristband} is already worn by patient {wearer.code}{spelled}. Wristbands that "
                       "differ only in capitals or spaces are the same wristband at the bedside: give this patient "
                       "another wristband identifier.", field="wristband_id")


def link_familial_donor(session: Session, actor: Any, patient_id: int, donor_code: str, reason: str) -> Patient:
    """Link (or correct the link to) the patient's familial donor, e.g. a donor registered after the patient."""
    require_clinician(actor, "links a familial donor")
    with use_case(session, actor, reason or "familial donor linked"):
        patient = get_patient(session, patient_id)
        donor = _familial_donor(session, patient, donor_code or "-")
        patient.familial_donor_id = donor.id if donor is not None else None
    return patient


def parse_weight(value: Any) -> Decimal:
    """A weight written plainly, as every number of the pages and the API (api.plain_numbers): digits with at most
    one decimal POINT. "1e2" read as 100 kg is not what anyone weighed, and a comma is refused as in every other
    number field (the page took "71,5" as 71.5 kg while the API refused "51,5"): refused in the API's own words."""
    text = str(value)  # a Decimal keeps the form it was typed in: Decimal("1e2") is "1E+2", refused
    if not is_plain_number(text, signed=False):
        raise ValidationFailed(f"Weight: {text.strip(ASCII_SPACES)[:40]!r} is not a plain number; "
                               f"{rule_words(signed=False)}.", field="weight_kg")
    try:
        weight = Decimal(text.strip(ASCII_SPACES))
    except (InvalidOperation, AttributeError):
        raise ValidationFailed("Weight: a number of kilograms, e.g. 62.5.", field="weight_kg") from None
    least, most = RECORDABLE_WEIGHT_KG
    if not weight.is_finite() or not least <= weight <= most:
        raise ValidationFailed(f"Weight must be between {least} and {most} kg.", field="weight_kg")
    if weight != weight.quantize(Decimal("0.01")):
        raise ValidationFailed("Weight: at most two decimals (e.g. 62.5).", field="weight_kg")
    return weight


def _pounds_words(weight: Decimal, previous: Decimal) -> str:
    """A hint when the new weight is the previous one in pounds (1 kg = 2.20462 lb), within 5 %."""
    pounds = previous * POUNDS_PER_KG
    if abs(weight - pounds) <= pounds * Decimal("0.05"):
        return f" It looks like a weight in pounds: {plain(previous)} kg is {plain(pounds.quantize(Decimal('0.1')))} lb."
    return ""


def _compared_weight(session: Session, patient: Patient, weight: Decimal,
                     measured_on: date) -> WeightMeasurement | None:
    """The weight a new one is judged against. Of the weights measured within the protocol's weight_check_days of
    `measured_on`, the one FARTHEST from the new weight: judged only against the newest, a weight could be walked up
    10 % at a time (70, 77, 84.7 ... kg the same day) to any dose without a check. With none within those days, the
    patient's weight nearest in time, whatever its age: a month-old 65 kg still shows that 143.3 was typed in pounds.
    Ties go to the newest entry (weights_of: newest first)."""
    days = protocol_of(patient).dosing.weight_check_days
    weights = weights_of(session, patient.id)
    recent = [w for w in weights if _days_apart(w, measured_on) <= days]
    if recent:
        return max(recent, key=lambda w: abs(weight - Decimal(w.weight_kg)))
    return min(weights, key=lambda w: _days_apart(w, measured_on), default=None)


def _days_apart(other: WeightMeasurement, measured_on: date) -> int:
    return abs((other.measured_on - measured_on).days)


def _within_days(patient: Patient, other: WeightMeasurement, measured_on: date) -> bool:
    return _days_apart(other, measured_on) <= protocol_of(patient).dosing.weight_check_days


@dataclass(frozen=True)
class WeightChecks:
    """What a new weight needs checking for: far from the weight it is compared with (jump), outside the plausible
    adult weights with no weight within the protocol's days to compare it with (implausible); None when fine."""

    jump: str | None
    implausible: str | None

    @property
    def words(self) -> str | None:
        return " ".join(w for w in (self.jump, self.implausible) if w) or None


def weight_checks(session: Session, patient: Patient, weight: Decimal, measured_on: date) -> WeightChecks:
    """Compared with the weights measured within the protocol's weight_check_days (weight_jump), and, with none
    there, BOTH with the patient's nearest weight in time (however old) and with the plausible adult range
    (implausible_weight): the first weight of a patient is never taken on trust alone, nor one typed in pounds
    a month after the last."""
    jump = weight_jump(session, patient, weight, measured_on)
    compared = _compared_weight(session, patient, weight, measured_on)
    if compared is not None and _within_days(patient, compared, measured_on):
        return WeightChecks(jump, None)
    return WeightChecks(jump, implausible_weight(patient, weight, measured_on))


def weight_check(session: Session, patient: Patient, weight: Decimal, measured_on: date) -> str | None:
    """Why a new weight needs the clinician's confirmation (weight_checks, in words), or None."""
    return weight_checks(session, patient, weight, measured_on).words


def implausible_weight(patient: Patient, weight: Decimal, measured_on: date) -> str | None:
    """The words of a weight outside the protocol's plausible_weight_kg (both trials enrol adults), naming the
    weight, the range and the likely slip (pounds, decimal point); None inside it. Judged only for a weight with no
    other weight within weight_check_days: a weight near a recent confirmed unusual one is not asked about again."""
    protocol = protocol_of(patient)
    low, high = protocol.dosing.plausible_weight_kg
    if low <= weight <= high:
        return None
    side = f"above {plain(high)} kg" if weight > high else f"below {plain(low)} kg"
    age = age_on(patient, measured_on)
    aged = f" (this patient was {age} years old that day)" if age < ADULT_YEARS else ""
    return (f"{plain(weight)} kg measured on {measured_on} is {side}: the plausible weights for an adult in protocol "
            f"{protocol.short_name} are {plain(low)} to {plain(high)} kg{aged}, and no other weight of this patient "
            f"was measured within {protocol.dosing.weight_check_days} days of it to compare it with."
            f"{_slip_words(weight, low, high)}")


def _slip_words(weight: Decimal, low: Decimal, high: Decimal) -> str:
    """A hint when the weight read another way (typed in pounds, or with the decimal point one place off) would be
    plausible: the two slips that turn a real adult weight into this one."""
    in_kg = (weight / POUNDS_PER_KG).quantize(Decimal("0.1"))
    if weight > high and low <= in_kg <= high:
        return f" If it was typed in pounds: {plain(weight)} lb is {plain(in_kg)} kg."
    shifted = weight * 10 if weight < low else weight / 10
    if low <= shifted <= high:
        return f" With the decimal point one place further {'right' if weight < low else 'left'} it would be " \
               f"{plain(shifted)} kg."
    return ""


def weight_jump(session: Session, patient: Patient, weight: Decimal, measured_on: date) -> str | None:
    """The words of a new weight that differs by more than the protocol's weight_check_percent from the weight it is
    compared with (_compared_weight: the farthest within weight_check_days, else the nearest in time; a weight typed
    in pounds, 137.8 after 62.5 kg, would double the dose), naming both weights and their dates; None when it does
    not."""
    dosing = protocol_of(patient).dosing
    previous = _compared_weight(session, patient, weight, measured_on)
    if previous is None:
        return None
    before = Decimal(previous.weight_kg)
    change = (weight - before) * 100 / before
    if abs(change) <= dosing.weight_check_percent:
        return None
    direction = "above" if change > 0 else "below"
    allowed = f"more than the {plain(dosing.weight_check_percent)} % allowed without a check"
    if _within_days(patient, previous, measured_on):
        other = _recent_words(previous, before, measured_on)
        why = f"{allowed} between weights measured within {dosing.weight_check_days} days"
    else:  # an old weight: its age is said, so that the clinician judges whether the patient really changed so much
        side = "before" if previous.measured_on < measured_on else "after"
        other = (f"this patient's weight nearest in time, {plain(before)} kg measured on {previous.measured_on}, "
                 f"{_days_apart(previous, measured_on)} days {side} it")
        why = f"none was measured within {dosing.weight_check_days} days of it; {allowed}"
    return (f"{plain(weight)} kg measured on {measured_on} is {plain(abs(change).quantize(Decimal('0.1')))} % "
            f"{direction} {other} ({why}).{_pounds_words(weight, before)}")


def _recent_words(previous: WeightMeasurement, before: Decimal, measured_on: date) -> str:
    """The weight compared, named by its place in time: it may have been measured AFTER the new one (a weight typed
    in late), and is never called "the previous weight" then."""
    if previous.measured_on > measured_on:
        return f"the weight measured after this one, {plain(before)} kg on {previous.measured_on}"
    if previous.measured_on == measured_on:
        return f"the other weight measured that day, {plain(before)} kg on {previous.measured_on}"
    return f"the previous weight, {plain(before)} kg measured on {previous.measured_on}"


def record_weight(session: Session, actor: Any, patient_id: int, *, weight_kg: Any,
                  measured_on: date | None, weight_confirmed: bool = False) -> WeightMeasurement:
    """Record a weight. One that differs by more than the protocol allows from any recent weight, or with none from
    the nearest in time (weight_jump), or, with no recent weight, lies outside the protocol's plausible adult weights
    (implausible_weight), is refused
    unless the clinician confirms having checked it (`weight_confirmed`); the confirmation, with the words of the
    check, is the audit reason of the weight's record."""
    require_clinician(actor, "records weights")
    weight = parse_weight(weight_kg)
    if measured_on is None:
        raise ValidationFailed("Give the date the weight was measured.", field="measured_on")
    if measured_on > site_today():
        raise ValidationFailed("The weight cannot be measured in the future.", field="measured_on")
    with reading(session):  # before the use case: its audit reason is the confirmation (judged again under lock)
        patient = get_patient(session, patient_id)
        if measured_on < patient.date_of_birth:  # said before any check that would word an age below zero
            raise ValidationFailed("The weight cannot be measured before birth.", field="measured_on")
        checks = weight_checks(session, patient, weight, measured_on)
    jump = checks.words
    if jump is not None and not weight_confirmed:
        check = "the unit (kg, not lb) and the decimal point" if checks.implausible else "the weight and its unit (kg)"
        raise ValidationFailed(f"Weight not recorded: {jump} Check {check}. If it is right, tick "
                               f"\"{WEIGHT_CHECKED}\" and record it again.", field="weight_kg")
    # a tick is kept whenever given (the page then says so truly), with the check it answered when there was one
    reason = (f"{WEIGHT_CHECKED} (confirmed by the clinician)" + (f": {jump}" if jump is not None else "")
              if weight_confirmed else None)
    with use_case(session, actor, reason):
        patient = lock_patient(session, patient_id)  # not while an infusion start is judging the latest weight
        if measured_on < patient.date_of_birth:
            raise ValidationFailed("The weight cannot be measured before birth.", field="measured_on")
        if weight_check(session, patient, weight, measured_on) != jump:  # another weight recorded meanwhile
            raise Conflict("Weight not recorded: another weight of this patient was recorded meanwhile. Look at the "
                           "weights and record it again.", field="weight_kg")
        row = WeightMeasurement(patient_id=patient.id, weight_kg=weight, measured_on=measured_on,
                                recorded_by_id=actor.id)
        session.add(row)
    return row
