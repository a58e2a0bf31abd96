"""Lot pages: list, start a lot, the lot page (manufacturing record, bags, storage) and its POST actions.
Views parse and authorise; the services decide and write. Times typed in forms are site-local (site.toml)."""
from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any, TypeVar

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from mscbatch.auth.access import authenticated, roles_required
from mscbatch.core.culture import BagPlan, format_cells
from mscbatch.core.identifiers import MAX_DIVISIONS, din_shown
from mscbatch.core.states import LOT, state_words
from mscbatch.custody.returns import assessed_returns
from mscbatch.donors.models import Donor
from mscbatch.donors.queries import screening_verdicts
from mscbatch.errors import DomainError, NotFound, ValidationFailed
from mscbatch.extensions import db
from mscbatch.labelling.services import relabel_after_correction
from mscbatch.lots import bags as bag_services
from mscbatch.lots import corrections, reagent_corrections, reagents, services, steps
from mscbatch.lots.forms import (
    BagContentCorrectionForm,
    CryoForm,
    DeviationForm,
    HarvestCorrectionForm,
    HarvestForm,
    IsolationForm,
    LotForm,
    PassageCorrectionForm,
    PassageForm,
    ReagentUseCorrectionForm,
    ReagentUseForm,
    StoreBagForm,
    TransitionForm,
)
from mscbatch.lots.models import LOT_STATUSES, REAGENT_TYPES, STORAGE_KINDS, Bag, Lot, ProcessStep
from mscbatch.lots.problems import Problems
from mscbatch.lots.queries import (
    LotFilters,
    box_paths,
    get_location,
    get_lot,
    list_lots,
    location_path,
    lot_filter_errors,
    product_catalogue,
    reagent_lots,
    storage_paths,
)
from mscbatch.lots.record import lot_record
from mscbatch.lots.storage import MOVABLE_STATES, box_words, path_temperature, storage_limit, too_warm
from mscbatch.recall.queries import recall_words, recalls_covering
from mscbatch.release.models import ASSESSED_BEFORE_RELEASE
from mscbatch.site import site_config, site_time, site_today
from mscbatch.web.forms import posted_id, show_error

bp = Blueprint("lots", __name__, url_prefix="/lots")
T = TypeVar("T")
bp.record_once(lambda _state: (site_config(), product_catalogue()))  # a bad config file stops the app at start


def place_parts(session: Any, location: Any, path: list[Any] | None = None) -> tuple[str, str]:
    """A storage place as (its own name, where it is, nearest first): ("Box B1", "Rack B, LN2 tank 1, Demo cell
    therapy unit"). A box's name gets the word "Box" when it lacks it. `path`: the place's path (site first) when
    already read (storage_paths), else read here."""
    *above, place = path if path is not None else location_path(session, location)
    name = place.name if place.kind != "box" else box_words(place)
    return name, ", ".join(node.name for node in reversed(above))


def place_label(session: Any, location: Any, path: list[Any] | None = None) -> str:
    """The box first: "Box B1 — Rack B, LN2 tank 1, Demo cell therapy unit" (issue #8: a box picker whose options
    all began "Demo cell therapy unit / LN2 tank 1 / ..." showed only the unit in a narrow select)."""
    name, where = place_parts(session, location, path)
    return f"{name} — {where}" if where else name


def box_choices(session: Any, lot: Any = None, paths: dict[int, list[Any]] | None = None) -> list[Any]:
    """The boxes to store a bag in. For a lot, those too warm for its product (storage.too_warm, the rule store_bag
    refuses them by) come last, marked with the reason and disabled: a -80 °C freezer was offered for a product
    kept at -150 °C, and refused only once chosen. The storage tree is read once (box_paths), not box by box;
    `paths`: storage_paths already read for the page."""
    placed = box_paths(session, paths)
    if lot is None:
        return [(box.id, place_label(session, box, path)) for box, path in placed]
    limit = storage_limit(lot)
    suited, warm = [], []
    for box, path in placed:
        temperature = path_temperature(path)
        if not too_warm(temperature, limit):
            suited.append((box.id, place_label(session, box, path)))
            continue
        where = f"at {temperature} °C" if temperature is not None else "not in a freezer or tank"
        warm.append((box.id, f"{place_label(session, box, path)}: {where}, too warm for {lot.product_name} (needs <= "
                             f"{limit} °C)", {"disabled": True}))
    return suited + warm


def millions(value: Decimal | None, field: str = "", label: str = "A cell count",
             recorded: int | None = None) -> int:
    """Cells typed in x10^6 -> whole cells (the services refuse 0 and negatives). `field`: the form field, named
    by the refusal. A count the record would not show as typed is refused (shown_as_typed); `recorded`: the count
    a correction form was filled with, sent back unchanged, which is not judged again (one recorded in whole
    cells through the API may have more digits than the record shows: keeping it is no new typing)."""
    value = value or Decimal(0)
    # beyond 10^13 million, far past any count the services accept: x10^6 of 1E+999999999 overflowed (a 500) and
    # int() of 1E+999990 x10^6 took 26 s of CPU (tests/fuzz); refused before the arithmetic
    if value.adjusted() > 12:
        raise ValidationFailed(f"{label}: far too many; a cell count is typed in millions of cells (x10^6), such "
                               "as 12.5.", field=field or None)
    if recorded is None or value * 10**6 != recorded:
        shown_as_typed(value, field, label)
    return int(value * 10**6)


def shown_as_typed(value: Decimal, field: str, label: str) -> None:
    """Refuses a count typed in x10^6 that the record would show otherwise: every page writes a count with
    format_cells (2 decimals, or 2 significant figures below 0.01 x10^6), so 90.004 was kept as 90 004 000 cells
    (its PD computed from them) but read back everywhere as "90 x10^6", not what was typed (ALCOA: accurate)."""
    shown = format_cells(int(value * 10**6))
    if Decimal(shown.removesuffix(" x10^6")) == value:  # Decimal equality: 12.50 is 12.5
        return
    if abs(value) < Decimal("0.01"):
        rule = ("type at most 2 significant figures (a count below 0.01 x10^6 is recorded as 0.0012 x10^6, "
                "1 200 cells)")
    else:
        rule = "type at most 2 decimals (a count is recorded to 0.01 x10^6, 10 000 cells)"
    typed = f"{value:f}"
    typed = typed if len(typed) <= 40 else typed[:40] + "…"
    raise ValidationFailed(f"{label}: {typed} x10^6 would be shown as {shown} on the record: {rule}.",
                           field=field or None)


def plural(count: int, noun: str) -> str:
    """"1 bag", "4 bags"."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _in_millions(cells: int | None) -> Decimal | None:
    """Whole cells -> the x10^6 number a form shows (120000000 -> 120; never "1.2E+2", which normalize() writes
    for 120 and the form's plain-number rule would then refuse as typed back)."""
    return None if cells is None else Decimal(format((Decimal(cells) / 10**6).normalize(), "f"))


def _date_arg(name: str, label: str, errors: dict[str, str]) -> date | None:
    """The day typed in filter `name` (None when empty); a text that is no day is an error named beside the field
    (as the audit page says it), never a filter silently dropped."""
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors[name] = f"{label}: {raw!r} is not a date: type a day as YYYY-MM-DD (e.g. 2026-03-01)."
        return None


@bp.route("")
@authenticated
def index() -> Any:
    raw = {k: request.args.get(k, "").strip() for k in ("status", "product", "donor", "from", "to")}
    errors: dict[str, str] = {}
    collected_from = _date_arg("from", "Collected from", errors)
    collected_to = _date_arg("to", "Collected to", errors)
    errors = {**lot_filter_errors(db.session, raw["status"], raw["product"], collected_from, collected_to), **errors}
    page = None
    if not errors:
        filters = LotFilters(status=raw["status"], product_id=raw["product"], donor_code=raw["donor"],
                             collected_from=collected_from, collected_to=collected_to)
        page = list_lots(db.session, filters, before=request.args.get("before", type=int))
    return render_template("lots/list.html", page=page, raw=raw, statuses=LOT_STATUSES, errors=errors,
                           products=product_catalogue().products, site=site_config()), 422 if errors else 200


def donor_choices(session: Any, *, recalled_too: bool = False) -> list[tuple[int, str]]:
    """The donors a lot may be started from, newest first, each with its tissue and where its eligibility stands.

    Left out: donors judged ineligible, donors whose screening says ineligible now (a late positive reopened the
    approval, a "yes" that excludes: QA has not signed it yet), and donors under a recall in force (create_lot
    refuses all three: no lot can be made from them). `recalled_too`: keep the recalled ones and those the screening
    excludes, for checking a posted form only, so that a page opened before the recall or the result gets
    create_lot's refusal naming the recall or the exclusion, not "Not a valid choice". A donor whose signed
    decision was reopened says why ("reopened: late positive result") rather than "pending review", which read
    like a donor simply awaiting QA's signature (a lot may start from such a donor, in quarantine until QA signs
    again)."""
    from mscbatch.recall.models import Recall  # recall builds on lots: imported when called
    from mscbatch.recall.queries import IN_FORCE

    wanted = select(Donor).where(Donor.status != "ineligible")
    if not recalled_too:
        wanted = wanted.where(Donor.id.not_in(select(Recall.donor_id).where(
            Recall.scope == "donor", Recall.donor_id.is_not(None), Recall.status.in_(IN_FORCE))))
    donors = list(session.scalars(wanted.order_by(Donor.id.desc())).all())
    if not recalled_too:
        excluded = {donor_id for donor_id, verdict in screening_verdicts(session, donors).items()
                    if verdict == "ineligible"}
        donors = [d for d in donors if d.id not in excluded]
    reopened = _reopenings(session, [d.id for d in donors if d.status == "pending_review"])
    return [(d.id, f"{d.code} ({d.tissue_source.replace('_', ' ')}, {_standing(d, reopened)})") for d in donors]


def _reopenings(session: Any, donor_ids: list[int]) -> dict[int, str | None]:
    """For each donor under review whose signed decision was reopened: the result that reopened its latest reopened
    decision ("positive", "negative", ...), or None when QA reopened it. One query for every donor listed.

    The result is the one a lookback names (decisions.reopen records it for a result that is not negative);
    otherwise the result entered while that approval was in force: donors.services.record_result reopens an
    approval in force with every result recorded (under the donor's lock), so a result entered between its
    signature and its reopening is the one that reopened it. A reopened ineligible decision was reopened by QA
    (a result never reopens one)."""
    if not donor_ids:
        return {}
    from mscbatch.donors.models import APPROVED, DonorLookback, EligibilityDecision, ScreeningResult

    latest = (select(EligibilityDecision.id, EligibilityDecision.donor_id, EligibilityDecision.meaning,
                     EligibilityDecision.judged_at, EligibilityDecision.superseded_at,
                     func.row_number().over(partition_by=EligibilityDecision.donor_id, order_by=(
                         EligibilityDecision.superseded_at.desc(), EligibilityDecision.id.desc())).label("rank"))
              .where(EligibilityDecision.donor_id.in_(donor_ids), EligibilityDecision.superseded_at.is_not(None))
              .subquery())
    named = aliased(ScreeningResult)  # the result a lookback names
    entered = aliased(ScreeningResult)  # a result entered while the approval was in force
    rows = session.execute(
        select(latest.c.donor_id, named.result, entered.result)
        .outerjoin(DonorLookback, (DonorLookback.superseded_decision_id == latest.c.id)
                   & DonorLookback.triggering_result_id.is_not(None))
        .outerjoin(named, named.id == DonorLookback.triggering_result_id)
        .outerjoin(entered, (entered.donor_id == latest.c.donor_id) & (latest.c.meaning == APPROVED)
                   & entered.entered_at.between(latest.c.judged_at, latest.c.superseded_at))
        .where(latest.c.rank == 1)
        .order_by(latest.c.donor_id, entered.entered_at, entered.id, DonorLookback.id.desc()))
    found: dict[int, str | None] = {}
    for donor_id, by_lookback, by_entry in rows:
        found.setdefault(donor_id, by_lookback or by_entry)  # the first result entered is the one that reopened
    return found


def _standing(donor: Donor, reopened: dict[int, str | None]) -> str:
    """Where a donor's eligibility stands, in the words of the lot form's donor select. `reopened`: _reopenings."""
    if donor.status != "pending_review":
        return donor.status.replace("_", " ")
    result = reopened.get(donor.id)
    if result is None:
        return "reopened by QA: awaiting QA's signature again"
    return f"reopened: late {result} result" if result in ("positive", "indeterminate") else "reopened: new result"


@bp.route("/new", methods=["GET", "POST"])
@roles_required("technician")
def create() -> Any:
    form = LotForm()
    form.donor_id.choices = [(0, "Choose…")] + donor_choices(db.session, recalled_too=request.method == "POST")
    form.product_id.choices = [("", "Choose…")] + [(p.id, f"{p.name} {p.product_class}")
                                                   for p in product_catalogue().products]
    if request.method == "GET" and request.args.get("donor", type=int):
        form.donor_id.data = request.args.get("donor", type=int)
    status = 200
    # the "same collection" box: shown once a lot of the same collection was found, or when it was ticked
    ask_same_collection = request.method == "POST" and bool(form.same_collection_as_existing.data)

    def read(problems: Problems) -> services.LotDetails:
        details = services.LotDetails(
            donor_id=form.donor_id.data, product_id=form.product_id.data,
            collection_at=problems.check(lambda: site_time(form.collection_at.data, "collection_at",
                                                           "Collection time")),
            collection_site=form.collection_site.data, tissue_amount=form.tissue_amount.data,
            tissue_unit=form.tissue_unit.data, same_collection_as_existing=form.same_collection_as_existing.data)
        problems.check(lambda: services.check_lot_details(details))
        return details

    details = _read(form, read) if request.method == "POST" else None
    if details is not None:
        try:
            lot = services.create_lot(db.session, current_user, details)
        except DomainError as error:
            show_error(form, error)
            status = error.status
            if isinstance(error, services.SameCollection):  # the box, named after the lot found, typed values kept
                form.same_collection_as_existing.label.text = ("Another lot from the same collection as "
                                                               f"{error.existing}")
                ask_same_collection = True
        else:
            flash(f"Lot {lot.lot_number} started." + (" Donor eligibility pending: release impossible until "
                                                      "approved." if lot.eligibility_pending else ""),
                  "warning" if lot.eligibility_pending else "success")
            return redirect(url_for("lots.detail", lot_id=lot.id))
    elif request.method == "POST":
        status = 422
    if request.method == "POST":  # shown again: the donors a lot may be started from (see donor_choices)
        db.session.rollback()
        form.donor_id.choices = [(0, "Choose…")] + donor_choices(db.session)
    return render_template("lots/new.html", form=form, site=site_config(), lot_number_example=_lot_number_example(),
                           ask_same_collection=ask_same_collection), status


def _lot_number_example() -> str:
    """The first lot number of this year in the site's format (e.g. MSC-2026-0001): words for the technician,
    not the format string of site.toml."""
    try:
        return site_config().format_lot_number(site_today().year, 1)
    except (ValueError, KeyError, IndexError):
        return ""


def _detail(lot_id: int, status: int = 200, **forms: Any) -> Any:
    db.session.rollback()  # a refused use case may have left expired objects; read everything afresh
    paths = storage_paths(db.session)  # the whole storage tree, once: the bags' places and the box picker
    record = lot_record(db.session, lot_id, current_user.role_names, paths)
    step_choices = [(s.id, s.label) for s in record.steps]
    if "deviation_form" not in forms:
        forms["deviation_form"] = DeviationForm(prefix="deviation", formdata=None)
    forms["deviation_form"].step_id.choices = step_choices
    if "reagent_form" not in forms:
        # "Used at": the lot's latest step until it is harvested (harvest and cryopreservation is refused before)
        latest = record.steps[-1].id if record.steps and record.lot.harvested_at is None else 0
        forms["reagent_form"] = ReagentUseForm(prefix="reagent", formdata=None, used_on=site_today(), step_id=latest)
    registered = reagent_lots(db.session)
    recalled = reagents.reagent_recalls_in_force(db.session, [r.id for r in registered])
    # nothing chosen first: the first registered lot pre-selected was recorded by a technician who did not look
    forms["reagent_form"].reagent_lot_id.choices = [(0, "Choose the reagent lot…")] + [
        reagents.reagent_choice(r, recalled.get(r.id), new_use=True) for r in registered]
    forms["reagent_form"].step_id.choices = [(0, "Harvest and cryopreservation")] + step_choices
    forms.setdefault("isolation_form", IsolationForm(prefix="isolation", formdata=None))
    forms.setdefault("passage_form", PassageForm(prefix="passage", formdata=None,
                                                 passage_number=len(record.passages)))
    forms.setdefault("harvest_form", HarvestForm(prefix="harvest", formdata=None))
    lot, tz = record.lot, site_config().tz
    forms.setdefault("harvest_fix_form", HarvestCorrectionForm(
        prefix="harvestfix", formdata=None, total_cells=_in_millions(lot.harvest_total_cells),
        viability_percent=lot.harvest_viability_percent,
        harvested_at=lot.harvested_at.astimezone(tz) if lot.harvested_at else None))  # with its zone if it came twice
    fixing = forms.pop("passage_fix", None)  # (step id, form) of a refused correction, shown with its errors
    forms["passage_fix_forms"] = {s.id: fixing[1] if fixing and fixing[0] == s.id else PassageCorrectionForm(
        prefix=f"fix{s.id}", formdata=None, performed_on=s.performed_on, seeded_cells=_in_millions(s.seeded_cells),
        harvested_cells=_in_millions(s.harvested_cells), viability_percent=s.viability_percent,
        days_in_culture=s.days_in_culture) for s in record.passages}
    forms["fixing_step"] = fixing[0] if fixing else None
    forms.update(_reagent_fix_forms(record, registered, recalled, forms.pop("reagent_fix", None)))
    forms.setdefault("cryo_form", CryoForm(prefix="cryo", formdata=None, bag_count=4, dmso_percent=Decimal("10")))
    transition_form = forms.setdefault("transition_form", TransitionForm(prefix="transition", formdata=None))
    targets = sorted({t for ts in record.next_states.values() for t in ts} - services.SIGNED_TARGETS)
    if not services.expiry_passed(record.lot):  # offered only once due (services.apply_lot_transition)
        targets = [t for t in targets if t != "expired"]
    transition_form.target.choices = [(t, t.replace("_", " ")) for t in targets]
    storable = [row for row in record.bags if row.bag.status in MOVABLE_STATES]  # bags in the unit's custody
    unplaced = [row.bag.id for row in storable if row.box_id is None]
    store_form = forms.setdefault("store_form", StoreBagForm(prefix="store", formdata=None,
                                                             bag_id=unplaced[0] if unplaced else None))
    store_form.box_id.choices = box_choices(db.session, record.lot, paths)
    store_form.bag_id.choices = [(row.bag.id, f"bag {row.bag.bag_number} of {row.bag.bag_count} ({din_shown(row.bag)})")
                                 for row in storable]
    places = {row.box_id: place_parts(db.session, None, paths[row.box_id]) for row in record.bags if row.box_id}
    forms.update(_bag_fix_form(record, forms.pop("bag_fix_form", None)))
    bag_ids = [row.bag.id for row in record.bags]
    return render_template("lots/detail.html", r=record, lot=record.lot, site=site_config(), format_cells=format_cells,
                           places=places, bag_corrections=corrections.bag_corrections(db.session, bag_ids),
                           relabel=relabel_after_correction(db.session, bag_ids),
                           returns=assessed_returns(db.session, bag_ids),
                           covering_recalls=[(rc, recall_words(rc)) for rc in recalls_covering(db.session, record.lot)],
                           storage_kinds=STORAGE_KINDS, reagent_types=REAGENT_TYPES, lot_machine=LOT, **forms), status


def _bag_fix_form(record: Any, refused: Any) -> dict[str, Any]:
    """The form correcting a bag's content: the bags still in stock to choose from, the one named by ?fixbag= (its
    row's "Correct its content" link) chosen and its recorded values filled in, so only the wrong one is retyped;
    `refused`: a refused correction's form, shown with its errors."""
    stock = [row.bag for row in record.bags if row.bag.status == "stored"]
    form = refused
    if form is None:
        chosen = next((b for b in stock if b.id == request.args.get("fixbag", type=int)), None)
        form = BagContentCorrectionForm(prefix="bagfix", formdata=None, bag_id=chosen.id if chosen else None,
                                        volume_ml=chosen.volume_ml if chosen else None,
                                        cells_per_ml=_in_millions(chosen.cells_per_ml) if chosen else None,
                                        dmso_percent=chosen.dmso_percent if chosen else None)
    form.bag_id.choices = [(0, "Choose…")] + [(b.id, f"bag {b.bag_number} of {b.bag_count} ({din_shown(b)}): "
                                                     f"{b.volume_ml} mL, {format_cells(b.cells_per_ml)}/mL, DMSO "
                                                     f"{b.dmso_percent} %") for b in stock]
    return {"bag_fix_form": form, "fixing_bag": refused is not None or request.args.get("fixbag", type=int)}


def _reagent_fix_forms(record: Any, registered: list[Any], recalled: dict[int, Any],
                       fixing: tuple[int, Any] | None) -> dict[str, Any]:
    """A correction form per reagent use, its select limited to the reagent lots of the use's type (a correction
    keeps the type: reagent_corrections), each marked expired or under recall (`recalled`: reagent lot id -> recall
    in force) and still chosen (the lot really used is recorded); `fixing`: (use id, form) of a refused
    correction, shown with its errors."""
    uses = {use.id: reagent for use, reagent in record.reagents}
    if fixing and fixing[0] not in uses:
        raise NotFound(f"Reagent use #{fixing[0]} is not recorded for lot {record.lot.lot_number}.", field="use_id")
    fix_forms = {}
    for use, reagent in record.reagents:
        form = fixing[1] if fixing and fixing[0] == use.id else ReagentUseCorrectionForm(
            prefix=f"reagentfix{use.id}", formdata=None, reagent_lot_id=reagent.id, used_on=use.used_on)
        form.reagent_lot_id.choices = [reagents.reagent_choice(r, recalled.get(r.id), new_use=False, with_type=False)
                                       for r in registered if r.reagent_type == reagent.reagent_type]
        fix_forms[use.id] = form
    return {"reagent_fix_forms": fix_forms, "fixing_use": fixing[0] if fixing else None}


@bp.route("/<int:lot_id>")
@authenticated
def detail(lot_id: int) -> Any:
    return _detail(lot_id)


def _read(form: Any, read: Callable[[Problems], T] | None = None) -> T | None:
    """A posted form read, or None when refused: every problem at once, each on its field (the form's own checks,
    then `read`'s: the view's reading of times and counts and the services' checks of what was typed, none of which
    writes, on the fields not refused already), as the donor and recall forms say them."""
    valid = form.validate_on_submit()
    problems = Problems(refused=[name for name, errors in form.errors.items() if errors])
    value = read(problems) if read is not None else None
    if problems.show(form) or not valid:
        return None
    return value if read is not None else True


def _act(lot_id: int, form: Any, name: str, action: Any, message: Any, anchor: str,
         read: Callable[[Problems], Any] | None = None) -> Any:
    """Read a posted form (_read), run the use case on what was read, then flash and redirect, or re-show the
    page with errors. `action` takes what `read` returned (nothing without `read`)."""
    typed = _read(form, read)
    if typed is None:
        return _detail(lot_id, 422, **{name: form})
    try:
        result = action(typed) if read is not None else action()
    except DomainError as error:
        show_error(form, error)
        return _detail(lot_id, error.status, **{name: form})
    flash(message(result), "warning" if getattr(result, "warnings", "") else "success")
    return redirect(url_for("lots.detail", lot_id=lot_id, _anchor=anchor))


@bp.route("/<int:lot_id>/isolation", methods=["POST"])
@roles_required("technician")
def isolation(lot_id: int) -> Any:
    form = IsolationForm(prefix="isolation")
    return _act(lot_id, form, "isolation_form", lambda: steps.record_isolation(
        db.session, current_user, lot_id, performed_on=form.performed_on.data, notes=form.notes.data or ""),
        lambda _s: "Isolation recorded.", "process")


@bp.route("/<int:lot_id>/passages", methods=["POST"])
@roles_required("technician")
def passage(lot_id: int) -> Any:
    form = PassageForm(prefix="passage")
    return _act(lot_id, form, "passage_form", lambda details: steps.record_passage(
        db.session, current_user, lot_id, details),
        lambda s: f"Passage {s.label} recorded: PD {s.pd_shown}, cumulative PD {s.cumulative_pd}."
        + (f" Warning: {s.warnings}." if s.warnings else ""), "process",
        read=lambda problems: _passage_details(form, problems, form.passage_number.data, form.notes.data or ""))


def _passage_details(form: Any, problems: Problems, number: int | None, notes: str = "",
                     recorded: Any = None) -> steps.PassageDetails:
    """A passage as typed in its form or its correction's, the services' checks of the values run. `recorded`:
    the passage corrected (its counts, filled into the form, are kept as recorded when sent back unchanged)."""
    details = steps.PassageDetails(
        passage_number=number, performed_on=form.performed_on.data,
        seeded_cells=problems.check(lambda: millions(form.seeded_cells.data, "seeded_cells", "Cells seeded",
                                                     getattr(recorded, "seeded_cells", None))),
        harvested_cells=problems.check(lambda: millions(form.harvested_cells.data, "harvested_cells",
                                                        "Cells harvested", getattr(recorded, "harvested_cells",
                                                                                   None))),
        viability_percent=form.viability_percent.data, days_in_culture=form.days_in_culture.data, notes=notes)
    problems.check(lambda: steps.checked_passage(details))
    return details


@bp.route("/<int:lot_id>/deviations", methods=["POST"])
@roles_required("technician")
def deviation(lot_id: int) -> Any:
    form = DeviationForm(prefix="deviation")
    form.step_id.choices = [(posted_id(request.form.get("deviation-step_id")), "")]
    return _act(lot_id, form, "deviation_form", lambda: steps.record_deviation(
        db.session, current_user, lot_id, form.step_id.data, severity=form.severity.data,
        description=form.description.data), _deviation_recorded, "deviations")


def _deviation_recorded(row: Any) -> str:
    lot = get_lot(db.session, row.lot_id)
    if lot.status in ("released", "conditional_release"):
        return (f"Deviation recorded. Lot {lot.lot_number} is already released: QA is asked on its dashboard to "
                "assess it. Tell QA now if the bags must not be given.")
    if row.severity in ASSESSED_BEFORE_RELEASE and lot.status in ("in_process", "quarantine"):
        return (f"Deviation recorded. As a {row.severity} deviation it needs QA's signed assessment before lot "
                f"{lot.lot_number} can be released: QA sees it on the release dashboard.")
    return "Deviation recorded."


@bp.route("/<int:lot_id>/reagents", methods=["POST"])
@roles_required("technician")
def reagent(lot_id: int) -> Any:
    form = ReagentUseForm(prefix="reagent")
    form.reagent_lot_id.choices = [(posted_id(request.form.get("reagent-reagent_lot_id")), "")]
    form.step_id.choices = [(posted_id(request.form.get("reagent-step_id")), "")]
    return _act(lot_id, form, "reagent_form", lambda: reagents.link_reagent(
        db.session, current_user, lot_id, form.reagent_lot_id.data, used_on=form.used_on.data,
        step_id=form.step_id.data or None), lambda u: f"Reagent lot recorded for {u.stage}.", "reagents")


@bp.route("/<int:lot_id>/harvest", methods=["POST"])
@roles_required("technician")
def harvest(lot_id: int) -> Any:
    form = HarvestForm(prefix="harvest")
    return _act(lot_id, form, "harvest_form", lambda typed: steps.record_harvest(
        db.session, current_user, lot_id, **typed),
        lambda lot: f"Harvest recorded: {format_cells(lot.harvest_viable_cells)} viable cells.", "harvest",
        read=lambda problems: _harvest_values(form, problems))


def _harvest_values(form: Any, problems: Problems, recorded: int | None = None) -> dict[str, Any]:
    """A harvest as typed in its form or its correction's, the services' checks of the values run. `recorded`:
    the total a correction's form was filled with (kept as recorded when sent back unchanged)."""
    typed = dict(harvested_at=problems.check(lambda: site_time(form.harvested_at.data, "harvested_at",
                                                               "Harvest time")),
                 total_cells=problems.check(lambda: millions(form.total_cells.data, "total_cells", "Total cells",
                                                             recorded)),
                 viability_percent=form.viability_percent.data)
    problems.check(lambda: steps.checked_harvest(**typed))
    return typed


@bp.route("/<int:lot_id>/harvest/correction", methods=["POST"])
@roles_required("technician")
def correct_harvest(lot_id: int) -> Any:
    form = HarvestCorrectionForm(prefix="harvestfix")
    lot = db.session.get(Lot, lot_id)
    recorded = lot.harvest_total_cells if lot is not None else None
    return _act(lot_id, form, "harvest_fix_form", lambda typed: corrections.correct_harvest(
        db.session, current_user, lot_id, **typed, reason=form.reason.data),
        lambda lot: f"Harvest corrected: {format_cells(lot.harvest_viable_cells)} viable cells. The old values and "
        "your reason are in the audit trail.", "harvest",
        read=lambda problems: _harvest_values(form, problems, recorded))


@bp.route("/<int:lot_id>/passages/<int:step_id>/correction", methods=["POST"])
@roles_required("technician")
def correct_passage(lot_id: int, step_id: int) -> Any:
    form = PassageCorrectionForm(prefix=f"fix{step_id}")
    step = db.session.get(ProcessStep, step_id)
    recorded = step if step is not None and step.lot_id == lot_id and step.kind == "passage" else None
    details = _read(form, lambda problems: _passage_details(form, problems, None, recorded=recorded))
    if details is None:
        return _detail(lot_id, 422, passage_fix=(step_id, form))
    try:
        step = corrections.correct_passage(db.session, current_user, lot_id, step_id, details, form.reason.data)
    except DomainError as error:
        show_error(form, error)
        return _detail(lot_id, error.status, passage_fix=(step_id, form))
    flash(f"Passage {step.label} corrected: PD {step.pd_shown}, cumulative PD {step.cumulative_pd}. The "
          "old values and your reason are in the audit trail.", "success")
    return redirect(url_for("lots.detail", lot_id=lot_id, _anchor="process"))


@bp.route("/<int:lot_id>/reagents/<int:use_id>/correction", methods=["POST"])
@roles_required("technician")
def correct_reagent_use(lot_id: int, use_id: int) -> Any:
    form = ReagentUseCorrectionForm(prefix=f"reagentfix{use_id}")
    form.reagent_lot_id.choices = [(posted_id(request.form.get(f"reagentfix{use_id}-reagent_lot_id")), "")]
    if _read(form) is None:
        return _detail(lot_id, 422, reagent_fix=(use_id, form))
    try:
        done = reagent_corrections.correct_reagent_use(
            db.session, current_user, lot_id, use_id, reagent_lot_id=form.reagent_lot_id.data,
            used_on=form.used_on.data, reason=form.reason.data)
    except DomainError as error:
        show_error(form, error)
        return _detail(lot_id, error.status, reagent_fix=(use_id, form))
    if done.warnings:  # the lot really used was recalled or had expired: accepted, and said plainly
        flash(f"Reagent use for {done.use.stage} corrected. {done.warnings}", "warning")
    else:
        flash(f"Reagent use for {done.use.stage} corrected. The old values and your reason are in the audit "
              "trail.", "success")
    return redirect(url_for("lots.detail", lot_id=lot_id, _anchor="reagents"))


@bp.route("/<int:lot_id>/bags/correction", methods=["POST"])
@roles_required("technician")
def correct_bag(lot_id: int) -> Any:
    form = BagContentCorrectionForm(prefix="bagfix")
    form.bag_id.choices = [(posted_id(request.form.get("bagfix-bag_id")), "")]

    def read(problems: Problems) -> BagPlan:
        # a bag the form refused is not read (an id past the database's integers would fail the read itself)
        chosen = db.session.get(Bag, form.bag_id.data) if "bag_id" not in problems.refused else None
        chosen = chosen if chosen is not None and chosen.lot_id == lot_id else None
        typed = [form.volume_ml.data, form.cells_per_ml.data, form.dmso_percent.data]
        if all(value is None for value in typed) and not problems.refused & {"volume_ml", "cells_per_ml",
                                                                            "dmso_percent"}:
            problems.add(ValidationFailed(
                "Nothing changed: give the corrected values. The volume, cells per mL and DMSO % were all left "
                "blank, and a blank keeps the value recorded: type at least the one that is wrong.",
                field="volume_ml"))
        # a blank is kept as recorded (the service's rule): None, never millions()' 0
        plan = BagPlan(volume_ml=form.volume_ml.data, dmso_percent=form.dmso_percent.data,
                       cells_per_ml=None if form.cells_per_ml.data is None else problems.check(
                           lambda: millions(form.cells_per_ml.data, "cells_per_ml", "Cells per mL",
                                            chosen.cells_per_ml if chosen is not None else None)))
        if chosen is not None:  # the bag's number names it in the refusals
            # the cryopreservation's rules, the product's too (cells per mL range, DMSO), with the form's refusals
            kept = corrections.bag_content_kept(chosen, plan.volume_ml, plan.cells_per_ml, plan.dmso_percent)
            corrections.check_bag_correction(db.session, db.session.get(Lot, lot_id), chosen, kept, problems)
        return plan

    plan = _read(form, read)
    if plan is None:
        return _detail(lot_id, 422, bag_fix_form=form)
    try:
        bag = corrections.correct_bag_content(
            db.session, current_user, lot_id, form.bag_id.data, volume_ml=plan.volume_ml,
            cells_per_ml=plan.cells_per_ml, dmso_percent=plan.dmso_percent, reason=form.reason.data)
    except DomainError as error:
        show_error(form, error)
        return _detail(lot_id, error.status, bag_fix_form=form)
    done = (f"Bag {bag.bag_number} of {bag.bag_count} corrected: {bag.volume_ml} mL, "
            f"{format_cells(bag.cells_per_ml)} cells per mL, {format_cells(bag.total_cells)} cells in the bag, DMSO "
            f"{bag.dmso_percent} %. The old values and your reason are in the audit trail.")
    if relabel_after_correction(db.session, [bag.id]):  # its label prints the old content
        flash(done + " Its label was printed before and shows the old values: reprint its label.", "warning")
    else:
        flash(done, "success")
    return redirect(url_for("lots.detail", lot_id=lot_id, _anchor="bags"))


@bp.route("/<int:lot_id>/cryopreservation", methods=["POST"])
@roles_required("technician")
def cryopreservation(lot_id: int) -> Any:
    form = CryoForm(prefix="cryo")

    def read(problems: Problems) -> dict[str, Any]:
        plan = BagPlan(volume_ml=form.volume_ml.data, dmso_percent=form.dmso_percent.data,
                       cells_per_ml=problems.check(lambda: millions(form.cells_per_ml.data, "cells_per_ml",
                                                                    "Viable cells per mL")))
        frozen_at = problems.check(lambda: site_time(form.frozen_at.data, "frozen_at", "Freezing time"))
        # a count refused by the form still has its bag judged once (all bags are alike); never a list of millions
        count = form.bag_count.data if "bag_count" not in problems.refused else 1
        bags = [plan] * min(max(count or 0, 0), MAX_DIVISIONS + 1)
        problems.check(lambda: bag_services.check_freezing(frozen_at, bags))
        return {"frozen_at": frozen_at, "bags": bags}

    return _act(lot_id, form, "cryo_form", lambda typed: bag_services.cryopreserve(
        db.session, current_user, lot_id, **typed),
        lambda rows: f"Cryopreserved into {plural(len(rows), 'bag')}; {'DIN' if len(rows) == 1 else 'DINs'} "
        "allocated.", "bags", read=read)


@bp.route("/<int:lot_id>/transition", methods=["POST"])
@roles_required("technician", "qa")
def transition(lot_id: int) -> Any:
    form = TransitionForm(prefix="transition")
    form.target.choices = [(s, s) for s in LOT.states]
    return _act(lot_id, form, "transition_form", lambda: services.transition_lot(
        db.session, current_user, lot_id, form.target.data, form.reason.data),
        lambda lot: f"Lot {lot.lot_number} is now {state_words(lot.status)}.", "state")


@bp.route("/<int:lot_id>/store", methods=["POST"])
@roles_required("technician")
def store(lot_id: int) -> Any:
    from mscbatch.lots.queries import parse_position
    from mscbatch.lots.storage import move_words, store_bag

    form = StoreBagForm(prefix="store")
    form.bag_id.choices = [(posted_id(request.form.get("store-bag_id")), "")]
    form.box_id.choices = box_choices(db.session)

    def action() -> Any:
        problems = Problems()  # a bag of another lot and a position not in the box: both said
        bag = db.session.get(Bag, form.bag_id.data)
        if bag is None or bag.lot_id != lot_id:  # the lot's page places the lot's own bags only
            problems.add(ValidationFailed("Choose a bag of this lot.", field="bag_id"))
        box = get_location(db.session, form.box_id.data)
        position = parse_position(box, form.position.data)
        if position is None:
            problems.add(ValidationFailed(f"{form.position.data!r} is not a position of {box_words(box)} (rows A-"
                                          f"{chr(64 + (box.rows or 1))}, columns 1-{box.columns}).",
                                          field="position"))
        problems.raise_any()
        assert position is not None
        return store_bag(db.session, current_user, form.bag_id.data, box.id, position, form.reason.data or "")
    return _act(lot_id, form, "store_form", action, lambda move: move_words(db.session, move), "bags")
