"""QA's pages of bags returned to the unit: the list of those waiting, and one page per bag with its signed
assessment, back into stock or discard (custody.returns). Their routes are on the custody blueprint."""
from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, url_for
from flask_login import current_user

from mscbatch.auth.access import roles_required
from mscbatch.core.identifiers import din_shown
from mscbatch.custody import returns
from mscbatch.custody.forms import ReturnAssessmentForm
from mscbatch.custody.views import bp
from mscbatch.errors import DomainError, NotFound
from mscbatch.extensions import db
from mscbatch.lots.models import Bag
from mscbatch.site import site_config
from mscbatch.web.forms import show_error

#: who sees the pages: QA assesses; the state machine lets no one else move a bag on from "returned"
RETURN_ASSESSORS = ("qa",)


@bp.route("/returned")
@roles_required(*RETURN_ASSESSORS)
def returned() -> Any:
    return render_template("custody/returned.html", rows=returns.returned_bags(db.session), tz=site_config().tz)


def _bag_page(bag_id: int, form: ReturnAssessmentForm, status: int = 200) -> Any:
    bag = db.session.get(Bag, bag_id)
    if bag is None:
        raise NotFound(f"No bag with id {bag_id}.")
    row = returns.returned_bag(db.session, bag)
    if row is None:  # assessed meanwhile, or never returned: the list, saying so (or the refusal's own words)
        refusal = form.form_errors[0] if form.form_errors else (
            f"Bag {din_shown(bag)} is {bag.status.replace('_', ' ')}: no return of it waits for an assessment.")
        return render_template("custody/returned.html", rows=returns.returned_bags(db.session), tz=site_config().tz,
                               refusal=refusal), status if status >= 400 else 404
    return render_template("custody/return_assess.html", row=row, form=form, tz=site_config().tz,
                           min_rationale=returns.MIN_RATIONALE), status


@bp.route("/returned/<int:bag_id>")
@roles_required(*RETURN_ASSESSORS)
def assess_page(bag_id: int) -> Any:
    return _bag_page(bag_id, ReturnAssessmentForm(formdata=None))


@bp.route("/returned/<int:bag_id>", methods=["POST"])
@roles_required(*RETURN_ASSESSORS)
def assess_return(bag_id: int) -> Any:
    form = ReturnAssessmentForm()
    if not form.validate_on_submit():
        return _bag_page(bag_id, form, 422)
    try:
        assessment = returns.assess_return(
            db.session, current_user, bag_id, decision=form.decision.data or "", rationale=form.rationale.data or "",
            password=form.password.data or "", logger_max_c=form.logger_max_c.data or None,
            intact=bool(form.intact.data))
    except DomainError as error:
        db.session.rollback()
        show_error(form, error)
        return _bag_page(bag_id, form, error.status)
    bag = db.session.get(Bag, assessment.bag_id)
    if assessment.decision == "restock":
        where = (f" in {returns.kept_position(db.session, bag)}. It can be prescribed again" if bag.box_id is not None
                 else ". A technician places it in a box (the lot's Bags and storage); then it can be prescribed again")
        flash(f"Bag {din_shown(bag)} is back in stock (assessment signed){where}.", "success")
    else:
        flash(f"Bag {din_shown(bag)} recorded as DISCARDED (assessment signed): dispose of it as biological waste.",
              "success")
    return redirect(url_for("custody.returned"))
