"""What the audit page's filters look up (QA's audit trail review, Part 11 inspection finding): the actions the
trail holds, a record named as users name it (a lot's number, a bag's DIN, a donor's or patient's code, a recall's
R-number) resolved to the id the trail files it under, a user by username or printed name, and a lot's whole trail
(the lot and every record of it). Each lookup is an index probe or a few: the page stays quick on a trail of
millions of events."""
from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, or_, select, text
from sqlalchemy.orm import Session

from mscbatch.audit.models import AuditEvent
from mscbatch.auth.models import User
from mscbatch.core.bounds import whole_number
from mscbatch.core.identifiers import IdentifierError, parse_din

#: the record types a reviewer may name by their own name rather than the database id, in the words of the message
NAMEABLE = {"lot": "lot", "bag": "bag", "donor": "donor", "patient": "patient", "recall": "recall"}


def actions_present(session: Session) -> list[str]:
    """The distinct actions of the trail, sorted: a loose index scan on ix_audit_event_action (one probe per
    action, a few dozen), not a scan of the trail."""
    found = session.execute(text(
        "WITH RECURSIVE a(action) AS ("
        " SELECT MIN(action) FROM audit_event"
        " UNION ALL SELECT (SELECT MIN(e.action) FROM audit_event e WHERE e.action > a.action) FROM a"
        " WHERE a.action IS NOT NULL)"
        " SELECT action FROM a WHERE action IS NOT NULL"))
    return sorted(row[0] for row in found)


def action_words(action: str) -> str:
    """An action as people say it: "signature_refused" -> "signature refused"."""
    return action.replace("_", " ")


def _spellings(value: str) -> list[str]:
    """A code as typed and in capitals (codes are written in capitals): matched on the column's unique index."""
    return sorted({value, value.upper()})


def resolve_record(session: Session, entity_type: str, typed: str, *, may_read_patients: bool
                   ) -> tuple[str | None, str | None]:
    """(the id the trail files the record under, None) or (None, the words saying why not). A whole number is
    the id itself (as before); a record type known by id alone takes the text as typed; any other text is the record's own name for a lot (its number), a bag (its DIN, with
    or without K, in any grouping), a donor or a patient (its code) or a recall (R-<n>)."""
    from mscbatch.donors.models import Donor
    from mscbatch.lots.models import Bag, Lot
    from mscbatch.patients.models import Patient
    from mscbatch.recall.models import Recall

    value = typed.strip()
    if value.isdigit() and len(value) < 13:  # an id (a DIN has 13 characters)
        return value, None
    if not entity_type:
        return None, (f"Record id: {typed!r} is not an id (a whole number). To look a record up by its name (a lot's "
                      "number, a bag's DIN, a donor's or a patient's code, a recall's R-number), choose its record "
                      "type too.")
    if entity_type not in NAMEABLE:  # a record filed under another key (a restore of the database): as typed
        return value, None
    if entity_type == "lot":
        found = session.scalar(select(Lot.id).where(Lot.lot_number.in_(_spellings(value))))
        return (str(found), None) if found is not None else (None, f"Record id: no lot is numbered {value}.")
    if entity_type == "bag":
        try:
            din = parse_din(value)
        except IdentifierError as error:
            return None, f"Record id: {value!r} is neither a bag's id nor its DIN ({error})."
        found = session.scalar(select(Bag.id).where(Bag.din == din.text))
        return (str(found), None) if found is not None else (None, f"Record id: no bag has the DIN {value}.")
    if entity_type == "donor":
        found = session.scalar(select(Donor.id).where(Donor.code.in_(_spellings(value))))
        return (str(found), None) if found is not None else (None, f"Record id: no donor has the code {value}.")
    if entity_type == "patient":
        if not may_read_patients:
            return None, ("Record id: your role may not look patients up by their code: type the patient record's "
                          "id.")
        found = session.scalar(select(Patient.id).where(Patient.code.in_(_spellings(value))))
        return (str(found), None) if found is not None else (None, f"Record id: no patient has the code {value}.")
    if entity_type == "recall":
        number = whole_number(value.upper().removeprefix("R-").removeprefix("R").strip())
        if number is None:
            return None, f"Record id: {value!r} is not a recall's number: type R- and its number, e.g. R-12."
        found = session.scalar(select(Recall.id).where(Recall.id == number))
        return (str(found), None) if found is not None else (None, f"Record id: no recall is numbered R-{number}.")
    return value, None  # pragma: no cover (every NAMEABLE type is answered above)


def lot_named(session: Session, typed: str) -> tuple[int | None, str | None]:
    """(the lot's id, None) for a lot's number (or its id), or (None, the words saying no lot is so named)."""
    from mscbatch.lots.models import Lot

    return _named(session, Lot, Lot.lot_number, typed, "Whole trail of lot: no lot is numbered {}. Type the lot's "
                                                      "number, e.g. MSC-2026-0001.")


def donor_named(session: Session, typed: str) -> tuple[int | None, str | None]:
    """(the donor's id, None) for a donor's code (or its id), or (None, the words saying no donor is so coded)."""
    from mscbatch.donors.models import Donor

    return _named(session, Donor, Donor.code, typed, "Whole trail of donor: no donor has the code {}. Type the "
                                                     "donor's code, e.g. D-2026-0001.")


def _named(session: Session, model: Any, name: Any, typed: str, none_words: str) -> tuple[int | None, str | None]:
    """(the id of the record whose `name` column is typed, in any of its spellings, or whose id is typed, None), or
    (None, `none_words` with what was typed)."""
    value = typed.strip()
    found = session.scalar(select(model.id).where(name.in_(_spellings(value))))
    row_id = whole_number(value)
    if found is None and row_id is not None:
        found = session.scalar(select(model.id).where(model.id == row_id))
    if found is None:
        return None, none_words.format(value)
    return found, None


def donor_records(session: Session, donor_id: int) -> dict[str, set[int]]:
    """Every record of the donor the trail files events under, by type: the donor, its screening results (and their
    corrections, which are changes of those rows), questionnaire answers, eligibility decisions, lookbacks and the
    recalls of the donor, and the signatures of all these. Its lots have their own whole trail (lot_records)."""
    from mscbatch.donors.models import (
        DonorLookback,
        EligibilityDecision,
        QuestionnaireAnswer,
        ScreeningResult,
    )
    from mscbatch.recall.models import Recall

    def ids(model: Any, *where: Any) -> set[int]:
        return _ids(session, model, *where)

    records: dict[str, set[int]] = {
        "donor": {donor_id},
        ScreeningResult.__tablename__: ids(ScreeningResult, ScreeningResult.donor_id == donor_id),
        QuestionnaireAnswer.__tablename__: ids(QuestionnaireAnswer, QuestionnaireAnswer.donor_id == donor_id),
        EligibilityDecision.__tablename__: ids(EligibilityDecision, EligibilityDecision.donor_id == donor_id),
        DonorLookback.__tablename__: ids(DonorLookback, DonorLookback.donor_id == donor_id),
        Recall.__tablename__: ids(Recall, Recall.donor_id == donor_id),
    }
    return _with_signatures(session, records)


def _ids(session: Session, model: Any, *where: Any) -> set[int]:
    """The ids of the model's rows that match: one whole trail's records of one type."""
    return set(session.scalars(select(model.id).where(*where)))


def _with_signatures(session: Session, records: dict[str, set[int]]) -> dict[str, set[int]]:
    """The records and the signatures of any of them; the types with no record left out."""
    from mscbatch.signatures.models import Signature

    signed = [and_(Signature.entity_type == kind, Signature.entity_id.in_([str(i) for i in found]))
              for kind, found in records.items() if found]
    records[Signature.__tablename__] = _ids(session, Signature, or_(*signed))
    return {kind: found for kind, found in records.items() if found}


def actor_clause(session: Session, typed: str) -> Any:
    """The events of the user typed: by username or by printed name ("Quentin QA"), in any case (the actor index);
    a name no user has (the system, a name typed at a failed sign-in) is matched as the trail wrote it."""
    wanted = " ".join(typed.split()).lower()
    ids = list(session.scalars(select(User.id).where(or_(func.lower(User.username) == wanted,
                                                         func.lower(User.full_name) == wanted))))
    if ids:
        return AuditEvent.actor_id.in_(ids)
    return AuditEvent.actor_name == typed.strip().lower()


def lot_records(session: Session, lot_id: int) -> dict[str, set[int]]:
    """Every record of the lot the trail files events under, by type: the lot, its passages and other steps, its
    deviations and QA's assessments of them, its reagent uses, its bags (their storage moves, custody events, label
    prints), its release results and their attachments, its OOS investigations, its dispositions, and the
    signatures of all these."""
    from mscbatch.custody.models import CustodyEvent
    from mscbatch.labelling.models import LabelPrint, LabelPrintItem
    from mscbatch.lots.models import Bag, Deviation, ProcessStep, ReagentUse, StorageMove
    from mscbatch.release.models import (
        DeviationAssessment,
        LotDisposition,
        OosInvestigation,
        ReleaseResult,
        ResultAttachment,
    )

    def ids(model: Any, *where: Any) -> set[int]:
        return _ids(session, model, *where)

    bags = ids(Bag, Bag.lot_id == lot_id)
    results = ids(ReleaseResult, ReleaseResult.lot_id == lot_id)
    prints = ids(LabelPrint, LabelPrint.lot_id == lot_id)
    records: dict[str, set[int]] = {
        "lot": {lot_id},
        ProcessStep.__tablename__: ids(ProcessStep, ProcessStep.lot_id == lot_id),
        Deviation.__tablename__: ids(Deviation, Deviation.lot_id == lot_id),
        DeviationAssessment.__tablename__: ids(DeviationAssessment, DeviationAssessment.lot_id == lot_id),
        ReagentUse.__tablename__: ids(ReagentUse, ReagentUse.lot_id == lot_id),
        Bag.__tablename__: bags,
        ReleaseResult.__tablename__: results,
        ResultAttachment.__tablename__: ids(ResultAttachment, ResultAttachment.result_id.in_(results)) if results
        else set(),
        OosInvestigation.__tablename__: ids(OosInvestigation, OosInvestigation.lot_id == lot_id),
        LotDisposition.__tablename__: ids(LotDisposition, LotDisposition.lot_id == lot_id),
        LabelPrint.__tablename__: prints,
        LabelPrintItem.__tablename__: ids(LabelPrintItem, LabelPrintItem.print_id.in_(prints)) if prints else set(),
        StorageMove.__tablename__: ids(StorageMove, StorageMove.bag_id.in_(bags)) if bags else set(),
        CustodyEvent.__tablename__: ids(CustodyEvent, CustodyEvent.bag_id.in_(bags)) if bags else set(),
    }
    return _with_signatures(session, records)


def records_clause(records: dict[str, set[int]]) -> Any:
    """Events of any of these records: one probe of the entity index (type, id) per type."""
    return or_(*[and_(AuditEvent.entity_type == kind, AuditEvent.entity_id.in_([str(i) for i in sorted(found)]))
                 for kind, found in records.items()])
