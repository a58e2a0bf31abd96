"""Rows for the patient tests: donors, released lots and bags written directly (the lots and release
capabilities have their own tests), and patients entered through the services."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from itertools import count

from sqlalchemy import select
from stdnum.iso7064 import mod_37_2

from mscbatch.audit.context import use_case
from mscbatch.auth.models import User
from mscbatch.database import utcnow
from mscbatch.donors.models import Donor
from mscbatch.labelling.models import LabelPrint, LabelPrintItem
from mscbatch.lots.models import Bag, Lot, StorageLocation
from mscbatch.lots.queries import product_catalogue
from mscbatch.patients import enrolment, services
from mscbatch.patients.demo import SLE_VALUES, SSC_VALUES
from mscbatch.patients.queries import protocols
from mscbatch.site import site_today
from tests.conftest import PASSWORD

SEQ = count(1)
SLE = "protocol-sle-uc"
SSC = "protocol-ssc-bm"
SLE_OK, SSC_OK = SLE_VALUES, SSC_VALUES  # a patient who meets every inclusion criterion


def user(session, name: str) -> User:  # type: ignore[no-untyped-def]
    return session.scalar(select(User).where(User.username == name))


def donor(session, actor, *, familial_for: str | None = None) -> Donor:  # type: ignore[no-untyped-def]
    n = next(SEQ)
    with use_case(session, actor):
        row = Donor(code=f"D-2099-{n:04d}", tissue_source="bone_marrow" if familial_for else "umbilical_cord",
                    rule_set_id="marrow_ssc_bm" if familial_for else "cord_eu", protocol="test",
                    donor_type="familial" if familial_for else "unrelated", recipient_code=familial_for,
                    relationship="sibling" if familial_for else None, status="approved", registered_by_id=actor.id)
        session.add(row)
    return row


def lot_with_bags(session, actor, donor_row: Donor, *, product: str = "UC-MSC", bags: int = 3,  # type: ignore[no-untyped-def]
                  cells: int = 50_000_000, volume_ml: str = "25", status: str = "released",
                  expires_in_days: int = 300, labelled: bool = True, placed: bool = True) -> list[Bag]:
    n = next(SEQ)
    now = utcnow()
    with use_case(session, actor):
        lot = Lot(lot_number=f"T-{n:05d}", product_id=product, product_name=product, product_class="MSC(WJ)",
                  donor_id=donor_row.id, donor_gate="approved", status=status, collection_at=now - timedelta(days=30),
                  collection_site="test", tissue_amount=Decimal(10), tissue_unit="g", harvested_at=now,
                  harvest_total_cells=cells * bags * 2, harvest_viability_percent=Decimal(100),
                  harvest_viable_cells=cells * bags * 2, frozen_at=now, cell_basis="viable",
                  expires_at=now + timedelta(days=expires_in_days), site_config_version="1", site_config_sha256="0" * 64,
                  products_version="1", products_sha256="0" * 64, created_by_id=actor.id)
        session.add(lot)
        session.flush()
        rows = []
        catalogue_product = product_catalogue().get(product)  # the bag's code says directed / biohazard as made
        for b in range(1, bags + 1):
            seq = n * 100 + b
            din = f"X9999{99}{seq:06d}"
            rows.append(Bag(lot_id=lot.id, bag_number=b, bag_count=bags, division=f"{chr(64 + b)}0", din=din,
                            din_fin="X9999", din_year=99, din_sequence=seq, check_character=mod_37_2.calc_check_digit(din),
                            product_code=catalogue_product.product_code(f"{chr(64 + b)}0").text,
                            volume_ml=Decimal(volume_ml),
                            cells_per_ml=int(cells / Decimal(volume_ml)), total_cells=cells, dmso_percent=Decimal(10),
                            expires_at=now + timedelta(days=expires_in_days), status="stored"))
        if placed:  # a bag is in stock only once it has a box position (lots.queries.available_bags)
            box = _box(session, actor, lot.lot_number)
            for position, row in enumerate(rows, start=1):
                row.box_id, row.position = box.id, position
        session.add_all(rows)
        if labelled and status in ("released", "conditional_release"):
            session.flush()
            released_labels(session, actor, lot, rows)
    return rows


def _box(session, actor, name: str) -> StorageLocation:  # type: ignore[no-untyped-def]
    """A box of its own for a lot's bags, in a tank cold enough for every product."""
    parent = None
    for kind, extra in (("site", {}), ("tank", {"temperature_max_c": Decimal(-150)}), ("rack", {}),
                        ("box", {"rows": 9, "columns": 9})):
        parent = StorageLocation(kind=kind, name=f"{kind} {name}", parent_id=parent.id if parent else None,
                                 created_by_id=actor.id, **extra)
        session.add(parent)
        session.flush()
    assert parent is not None
    return parent


def released_labels(session, actor, lot: Lot, bags: list[Bag]) -> None:  # type: ignore[no-untyped-def]
    """The record of the bags' released labels (a unit labels a released lot before any bag leaves it:
    custody dispatch asks for it), written directly as the lot is: the labels' printing has its own tests."""
    job = LabelPrint(lot_id=lot.id, print_format="lot", layout_id="bag-label", layout_version="test",
                     layout_sha256="0" * 64, bag_count=len(bags), pdf_sha256="0" * 64, printed_by_id=actor.id)
    session.add(job)
    session.flush()
    session.add_all([LabelPrintItem(print_id=job.id, bag_id=bag.id, lot_status=lot.status, released=True)
                     for bag in bags])


def patient(session, clinician, *, protocol_id: str = SLE, code: str = "", weight: str | None = "62.5",  # type: ignore[no-untyped-def]
            weighed_days_ago: int = 1, enrol: bool = True):
    row = services.register_patient(session, clinician, services.PatientDetails(
        protocol_id=protocol_id, code=code, initials="AB", date_of_birth=date(1980, 1, 1), sex="female",
        ward="Ward 3"))
    if weight:
        services.record_weight(session, clinician, row.id, weight_kg=weight,
                               measured_on=site_today() - timedelta(days=weighed_days_ago))
    if enrol:
        values = SLE_OK if protocols()[protocol_id].short_name == "SLE-UC" else SSC_OK
        check = enrolment.check_enrolment(session, clinician, row.id, values)
        enrolment.enrol(session, clinician, check.id, PASSWORD)
    return row
