"""The ward scanning page (issue 7 point 4): the custody blueprint, the roles of its pages and the one-tap
hand-overs (receive, thaw, return, discard, dispatch) of a scanned bag. bedside_views and infusion_views add their
routes to this blueprint. Views parse and authorise; the services decide and write. The page works with plain
forms; static/js/ward-scan.js adds the single scan field (keyboard wedge: text + Enter) and the camera (vendored
jsQR)."""
from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user

from mscbatch.auth.access import access_rule, roles_required
from mscbatch.core.bounds import whole_number
from mscbatch.core.identifiers import din_shown
from mscbatch.core.states import BAG
from mscbatch.custody import bedside, handover, infusions, services
from mscbatch.custody.forms import DispatchForm, WardForm
from mscbatch.custody.queries import infusion_of_bag
from mscbatch.custody.ward_list import LIST_ORDER, OUT_ON_THE_WARD, ward_listing
from mscbatch.custody.ward_words import provisional_thaw_limit_words
from mscbatch.database import utcnow
from mscbatch.errors import DomainError, ValidationFailed
from mscbatch.extensions import db
from mscbatch.lots.models import Lot
from mscbatch.lots.queries import product_of
from mscbatch.patients.views import READERS as PATIENT_READERS
from mscbatch.site import local_and_utc
from mscbatch.web.forms import show_error

bp = Blueprint("custody", __name__, url_prefix="/ward")

BEDSIDE = ("nurse", "clinician")
#: who reads an infusion (its page, and the API's GET /api/v1/custody/infusions/<id>): the readers of patient records
INFUSION_READERS = PATIENT_READERS
#: the ward page: QA for discarding a bag in stock (a bag returned from the ward: Returned bags, custody.returns; the bag
#: state machine says who may what)
WARD = ("nurse", "clinician", "technician", "qa")
#: one-tap action -> (roles shown the button, label): the roles the bag state machine lets make the move, from some
#: state (mscbatch.core.states.BAG_TRANSITIONS), so that no button is shown to someone it would always refuse;
#: "end" changes no state: the bedside roles end an infusion (custody.infusions.end_infusion)
ACTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "receive": (tuple(sorted(BAG.roles_for("received"))), "Receive on the ward"),
    "thaw": (tuple(sorted(BAG.roles_for("thawed"))), "Thaw"),
    "start": (tuple(sorted(BAG.roles_for("infused") & set(BEDSIDE))), "Start infusion"),
    "end": (BEDSIDE, "End infusion"),
    "return": (tuple(sorted(BAG.roles_for("returned"))), "Return to the unit"),
    "discard": (tuple(sorted(BAG.roles_for("discarded"))), "Discard (broken, past its post-thaw limit...)"),
}
#: who may dispatch a bag to the ward (the ward page's dispatch form)
DISPATCHERS = tuple(sorted(BAG.roles_for("dispatched")))


@bp.app_template_global()
def may_open(endpoint: str) -> bool:
    """Whether the signed-in user's roles open the page `endpoint` (its access rule): a page names a record with a
    link only for a reader it will not refuse (a link a nurse cannot open is worse than none)."""
    rule = access_rule(current_app, endpoint)
    if rule is None or not current_user.is_authenticated:
        return bool(rule and rule.public)
    return rule.public or rule.roles is None or bool(current_user.has_role(*rule.roles))


@bp.app_template_global()
def custody_refs(event: Any) -> dict[str, int]:
    """The records a custody event names by id in its details (the bedside check, the infusion, the prescription),
    for the bag's timeline to link to them. Details that cannot be read name nothing."""
    try:
        details = json.loads(event.details_json or "{}")
    except ValueError:
        return {}
    if not isinstance(details, dict):
        return {}
    return {name: details[name] for name in ("check_id", "infusion_id", "prescription_id")
            if isinstance(details.get(name), int) and not isinstance(details.get(name), bool)}


def label_key() -> str:
    return current_app.config["LABEL_KEY"]


def check_valid_for() -> timedelta:
    return timedelta(minutes=int(current_app.config.get("CUSTODY_CHECK_VALID_MINUTES", 30)))


#: the session key of the ward's last "Where": a nurse records several bags in one room, and retyping it after every
#: step was the walkthrough's complaint (a place, never a patient: the cookie is signed, not encrypted)
WARD_LOCATION = "ward_location"


def _ward_list_args() -> tuple[str, int, dict[str, str]]:
    """The ward list's view: `state` (one of OUT_ON_THE_WARD, or all) and `page` (1, 2, ...), each refused by name
    when it is neither (a 422 that says so), never silently read as the first page of every bag."""
    state, raw_page, errors = request.args.get("state", "").strip(), request.args.get("page", "").strip(), {}
    if state and state not in OUT_ON_THE_WARD:
        errors["state"] = f"state: {state!r} is not a state of a bag out of the unit ({', '.join(OUT_ON_THE_WARD)})."
        state = ""
    page = 1
    if raw_page:
        asked = whole_number(raw_page, largest=100_000)
        if asked is None:
            errors["page"] = f"page: {raw_page[:40]!r} is not a page number (1, 2, ...)."
        else:
            page = asked
    return state, page, errors


def _ward(form: WardForm | None = None, dispatch_form: DispatchForm | None = None, status: int = 200) -> Any:
    db.session.rollback()
    form = form or WardForm(formdata=None, data={"location": session.get(WARD_LOCATION, "")})
    now = utcnow()
    state, page, list_errors = _ward_list_args()
    if list_errors and status == 200:
        status = 422
    listing = ward_listing(db.session, now, label_key(), state=state, page=1 if list_errors else page)
    return render_template("custody/ward.html", form=form, on_ward=listing.bags, listing=listing,
                           list_errors=list_errors, out_states=LIST_ORDER, now=now,
                           dispatch_form=dispatch_form or DispatchForm(formdata=None), actions=ACTIONS,
                           dispatchers=DISPATCHERS,
                           with_reason=ACTIONS["return"][0] + ACTIONS["discard"][0]), status


@bp.route("")
@roles_required(*WARD)
def ward() -> Any:
    return _ward()


@bp.route("/event", methods=["POST"])
@roles_required(*WARD)
def event() -> Any:
    form = WardForm()
    if not form.validate_on_submit():
        return _ward(form, status=422)
    action = request.form.get("action", "")
    try:
        if action not in ACTIONS:  # who may do what: the bag state machine and the services say it
            raise ValidationFailed("Choose an action.")
        bag = services.bag_for_scan(db.session, form.bag.data or "", label_key())
        kwargs = dict(location=form.location.data or "", scan=form.bag.data or "")
        if action == "receive":
            handover.receive(db.session, current_user, bag.id, **kwargs)
            flash(f"Bag {din_shown(bag)} received on the ward.", "success")
        elif action == "thaw":
            thawed = handover.thaw(db.session, current_user, bag.id, **kwargs)
            lot = db.session.get(Lot, bag.lot_id)
            product = product_of(lot) if lot else None
            by = f", by {local_and_utc(thawed.occurred_at + product.post_thaw_limit)}" if product else ""  # a clock time
            to_confirm = (f" ({provisional_thaw_limit_words(product.post_thaw_limit_minutes)})"
                          if product and product.post_thaw_limit_to_confirm else "")
            expires = (f" BUT THE BAG EXPIRES FIRST, at {local_and_utc(bag.expires_at)}: give it before then."
                       if product and bag.expires_at < thawed.occurred_at + product.post_thaw_limit else "")
            flash(f"Bag {din_shown(bag)} thawed: give it within {product.post_thaw_limit_minutes if product else 0} "
                  f"minutes{by}{to_confirm}.{expires}", "success")
        elif action == "return":
            handover.return_bag(db.session, current_user, bag.id, reason=form.reason.data or "", **kwargs)
            flash(f"Bag {din_shown(bag)} returned to the unit.", "success")
        elif action == "discard":
            handover.discard(db.session, current_user, bag.id, reason=form.reason.data or "", **kwargs)
            flash(f"Bag {din_shown(bag)} recorded as DISCARDED ({(form.reason.data or '').strip()}). Dispose of it as "
                  "biological waste; if it was prescribed, tell the prescriber.", "success")
        elif action == "start":
            if not (form.wristband.data or "").strip():  # the bag alone: the start is on its confirmed check's page
                # (scanning the wristband here too would run a new check and ask for a second person again)
                confirmed = bedside.latest_confirmed_check(db.session, bag.id, utcnow() - check_valid_for())
                if confirmed is None:
                    raise ValidationFailed(
                        f"Bag {din_shown(bag)}: Start infusion is on the confirmed check's page. Scan the patient's "
                        "wristband and the bag, have a second person confirm, then start there.", field="bag")
                return redirect(url_for("custody.check", check_id=confirmed.id, _method="GET", _anchor="start-form"), 303)
            try:
                infusion = infusions.start_infusion(db.session, current_user, bag.id,
                                                    wristband=form.wristband.data or "", bag_scan=form.bag.data or "",
                                                    label_key=label_key(), valid_for=check_valid_for())
            except ValidationFailed:
                raise  # a field to fill in: shown beside it, below
            except DomainError as error:  # WRONG PATIENT, WRONG BAG, a STOP since the check: the full STOP screen, as
                # on the confirmed check's page, never a line above a form
                from mscbatch.custody.bedside_views import (
                    show_start_refused,  # it imports this module's blueprint
                )

                return show_start_refused(bag.id, error)
            flash("Infusion started. Stay with the patient; record any reaction below.", "success")
            return redirect(url_for("custody.infusion", infusion_id=infusion.id))
        elif action == "end":
            infusion = infusion_of_bag(db.session, bag.id)
            if infusion is None:
                raise ValidationFailed(f"Bag {din_shown(bag)} has no infusion recorded.")
            return redirect(url_for("custody.infusion", infusion_id=infusion.id, _anchor="end"))
    except DomainError as error:
        db.session.rollback()
        show_error(form, error)
        if set(error.errors) != {"reason"}:
            # a refused step leaves no scanned code behind for the next scan to pair with (only a missing reason
            # keeps the bag, for the same step again with its reason)
            form.wristband.data = form.bag.data = ""
        return _ward(form, status=error.status)
    session[WARD_LOCATION] = (form.location.data or "").strip()
    return redirect(url_for("custody.ward"))


@bp.route("/dispatch", methods=["POST"])
@roles_required(*DISPATCHERS)
def dispatch() -> Any:
    form = DispatchForm()
    if form.validate_on_submit():
        try:
            bag = services.bag_for_scan(db.session, form.bag.data, label_key())
            handover.dispatch(db.session, current_user, bag.id, courier=form.courier.data,
                              shipper=form.shipper.data, temperature_logger_id=form.temperature_logger_id.data,
                              location=form.location.data or "", scan=form.bag.data)
        except DomainError as error:
            db.session.rollback()
            show_error(form, error)
            return _ward(dispatch_form=form, status=error.status)
        flash(f"Bag {din_shown(bag)} dispatched.", "success")
        return redirect(url_for("custody.ward"))
    return _ward(dispatch_form=form, status=422)
