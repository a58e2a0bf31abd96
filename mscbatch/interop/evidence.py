"""The inspectors' evidence bundle of one bag (issue 8 point 3): gathers the records and packs them with
mscbatch.core.evidence (manifest of SHA-256 hashes, HMAC-SHA256 under the site's AUDIT_KEY).

Files in the ZIP:
- custody-timeline.json: the bag's custody events, oldest first, with who recorded each (a bedside check's two
  people by printed name too: "second_checker_name" beside "second_checker");
- lot-record.json: the lot, its process steps, deviations, reagents used and bags; the donor by code only;
- certificate-of-analysis.pdf: the CoA, only when the lot has a release disposition;
- lot-record.json also names the recalls that cover or covered the bag (of its lot, its donor or a reagent lot it
  used, and any that held it): id, scope, reason, status, who started and closed each and when, the closing
  note, and the bag's hold under it (placed, lifted, by whom);
- donor-eligibility.json: the decision in force ("decision", null when none), its reasons and the rule set id,
  version and SHA-256; and the donor's whole decision history ("decisions", oldest first: each with its
  meaning, signer, time, whether it is in force or was superseded, when, why and by which decision), the
  screening results (a late reactive one included) and the lookbacks they opened. A bag of a lot released under
  an approval later reopened thus shows the approval it left under and the news that reopened it;
- signatures.json: the signatures of every decision of the donor (superseded ones included), the lot's
  dispositions, OOS investigations (confirmed or invalidated) and deviation assessments, the recalls above (start,
  end or completion), the prescriptions that allocated the bag, the bag's bedside two-person checks (the checker's
  and the second person's) and QA's return assessments, oldest first, each with its manifestation (printed name,
  local time with UTC, meaning), the record it signs and its verification result now;
- audit-events.json: the audit trail entries of the bag, lot, donor, decisions, dispositions, prescriptions,
  allocations, custody events, bedside checks, infusion and reactions involved. Identity fields (initials,
  date of birth, wristband) are shown as "[redacted]": donors and patients appear by pseudonymised code only.
  The wristband ids of the patients involved are masked wherever they appear (scans in custody details and
  bedside checks included), in every spelling the bag's scans or the patients' records ever held: a band corrected
  since, or scanned with a tab or a no-break space inside, which the bedside reads as the band. The band fields
  themselves (the check's scan, the custody event's wristband) are "[redacted]" whoever takes the bundle.

Taken by QA (a reader of the patient pages) the bundle holds the clinical side too. Taken by an administrator,
who may not read patients, it holds the product's whole evidence (custody, lot, CoA, eligibility, signatures
and their verification, the audit trail: what changed, who, when) but the patient records' values, the reasons
typed for them and the patient named in custody events are "[redacted]" (mscbatch.interop.privacy): an
inspector tracing the bag gets the chain of custody from either, the clinical details from QA.
"""
from __future__ import annotations

import json
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, inspect, or_, select
from sqlalchemy.orm import Session

from mscbatch.audit.models import AuditEvent
from mscbatch.audit.words import known_name, record_type_words
from mscbatch.auth.models import User
from mscbatch.core import evidence
from mscbatch.custody.models import CustodyEvent, Infusion, InfusionReaction, ReturnAssessment, TwoPersonCheck
from mscbatch.custody.queries import timeline
from mscbatch.database import utcnow
from mscbatch.donors.models import Donor, DonorLookback, EligibilityDecision, ScreeningResult
from mscbatch.donors.queries import current_decision, decisions_of, lookbacks_of, results_of
from mscbatch.interop.privacy import REDACTED, WRISTBAND_DETAIL, AuditMask, patient_custody_reasons
from mscbatch.lots.models import Bag, Deviation, Lot, ProcessStep, ReagentLot, ReagentUse
from mscbatch.lots.queries import bags_of, get_bag, get_lot
from mscbatch.patients.models import Allocation, Patient, Prescription
from mscbatch.patients.queries import wristband_identity
from mscbatch.recall.models import BagHold, Recall
from mscbatch.recall.queries import recalls_of_lot
from mscbatch.release.coa import certificate_pdf
from mscbatch.release.models import DeviationAssessment, OosInvestigation
from mscbatch.release.queries import dispositions_of
from mscbatch.release.review import review_of
from mscbatch.signatures.services import signatures_of, verify
from mscbatch.site import local_and_utc


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


def row(obj: Any, *, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A mapped row's columns as JSON-ready values."""
    return {attr.key: _plain(getattr(obj, attr.key)) for attr in inspect(obj).mapper.column_attrs
            if attr.key not in skip}


def _json(data: Any) -> bytes:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=_plain).encode("utf-8") + b"\n"


def _names(session: Session, ids: set[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    return {user_id: name for user_id, name in session.execute(
        select(User.id, User.full_name).where(User.id.in_(wanted)))}


#: keys of a custody event's details that hold a user's id (the bedside check's two people): each is followed in the
#: bundle by "<key>_name", the person's printed name ("second_checker": 7 alone named no one to an inspector)
USER_DETAILS = ("first_checker", "second_checker")


def _named_details(details: dict[str, Any], names: dict[int, str]) -> dict[str, Any]:
    out = dict(details)
    for key in USER_DETAILS:
        value = details.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            out[f"{key}_name"] = names.get(value, "?")
    return out


def _timeline(session: Session, bag_id: int, mask: AuditMask) -> list[dict[str, Any]]:
    events = list(timeline(session, bag_id))
    # a bag sent back to stock by a course stop or a withdrawal carries that use case's reason, which tells of
    # the patient: masked as the audit viewer masks it (privacy.patient_cases)
    hidden = patient_custody_reasons(session, [e.id for e, _a in events]) if mask.patient_records else frozenset()
    names = _names(session, {value for event, _a in events for key in USER_DETAILS
                             if isinstance(value := event.details.get(key), int)})
    out = []
    for event, actor in events:
        data = {**row(event, skip=frozenset({"details_json"})),
                "details": _named_details(mask.details(event.details), names), "label": event.label, "actor": actor}
        if event.id in hidden and data.get("reason"):
            data["reason"] = REDACTED
        out.append(data)
    return out


def _recalls_of_bag(session: Session, lot: Lot, bag: Bag) -> list[Recall]:
    """The recalls that cover or covered the bag, oldest first: those of its lot's origins (recalls_of_lot: in force,
    or ended after the lot was made) and any that held the bag."""
    held = select(BagHold.recall_id).where(BagHold.bag_id == bag.id)
    ids = {r.id for r in recalls_of_lot(session, lot)} | set(session.scalars(held))
    if not ids:
        return []
    return list(session.scalars(select(Recall).where(Recall.id.in_(ids)).order_by(Recall.id)))


def _recall_record(session: Session, recalls: list[Recall], bag: Bag) -> list[dict[str, Any]]:
    holds = {h.recall_id: h for h in session.scalars(select(BagHold).where(BagHold.bag_id == bag.id))}
    names = _names(session, {r.started_by_id for r in recalls} | {r.ended_by_id for r in recalls}
                   | {h.lifted_by_id for h in holds.values()})
    out = []
    for recall in recalls:
        hold = holds.get(recall.id)
        out.append({
            "id": recall.id, "number": f"R-{recall.id}", "scope": recall.scope, "donor_id": recall.donor_id,
            "lot_id": recall.lot_id, "reagent_lot_id": recall.reagent_lot_id, "lookback_id": recall.lookback_id,
            "reason": recall.reason, "status": recall.status, "status_words": recall.status_words,
            "started_at": _plain(recall.started_at), "started_by": names.get(recall.started_by_id, "?"),
            # the closing, either way: ended (found invalid, holds lifted) or completed (found valid, holds kept)
            "ended_at": _plain(recall.ended_at),
            "ended_by": names.get(recall.ended_by_id, "?") if recall.ended_by_id else None,
            "end_reason": recall.end_reason,
            "bag_hold": None if hold is None else {
                "id": hold.id, "bag_status_at_hold": hold.bag_status_at_hold, "placed_at": _plain(hold.placed_at),
                "active": hold.active, "lifted_at": _plain(hold.lifted_at),
                "lifted_by": names.get(hold.lifted_by_id, "?") if hold.lifted_by_id else None},
        })
    return out


def _lot_record(session: Session, lot: Lot, donor: Donor) -> dict[str, Any]:
    steps = session.scalars(select(ProcessStep).where(ProcessStep.lot_id == lot.id).order_by(ProcessStep.id))
    deviations = session.scalars(select(Deviation).where(Deviation.lot_id == lot.id).order_by(Deviation.id))
    reagents = session.execute(select(ReagentUse, ReagentLot).join(ReagentLot, ReagentLot.id == ReagentUse.reagent_lot_id)
                               .where(ReagentUse.lot_id == lot.id).order_by(ReagentUse.id))
    return {"lot": row(lot), "donor_code": donor.code, "process_steps": [row(s) for s in steps],
            "deviations": [row(d) for d in deviations],
            "reagents": [{"use": row(use), "reagent_lot": row(reagent)} for use, reagent in reagents],
            "bags": [row(b) for b in bags_of(session, lot.id)]}


def _decision_row(decision: EligibilityDecision, names: dict[int, str]) -> dict[str, Any]:
    return {"id": decision.id, "meaning": decision.meaning, "engine_status": decision.engine_status,
            "reasons": decision.reasons, "comment": decision.comment, "judged_at": _plain(decision.judged_at),
            "decided_by": names.get(decision.decided_by_id, "?"),
            "rule_set": {"id": decision.ruleset_id, "version": decision.ruleset_version,
                         "sha256": decision.ruleset_sha256}}


def _decision(session: Session, donor: Donor, decision: EligibilityDecision | None) -> dict[str, Any]:
    """The decision in force and the donor's whole history: every decision (oldest first) with whether it was
    superseded, when, why and by which later decision (None while no decision followed: a reopened approval
    awaiting QA), the screening results and the lookbacks. The decision in force alone said nothing of the
    approval a recalled lot was released under, nor of the late reactive result that reopened it."""
    history = list(reversed(decisions_of(session, donor.id)))  # oldest first
    results = results_of(session, donor.id)
    lookbacks = list(reversed(lookbacks_of(session, donor.id)))
    names = _names(session, {d.decided_by_id for d in history} | {r.entered_by_id for r in results}
                   | {r.corrected_by_id for r in results} | {lb.opened_by_id for lb in lookbacks}
                   | {lb.closed_by_id for lb in lookbacks})
    decisions = []
    for index, item in enumerate(history):
        later = next((d for d in history[index + 1:] if item.superseded_at is not None
                      and d.judged_at >= item.superseded_at), None)
        decisions.append({**_decision_row(item, names), "in_force": item.superseded_at is None,
                          "superseded_at": _plain(item.superseded_at), "superseded_reason": item.superseded_reason,
                          "superseded_by_decision_id": later.id if later is not None else None,
                          # the lookback the reopening opened (an approval reopened by news), with its trigger
                          "lookback_ids": [lb.id for lb in lookbacks if lb.superseded_decision_id == item.id]})
    data: dict[str, Any] = {
        "donor_code": donor.code,
        "decision": _decision_row(decision, names) if decision is not None else None,
        "decisions": decisions,
        "screening_results": [{
            "id": r.id, "marker": r.marker, "method": r.method, "result": r.result,
            "sample_date": _plain(r.sample_date), "lab_reference": r.lab_reference,
            "entered_at": _plain(r.entered_at), "entered_by": names.get(r.entered_by_id, "?"),
            "corrected_by": names.get(r.corrected_by_id, "?") if r.corrected_by_id else None} for r in results],
        "lookbacks": [{
            "id": lb.id, "opened_at": _plain(lb.opened_at), "opened_by": names.get(lb.opened_by_id, "?"),
            "reason": lb.reason, "triggering_result_id": lb.triggering_result_id,
            "superseded_decision_id": lb.superseded_decision_id, "closed_at": _plain(lb.closed_at),
            "closed_by": names.get(lb.closed_by_id, "?") if lb.closed_by_id else None,
            "closure_note": lb.closure_note} for lb in lookbacks],
    }
    if decision is None:
        data["note"] = ("No eligibility decision in force for this donor." if not decisions else
                        "No eligibility decision in force for this donor now; the decisions below were superseded "
                        "(see superseded_at, superseded_reason and the lookbacks).")
    return data


def _signatures(session: Session, records: list[Any]) -> list[dict[str, Any]]:
    """Every signature of these records, oldest first, each with its manifestation as people read it (printed name,
    the instant in the site's time with UTC beside it, the meaning: Signature.manifestation), the record it signs
    in words and its verification now."""
    found = []
    seen: set[int] = set()
    for record in records:
        for signature in signatures_of(session, record):
            if signature.id not in seen:
                seen.add(signature.id)
                found.append((signature, record))
    found.sort(key=lambda pair: (pair[0].signed_at, pair[0].id))
    out = []
    for signature, record in found:
        check = verify(session, signature, record)
        out.append({**row(signature), "manifestation": signature.manifestation(),
                    "signed_at_local": local_and_utc(signature.signed_at),
                    "record": {"type": record_type_words(signature.entity_type), "id": signature.entity_id,
                               "known_as": known_name(signature.entity_type, record)},
                    "verification": {"valid": check.valid, "problem": check.problem}})
    return out


def _audit(session: Session, entities: dict[str, set[int]], mask: AuditMask) -> list[dict[str, Any]]:
    clauses = [and_(AuditEvent.entity_type == kind, AuditEvent.entity_id.in_([str(i) for i in ids]))
               for kind, ids in entities.items() if ids]
    events = list(session.scalars(select(AuditEvent).where(or_(*clauses)).order_by(AuditEvent.seq)))
    cases = mask.patient_cases(session, events)  # the events that carry a patient use case's reason
    out = []
    for event in events:
        data = row(event)
        case = event.seq in cases
        data["old_value"] = mask.value(event.entity_type, event.field, data["old_value"], patient_case=case)
        data["new_value"] = mask.value(event.entity_type, event.field, data["new_value"], patient_case=case)
        data["reason"] = mask.reason(event.entity_type, data["reason"], action=event.action, patient_case=case)
        out.append(data)
    return out


#: a space as JSON writes it at any depth of nesting (a tab in a scan is \t; a no-break space, in a custody event's
#: details_json written with ASCII escapes and again inside an audit snapshot, \\u00a0): str.split() drops these
#: too, so the bedside reads a band with one inside as the band
_ESCAPED_SPACE = (r"\\+(?:[tnrf]|u(?:000[9a-dA-D]|001[c-fC-F]|0020|0085|00[aA]0|1680|200[0-9a-fA-F]|202[89fF]"
                  r"|205[fF]|3000))")
_SPACING = rf"(?:\s|{_ESCAPED_SPACE})*"


def _character(ch: str) -> str:
    """One character of a band as it may be written in the bundle: itself, or escaped by JSON (a quote or a
    backslash behind backslashes; a letter beyond ASCII as a \\u escape of four hex digits, in either case)."""
    if ch in "\"\\":
        return r"\\*" + re.escape(ch)
    forms = [re.escape(ch)] + [rf"\\+u{ord(c):04x}" for c in sorted({ch, ch.lower()}) if not c.isascii() and len(c) == 1]
    return forms[0] if len(forms) == 1 else "(?:" + "|".join(forms) + ")"


def _wristband_pattern(wristbands: list[str]) -> re.Pattern[str] | None:
    """Every spelling of these wristbands: the bedside reads a band whatever its case and spacing
    (patients.queries.wristband_identity), and the check, its custody event and a refused start keep the scan as
    typed ("wb-100234", "WB 100234", a tab inside), so a mask of the registered spelling alone left those in the
    bundle."""
    identities = sorted({wristband_identity(w) for w in wristbands if wristband_identity(w)}, key=len, reverse=True)
    if not identities:
        return None
    # never from inside an escape: the "t" of a tab's \t would leave its backslash before the mask, and bad JSON
    return re.compile(r"(?<!\\)(?:" + "|".join(_SPACING.join(_character(ch) for ch in identity)
                                               for identity in identities) + ")", re.IGNORECASE)


def _mask(body: bytes, secrets: list[str]) -> bytes:
    pattern = _wristband_pattern(secrets)
    if pattern is None:
        return body
    return pattern.sub(REDACTED, body.decode("utf-8")).encode("utf-8")


def _json_key(value: str | None, key: str) -> Any:
    """`key` of a JSON object written as text (a custody event's details, an audit snapshot), or None."""
    try:
        data = json.loads(value) if value else None
    except ValueError:
        return None
    return data.get(key) if isinstance(data, dict) else None


def _bands_ever(session: Session, patient_ids: set[int]) -> list[str]:
    """Every band these patients wore: today's, and those a correction replaced (the patient's audit trail keeps
    each spelling, old and new, and the one registered). A bag checked or infused under the old band carries it in
    its check, custody events and their audit events, which a mask of today's band alone left readable."""
    if not patient_ids:
        return []
    bands = list(session.scalars(select(Patient.wristband_id).where(Patient.id.in_(patient_ids))))
    events = session.execute(select(AuditEvent.field, AuditEvent.old_value, AuditEvent.new_value).where(
        AuditEvent.entity_type == Patient.__tablename__, AuditEvent.entity_id.in_([str(i) for i in patient_ids]),
        or_(AuditEvent.field == "wristband_id", AuditEvent.field.is_(None))))
    for field, *values in events:
        bands += [value if field == "wristband_id" else _json_key(value, "wristband_id") for value in values]
    return [band for band in bands if isinstance(band, str) and band]


def _scanned_with(session: Session, bag: Bag, checks: list[str]) -> list[str]:
    """Every band scanned with the bag, whoever wears it (another patient's band at a STOP, a band no one wears, a
    band since corrected): the bedside checks, the custody events' details and the refused infusion starts, read
    whatever they are spelled in; not a scan of the bag's own label into the wristband field."""
    details = session.scalars(select(CustodyEvent.details_json).where(CustodyEvent.bag_id == bag.id))
    refused = session.scalars(select(AuditEvent.new_value).where(
        AuditEvent.action == "infusion_start_refused", AuditEvent.entity_type == Bag.__tablename__,
        AuditEvent.entity_id == str(bag.id)))
    scans = checks + [_json_key(value, WRISTBAND_DETAIL) for value in [*details, *refused]]
    identities = (wristband_identity(scan) for scan in scans if isinstance(scan, str))
    return [scan for scan in identities if len(scan) >= 4 and bag.din not in scan]  # not the bag's own label


def bag_evidence(session: Session, bag_id: int, key: str, user: Any = None) -> tuple[str, bytes]:
    """(file name, ZIP bytes) of the bag's evidence bundle."""
    bag = get_bag(session, bag_id)
    lot = get_lot(session, bag.lot_id)
    donor = session.get(Donor, lot.donor_id)
    assert donor is not None
    decision = current_decision(session, donor.id)
    dispositions = dispositions_of(session, lot.id)
    allocations = list(session.scalars(select(Allocation).where(Allocation.bag_id == bag.id).order_by(Allocation.id)))
    prescriptions = [p for p in (session.get(Prescription, a.prescription_id) for a in allocations) if p is not None]
    infusion = session.scalar(select(Infusion).where(Infusion.bag_id == bag.id))
    recalls = _recalls_of_bag(session, lot, bag)
    history = list(reversed(decisions_of(session, donor.id)))  # every decision, the superseded approval included
    mask = AuditMask.for_reader(user, leaves_the_site=True)
    files: dict[str, bytes] = {
        "custody-timeline.json": _json({"bag": {"id": bag.id, "din": bag.din + bag.check_character},
                                        "events": _timeline(session, bag.id, mask)}),
        "lot-record.json": _json({**_lot_record(session, lot, donor),
                                  "recalls": _recall_record(session, recalls, bag)}),
    }
    if dispositions:
        files["certificate-of-analysis.pdf"] = certificate_pdf(review_of(session, lot.id, user))
    files["donor-eligibility.json"] = _json(_decision(session, donor, decision))
    # QA's signed assessments of the bag's returns to the unit (back into stock or discarded: custody.returns)
    returns = list(session.scalars(select(ReturnAssessment).where(ReturnAssessment.bag_id == bag.id)
                                   .order_by(ReturnAssessment.id)))
    # the bedside checks of the bag (both people sign each: the checker and the second person), the lot's OOS
    # investigations (confirmed or invalidated) and QA's assessments of its deviations: signed records bearing on
    # the bag, which the bundle left out
    checks_of_bag = list(session.scalars(select(TwoPersonCheck).where(TwoPersonCheck.bag_id == bag.id)
                                         .order_by(TwoPersonCheck.id)))
    oos = list(session.scalars(select(OosInvestigation).where(OosInvestigation.lot_id == lot.id)
                               .order_by(OosInvestigation.id)))
    assessments = list(session.scalars(select(DeviationAssessment).where(DeviationAssessment.lot_id == lot.id)
                                       .order_by(DeviationAssessment.id)))
    signed = [*history, *dispositions, *recalls, *prescriptions, *returns, *checks_of_bag, *oos, *assessments]
    files["signatures.json"] = _json(_signatures(session, signed))
    entities: dict[str, set[int]] = {
        Bag.__tablename__: {bag.id}, Lot.__tablename__: {lot.id}, Donor.__tablename__: {donor.id},
        EligibilityDecision.__tablename__: {d.id for d in history},
        ScreeningResult.__tablename__: set(session.scalars(select(ScreeningResult.id)
                                                           .where(ScreeningResult.donor_id == donor.id))),
        DonorLookback.__tablename__: set(session.scalars(select(DonorLookback.id)
                                                         .where(DonorLookback.donor_id == donor.id))),
        Recall.__tablename__: {r.id for r in recalls},
        BagHold.__tablename__: set(session.scalars(select(BagHold.id).where(BagHold.bag_id == bag.id))),
        "release_disposition": {d.id for d in dispositions},
        OosInvestigation.__tablename__: {o.id for o in oos},
        DeviationAssessment.__tablename__: {a.id for a in assessments},
        Prescription.__tablename__: {p.id for p in prescriptions},
        Allocation.__tablename__: {a.id for a in allocations},
        CustodyEvent.__tablename__: set(session.scalars(select(CustodyEvent.id).where(CustodyEvent.bag_id == bag.id))),
        TwoPersonCheck.__tablename__: set(session.scalars(select(TwoPersonCheck.id)
                                                          .where(TwoPersonCheck.bag_id == bag.id))),
        Infusion.__tablename__: {infusion.id} if infusion else set(),
        ReturnAssessment.__tablename__: {r.id for r in returns},
        InfusionReaction.__tablename__: set(session.scalars(select(InfusionReaction.id).where(
            InfusionReaction.infusion_id == infusion.id))) if infusion else set(),
    }
    files["audit-events.json"] = _json(_audit(session, entities, mask))
    # the patients the bag was allocated to or given to, and whoever was scanned with it at the bedside (a STOP for
    # another patient's wristband, or a band no patient wears, e.g. a hospital number, keeps the scan as typed)
    # Each is masked in every spelling it was scanned in or worn under, a band corrected since included: by key in
    # the records (privacy: the check's scan, the custody event's wristband), and wherever else it is written.
    checks = list(session.execute(select(TwoPersonCheck.patient_id, TwoPersonCheck.wristband_scan)
                                  .where(TwoPersonCheck.bag_id == bag.id)))
    patient_ids = ({a.patient_id for a in allocations} | ({infusion.patient_id} if infusion else set())
                   | {patient_id for patient_id, _scan in checks if patient_id is not None})
    wristbands = _bands_ever(session, patient_ids) + _scanned_with(session, bag, [scan for _id, scan in checks if scan])
    files = {name: _mask(body, wristbands) if name.endswith(".json") else body for name, body in files.items()}
    din = bag.din + bag.check_character
    subject = {"bag_id": bag.id, "din": din, "lot_number": lot.lot_number, "donor_code": donor.code}
    return f"evidence-{din}.zip", evidence.pack(files, key, subject=subject, generated_at=utcnow().isoformat())
