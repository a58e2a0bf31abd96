"""Donor pages: list, registration, the donor page (identity, checklist, results, questionnaire, decisions,
lookbacks) and the POST actions. Views parse and authorise; the services decide and write."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from mscbatch.auth.access import authenticated, roles_required
from mscbatch.core.eligibility import age_in_years
from mscbatch.donors import decisions, services
from mscbatch.donors.forms import (
    CloseLookbackForm,
    CorrectionForm,
    DecisionForm,
    DonorEditForm,
    DonorForm,
    QACorrectionForm,
    ReopenForm,
    ResultForm,
    marker_label,
    questionnaire_form,
    tri_state,
    tri_state_value,
    used_fields,
)
from mscbatch.donors.models import (
    DONOR_STATUSES,
    DONOR_TYPE_LABELS,
    RELATIONSHIP_LABELS,
    SEX_LABELS,
    SOURCE_LABELS,
    STATUS_LABELS,
    Donor,
    ScreeningResult,
)
from mscbatch.donors.queries import (
    can_see_identity,
    current_decision,
    earlier_reactive_of,
    get_donor,
    list_donors,
    recalls_of_donor,
    rule_set_of,
    rule_sets,
    screening_of,
)
from mscbatch.donors.validation import donor_types_of
from mscbatch.errors import DomainError, NotFound
from mscbatch.extensions import db
from mscbatch.web.forms import show_error

bp = Blueprint("donors", __name__, url_prefix="/donors")
bp.record_once(lambda _state: rule_sets())  # validate every donor rule file when the app starts

LABELS = dict(sources=SOURCE_LABELS, statuses=STATUS_LABELS, donor_types=DONOR_TYPE_LABELS,
              relationships=RELATIONSHIP_LABELS, sexes=SEX_LABELS)


@bp.route("")
@authenticated
def index() -> Any:
    filters = {k: request.args.get(k, "").strip() for k in ("source", "status", "q")}
    if not filters["source"]:  # the donor's field name, as a link or a person may type it
        filters["source"] = request.args.get("tissue_source", "").strip()
    errors = donor_filter_errors(filters["source"], filters["status"], request.args.get("page", "").strip())
    page = None
    if not errors:
        page = list_donors(db.session, source=filters["source"], status=filters["status"], search=filters["q"],
                           page=request.args.get("page", 1, type=int))
    return render_template("donors/list.html", page=page, filters=filters, errors=errors,
                           **LABELS), 422 if errors else 200


def donor_filter_errors(source: str, status: str, page: str) -> dict[str, str]:
    """What the donor list cannot filter by, each under its query parameter (as the lot list says it): a filter
    ignored silently listed every donor under "All statuses"."""
    errors: dict[str, str] = {}
    if source and source not in SOURCE_LABELS:
        errors["source"] = (f"Tissue source: {source[:40]!r} is not a tissue source: choose one of "
                            f"{', '.join(label.lower() for label in SOURCE_LABELS.values())}, or all sources.")
    if status and status not in DONOR_STATUSES:
        errors["status"] = (f"Status: {status[:40]!r} is not a donor status: choose one of "
                            f"{', '.join(STATUS_LABELS[s] for s in DONOR_STATUSES)}, or all statuses.")
    # at most six digits: the length first, as int() of a 5000-digit page refuses to convert (a 500 found by fuzzing)
    if page and not (page.isascii() and page.isdigit() and len(page) <= 6 and int(page) >= 1):
        errors["page"] = f"Page: {page[:20]!r} is not a page number: give a whole number from 1 to 999999."
    return errors


def _details(form: DonorForm) -> services.DonorDetails:
    rule_set = rule_sets().get(form.rule_set_id.data or "")
    return services.DonorDetails(
        tissue_source=rule_set.tissue_source if rule_set else "", rule_set_id=form.rule_set_id.data or "",
        donor_type=form.donor_type.data, relationship=form.relationship.data or None,
        recipient_code=form.recipient_code.data, initials=form.initials.data, date_of_birth=form.date_of_birth.data,
        sex=form.sex.data or None, weight_kg=form.weight_kg.data,
        consent_signed=tri_state(form.consent_signed.data), consent_date=form.consent_date.data,
        social_security=tri_state(form.social_security.data),
        childbearing_potential=tri_state(form.childbearing_potential.data),
        contraception=tri_state(form.contraception.data),
        retest_180_days_negative=tri_state(form.retest_180_days_negative.data),
        planned_collection_date=form.planned_collection_date.data)


@bp.route("/new", methods=["GET", "POST"])
@roles_required("technician")
def register() -> Any:
    form = DonorForm().set_rule_sets(rule_sets())
    if request.method == "GET" and request.args.get("rule_set", "") in rule_sets():
        form.rule_set_id.data = request.args["rule_set"]  # the protocol chosen first: only its fields are shown
        allowed = donor_types_of(rule_sets()[form.rule_set_id.data])
        if len(allowed) == 1:  # SSc-BM takes familial donors only: never offer "unrelated" first, refused on submit
            form.donor_type.data = allowed[0]
    status = 200
    if form.validate_on_submit():
        try:
            donor = services.register_donor(db.session, current_user, _details(form))
        except DomainError as error:
            show_error(form, error)
            status = error.status
        else:
            flash(f"Donor {donor.code} registered. Now enter the screening.", "success")
            others = services.other_donors_of_recipient(db.session, donor)
            if others:
                listed = ", ".join(f"{d.code} ({STATUS_LABELS.get(d.status, d.status)})" for d in others)
                flash(f"Recipient {donor.recipient_code} already has familial donor{'s' if len(others) > 1 else ''} "
                      f"{listed}. Check which donor is to give: the patient's record is linked to one donor.",
                      "warning")
            return redirect(url_for("donors.detail", donor_id=donor.id))
    elif form.errors:
        _with_problems(form, services.details_problems(_details(form)))
        status = 422
    return render_template("donors/form.html", form=form, donor=None, **LABELS), status


def _with_problems(form: Any, problems: dict[str, list[str]]) -> None:
    """The services' problems next to the fields the form itself could read: every error of a submit at once (a
    field the form already refused keeps its own message)."""
    for name, messages in problems.items():
        field = getattr(form, name, None)
        if field is not None and hasattr(field, "errors") and not field.errors:
            field.errors = list(messages)


def _correction_problems(form: Any, row: ScreeningResult) -> None:
    """A correction's problems, every one at once: the result's, and the reason's when it turns a reactive result
    negative (services.reactive_correction_reason_problem)."""
    _result_problems(form, row.donor_id)
    weak = services.reactive_correction_reason_problem(row.result, form.result.data or "", form.reason.data)
    if weak is not None and (form.reason.data or "").strip():  # an empty reason: the form's own message says so
        _with_problems(form, {"reason": [weak]})


def _result_problems(form: Any, donor_id: int) -> None:
    _with_problems(form, services.result_problems(
        db.session, donor_id, marker=form.marker.data or "", result=form.result.data or "",
        sample_date=form.sample_date.data, lab_reference=form.lab_reference.data or ""))


def _edit_data(donor: Donor) -> dict[str, Any]:
    data: dict[str, Any] = {k: getattr(donor, k) for k in (
        "rule_set_id", "donor_type", "recipient_code", "initials", "date_of_birth", "consent_date",
        "planned_collection_date")}
    data.update(relationship=donor.relationship or "", sex=donor.sex or "",
                weight_kg="" if donor.weight_kg is None else str(donor.weight_kg))
    for key in ("consent_signed", "social_security", "childbearing_potential", "contraception",
                "retest_180_days_negative"):
        data[key] = tri_state_value(getattr(donor, key))
    return data


@bp.route("/<int:donor_id>/edit", methods=["GET", "POST"])
@roles_required("technician")
def edit(donor_id: int) -> Any:
    donor = get_donor(db.session, donor_id)
    locked = services.locked_words(db.session, donor, "Its details can no longer be corrected.")
    if locked is not None and request.method == "GET":  # an editable form for a signed record would be a lie
        flash(locked, "error")
        return redirect(url_for("donors.detail", donor_id=donor_id))
    form = (DonorEditForm() if request.method == "POST"
            else DonorEditForm(data={**_edit_data(donor), "seen": services.details_digest(donor)}))
    form.set_rule_sets(rule_sets())
    status = 200
    if form.validate_on_submit():
        try:
            services.update_donor(db.session, current_user, donor_id, _details(form), form.reason.data,
                                  seen_digest=form.seen.data or None)
        except DomainError as error:
            db.session.rollback()
            if _changed_since(error):  # the details as recorded now, with the refusal: never the stale values
                form = DonorEditForm(formdata=None, data={**_edit_data(donor), "seen": services.details_digest(donor)})
                form.set_rule_sets(rule_sets())
            show_error(form, error)
            status = error.status
        else:
            flash(f"Donor {donor.code} corrected.", "success")
            return redirect(url_for("donors.detail", donor_id=donor_id))
    elif form.errors:
        _with_problems(form, services.details_problems(_details(form)))
        status = 422
    return render_template("donors/form.html", form=form, donor=donor, **LABELS), status


def _changed_since(error: DomainError) -> bool:
    """The refusal of a page opened before a colleague changed the record (services._refuse_if_changed_since)."""
    return isinstance(error, services.ChangedSince)


def _questionnaire_data(screening: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"seen": services.questionnaire_digest(screening.answers)}
    for question_id, answer in screening.answers.items():
        data[f"q_{question_id}"], data[f"d_{question_id}"] = answer.answer, answer.detail
    return data


def _detail(donor_id: int, status: int = 200, **forms: Any) -> Any:
    db.session.rollback()  # a refused use case may have left expired objects; read everything afresh
    screening = screening_of(db.session, donor_id)
    rule_set = screening.rule_set
    forms.setdefault("result_form", ResultForm(prefix="result", formdata=None).set_markers(rule_set))
    forms.setdefault("questionnaire_form", _fresh_questionnaire(rule_set, screening))
    forms.setdefault("decision_form", DecisionForm(prefix="decision", formdata=None))
    # the screening this page shows, fresh (also on a refused form: the page is read again before a new try)
    forms["decision_form"].screening.data = decisions.screening_digest(screening.evaluation)
    forms.setdefault("reopen_form", ReopenForm(prefix="reopen", formdata=None))
    forms.setdefault("lookback_form", CloseLookbackForm(prefix="lookback", formdata=None))
    forms.setdefault("lookback_refused_id", None)
    donor = screening.donor
    age = (age_in_years(donor.date_of_birth, donor.planned_collection_date)
           if donor.date_of_birth and donor.planned_collection_date else None)
    from mscbatch.lots.queries import lots_of_donor  # issue 4: the lots made from this donor

    return render_template("donors/detail.html", s=screening, donor=donor, rule_set=rule_set, age=age,
                           lots=lots_of_donor(db.session, donor.id), donor_recalls=recalls_of_donor(db.session, donor.id),
                           closable={lb.id: decisions.lookback_closable(db.session, lb)
                                     for lb in screening.lookbacks if lb.closed_at is None},
                           risk_assessment_only=decisions.only_risk_assessments(screening.evaluation),
                           on_risk_assessment=decisions.stands_on_risk_assessment(screening.current,
                                                                                 screening.evaluation),
                           risk_assessment_min=decisions.RISK_ASSESSMENT_MIN_CHARS,
                           corrected_reactive_min=decisions.CORRECTED_REACTIVE_COMMENT_MIN_CHARS,
                           used_fields=used_fields(rule_set),
                           is_risk_assessed=decisions.is_risk_assessed,
                           earlier_reactive=earlier_reactive_of(db.session, donor, screening.results),
                           late_news=services.late_news_for(db.session, screening.results),
                           show_identity=can_see_identity(current_user), yesno=_yes_no, **forms, **LABELS), status


def _yes_no(value: bool | None) -> str:
    return "—" if value is None else ("yes" if value else "no")


def _fresh_questionnaire(rule_set: Any, screening: Any) -> Any:
    """The questionnaire filled with the recorded answers (not with whatever another form posted)."""
    form = questionnaire_form(rule_set)
    form.process(formdata=None, data=_questionnaire_data(screening))
    return form


@bp.route("/<int:donor_id>")
@authenticated
def detail(donor_id: int) -> Any:
    return _detail(donor_id)


@bp.route("/<int:donor_id>/results", methods=["POST"])
@roles_required("technician")
def add_result(donor_id: int) -> Any:
    donor = get_donor(db.session, donor_id)
    form = ResultForm(prefix="result").set_markers(rule_set_of(donor))
    if form.validate_on_submit():
        try:
            row = services.record_result(db.session, current_user, donor_id, marker=form.marker.data,
                                         result=form.result.data, sample_date=form.sample_date.data,
                                         lab_reference=form.lab_reference.data)
        except DomainError as error:
            show_error(form, error)
            return _detail(donor_id, error.status, result_form=form)
        _flash_recorded(donor_id, row)
        return redirect(url_for("donors.detail", donor_id=donor_id, _anchor="results"))
    _result_problems(form, donor_id)
    return _detail(donor_id, 422, result_form=form)


def _flash_recorded(donor_id: int, row: ScreeningResult) -> None:
    """Say at once when the sample just recorded falls outside its window: recorded, but it does not count."""
    screening = screening_of(db.session, donor_id)
    marker = rule_set_of(db.session.get(Donor, donor_id)).marker(row.marker)
    name = marker_label(marker.name, marker.method) if marker else row.marker  # as the form's list names it
    said = f"Result recorded: {name} {row.result}, sample {row.sample_date}."
    index = next((i for i, r in enumerate(screening.results) if r.id == row.id), None)
    outside = screening.outside(index) if index is not None else []
    if not outside:
        flash(said, "success")
        return
    said_days = []
    for day in outside:
        standing = day.standings[index]
        if standing is not None:
            since = f"lot {', '.join(day.lots)}'s collection on {day.day}" if day.lots else \
                f"the planned collection on {day.day}"
            unit = "day" if abs(standing.offset_days) == 1 else "days"
            said_days.append(f"{standing.offset_days:+d} {unit} from {since}, window {standing.window}")
    days = "; ".join(said_days)
    consequence = ("It does not count: the marker stays missing unless another sample is inside its window."
                   if row.result == "negative" else "It is still weighed: see the checklist.")
    flash(f"{said} The sample is outside its window ({days}). {consequence}", "warning")


def _correction_form(row: ScreeningResult) -> CorrectionForm:
    return CorrectionForm(formdata=None, data=dict(marker=row.marker, result=row.result, sample_date=row.sample_date,
                                                   lab_reference=row.lab_reference,
                                                   seen=services.result_digest(row)))


@bp.route("/results/<int:result_id>/correct", methods=["GET", "POST"])
@roles_required("technician")
def correct_result(result_id: int) -> Any:
    row = db.session.get(ScreeningResult, result_id)
    if row is None:
        raise NotFound(f"No screening result with id {result_id}.")
    donor = get_donor(db.session, row.donor_id)
    form = CorrectionForm() if request.method == "POST" else _correction_form(row)
    form.set_markers(rule_set_of(donor))
    status = 200
    if form.validate_on_submit():
        try:
            services.correct_result(db.session, current_user, result_id, reason=form.reason.data,
                                    marker=form.marker.data, result=form.result.data,
                                    sample_date=form.sample_date.data, lab_reference=form.lab_reference.data,
                                    seen_digest=form.seen.data or None)
        except DomainError as error:
            db.session.rollback()
            if _changed_since(error):  # the result as recorded now, with the refusal: never the stale values
                form = _correction_form(row).set_markers(rule_set_of(donor))
            show_error(form, error)
            status = error.status
        else:
            flash("Result corrected; the old value is kept in the audit trail.", "success")
            return redirect(url_for("donors.detail", donor_id=donor.id, _anchor="results"))
    elif form.errors:
        _correction_problems(form, row)
        status = 422
    # a form that could not be saved is not offered: once QA has signed, a result is only superseded by a new one;
    # a result that reopened the donor's approval is corrected by QA only (services.late_news_of)
    locked = current_decision(db.session, donor.id)
    late = services.late_news_of(db.session, row)
    return render_template("donors/correct_result.html", form=form, row=row, donor=donor, locked=locked, late=late,
                           by_qa=False, marker_name=_marker_name(donor, row.marker)), status


def _marker_name(donor: Donor, marker_id: str) -> str:
    marker = rule_set_of(donor).marker(marker_id)
    return marker.name if marker is not None else marker_id


@bp.route("/results/<int:result_id>/qa-correct", methods=["GET", "POST"])
@roles_required("qa")
def qa_correct_result(result_id: int) -> Any:
    """QA's signed correction of a result that reopened the donor's approval (services.correct_result)."""
    row = db.session.get(ScreeningResult, result_id)
    if row is None:
        raise NotFound(f"No screening result with id {result_id}.")
    donor = get_donor(db.session, row.donor_id)
    form = QACorrectionForm() if request.method == "POST" else QACorrectionForm(
        formdata=None, data=dict(marker=row.marker, result=row.result, sample_date=row.sample_date,
                                 lab_reference=row.lab_reference, seen=services.result_digest(row)))
    form.set_markers(rule_set_of(donor))
    status = 200
    if form.validate_on_submit():
        try:
            services.correct_result(db.session, current_user, result_id, reason=form.reason.data,
                                    marker=form.marker.data, result=form.result.data,
                                    sample_date=form.sample_date.data, lab_reference=form.lab_reference.data,
                                    seen_digest=form.seen.data or None, password=form.password.data or "")
        except DomainError as error:
            db.session.rollback()
            if error.status == 401:
                form.password.errors = [*form.password.errors, error.message]
            else:
                show_error(form, error)
            status = error.status
        else:
            flash("Result corrected and signed; the old value is kept in the audit trail and shown to QA before "
                  "any approval.", "success")
            return redirect(url_for("donors.detail", donor_id=donor.id, _anchor="results"))
    elif form.errors:
        _correction_problems(form, row)
        status = 422
    locked = current_decision(db.session, donor.id)
    late = services.late_news_of(db.session, row)
    return render_template("donors/correct_result.html", form=form, row=row, donor=donor, locked=locked, late=late,
                           by_qa=True, marker_name=_marker_name(donor, row.marker)), status


@bp.route("/lookbacks/<int:lookback_id>/close", methods=["POST"])
@roles_required("qa")
def close_lookback(lookback_id: int) -> Any:
    """QA closes, with a note, a lookback of a donor from whom no lot was made (decisions.close_lookback_without_lots)."""
    from mscbatch.donors.models import DonorLookback

    found = db.session.get(DonorLookback, lookback_id)
    if found is None:
        raise NotFound(f"No donor lookback with id {lookback_id}.")
    donor_id = found.donor_id
    form = CloseLookbackForm(prefix="lookback")
    if form.validate_on_submit():
        try:
            decisions.close_lookback_without_lots(db.session, current_user, lookback_id, form.note.data)
        except DomainError as error:
            db.session.rollback()
            show_error(form, error)
            return _detail(donor_id, error.status, lookback_form=form, lookback_refused_id=lookback_id)
        flash(f"Lookback L-{lookback_id} closed.", "success")
        return redirect(url_for("donors.detail", donor_id=donor_id, _anchor="lookbacks"))
    return _detail(donor_id, 422, lookback_form=form, lookback_refused_id=lookback_id)


@bp.route("/<int:donor_id>/questionnaire", methods=["POST"])
@roles_required("technician")
def questionnaire(donor_id: int) -> Any:
    donor = get_donor(db.session, donor_id)
    rule_set = rule_set_of(donor)
    form = questionnaire_form(rule_set)
    if form.validate_on_submit():
        answers = {q.id: (form[f"q_{q.id}"].data, form[f"d_{q.id}"].data or "") for q in rule_set.questions
                   if form[f"q_{q.id}"].data}
        try:
            written = services.answer_questionnaire(db.session, current_user, donor_id, answers, form.reason.data,
                                                    seen_digest=form.seen.data or None)
        except DomainError as error:
            if _changed_since(error):  # the answers as recorded now, with the refusal: never the stale ones
                db.session.rollback()
                form = _fresh_questionnaire(rule_set, screening_of(db.session, donor_id))
            show_error(form, error)
            return _detail(donor_id, error.status, questionnaire_form=form)
        flash(f"Questionnaire saved ({written} answer{'s' if written != 1 else ''} recorded).", "success")
        return redirect(url_for("donors.detail", donor_id=donor_id, _anchor="questionnaire"))
    return _detail(donor_id, 422, questionnaire_form=form)


@bp.route("/<int:donor_id>/decision", methods=["POST"])
@roles_required("qa")
def decide(donor_id: int) -> Any:
    form = DecisionForm(prefix="decision")
    if form.validate_on_submit():
        try:
            # the page's fingerprint of the screening QA read: a form without it is refused (decisions.decide)
            decision = decisions.decide(db.session, current_user, donor_id, form.meaning.data, form.password.data,
                                        form.comment.data or "", seen_digest=form.screening.data or "")
        except DomainError as error:
            if error.status == 401:  # wrong password: said next to the password field
                form.password.errors = [*form.password.errors, error.message]
            else:
                show_error(form, error)
            return _detail(donor_id, error.status, decision_form=form)
        flash(f"Signed: {decision.meaning}.", "success")
        return redirect(url_for("donors.detail", donor_id=donor_id, _anchor="decision"))
    return _detail(donor_id, 422, decision_form=form)


@bp.route("/<int:donor_id>/reopen", methods=["POST"])
@roles_required("qa")
def reopen(donor_id: int) -> Any:
    form = ReopenForm(prefix="reopen")
    if form.validate_on_submit():
        try:
            decisions.reopen_screening(db.session, current_user, donor_id, form.reason.data)
        except DomainError as error:
            show_error(form, error)
            return _detail(donor_id, error.status, reopen_form=form)
        flash("Decision reopened: the screening can be completed and signed again.", "warning")
        return redirect(url_for("donors.detail", donor_id=donor_id, _anchor="decision"))
    return _detail(donor_id, 422, reopen_form=form)
