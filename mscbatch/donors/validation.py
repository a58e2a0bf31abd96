"""Checking what a technician types about a donor and its screening results, before anything is written: every
problem is reported at once, each under the field it concerns (DOMAIN.md sections 1 and 3)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from mscbatch.api.plain_numbers import is_plain_number
from mscbatch.core.ages import completed_years, earliest_birth
from mscbatch.core.eligibility_markers import RESULT_VALUES
from mscbatch.donors.models import DONOR_TYPE_LABELS, RELATIONSHIP_LABELS, SEX_LABELS, Donor
from mscbatch.donors.queries import rule_set_of, rule_sets
from mscbatch.errors import ValidationFailed
from mscbatch.site import site_today


@dataclass(frozen=True)
class DonorDetails:
    """What a technician records about a donor (None = not recorded yet)."""

    tissue_source: str
    rule_set_id: str
    donor_type: str
    relationship: str | None = None
    recipient_code: str | None = None
    initials: str | None = None
    date_of_birth: date | None = None
    sex: str | None = None
    weight_kg: Decimal | str | None = None
    consent_signed: bool | None = None
    consent_date: date | None = None
    social_security: bool | None = None
    childbearing_potential: bool | None = None
    contraception: bool | None = None
    retest_180_days_negative: bool | None = None
    planned_collection_date: date | None = None


class _Problems:
    """Every problem of one submission, each under the field it concerns: a person fixes them all at once instead of
    meeting them one per submit."""

    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.errors.setdefault(field, []).append(message)

    def raise_any(self) -> None:
        messages = [m for found in self.errors.values() for m in found]
        if len(messages) == 1:
            raise ValidationFailed(messages[0], field=next(iter(self.errors)))
        if messages:
            raise ValidationFailed("Nothing was saved; correct each marked field: " + " ".join(messages),
                                   errors=self.errors)


def _weight(value: Decimal | str | None, problems: _Problems) -> Decimal | None:
    """A weight as weighed, or None when not recorded (empty or blank: the same thing, whatever the source; a
    rule set with a weight limit shows it as missing until it is recorded)."""
    if value is None or not str(value).strip():
        return None
    try:
        if isinstance(value, str) and not is_plain_number(value, signed=False):  # "1_0" is 10 to Decimal()
            raise InvalidOperation(value)
        entered = Decimal(str(value).strip())
        weight = entered.quantize(Decimal("0.1"))
    except InvalidOperation:
        problems.add("weight_kg", "Weight: a number of kilograms, e.g. 62.5.")
        return None
    if not weight.is_finite():  # "NaN" quantizes without a signal, then every comparison raises
        problems.add("weight_kg", "Weight: a number of kilograms, e.g. 62.5.")
        return None
    if weight != entered:  # never rounded silently: 49.95 kg would become 50.0 and pass AT-DON's 50 kg minimum
        problems.add("weight_kg", f"Weight: record it to 0.1 kg as weighed ({entered} cannot be kept without "
                     "rounding, and a weight limit is judged on the recorded value).")
    elif not Decimal("1") <= weight <= Decimal("400"):
        problems.add("weight_kg", "Weight must be between 1 and 400 kg.")
    return weight


def whose_birth(tissue_source: str) -> str:
    """A cord donor's record holds the mother's date of birth: her blood is tested and she consents."""
    return "the mother's date of birth" if tissue_source == "umbilical_cord" else "the donor's date of birth"


def donor_types_of(rule_set: Any) -> tuple[str, ...]:
    """The donor types the rule set takes: familial only for a rule set with a relationship rule (SSc-BM), else
    every type (DONOR_TYPE_LABELS)."""
    if any(f.kind == "relationship" for f in rule_set.required_facts):
        return ("familial",)
    return tuple(DONOR_TYPE_LABELS)


def _recipient_problems(details: DonorDetails, rule_set: Any, recipient: str | None, relationship: str | None,
                        problems: _Problems) -> None:
    if donor_types_of(rule_set) == ("familial",) and details.donor_type != "familial":
        problems.add("donor_type", f"Protocol {rule_set.protocol} takes familial donors only.")
    if details.donor_type == "familial":
        if relationship not in RELATIONSHIP_LABELS:
            problems.add("relationship", "Give the relationship to the intended recipient.")
        if not recipient:
            problems.add("recipient_code", "Give the intended recipient's trial patient code.")
            return
        from mscbatch.patients.services import CODE_PATTERN  # the codes patients are registered under

        if not CODE_PATTERN.match(recipient):  # judged as stored (capitalised: "\ufb03" becomes "FFI")
            problems.add("recipient_code", "Intended recipient: a trial patient code, 3-40 capital letters, digits and "
                         f"dashes (e.g. SSC-BM-007); {recipient[:45]!r} is not one.")
    elif relationship or recipient:
        problems.add("relationship", "An unrelated donor has no relationship or intended recipient.")


#: the oldest age a date of birth may give (at today's date): an older one is a date typed wrong
MAX_AGE_YEARS = 120
#: how far ahead a planned collection may be: a donation is planned within the year (a pregnancy, a surgery)
PLANNED_AHEAD_DAYS = 365


def _date_problems(details: DonorDetails, problems: _Problems) -> None:
    today = site_today()
    born = details.date_of_birth
    whose = whose_birth(details.tissue_source)
    person = "the mother" if details.tissue_source == "umbilical_cord" else "the donor"
    if born is not None and born > today:
        problems.add("date_of_birth", f"Date of birth: {born} is in the future (today is {today}).")
        born = None
    elif born is not None and completed_years(born, today) > MAX_AGE_YEARS:
        problems.add("date_of_birth", f"Date of birth: {born} would make {person} over {MAX_AGE_YEARS} years old "
                     f"(born on {earliest_birth(today, MAX_AGE_YEARS)} or later). Check the date typed.")
        born = None
    if details.consent_date is not None and details.consent_date > today:
        problems.add("consent_date", "The consent date cannot be in the future.")
    elif born is not None and details.consent_date is not None and details.consent_date < born:
        problems.add("consent_date", f"The consent date {details.consent_date} is before {whose} ({born}).")
    if details.consent_signed and details.consent_date is None:
        problems.add("consent_date", "Give the date the consent was signed.")
    planned = details.planned_collection_date
    if born is not None and planned is not None and planned < born:
        problems.add("planned_collection_date", f"The planned collection {planned} is before {whose} ({born}).")
    elif planned is not None and planned > today + timedelta(days=PLANNED_AHEAD_DAYS):
        problems.add("planned_collection_date", f"Planned collection date: {planned} is more than a year ahead "
                     f"(latest {today + timedelta(days=PLANNED_AHEAD_DAYS)}, {PLANNED_AHEAD_DAYS} days from today). "
                     "Give the date planned with the donor, or leave it empty until it is known.")


def details_problems(details: DonorDetails) -> dict[str, list[str]]:
    """Every problem of the details, field by field (empty when they can be saved). The page shows them next to
    the fields together with its own parsing errors."""
    try:
        clean_details(details)
    except ValidationFailed as refused:
        return refused.errors
    return {}


def clean_details(details: DonorDetails) -> dict[str, Any]:
    """Validate the details; every problem names its field, and all are reported at once."""
    problems = _Problems()
    rule_set = rule_sets().get(details.rule_set_id)
    relationship = details.relationship or None
    recipient = (details.recipient_code or "").strip().upper() or None
    if rule_set is None:
        problems.add("rule_set_id", "Choose the donor's protocol / rule set.")
    elif details.tissue_source != rule_set.tissue_source:
        problems.add("tissue_source", f"The rule set {rule_set.id} is for {rule_set.tissue_source.replace('_', ' ')} "
                     "donors; choose the matching tissue source.")
    if details.donor_type not in DONOR_TYPE_LABELS:
        problems.add("donor_type", "Choose the donor type.")
    elif rule_set is not None:
        _recipient_problems(details, rule_set, recipient, relationship, problems)
    if details.sex is not None and details.sex not in SEX_LABELS:
        problems.add("sex", "Sex: female or male.")
    elif details.sex == "male" and details.tissue_source == "umbilical_cord":
        problems.add("sex", "Sex: a cord donor's record is the mother's (her blood is tested, she consents): it "
                     "cannot be Male.")
    elif details.sex == "male" and details.childbearing_potential:
        problems.add("childbearing_potential", "Woman of childbearing potential: 'Yes' contradicts Sex 'Male'. Check "
                     "the donor's file and correct one of the two.")
    _date_problems(details, problems)
    weight = _weight(details.weight_kg, problems)
    initials = (details.initials or "").strip().upper() or None
    if initials and (len(initials) > 10 or not initials.replace("-", "").replace(".", "").isalpha()):
        problems.add("initials", "Initials: letters only, at most 10 (e.g. J-P.M).")
    problems.raise_any()
    assert rule_set is not None
    return dict(tissue_source=details.tissue_source, rule_set_id=rule_set.id, protocol=rule_set.protocol,
                donor_type=details.donor_type, relationship=relationship, recipient_code=recipient,
                initials=initials, date_of_birth=details.date_of_birth, sex=details.sex, weight_kg=weight,
                consent_signed=details.consent_signed, consent_date=details.consent_date,
                social_security=details.social_security, childbearing_potential=details.childbearing_potential,
                contraception=details.contraception, retest_180_days_negative=details.retest_180_days_negative,
                planned_collection_date=details.planned_collection_date)


def check_result(donor: Donor, marker: str, method: str | None, result: str, sample_date: date | None,
                  lab_reference: str) -> tuple[str, str]:
    """The result's method and laboratory reference as stored; every problem is reported at once."""
    problems = _Problems()
    known = rule_set_of(donor).marker(marker)
    if known is None:
        problems.add("marker", f"Choose a marker of the donor's rule set ({donor.rule_set_id}).")
    elif method and method != known.method:
        problems.add("method", f"{known.name} is a {known.method} test, not {method}.")
    if result not in RESULT_VALUES:
        problems.add("result", "Result: positive, negative or indeterminate.")
    if sample_date is None:
        problems.add("sample_date", "Give the sample date.")
    elif sample_date > site_today():
        problems.add("sample_date", "The sample date cannot be in the future.")
    elif donor.date_of_birth is not None and sample_date < donor.date_of_birth:
        problems.add("sample_date", f"The sample date {sample_date} is before {whose_birth(donor.tissue_source)} "
                     f"({donor.date_of_birth}) recorded for donor {donor.code}: check the sample date on the report.")
    reference = (lab_reference or "").strip()
    if not reference or len(reference) > 60:
        problems.add("lab_reference", "Give the laboratory reference of the report (at most 60 characters).")
    problems.raise_any()
    assert known is not None
    return known.method, reference
