"""Batch release: results against a versioned specification, OOS, QA release with an electronic signature, the
certificate of analysis."""

#: who may read a lot's release results (the review page, the API's results and verdicts): not the ward's nurses,
#: whose client needs a bag's release state only (GET /api/v1/release/bags/<id>); a late OOS's patients go further
#: only to PATIENT_READERS
READERS = ("technician", "qa", "clinician", "admin")
