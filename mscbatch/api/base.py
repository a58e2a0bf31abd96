"""API endpoints of the foundation: who am I."""
from __future__ import annotations

from typing import Any

from flask_login import current_user
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from mscbatch.auth.access import authenticated
from mscbatch.core.bounds import MAX_ROW_ID

bp = Blueprint("api", __name__, url_prefix="/api/v1", description="Identity of the token's user")

PROBLEM_RESPONSES = {401: "Problem", 403: "Problem"}

# Bounds shared by every API schema: ids are PostgreSQL INTEGER (32-bit), so a larger number in a request is
# a 422 with the field named, never a driver overflow (500).
ROW_ID = validate.Range(min=1, max=MAX_ROW_ID)
DB_INT = validate.Range(max=MAX_ROW_ID)


class WholeNumber(fields.Integer):
    """An integer field of a JSON body: a whole JSON number only. 4.99 is refused, never stored as 4 (marshmallow's
    Integer does int(value), so a CTCAE grade 4.99 became grade 4 and a cell count lost its fraction), true is not
    1, and the string "9" is not read as a number: a client sending it has a bug the API must name (422 naming the
    field), not guess around. 2.0 is the number 2 (JSON has one number type; some encoders write whole doubles so).
    Query strings, which are text, take QueryWholeNumber."""

    default_error_messages = {"invalid": "Not a valid integer: send a whole JSON number."}

    def _validated(self, value: Any) -> Any:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float)
                                                                       and value.is_integer())):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class QueryWholeNumber(fields.Integer):
    """An integer of a query string (webargs location "query"), where every value is text: a string of digits is
    read ("?page=2"); 4.99 and true are refused as in a JSON body."""

    def _validated(self, value: Any) -> Any:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class JsonBoolean(fields.Boolean):
    """A boolean of a JSON body: the JSON literal true or false only. marshmallow's Boolean reads "yes", "true",
    "on", 1 as true: a clinician's confirmation (weight_confirmed) sent as "yes" was taken as checked. Anything
    else is a 422 naming the field."""

    default_error_messages = {"invalid": "Not a valid boolean: send true or false.",
                              "null": "Not a valid boolean: send true or false."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if value is True or value is False:
            return value
        raise self.make_error("invalid", input=value)


class MeSchema(Schema):
    id = WholeNumber(required=True)
    username = fields.String(required=True)
    full_name = fields.String(required=True)
    roles = fields.List(fields.String(), required=True)


def problems(blueprint: Blueprint, *codes: int) -> Any:
    """Document the problem responses an endpoint can give."""
    def decorate(view: Any) -> Any:
        for code in codes:
            view = blueprint.alt_response(code, schema="Problem", description="RFC 9457 problem details",
                                          content_type="application/problem+json")(view)
        return view
    return decorate


@bp.route("/me")
@bp.response(200, MeSchema)
@problems(bp, 401)
@authenticated
def me() -> Any:
    return {"id": current_user.id, "username": current_user.username, "full_name": current_user.full_name,
            "roles": sorted(current_user.role_names)}


#: what a `din` field of the API holds, said in the OpenAPI document: the bag's records give the 13 characters of
#: ISBT 128's DIN with the check character apart (check_character), as the database keeps them; the ward's answers
#: (a bedside check, an infusion) give the 14 characters a nurse types, the DIN followed by its check character
DIN_13 = "the bag's DIN, 13 characters, without its check character (given apart as check_character where shown)"
DIN_14 = "the bag's DIN followed by its check character K, 14 characters (as typed at the bedside)"
