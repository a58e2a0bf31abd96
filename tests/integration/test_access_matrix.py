"""Every route x every role: the expected allow / deny, read off the url map.

A route that is not in EXPECTED_ACCESS fails the test, so nobody can add a page without deciding who may
see it. Allowed means the access check let the request through (any status but 403 / redirect-to-login);
denied means 403 for a signed-in user without the role.
"""
from __future__ import annotations

import pytest
from werkzeug.routing.converters import NumberConverter

from tests.conftest import ROLES, api_token_for

PUBLIC = "public"
SIGNED_IN = "signed-in"
ALL = frozenset(ROLES)

# endpoint -> PUBLIC, SIGNED_IN or the set of roles allowed. Each capability adds its routes here.
EXPECTED_ACCESS: dict[str, object] = {
    "static": PUBLIC,
    "web.home": PUBLIC,
    "web.healthz": PUBLIC,
    "auth.login": PUBLIC,
    "auth.logout": PUBLIC,
    "auth.account": SIGNED_IN,
    "auth.change_password": SIGNED_IN,
    "auth.create_token": SIGNED_IN,
    "auth.revoke_token": SIGNED_IN,
    "auth.users": {"admin"},
    "auth.user_detail": {"admin"},
    "auth.user_action": {"admin"},
    "audit.events": {"qa", "admin"},
    "audit.events_csv": {"qa", "admin"},
    "audit.verify": {"qa", "admin"},
    "api-docs.openapi_json": PUBLIC,
    "api.me": SIGNED_IN,
    # donors (issue 3): read by every signed-in role (identity fields filtered), written by the lab, signed by QA
    "donors.index": SIGNED_IN,
    "donors.detail": SIGNED_IN,
    "donors.register": {"technician"},
    "donors.edit": {"technician"},
    "donors.add_result": {"technician"},
    "donors.qa_correct_result": {"qa"},
    "donors.close_lookback": {"qa"},
    "donors.correct_result": {"technician"},
    "donors.questionnaire": {"technician"},
    "donors.decide": {"qa"},
    "donors.reopen": {"qa"},
    "donors_api.list_all": SIGNED_IN,
    "donors_api.get": SIGNED_IN,
    "donors_api.list_results": SIGNED_IN,
    "donors_api.add_result": {"technician"},
    "donors_api.eligibility": SIGNED_IN,
    # lots (issue 4): read by every signed-in role, recorded by the lab; unsigned state changes by lab or QA
    "lots.index": SIGNED_IN,
    "lots.detail": SIGNED_IN,
    "lots.create": {"technician"},
    "lots.isolation": {"technician"},
    "lots.passage": {"technician"},
    "lots.deviation": {"technician"},
    "lots.reagent": {"technician"},
    "lots.harvest": {"technician"},
    "lots.cryopreservation": {"technician"},
    "lots.store": {"technician"},
    "lots.correct_harvest": {"technician"},  # review 5: a typing error corrected with its reason, in process only
    "lots.correct_passage": {"technician"},
    "lots.correct_bag": {"technician"},  # a bag's content, until the lot is released
    "lots.correct_reagent_use": {"technician"},
    "lots.transition": {"technician", "qa"},
    "reagents.index": SIGNED_IN,
    "reagents.detail": SIGNED_IN,
    "reagents.create": {"technician"},
    "reagents.correct": {"technician"},  # a reagent lot typed wrong (s42)
    "storage.index": SIGNED_IN,
    "storage.box": SIGNED_IN,
    "storage.create": {"technician"},
    "storage.identifiers": SIGNED_IN,
    "lots_api.list_all": SIGNED_IN,
    "lots_api.get": SIGNED_IN,
    "lots_api.list_steps": SIGNED_IN,
    "lots_api.list_bags": SIGNED_IN,
    "lots_api.create": {"technician"},
    "lots_api.add_isolation": {"technician"},
    "lots_api.add_passage": {"technician"},
    "lots_api.harvest": {"technician"},
    "lots_api.cryopreserve": {"technician"},
    "lots_api.transition": {"technician", "qa"},
    "reagents_api.list_reagent_lots": SIGNED_IN,
    "reagents_api.register": {"technician"},
    "reagents_api.correct": {"technician"},
    "reagents_api.list_uses": SIGNED_IN,
    "reagents_api.link": {"technician"},
    "storage_api.get_one_bag": SIGNED_IN,
    "storage_api.store": {"technician"},
    "storage_api.tree": SIGNED_IN,
    "storage_api.add_location": {"technician"},
    "storage_api.box": SIGNED_IN,
    "storage_api.parse_identifier": SIGNED_IN,
    # release (issue 5): QC enters results, QA signs dispositions and closes OOS, a clinician requests the
    # exceptional use of an OOS batch; nurses see a bag's release state through the API
    "release.index": {"qa", "technician", "admin"},
    "release.review": {"technician", "qa", "clinician", "admin"},
    "release.certificate": {"technician", "qa", "clinician", "admin"},
    "release.attachment": {"technician", "qa", "clinician", "admin"},
    "release.add_result": {"technician"},
    "release.add_panel": {"technician"},
    "release.correct": {"technician"},
    "release.release_lot": {"qa"},
    "release.close_oos": {"qa"},
    "release.assess_deviation": {"qa"},
    "release.exceptional": {"clinician"},
    "release_api.list_results": {"technician", "qa", "clinician", "admin"},
    "release_api.add_result": {"technician"},
    "release_api.lot_status": {"technician", "qa", "clinician", "admin"},
    "release_api.bag_state": SIGNED_IN,
    # patients (issue 6): read by clinicians, nurses and QA; registered, checked, enrolled and prescribed by clinicians
    "patients.index": {"clinician", "nurse", "qa"},
    "patients.detail": {"clinician", "nurse", "qa"},
    "patients.cohort": {"clinician", "nurse", "qa"},
    "patients.register": {"clinician"},
    "patients.add_weight": {"clinician"},
    "patients.mark_weight_in_error": {"clinician"},
    "patients.enrolment_check": {"clinician"},
    "patients.enrol": {"clinician"},
    "patients.withdraw": {"clinician"},
    "patients.decide": {"clinician"},
    "prescriptions.dose": {"clinician"},
    "prescriptions.prescribe": {"clinician"},
    "prescriptions.cancel": {"clinician"},
    "prescriptions.detail": {"clinician", "nurse", "qa"},
    "prescriptions.dose_sheet": {"clinician", "nurse", "qa"},
    "patients_api.list_all": {"clinician", "nurse", "qa"},
    "patients_api.get": {"clinician", "nurse", "qa"},
    "patients_api.list_weights": {"clinician", "nurse", "qa"},
    "patients_api.list_prescriptions": {"clinician", "nurse", "qa"},
    "patients_api.get_one_prescription": {"clinician", "nurse", "qa"},
    "patients_api.cancel_prescription": {"clinician"},
    "patients_api.create": {"clinician"},
    "patients_api.add_weight": {"clinician"},
    "patients_api.mark_weight_in_error": {"clinician"},
    "patients_api.dose_calculation": {"clinician"},
    "patients_api.prescribe": {"clinician"},
}
# labels, traceability and recall (issue 7): the lab and QA print labels; anyone can open a label's QR page (no
# patient data on it); QA and clinicians trace and read recalls; only QA starts or ends a recall
EXPECTED_ACCESS.update({
    "labelling.lot_labels": {"technician", "qa"},
    "labelling.print_lot": {"technician", "qa"},
    "verify.verify": PUBLIC,
    "labels_api.verify": SIGNED_IN,
    "recall.index": {"qa", "clinician"},
    "recall.detail": {"qa", "clinician"},
    "recall.report_pdf": {"qa", "clinician"},
    "recall.start": {"qa"},
    "recall.end": {"qa"},
    "recall.complete": {"qa"},
    "recall.discard_bag": {"qa"},
    "recall.close_lookback": {"qa"},
    "recall.record_notice": {"qa"},
    "recall.acknowledge_notice": {"clinician"},
    "trace.donor": {"qa", "clinician"},
    "trace.donor_pdf": {"qa", "clinician"},
    "trace.lot": {"qa", "clinician"},
    "trace.lot_pdf": {"qa", "clinician"},
    "trace.reagent": {"qa", "clinician"},
    "trace.reagent_pdf": {"qa", "clinician"},
    "trace.patient": {"qa", "clinician"},
    "trace.patient_pdf": {"qa", "clinician"},
    "trace.find": {"qa", "clinician"},
    "trace.bag": {"qa", "clinician", "nurse", "technician"},
})


def _sample_url(app, rule) -> str:  # type: ignore[no-untyped-def]
    values = {}
    for name in rule.arguments:
        converter = rule._converters[name]
        values[name] = 999999 if isinstance(converter, NumberConverter) else "x"
    if rule.endpoint == "static":
        values["filename"] = "css/mscbatch.css"
    with app.test_request_context():
        from flask import url_for

        return url_for(rule.endpoint, **values)


def _method(rule) -> str:  # type: ignore[no-untyped-def]
    return "GET" if "GET" in rule.methods else sorted(rule.methods - {"HEAD", "OPTIONS"})[0]


def test_every_route_has_an_expected_access_rule(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert endpoints - set(EXPECTED_ACCESS) == set(), "routes with no entry in EXPECTED_ACCESS"
    assert set(EXPECTED_ACCESS) - endpoints == set(), "EXPECTED_ACCESS names routes that no longer exist"


def test_every_view_carries_an_access_rule_in_code(app):
    from mscbatch.auth.access import access_rule

    for rule in app.url_map.iter_rules():
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert access_rule(app, rule.endpoint, method) is not None, f"{rule.endpoint} {method} has no rule"


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(app, users, client_as, role):
    client = client_as(role)
    token = api_token_for(app, role)
    for rule in app.url_map.iter_rules():
        expected = EXPECTED_ACCESS[rule.endpoint]
        if expected == PUBLIC:
            continue  # public routes are covered by the anonymous test (and logout would end this session)
        allowed = expected in (PUBLIC, SIGNED_IN) or role in expected  # type: ignore[operator]
        url, method = _sample_url(app, rule), _method(rule)
        headers = {"Authorization": f"Bearer {token}"} if url.startswith("/api/") else {}
        response = client.open(url, method=method, headers=headers)
        if allowed:
            assert response.status_code != 403, f"{role} should reach {method} {url} ({rule.endpoint})"
            assert "/login" not in response.headers.get("Location", ""), f"{role} bounced from {url}"
        else:
            assert response.status_code == 403, f"{role} must be refused {method} {url}, got {response.status_code}"


#: pages' JSON polls: a script cannot follow a redirect to the sign-in page, so they answer 401 to a visitor
SCRIPT_POLLS = frozenset({"custody.infusion_stop", "custody.ward_running"})


def test_anonymous_visitors_reach_only_public_routes(app):
    client = app.test_client()
    for rule in app.url_map.iter_rules():
        url, method = _sample_url(app, rule), _method(rule)
        response = client.open(url, method=method)
        if EXPECTED_ACCESS[rule.endpoint] == PUBLIC:
            assert response.status_code not in (401, 403), url
            continue
        if url.startswith("/api/"):
            assert response.status_code == 401, url
            assert response.mimetype == "application/problem+json"
        elif rule.endpoint in SCRIPT_POLLS:  # read by a page's script, which says "signed out" on a 401
            assert response.status_code == 401 and response.is_json, url
        else:
            assert response.status_code == 302 and "/login" in response.headers["Location"], url


def test_a_browser_session_cookie_does_not_authenticate_the_api(client_as):
    response = client_as("admin").get("/api/v1/me")
    assert response.status_code == 401


# custody (issue 7): the ward page for nurses, clinicians and technicians; the bedside check, its confirmation and
# the infusion record by nurses and clinicians only; dispatch by the lab; infusion records read by QA too
EXPECTED_ACCESS.update({
    "custody.ward": {"nurse", "clinician", "technician", "qa"},
    "custody.check": {"nurse", "clinician"},
    "custody.confirm": {"nurse", "clinician"},
    "custody.start": {"nurse", "clinician"},
    "custody.event": {"nurse", "clinician", "technician", "qa"},
    "custody.dispatch": {"technician"},
    "custody.infusion": {"nurse", "clinician", "qa"},
    "custody.infusion_stop": {"nurse", "clinician", "qa"},
    "custody.ward_running": {"nurse", "clinician"},
    # the running infusion's STOP watch once the session has ended: no session, only the page's signed watch token
    # (400 without it, 401/403 for a token forged, expired, of another infusion or of one ended)
    "custody.infusion_watch": PUBLIC,
    "custody.end": {"nurse", "clinician"},
    "custody.reaction": {"nurse", "clinician"},
    "custody.returned": {"qa"},  # a bag returned to the unit: QA alone assesses it
    "custody.assess_page": {"qa"},
    "custody.assess_return": {"qa"},
    "custody_api.scan_verify": {"nurse", "clinician"},
    "custody_api.confirm": {"nurse", "clinician"},
    "custody_api.add_event": {"nurse", "technician", "qa", "clinician"},
    "custody_api.bag_events": SIGNED_IN,
    "custody_api.get_infusion": {"nurse", "clinician", "qa"},
    "custody_api.start_infusion": {"nurse", "clinician"},
    "custody_api.end_infusion": {"nurse", "clinician"},
    "custody_api.add_reaction": {"nurse", "clinician"},
})


# interoperability (issue 8): the exports follow the pages showing the same data (lots and bags: any signed-in
# user; release results: the release review's readers); FHIR like the bag API; the docs page for signed-in
# users, and /api/v1/docs is only a redirect to it (the OpenAPI document itself is public)
EXPECTED_ACCESS.update({
    "interop.exports": SIGNED_IN,
    "interop.export_lots": SIGNED_IN,
    "interop.export_bags": SIGNED_IN,
    "interop.export_release_results": {"technician", "qa", "clinician", "admin"},
    "interop.api_docs": SIGNED_IN,
    "interop.api_docs_redirect": PUBLIC,
    "interop_api.biologically_derived_product": SIGNED_IN,
    "interop_api.lot_bundle": SIGNED_IN,
    "interop_api.export_lots": SIGNED_IN,
    "interop_api.export_bags": SIGNED_IN,
    "interop_api.export_release_results": {"technician", "qa", "clinician", "admin"},
    # infusions name the patient's trial code: the dispense as the patient pages, the CSV for QA, clinicians, admin
    "interop.export_infusions": {"qa", "clinician"},
    "interop_api.export_infusions": {"qa", "clinician"},
    "interop_api.biologically_derived_product_dispense": {"clinician", "nurse", "qa"},
    "interop.bag_evidence": {"qa", "admin"},  # the inspectors' evidence bundle
})


# observability (issue 9 point 5): the monitoring page and its counters API are for admins only
EXPECTED_ACCESS.update({
    "monitoring.index": {"admin"},
    "monitoring_api.get_counters": {"admin"},
})
