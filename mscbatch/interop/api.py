"""Interoperability API: FHIR R5 resources and CSV exports (documented in /api/v1/openapi.json).

- GET /api/v1/fhir/BiologicallyDerivedProduct/<bag id>: one bag (application/fhir+json).
- GET /api/v1/fhir/BiologicallyDerivedProductDispense/<infusion id>: one infusion (clinicians, nurses, QA:
  the readers of the patient pages, since it names the patient's trial code).
- GET /api/v1/fhir/Bundle?lot=<lot id>: a collection Bundle of the lot's bags.
- GET /api/v1/fhir/Bundle?patient=<patient id>: a collection Bundle of the patient's infusions and their bags
  (patient readers only).
- GET /api/v1/exports/{lots,bags,release-results,infusions}.csv: the same CSV files as the /exports page, with the
  same role rules.
"""
from __future__ import annotations

import json
from typing import Any

from flask import Response, request
from flask_login import current_user
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from mscbatch.api.base import ROW_ID, QueryWholeNumber, problems
from mscbatch.auth.access import authenticated, roles_required
from mscbatch.errors import PermissionDenied
from mscbatch.extensions import db
from mscbatch.interop import csv_exports, fhir
from mscbatch.interop.csv_exports import EXPORTS, PATIENT_READERS, RELEASE_READERS

bp = Blueprint("interop_api", __name__, url_prefix="/api/v1",
               description="FHIR R5 export (BiologicallyDerivedProduct, Bundle) and CSV exports")

FHIR_DOC = ("FHIR R5 JSON, validated with the fhir.resources models. DIN in identifier (system "
            f"{fhir.DIN_SYSTEM}), ISBT 128 product description code in productCode.coding (system "
            f"{fhir.PDC_SYSTEM}), the whole product code in productCode.text.")
CSV_DOC = "UTF-8 CSV with a header row; ISO 8601 dates; text cells defused against formula injection."


class FhirResourceSchema(Schema):
    """A FHIR resource: only resourceType is described here; the FHIR R5 specification describes the rest."""

    class Meta:
        unknown = "include"

    resourceType = fields.String(required=True)  # noqa: N815 (FHIR's element name)


#: lot and patient take the record id (the number in the lot's or patient's page address), not the lot number
#: (MSC-2026-0003) nor the trial code: "Not a valid integer." alone left a caller who gave the lot number guessing
LOT_ID_RULE = "the lot's record id (a whole number, e.g. 3), not its lot number"
PATIENT_ID_RULE = "the patient's record id (a whole number, e.g. 3), not its trial code"


class BundleQuerySchema(Schema):
    lot = QueryWholeNumber(validate=validate.Range(min=ROW_ID.min, max=ROW_ID.max, error=LOT_ID_RULE),
                      error_messages={"invalid": LOT_ID_RULE},
                      metadata={"description": f"{LOT_ID_RULE[0].upper()}{LOT_ID_RULE[1:]} (the number in "
                                               "/lots/<id>): the Bundle holds the lot's bags. Give lot or patient."})
    patient = QueryWholeNumber(validate=validate.Range(min=ROW_ID.min, max=ROW_ID.max, error=PATIENT_ID_RULE),
                          error_messages={"invalid": PATIENT_ID_RULE},
                          metadata={"description": f"{PATIENT_ID_RULE[0].upper()}{PATIENT_ID_RULE[1:]} (the number "
                                                   "in /patients/<id>): the Bundle holds the patient's infusions "
                                                   "(clinicians, nurses and QA only). Give lot or patient."})

    @validates_schema
    def _one_of(self, data: dict[str, Any], **_: Any) -> None:
        if ("lot" in data) == ("patient" in data):
            raise ValidationError("Give exactly one of lot and patient.", field_name="lot")


def _fhir(data: dict[str, Any]) -> Response:
    return Response(json.dumps(data, ensure_ascii=False), mimetype=fhir.FHIR_JSON)


@bp.route("/fhir/BiologicallyDerivedProduct/<int:bag_id>")
@bp.response(200, FhirResourceSchema, content_type=fhir.FHIR_JSON, description=FHIR_DOC)
@problems(bp, 401, 404)
@authenticated
def biologically_derived_product(bag_id: int) -> Any:
    return _fhir(fhir.bag_product(db.session, bag_id))


@bp.route("/fhir/BiologicallyDerivedProductDispense/<int:infusion_id>")
@bp.response(200, FhirResourceSchema, content_type=fhir.FHIR_JSON,
             description="The infusion as a FHIR R5 BiologicallyDerivedProductDispense: product (the bag), patient "
                         "(pseudonymised trial code only), status, performer, whenHandedOver, quantity (mL).")
@problems(bp, 401, 403, 404)
@roles_required(*PATIENT_READERS)
def biologically_derived_product_dispense(infusion_id: int) -> Any:
    return _fhir(fhir.infusion_dispense(db.session, infusion_id))


@bp.route("/fhir/Bundle")
@bp.arguments(BundleQuerySchema, location="query")
@bp.response(200, FhirResourceSchema, content_type=fhir.FHIR_JSON,
             description="A Bundle of type collection: with lot, one BiologicallyDerivedProduct per bag of the lot; "
                         "with patient, each infusion's BiologicallyDerivedProductDispense and its bag.")
@problems(bp, 401, 403, 404, 422)
@authenticated
def lot_bundle(args: dict[str, Any]) -> Any:
    base = request.url_root.rstrip("/") + "/api/v1/fhir"
    if "patient" in args:
        if not current_user.has_role(*PATIENT_READERS):
            raise PermissionDenied("Your role does not allow reading patient records.")
        return _fhir(fhir.patient_bundle(db.session, args["patient"], base))
    return _fhir(fhir.lot_bundle(db.session, args["lot"], base))


CSV_SCHEMA = {"type": "string", "description": CSV_DOC}


def _csv(name: str) -> Response:
    export = EXPORTS[name]
    if not export.allowed(current_user):  # the route's rule says the same; kept next to the export's own rule
        raise PermissionDenied("Your role does not allow this export.")
    return csv_exports.csv_response(export, db.session)


@bp.route("/exports/lots.csv")
@bp.response(200, CSV_SCHEMA, content_type="text/csv", description=EXPORTS["lots"].description)
@problems(bp, 401)
@authenticated
def export_lots() -> Any:
    return _csv("lots")


@bp.route("/exports/bags.csv")
@bp.response(200, CSV_SCHEMA, content_type="text/csv", description=EXPORTS["bags"].description)
@problems(bp, 401)
@authenticated
def export_bags() -> Any:
    return _csv("bags")


@bp.route("/exports/release-results.csv")
@bp.response(200, CSV_SCHEMA, content_type="text/csv", description=EXPORTS["release-results"].description)
@problems(bp, 401, 403)
@roles_required(*RELEASE_READERS)
def export_release_results() -> Any:
    return _csv("release-results")


@bp.route("/exports/infusions.csv")
@bp.response(200, CSV_SCHEMA, content_type="text/csv", description=EXPORTS["infusions"].description)
@problems(bp, 401, 403)
@roles_required(*EXPORTS["infusions"].roles or ())
def export_infusions() -> Any:
    return _csv("infusions")
