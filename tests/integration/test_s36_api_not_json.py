"""An API body sent as something other than JSON is refused as such (415), naming the header to send; before, a
valid JSON body sent as text/plain was refused as "Missing data for required field" for fields that were there
(API integrator's review, session 36). A JSON body, or a POST with no body and no type, is judged as before."""
from __future__ import annotations

import json

from tests.conftest import api_token_for


def test_a_json_body_sent_as_text_is_refused_naming_the_content_type(app, users):
    client = app.test_client()
    headers = {"Authorization": f"Bearer {api_token_for(app, 'nurse')}"}
    body = json.dumps({"wristband": "WB-1", "bag": "X999926000005P"})
    refused = client.post("/api/v1/custody/scan-verify", headers={**headers, "Content-Type": "text/plain"},
                          data=body)
    assert refused.status_code == 415 and refused.mimetype == "application/problem+json"
    assert "Content-Type: application/json" in refused.get_json()["detail"]
    form = client.post("/api/v1/custody/scan-verify", headers=headers, data={"wristband": "WB-1", "bag": "x"})
    assert form.status_code == 415
    judged = client.post("/api/v1/custody/scan-verify", headers=headers, json=json.loads(body))
    assert judged.status_code == 200  # the same body as JSON: checked (a STOP: no such patient)
