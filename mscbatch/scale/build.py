"""One planned lot -> its rows: donor and screening, QA decision, lot record, bags in storage, release,
patients with prescriptions, custody events, bedside checks and infusions (mscbatch.scale.records.Batch).

Values come from the project's own functions: DINs and check characters (core.identifiers), product codes,
expiry (core.culture), the donor eligibility engine, release verdicts (core.verdicts), enrolment checks and the
dosing core (calculate_dose), signatures (core.signing). Every record is made as its service makes it, with
the business times of a lot's life (collection, freezing, release, prescription, ward) in the past.
"""
from __future__ import annotations

import json
import random
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from types import SimpleNamespace
from typing import Any

from mscbatch.core.culture import (
    BagPlan,
    expiry_at,
    plan_cryopreservation,
    viable_cells,
)
from mscbatch.core.dosing import CandidateBag, DoseRefused, calculate_dose
from mscbatch.core.eligibility import DonorFacts, MarkerResult, evaluate
from mscbatch.core.enrolment import completed_years
from mscbatch.core.identifiers import Din, division_code, make_din
from mscbatch.core.verdicts import LabResult
from mscbatch.custody.models import CustodyEvent, Infusion, TwoPersonCheck
from mscbatch.donors.decisions import reasons_json
from mscbatch.donors.models import APPROVED, Donor, EligibilityDecision, QuestionnaireAnswer, ScreeningResult
from mscbatch.lots.models import Bag, Lot, ProcessStep, ReagentUse
from mscbatch.lots.reagents import CRYO_STAGE
from mscbatch.patients.inventory import allocation_data
from mscbatch.patients.models import (
    ENROLLED,
    PRESCRIBED,
    Allocation,
    EnrolmentCheck,
    Patient,
    Prescription,
    WeightMeasurement,
)
from mscbatch.release.demo import PASSING_PANEL
from mscbatch.release.models import DISPOSITION_KINDS, LotDisposition, ReleaseResult
from mscbatch.scale.context import (
    BAG_ML,
    DMSO,
    ENDOTOXIN,
    LETTERS,
    SAMPLE_OFFSETS,
    SOURCES,
    Context,
    as_utc,
    enrolment_check,
    kg_of,
    local_at,
    next_seq,
    passage_template,
    verdict_snapshot,
)
from mscbatch.scale.records import Batch
from mscbatch.scale.shape import STOCK_SHARE, LotPlan, RxPlan

#: json.dumps(..., sort_keys=True) makes a new encoder per call: one made once gives the same text, cheaper
_SORTED = json.JSONEncoder(sort_keys=True)


class LotBuilder:
    """Builds one lot (and everything hanging from it) into a Batch."""

    def __init__(self, ctx: Context, batch: Batch, lot_plan: LotPlan):
        self.ctx, self.batch, self.plan = ctx, batch, lot_plan
        self.rng = random.Random(f"mscbatch-scale:{ctx.seed}:lot:{lot_plan.index}")
        self.u = ctx.users
        self.product = ctx.products.get(lot_plan.product_id)
        (self.rule_set_id, self.donor_type, self.amount, self.unit, self.site_name,
         self.trial) = SOURCES[lot_plan.product_id]
        self.collection_day = ctx.now.astimezone(ctx.site.tz).date() - timedelta(days=lot_plan.collection_days_ago)
        self.collection_at = local_at(ctx, self.collection_day, 8 + self.rng.randint(0, 3), self.rng.randint(0, 59))

    # ---- donor ------------------------------------------------------------------------------------------

    def donor(self) -> dict[str, Any]:
        ctx, rng, plan, tech = self.ctx, self.rng, self.plan, self.u["tech"]
        rule_set = ctx.rule_sets[self.rule_set_id]
        year = self.collection_day.year
        donor_id = ctx.ids("donor")
        self.recipient_code = None
        if self.donor_type == "familial":
            self.recipient_code = self._patient_code("SSc-BM")
        female = plan.donor_female
        values = dict(
            id=donor_id, code=f"D-{year}-{next_seq(ctx.donor_seq, year):04d}", tissue_source=self.product.tissue_source,
            rule_set_id=rule_set.id, protocol=rule_set.protocol, donor_type=self.donor_type,
            relationship="sibling" if self.recipient_code else None, recipient_code=self.recipient_code,
            initials=rng.choice(LETTERS) + rng.choice(LETTERS),
            date_of_birth=self.collection_day.replace(year=year - plan.donor_age, day=1),
            sex="female" if female else "male",
            weight_kg=Decimal(rng.randint(550, 950)) / 10 if self.product.tissue_source != "umbilical_cord" else None,
            consent_signed=True, consent_date=self.collection_day - timedelta(days=20),
            social_security=True if self.donor_type == "familial" else None,
            childbearing_potential=False if self.donor_type == "familial" and female else None,
            contraception=None, retest_180_days_negative=None, planned_collection_date=self.collection_day,
            registered_by_id=tech.id, registered_at=local_at(ctx, self.collection_day - timedelta(days=14), 9),
            updated_by_id=None)
        markers = [m for m in rule_set.markers if m.required]
        facts = None
        for offset in SAMPLE_OFFSETS:  # the first sample day inside every marker window of the rule set
            sample = self.collection_day + timedelta(days=offset)
            facts = DonorFacts(collection_date=self.collection_day, date_of_birth=values["date_of_birth"],
                               sex=values["sex"], weight_kg=values["weight_kg"], consent_signed=True,
                               social_security=values["social_security"], relationship=values["relationship"],
                               childbearing_potential=values["childbearing_potential"], contraception=None,
                               results=tuple(MarkerResult(m.id, m.method, "negative", sample) for m in markers),
                               answers={q.id: False for q in rule_set.questions}, retest_180_days_negative=None)
            evaluation = evaluate(rule_set, facts)
            if evaluation.status == "eligible":
                break
        entered = local_at(ctx, sample + timedelta(days=1), 14)
        self.batch.add(Donor, tech, status="approved", **values)
        for n, marker in enumerate(markers, start=1):
            self.batch.add(ScreeningResult, tech, audit=False, id=ctx.ids("donor_screening_result"), donor_id=donor_id,
                           marker=marker.id, method=marker.method, result="negative", sample_date=sample,
                           lab_reference=f"LAB-{values['code']}-{n:02d}", entered_by_id=tech.id, entered_at=entered,
                           corrected_by_id=None)
        for question in rule_set.questions:
            self.batch.add(QuestionnaireAnswer, tech, audit=False, id=ctx.ids("donor_questionnaire_answer"), donor_id=donor_id,
                           question_id=question.id, answer="no", detail="", answered_by_id=tech.id,
                           answered_at=entered)
        if evaluation.status != "eligible":
            raise RuntimeError(f"generated donor {values['code']} is {evaluation.status}: the shape is wrong "
                               f"{[r.text for r in evaluation.reasons if r.outcome != 'met']}")
        qa = self.u["qa"]
        judged = local_at(ctx, sample + timedelta(days=2), 11)
        self.judged_at = judged
        decision = dict(id=ctx.ids("donor_eligibility_decision"), donor_id=donor_id, engine_status=evaluation.status,
                        meaning=APPROVED, reasons_json=reasons_json(evaluation), comment="",
                        ruleset_id=evaluation.ruleset_id, ruleset_version=evaluation.ruleset_version,
                        ruleset_sha256=evaluation.ruleset_sha256, judged_at=judged, decided_by_id=qa.id,
                        superseded_at=None, superseded_reason=None)
        self.batch.add(EligibilityDecision, qa, first={"locked_at": None}, locked_at=judged, **decision)
        self.batch.sign(ctx.ids("signature"), EligibilityDecision, decision, qa, APPROVED, judged)
        ctx.counts["donors"] += 1
        self.donor_row = values
        return values

    # ---- lot, steps, bags -------------------------------------------------------------------------------

    def lot(self) -> None:
        ctx, rng, plan, tech = self.ctx, self.rng, self.plan, self.u["tech"]
        year = self.collection_day.year
        lot_id = ctx.ids("lot")
        day = self.collection_day
        steps = [(None, "isolation", day, None, None, None, None)]
        for number, seeded, harvested, pd, cumulative in passage_template(plan.product_id):
            day += timedelta(days=5 + (1 if number == 0 else 0))
            steps.append((number, "passage", day, seeded, harvested, pd, cumulative))
        frozen_day = self.collection_day + timedelta(days=plan.freeze_after_days)
        self.harvested_at, self.frozen_at = local_at(ctx, frozen_day, 10), local_at(ctx, frozen_day, 12)
        bag_plan = BagPlan(volume_ml=BAG_ML, cells_per_ml=plan.cells_per_ml, dmso_percent=DMSO)
        needed = BAG_ML * plan.cells_per_ml * plan.bag_count
        viability = Decimal(plan.viability_tenths) / 10
        total = int(needed * Decimal("1.08") * 100 / viability)
        viable = viable_cells(total, viability)
        cryo = plan_cryopreservation(total, viable, [bag_plan] * plan.bag_count, basis="viable")
        expires = as_utc(expiry_at(self.frozen_at.astimezone(ctx.site.tz), self.product.shelf_life))
        released = not plan.quarantine
        self.release_at = local_at(ctx, frozen_day + timedelta(days=5), 15) if released else None
        expired = expires <= ctx.now
        status = "expired" if released and expired else "released" if released else "quarantine"
        changed_at = expires if status == "expired" else self.release_at or self.frozen_at + timedelta(hours=1)
        changed_by = None if status == "expired" else self.u["qa"].id if released else tech.id
        lot = dict(
            id=lot_id, lot_number=ctx.site.format_lot_number(year, next_seq(ctx.lot_seq, year)),
            product_id=self.product.id, product_name=self.product.name, product_class=self.product.product_class,
            donor_id=self.donor_row["id"], donor_gate="approved", collection_at=self.collection_at,
            collection_site=f"{self.site_name} {rng.randint(1, 4)}",
            tissue_amount=Decimal(rng.randint(self.amount[0] * 10, self.amount[1] * 10)) / 10,
            tissue_unit=self.unit, site_config_version=ctx.site.version, site_config_sha256=ctx.site.sha256,
            products_version=ctx.products.version, products_sha256=ctx.products.sha256, created_by_id=tech.id,
            created_at=max(self.collection_at + timedelta(hours=2), self.judged_at + timedelta(hours=1)))
        final = dict(lot, status=status, harvested_at=self.harvested_at, harvest_total_cells=total,
                     harvest_viability_percent=viability, harvest_viable_cells=viable, frozen_at=self.frozen_at,
                     cell_basis="viable", expires_at=expires, status_changed_at=changed_at,
                     status_changed_by_id=changed_by, locked_at=self.release_at)
        self.lot_row = self.batch.add(Lot, tech, **final)
        step_ids = []
        for number, kind, performed, seeded, harvested, pd, cumulative_pd in steps:
            step_ids.append(ctx.ids("lot_process_step"))
            self.batch.add(ProcessStep, tech, audit=False, id=step_ids[-1], lot_id=lot_id, kind=kind, passage_number=number,
                           performed_on=performed, seeded_cells=seeded, harvested_cells=harvested,
                           viability_percent=None if kind == "isolation" else Decimal("95.5"),
                           days_in_culture=None if kind == "isolation" else Decimal(5), population_doublings=pd,
                           cumulative_pd=cumulative_pd, warnings="", notes="Explant culture" if kind == "isolation"
                           else "", recorded_by_id=tech.id, recorded_at=local_at(ctx, performed, 17))
        # the reagent lots the products require before quarantine (lots.reagent_rules): medium and platelet lysate
        # at the isolation, trypsin at P0's harvest, DMSO at cryopreservation
        for kind, step_id, stage, used_on in (("medium", step_ids[0], "Isolation", self.collection_day),
                                              ("platelet_lysate", step_ids[0], "Isolation", self.collection_day),
                                              ("trypsin", step_ids[1], "P0", steps[1][2]),
                                              ("dmso", None, CRYO_STAGE, frozen_day)):
            self.batch.add(ReagentUse, tech, audit=False, id=ctx.ids("reagent_use"), lot_id=lot_id,
                           reagent_lot_id=ctx.reagents[(kind, used_on.year)], step_id=step_id, stage=stage,
                           used_on=used_on, recorded_by_id=tech.id, recorded_at=local_at(ctx, used_on, 17))
        self.bags = self._bags(lot_id, cryo.bag_cells, expires, frozen_day)
        ctx.counts["lots"] += 1
        if released:
            self._release(lot_id, viable, status)

    def _bags(self, lot_id: int, cells: Any, expires: datetime, frozen_day: date) -> list[dict[str, Any]]:
        ctx, tech, count = self.ctx, self.u["tech"], self.plan.bag_count
        year = frozen_day.year % 100
        rows = []
        for number, bag_cells in enumerate(cells, start=1):
            din: Din = make_din(ctx.site.fin, year, next_seq(ctx.din_seq, year))
            division = division_code(number, count)
            box_id, position, location = ctx.next_position()
            bag = dict(id=ctx.ids("bag"), lot_id=lot_id, bag_number=number, bag_count=count, division=division,
                       din=din.text, din_fin=din.fin, din_year=din.year, din_sequence=din.sequence,
                       check_character=din.check_character, product_code=self.product.product_code(division).text,
                       volume_ml=BAG_ML, cells_per_ml=self.plan.cells_per_ml, total_cells=int(bag_cells),
                       dmso_percent=DMSO, expires_at=expires, status="stored", box_id=box_id, position=position,
                       created_at=self.frozen_at)
            rows.append((self.batch.add(Bag, tech, **bag), location))  # snapshot: the bag as the run leaves it
        for bag, location in rows:
            self.custody(bag, "stored", tech, self.frozen_at + timedelta(minutes=30), location=location, note=True,
                         details={"from_box_id": None, "from_position": None, "to_box_id": bag["box_id"],
                                  "to_position": bag["position"]})
        ctx.counts["bags"] += count
        return [bag for bag, _location in rows]

    def _release(self, lot_id: int, viable: int, status: str) -> None:
        ctx, qc, qa = self.ctx, self.u["tech2"], self.u["qa"]
        spec = ctx.specs[self.product.product_class]
        tested_on = (self.release_at - timedelta(days=1)).astimezone(ctx.site.tz).date()
        entered_at = self.release_at - timedelta(hours=20)
        results = {}
        for test in spec.tests:
            value = str(viable) if test.id == "viable_cell_count" else PASSING_PANEL[test.id][0]
            self.batch.add(ReleaseResult, qc, audit=False, id=ctx.ids("release_result"), lot_id=lot_id, test_id=test.id,
                           spec_id=spec.id, spec_version=spec.version, spec_sha256=spec.sha256, value=value,
                           unit=test.unit, first_value=value, method=test.method, analyst=qc.full_name,
                           tested_on=tested_on, instrument="Cytometer FC-1" if test.unit == "percent" else "",
                           reagent_lot="", entered_by_id=qc.id, entered_at=entered_at, corrected_by_id=None,
                           corrected_at=None, invalidated_at=None, invalidated_reason=None)
            results[test.id] = LabResult(test_id=test.id, value=value, unit=test.unit, entered_at=entered_at,
                                         invalidated=False)
        snapshot = verdict_snapshot(spec, results)
        lot_content = json.dumps(Lot.signed_content(SimpleNamespace(**self.lot_row)), sort_keys=True, default=str)
        disposition = dict(id=ctx.ids("release_disposition"), lot_id=lot_id, kind="release", spec_id=spec.id,
                           spec_version=spec.version, spec_sha256=spec.sha256, verdicts_json=snapshot,
                           lot_content_json=lot_content, justification="", pending_tests="", patient_code=None,
                           clinician_id=None, decided_by_id=qa.id, created_at=self.release_at)
        meaning = DISPOSITION_KINDS["release"]
        self.batch.add(LotDisposition, qa, first={"signed_at": None, "locked_at": None}, signed_at=self.release_at,
                       locked_at=self.release_at, **disposition)
        self.batch.sign(ctx.ids("signature"), LotDisposition, disposition, qa, meaning, self.release_at)
        for bag in self.bags:
            self.custody(bag, "released", qa, self.release_at, details={"lot_status": "released"}, note=True)

    # ---- custody ----------------------------------------------------------------------------------------

    def custody(self, bag: dict[str, Any], kind: str, actor: Any, at: datetime, *, to: str | None = None,
                location: str = "", scan: str = "", details: dict[str, Any] | None = None, reason: str = "",
                note: bool = False) -> None:
        """One custody event; `to` moves the bag's status (shown by the bag's insert event, see records). `note`: written as
        custody.log.note writes it (to_status = the status after), else as services.record_event (to_status =
        the target state, None for events that change no state)."""
        current = bag["status"]
        self.batch.add(CustodyEvent, actor, audit=False, id=self.ctx.ids("custody_event"), bag_id=bag["id"], kind=kind,
                       occurred_at=at, actor_id=actor.id, location=location, scan=scan, from_status=current,
                       to_status=(to or current) if note else to, details_json=_SORTED.encode(details) if details else "{}",
                       reason=reason)
        self.ctx.counts["custody_events"] += 1
        if to is not None:
            bag["status"] = to

    # ---- patients and prescriptions ---------------------------------------------------------------------

    def _patient_code(self, short_name: str) -> str:
        """<PROTOCOL>-<sequence> as patients.services makes it, skipping codes the unit already uses."""
        while True:
            code = f"{short_name.upper()}-{next_seq(self.ctx.patient_seq, short_name):03d}"
            if code not in self.ctx.taken_codes:
                return code

    def prescriptions(self) -> None:
        if self.trial is None or self.release_at is None:
            return
        free = list(self.bags)
        for n, rx in enumerate(self.plan.prescriptions):
            if self.trial == "SLE-UC" and len(free) < self.plan.bag_count * STOCK_SHARE:
                break  # part of the lot stays in stock
            taken = self._prescribe(rx, n, free)
            if taken is None:
                break
            free = [bag for bag in free if bag["id"] not in taken]

    def _prescribe(self, rx: RxPlan, n: int, free: list[dict[str, Any]]) -> set[int] | None:
        ctx = self.ctx
        protocol = ctx.protocols[self.trial]
        day = self.release_at.astimezone(ctx.site.tz).date() + timedelta(days=3 + 7 * n)
        if rx.state != "infused":
            latest = ctx.now.astimezone(ctx.site.tz).date() - timedelta(days=2)
            # a bag received on the ward waits there a day, not weeks: its prescription and the weight its dose
            # was calculated for are recent (the bedside check stops a dose weight older than the protocol allows)
            day = latest if rx.state == "received" else min(day, latest)
            if day < self.release_at.astimezone(ctx.site.tz).date():
                return None
        if rx.state == "infused" and local_at(ctx, day + timedelta(days=1), 14) >= ctx.now:
            rx = RxPlan("received", rx.weight_kg, rx.level_index, rx.sex, rx.birth_year_offset)
        code = self.recipient_code if self.trial == "SSc-BM" else self._patient_code(self.trial)
        planned_at = local_at(ctx, day + timedelta(days=1), 10)
        level = protocol.dosing.dose_levels_cells_per_kg[min(rx.level_index,
                                                                len(protocol.dosing.dose_levels_cells_per_kg) - 1)]
        viability = self.lot_row["harvest_viability_percent"]
        candidates = [CandidateBag(
            bag_id=str(bag["id"]), din=bag["din"], viable_cells=Decimal(bag["total_cells"]),
            total_cells=(Decimal(bag["total_cells"]) * 100 / viability).to_integral_value(ROUND_FLOOR),
            volume_ml=bag["volume_ml"], dmso_percent=bag["dmso_percent"], expires_at=bag["expires_at"],
            released=True, allocated=False, on_hold=False, product_id=self.product.id,
            donor_id=str(self.donor_row["id"]), intended_recipient_id=self.recipient_code,
            endotoxin_eu_per_ml=ENDOTOXIN) for bag in free if bag["status"] == "stored"]
        familial = str(self.donor_row["id"]) if self.trial == "SSc-BM" else None
        try:
            allocation = calculate_dose(protocol, patient_id=code, enrolled=True, dose_level_cells_per_kg=level,
                                        weight_kg=kg_of(rx), weight_measured_on=day - timedelta(days=1),
                                        today=day, planned_at=planned_at, infusion_on=planned_at.astimezone(ctx.site.tz).date(),
                                        bags=candidates, familial_donor_id=familial)
        except DoseRefused:
            return None  # not enough cells left in the lot for this patient: nobody is registered
        patient_id = ctx.ids("patient")
        self._patient(patient_id, code, rx, day, protocol)
        return self._prescription(patient_id, code, rx, day, protocol, allocation, level)

    def _patient(self, patient_id: int, code: str, rx: RxPlan, day: date, protocol: Any) -> None:
        ctx, clinician, rng = self.ctx, self.u["clinician"], self.rng
        registered = local_at(ctx, day - timedelta(days=5), 10)
        birth = date(day.year - rx.birth_year_offset, 1 + rng.randint(0, 11), 1 + rng.randint(0, 27))
        self.patient_row = dict(
            id=patient_id, code=code, protocol_id=protocol.id, initials=rng.choice(LETTERS) + rng.choice(LETTERS),
            date_of_birth=birth, sex=rx.sex, ward=f"Internal medicine, bed {rng.randint(1, 30)}",
            wristband_id=f"WB-S{patient_id:07d}", familial_donor_id=self.donor_row["id"] if self.trial == "SSc-BM"
            else None, registered_by_id=clinician.id, registered_at=registered)
        self.batch.add(Patient, clinician, status="enrolled", **self.patient_row)
        self.weight_id = ctx.ids("patient_weight")
        self.batch.add(WeightMeasurement, clinician, audit=False, id=self.weight_id, patient_id=patient_id, weight_kg=kg_of(rx),
                       measured_on=day - timedelta(days=1), recorded_by_id=clinician.id,
                       recorded_at=local_at(ctx, day - timedelta(days=1), 9))
        on_date = day - timedelta(days=4)
        values, status, results = enrolment_check(protocol, self.trial, completed_years(birth, on_date))
        signed = local_at(ctx, on_date, 16)
        check = dict(id=ctx.ids("patient_enrolment_check"), patient_id=patient_id, on_date=on_date,
                     values_json=values, results_json=results, status=status, protocol_id=protocol.id,
                     protocol_version=protocol.version, protocol_sha256=protocol.sha256, checked_by_id=clinician.id,
                     checked_at=signed - timedelta(minutes=20))
        self.batch.add(EnrolmentCheck, clinician, first={"locked_at": None}, locked_at=signed, **check)
        self.batch.sign(ctx.ids("signature"), EnrolmentCheck, check, clinician, ENROLLED, signed)
        ctx.counts["patients"] += 1

    def _prescription(self, patient_id: int, code: str, rx: RxPlan, day: date, protocol: Any, allocation: Any,
                      level: Decimal) -> set[int]:
        ctx, clinician = self.ctx, self.u["clinician"]
        prescribed = local_at(ctx, day, 11)
        row = dict(id=ctx.ids("prescription"), patient_id=patient_id, protocol_id=protocol.id,
                   protocol_version=protocol.version, protocol_sha256=protocol.sha256,
                   dose_level_cells_per_kg=int(level), weight_id=self.weight_id, weight_kg=kg_of(rx),
                   weight_measured_on=day - timedelta(days=1), target_cells=int(allocation.target_cells),
                   delivered_cells=int(allocation.delivered_cells), total_volume_ml=allocation.total_volume_ml,
                   dmso_g=allocation.dmso_g.quantize(Decimal("0.001")), dmso_g_per_kg=allocation.dmso_g_per_kg,
                   calculation_json=_SORTED.encode(allocation_data(allocation)),
                   planned_at=local_at(ctx, day + timedelta(days=1), 10), status="active",
                   prescribed_by_id=clinician.id, prescribed_at=prescribed, cancelled_at=None,
                   cancelled_by_id=None, cancel_reason=None)
        self.batch.add(Prescription, clinician, first={"locked_at": None}, locked_at=prescribed, **row)
        by_id = {str(bag["id"]): bag for bag in self.bags}
        taken = set()
        for draw in allocation.draws:
            bag = by_id[draw.bag_id]
            taken.add(bag["id"])
            self.custody(bag, "allocated", clinician, prescribed, to="allocated", note=True,
                         details={"prescription_id": row["id"], "patient_id": patient_id})
            self.batch.add(Allocation, clinician, audit=False, id=ctx.ids("bag_allocation"), prescription_id=row["id"],
                           patient_id=patient_id, bag_id=bag["id"], active_bag_id=bag["id"], volume_ml=draw.volume_ml,
                           cells=int(draw.cells), partial=draw.partial, conditional_release=False,
                           allocated_at=prescribed, released_at=None, released_by_id=None)
            self._ward(bag, rx.state, day, patient_id, draw.volume_ml)
        self.batch.sign(ctx.ids("signature"), Prescription, row, clinician, PRESCRIBED, prescribed)
        ctx.counts["prescriptions"] += 1
        return taken

    def _ward(self, bag: dict[str, Any], state: str, day: date, patient_id: int, volume: Decimal) -> None:
        """The bag's way from the unit to the patient, as far as `state`."""
        if state == "allocated":
            return
        ctx, tech, nurse, nurse2 = self.ctx, self.u["tech"], self.u["nurse"], self.u["nurse2"]
        ward = self.patient_row["ward"]
        scan = bag["din"] + bag["check_character"]
        out = local_at(ctx, day + timedelta(days=1), 7)
        self.custody(bag, "dispatched", tech, out, to="dispatched", scan=scan,
                     details={"courier": "Hospital courier", "shipper": "Dry shipper DS-2",
                              "temperature_logger_id": f"TL-{bag['id'] % 97:03d}"})
        if state == "dispatched":
            return
        self.custody(bag, "received", nurse, out + timedelta(minutes=40), to="received", location=ward, scan=scan)
        if state == "received":
            return
        thawed = out + timedelta(hours=2)
        self.custody(bag, "thawed", nurse, thawed, to="thawed", location=ward, scan=scan)
        wristband = self.patient_row["wristband_id"]
        check_id = ctx.ids("two_person_check")
        self.batch.add(TwoPersonCheck, nurse, audit=False,
                       id=check_id, bag_id=bag["id"], patient_id=patient_id, wristband_scan=wristband,
                       bag_scan=scan, result="matches", failures_json="[]", notes_json="[]", checked_by_id=nurse.id,
                       checked_at=thawed + timedelta(minutes=10), second_checker_id=nurse2.id,
                       confirmed_at=thawed + timedelta(minutes=12))
        self.custody(bag, "bedside_verified", nurse, thawed + timedelta(minutes=12), scan=scan,
                     details={"check_id": check_id, "wristband": wristband, "first_checker": nurse.id,
                              "second_checker": nurse2.id, "patient_id": patient_id})
        started = thawed + timedelta(minutes=15)
        infusion_id = ctx.ids("infusion")
        self.batch.add(Infusion, nurse, first={"ended_at": None, "ended_by_id": None, "volume_infused_ml": None},
                       id=infusion_id, bag_id=bag["id"], patient_id=patient_id, check_id=check_id, started_at=started,
                       started_by_id=nurse.id, second_person_id=nurse2.id, ended_at=started + timedelta(minutes=45),
                       ended_by_id=nurse.id, volume_infused_ml=volume.quantize(Decimal("0.01")))
        self.custody(bag, "infusion_started", nurse, started, to="infused", scan=scan,
                     details={"infusion_id": infusion_id, "check_id": check_id, "patient_id": patient_id})
        self.custody(bag, "infusion_ended", nurse, started + timedelta(minutes=45),
                     details={"infusion_id": infusion_id, "volume_infused_ml": str(volume.quantize(Decimal("0.01")))})
        ctx.counts["infusions"] += 1

    def leftovers(self) -> None:
        """Bags nobody was prescribed: most stay stored; some were discarded."""
        tech = self.u["tech"]
        for bag, discard in zip(self.bags, self.plan.discard, strict=True):
            if bag["status"] != "stored" or not discard or self.plan.quarantine:
                continue
            expired = self.lot_row["status"] == "expired"
            at = (bag["expires_at"] + timedelta(days=2)) if expired else self.frozen_at + timedelta(days=40)
            if at >= self.ctx.now:
                continue
            self.custody(bag, "discarded", tech, at, to="discarded",
                         reason="Expired: destroyed" if expired else "Bag integrity: leak seen at inspection")

    def build(self) -> None:
        self.donor()
        self.lot()
        self.prescriptions()
        self.leftovers()
