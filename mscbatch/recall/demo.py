"""Demo (`make run`): a recall for QA to work through, left active.

A second adipose donor ("LB") is screened negative and approved by qa; the technician makes an AT-MSC lot from her
(P0-P3, the demo reagent lots linked, 4 bags stored in Box A1), sends it to quarantine and enters the passing panel,
qa releases it (signed) and the technician prints its labels. Then a look-back retest of the donor's retained sample
comes back anti-HIV-1/2 reactive (entered by the technician, as every screening result): the donor's approval is
reopened and a lookback opened, and qa starts the donor's recall (signed), which recalls the lot, holds its 4 bags and
closes the lookback. The recall is left active: QA opens it, reads the report, discards the held bags and completes it.
Everything goes through the services. The other demo stories are untouched (their donors, lots and bags are not this
donor's). Made once: a later run says where the recall stands."""
from __future__ import annotations

from datetime import date, timedelta

from flask import current_app, has_app_context
from sqlalchemy import select
from sqlalchemy.orm import Session

from mscbatch.auth.models import User
from mscbatch.core.identifiers import din_shown
from mscbatch.custody.demo import _label_key
from mscbatch.donors import decisions
from mscbatch.donors import services as donors
from mscbatch.donors.demo import DEMO_PASSWORD, _screen
from mscbatch.donors.models import APPROVED, Donor
from mscbatch.labelling.demo import DEMO_BASE_URL
from mscbatch.labelling.services import print_labels
from mscbatch.lots.demo import _registered_reagents, adipose_lot
from mscbatch.lots.models import Bag, Lot, StorageLocation
from mscbatch.lots.queries import position_label
from mscbatch.recall import services as recalls
from mscbatch.recall.models import Recall
from mscbatch.release import release
from mscbatch.release.demo import enter_panel
from mscbatch.site import site_today

RECALL_DONOR_INITIALS = "LB"
RECALL_BOX = "Box A1"
LOOKBACK_LAB_REFERENCE = "LAB-LOOKBACK-01"
RECALL_REASON = ("Look-back retest of the donor's retained sample came back anti-HIV-1/2 reactive: the donor is no "
                 "longer eligible and her lot must not be given.")
_NEXT = ("  next, as qa: Recalls, R-{id}: see the held bags, open the Report (PDF), discard a held bag (Discard "
         "(recalled) on its row), and once every bag is discarded, complete the recall (signed)")


def recall_donor(session: Session) -> Donor | None:
    """The demo's second adipose donor, whose lot the demo recalls."""
    return session.scalar(select(Donor).where(Donor.tissue_source == "adipose_tissue",
                                              Donor.initials == RECALL_DONOR_INITIALS).order_by(Donor.id))


def demo_recall(session: Session) -> Recall | None:
    donor = recall_donor(session)
    return None if donor is None else session.scalar(
        select(Recall).where(Recall.scope == "donor", Recall.donor_id == donor.id).order_by(Recall.id))


def _user(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def _where_it_stands(session: Session, donor: Donor) -> list[str]:
    recall = demo_recall(session)
    if recall is None:
        return [f"  {donor.code} ({RECALL_DONOR_INITIALS}): no recall started (an earlier run stopped before it)"]
    held = recalls.holds_of(session, recall.id)
    in_stock = [bag for _hold, bag in held if bag.status not in ("discarded", "infused")]
    discarded = [bag for _hold, bag in held if bag.status == "discarded"]
    lots = sorted({bag.lot_id for _hold, bag in held})
    numbers = ", ".join(session.get(Lot, lot_id).lot_number for lot_id in lots) or "no lot"
    head = f"  R-{recall.id}, donor {donor.code} (lot {numbers}): {recall.status}"
    if recall.status != "active":
        return [f"{head} (closed by QA)"]
    lines = [f"{head}; {len(in_stock)} bag(s) held in stock"
             + (f": {', '.join(din_shown(b) for b in in_stock)}" if in_stock else "")
             + (f"; {len(discarded)} discarded" if discarded else "")]
    return [*lines, _NEXT.format(id=recall.id)]


def seed_recall(session: Session) -> list[str]:
    donor = recall_donor(session)
    if donor is not None:  # made by an earlier run: where its recall stands now
        return _where_it_stands(session, donor)
    tech, qa = _user(session, "tech"), _user(session, "qa")
    used = _registered_reagents(session)
    box_id = session.scalar(select(StorageLocation.id).where(StorageLocation.kind == "box",
                                                             StorageLocation.name == RECALL_BOX).order_by(StorageLocation.id))
    if tech is None or qa is None or used is None or box_id is None:
        return ["  (skipped: a demo user, the demo reagent lots or Box A1 is missing)"]
    today = site_today()
    start = today - timedelta(days=22)
    donor = donors.register_donor(session, tech, donors.DonorDetails(
        tissue_source="adipose_tissue", rule_set_id="adipose_at_don", donor_type="unrelated",
        initials=RECALL_DONOR_INITIALS, date_of_birth=date(1979, 7, 2), sex="female", weight_kg="71",
        consent_signed=True, consent_date=today - timedelta(days=40), planned_collection_date=start))
    sample = start + timedelta(days=1)
    _screen(session, tech, donor, sample)
    decisions.decide(session, qa, donor.id, APPROVED, DEMO_PASSWORD)
    lot, frozen = adipose_lot(session, tech, donor, used, box_id, start, tissue_g="48",
                              counts=[(4, 36, "96.0", 6), (3, 25, "95.0", 5), (3, 26, "94.5", 5), (20, 140, "93.0", 5)],
                              harvest_viability="93.0")
    enter_panel(session, tech, lot.id)
    release.release_lot(session, qa, lot.id, DEMO_PASSWORD)
    base_url = (current_app.config.get("LABEL_BASE_URL") if has_app_context() else None) or DEMO_BASE_URL
    print_labels(session, tech, lot.id, print_format="lot", base_url=base_url, key=_label_key())
    # the retained donation sample, tested again: entered by the technician (donors.services._require_entry_role)
    donors.record_result(session, tech, donor.id, marker="anti_hiv_1_2", result="positive", sample_date=sample,
                         lab_reference=LOOKBACK_LAB_REFERENCE)
    started = recalls.start_recall(session, qa, scope="donor", target_id=donor.id, reason=RECALL_REASON,
                                   password=DEMO_PASSWORD)
    box = session.get(StorageLocation, box_id)
    positions = ", ".join(position_label(box, number) for number in sorted(
        session.get(Bag, bag.id).position or 0 for bag in frozen))  # as the lot page says them ("A5, B1, ...")
    return [f"  {donor.code} ({RECALL_DONOR_INITIALS}), adipose tissue: screened negative, approved by {qa.username}; "
            f"{lot.lot_number} AT-MSC made by {tech.username}, {len(frozen)} bags in LN2 tank 1 / Rack A / {RECALL_BOX} "
            f"(positions {positions}), full panel entered, released by {qa.username} (signed), "
            "labels printed",
            f"  then a look-back retest of the donor's retained sample ({LOOKBACK_LAB_REFERENCE}) came back "
            f"anti-HIV-1/2 reactive: {donor.code}'s approval was reopened and a lookback opened",
            f"  {qa.username} started recall R-{started.recall_id} of donor {donor.code} (signed): lot "
            f"{', '.join(started.recalled_lots)} recalled, {started.held_bags} bags held, the lookback closed by the "
            "recall; left active",
            _NEXT.format(id=started.recall_id)]
